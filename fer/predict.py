"""`predict_emotion`: the emotion of a face from a path, a PIL image or an array.

Images are taken to be face crops here: any size and colour is converted to a 48x48
gray face exactly as the training data is (see fer.images).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from fer.data import EMOTIONS
from fer.errors import ModelError
from fer.evaluation import predict_proba
from fer.images import as_array, to_face

# The shipped model lives in the repository's models/ folder (editable install, as the
# README sets up); FER_MODEL points elsewhere without code changes.
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL_NAME = "fer_emotion.keras"


def default_model_path() -> Path:
    return Path(os.environ.get("FER_MODEL", MODELS_DIR / DEFAULT_MODEL_NAME))


def load_model(path: str | Path | None = None) -> keras.Model:
    """Load a `.keras` emotion model with safe_mode=True (no arbitrary code runs).

    path=None loads the shipped model (models/fer_emotion.keras, or $FER_MODEL).
    Raises ModelError saying what is wrong and what to do.
    """
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        hint = (
            "No trained model is shipped yet: train one (python -m fer train) and pass its "
            "best.keras, or set FER_MODEL."
            if path == MODELS_DIR / DEFAULT_MODEL_NAME
            else "Check the path, or train a model with `python -m fer train`."
        )
        raise ModelError(f"{path}: model file not found. {hint}")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ModelError(
            f"{path}: not a Keras 3 .keras model file (corrupt, truncated, or another format). "
            "Re-download or re-train it; legacy .h5 files are not supported."
        )
    try:
        model = keras.models.load_model(path, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a damaged archive
        raise ModelError(f"{path}: could not load the model ({type(exc).__name__}: {exc})") from exc
    shape, out = tuple(model.input_shape[1:]), model.output_shape[-1]
    if shape != (48, 48, 1) or out != len(EMOTIONS):
        raise ModelError(
            f"{path}: expected a model from 48x48x1 faces to {len(EMOTIONS)} emotions, got {shape} -> {out}"
        )
    return model


_cache: dict[tuple[str, float], keras.Model] = {}


def _resolve_model(model) -> keras.Model:
    """A keras.Model as is; a path or None loaded once and cached (per file and mtime)."""
    if isinstance(model, keras.Model):
        return model
    path = Path(model) if model is not None else default_model_path()
    key = (str(path.resolve()), path.stat().st_mtime if path.is_file() else 0.0)
    if key not in _cache:
        _cache[key] = load_model(path)
    return _cache[key]


@dataclass
class Prediction:
    """The emotion of one face: top emotion, its probability, all seven probabilities.

    `box` is the face's (x, y, w, h) in the source image when it was detected there,
    None for an image that was taken as a face crop.
    """

    emotion: str
    probability: float
    probabilities: dict[str, float] = field(repr=False)
    box: tuple[int, int, int, int] | None = None

    def to_dict(self) -> dict:
        return {
            "emotion": self.emotion,
            "probability": self.probability,
            "probabilities": self.probabilities,
            "box": list(self.box) if self.box is not None else None,
        }


def _prediction(probs: np.ndarray, box=None) -> Prediction:
    top = int(np.argmax(probs))
    return Prediction(
        emotion=EMOTIONS[top],
        probability=float(probs[top]),
        probabilities={e: float(p) for e, p in zip(EMOTIONS, probs)},
        box=box,
    )


def predict_emotions(
    images, model=None, channel_order: str = "rgb", tta: bool = False, batch_size: int = 256
) -> list[Prediction]:
    """Predict many face crops in batches. `images`: a list of paths/PIL images/arrays,
    or one (N, 48, 48) uint8 array of faces. See predict_emotion for the rest."""
    model = _resolve_model(model)
    if isinstance(images, np.ndarray) and images.ndim == 3 and images.shape[1:] == (48, 48):
        faces = images.astype(np.uint8, copy=False)
    else:
        faces = np.stack([to_face(as_array(im, channel_order)) for im in images]) if len(images) else None
    if faces is None:
        return []
    return [_prediction(p) for p in predict_proba(model, faces, tta=tta, batch_size=batch_size)]


def predict_emotion(image, model=None, channel_order: str = "rgb", tta: bool = False) -> Prediction:
    """The emotion of one face crop.

    image: a file path, a PIL image or a NumPy array ((H, W) gray, (H, W, 3) RGB,
        or BGR with channel_order="bgr"); any size, converted to 48x48 gray.
    model: a keras.Model, a path to a .keras file, or None for the shipped model.
    tta: also look at the mirror image and average (slightly more accurate).

    >>> p = predict_emotion("face.jpg")      # doctest: +SKIP
    >>> p.emotion, p.probability, p.probabilities["happy"]  # doctest: +SKIP
    """
    return predict_emotions([image], model=model, channel_order=channel_order, tta=tta)[0]
