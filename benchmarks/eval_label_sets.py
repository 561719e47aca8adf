"""Which model should `predict_emotion` use? Every label set side by side, per class, for any model and prior.

    python benchmarks/eval_label_sets.py [--models A B ...] [--combine A+B ...] [--data DIR] [--tta] [--test]
                                         [--prior training uniform half] [--wild ../shared/wild-dev]
                                         [--posed ../shared/posed-dev/ckplus48] [--reference NAME]
                                         [--out reports/label_sets/eval_label_sets.csv]

For every model, and every combination named by --combine (the mean of those models' probabilities over
FER+'s eight classes, a FER-2013 model's contempt taken as 0: what fer.modeling.architectures.build_ensemble
computes for mixed members), one row per label set:
- `FER+ val`: the validation split (split_seed 42: faces no shipped network trained on) against the FER+
  majority (8 classes), with crowd agreement; `FER-2013 val`: the same faces' FER-2013 labels (7 classes);
- `wild-dev`: web close-ups with crowd labels (5 classes), the same detected boxes for every model (a contempt
  answer counts as wrong);
- `posed-dev`: CK+ posed crops labelled by the intended emotion (7 classes with contempt, no neutral);
- with --test only: PublicTest on both label sets (report it; choose nothing on it).
Columns: n, accuracy, macro recall (over the classes the set has), macro-F1 where defined, then recall per class.
A dual-head model is scored through each head (`name[ferplus]`, `name[fer2013]`). --prior scores each model under
several class priors (fer.predict_crop's prior=): training, uniform, and half (the training prior's square root:
halfway to uniform on a log scale); a model without a recorded prior reads summary.json beside it (a run folder).
Then a summary, one row per model setting, with issue 41's bar for a new default checked against --reference
(default: the first model, training prior, no TTA): posed-dev >= 80% with every class's recall >= 0.5 (contempt
>= 0.3), FER+ val no more than 1.0 point below the reference, wild-dev macro recall >= 0.74 and neutral >= 0.80.
Prints both tables and writes the per-class one as CSV (the summary beside it, `_summary.csv`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fer import quiet  # noqa: E402

quiet.install()  # TensorFlow's start-up lines stay off the terminal: the table is this script's output
import fer  # noqa: E402
from fer.analysis.evaluation import Evaluation  # noqa: E402
from fer.analysis.probabilities import (  # noqa: E402
    adjust,
    classes_of,
    heads_of,
    predict_proba,
    prior_weights,
    training_prior,
)
from fer.data.classes import EMOTIONS, FERPLUS_CLASSES, classes_for_size  # noqa: E402
from fer.data.ferplus import convert_probabilities  # noqa: E402
from fer.data.images import read_photo  # noqa: E402
from fer.data.loading import load_folder  # noqa: E402
from fer.inference.cropping import DEFAULT_MARGIN, crop_face  # noqa: E402
from fer.inference.faces import detect_faces  # noqa: E402
from fer.inference.models import load_model  # noqa: E402
from fer.modeling.config import TrainConfig  # noqa: E402
from fer.modeling.run_data import split_data  # noqa: E402


def prior_setting(setting: str, model, head: str | None):
    """fer's prior= argument for `setting`: training, uniform, or half (the training prior ** 0.5)."""
    if setting != "half":
        return setting
    recorded = training_prior(model, head)
    return {c: v**0.5 for c, v in recorded.items()}


def probabilities(
    models: dict, combos: list[str], images: np.ndarray, tta, prior: str = "training"
) -> dict[str, np.ndarray]:
    """{name: (N, 8) probabilities over FERPLUS_CLASSES}; FER-2013 models get contempt 0; combos averaged;
    a dual-head model gives one entry per head."""
    out = {}
    for name, model in models.items():
        heads = list(heads_of(model))
        for head in heads:
            p = predict_proba(model, images, tta=tta, labels=head)
            weights = prior_weights(
                prior_setting(prior, model, head), training_prior(model, head), classes_of(model, head)
            )
            key = f"{name}[{head}]" if len(heads) > 1 else name
            out[key] = convert_probabilities(adjust(p, weights), classes_for_size(p.shape[1]), FERPLUS_CLASSES)
    for combo in combos:
        parts = combo.split("+")
        out[combo] = sum(out[part] for part in parts) / len(parts)
    return out


