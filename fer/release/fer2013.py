"""Shipping FER-2013 runs into models/: export, measure, and write the model cards.

`ship(run_dir, data)` writes into models/:
    fer_emotion.keras          the run's model (its `checkpoint`) without optimizer state (loads with safe_mode)
    fer_emotion.metrics.json   every number of the card, machine-readable (tests read it)
    fer_emotion_confusion.png  row-normalised PublicTest confusion matrix
    MODEL_CARD.md              data, architecture, recipe, training time, results, limitations
`ship_ensemble([run_dir, ...], data)` ships several runs as one ensemble (`models/fer_ensemble.json`, the
FER-2013 four; the default model, `fer.modeling.files.DEFAULT_MODEL_NAME`, is chosen apart: README):
    fer_ensemble/<run-id>.keras, fer_ensemble.json, fer_ensemble.metrics.json, fer_ensemble_CARD.md
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from fer.analysis import plots
from fer.analysis.evaluation import Evaluation, evaluate
from fer.analysis.probabilities import mean_prior, predict_proba, tta_scheme
from fer.data.loading import data_dir, load_split, train_images_beside
from fer.modeling.files import DEFAULT_MODEL_NAME, MODELS_DIR, SINGLE_MODEL_NAME
from fer.release.cards import markdown_table, per_class_table, render, results_rows


def strip_optimizer(src: str | Path, dst: str | Path) -> keras.Model:
    """Copy a checkpoint without its optimizer state: a third of the size, same predictions."""
    model = keras.models.load_model(src, safe_mode=True, compile=False)  # its optimizer is left behind anyway
    bare = keras.Model.from_config(model.get_config())
    bare.set_weights(model.get_weights())
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    bare.save(dst)
    return bare


def _test_metrics(n_test: int, plain: Evaluation, tta: Evaluation) -> dict:
    """The test-split numbers every card reports: plain and TTA, and without the faces that copy train."""
    return {
        "test_split": "PublicTest (fer2013/test, 3,589 faces)" if n_test == 3589 else f"test ({n_test} faces)",
        "accuracy": round(plain.accuracy, 4),
        "accuracy_tta": round(tta.accuracy, 4),
        "macro_f1": round(plain.macro_f1, 4),
        "macro_f1_tta": round(tta.macro_f1, 4),
        "ece": round(plain.ece, 4),
        "without_train_duplicates": {
            "plain": plain.to_dict()["without_train_duplicates"],
            "tta": tta.to_dict()["without_train_duplicates"],
        },
        "per_class": plain.to_dict()["per_class"],
    }


def cpu_throughput(model: keras.Model, n: int = 2048, batch_size: int = 256, repeats: int = 3) -> float:
    """Faces per second of batched inference (best of `repeats`, after a warm-up)."""
    faces = np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)
    predict_proba(model, faces[:batch_size], batch_size=batch_size)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predict_proba(model, faces, batch_size=batch_size)
        best = min(best, time.perf_counter() - start)
    return n / best


def _selection(config: dict, summary: dict, epochs_done: int) -> str:
    """How the shipped weights were chosen, in words, from the run's own settings."""
    checkpoint = config.get("checkpoint", "best")
    if checkpoint == "final":
        return (
            f"the final weights of a fixed {epochs_done}-epoch schedule: nothing was selected on PublicTest "
            f"(the {config.get('val_fraction', 0.1):.0%} validation split held out of train was only watched)"
        )
    if config.get("validation") == "test":
        return (
            f"the best of {epochs_done} epochs on PublicTest itself (`validation: test`), which also drove the "
            "learning-rate cuts: **the PublicTest figures below are optimistic**, since the reported split chose them"
        )
    return (
        f"the best of {epochs_done} epochs (epoch {summary.get('best_epoch', '?')}) on a "
        f"{config.get('val_fraction', 0.1):.0%} validation split held out of train; nothing was selected on PublicTest"
    )


def class_weighting_text(value: bool | float) -> str:
    if value == 1:  # True too
        return '"balanced"'
    return f'"balanced" ** {value}' if value else "off"


RANDOM_INIT = "random init"


