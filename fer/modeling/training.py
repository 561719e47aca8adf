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
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from fer.analysis.evaluation import predict_proba, tta_scheme
from fer.data import ferplus
from fer.data.augment import Augmentation, allow_xla_on_jax
from fer.data.batches import MIXES, FaceBatches, to_model_input
from fer.data.loading import EMOTIONS, FaceSet, class_weights, data_dir, load_split, train_val_split
from fer.data.quality import duplicates_of
from fer.errors import DataError
from fer.modeling import dual_head
from fer.modeling.architectures import build_model, check_model_options
from fer.modeling.files import load_network
from fer.modeling.recipes import RECIPES, SHIPPED  # noqa: F401  (re-exported: fer.modeling.training.RECIPES)

PRECISIONS = ("auto", "float32", "bfloat16")
# How a run spreads over devices: "auto" = data parallel over every local accelerator on JAX when there are
# several (one device otherwise); "none" = one device; "data_parallel" = keras.distribution.DataParallel, required.
DISTRIBUTE = ("auto", "none", "data_parallel")
# Which labels a run learns: FER-2013's own (7 classes), FER+'s crowd votes (8 classes, fer.data.ferplus), or
# both at once: "dual", one trunk with a FER+ head and a FER-2013 head (fer.modeling.dual_head).
LABELS = ("fer2013", "ferplus_majority", "ferplus_votes", "dual")


def classes_of(config: TrainConfig) -> tuple[str, ...]:
    """The class names (output order) of the model `config` trains (a dual run's: its FER+ head's)."""
    return ferplus.FERPLUS_CLASSES if config.labels.startswith("ferplus") or config.labels == "dual" else EMOTIONS


