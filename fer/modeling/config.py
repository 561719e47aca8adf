"""Every setting of a training run: TrainConfig with its checks, the named choices, and the rule for resuming."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from fer.analysis.probabilities import tta_scheme
from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.modeling.recipes import RECIPES

PRECISIONS = ("auto", "float32", "bfloat16")

# How a run spreads over devices: "auto" = data parallel over every local accelerator on JAX when there are
# several (one device otherwise); "none" = one device; "data_parallel" = keras.distribution.DataParallel, required.
DISTRIBUTE = ("auto", "none", "data_parallel")

# Which labels a run learns: FER-2013's own (7 classes), FER+'s crowd votes (8 classes, fer.data.ferplus), or
# both at once: "dual", one trunk with a FER+ head and a FER-2013 head (fer.modeling.dual_head).
LABELS = ("fer2013", "ferplus_majority", "ferplus_votes", "dual")

OPTIMIZERS = ("adam", "adamw", "sgd")
# "train": a stratified hold-out of train; "test": only watch the test split (where nothing is chosen on it).
VALIDATIONS = ("train", "test")


def _default_augmentation() -> dict:
    from fer.data.augment import Augmentation  # builds Keras layers: imported when a config is made, not with this

    return Augmentation().to_dict()


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
    augmentation: dict = field(default_factory=_default_augmentation)
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

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names (output order) of the model this config trains (a dual run's: its FER+ head's)."""
        return FERPLUS_CLASSES if self.labels.startswith("ferplus") or self.labels == "dual" else EMOTIONS

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
        # Imported here: these modules build Keras layers, and the CLI reads this module's choices without Keras.
        from fer.data.augment import Augmentation
        from fer.data.batches import MIXES
        from fer.modeling.architectures import check_model_options

        self.check_types()
        check_model_options(self.model, self.model_options)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be {', '.join(OPTIMIZERS[:-1])} or {OPTIMIZERS[-1]}, got {self.optimizer!r}"
            )
        if self.validation not in VALIDATIONS:
            raise ValueError(f"validation must be one of {VALIDATIONS}, got {self.validation!r}")
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


def resolve_config(config: TrainConfig | dict | None, overrides: dict, recipe: str | None = None) -> TrainConfig:
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


def _full_augmentation(options: dict) -> dict:
    """Every augmentation setting, those added since a run was saved at their defaults (which are off)."""
    from fer.data.augment import Augmentation

    return Augmentation.from_dict(options).to_dict()


def check_same_config(run_dir: Path, config: TrainConfig) -> None:
    """ValueError where `run_dir` holds a run with other settings than `config` (only epochs and distribute may
    change on resume)."""
    # Settings added since a run was started count as their defaults.
    saved = {**asdict(TrainConfig()), **json.loads((run_dir / "config.json").read_text())}
    saved["augmentation"] = _full_augmentation(saved["augmentation"])
    ours = {**asdict(config), "augmentation": _full_augmentation(config.augmentation)}
    # Only `epochs` (to extend a run) and `distribute` (a run started on several GPUs may resume on one: same
    # updates) may change on resume; anything else is a different run.
    free = {"epochs", "distribute"}
    diff = sorted(k for k in set(saved) | set(ours) if k not in free and saved.get(k) != ours.get(k))
    if diff:
        raise ValueError(
            f"{run_dir} holds a run with different settings ({', '.join(diff)}). "
            "Pass a new output folder, or delete this one to start over."
        )
