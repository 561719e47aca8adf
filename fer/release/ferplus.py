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
from fer.analysis.evaluation import Evaluation, evaluate, tta_scheme
from fer.data.ferplus import load_ferplus_split
from fer.data.loading import EMOTIONS, data_dir, load_split, train_images_beside
from fer.modeling.files import MODELS_DIR
from fer.pipeline import run_id_of
from fer.release.fer2013 import (
    RANDOM_INIT,
    class_weighting_text,
    cpu_throughput,
    export_model,
    markdown_table,
    onnx_twin,
    schedule_text,
    starting_network,
)


def _member(run: Path, path: Path, models_dir: Path) -> tuple[keras.Model, dict]:
    """Export one run's model to `path`; its card row (recipe and training time)."""
    config = json.loads((run / "config.json").read_text())
    history = pd.read_csv(run / "history.csv")
    model = export_model(run / f"{config.get('checkpoint', 'best')}.keras", path)
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
    from fer.inference.predict import load_model
    from fer.modeling.ensembling import ensemble

    models_dir, data = Path(models_dir), data_dir(data)
    runs = [Path(r) for r in run_dirs]
    members = []
    if len(runs) == 1 and not include:
        model, row = _member(runs[0], models_dir / f"{name}.keras", models_dir)
        members.append(row)
        model_file = f"{name}.keras"
    else:
        paths = []
        for run in runs:
            path = models_dir / name / f"{run_id_of(run)}.keras"
            members.append(_member(run, path, models_dir)[1])
            paths.append(path)
        for shipped in map(Path, include):
            shipped = shipped if shipped.is_absolute() else models_dir / shipped
            card = json.loads(shipped.with_name(f"{shipped.stem}.metrics.json").read_text())
            relative = shipped.relative_to(models_dir).as_posix()
            if len(card.get("members", [])) == 1:  # a FER+ network shipped by this function: its own row
                members.append({**card["members"][0], "file": relative})
            else:  # a FER-2013 network (fer.release.ship's card)
                members.append(
                    {
                        "file": relative,
                        "run": "(shipped)",
                        "labels": "fer2013" if list(card.get("classes", EMOTIONS)) == list(EMOTIONS) else "ferplus",
                        "architecture": card.get("architecture", "ensemble"),
                        "starts from": "see its card",
                        "epochs": card.get("epochs"),
                        "train_hours": round(card.get("train_seconds", 0) / 3600, 2) or card.get("train_hours", 0),
                    }
                )
            paths.append(shipped)
        ensemble(paths, models_dir / f"{name}.json")
        model_file = f"{name}.json"
    model = load_model(models_dir / model_file)
    config = next(m["config"] for m in members if "config" in m)  # the first run's (included files have none)

    train_images = train_images_beside(data, "test")
    crowd = load_ferplus_split(data, "test", votes or config.get("votes"))
    fer2013 = load_split(data, "test")
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
        "members": [{k: v for k, v in m.items() if k != "config"} for m in members],
        "includes_fer2013_members": any(m["labels"] == "fer2013" for m in members),
        "selection": selection,
        "tta_scheme": tta_scheme(True),
        "train_hours": round(sum(m["train_hours"] for m in members), 2),
        "hardware": hardware or f"{platform.machine()} CPU, {keras.backend.backend()} backend",
        "cpu_faces_per_second": round(cpu_throughput(model, n=throughput_faces)),
        # One network gets its ONNX twin; an ensemble's would be its members' sizes together (over 16 MB).
        "onnx_twin": onnx_twin(models_dir / model_file, data) if model_file.endswith(".keras") else None,
        "config": config,
    }
    (models_dir / f"{name}.metrics.json").write_text(json.dumps(metrics, indent=2))
    (models_dir / f"{name}_CARD.md").write_text(ferplus_card(metrics, plain))
    return metrics


