"""A model's class probabilities for faces: test-time augmentation, the head of a dual model, the class prior.

Light on purpose (NumPy only): prediction imports this without pandas or scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.data.images import to_model_input

# Test-time augmentation schemes: the views of each face whose predictions are averaged.
#   flip:  the face and its mirror image (2 views).
#   shift: flip x {centre, 2 px left/right/up/down} (10 views; edges repeated into the gap).
# `tta=True` means DEFAULT_TTA, the scheme that scored best on a validation split held out of train
# (benchmarks/eval_tta.py, never the test split; the numbers are in docs/experiments.md, "Test-time augmentation").
TTA_SCHEMES = ("flip", "shift")
DEFAULT_TTA = "shift"
TTA_SHIFT = 2

# The label sets a model can answer in, by name: a dual-head model has one head per set (fer.modeling.dual_head).
LABEL_SETS: dict[str, tuple[str, ...]] = {"ferplus": FERPLUS_CLASSES, "fer2013": EMOTIONS}
PRIORS = ("training", "uniform")


def tta_scheme(tta: bool | str | None) -> str | None:
    """Normalise a `tta` argument: False/None -> None, True -> DEFAULT_TTA, a scheme name -> itself."""
    if tta is None or tta is False or tta == "none":
        return None
    if tta is True:
        return DEFAULT_TTA
    if tta not in TTA_SCHEMES:
        raise ValueError(f"tta must be True, False or one of {TTA_SCHEMES}, got {tta!r}")
    return tta


def tta_views(x: np.ndarray, scheme: str | None) -> list[np.ndarray]:
    """The views of (N, 48, 48, 1) faces that `scheme` averages over (the faces themselves first)."""
    if scheme is None:
        return [x]
    views = [x]
    if scheme == "shift":
        s = TTA_SHIFT
        padded = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)), mode="edge")
        h, w = x.shape[1:3]
        for dy, dx in ((0, -s), (0, s), (-s, 0), (s, 0)):
            views.append(padded[:, s + dy : s + dy + h, s + dx : s + dx + w])
    return views + [v[:, :, ::-1] for v in views]


def output_sizes(model) -> list[int]:
    """The class count of each of `model`'s outputs (one for a single-head model, two for a dual one)."""
    shape = model.output_shape
    shapes = shape if isinstance(shape, list) else [shape]
    return [int(s[-1]) for s in shapes]


def heads_of(model) -> dict[str, tuple[str, ...]]:
    """{label set: class names} for each output of `model`, in output order."""
    by_size = {len(classes): name for name, classes in LABEL_SETS.items()}
    sizes = output_sizes(model)
    names = [by_size.get(n) for n in sizes]
    if None in names or len(set(names)) != len(names):
        from fer.errors import ModelError

        raise ModelError(f"A model with outputs of {sizes} classes is not a FER-2013 (7) or FER+ (8) emotion model")
    return {name: LABEL_SETS[name] for name in names}


def head_index(model, labels: str | None) -> int:
    """Which output of `model` answers in `labels` ("ferplus", "fer2013"; None: the first). A model without that
    head: ValueError saying which label sets it has."""
    heads = list(heads_of(model))
    if labels is None:
        return 0
    if labels not in LABEL_SETS:
        raise ValueError(f"labels must be one of {sorted(LABEL_SETS)} (or None: the model's first), got {labels!r}")
    if labels not in heads:
        raise ValueError(
            f"labels={labels!r}: this model answers in {heads} only ({len(LABEL_SETS[heads[0]])} classes); "
            "a dual-head model (fer.modeling.dual_head) answers in both"
        )
    return heads.index(labels)


def classes_of(model, labels: str | None = None) -> tuple[str, ...]:
    """The class names of `model`'s answer in `labels` (None: its first head)."""
    return list(heads_of(model).values())[head_index(model, labels)]


