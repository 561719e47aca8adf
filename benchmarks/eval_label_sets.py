"""Which model should `predict_emotion` use? FER-2013 and FER+ models side by side on both label sets and on photos.

    python benchmarks/eval_label_sets.py [--models A B ...] [--combine A+B ...] [--data DIR] [--tta] [--test]
                                         [--prior training uniform half]
                                         [--wild ../shared/wild-dev] [--out reports/ferplus/eval_label_sets.csv]

For every model, and every combination named by --combine (the mean of those models' probabilities over
FER+'s eight classes, a FER-2013 model's contempt taken as 0: what fer.modeling.architectures.build_ensemble
computes for mixed members; default: the first two models), on
- the validation split (split_seed 42: faces no shipped network trained on), against FER-2013's labels (7
  classes) and against the FER+ majority (8 classes), with crowd agreement;
- wild-dev (web close-ups with crowd labels, 5 classes): the same detected boxes for every model, top-emotion
  accuracy per class and its macro average (a contempt answer counts as wrong);
- with --test only: PublicTest on both label sets (report it; choose nothing on it).
A dual-head model is scored through each head (`name[ferplus]`, `name[fer2013]`). --prior scores each model under
several class priors (fer.predict_crop's prior=): training, uniform, and half (the training prior's square root:
halfway to uniform on a log scale); a model without a recorded prior reads summary.json beside it (a run folder).
Prints one table and writes it as CSV. Choose on the validation rows, read the photo rows by class.
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

import fer  # noqa: E402  (fer before keras: its start-up lines stay off the terminal)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["models/fer_ensemble.json", "models/ferplus.keras", "models/fer_emotion.keras"],
        help="model files; each is named by its file name in the table and in --combine",
    )
    parser.add_argument("--combine", nargs="*", help="averages to score too, e.g. fer_emotion.keras+ferplus.keras")
    parser.add_argument("--data", help="FER-2013 (default: $FER2013_DIR, else data/fer2013)")
    parser.add_argument("--wild", default=str(REPO.parent / "shared" / "wild-dev"))
    parser.add_argument("--tta", action="store_true", help="also with test-time augmentation (shift)")
    parser.add_argument("--test", action="store_true", help="also PublicTest (report only)")
    parser.add_argument("--prior", nargs="+", default=["training"], choices=["training", "uniform", "half"])
    parser.add_argument("--out", default=str(REPO / "reports" / "ferplus" / "eval_label_sets.csv"))
    args = parser.parse_args()

    data = fer.data_dir(args.data)
    models = {}
    for m in args.models:
        path = REPO / m if not Path(m).is_absolute() else Path(m)
        model = load_model(path)
        summary = path.parent / "summary.json"
        if getattr(model, "training_prior", None) is None and summary.is_file():  # a run folder's model
            object.__setattr__(model, "training_prior", json.loads(summary.read_text()).get("training_prior"))
        models[path.name if path.parent.name == "models" else f"{path.parent.name}/{path.name}"] = model
    combos = args.combine if args.combine is not None else []
    _, val13 = split_data(TrainConfig(data=str(data)))
    _, val_plus = split_data(TrainConfig(data=str(data), labels="ferplus_votes"))
    sets = {"validation": (val13, val_plus)}
    if args.test:
        from fer.data.ferplus import load_ferplus_split

        sets["PublicTest"] = (fer.load_split(data, "test"), load_ferplus_split(data, "test"))
    rows = []
    # Detection runs once: every model and TTA setting is scored on the same wild-dev crops.
    wild = wild_faces(Path(args.wild)) if Path(args.wild).is_dir() else None
    settings = [(tta, prior) for tta in ([False, "shift"] if args.tta else [False]) for prior in args.prior]
    for tta, prior in settings:
        for split, (faces13, faces_plus) in sets.items():
            p13 = probabilities(models, combos, faces13.images, tta, prior)
            p_plus = probabilities(models, combos, faces_plus.images, tta, prior)
            for name in p13:
                on13 = score(p13[name], faces13.labels, EMOTIONS)
                on_plus = score(p_plus[name], faces_plus.labels, FERPLUS_CLASSES, faces_plus.votes)
                rows.append(
                    {
                        "set": split,
                        "model": name,
                        "tta": tta or "off",
                        "prior": prior,
                        "fer2013_acc": on13.accuracy,
                        "fer2013_macro_recall": float(on13.per_class["recall"].mean()),
                        "fer2013_macro_f1": on13.macro_f1,
                        "ferplus_acc": on_plus.accuracy,
                        "ferplus_macro_f1": on_plus.macro_f1,
                        "ferplus_macro_recall": float(on_plus.per_class["recall"].mean()),
                        "crowd_agreement": on_plus.crowd_agreement,
                    }
                )
        if wild is not None:
            faces, labels = wild
            present = sorted(set(labels.tolist()))
            for name, probs in probabilities(models, combos, faces, tta, prior).items():
                predicted = probs.argmax(axis=1)  # over 8 classes: contempt is a wrong answer here
                truth = np.array([FERPLUS_CLASSES.index(EMOTIONS[i]) for i in labels])
                recall = {EMOTIONS[c]: float((predicted[labels == c] == truth[labels == c]).mean()) for c in present}
                rows.append(
                    {
                        "set": f"wild-dev ({len(labels)} faces)",
                        "model": name,
                        "tta": tta or "off",
                        "prior": prior,
                        "wild_acc": float((predicted == truth).mean()),
                        "wild_macro_recall": float(np.mean(list(recall.values()))),
                        **{f"wild_{k}": v for k, v in recall.items()},
                    }
                )
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.round(4).to_csv(args.out, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(4).to_string(index=False))
    print(f"\nWrote {args.out}")


if __name__ == "__main__":
    main()
