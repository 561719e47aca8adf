"""`predict_emotion`: the emotions of the faces in a photo, or of one face crop.

Inputs are paths, PIL images or arrays. A face crop of any size and colour is
converted to a 48x48 gray face exactly as the training data is (see fer.images);
in a photo, faces are found and cropped by fer.faces first.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from fer.augment import allow_xla_on_jax
from fer.data import EMOTIONS
from fer.errors import ImageError, ModelError
from fer.evaluation import predict_proba
from fer.faces import DEFAULT_DETECTOR, DEFAULT_MARGIN, Face, crop_face, detect_faces
from fer.images import FACE_SIZE, as_array, to_face
from fer.models import build_ensemble

# The shipped models live in the repository's models/ folder (editable install, as the
# README sets up); FER_MODEL points elsewhere without code changes. The default is the ensemble
# of two vgg_lite networks (chosen on the validation split: 67.78% there against 66.27% for its
# first member alone; PublicTest 66.84% against 64.45%): it classifies ~410 faces/s batched on
# 2 CPU cores, above the 350 we require, so accuracy wins. SINGLE_MODEL_NAME, its first member,
# is twice as fast (with tta=True 67.21% against the ensemble's 68.10%).
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL_NAME = "fer_ensemble.json"
SINGLE_MODEL_NAME = "fer_emotion.keras"


def default_model_path() -> Path:
    return Path(os.environ.get("FER_MODEL", MODELS_DIR / DEFAULT_MODEL_NAME))


def load_model(path: str | Path | None = None):
    """Load a `.keras` emotion model with safe_mode=True (no arbitrary code runs), or an
    exported `.onnx` one (run by ONNX Runtime through fer.onnx_model.OnnxModel) or `.tflite`
    one (run by LiteRT through fer.litert_model.LiteRTModel), or a `.json` ensemble file
    (the mean of the `.keras` member files it lists; see fer.ensembling).

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
    if path.suffix == ".onnx":
        from fer.onnx_model import OnnxModel

        return _checked(OnnxModel(path), path)
    if path.suffix == ".tflite":
        from fer.litert_model import LiteRTModel

        return _checked(LiteRTModel(path), path)
    if path.suffix == ".json":
        return _checked(_assembled_ensemble(path), path)
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ModelError(
            f"{path}: not a Keras 3 .keras model file (corrupt, truncated, or another format). "
            "Re-download or re-train it; legacy .h5 files are not supported (exported .onnx and .tflite files are)."
        )
    try:
        with warnings.catch_warnings():
            # A file trained on JAX was compiled with jit_compile=True; on TensorFlow its augmentation layers
            # can't be, and Keras says so as it (rightly) falls back. Noise for whoever only predicts with it.
            warnings.filterwarnings("ignore", message="Model doesn't support `jit_compile=True`")
            model = keras.models.load_model(path, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a damaged archive
        raise ModelError(f"{path}: could not load the model ({type(exc).__name__}: {exc})") from exc
    return _checked(allow_xla_on_jax(model), path)


def _assembled_ensemble(path: Path) -> keras.Model:
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
    return build_ensemble([load_model(f) for f in files])


def _checked(model, path: Path):
    shape, out = tuple(model.input_shape[1:]), model.output_shape[-1]
    if shape != (48, 48, 1) or out != len(EMOTIONS):
        raise ModelError(
            f"{path}: expected a model from 48x48x1 faces to {len(EMOTIONS)} emotions, got {shape} -> {out}"
        )
    return model


_cache: dict[tuple[str, float], keras.Model] = {}


def resolve_model(model):
    """A keras.Model (or OnnxModel, LiteRTModel) as is; a path or None loaded once and cached (per file and mtime)."""
    if isinstance(model, keras.Model) or hasattr(model, "predict_on_batch"):
        return model
    path = Path(model) if model is not None else default_model_path()
    key = (str(path.resolve()), path.stat().st_mtime if path.is_file() else 0.0)
    if key not in _cache:
        _cache[key] = load_model(path)
    return _cache[key]


@dataclass
class Prediction:
    """The emotion of one face: top emotion, its probability, all seven probabilities.

    `box` is the face's (x, y, w, h) in the source image and `face_score` the detector's
    confidence when the face was found in a photo; both are None for a face crop.
    `source` says where the face came from: "detector", "padded" or "close-up" (found by
    detect_faces' close-up retries), "whole image" (nothing detected: the whole small image
    was taken as the face; face_score None), "box" (your own box) or "crop" (a face crop).
    """

    emotion: str
    probability: float
    probabilities: dict[str, float] = field(repr=False)
    box: tuple[int, int, int, int] | None = None
    face_score: float | None = None
    source: str = "crop"

    def to_dict(self) -> dict:
        return {
            "emotion": self.emotion,
            "probability": self.probability,
            "probabilities": self.probabilities,
            "box": list(self.box) if self.box is not None else None,
            "face_score": self.face_score,
            "source": self.source,
        }


def _prediction(probs: np.ndarray, face: Face | None = None) -> Prediction:
    top = int(np.argmax(probs))
    return Prediction(
        emotion=EMOTIONS[top],
        probability=float(probs[top]),
        probabilities={e: float(p) for e, p in zip(EMOTIONS, probs)},
        box=face.box if face is not None else None,
        face_score=face.score if face is not None else None,
        source=face.source if face is not None else "crop",
    )


def predict_emotions(
    images, model=None, channel_order: str = "rgb", tta: bool | str = False, batch_size: int = 256
) -> list[Prediction]:
    """Predict many face crops in batches. `images`: a list of paths/PIL images/arrays,
    or one (N, 48, 48) uint8 array of faces. See predict_emotion for the rest."""
    model = resolve_model(model)
    if isinstance(images, np.ndarray) and images.ndim == 3 and images.shape[1:] == (FACE_SIZE, FACE_SIZE):
        faces = images.astype(np.uint8, copy=False)
    elif len(images):
        faces = np.stack([to_face(as_array(im, channel_order)) for im in images])
    else:
        return []
    return [_prediction(p) for p in predict_proba(model, faces, tta=tta, batch_size=batch_size)]


def _name(image) -> str:
    return str(image) if isinstance(image, (str, Path)) else f"the {type(image).__name__} image"


def predict_photos(
    images,
    model=None,
    boxes=None,
    detector=DEFAULT_DETECTOR,
    margin: float = DEFAULT_MARGIN,
    align: bool = False,
    channel_order: str = "rgb",
    tta: bool | str = False,
    batch_size: int = 256,
    warn_no_face: bool = True,
    errors: str = "raise",
    close_ups: bool = True,
) -> list[list[Prediction]]:
    """One list of per-face predictions (left to right) for each photo in `images`.

    Faces of all photos go through the network together, in batches. A 48x48 image is
    taken as one face crop (box (0, 0, 48, 48)). `boxes`: one list of (x, y, w, h) per
    photo to skip detection. `detector`: "blazeface" (default), "haar", "mtcnn" or
    a callable gray->list[Face]. `align=True` levels the eyes first (needs a detector
    with eye landmarks: blazeface or mtcnn). A photo without faces gives an empty list and a warning.
    errors: "raise" (default) stops at the first image that cannot be read (ImageError);
    "skip" gives that image an empty list and a warning that names it and says why, and
    predicts all the others. close_ups=False turns off detect_faces' retries for close-ups and
    small crops (and its whole-image fallback), e.g. for video frames, which are scenes.
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
    arrays, readable = [], []
    for i, image in enumerate(images):
        try:
            arrays.append(as_array(image, channel_order))
            readable.append(i)
        except (ImageError, OSError) as exc:
            if errors == "raise":
                raise
            warnings.warn(f"Skipped {_name(image)}: {exc}", stacklevel=2)
    names = [_name(images[i]) for i in readable] if warn_no_face else None
    chosen = [boxes[i] for i in readable] if boxes is not None and len(boxes) == len(images) else boxes
    results = _predict_arrays(arrays, names, model, chosen, detector, margin, align, tta, batch_size, close_ups)
    by_index = dict(zip(readable, results))
    return [by_index.get(i, []) for i in range(len(images))]


def _predict_arrays(
    arrays, names, model, boxes, detector, margin, align, tta, batch_size, close_ups=True
) -> list[list[Prediction]]:
    """predict_photos on decoded RGB/gray arrays; `names` (or None: no warnings) label photos without faces."""
    if align and (boxes is not None or detector == "haar"):
        raise ValueError(
            "align=True levels the eyes, which needs eye landmarks: detector='blazeface' (the default) "
            f"and 'mtcnn' give them ({'your own boxes have' if boxes is not None else 'the Haar detector has'} "
            "none). Use one of those, or leave align off."
        )
    model = resolve_model(model)
    if boxes is not None and len(boxes) != len(arrays):
        raise ValueError(f"boxes must hold one list of boxes per image: {len(boxes)} lists for {len(arrays)} images")
    crops, found = [], []
    for i, arr in enumerate(arrays):
        if boxes is not None:
            faces = [Face(tuple(int(v) for v in b), source="box") for b in boxes[i]]
        elif arr.shape[:2] == (FACE_SIZE, FACE_SIZE):
            faces = [Face((0, 0, FACE_SIZE, FACE_SIZE), source="crop")]  # already a FER-style face crop
        else:
            faces = detect_faces(arr, detector, close_ups=close_ups, whole_image=close_ups)
        if align and any(face.left_eye is None or face.right_eye is None for face in faces):
            raise ValueError("align=True needs eye landmarks, and this detector gave a face without them")
        if not faces and names is not None:
            warnings.warn(f"No face found in {names[i]}", stacklevel=3)
        if names is not None and any(face.source == "whole image" for face in faces):
            warnings.warn(
                f"No face detected in {names[i]}; it is small and face-shaped, so the whole image was taken "
                "as one face crop (source='whole image'). Pass face_crop=True to say so, or a larger photo.",
                stacklevel=3,
            )
        crops += [crop_face(arr, face.box, margin, align=face if align else None) for face in faces]
        found.append(faces)
    probs = iter(predict_proba(model, np.stack(crops), tta=tta, batch_size=batch_size) if crops else [])
    return [[_prediction(next(probs), face) for face in faces] for faces in found]


def predict_faces(image, model=None, boxes=None, **options) -> list[Prediction]:
    """Per-face predictions for one photo, left to right; [] (and a warning) if it has no face.

    See predict_photos for `boxes`, `detector`, `margin`, `align`, `channel_order`, `tta`.
    """
    return predict_photos([image], model, boxes=[boxes] if boxes is not None else None, **options)[0]


def predict_emotion(image, model=None, face_crop: bool | None = None, boxes=None, **options):
    """The emotion of a face crop, or of every face in a photo.

    image: a file path, a PIL image or a NumPy array ((H, W) gray, (H, W, 3) RGB, or
        BGR with channel_order="bgr"; RGBA, 16-bit and EXIF-rotated files are handled).
    face_crop: True: the image is one face (any size; no detection) -> one Prediction.
        False: find the faces -> list of Predictions, one per face, left to right (empty,
        with a warning, when there is none). None (default): a 48x48 image is a crop,
        anything else a photo.
    boxes: your own face boxes [(x, y, w, h), ...] to skip detection -> list.
    model: a keras.Model, a model file (.keras, .json ensemble, .onnx, .tflite), or None: the default.
    Other options (detector, margin, align, channel_order, tta, close_ups): see predict_photos.

    >>> predict_emotion("face48.png").emotion                     # doctest: +SKIP
    >>> [(p.box, p.emotion) for p in predict_emotion("group.jpg")]  # doctest: +SKIP
    """
    settings = {
        "detector": DEFAULT_DETECTOR,
        "margin": DEFAULT_MARGIN,
        "align": False,
        "tta": False,
        "batch_size": 256,
        "close_ups": True,
    }
    unknown = set(options) - set(settings) - {"channel_order"}
    if unknown:
        raise TypeError(
            f"predict_emotion got unexpected option(s) {sorted(unknown)}; known: {sorted([*settings, 'channel_order'])}"
        )
    arr = as_array(image, options.pop("channel_order", "rgb"))  # decoded once, RGB or gray from here on
    if boxes is None and (face_crop if face_crop is not None else arr.shape[:2] == (FACE_SIZE, FACE_SIZE)):
        detection = sorted(
            k for k in ("detector", "margin", "align", "close_ups") if k in options and options[k] != settings[k]
        )
        if detection:
            raise ValueError(
                f"{_name(image)} is taken as one face crop (face_crop=True, or a 48x48 image), so no face is "
                f"detected and {detection} would do nothing. Pass face_crop=False to detect faces in it."
            )
        crop_options = {k: v for k, v in options.items() if k in ("tta", "batch_size")}
        return predict_emotions([arr], model=model, **crop_options)[0]
    settings.update(options)
    return _predict_arrays([arr], [_name(image)], model, [boxes] if boxes is not None else None, **settings)[0]