def predict_proba(
    model, images: np.ndarray, tta: bool | str = False, batch_size: int = 256, labels: str | None = None
) -> np.ndarray:
    """Class probabilities (N, n_classes) for (N, 48, 48) uint8 faces.

    tta: average over several views of each face (see TTA_SCHEMES): True is the default
    scheme, or name one: "flip", "shift". labels: which head of a dual-head model ("ferplus",
    "fer2013"; None: its first); a single-head model must answer in `labels` if given.
    """
    scheme = tta_scheme(tta)
    index = 0 if labels is None else head_index(model, labels)  # None: the first (or only) output, unchecked
    x = to_model_input(images)
    if len(x) == 0:
        return np.zeros((0, output_sizes(model)[index]), dtype=np.float32)

    def run(batch):
        # predict() sets up a data pipeline per call: for one batch, predict_on_batch is ~5x faster.
        if len(batch) <= batch_size:
            out = model.predict_on_batch(batch)
        else:
            out = model.predict(batch, batch_size=batch_size, verbose=0)
        return np.asarray(out[index] if isinstance(out, (list, tuple)) else out)

    views = tta_views(x, scheme)
    probs = sum(run(np.ascontiguousarray(v)) for v in views) / len(views)
    return np.asarray(probs, dtype=np.float32)


def training_prior(model, labels: str | None = None) -> dict[str, float] | None:
    """The class shares `model` learned under (recorded with the model: its card's metrics or its twin's
    metadata, read when it was loaded), for the head `labels` selects; None where nothing is recorded."""
    recorded = getattr(model, "training_prior", None) or {}
    return recorded.get(labels if labels is not None else next(iter(heads_of(model))))


def mean_prior(priors: list[dict | None]) -> dict | None:
    """An ensemble's training prior: its members' mean, head by head (it averages their probabilities); None where
    a member has none recorded or the members answer in other label sets."""
    if not priors or any(p is None or set(p) != set(priors[0]) for p in priors):
        return None
    return {
        head: {c: round(float(np.mean([p[head][c] for p in priors])), 5) for c in priors[0][head]} for head in priors[0]
    }


def prior_weights(prior, training: Mapping[str, float] | None, classes: tuple[str, ...]) -> np.ndarray | None:
    """Per-class factors that move a model's probabilities from its training prior to `prior` (None: no change).

    prior: "training" (what the model learned: no change), "uniform" (every class equally likely) or a
    mapping {class: share} (shares > 0 for listed classes; unlisted classes get 0; normalised). The factor is
    prior / training prior: logit adjustment (Menon et al. 2021). ValueError with one line for a bad prior.
    """
    if isinstance(prior, str):
        if prior not in PRIORS:
            raise ValueError(f"prior must be 'training', 'uniform' or a mapping of class shares, got {prior!r}")
        if prior == "training":
            return None
        target = np.full(len(classes), 1.0 / len(classes))
    elif isinstance(prior, Mapping):
        unknown = sorted(set(prior) - set(classes))
        if unknown:
            raise ValueError(f"prior names classes this model does not have: {unknown}; its classes: {list(classes)}")
        target = np.array([float(prior.get(c, 0.0)) for c in classes])
        if not np.all(np.isfinite(target)) or (target < 0).any() or target.sum() <= 0:
            raise ValueError(f"prior shares must be finite, >= 0 and not all 0, got {dict(prior)}")
        target = target / target.sum()
    else:
        raise ValueError(f"prior must be 'training', 'uniform' or a mapping of shares, not {type(prior).__name__}")
    if training is None:
        raise ValueError(
            "this model has no recorded training prior (its class shares), so prior= cannot re-weight it; "
            "use a shipped model, or record `training_prior` in the model's metadata"
        )
    base = np.array([float(training.get(c, 0.0)) for c in classes])
    if (base <= 0).any():
        raise ValueError(f"the model's recorded training prior has no share for some classes: {dict(training)}")
    return target / (base / base.sum())


def adjust(probs: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Probabilities (N, K) re-weighted by per-class `weights` and renormalised (no change for None)."""
    if weights is None:
        return probs
    moved = np.asarray(probs, np.float64) * weights
    total = moved.sum(axis=1, keepdims=True)
    return np.divide(moved, total, out=np.zeros_like(moved), where=total > 0).astype(np.float32)
