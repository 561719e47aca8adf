"""The models predictions run on: a model file loaded with its engine (ONNX twin, int8, Keras), the default model,
one load per file however many threads ask, and the classes a model answers in."""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

from fer.analysis.probabilities import classes_of
from fer.errors import ModelError
from fer.modeling.files import (
    DEFAULT_MODEL_NAME,
    MODEL_ENV,
    check_model,
    default_model_path,
    load_network,
    packaged_default,
)

# Which runtime runs a `.keras`/`.json` model for inference: "auto" (its ONNX twin where there is a fresh
# one, else Keras), "onnx" (the twin, or an error saying how to write it), "int8" (its int8 twin: 2-3x the
# faces/s, its top emotion differs on under 1% of faces; docs/export.md) or "keras". $FER_ENGINE sets it.
ENGINES = ("auto", "onnx", "int8", "keras")
ENGINE_ENV = "FER_ENGINE"


def default_engine() -> str:
    """The inference engine predict_emotion uses for model files: $FER_ENGINE, else "auto"."""
    engine = os.environ.get(ENGINE_ENV, "auto")
    if engine not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}={engine!r} is not an inference engine; choose from {ENGINES}")
    return engine


def _default_file(engine: str) -> Path:
    """The file the default model (no path, no $FER_MODEL) is run from with `engine`."""
    source = default_model_path()
    if engine == "keras" and not source.is_file():
        raise ModelError(
            f"engine='keras' runs the default model's Keras file, {DEFAULT_MODEL_NAME} in the repository's models/ "
            "folder (a clone with the research extra); a plain install predicts with its ONNX twin: engine='auto'"
        )
    if source.is_file():
        return source  # the research store (a clone): its twin is used where fresh, Keras where not
    return packaged_default("int8" if engine == "int8" else "float32")  # a plain install: the twin travels


def load_model(path: str | Path | None = None, engine: str = "keras"):
    """Load an emotion model: a `.keras` file (safe_mode=True: no arbitrary code runs) or a `.json`
    ensemble (fer.modeling.files.load_network), or an exported `.onnx` file (run by ONNX Runtime,
    fer.inference.onnx_model) or `.tflite` file (run by LiteRT, fer.inference.litert_model).

    path=None loads the default model ($FER_MODEL, else the shipped default: in a clone its Keras file
    models/ferplus_votes.keras, in a plain install its ONNX twin inside the package).
    engine (for `.keras`/`.json` files): "keras" (default: the Keras model itself, for training,
    evaluation, export), "auto" (its ONNX twin `onnx/<name>.onnx` beside it where one was made from
    exactly this file, else Keras), "onnx" (the twin, or ModelError) or "int8". predict_emotion uses "auto".
    Raises ModelError saying what is wrong and what to do.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if path is None and MODEL_ENV not in os.environ:
        path = _default_file(engine)
    path = Path(path) if path is not None else default_model_path()
    if engine != "keras" and path.suffix in (".keras", ".json") and path.is_file():
        from fer.inference.onnx_model import fresh_twin, twin_path

        # "auto" without ONNX Runtime (an install that left it out) quietly stays on Keras.
        runtime = engine != "auto" or importlib.util.find_spec("onnxruntime") is not None
        precision = "int8" if engine == "int8" else "float32"
        twin = fresh_twin(path, precision) if runtime else None
        if twin is not None:
            path = twin
        elif engine in ("onnx", "int8"):
            flag = " --quantize int8" if precision == "int8" else ""
            raise ModelError(
                f"{path}: no up-to-date ONNX {precision} twin ({twin_path(path, precision)} is missing or was made "
                f"from another file). Write it with `python -m fer export --twin{flag} --model {path}`, or use "
                "engine='keras'."
            )
    if path.suffix == ".onnx" and path.is_file():
        from fer.inference.onnx_model import OnnxModel

        return check_model(OnnxModel(path), path)
    if path.suffix == ".tflite" and path.is_file():
        from fer.inference.litert_model import LiteRTModel

        return check_model(LiteRTModel(path), path)
    if path.suffix in (".keras", ".json") and importlib.util.find_spec("keras") is None:
        from fer.errors import MissingPackageError

        raise MissingPackageError(
            f"{path}: running a Keras model file needs Keras and TensorFlow, the research extra: "
            "pip install 'fer2013-emotion-cnn[research]' (or predict with the packaged default / an .onnx file)"
        )
    return load_network(path)


_cache: dict[tuple[str, float, str], object] = {}  # keras.Model, OnnxModel or LiteRTModel
_cache_lock = threading.Lock()


def resolve_model(model, engine: str | None = None):
    """A keras.Model (or OnnxModel, LiteRTModel) as is; a path or None loaded once and cached (per file, mtime
    and engine; threads arriving together wait for the one load). engine: see load_model; None: default_engine()
    ("auto": the ONNX twin where there is one)."""
    if hasattr(model, "predict_on_batch"):  # a keras.Model, OnnxModel or LiteRTModel (keras not imported here)
        return model
    engine = engine or default_engine()
    path = Path(model) if model is not None else None
    shown = path if path is not None else default_model_path()
    key = (str(shown.resolve()), shown.stat().st_mtime if shown.is_file() else 0.0, engine)
    with _cache_lock:  # one load on a cold start, however many threads ask at once
        if key not in _cache:
            _cache[key] = load_model(path, engine=engine)
        return _cache[key]


def model_classes(model=None, labels: str | None = None) -> tuple[str, ...]:
    """The class names `model` answers in (a model object or file; None: the default model), in output order:
    FER+'s eight (contempt too) or FER-2013's seven; `labels` picks a dual-head model's head."""
    return classes_of(resolve_model(model), labels)
