"""Training a registered model into a run folder that survives interruption.

A run folder holds:
    config.json         every setting of the run (re-running with it reproduces the run)
    history.csv         one row per finished epoch: losses, accuracies, learning rate, seconds
    best.keras          the checkpoint with the best monitored value (val_accuracy)
    final.keras         the weights after the last epoch
                        (both float32 whatever `precision` trained them; `checkpoint` in
                        config.json says which of the two is the run's model)
    summary.json        written when training ends: epochs done, best score, time, throughput
    backup/             crash-safe weights + optimizer state of the last finished epoch

Calling `train` again on an unfinished folder resumes after its last finished epoch
(weights, optimizer state, learning rate and the early-stopping and learning-rate
plateau counters restored, no finished epoch lost);
on a finished folder it loads and returns the result without training.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import pandas as pd

from fer.data.loading import FaceSet
from fer.modeling import dual_head
from fer.modeling.checkpoints import (
    EpochBackup,
    TrainResult,
    callbacks,
    chosen_model,
    finished,
    read_history,
    save_models,
)
from fer.modeling.config import TrainConfig, resolve_config
from fer.modeling.devices import data_parallel, resolve_precision, scaled_for_devices
from fer.modeling.network import build_for_training, compile_model, load_init_weights
from fer.modeling.run_data import RunTargets, fit_inputs, run_targets, split_data


@dataclass(frozen=True)
class _Run:
    """One run as it trains: its settings as given (`config`) and as trained (`trained`: batch size and learning
    rate scaled for the devices), its folder, precision, device count and data."""

    config: TrainConfig
    trained: TrainConfig
    run_dir: Path
    precision: str
    n_devices: int
    train_set: FaceSet
    val_set: FaceSet

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.train_set) // self.trained.batch_size)


def train(
    config: TrainConfig | dict | None = None,
    out_dir: str | Path = "runs/latest",
    train_faces: FaceSet | None = None,
    val_faces: FaceSet | None = None,
    verbose: str | int = "auto",
    recipe: str | None = None,
    **overrides,
) -> TrainResult:
    """Train `config.model` and write the run folder `out_dir` (see module doc).

    `config` is a TrainConfig, a dict of its fields, or None: TrainConfig's defaults, the seed project's recipe
    (the documented floor, reproduced as it was). `recipe` names a starting point instead, as `python -m fer train
    --recipe` does: "shipped" (the CLI's and notebook 02's default), "dual", "seed" (fer.modeling.recipes).
    Keyword `overrides` replace single fields (train(recipe="shipped", epochs=5)). Data comes from `config.data`
    unless FaceSets are passed. Interrupted runs resume; a finished one is returned as it is. A warm-up as long as
    the run is cut to none (a 1-epoch run is one epoch).
    """
    config = resolve_config(config, overrides, recipe)
    run_dir = Path(out_dir)
    done = finished(run_dir, config)
    if done is not None:
        return done
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    train_set, val_set = split_data(config, train_faces, val_faces)
    distribution = data_parallel(config)
    n_devices = int(distribution.device_mesh.devices.size) if distribution is not None else 1
    trained = scaled_for_devices(config, n_devices)
    run = _Run(config, trained, run_dir, resolve_precision(config.precision), n_devices, train_set, val_set)
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(distribution)
    try:
        model, epochs_done = _prepared_model(run)
        steps, early = callbacks(config, run_dir, epochs_done)
        # After the model is built: loading a teacher draws from Keras' global seed, and the initial weights must not
        # depend on whether the run has one.
        targets = run_targets(config, train_set, run_dir)
        inputs = fit_inputs(config, trained.batch_size, (train_set, val_set), targets, n_devices)
        inputs["x"].set_epoch(epochs_done)
        start = time.perf_counter()
        model.fit(**inputs, epochs=config.epochs, initial_epoch=epochs_done, callbacks=steps, verbose=verbose)
        wall = time.perf_counter() - start
        save_models(model, trained, run_dir, run.precision, run.steps_per_epoch)
    finally:
        keras.distribution.set_distribution(previous)
    history = read_history(run_dir / "history.csv")
    summary = _summary(
        run, model, history, stopped_early=early is not None and early.stopped_epoch > 0, targets=targets, wall=wall
    )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return TrainResult(chosen_model(run_dir, config), history, run_dir, summary)


def _prepared_model(run: _Run) -> tuple[keras.Model, int]:
    """(compiled model, finished epochs): resumed from the run's backup, else started from `init_weights`."""
    config, run_dir = run.config, run.run_dir
    model = build_for_training(config, run.precision)
    compile_model(model, run.trained, run.steps_per_epoch)
    done = EpochBackup.restore(model, run_dir / "backup")
    if done:
        print(f"Resuming {run_dir} after epoch {done} of {config.epochs}", flush=True)
    elif config.init_weights:
        load_init_weights(model, config)
    # Written once the run can start (data read, model built): a setting that fails above leaves no
    # config.json behind to refuse the corrected re-run as "a run with different settings".
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    return model, done


def _summary(run: _Run, model, history: pd.DataFrame, *, stopped_early: bool, targets: RunTargets, wall: float) -> dict:
    """summary.json: what the run did (epochs, best score, time, throughput, classes, its learned prior)."""
    config = run.config
    classes = config.classes
    seconds = history["seconds"].sum() if "seconds" in history else wall
    monitored = config.monitor in history and len(history)
    weights = targets.class_weight
    return {
        "model": config.model,
        "params": int(model.count_params()),
        "epochs_done": int(len(history)),
        "stopped_early": bool(stopped_early),
        f"best_{config.monitor}": float(history[config.monitor].max()) if monitored else None,
        "best_epoch": int(history.loc[history[config.monitor].idxmax(), "epoch"]) + 1 if monitored else None,
        "train_samples": int(len(run.train_set)),
        "val_samples": int(len(run.val_set)),
        "classes": {n: list(c) for n, c in dual_head.HEADS.items()} if config.labels == "dual" else list(classes),
        "class_weights": {classes[k]: round(v, 4) for k, v in weights.items()} if weights else None,
        "precision": run.precision,
        "devices": run.n_devices,
        "global_batch_size": run.trained.batch_size,
        "checkpoint": f"{config.checkpoint}.keras",
        "train_seconds": round(float(seconds), 1),
        "images_per_second": round(len(run.train_set) * len(history) / max(float(seconds), 1e-9), 1),
        "training_prior": targets.prior(),
    }
