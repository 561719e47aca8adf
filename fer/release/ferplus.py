"""Shipping FER+ runs (8 classes, crowd labels) into models/: the model file(s), metrics and a generated card.

`ship_ferplus([run_dir, ...], data)` writes into models/:
    ferplus.keras              one run's model without optimizer state, or, for several runs,
    ferplus.json + ferplus/    an ensemble file listing one member file per run
    ferplus.metrics.json       every number of the card, machine-readable (tests read it)
    ferplus_confusion.png      row-normalised confusion matrix against the FER+ majority
    ferplus_CARD.md            data, protocol, recipe, results on both label sets, limitations
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import keras
import pandas as pd

from fer.analysis import plots
from fer.analysis.evaluation import Evaluation, evaluate
from fer.analysis.probabilities import mean_prior, tta_scheme
from fer.data.classes import EMOTIONS
from fer.data.ferplus import load_ferplus_split
from fer.data.loading import data_dir, load_split, train_images_beside
from fer.modeling.files import MODELS_DIR
from fer.pipeline import run_id_of
from fer.release.cards import markdown_table, per_class_table, percent, render
from fer.release.fer2013 import (
    RANDOM_INIT,
    class_weighting_text,
    cpu_throughput,
    onnx_twin,
    schedule_text,
    starting_network,
    strip_optimizer,
)


def _member(run: Path, path: Path, models_dir: Path) -> tuple[keras.Model, dict]:
    """Export one run's model to `path`; its card row (recipe and training time)."""
    config = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    history = pd.read_csv(run / "history.csv")
    model = strip_optimizer(run / f"{config.get('checkpoint', 'best')}.keras", path)
    return model, {
        "file": path.relative_to(models_dir).as_posix(),
        "run": run_id_of(run),
        "labels": config["labels"],
        "architecture": config["model"],
        "starts from": starting_network(config, path.name),
        "epochs": len(history),
        "train_hours": round(float(history["seconds"].sum()) / 3600, 2),
        "val_majority_accuracy": round(float(history["val_accuracy"].iloc[-1]), 4),
        "class weights": class_weighting_text(config["class_weighting"]),
        "label smoothing": config["label_smoothing"],
        "seed": config["seed"],
        "config": config,
        "training_prior": summary.get("training_prior"),
    }


def _scores(plain: Evaluation, tta: Evaluation) -> dict:
    dedup, dedup_tta = plain.deduplicated, tta.deduplicated
    return {
        "n": plain.n,
        "accuracy": round(plain.accuracy, 4),
        "accuracy_tta": round(tta.accuracy, 4),
        "macro_f1": round(plain.macro_f1, 4),
        "macro_f1_tta": round(tta.macro_f1, 4),
        "accuracy_without_train_duplicates": None if dedup is None else round(dedup.accuracy, 4),
        "accuracy_tta_without_train_duplicates": None if dedup_tta is None else round(dedup_tta.accuracy, 4),
        "n_train_duplicates": None if dedup is None else plain.n - dedup.n,
        "ece": round(plain.ece, 4),
        **(
            {}
            if plain.crowd_agreement is None
            else {
                "crowd_agreement": round(plain.crowd_agreement, 4),
                "crowd_agreement_tta": round(tta.crowd_agreement, 4),
                "vote_cross_entropy": round(plain.vote_cross_entropy, 4),
            }
        ),
    }


