"""Shipping a dual-head run (one trunk, a FER+ and a FER-2013 head) into models/ with its twins and generated card."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import keras
import pandas as pd

from fer.analysis.probabilities import tta_scheme
from fer.data.loading import data_dir
from fer.modeling.files import MODELS_DIR
from fer.release.cards import markdown_table, per_class_table, percent, render
from fer.release.fer2013 import class_weighting_text, cpu_throughput, onnx_twin, schedule_text, strip_optimizer
from fer.release.ferplus import _evaluations, _scores


def ship_dual(
    run_dir: str | Path,
    data: str | Path | None = None,
    models_dir: str | Path = MODELS_DIR,
    name: str = "fer_dual",
    hardware: str | None = None,
    selection: str = "",
    prior_table: str | Path | None = None,
) -> dict:
    """Ship a dual run as models_dir/<name>.keras with its ONNX twins; evaluate it once on PublicTest through each
    head (FER+ majority, FER-2013 labels; plain, TTA, without train duplicates); write <name>.metrics.json and
    <name>_CARD.md. `prior_table`: benchmarks/eval_label_sets.py's CSV with --prior rows, shown on the card."""
    from fer.inference.models import load_model

    run, models_dir, data = Path(run_dir), Path(models_dir), data_dir(data)
    config = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    history = pd.read_csv(run / "history.csv")
    model_file = models_dir / f"{name}.keras"
    strip_optimizer(run / f"{config['checkpoint']}.keras", model_file)
    model = load_model(model_file)
    crowd, fer2013, evaluations = _evaluations(model, data, config.get("votes"))  # each head on its own labels
    metrics = {
        "model_file": model_file.name,
        "training_prior": summary["training_prior"],
        "onnx_twin": onnx_twin(model_file, data, summary["training_prior"]),
        "heads": {"ferplus": list(crowd.classes), "fer2013": list(fer2013.classes)},
        "params": int(model.count_params()),
        "test_split": f"PublicTest ({data.name}/test, {len(fer2013):,} faces)",
        "ferplus": _scores(evaluations["ferplus", False], evaluations["ferplus", True]),
        "fer2013": _scores(evaluations["fer2013", False], evaluations["fer2013", True]),
        "per_class": {head: evaluations[head, False].to_dict()["per_class"] for head in ("ferplus", "fer2013")},
        "validation": {
            "ferplus": round(float(history["val_ferplus_accuracy"].iloc[-1]), 4),
            "fer2013": round(float(history["val_fer2013_accuracy"].iloc[-1]), 4),
        },
        "selection": selection,
        "tta_scheme": tta_scheme(True),
        "epochs": len(history),
        "train_hours": round(float(history["seconds"].sum()) / 3600, 2),
        "hardware": hardware or f"{platform.machine()} CPU, {keras.backend.backend()} backend",
        "cpu_faces_per_second": round(cpu_throughput(load_model(model_file, engine="auto"))),
        "config": config,
    }
    (models_dir / f"{name}.metrics.json").write_text(json.dumps(metrics, indent=2))
    table = pd.read_csv(prior_table) if prior_table else None
    (models_dir / f"{name}_CARD.md").write_text(dual_card(metrics, evaluations, table))
    return metrics


def dual_card(metrics: dict, evaluations: dict, prior_table: pd.DataFrame | None = None) -> str:
    """The dual model's Markdown card (templates/dual_card.md), every number from `metrics` and its evaluations."""
    shown = ""
    if prior_table is not None:
        columns = [c for c in PRIOR_COLUMNS if c in prior_table]
        shown = markdown_table(prior_table[columns].set_index("set"))
    return render(
        "dual",
        **_result_fields(metrics, evaluations),
        **_recipe_fields(metrics),
        training_prior=markdown_table(pd.DataFrame(metrics["training_prior"]).T.rename_axis("head")),
        prior_table=shown,
    )


PRIOR_COLUMNS = (
    "set",
    "model",
    "prior",
    "ferplus_acc",
    "fer2013_acc",
    "ferplus_macro_recall",
    "fer2013_macro_recall",
    "wild_acc",
    "wild_macro_recall",
)