def native_bfloat16() -> bool:
    """Whether this machine computes bfloat16 natively: a GPU (JAX), or a CPU with AVX512_BF16 or AMX.

    Elsewhere bfloat16 is emulated and slower than float32, so "auto" picks float32 there.
    """
    if keras.backend.backend() == "jax":
        import jax

        if jax.devices()[0].platform == "gpu":
            return True
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to tell, stay with float32
        return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """ "auto" -> "bfloat16" where native, else "float32"; the others pass through."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return precision


def build_for_training(config: TrainConfig, precision: str = "float32") -> keras.Model:
    """`config`'s model with its augmentation, its layers computing in `precision`.

    bfloat16 means Keras' "mixed_bfloat16" policy: float32 weights, bfloat16 compute,
    and a float32 softmax (the output layer pins its dtype), so the loss stays float32.
    """
    policy = {"float32": "float32", "bfloat16": "mixed_bfloat16"}[precision]
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = build_model(
            config.model,
            augmentation=Augmentation.from_dict(config.augmentation),
            seed=config.seed,
            **{"n_classes": len(classes_of(config)), **config.model_options},
        )
        return dual_head.add_heads(model) if config.labels == "dual" else model
    finally:
        keras.config.set_dtype_policy(previous)


def save_float32(model: keras.Model, config: TrainConfig, path: Path, steps_per_epoch: int = 1) -> None:
    """Save `model` as a float32 model: it loads and predicts in float32 on any machine.

    A mixed-precision model is rebuilt in float32 and takes its (float32) weights and, when it
    was compiled, its optimizer state (so a saved final.keras can go on training).
    """
    if model.dtype_policy.name != "float32" or any(layer.dtype_policy.name != "float32" for layer in model.layers):
        plain = build_for_training(config, "float32")
        plain.set_weights(model.get_weights())
        if getattr(model, "optimizer", None) is not None:
            compile_model(plain, config, steps_per_epoch)
            plain.optimizer.build(plain.trainable_variables)
            for mine, theirs in zip(plain.optimizer.variables, model.optimizer.variables):
                mine.assign(theirs)
        model = plain
    model.save(path)


@dataclass
class TrainConfig:
    """Every setting of a training run. The defaults are the seed project's recipe (the ~58% baseline);
    `TrainConfig(**RECIPES["shipped"])` is the shipped single network's (what `python -m fer train` runs)."""

    model: str = "seed"
    model_options: dict = field(default_factory=dict)
    data: str | None = None  # None: fer.data_dir() ($FER2013_DIR, else data/fer2013)
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adam"  # adam | adamw | sgd (Nesterov momentum)
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    # Class weights: True (= 1.0) sklearn's "balanced", False (= 0) none, a float p: balanced ** p
    # (0.5 up-weights rare classes less: disgust ~3x instead of ~9x; see fer.class_weights).
    class_weighting: bool | float = True
    augmentation: dict = field(default_factory=lambda: Augmentation().to_dict())
    # "train": hold out val_fraction of train (stratified, without copies of test images);
    # "test": only watch the test split, allowed where nothing is chosen on it (cosine schedule, final weights).
    validation: str = "train"
    val_fraction: float = 0.1
    # Seeds the validation split (and a max_train_samples subset) apart from `seed` (initialisation,
    # shuffling, augmentation): ensemble members with different seeds share one clean validation split.
    split_seed: int = 42
    max_train_samples: int | None = None  # subsample train (stratified) for quick runs
    seed: int = 42
    monitor: str = "val_accuracy"
    early_stopping_patience: int | None = 15  # None: off
    reduce_lr_patience: int | None = 5  # None: off
    reduce_lr_factor: float = 0.5
    min_learning_rate: float = 1e-6
    # "plateau": ReduceLROnPlateau on `monitor`; "cosine": linear warm-up for `warmup_epochs`,
    # then cosine decay to 0 at `epochs` (a fixed schedule: its final weights need no selection).
    lr_schedule: str = "plateau"
    warmup_epochs: int = 0
    # Which weights are the run's model: "best" (best `monitor` epoch on the validation split)
    # or "final" (last epoch of a fixed schedule). Never select on the test split you report.
    checkpoint: str = "best"
    # "auto": bfloat16 mixed precision where the CPU/GPU computes bf16 natively, else float32.
    precision: str = "auto"
    # Distillation: learn from a teacher model's probabilities (e.g. an ensemble's .keras file).
    # Targets = (1 - distill_weight) * one-hot label + distill_weight * teacher probabilities
    # sharpened or softened by temperature T (p ** (1 / T), renormalised; T > 1 softens).
    teacher: str | None = None
    distill_weight: float = 0.5
    distill_temperature: float = 1.0
    # Test-time augmentation for the teacher's probabilities ("flip", "shift"; False: the faces only):
    # a TTA-averaged teacher is a more accurate teacher, computed once before training.
    teacher_tta: bool | str = False
    # Dual runs (labels="dual"): `teacher` teaches the FER-2013 head, `ferplus_teacher` (e.g. models/ferplus.json)
    # the FER+ head; each head's targets mix its labels and its teacher by distill_weight.
    ferplus_teacher: str | None = None
    # Start from the weights of a trained model of the same architecture (a .keras file, e.g.
    # models/fer_emotion.keras) instead of a random initialisation: fine-tuning on your own faces,
    # or a warm restart (a further cosine cycle) that takes a network past one session's time.
    # Only the weights are taken; optimizer state and schedule start afresh with this config.
    init_weights: str | None = None
    # "fer2013": the dataset's own labels; "ferplus_majority": the FER+ majority label (8 classes,
    # faces without a majority dropped); "ferplus_votes": the FER+ vote shares as soft targets.
    # FER+ runs validate on the FER+ majority of the same validation faces a FER-2013 run holds out.
    labels: str = "fer2013"
    votes: str | None = None  # the FER+ votes table; None: $FERPLUS_VOTES, else data/ferplus_votes.csv
    # FER-2013 labels only: leave out of training the images the FER+ crowd calls not a face
    # (FER+ label modes always do).
    drop_not_faces: bool = False
    # Several devices (JAX): keras.distribution.DataParallel splits every batch across them; `batch_size` stays
    # the global batch, so the updates are those of one device. batch_per_device=True makes `batch_size` each
    # device's share instead and scales the learning rate by the device count (the linear scaling rule, Goyal
    # et al. 2017, with the warm-up epochs): more throughput, a different run. See docs/training.md.
    distribute: str = "auto"
    batch_per_device: bool = False
    # Mixing faces in a batch against label noise: "mixup" (blend two faces and their targets) or "cutmix" (paste a
    # box of one into the other), lam ~ Beta(mix_alpha, mix_alpha); "none". fer.data.batches.mix_batch.
    mix: str = "none"
    mix_alpha: float = 0.2

    @classmethod
    def from_dict(cls, options: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"Unknown training option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**options)

    def check_types(self) -> None:
        """ValueError naming the first setting whose value has the wrong type (epochs='abc', seed=1.5)."""
        kinds = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "dict": (dict,)}
        for f in fields(self):
            value, words = getattr(self, f.name), str(f.type).replace("|", " ").split()
            if value is None and "None" in words:
                continue
            allowed = tuple(t for w in words for t in kinds.get(w, ()))
            wrong_bool = isinstance(value, bool) and "bool" not in words  # True is an int to Python
            if allowed and (not isinstance(value, allowed) or wrong_bool):
                raise ValueError(f"{f.name} must be {f.type}, got {value!r} ({type(value).__name__})")

    def validate(self) -> None:
        """ValueError for any setting that cannot work, before anything is loaded or written."""
        self.check_types()
        check_model_options(self.model, self.model_options)
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"optimizer must be adam, adamw or sgd, got {self.optimizer!r}")
        if self.validation not in ("train", "test"):
            raise ValueError(f"validation must be 'train' or 'test', got {self.validation!r}")
        if self.validation == "test" and (self.lr_schedule != "cosine" or self.checkpoint != "final"):
            raise ValueError(
                "validation='test' would pick the checkpoint, the learning-rate cuts or the stopping epoch on "
                "the split you then report. Use validation='train' (a stratified hold-out of train), or watch "
                "the test split only with lr_schedule='cosine' and checkpoint='final', where nothing is chosen on it."
            )
        if self.lr_schedule not in ("plateau", "cosine"):
            raise ValueError(f"lr_schedule must be 'plateau' or 'cosine', got {self.lr_schedule!r}")
        if self.checkpoint not in ("best", "final"):
            raise ValueError(f"checkpoint must be 'best' or 'final', got {self.checkpoint!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 0 <= self.distill_weight <= 1 or self.distill_temperature <= 0:
            raise ValueError("distill_weight must be in [0, 1] and distill_temperature positive")
        tta_scheme(self.teacher_tta)  # raises on an unknown scheme
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(
                f"warmup_epochs must be in [0, epochs): got {self.warmup_epochs} warm-up epochs of {self.epochs} "
                "(set warmup_epochs=0 for a short run)"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        if self.mix not in MIXES or self.mix_alpha <= 0:
            raise ValueError(f"mix must be one of {MIXES} and mix_alpha positive, got {self.mix!r}, {self.mix_alpha}")
        if self.distribute not in DISTRIBUTE:
            raise ValueError(f"distribute must be one of {DISTRIBUTE}, got {self.distribute!r}")
        if self.labels not in LABELS:
            raise ValueError(f"labels must be one of {LABELS}, got {self.labels!r}")
        if self.teacher and self.labels not in ("fer2013", "dual"):
            raise ValueError("Distillation (teacher) is for FER-2013 labels; FER+ runs learn the crowd's votes instead")
        if self.ferplus_teacher and self.labels != "dual":
            raise ValueError("ferplus_teacher teaches the FER+ head of a dual run (labels='dual')")
        if float(self.class_weighting) < 0:
            raise ValueError(f"class_weighting must be True, False or a power >= 0, got {self.class_weighting!r}")
        Augmentation.from_dict(self.augmentation)


@dataclass
class TrainResult:
    model: keras.Model
    history: pd.DataFrame
    run_dir: Path
    summary: dict


_initialized = False


def data_parallel(config: TrainConfig):
    """The keras.distribution.DataParallel `config` trains under, or None for one device.

    Keras' distribution API runs on JAX. Several hosts: set KERAS_DISTRIBUTION_JOB_ADDRESSES,
    KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID (keras.distribution.initialize reads them).
    """
    global _initialized
    if config.distribute == "none":
        return None
    if keras.backend.backend() != "jax":
        if config.distribute == "data_parallel":
            raise ValueError(
                "distribute='data_parallel' uses keras.distribution, which runs on JAX: set KERAS_BACKEND=jax "
                "(pip install -e '.[jax]'), or use distribute='auto' or 'none'"
            )
        return None
    if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") and not _initialized:
        keras.distribution.initialize()
        _initialized = True
    devices = keras.distribution.list_devices()
    if len(devices) < 2:
        return None
    if config.distribute == "auto" and devices[0].split(":")[0].lower() == "cpu":
        return None  # several CPU "devices" only exist when XLA is told to fake them: no gain there unless asked
    return keras.distribution.DataParallel(devices=devices)


def scaled_for_devices(config: TrainConfig, n_devices: int) -> TrainConfig:
    """`config` with batch_size and learning_rate as trained: multiplied by the device count where
    batch_per_device (the linear scaling rule), else as given."""
    if not config.batch_per_device or n_devices < 2:
        return config
    return replace(config, batch_size=config.batch_size * n_devices, learning_rate=config.learning_rate * n_devices)


def learning_rate(config: TrainConfig, steps_per_epoch: int):
    """The optimizer's learning rate: a float (plateau schedule) or a warm-up + cosine schedule."""
    if config.lr_schedule == "plateau":
        return config.learning_rate
    warmup = config.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.learning_rate,
        decay_steps=(config.epochs - config.warmup_epochs) * steps_per_epoch,
        alpha=0.0,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(config: TrainConfig, steps_per_epoch: int = 1) -> keras.optimizers.Optimizer:
    lr = learning_rate(config, steps_per_epoch)
    wd = config.weight_decay or None
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=True, weight_decay=wd)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay or 1e-4)
    return keras.optimizers.Adam(lr, weight_decay=wd)


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int = 1) -> keras.Model:
    if config.labels == "dual":  # label smoothing for FER-2013's noisy labels only; FER+ targets are vote shares
        model.compile(
            optimizer=make_optimizer(config, steps_per_epoch),
            loss={
                "ferplus": keras.losses.CategoricalCrossentropy(),
                "fer2013": keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            },
            # Weighted: a validation face without a FER+ majority weighs 0 in the FER+ head's accuracy.
            weighted_metrics={name: ["accuracy"] for name in dual_head.HEADS},
        )
        return model
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    return model