def ship_ferplus(
    run_dirs: list[str | Path],
    data: str | Path | None = None,
    models_dir: str | Path = MODELS_DIR,
    name: str = "ferplus",
    hardware: str | None = None,
    selection: str = "",
    throughput_faces: int = 2048,
    votes: str | Path | None = None,
    include: list[str | Path] = (),
) -> dict:
    """Ship one FER+ run as models_dir/<name>.keras, or several as an ensemble <name>.json + <name>/; evaluate
    it once on the test split against the FER+ majority (and, 7-class, against FER-2013's labels); write its card.

    `selection`: how the runs were chosen (on the validation split, never on the test split), for the card.
    `votes`: the votes table (default: the one the first run trained with, else fer.data.ferplus.votes_path()).
    `include`: model files already in models_dir (e.g. the FER-2013 network fer_emotion.keras) to average in,
    referenced rather than copied: a FER-2013 member counts as giving contempt 0 (fer.modeling.architectures).
    """
    from fer.inference.models import load_model

    models_dir, data = Path(models_dir), data_dir(data)
    members, model_file = _shipped_members([Path(r) for r in run_dirs], include, models_dir, name)
    model = load_model(models_dir / model_file)
    config = next(m["config"] for m in members if "config" in m)  # the first run's (included files have none)

    crowd, fer2013, evaluations = _evaluations(model, data, votes or config.get("votes"))
    prior = mean_prior([m.get("training_prior") for m in members])
    plain = evaluations["ferplus", False]
    fig = plots.confusion_heatmap(plain.confusion_normalized.round(2), normalized=True)
    plots.save(fig, models_dir, f"{name}_confusion")
    metrics = {
        "model_file": model_file,
        "classes": list(crowd.classes),
        "params": int(model.count_params()),
        "test_split": f"PublicTest ({data.name}/test): {len(crowd):,} faces with a FER+ majority of {len(fer2013):,}",
        "ferplus": _scores(evaluations["ferplus", False], evaluations["ferplus", True]),
        "fer2013": _scores(evaluations["fer2013", False], evaluations["fer2013", True]),
        "per_class": plain.to_dict()["per_class"],
        "members": [{k: v for k, v in m.items() if k not in ("config", "training_prior")} for m in members],
        "includes_fer2013_members": any(m["labels"] == "fer2013" for m in members),
        "selection": selection,
        "tta_scheme": tta_scheme(True),
        "train_hours": round(sum(m["train_hours"] for m in members), 2),
        "hardware": hardware or f"{platform.machine()} CPU, {keras.backend.backend()} backend",
        "cpu_faces_per_second": round(cpu_throughput(model, n=throughput_faces)),
        # One network gets its ONNX twin; an ensemble's would be its members' sizes together (over 16 MB).
        "onnx_twin": onnx_twin(models_dir / model_file, data, prior) if model_file.endswith(".keras") else None,
        "training_prior": prior,  # a mixed FER-2013 + FER+ ensemble has none: its members answer in other label sets
        "config": config,
    }
    (models_dir / f"{name}.metrics.json").write_text(json.dumps(metrics, indent=2))
    (models_dir / f"{name}_CARD.md").write_text(ferplus_card(metrics, plain))
    return metrics


def _shipped_members(runs: list[Path], include, models_dir: Path, name: str) -> tuple[list[dict], str]:
    """(card rows, model file name): one run as <name>.keras, or several (and `include`d shipped files) as an
    ensemble <name>.json whose members are exported into <name>/."""
    from fer.modeling.ensembling import ensemble

    if len(runs) == 1 and not include:
        return [_member(runs[0], models_dir / f"{name}.keras", models_dir)[1]], f"{name}.keras"
    members, paths = [], []
    for run in runs:
        path = models_dir / name / f"{run_id_of(run)}.keras"
        members.append(_member(run, path, models_dir)[1])
        paths.append(path)
    for shipped in map(Path, include):
        shipped = shipped if shipped.is_absolute() else models_dir / shipped
        members.append(_included_member(shipped, models_dir))
        paths.append(shipped)
    ensemble(paths, models_dir / f"{name}.json")
    return members, f"{name}.json"


def _included_member(shipped: Path, models_dir: Path) -> dict:
    """The card row of a model file already in models_dir that an ensemble averages in."""
    card = json.loads(shipped.with_name(f"{shipped.stem}.metrics.json").read_text())
    relative = shipped.relative_to(models_dir).as_posix()
    prior = {"training_prior": card.get("training_prior")}
    if len(card.get("members", [])) == 1:  # a FER+ network shipped by this function: its own row
        return {**card["members"][0], "file": relative, **prior}
    return {  # a FER-2013 network (fer.release.ship's card)
        "file": relative,
        "run": "(shipped)",
        "labels": "fer2013" if list(card.get("classes", EMOTIONS)) == list(EMOTIONS) else "ferplus",
        "architecture": card.get("architecture", "ensemble"),
        "starts from": "see its card",
        "epochs": card.get("epochs"),
        "train_hours": round(card.get("train_seconds", 0) / 3600, 2) or card.get("train_hours", 0),
        **prior,
    }


