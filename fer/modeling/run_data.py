"""What a run learns from: its train/validation split, the targets its loss compares outputs with (labels, FER+
vote shares, a teacher's probabilities, label smoothing), the weights of each face, and the class prior they make."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.analysis.probabilities import predict_proba
from fer.data import ferplus
from fer.data.batches import FaceBatches
from fer.data.classes import FERPLUS_CLASSES
from fer.data.images import to_model_input
from fer.data.loading import FaceSet, class_weights, data_dir, load_split, train_val_split
from fer.data.quality import duplicates_of
from fer.errors import DataError
from fer.modeling import dual_head
from fer.modeling.config import TrainConfig
from fer.modeling.files import load_network


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


def smoothed(targets: np.ndarray, amount: float) -> np.ndarray:
    """Label smoothing (Szegedy et al. 2016): each target row moved `amount` of the way to uniform. Applied to the
    targets themselves, so the loss, the validation loss and the learned prior all see the same ones."""
    if not amount:
        return targets
    return (targets * (1.0 - amount) + amount / targets.shape[1]).astype(np.float32)


@dataclass(frozen=True)
class RunTargets:
    """What the loss sees, per head ("ferplus", "fer2013"; one for a single-head run): each training face's soft
    target and its weight (the class weight of its top target class; 0 where a dual head has no label for it).
    `class_weight`: a single-head run's table of those weights by class, as Keras' class_weight takes them."""

    targets: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    class_weight: dict[int, float] | None = None

    def prior(self) -> dict[str, dict[str, float]]:
        """{head: {class: share}}: the weighted mean target, the class prior the network learns (and what
        `prior=` re-weights from: fer.analysis.probabilities.prior_weights)."""
        prior = {}
        for name, y in self.targets.items():
            shares = (y * self.weights[name][:, None]).sum(axis=0)
            prior[name] = {c: round(float(v), 5) for c, v in zip(dual_head.HEADS[name], shares / shares.sum())}
        return prior


def run_targets(config: TrainConfig, train_set: FaceSet, run_dir: Path | None = None) -> RunTargets:
    """The targets and weights a run with `config` trains on (a teacher's probabilities from `run_dir`'s cache
    where there is one, else computed and cached there)."""
    if config.labels == "dual":
        teachers = {
            name: teacher_probs(path, train_set, config.teacher_tta, run_dir and run_dir / f"teacher_{name}.npz")
            if path
            else None
            for name, path in (("ferplus", config.ferplus_teacher), ("fer2013", config.teacher))
        }
        targets, usable = dual_head.head_targets(train_set, teachers, config.distill_weight, config.distill_temperature)
        weights = dual_head.head_weights(targets, usable, float(config.class_weighting))
        # Label smoothing for FER-2013's noisy labels only; FER+ targets are vote shares already.
        targets = {**targets, "fer2013": smoothed(targets["fer2013"], config.label_smoothing)}
        return RunTargets(targets, weights)
    classes = config.classes
    if config.labels == "ferplus_votes":
        y = ferplus.vote_distribution(train_set.votes)
    else:
        y = _teacher_targets(config, train_set, run_dir)
        y = np.eye(len(classes), dtype=np.float32)[train_set.labels] if y is None else y
    power = float(config.class_weighting)
    table = class_weights(train_set.labels, power, len(classes)) if power else None
    # With soft targets (FER+ votes) Keras weighs each face by its target's top class: the same weights here.
    weights = np.array([(table or {}).get(int(c), 1.0) for c in y.argmax(axis=1)], np.float32)
    name = "ferplus" if classes == FERPLUS_CLASSES else "fer2013"
    return RunTargets({name: smoothed(y, config.label_smoothing)}, {name: weights}, table)


def learned_prior(config: TrainConfig, train_set: FaceSet | None = None, run_dir: Path | None = None) -> dict:
    """{label set: {class: share}}: the class shares the run's loss sees, per head (RunTargets.prior), computed
    from `config` (its split unless `train_set` is given; a teacher's probabilities from `run_dir`'s cache)."""
    if train_set is None:
        train_set, _ = split_data(config)
    return run_targets(config, train_set, Path(run_dir) if run_dir is not None else None).prior()


def fit_inputs(
    config: TrainConfig, batch_size: int, sets: tuple[FaceSet, FaceSet], targets: RunTargets, n_devices: int
) -> dict:
    """model.fit's data arguments: the training batches, validation data (smoothed as training's targets, so the
    validation loss is the training loss's measure) and class weights."""
    train_set, val_set = sets
    batching = {"shuffle": True, "seed": config.seed, "mix": config.mix, "mix_alpha": config.mix_alpha}
    # A data-parallel batch splits evenly across the devices.
    batching["multiple_of"] = n_devices
    if config.labels == "dual":  # each head weighs its own faces (Keras' class_weight takes one output)
        batches = dual_head.DualBatches(train_set.images, targets.targets, targets.weights, batch_size, **batching)
        x, (y_plus, y_2013), weights = dual_head.validation_data(val_set, to_model_input)
        validation = (x, (y_plus, smoothed(y_2013, config.label_smoothing)), weights)
        return {"x": batches, "validation_data": validation, "class_weight": None}
    ((name, y),) = targets.targets.items()
    batches = FaceBatches(train_set.images, train_set.labels, batch_size, targets=y, n_classes=y.shape[1], **batching)
    one_hot = np.eye(y.shape[1], dtype=np.float32)[val_set.labels]
    validation = (to_model_input(val_set.images), smoothed(one_hot, config.label_smoothing))
    return {"x": batches, "validation_data": validation, "class_weight": targets.class_weight}
