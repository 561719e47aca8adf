"""`predict_emotion`: the emotions of the faces in a photo, or of one face crop.

Inputs are paths, PIL images or arrays. A face crop of any size and colour is
converted to a 48x48 gray face exactly as the training data is (see fer.data.images);
in a photo, faces are found and cropped by fer.inference.faces first.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras
import numpy as np

from fer.analysis.evaluation import predict_proba
from fer.data.ferplus import classes_for_size
from fer.data.images import FACE_SIZE, as_array, read_photo, to_face
from fer.errors import ImageError
from fer.inference.faces import DEFAULT_DETECTOR, DEFAULT_MARGIN, Face, crop_face, detect_faces
from fer.modeling.files import check_model, default_model_path, load_network


def load_model(path: str | Path | None = None):
    """Load an emotion model: a `.keras` file (safe_mode=True: no arbitrary code runs) or a `.json`
    ensemble (fer.modeling.files.load_network), or an exported `.onnx` file (run by ONNX Runtime,
    fer.inference.onnx_model) or `.tflite` file (run by LiteRT, fer.inference.litert_model).

    path=None loads the default model (models/fer_ensemble.json, or $FER_MODEL).
    Raises ModelError saying what is wrong and what to do.
    """
    path = Path(path) if path is not None else default_model_path()
    if path.suffix == ".onnx" and path.is_file():
        from fer.inference.onnx_model import OnnxModel

        return check_model(OnnxModel(path), path)
    if path.suffix == ".tflite" and path.is_file():
        from fer.inference.litert_model import LiteRTModel

        return check_model(LiteRTModel(path), path)
    return load_network(path)


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
    """The emotion of one face: top emotion, its probability, every class's probability (7, or 8 for a FER+ model).

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
    classes = classes_for_size(len(probs))  # FER-2013's 7 emotions, or FER+'s 8 (contempt too)
    top = int(np.argmax(probs))
    return Prediction(
        emotion=classes[top],
        probability=float(probs[top]),
        probabilities={e: float(p) for e, p in zip(classes, probs)},
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
    arrays, scales, readable = [], [], []
    for i, image in enumerate(images):
        try:
            arr, scale = _decoded(image, channel_order, reduce=boxes is None)
            arrays.append(arr)
            scales.append(scale)
            readable.append(i)
        except (ImageError, OSError) as exc:
            if errors == "raise":
                raise
            warnings.warn(f"Skipped {_name(image)}: {exc}", stacklevel=2)
    names = [_name(images[i]) for i in readable] if warn_no_face else None
    chosen = [boxes[i] for i in readable] if boxes is not None and len(boxes) == len(images) else boxes
    results = _predict_arrays(arrays, names, model, chosen, detector, margin, align, tta, batch_size, close_ups)
    results = [in_original_pixels(faces, scale) for faces, scale in zip(results, scales)]
    by_index = dict(zip(readable, results))
    return [by_index.get(i, []) for i in range(len(images))]


def _decoded(image, channel_order: str, reduce: bool = True) -> tuple[np.ndarray, float]:
    """(array, scale): a photo file is decoded at most MAX_PHOTO_SIDE px on a side (scale = how much smaller);
    arrays, PIL images and photos with your own boxes (in original pixels) as they are (scale 1)."""
    if reduce and isinstance(image, (str, Path)):
        return read_photo(image)
    return as_array(image, channel_order), 1.0


def in_original_pixels(faces: list[Prediction], scale: float) -> list[Prediction]:
    """Boxes found in a reduced decode, mapped back to the photo's own pixels."""
    if scale == 1.0:
        return faces
    return [replace(p, box=tuple(int(round(v * scale)) for v in p.box)) if p.box is not None else p for p in faces]


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


class Faces(list):
    """The list of Predictions `predict_emotion` returns (one per face, left to right).

    Since 0.2 `predict_emotion` returns this list for a face crop too (one element), so
    `for face in predict_emotion(x)` works on any input. Code written for the old return type
    (`predict_emotion(crop).emotion`) gets an error that says what to write instead.
    """

    def __getattr__(self, name):
        if name in Prediction.__dataclass_fields__:
            raise AttributeError(
                f"predict_emotion returns a list of faces (Predictions), so it has no .{name}. For one face crop "
                f"use fer.predict_crop(image).{name}, or predict_emotion(image)[0].{name}."
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def predict_crop(image, model=None, channel_order: str = "rgb", tta: bool | str = False) -> Prediction:
    """The emotion of one face crop (any size and colour; no face detection): "face in, emotion out".

    image: a file path, a PIL image or a NumPy array of a face already cut out (a 48x48 FER-2013
    face, or a larger crop, converted exactly as the training faces were). For photos, use predict_emotion.

    >>> predict_crop("face48.png").emotion                        # doctest: +SKIP
    """
    return predict_emotions([image], model=model, channel_order=channel_order, tta=tta)[0]


def predict_emotion(image, model=None, face_crop: bool | None = None, boxes=None, **options) -> Faces:
    """The emotion of every face in a photo, or of a face crop: always a list of Predictions.

    image: a file path, a PIL image or a NumPy array ((H, W) gray, (H, W, 3) RGB, or
        BGR with channel_order="bgr"; RGBA, 16-bit and EXIF-rotated files are handled).
    face_crop: True: the image is one face (any size; no detection) -> a list of one Prediction.
        False: find the faces -> one Prediction per face, left to right (empty, with a warning,
        when there is none). None (default): a 48x48 image is a crop, anything else a photo.
    boxes: your own face boxes [(x, y, w, h), ...] to skip detection.
    model: a keras.Model, a model file (.keras, .json ensemble, .onnx, .tflite), or None: the default.
    Other options (detector, margin, align, channel_order, tta, close_ups): see predict_photos.
    One face crop and one Prediction back: predict_crop.

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
    # Decoded once, RGB or gray from here on; a large photo file at a reduced size (boxes come back in its pixels).
    arr, scale = _decoded(image, options.pop("channel_order", "rgb"), reduce=boxes is None and face_crop is not True)
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
        return Faces(predict_emotions([arr], model=model, **crop_options))
    settings.update(options)
    faces = _predict_arrays([arr], [_name(image)], model, [boxes] if boxes is not None else None, **settings)[0]
    return Faces(in_original_pixels(faces, scale))