def ferplus_card(metrics: dict, plain: Evaluation) -> str:
    """The FER+ model's Markdown card, every number generated from `metrics` and its evaluation."""
    fp, f13, config = metrics["ferplus"], metrics["fer2013"], metrics["config"]
    per_class = plain.per_class.round(3)
    per_class["support"] = per_class["support"].astype(int)
    members = (
        pd.DataFrame(metrics["members"])
        .set_index("file")
        .astype(object)
        .fillna("")
        .map(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)  # epochs, seeds: no ".000"
    )
    stem = Path(metrics["model_file"]).stem
    from_scratch = [m.get("starts from") == RANDOM_INIT for m in metrics["members"] if m.get("run") != "(shipped)"]
    start = (
        "started from a random initialisation"
        if all(from_scratch)
        else "started from a FER-2013 network of ours (all layers but the new 8-class output layer; `init_weights`)"
        if not any(from_scratch)
        else "started from a random initialisation or from a FER-2013 network of ours (the table's `starts from`)"
    )
    fine_tuned = "" if all(from_scratch) else " (not counting the FER-2013 networks they started from)"
    aug = ", ".join(f"{k}={v}" for k, v in config["augmentation"].items())
    dup = fp["n_train_duplicates"]
    mixed = (
        "- FER-2013 members (`labels` fer2013) are averaged in with contempt 0: the mean over FER+'s eight "
        "classes of networks trained on the crowd's labels and on FER-2013's own "
        "(`fer.modeling.architectures.build_ensemble`).\n"
        if metrics.get("includes_fer2013_members")
        else ""
    )
    return f"""# Model card: `{metrics["model_file"]}` (FER+, 8 classes)

Eight-class facial-emotion model for 48x48 grayscale faces, trained on the FER+ crowd labels of FER-2013
(Barsoum et al. 2016: ten annotators per image): {", ".join(metrics["classes"])}.
It answers "what would most
people say this face shows". Use it wherever a model path is accepted:
`predict_emotion(img, model="models/{metrics["model_file"]}")`, `python -m fer predict --model ...`.
Generated by `fer.release.ship_ferplus` (`python -m fer ship --ferplus --run ...`); every number is also in
`{stem}.metrics.json`.

## Results on {metrics["test_split"]}

Against the FER+ majority (the FER+ protocol: votes of 1 dropped, the top label holding more than half of
the rest, unknown and not-a-face excluded; `python -m fer evaluate --votes data/ferplus_votes.csv`):

| | accuracy | macro-F1 | crowd agreement |
|---|---|---|---|
| plain | **{fp["accuracy"]:.2%}** | {fp["macro_f1"]:.3f} | {fp["crowd_agreement"]:.3f} |
| with test-time augmentation ({metrics["tta_scheme"]}) | **{fp["accuracy_tta"]:.2%}** | {fp["macro_f1_tta"]:.3f} \
| {fp["crowd_agreement_tta"]:.3f} |
| plain, without the {dup} faces that copy training images | {fp["accuracy_without_train_duplicates"]:.2%} | | |
| with TTA, without those faces | {fp["accuracy_tta_without_train_duplicates"]:.2%} | | |

Crowd agreement: the mean share of the ten annotators who chose the predicted emotion (a perfect model scores
the mean share of the majority label, not 1). Cross-entropy against the vote shares: {fp["vote_cross_entropy"]:.3f}
nats; expected calibration error against the majority: {fp["ece"]:.3f}.

Against FER-2013's own single labels (all {f13["n"]:,} faces, 7 classes: contempt dropped from the output and the
rest renormalised): {f13["accuracy"]:.2%} plain, {f13["accuracy_tta"]:.2%} with TTA, macro-F1 {f13["macro_f1"]:.3f}.

{markdown_table(per_class)}

![confusion matrix]({stem}_confusion.png)

How it was chosen: {metrics["selection"].rstrip(".") or "as listed"}. PublicTest was evaluated once, after training,
for this card.

## Model and training

{markdown_table(members)}

{mixed}- Every FER+ member: `{config["model"]}` {start}, trained on FER-2013 train with FER+ labels (`labels`:
  `ferplus_votes` = cross-entropy against the vote shares, `ferplus_majority` = the one-hot majority), validated
  on the FER+ majority of the same held-out faces as the FER-2013 networks (split_seed {config["split_seed"]}).
- Recipe: optimizer {config["optimizer"]}, learning rate {config["learning_rate"]}, {schedule_text(config)}, batch
  {config["batch_size"]}, weight decay {config["weight_decay"]}, augmentation ({aug}).
- {metrics["params"]:,} parameters; {metrics["cpu_faces_per_second"]:,} faces/s batched on the CPU that shipped it
  (Keras); {metrics["train_hours"]:.1f} h of training on {metrics["hardware"]}{fine_tuned}.

## Limitations

- FER+ relabels FER-2013's faces: the same web images (mostly frontal, low resolution; ages, skin tones and
  cultures unevenly represented). Do not use the model for decisions about people.
- Contempt ({int(per_class.loc["contempt", "support"])} test faces), disgust and fear are rare under the FER+
  majority: their scores are the least reliable. Posed, acted expressions of fear and disgust (lab datasets)
  are labelled by intent, and a crowd-trained model calls many of them neutral or sad.
- A FER-2013 7-class model and this one answer different questions: compare them on the same label set.
"""