def starting_network(config: dict, shipped_as: str) -> str:
    """The file a run's `init_weights` named ("the previous X" when this ship overwrites that very
    file; the run, when it is a run folder's checkpoint), or RANDOM_INIT for a run trained from scratch."""
    if not config.get("init_weights"):
        return RANDOM_INIT
    path = Path(config["init_weights"])
    if path.name == shipped_as:
        return f"the previous `{path.name}`"
    if path.parent.name == "train":  # <sweep>/<run-id>/train/final.keras: "final.keras" alone says nothing
        from fer.pipeline import run_id_of

        return f"run `{run_id_of(path.parent)}`"
    return f"`{path.name}`"


def _initialisation(config: dict, shipped_as: str) -> str:
    """Where the run's weights started: nowhere pretrained, or a model of ours (`init_weights`)."""
    start = starting_network(config, shipped_as)
    if start == RANDOM_INIT:
        return "no pretrained weights"
    return (
        f"no externally pretrained weights; started from the weights of {start} "
        "(`init_weights`: a warm restart or fine-tuning; that network's own training time is not counted below)"
    )


def schedule_text(config: dict) -> str:
    if config.get("lr_schedule", "plateau") == "cosine":
        return f"{config.get('warmup_epochs', 0)} warm-up epochs, then cosine decay to 0"
    early = config.get("early_stopping_patience")
    return (
        f"ReduceLROnPlateau patience {config['reduce_lr_patience']} x{config['reduce_lr_factor']}, "
        f"early stopping {'patience ' + str(early) if early is not None else 'off'}"
    )


def ship(
    run_dir: str | Path,
    data: str | Path | None = None,
    models_dir: str | Path = MODELS_DIR,
    name: str = SINGLE_MODEL_NAME,
    hardware: str | None = None,
    notes: str = "",
    throughput_faces: int = 2048,
) -> dict:
    """Export the run's model to models_dir/name, evaluate it once on the test split, write the card.

    The run's model is its `checkpoint` (best.keras or final.keras, see fer.modeling.training). The card
    says how it was selected, and reports the test split with and without the faces that
    duplicate training images. `data` defaults to fer.data_dir().
    """
    run_dir, models_dir = Path(run_dir), Path(models_dir)
    data = data_dir(data)
    stem = Path(name).stem
    config = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    history = pd.read_csv(run_dir / "history.csv")
    epochs_done, train_seconds = len(history), float(history["seconds"].sum())
    checkpoint = f"{config.get('checkpoint', 'best')}.keras"

    model = strip_optimizer(run_dir / checkpoint, models_dir / name)
    test = load_split(data, "test")
    train_images = train_images_beside(data, "test")
    plain = evaluate(model, test.images, test.labels, train_images=train_images)
    tta = evaluate(model, test.images, test.labels, tta=True, train_images=train_images)
    fig = plots.confusion_heatmap(plain.confusion_normalized.round(2), normalized=True)
    plots.save(fig, models_dir, f"{stem}_confusion")
    hardware = hardware or f"{platform.machine()} CPU, {keras.backend.backend()} backend"
    metrics = {
        "model_file": name,
        "architecture": config["model"],
        "params": int(model.count_params()),
        "file_mb": round((models_dir / name).stat().st_size / 2**20, 2),
        **_test_metrics(len(test), plain, tta),
        "checkpoint": checkpoint,
        "selection": _selection(config, summary, epochs_done),
        "epochs": epochs_done,
        "best_epoch": summary.get("best_epoch"),
        "precision": summary.get("precision", "float32"),
        "train_samples": summary.get("train_samples"),
        "val_samples": summary.get("val_samples") if config.get("validation") == "train" else 0,
        "tta_scheme": tta_scheme(True),
        "train_seconds": round(train_seconds),
        "hardware": hardware,
        "cpu_faces_per_second": round(cpu_throughput(model, n=throughput_faces)),
        "onnx_twin": onnx_twin(models_dir / name, data, summary.get("training_prior")),
        "training_prior": summary.get("training_prior"),  # the class shares its loss saw: what prior= moves from
        "config": config,
    }
    (models_dir / f"{stem}.metrics.json").write_text(json.dumps(metrics, indent=2))
    (models_dir / "MODEL_CARD.md").write_text(model_card(metrics, plain, tta, notes))
    return metrics


