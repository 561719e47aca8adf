"""Model files: where the shipped models live, and loading `.keras` networks and `.json` ensembles safely."""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

from fer.data.ferplus import FERPLUS_CLASSES, classes_for_size
from fer.data.loading import EMOTIONS
from fer.errors import ModelError

# The shipped models live in the repository's models/ folder (editable install, as the README sets
# up); FER_MODEL points elsewhere. The default is the more accurate model that still classifies at
# least 350 faces/s on 2 cores; the single network is the fast option (docs/experiments.md: the choice).
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL_NAME = "ferplus_votes.keras"
SINGLE_MODEL_NAME = "fer_emotion.keras"


def default_model_path() -> Path:
    """The default model's file: $FER_MODEL, else models/fer_ensemble.json."""
    return Path(os.environ.get("FER_MODEL", MODELS_DIR / DEFAULT_MODEL_NAME))


def load_network(path: str | Path | None = None):
    """Load a `.keras` emotion model with safe_mode=True (no arbitrary code runs), or a `.json`
    ensemble file (the mean of the `.keras` member files it lists; see fer.modeling.ensembling).
    Exported `.onnx`/`.tflite` files are fer.inference.predict.load_model's.

    path=None loads the default model (models/fer_ensemble.json, or $FER_MODEL).
    Raises ModelError saying what is wrong and what to do.
    """
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        hint = (
            "The shipped models live in the repository's models/ folder, which a plain "
            "`pip install <url>` does not carry: install the checkout with `pip install -e .`, "
            "pass model=PATH (e.g. a run's best.keras), or set FER_MODEL."
            if path.resolve().is_relative_to(MODELS_DIR.resolve())  # the default or one of its members
            else "Check the path, or train a model with `python -m fer train`."
        )
        raise ModelError(f"{path}: model file not found. {hint}")
    if path.suffix == ".json":
        return check_model(_assembled_ensemble(path), path)
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ModelError(
            f"{path}: not a Keras 3 .keras model file (corrupt, truncated, or another format). "
            "Re-download or re-train it; legacy .h5 files are not supported (exported .onnx and .tflite files are)."
        )
    import keras  # here, not at the top: predicting through an ONNX twin never loads Keras (or TensorFlow)

    from fer.data.augment import allow_xla_on_jax

    try:
        with warnings.catch_warnings():
            # A file trained on JAX was compiled with jit_compile=True; on TensorFlow its augmentation layers
            # can't be, and Keras says so as it (rightly) falls back. Noise for whoever only predicts with it.
            warnings.filterwarnings("ignore", message="Model doesn't support `jit_compile=True`")
            model = keras.models.load_model(path, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a damaged archive
        raise ModelError(f"{path}: could not load the model ({type(exc).__name__}: {exc})") from exc
    return check_model(allow_xla_on_jax(model), path)


def _assembled_ensemble(path: Path):
    """The ensemble a `.json` file describes (fer.ensemble(..., "x.json")): the mean of its member files."""
    try:
        spec = json.loads(path.read_text())
        members = spec["members"]
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise TypeError("'members' must be a list of file paths")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ModelError(
            f'{path}: not an ensemble file ({type(exc).__name__}: {exc}). Expected JSON with "members": '
            "[paths of .keras files, relative to it], as written by fer.ensemble(members, 'ensemble.json')."
        ) from exc
    files = [path.parent / m for m in members]
    if len(files) < 2 or any(f.suffix != ".keras" for f in files):
        raise ModelError(f"{path}: an ensemble file lists at least two .keras member files, got {members}")
    from fer.modeling.architectures import build_ensemble

    return build_ensemble([load_network(f) for f in files])


def model_classes(model) -> tuple[str, ...]:
    """The class names of `model`'s outputs in order: FER-2013's seven emotions, or FER+'s eight (contempt too).

    A model's output size says which label set it was trained on.
    """
    classes = classes_for_size(model.output_shape[-1])
    if classes is None:
        raise ModelError(
            f"A model with {model.output_shape[-1]} outputs is neither a FER-2013 (7) nor a FER+ (8) emotion model"
        )
    return classes


def check_model(model, path: Path):
    """`model` itself, after checking it maps 48x48x1 faces to FER-2013's 7 or FER+'s 8 classes (else ModelError)."""
    shape, out = tuple(model.input_shape[1:]), model.output_shape[-1]
    if shape != (48, 48, 1) or classes_for_size(out) is None:
        raise ModelError(
            f"{path}: expected a model from 48x48x1 faces to {len(EMOTIONS)} (FER-2013) or "
            f"{len(FERPLUS_CLASSES)} (FER+) emotions, got {shape} -> {out}"
        )
    return model