def score(probs: np.ndarray, labels: np.ndarray, classes, votes=None) -> Evaluation:
    """An Evaluation of 8-class probabilities against labels over `classes` (7: contempt dropped)."""
    return Evaluation(labels, convert_probabilities(probs, FERPLUS_CLASSES, classes), classes=classes, votes=votes)


def wild_faces(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """wild-dev's photos: one detected face each (the default detector; the largest where several), cropped."""
    faces, labels = [], []
    for path in sorted(root.glob("*/*")):
        if path.parent.name not in EMOTIONS or not path.is_file():
            continue
        image, _ = read_photo(path)
        found = detect_faces(image)
        if not found:
            continue
        face = max(found, key=lambda f: f.box[2] * f.box[3])
        faces.append(crop_face(image, face.box, DEFAULT_MARGIN))
        labels.append(EMOTIONS.index(path.parent.name))
    return np.stack(faces), np.array(labels)


def recall_row(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """n, accuracy, macro recall over the classes present, and recall per class (FERPLUS_CLASSES indices)."""
    present = sorted(set(truth.tolist()))
    recall = {FERPLUS_CLASSES[c]: float((predicted[truth == c] == c).mean()) for c in present}
    return {
        "n": len(truth),
        "acc": float((predicted == truth).mean()),
        "macro_recall": float(np.mean(list(recall.values()))),
        **recall,
    }


def to_ferplus_index(labels: np.ndarray, classes) -> np.ndarray:
    return np.array([FERPLUS_CLASSES.index(classes[i]) for i in labels])


def set_rows(name: str, probs: np.ndarray, faces, classes) -> dict:
    """One label set's row: recall per class from the 8-class argmax, macro-F1 and crowd agreement from
    fer.analysis.evaluation (scored over the set's own classes)."""
    row = recall_row(to_ferplus_index(faces.labels, classes), probs.argmax(axis=1))
    scored = score(probs, faces.labels, classes, getattr(faces, "votes", None))
    if tuple(classes) == EMOTIONS:  # 7 classes: scored without contempt, as FER-2013's labels are
        row.update(recall_row(to_ferplus_index(faces.labels, classes), to_ferplus_index(scored.predictions, classes)))
    return {"set": name, **row, "macro_f1": scored.macro_f1, "crowd_agreement": scored.crowd_agreement}


def load_models(names: list[str]) -> dict:
    models = {}
    for m in names:
        path = REPO / m if not Path(m).is_absolute() else Path(m)
        model = load_model(path)
        summary = path.parent / "summary.json"
        if getattr(model, "training_prior", None) is None and summary.is_file():  # a run folder's model
            object.__setattr__(model, "training_prior", json.loads(summary.read_text()).get("training_prior"))
        models[path.name if path.parent.name == "models" else f"{path.parent.parent.name}/{path.name}"] = model
    return models


def label_sets(args) -> dict:
    """{name: (faces, classes)} for every set in hand."""
    data = fer.data_dir(args.data)
    _, val13 = split_data(TrainConfig(data=str(data)))
    _, val_plus = split_data(TrainConfig(data=str(data), labels="ferplus_majority"))
    sets = {"FER+ val": (val_plus, FERPLUS_CLASSES), "FER-2013 val": (val13, EMOTIONS)}
    if Path(args.posed).is_dir():
        posed = load_folder(args.posed)
        sets["posed-dev"] = (posed, posed.classes)
    if Path(args.wild).is_dir():  # detection runs once: every model and setting scores the same crops
        faces, labels = wild_faces(Path(args.wild))
        sets["wild-dev"] = (fer.FaceSet(faces, labels), EMOTIONS)
    if args.test:
        from fer.data.ferplus import load_ferplus_split

        sets["FER+ PublicTest"] = (load_ferplus_split(data, "test"), FERPLUS_CLASSES)
        sets["FER-2013 PublicTest"] = (fer.load_split(data, "test"), EMOTIONS)
    return sets


def passes(row: pd.Series, reference: float) -> str:
    """Issue 41's bar for a new default, or what misses it."""
    posed = [c for c in FERPLUS_CLASSES if c != "neutral" and not pd.isna(row.get(f"posed {c}"))]
    missed = [f"posed {row['posed acc']:.1%}"] if row["posed acc"] < 0.80 else []
    missed += [c for c in posed if row[f"posed {c}"] < (0.3 if c == "contempt" else 0.5)]
    missed += [f"FER+ val {row['FER+ val acc'] - reference:+.1%}"] if row["FER+ val acc"] < reference - 0.01 else []
    missed += ["wild macro"] if row["wild macro_recall"] < 0.74 else []
    missed += ["wild neutral"] if row["wild neutral"] < 0.80 else []
    return "yes" if not missed else "no: " + ", ".join(missed)


def summary(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """One row per model setting: the figures the default is chosen on, and whether it clears the bar."""
    keys = ["model", "tta", "prior"]
    short = {"FER+ val": "FER+ val", "FER-2013 val": "FER-2013 val", "wild-dev": "wild", "posed-dev": "posed"}
    rows = []
    for key, group in table.groupby(keys, sort=False):
        row = dict(zip(keys, key))
        for _, r in group[group["set"].isin(short)].iterrows():
            label = short[r["set"]]
            row |= {f"{label} acc": r["acc"], f"{label} macro_recall": r["macro_recall"]}
            if label in ("wild", "posed"):
                row |= {f"{label} {c}": r[c] for c in FERPLUS_CLASSES if not pd.isna(r.get(c))}
        rows.append(row)
    out = pd.DataFrame(rows)
    if {"posed acc", "wild acc"} <= set(out.columns):
        ref = out[(out["model"] == reference) & (out["tta"] == "off") & (out["prior"] == "training")]
        reference_acc = float(ref["FER+ val acc"].iloc[0]) if len(ref) else float(out["FER+ val acc"].iloc[0])
        out["new default?"] = [passes(r, reference_acc) for _, r in out.iterrows()]
    return out


def add_set_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --wild and --posed: where the label sets are (the issue-41 benchmarks share them)."""
    parser.add_argument("--data", help="FER-2013 (default: $FER2013_DIR, else data/fer2013)")
    parser.add_argument("--wild", default=str(REPO.parent / "shared" / "wild-dev"))
    parser.add_argument("--posed", default=str(REPO.parent / "shared" / "posed-dev" / "ckplus48"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["models/ferplus_votes.keras"], help="model files")
    parser.add_argument("--combine", nargs="*", default=[], help="averages to score too, e.g. a.keras+b.keras")
    add_set_arguments(parser)
    parser.add_argument("--tta", action="store_true", help="also with test-time augmentation (shift)")
    parser.add_argument("--test", action="store_true", help="also PublicTest (report only)")
    parser.add_argument("--prior", nargs="+", default=["training"], choices=["training", "uniform", "half"])
    parser.add_argument("--reference", help="the model the bar's FER+ val figure is read from (default: the first)")
    parser.add_argument("--out", default=str(REPO / "reports" / "label_sets" / "eval_label_sets.csv"))
    args = parser.parse_args()

    models = load_models(args.models)
    sets = label_sets(args)
    rows = []
    for tta in [False, "shift"] if args.tta else [False]:
        for prior in args.prior:
            for set_name, (faces, classes) in sets.items():
                for name, probs in probabilities(models, args.combine, faces.images, tta, prior).items():
                    rows.append(
                        {
                            "model": name,
                            "tta": tta or "off",
                            "prior": prior,
                            **set_rows(set_name, probs, faces, classes),
                        }
                    )
    columns = ["model", "tta", "prior", "set", "n", "acc", "macro_recall", "macro_f1", "crowd_agreement"]
    table = pd.DataFrame(rows)[columns + list(FERPLUS_CLASSES)]
    overview = summary(table, args.reference or next(iter(models)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.round(4).to_csv(out, index=False)
    overview.round(4).to_csv(out.with_name(out.stem + "_summary.csv"), index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_colwidth", 60):
        print(table.round(3).to_string(index=False))
        print()
        print(overview.round(3).to_string(index=False))
    print(f"\nWrote {out} and its _summary.csv")


if __name__ == "__main__":
    main()