class _EpochInfo(keras.callbacks.Callback):
    """Adds learning rate and epoch wall time to the logs, so history.csv records them."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            logs["seconds"] = round(time.perf_counter() - self._start, 2)


def split_data(
    config: TrainConfig, train: FaceSet | None = None, val: FaceSet | None = None
) -> tuple[FaceSet, FaceSet]:
    """The (train, validation) FaceSets a run with `config` trains and validates on (from its data unless given)."""
    if train is None:
        train = load_split(data_dir(config.data), "train")
    if config.max_train_samples and config.max_train_samples < len(train):
        train, _ = train_val_split(train, 1 - config.max_train_samples / len(train), seed=config.split_seed)
    if val is None:
        if config.validation == "test":
            val = load_split(data_dir(config.data), "test")
        else:
            train, val = train_val_split(train, config.val_fraction, seed=config.split_seed)
            val, train = _move_test_duplicates(config, val, train)
    return _apply_labels(config, train, val)


def _apply_labels(config: TrainConfig, train: FaceSet, val: FaceSet) -> tuple[FaceSet, FaceSet]:
    """FER+ labels (or FER-2013's without the non-faces) on an already carved (train, val) pair.

    The split is made on FER-2013's labels first, so a FER+ run holds out the very faces a FER-2013
    run with the same split_seed holds out: a FER-2013 network can start a FER+ run (init_weights)
    without having seen its validation faces. Validation always uses the FER+ majority protocol.
    """
    if config.labels == "fer2013" and not config.drop_not_faces:
        return train, val
    path = ferplus.votes_path(config.votes)
    table = ferplus.read_votes(path)
    root = data_dir(config.data)
    train_votes = ferplus.votes_for(train, root, table, path)
    if config.labels == "dual":  # every face keeps its FER-2013 label and carries its votes for the FER+ head
        train.votes, val.votes = train_votes, ferplus.votes_for(val, root, table, path)
        return train, val
    if config.labels == "fer2013":
        return ferplus.drop_not_faces(train, train_votes), val
    mode = config.labels.removeprefix("ferplus_")
    val = ferplus.relabel(val, ferplus.votes_for(val, root, table, path), "majority")
    return ferplus.relabel(train, train_votes, mode), val


def _move_test_duplicates(config: TrainConfig, val: FaceSet, train: FaceSet) -> tuple[FaceSet, FaceSet]:
    """Move validation images that also occur in the test split into train.

    FER-2013 has ~280 test images that are exact copies of training images; leaving their
    copies in the validation split would let epoch or recipe choices lean on test faces.
    """
    try:
        test = load_split(data_dir(config.data), "test")
    except (DataError, FileNotFoundError):  # no test split beside train (e.g. a custom folder)
        return val, train
    leaked = duplicates_of(val, test)
    if not leaked.any():
        return val, train
    moved = val.subset(np.flatnonzero(leaked))
    merged = FaceSet(
        np.concatenate([train.images, moved.images]),
        np.concatenate([train.labels, moved.labels]),
        train.sources + moved.sources if train.sources and moved.sources else [],
    )
    return val.subset(np.flatnonzero(~leaked)), merged


def soft_targets(labels: np.ndarray, teacher_probs: np.ndarray, weight: float, temperature: float) -> np.ndarray:
    """Distillation targets: (1 - weight) * one-hot(labels) + weight * tempered teacher probabilities."""
    tempered = np.power(np.clip(teacher_probs, 1e-12, 1.0), 1.0 / temperature)
    tempered /= tempered.sum(axis=1, keepdims=True)
    onehot = np.eye(teacher_probs.shape[1], dtype=np.float32)[labels]
    return ((1 - weight) * onehot + weight * tempered).astype(np.float32)


def teacher_probs(teacher: str, faces: FaceSet, tta: bool | str, cache: Path | None = None) -> np.ndarray:
    """`teacher`'s probabilities on the (un-augmented) `faces`, computed once: kept in `cache` (an .npz in the
    run folder) and read back when the teacher file, its TTA and the faces are the same."""
    # The teacher by file name: a sweep resolves paths to absolute ones, and a GPU run gets the cache without the file.
    key = {
        "teacher": Path(teacher).name,
        "tta": str(tta),
        "n": len(faces),
        "checksum": int(faces.images[:, ::7, ::7].sum()),
    }
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        if json.loads(str(stored["key"])) == key:
            return stored["probs"]
    probs = predict_proba(load_network(teacher), faces.images, tta=tta)
    if cache is not None:
        np.savez(cache, probs=probs, key=json.dumps(key))
    return probs


def _teacher_targets(config: TrainConfig, train_set: FaceSet, run_dir: Path | None = None) -> np.ndarray | None:
    """Soft targets from `config.teacher` on the (un-augmented) training faces, or None without a teacher."""
    if not config.teacher:
        return None
    cache = run_dir / "teacher.npz" if run_dir is not None else None
    probs = teacher_probs(config.teacher, train_set, config.teacher_tta, cache)
    return soft_targets(train_set.labels, probs, config.distill_weight, config.distill_temperature)


def _dual_batches(config: TrainConfig, train_set: FaceSet, run: TrainConfig, run_dir: Path, n_devices: int):
    """A dual run's training batches: each head's targets (labels mixed with its teacher) and sample weights."""
    teachers = {
        name: teacher_probs(path, train_set, config.teacher_tta, run_dir / f"teacher_{name}.npz") if path else None
        for name, path in (("ferplus", config.ferplus_teacher), ("fer2013", config.teacher))
    }
    targets, usable = dual_head.head_targets(train_set, teachers, config.distill_weight, config.distill_temperature)
    weights = dual_head.head_weights(targets, usable, float(config.class_weighting))
    return dual_head.DualBatches(
        train_set.images,
        targets,
        weights,
        run.batch_size,
        shuffle=True,
        seed=config.seed,
        multiple_of=n_devices,
        mix=config.mix,
        mix_alpha=config.mix_alpha,
    )


def learned_prior(config: TrainConfig, train_set: FaceSet | None = None, run_dir: Path | None = None) -> dict:
    """{label set: {class: share}}: the class shares the run's loss sees, per head: the training targets (label
    smoothing and a teacher's probabilities included), each face weighted by its class weight. This is the prior
    the network learns, and what `prior=` re-weights from (fer.analysis.probabilities.prior_weights).

    Computed from `config` (its split; a teacher's probabilities from `run_dir`'s cache where there is one).
    """
    if train_set is None:
        train_set, _ = split_data(config)
    run_dir = Path(run_dir) if run_dir is not None else None
    if config.labels == "dual":
        teachers = {
            name: teacher_probs(
                path, train_set, config.teacher_tta, run_dir / f"teacher_{name}.npz" if run_dir else None
            )
            if path
            else None
            for name, path in (("ferplus", config.ferplus_teacher), ("fer2013", config.teacher))
        }
        targets, usable = dual_head.head_targets(train_set, teachers, config.distill_weight, config.distill_temperature)
        weights = dual_head.head_weights(targets, usable, float(config.class_weighting))
        smoothing = {"ferplus": 0.0, "fer2013": config.label_smoothing}
    else:
        classes = classes_of(config)
        if config.labels == "ferplus_votes":
            y = ferplus.vote_distribution(train_set.votes)
        else:
            y = _teacher_targets(config, train_set, run_dir)
            y = np.eye(len(classes), dtype=np.float32)[train_set.labels] if y is None else y
        table = (
            class_weights(train_set.labels, float(config.class_weighting), len(classes))
            if config.class_weighting
            else {}
        )
        name = "ferplus" if classes == ferplus.FERPLUS_CLASSES else "fer2013"
        targets = {name: y}
        weights = {name: np.array([table.get(int(c), 1.0) for c in y.argmax(axis=1)], np.float32)}
        smoothing = {name: config.label_smoothing}
    prior = {}
    for name, y in targets.items():
        k = y.shape[1]
        y = y * (1 - smoothing[name]) + smoothing[name] / k  # what Keras' label smoothing makes of the targets
        shares = (y * weights[name][:, None]).sum(axis=0)
        classes = dual_head.HEADS[name]
        prior[name] = {c: round(float(v), 5) for c, v in zip(classes, shares / shares.sum())}
    return prior


def _transfer_all_but_head(model: keras.Model, source: keras.Model) -> bool:
    """Copy `source`'s weights into `model` layer by layer where only the output layer differs
    (a 7-class FER-2013 network starting an 8-class FER+ run); False where more than the head differs."""
    ours = [layer for layer in model.layers if layer.weights]
    theirs = [layer for layer in source.layers if layer.weights]
    if len(ours) != len(theirs) or ours[-1].name != "emotion":
        return False
    body = list(zip(ours[:-1], theirs[:-1]))
    if any([w.shape for w in a.weights] != [w.shape for w in b.weights] for a, b in body):
        return False
    for a, b in body:
        a.set_weights(b.get_weights())
    return True


def load_init_weights(model: keras.Model, config: TrainConfig) -> None:
    """Copy the weights of `config.init_weights` (a model file) into `model`, built from `config`.

    A network with another number of classes gives every layer but the output layer, which starts afresh.
    """
    source = load_network(config.init_weights)  # a missing or corrupt file: ModelError
    if config.labels == "dual":
        dual_head.transfer_weights(model, source)
        print(f"init_weights: {config.init_weights} (trunk and matching head columns)", flush=True)
        return
    if source.output_shape[-1] != model.output_shape[-1] and _transfer_all_but_head(model, source):
        print(
            f"init_weights: {source.output_shape[-1]}-class network, all layers but the "
            f"{model.output_shape[-1]}-class output layer taken",
            flush=True,
        )
        return
    weights = source.get_weights()
    try:  # Keras checks the count and every shape; we say what to do about a mismatch
        model.set_weights(weights)
    except ValueError as exc:
        raise ValueError(
            f"init_weights {config.init_weights}: its weights do not fit model={config.model!r} "
            f"model_options={config.model_options} ({exc}). Start from a model of the same architecture "
            "(the config.json of its run says its model and model_options), or set model/model_options to match it."
        ) from exc


def _chosen_model(run_dir: Path, config: TrainConfig) -> keras.Model:
    """The run's `checkpoint` file as the model train() returns; on JAX it predicts XLA-compiled, as it trained."""
    return allow_xla_on_jax(keras.models.load_model(run_dir / f"{config.checkpoint}.keras", safe_mode=True))


