"""A run folder that survives interruption: the crash-safe end-of-epoch backup, the callbacks that log, checkpoint
and cut the learning rate, the float32 model files, and a finished run read back."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import pandas as pd

from fer.data.augment import allow_xla_on_jax
from fer.modeling import dual_head
from fer.modeling.config import TrainConfig, check_same_config
from fer.modeling.network import save_float32


@dataclass
class TrainResult:
    """A trained run: its model (the `checkpoint` file), history table, folder and summary."""

    model: keras.Model
    history: pd.DataFrame
    run_dir: Path
    summary: dict


class _EpochInfo(keras.callbacks.Callback):
    """Adds learning rate and epoch wall time to the logs, so history.csv records them."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            logs["seconds"] = round(time.perf_counter() - self._start, 2)


class EpochBackup(keras.callbacks.Callback):
    """Crash-safe end-of-epoch backup of weights and optimizer state.

    Keras' BackupAndRestore overwrites one weights file in place, so a kill while it
    writes leaves a corrupt backup and the run cannot resume (our resume test hit
    exactly that). Here each epoch goes to a new file, and only then does an
    atomically replaced `state.json` point at it: whenever the process dies, the
    pointer names a complete file.

    `stateful` callbacks (EarlyStopping, ReduceLROnPlateau) have their counters backed up
    too: Keras resets them when `fit` starts, so without this a resumed run would wait a
    fresh `patience` and part ways with the run that was never interrupted.
    """

    COUNTERS = ("best", "wait", "cooldown_counter", "best_epoch")

    def __init__(self, backup_dir: Path, stateful: dict[str, keras.callbacks.Callback] | None = None):
        super().__init__()
        self.backup_dir = Path(backup_dir)
        self.stateful = stateful or {}

    @staticmethod
    def _read_state(backup_dir: Path) -> dict:
        """The last finished epoch's state.json, or {} when there is no backup."""
        state_path = Path(backup_dir) / "state.json"
        return json.loads(state_path.read_text()) if state_path.is_file() else {}

    def on_train_begin(self, logs=None):
        # This callback goes last, so the others have already reset themselves here.
        saved = self._read_state(self.backup_dir).get("callbacks", {})
        for name, callback in self.stateful.items():
            for attr, value in saved.get(name, {}).items():
                setattr(callback, attr, value)

    def _counters(self) -> dict:
        def plain(value):
            return value if value is None or isinstance(value, int) else float(value)

        return {
            name: {a: plain(getattr(cb, a)) for a in self.COUNTERS if hasattr(cb, a)}
            for name, cb in self.stateful.items()
        }

    def on_epoch_end(self, epoch, logs=None):
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        weights = f"epoch-{epoch + 1}.weights.h5"
        self.model.save_weights(self.backup_dir / weights)  # includes the optimizer's variables
        tmp = self.backup_dir / "state.json.tmp"
        tmp.write_text(json.dumps({"epochs_done": epoch + 1, "weights": weights, "callbacks": self._counters()}))
        os.replace(tmp, self.backup_dir / "state.json")
        for old in self.backup_dir.glob("epoch-*.weights.h5"):
            if old.name != weights:
                old.unlink()

    def on_train_end(self, logs=None):
        shutil.rmtree(self.backup_dir, ignore_errors=True)

    @staticmethod
    def restore(model: keras.Model, backup_dir: Path) -> int:
        """Load the last backup into `model` (compiled); return the number of finished epochs."""
        state = EpochBackup._read_state(backup_dir)
        if not state:
            return 0
        model.optimizer.build(model.trainable_variables)  # so its variables exist to be loaded
        model.load_weights(Path(backup_dir) / state["weights"])
        return int(state["epochs_done"])


def callbacks(config: TrainConfig, run_dir: Path, done: int) -> tuple[list, keras.callbacks.Callback | None]:
    """(callbacks, the early-stopping one or None): logging, checkpoint, plateau cuts, and the crash-safe backup.

    Resume: history rows written after the last backup are dropped (the process died between logging an epoch
    and backing it up), and the checkpoint keeps the best value so far."""
    history_path = run_dir / "history.csv"
    history = read_history(history_path)
    if not history.empty:
        history = history[history["epoch"] < done]
        history.to_csv(history_path, index=False)
    checkpoint = keras.callbacks.ModelCheckpoint(
        run_dir / "best.keras", monitor=config.monitor, mode="max", save_best_only=True
    )
    if not history.empty and config.monitor in history:
        checkpoint.best = float(history[config.monitor].max())  # don't overwrite a better checkpoint
    callbacks = [_EpochInfo(), keras.callbacks.CSVLogger(history_path, append=done > 0), checkpoint]
    if config.labels == "dual":  # first: the CSV log and the checkpoint read the val_accuracy it writes
        callbacks.insert(0, dual_head.MeanValAccuracy())
    stateful = {}
    if config.reduce_lr_patience is not None and config.lr_schedule == "plateau":
        stateful["reduce_lr"] = keras.callbacks.ReduceLROnPlateau(
            config.monitor,
            mode="max",
            factor=config.reduce_lr_factor,
            patience=config.reduce_lr_patience,
            min_lr=config.min_learning_rate,
        )
    if config.early_stopping_patience is not None and config.lr_schedule == "plateau":
        stateful["early_stopping"] = keras.callbacks.EarlyStopping(
            config.monitor, mode="max", patience=config.early_stopping_patience, restore_best_weights=False
        )
    # The backup goes last: an epoch is only "finished" once everything above has seen it.
    callbacks += [*stateful.values(), keras.callbacks.TerminateOnNaN(), EpochBackup(run_dir / "backup", stateful)]
    return callbacks, stateful.get("early_stopping")


def read_history(path: Path) -> pd.DataFrame:
    """history.csv as a table (empty before the first finished epoch)."""
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()


def chosen_model(run_dir: Path, config: TrainConfig) -> keras.Model:
    """The run's `checkpoint` file as the model train() returns; on JAX it predicts XLA-compiled, as it trained."""
    return allow_xla_on_jax(keras.models.load_model(run_dir / f"{config.checkpoint}.keras", safe_mode=True))


def finished(run_dir: Path, config: TrainConfig) -> TrainResult | None:
    """The result of a run folder that already holds this finished run (None: train or resume it)."""
    if not (run_dir / "config.json").is_file():
        return None
    check_same_config(run_dir, config)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file() or (run_dir / "backup").exists():
        return None
    summary = json.loads(summary_path.read_text())
    if summary["epochs_done"] < config.epochs and not summary.get("stopped_early"):
        return None  # a finished run given more epochs goes on
    return TrainResult(chosen_model(run_dir, config), read_history(run_dir / "history.csv"), run_dir, summary)


def save_models(model, run: TrainConfig, run_dir: Path, precision: str, steps_per_epoch: int) -> None:
    """final.keras and best.keras as float32 files, whatever precision trained them."""
    save_float32(model, run, run_dir / "final.keras", steps_per_epoch)
    best_path = run_dir / "best.keras"
    if not best_path.is_file():  # monitored value never became finite (e.g. NaN loss)
        save_float32(model, run, best_path, steps_per_epoch)
    elif precision != "float32":  # the checkpoint callback saved the mixed-precision model
        save_float32(keras.models.load_model(best_path, safe_mode=True), run, best_path, steps_per_epoch)