def _evaluations(model, data: Path, votes):
    """(FER+ test faces, FER-2013 test faces, {(label set, tta): Evaluation}): the model scored once on each."""
    train_images = train_images_beside(data, "test")
    crowd, fer2013 = load_ferplus_split(data, "test", votes), load_split(data, "test")
    evaluations = {}
    for key, faces in (("ferplus", crowd), ("fer2013", fer2013)):
        for tta in (False, True):
            evaluations[key, tta] = evaluate(
                model,
                faces.images,
                faces.labels,
                tta=tta,
                train_images=train_images,
                classes=faces.classes,
                votes=faces.votes,
            )
    return crowd, fer2013, evaluations


def ferplus_card(metrics: dict, plain: Evaluation) -> str:
    """The FER+ model's Markdown card (templates/ferplus_card.md), every number from `metrics` and its evaluation."""
    fp, f13, config = metrics["ferplus"], metrics["fer2013"], metrics["config"]
    members = (
        pd.DataFrame(metrics["members"])
        .set_index("file")
        .astype(object)
        .fillna("")
        .map(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)  # epochs, seeds: no ".000"
    )
    from_scratch = [m.get("starts from") == RANDOM_INIT for m in metrics["members"] if m.get("run") != "(shipped)"]
    mixed = metrics.get("includes_fer2013_members")
    return render(
        "ferplus",
        model_file=metrics["model_file"],
        stem=Path(metrics["model_file"]).stem,
        classes=", ".join(metrics["classes"]),
        test_split=metrics["test_split"],
        accuracy=percent(fp["accuracy"]),
        accuracy_tta=percent(fp["accuracy_tta"]),
        macro_f1=f"{fp['macro_f1']:.3f}",
        macro_f1_tta=f"{fp['macro_f1_tta']:.3f}",
        agreement=f"{fp['crowd_agreement']:.3f}",
        agreement_tta=f"{fp['crowd_agreement_tta']:.3f}",
        tta_scheme=metrics["tta_scheme"],
        dups=fp["n_train_duplicates"],
        accuracy_dedup=percent(fp["accuracy_without_train_duplicates"]),
        accuracy_tta_dedup=percent(fp["accuracy_tta_without_train_duplicates"]),
        cross_entropy=f"{fp['vote_cross_entropy']:.3f}",
        ece=f"{fp['ece']:.3f}",
        n_fer2013=f"{f13['n']:,}",
        f13_accuracy=percent(f13["accuracy"]),
        f13_accuracy_tta=percent(f13["accuracy_tta"]),
        f13_macro_f1=f"{f13['macro_f1']:.3f}",
        per_class=per_class_table(plain),
        selection=metrics["selection"].rstrip(".") or "as listed",
        members=markdown_table(members),
        mixed=MIXED_MEMBERS if mixed else "",
        architecture=config["model"],
        start=_start_text(from_scratch),
        split_seed=config["split_seed"],
        optimizer=config["optimizer"],
        learning_rate=config["learning_rate"],
        schedule=schedule_text(config),
        batch_size=config["batch_size"],
        weight_decay=config["weight_decay"],
        augmentation=", ".join(f"{k}={v}" for k, v in config["augmentation"].items()),
        params=f"{metrics['params']:,}",
        faces_per_second=f"{metrics['cpu_faces_per_second']:,}",
        train_hours=f"{metrics['train_hours']:.1f}",
        hardware=metrics["hardware"],
        fine_tuned="" if all(from_scratch) else " (not counting the FER-2013 networks they started from)",
        n_contempt=int(plain.per_class.loc["contempt", "support"]),
    )


MIXED_MEMBERS = (
    "- FER-2013 members (`labels` fer2013) are averaged in with contempt 0: the mean over FER+'s eight "
    "classes of networks trained on the crowd's labels and on FER-2013's own "
    "(`fer.modeling.architectures.build_ensemble`).\n"
)


def _start_text(from_scratch: list[bool]) -> str:
    if all(from_scratch):
        return "started from a random initialisation"
    if not any(from_scratch):
        return "started from a FER-2013 network of ours (all layers but the new 8-class output layer; `init_weights`)"
    return "started from a random initialisation or from a FER-2013 network of ours (the table's `starts from`)"