def onnx_twin(model_file: Path, data: str | Path | None = None, training_prior: dict | None = None) -> str | None:
    """Write a shipped model's ONNX twins, float32 (what predict_emotion runs: fer.inference.onnx_model) and int8
    (engine "int8", calibrated on training faces of `data`), so that neither is left stale by a new ship; the float32
    one's path relative to the model's folder, or None, with a one-line warning, where the export packages are
    missing. `training_prior`: the model's, recorded in both twins (prior= re-weights from it)."""
    import importlib.util
    import warnings

    from fer.release.exporting import write_twin

    missing = [m for m in ("tf2onnx", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        warnings.warn(
            f"{model_file.name} shipped without its ONNX twin ({', '.join(missing)} not installed: "
            f"pip install -e '.[onnx]', then python -m fer export --twin --model {model_file}); "
            "predict_emotion runs it on Keras meanwhile",
            stacklevel=2,
        )
        return None
    write_twin(model_file, "int8", data=data, training_prior=training_prior)
    return write_twin(model_file, training_prior=training_prior).relative_to(model_file.parent).as_posix()


def model_card(metrics: dict, plain: Evaluation, tta: Evaluation, notes: str = "") -> str:
    """The Markdown model card (templates/fer2013_card.md), every word and number from `metrics` and the evaluations."""
    config, name = metrics["config"], metrics["model_file"]
    return render(
        "fer2013",
        name=name,
        stem=Path(name).stem,
        default_model=DEFAULT_MODEL_NAME,
        test_split=metrics["test_split"],
        results=results_rows(plain, tta, f"`--tta`: {metrics['tta_scheme']}"),
        ece=f"{plain.ece:.3f}",
        selection=metrics["selection"],
        tta_scheme=metrics["tta_scheme"],
        per_class=per_class_table(plain),
        architecture=config["model"],
        params=f"{metrics['params']:,}",
        file_mb=metrics["file_mb"],
        faces_per_second=f"{metrics['cpu_faces_per_second']:,}",
        hardware=metrics["hardware"],
        initialisation=_initialisation(config, name),
        train_samples=metrics["train_samples"] or "?",
        val_samples=metrics["val_samples"] or 0,
        validation=config["validation"],
        options=f" with {config['model_options']}" if config.get("model_options") else "",
        optimizer=config["optimizer"],
        learning_rate=config["learning_rate"],
        schedule=schedule_text(config),
        batch_size=config["batch_size"],
        label_smoothing=config["label_smoothing"],
        weight_decay=config["weight_decay"],
        class_weights=class_weighting_text(config["class_weighting"]),
        augmentation=", ".join(f"{k}={v}" for k, v in config["augmentation"].items()),
        seed=config["seed"],
        precision=metrics["precision"],
        epochs=metrics["epochs"],
        train_hours=f"{metrics['train_seconds'] / 3600:.1f}",
        own_hours=" (this run only)" if config.get("init_weights") else "",
        notes=notes,
    )


def _same_weights_in(models_dir: Path, model) -> Path | None:
    """A .keras file directly in `models_dir` holding exactly `model`'s weights, or None."""
    from fer.inference.models import load_model

    weights = model.get_weights()
    for path in sorted(models_dir.glob("*.keras")):
        try:
            other = load_model(path).get_weights()
        except Exception:  # not a loadable model: it is not this one
            continue
        if len(other) == len(weights) and all(np.array_equal(a, b) for a, b in zip(other, weights)):
            return path
    return None


def ship_ensemble(
    run_dirs: list[str | Path],
    data: str | Path | None = None,
    models_dir: str | Path = MODELS_DIR,
    name: str = "fer_ensemble",
    hardware: str | None = None,
    selection: str = "",
    throughput_faces: int = 2048,
) -> dict:
    """Ship several runs as one ensemble; evaluate it once; write its card.

    Writes models_dir/<name>/<run-id>.keras (each member without optimizer state, one file each,
    so none comes near the 16 MB limit), models_dir/<name>.json (the ensemble: the mean of the
    members' probabilities, loadable wherever a model path is accepted), <name>.metrics.json and
    <name>_CARD.md. Each member and the ensemble are evaluated once on the test split (plain, with
    TTA, and without the faces that copy training images). `selection`: how the members were
    chosen (on a validation split, never on the test split), for the card.
    """
    from fer.inference.models import load_model
    from fer.modeling.ensembling import ensemble

    models_dir, data = Path(models_dir), data_dir(data)
    test = load_split(data, "test")
    train_images = train_images_beside(data, "test")
    members, paths, priors = [], [], []
    for run in map(Path, run_dirs):
        path, row, prior = _ensemble_member(run, models_dir, name, test, train_images)
        members.append(row)
        paths.append(path)
        priors.append(prior)
    spec = models_dir / f"{name}.json"
    ensemble(paths, spec)
    model = load_model(spec)
    plain = evaluate(model, test.images, test.labels, train_images=train_images)
    tta = evaluate(model, test.images, test.labels, tta=True, train_images=train_images)
    hardware = hardware or f"{platform.machine()} CPU, {keras.backend.backend()} backend"
    metrics = {
        "model_file": spec.name,
        "members": members,
        "params": int(model.count_params()),
        **_test_metrics(len(test), plain, tta),
        "selection": selection,
        "tta_scheme": tta_scheme(True),
        "train_hours": round(sum(m["train_hours"] for m in members), 2),
        "hardware": hardware,
        "cpu_faces_per_second": round(cpu_throughput(model, n=throughput_faces)),
        "training_prior": mean_prior(priors),  # it averages the members' probabilities: their priors' mean
    }
    (models_dir / f"{name}.metrics.json").write_text(json.dumps(metrics, indent=2))
    (models_dir / f"{name}_CARD.md").write_text(ensemble_card(metrics, plain, tta))
    return metrics


def _ensemble_member(run: Path, models_dir: Path, name: str, test, train_images) -> tuple[Path, dict, dict | None]:
    """(member file, card row, its training prior): a run exported to models_dir/<name>/<run-id>.keras (or the
    shipped file with the same weights, referenced instead of copied) and scored once on the test split."""
    from fer.pipeline import run_id_of

    config = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    history = pd.read_csv(run / "history.csv")
    path = models_dir / name / f"{run_id_of(run)}.keras"
    options = f" {config['model_options']}" if config.get("model_options") else ""
    model = strip_optimizer(run / f"{config.get('checkpoint', 'best')}.keras", path)
    shipped = _same_weights_in(models_dir, model)
    if shipped is not None:  # e.g. the single model is a member: reference it rather than commit it twice
        path.unlink()
        path = shipped
    result = evaluate(model, test.images, test.labels, train_images=train_images)
    dedup = result.deduplicated
    row = {
        "file": path.relative_to(models_dir).as_posix(),
        "architecture": config["model"] + options,
        "params": int(model.count_params()),
        "seed": config["seed"],
        "class weights": class_weighting_text(config["class_weighting"]),
        # A warm restart's hours are its own; the network it started from is named here.
        "starts from": starting_network(config, path.name),
        "epochs": len(history),
        "train_hours": round(float(history["seconds"].sum()) / 3600, 2),
        "precision": summary.get("precision", "float32"),
        "accuracy": round(result.accuracy, 4),
        "accuracy_without_train_duplicates": round(dedup.accuracy, 4) if dedup is not None else None,
        "macro_f1": round(result.macro_f1, 4),
    }
    return path, row, summary.get("training_prior")


def ensemble_card(metrics: dict, plain: Evaluation, tta: Evaluation) -> str:
    """The ensemble's Markdown card (templates/ensemble_card.md), generated from `metrics` and its evaluations."""
    members = (
        pd.DataFrame(metrics["members"])
        .rename(columns={"accuracy": "PublicTest", "accuracy_without_train_duplicates": "w/o dups"})
        .set_index("file")
    )
    warm = any(m.get("starts from", RANDOM_INIT) != RANDOM_INIT for m in metrics["members"])
    return render(
        "ensemble",
        model_file=metrics["model_file"],
        stem=Path(metrics["model_file"]).stem,
        n_members=len(members),
        test_split=metrics["test_split"],
        results=results_rows(plain, tta, metrics["tta_scheme"]),
        ece=f"{plain.ece:.3f}",
        selection=metrics["selection"].rstrip(".") or "as listed",
        per_class=per_class_table(plain),
        members=markdown_table(members),
        train_hours=f"{metrics['train_hours']:.1f}",
        restarts=" (not counting the networks that warm-restarted members started from)" if warm else "",
        hardware=metrics["hardware"],
        faces_per_second=f"{metrics['cpu_faces_per_second']:,}",
        single_model=SINGLE_MODEL_NAME,
    )