def _result_fields(metrics: dict, evaluations: dict) -> dict:
    """The card's results: both heads on PublicTest (plain, TTA, w/o duplicates), validation, per class."""
    fp, f13 = metrics["ferplus"], metrics["fer2013"]
    return {
        "model_file": metrics["model_file"],
        "stem": Path(metrics["model_file"]).stem,
        "ferplus_classes": ", ".join(metrics["heads"]["ferplus"]),
        "test_split": metrics["test_split"],
        "tta_scheme": metrics["tta_scheme"],
        "dups": fp["n_train_duplicates"],
        "n_ferplus": f"{fp['n']:,}",
        "n_fer2013": f"{f13['n']:,}",
        "fp_accuracy": percent(fp["accuracy"]),
        "fp_accuracy_tta": percent(fp["accuracy_tta"]),
        "fp_dedup": percent(fp["accuracy_without_train_duplicates"]),
        "fp_macro_f1": f"{fp['macro_f1']:.3f}",
        "fp_agreement": f"{fp['crowd_agreement']:.3f}",
        "f13_accuracy": percent(f13["accuracy"]),
        "f13_accuracy_tta": percent(f13["accuracy_tta"]),
        "f13_dedup": percent(f13["accuracy_without_train_duplicates"]),
        "f13_macro_f1": f"{f13['macro_f1']:.3f}",
        "val_ferplus": percent(metrics["validation"]["ferplus"]),
        "val_fer2013": percent(metrics["validation"]["fer2013"]),
        "per_class_ferplus": per_class_table(evaluations["ferplus", False]),
        "per_class_fer2013": per_class_table(evaluations["fer2013", False]),
        "params": f"{metrics['params']:,}",
        "faces_per_second": f"{metrics['cpu_faces_per_second']:,}",
        "selection": metrics["selection"]
        or "the final weights of a fixed cosine schedule (nothing chosen on PublicTest)",
    }


def _recipe_fields(metrics: dict) -> dict:
    """The card's training section: start, teachers, recipe."""
    config = metrics["config"]
    return {
        "architecture": config["model"],
        "split_seed": config["split_seed"],
        "init_weights": config.get("init_weights") or "a random initialisation",
        "epochs": metrics["epochs"],
        "train_hours": f"{metrics['train_hours']:.1f}",
        "hardware": metrics["hardware"],
        "label_smoothing": config["label_smoothing"],
        "distill_weight": config["distill_weight"],
        "teacher_tta": config["teacher_tta"] or "not",
        "ferplus_teacher": config.get("ferplus_teacher"),
        "fer2013_teacher": config.get("teacher"),
        "optimizer": config["optimizer"],
        "learning_rate": config["learning_rate"],
        "schedule": schedule_text(config),
        "batch_size": config["batch_size"],
        "weight_decay": config["weight_decay"],
        "class_weights": class_weighting_text(config["class_weighting"]),
        "augmentation": ", ".join(f"{k}={v}" for k, v in config["augmentation"].items()),
    }


def package_default(model_file: str | Path, package_dir: str | Path | None = None) -> list[Path]:
    """Make `model_file`'s ONNX twins (float32 and int8, written by ship) the package's default model: copied to
    fer/assets/model/default[.int8].onnx with their metadata and the model's training prior. Set
    fer.modeling.files.DEFAULT_MODEL_NAME to the file's name too (tests check the two agree)."""
    import shutil

    from fer.inference.onnx_model import fresh_twin
    from fer.modeling.files import model_metadata, packaged_default

    model_file = Path(model_file)
    prior = model_metadata(model_file).get("training_prior")
    written = []
    for precision in ("float32", "int8"):
        twin = fresh_twin(model_file, precision)
        if twin is None:
            raise FileNotFoundError(f"{model_file}: no up-to-date {precision} ONNX twin; ship it first")
        target = (
            packaged_default(precision) if package_dir is None else Path(package_dir) / packaged_default(precision).name
        )
        shutil.copyfile(twin, target)
        info = json.loads(twin.with_suffix(".json").read_text())
        info.update(
            file=target.name,
            training_prior=prior,
            twin_of=f"models/{model_file.name} (the research store; predicting needs only this twin): the default",
        )
        target.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
        written.append(target)
    return written
