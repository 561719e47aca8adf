"""Model files: where the shipped models live, and loading `.keras` networks and `.json` ensembles safely."""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

from fer.data.classes import EMOTIONS, FERPLUS_CLASSES, classes_for_size
from fer.errors import ModelError
from fer.paths import MODELS_DIR

# The research store: every shipped model's Keras file lives in the repository's models/ folder (a clone with
# the research extra). The default model also travels inside the package as its ONNX twin (packaged_default()),
# so a plain `pip install` predicts without the clone, Keras or TensorFlow. FER_MODEL points elsewhere.
DEFAULT_MODEL_NAME = "ferplus_votes.keras"
SINGLE_MODEL_NAME = "fer_emotion.keras"
MODEL_ENV = "FER_MODEL"


def default_model_path() -> Path:
    """The default model's source file: $FER_MODEL, else models/<DEFAULT_MODEL_NAME> (which a plain install
    lacks: prediction then runs the packaged twin, packaged_default())."""
    return Path(os.environ.get(MODEL_ENV, MODELS_DIR / DEFAULT_MODEL_NAME))


def packaged_default(precision: str = "float32") -> Path:
    """The default model's ONNX twin inside the package (`fer/assets/model/default[.int8].onnx`), with its
    metadata beside it (`.json`: classes, source file and SHA-256, training prior)."""
    from importlib.resources import files

    name = "default.onnx" if precision == "float32" else f"default.{precision}.onnx"
    return Path(str(files("fer").joinpath("assets", "model", name)))


def model_metadata(path: str | Path) -> dict:
    """What is recorded beside a model file: `<stem>.metrics.json` (shipped `.keras`/`.json` models), a run
    folder's `summary.json`, or the `.json` of an `.onnx` twin; {} when there is none."""
    path = Path(path)
    side = path.with_suffix(".json") if path.suffix == ".onnx" else path.with_name(f"{path.stem}.metrics.json")
    if not side.is_file() and path.suffix == ".keras" and (path.parent / "summary.json").is_file():
        side = path.parent / "summary.json"  # a run folder's checkpoint: its run's summary (training_prior)
    try:
        return json.loads(side.read_text()) if side.is_file() else {}
    except (ValueError, OSError):
        return {}


def load_network(path: str | Path | None = None):
    """Load a `.keras` emotion model with safe_mode=True (no arbitrary code runs), or a `.json`
    ensemble file (the mean of the `.keras` member files it lists; see fer.modeling.ensembling).
    Exported `.onnx`/`.tflite` files are fer.inference.models.load_model's.

    path=None loads the default model's Keras file (models/<DEFAULT_MODEL_NAME>, or $FER_MODEL).
    Raises ModelError saying what is wrong and what to do.
    """
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        hint = (
            "The shipped models' Keras files live in the repository's models/ folder, which a plain "
            "`pip install` does not carry (it predicts with the default's ONNX twin inside the package): clone the "
            "repository and install it with `pip install -e '.[research]'`, pass model=PATH, or set FER_MODEL."
            if path.resolve().is_relative_to(MODELS_DIR.resolve())  # the default or one of its members
            else "Check the path, or train a model with `python -m fer train`."
        )
        raise ModelError(f"{path}: model file not found. {hint}")
    if path.suffix == ".json":
        return _with_prior(check_model(_assembled_ensemble(path), path), path)
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
    return _with_prior(check_model(allow_xla_on_jax(model), path), path)


def _with_prior(model, path: Path):
    """`model` with the training prior recorded beside its file (what prior= re-weights against) as an attribute;
    object.__setattr__: not a Keras-tracked attribute (nothing to save)."""
    object.__setattr__(model, "training_prior", model_metadata(path).get("training_prior"))
    return model


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


def check_model(model, path: Path):
    """`model` itself, after checking it maps 48x48x1 faces to FER-2013's 7 or FER+'s 8 classes, or to both
    (a dual-head model), else ModelError."""
    from fer.analysis.probabilities import output_sizes

    shape, sizes = tuple(model.input_shape[1:]), output_sizes(model)
    known = all(classes_for_size(n) is not None for n in sizes) and len(set(sizes)) == len(sizes)
    if shape != (48, 48, 1) or not known:
        raise ModelError(
            f"{path}: expected a model from 48x48x1 faces to {len(EMOTIONS)} (FER-2013) or "
            f"{len(FERPLUS_CLASSES)} (FER+) emotions (or both: a dual-head model), got {shape} -> {sizes}"
        )
    return model