def _read_history(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()


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


def _check_same_config(run_dir: Path, config: TrainConfig) -> None:
    # Settings added since a run was started count as their defaults.
    saved = {**asdict(TrainConfig()), **json.loads((run_dir / "config.json").read_text())}
    ours = asdict(config)
    # Only `epochs` (to extend a run) and `distribute` (a run started on several GPUs may resume on one: same
    # updates) may change on resume; anything else is a different run.
    free = {"epochs", "distribute"}
    diff = sorted(k for k in set(saved) | set(ours) if k not in free and saved.get(k) != ours.get(k))
    if diff:
        raise ValueError(
            f"{run_dir} holds a run with different settings ({', '.join(diff)}). "
            "Pass a new output folder, or delete this one to start over."
        )


def _resolved(config: TrainConfig | dict | None, overrides: dict, recipe: str | None = None) -> TrainConfig:
    """The run's settings: `config` (a TrainConfig, a dict, or None: TrainConfig's defaults, or RECIPES[recipe])
    with `overrides`, a warm-up longer than a short run cut to fit it (said once), checked."""
    if recipe is not None:
        if config is not None:
            raise ValueError("Pass either config or recipe (a named starting point), not both")
        if recipe not in RECIPES:
            raise ValueError(f"Unknown recipe {recipe!r}; choose from {sorted(RECIPES)}")
        config = dict(RECIPES[recipe])
    if config is None:
        config = TrainConfig()
    elif isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    if overrides:
        config = TrainConfig.from_dict({**asdict(config), **overrides})
    if isinstance(config.epochs, int) and isinstance(config.warmup_epochs, int) and config.epochs >= 1:
        if config.warmup_epochs >= config.epochs:  # `train --epochs 1` means one epoch, warm-up or not
            print(f"warmup_epochs {config.warmup_epochs} >= epochs {config.epochs}: no warm-up in this short run")
            config = replace(config, warmup_epochs=0)
    config.validate()
    return config


def _finished(run_dir: Path, config: TrainConfig) -> TrainResult | None:
    """The result of a run folder that already holds this finished run (None: train or resume it)."""
    if not (run_dir / "config.json").is_file():
        return None
    _check_same_config(run_dir, config)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file() or (run_dir / "backup").exists():
        return None
    summary = json.loads(summary_path.read_text())
    if summary["epochs_done"] < config.epochs and not summary.get("stopped_early"):
        return None  # a finished run given more epochs goes on
    return TrainResult(_chosen_model(run_dir, config), _read_history(run_dir / "history.csv"), run_dir, summary)


def _prepared_model(config: TrainConfig, run: TrainConfig, precision: str, steps_per_epoch: int, run_dir: Path):
    """(compiled model, finished epochs): resumed from the run's backup, else started from `init_weights`."""
    model = build_for_training(config, precision)
    compile_model(model, run, steps_per_epoch)
    done = EpochBackup.restore(model, run_dir / "backup")
    if done:
        print(f"Resuming {run_dir} after epoch {done} of {config.epochs}", flush=True)
    elif config.init_weights:
        load_init_weights(model, config)
    # Written once the run can start (data read, model built): a setting that fails above leaves no
    # config.json behind to refuse the corrected re-run as "a run with different settings".
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    return model, done


def _callbacks(config: TrainConfig, run_dir: Path, done: int) -> tuple[list, keras.callbacks.Callback | None]:
    """(callbacks, the early-stopping one or None): logging, checkpoint, plateau cuts, and the crash-safe backup.

    Resume: history rows written after the last backup are dropped (the process died between logging an epoch
    and backing it up), and the checkpoint keeps the best value so far."""
    history_path = run_dir / "history.csv"
    history = _read_history(history_path)
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


def _fit_inputs(
    config: TrainConfig, run: TrainConfig, train_set: FaceSet, val_set: FaceSet, run_dir: Path, n_devices: int
) -> dict:
    """model.fit's data arguments: the training batches (targets, teachers), validation data and class weights."""
    classes = classes_of(config)
    if config.labels == "dual":  # each head weighs its own faces (Keras' class_weight takes one output)
        batches = _dual_batches(config, train_set, run, run_dir, n_devices)
        return {
            "x": batches,
            "validation_data": dual_head.validation_data(val_set, to_model_input),
            "class_weight": None,
        }
    targets = (
        ferplus.vote_distribution(train_set.votes)
        if config.labels == "ferplus_votes"
        else _teacher_targets(config, train_set, run_dir)
    )
    batches = FaceBatches(
        train_set.images,
        train_set.labels,
        run.batch_size,
        shuffle=True,
        seed=config.seed,
        targets=targets,
        n_classes=len(classes),
        multiple_of=n_devices,  # a data-parallel batch splits evenly across the devices
        mix=config.mix,
        mix_alpha=config.mix_alpha,
    )
    # With soft targets (FER+ votes) Keras weighs each face by its target's top class.
    weights = (
        class_weights(train_set.labels, float(config.class_weighting), len(classes)) if config.class_weighting else None
    )
    validation = (to_model_input(val_set.images), np.eye(len(classes), dtype=np.float32)[val_set.labels])
    return {"x": batches, "validation_data": validation, "class_weight": weights}


def _save_models(model, run: TrainConfig, run_dir: Path, precision: str, steps_per_epoch: int) -> None:
    """final.keras and best.keras as float32 files, whatever precision trained them."""
    save_float32(model, run, run_dir / "final.keras", steps_per_epoch)
    best_path = run_dir / "best.keras"
    if not best_path.is_file():  # monitored value never became finite (e.g. NaN loss)
        save_float32(model, run, best_path, steps_per_epoch)
    elif precision != "float32":  # the checkpoint callback saved the mixed-precision model
        save_float32(keras.models.load_model(best_path, safe_mode=True), run, best_path, steps_per_epoch)


def _summary(config, model, history, early, sets, weights, precision, run, n_devices, wall, run_dir) -> dict:
    """summary.json: what the run did (epochs, best score, time, throughput, classes, its learned prior)."""
    train_set, val_set = sets
    classes = classes_of(config)
    seconds = history["seconds"].sum() if "seconds" in history else wall
    monitored = config.monitor in history and len(history)
    return {
        "model": config.model,
        "params": int(model.count_params()),
        "epochs_done": int(len(history)),
        "stopped_early": bool(early is not None and early.stopped_epoch > 0),
        f"best_{config.monitor}": float(history[config.monitor].max()) if monitored else None,
        "best_epoch": int(history.loc[history[config.monitor].idxmax(), "epoch"]) + 1 if monitored else None,
        "train_samples": int(len(train_set)),
        "val_samples": int(len(val_set)),
        "classes": {n: list(c) for n, c in dual_head.HEADS.items()} if config.labels == "dual" else list(classes),
        "class_weights": {classes[k]: round(v, 4) for k, v in weights.items()} if weights else None,
        "precision": precision,
        "devices": n_devices,
        "global_batch_size": run.batch_size,
        "checkpoint": f"{config.checkpoint}.keras",
        "train_seconds": round(float(seconds), 1),
        "images_per_second": round(len(train_set) * len(history) / max(float(seconds), 1e-9), 1),
        "training_prior": learned_prior(config, train_set, run_dir),
    }


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
    config = _resolved(config, overrides, recipe)
    run_dir = Path(out_dir)
    finished = _finished(run_dir, config)
    if finished is not None:
        return finished
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    train_set, val_set = split_data(config, train_faces, val_faces)
    distribution = data_parallel(config)
    n_devices = int(distribution.device_mesh.devices.size) if distribution is not None else 1
    run = scaled_for_devices(config, n_devices)  # the batch size and learning rate actually trained with
    precision = resolve_precision(config.precision)
    steps_per_epoch = -(-len(train_set) // run.batch_size)
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(distribution)
    try:
        model, done = _prepared_model(config, run, precision, steps_per_epoch, run_dir)
        callbacks, early = _callbacks(config, run_dir, done)
        inputs = _fit_inputs(config, run, train_set, val_set, run_dir, n_devices)
        inputs["x"].set_epoch(done)
        start = time.perf_counter()
        model.fit(**inputs, epochs=config.epochs, initial_epoch=done, callbacks=callbacks, verbose=verbose)
        wall = time.perf_counter() - start
        _save_models(model, run, run_dir, precision, steps_per_epoch)
    finally:
        keras.distribution.set_distribution(previous)
    history = _read_history(run_dir / "history.csv")
    summary = _summary(
        config,
        model,
        history,
        early,
        (train_set, val_set),
        inputs["class_weight"],
        precision,
        run,
        n_devices,
        wall,
        run_dir,
    )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return TrainResult(_chosen_model(run_dir, config), history, run_dir, summary)
