"""`predict_emotion`: the emotions of the faces in a photo, or of one face crop.

Inputs are paths, PIL images or arrays. A face crop of any size and colour is
converted to a 48x48 gray face exactly as the training data is (see fer.data.images);
in a photo, faces are found and cropped by fer.inference.faces first.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fer.analysis.evaluation import predict_proba
from fer.data.ferplus import classes_for_size
from fer.data.images import FACE_SIZE, as_array, read_photo, to_face
from fer.errors import ImageError, ModelError
from fer.inference.faces import DEFAULT_DETECTOR, DEFAULT_MARGIN, Face, crop_face, detect_faces
from fer.modeling.files import check_model, default_model_path, load_network

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


def load_model(path: str | Path | None = None, engine: str = "keras"):
    """Load an emotion model: a `.keras` file (safe_mode=True: no arbitrary code runs) or a `.json`
    ensemble (fer.modeling.files.load_network), or an exported `.onnx` file (run by ONNX Runtime,
    fer.inference.onnx_model) or `.tflite` file (run by LiteRT, fer.inference.litert_model).

    path=None loads the default model (models/ferplus_votes.keras, or $FER_MODEL).
    engine (for `.keras`/`.json` files): "keras" (default: the Keras model itself, for training,
    evaluation, export), "auto" (its ONNX twin `onnx/<name>.onnx` beside it where one was made from
    exactly this file, else Keras) or "onnx" (the twin, or ModelError). predict_emotion uses "auto".
    Raises ModelError saying what is wrong and what to do.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
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
    return load_network(path)


_cache: dict[tuple[str, float, str], object] = {}  # keras.Model, OnnxModel or LiteRTModel


def resolve_model(model, engine: str | None = None):
    """A keras.Model (or OnnxModel, LiteRTModel) as is; a path or None loaded once and cached (per file, mtime
    and engine). engine: see load_model; None: default_engine() ("auto": the ONNX twin where there is one)."""
    if hasattr(model, "predict_on_batch"):  # a keras.Model, OnnxModel or LiteRTModel (keras not imported here)
        return model
    engine = engine or default_engine()
    path = Path(model) if model is not None else default_model_path()
    key = (str(path.resolve()), path.stat().st_mtime if path.is_file() else 0.0, engine)
    if key not in _cache:
        _cache[key] = load_model(path, engine=engine)
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
    model = resolve_model(model)
    return _classified(_detected(arrays, names, boxes, detector, margin, align, close_ups), model, tta, batch_size)


def _detected(
    arrays, names, boxes, detector, margin, align, close_ups=True, small_crops=True
) -> tuple[list, list[list[Face]]]:
    """(crops, faces per photo): the faces of decoded photos found (or given as `boxes`) and cut out.
    A 48x48 array is one face crop unless `small_crops` is False."""
    if align and (boxes is not None or detector == "haar"):
        raise ValueError(
            "align=True levels the eyes, which needs eye landmarks: detector='blazeface' (the default) "
            f"and 'mtcnn' give them ({'your own boxes have' if boxes is not None else 'the Haar detector has'} "
            "none). Use one of those, or leave align off."
        )
    if boxes is not None and len(boxes) != len(arrays):
        raise ValueError(f"boxes must hold one list of boxes per image: {len(boxes)} lists for {len(arrays)} images")
    crops, found = [], []
    for i, arr in enumerate(arrays):
        if boxes is not None:
            faces = [Face(tuple(int(v) for v in b), source="box") for b in boxes[i]]
        elif small_crops and arr.shape[:2] == (FACE_SIZE, FACE_SIZE):
            faces = [Face((0, 0, FACE_SIZE, FACE_SIZE), source="crop")]  # already a FER-style face crop
        else:
            faces = detect_faces(arr, detector, close_ups=close_ups, whole_image=close_ups)
        if align and any(face.left_eye is None or face.right_eye is None for face in faces):
            raise ValueError("align=True needs eye landmarks, and this detector gave a face without them")
        if not faces and names is not None:
            warnings.warn(f"No face found in {names[i]}", stacklevel=4)
        if names is not None and any(face.source == "whole image" for face in faces):
            warnings.warn(
                f"No face detected in {names[i]}; it is small and face-shaped, so the whole image was taken "
                "as one face crop (source='whole image'). Pass face_crop=True to say so, or a larger photo.",
                stacklevel=4,
            )
        # A face crop is the face as it is: no margin around it (there is nothing around it).
        crops += [
            to_face(arr) if face.source == "crop" else crop_face(arr, face.box, margin, align=face if align else None)
            for face in faces
        ]
        found.append(faces)
    return crops, found


def _classified(detected, model, tta, batch_size) -> list[list[Prediction]]:
    """Every detected face of several photos through the network in batches, then back to its photo."""
    crops, found = detected
    probs = iter(predict_proba(model, np.stack(crops), tta=tta, batch_size=batch_size) if crops else [])
    return [[_prediction(next(probs), face) for face in faces] for faces in found]


@dataclass
class PhotoResult:
    """One photo of iter_photos: its index in the input, the decoded array (None if unreadable), the scale of
    a reduced decode, and its faces (boxes in the photo's own pixels; `faces.error` says why it is unreadable)."""

    index: int
    array: np.ndarray | None
    scale: float
    faces: Faces


def iter_photos(images, model=None, chunk: int = 64, **options):
    """PhotoResults for many photos, in order, as they are done: what predict_emotion(list) and the CLI run.

    Faces are detected photo by photo and classified `chunk` photos at a time in batches; the next chunk is
    read and detected in a second thread while the network classifies this one (decoding, detection and
    ONNX Runtime release the GIL). An unreadable input gives empty faces with `.error` set and the rest go on.
    Options: those of predict_photos (detector, margin, align, channel_order, tta, batch_size, close_ups,
    boxes: one list per photo); warnings for photos without a face are off (see `faces` being empty).
    """
    from concurrent.futures import ThreadPoolExecutor

    images = list(images)
    boxes = options.pop("boxes", None)
    channel_order = options.pop("channel_order", "rgb")
    tta, batch_size = options.pop("tta", False), options.pop("batch_size", 256)
    detect = {"detector": DEFAULT_DETECTOR, "margin": DEFAULT_MARGIN, "align": False, "close_ups": True}
    detect["small_crops"] = options.pop("small_crops", True)
    unknown = set(options) - set(detect)
    if unknown:
        raise TypeError(f"unexpected option(s) {sorted(unknown)}; known: {sorted(detect)} and boxes, tta, ...")
    detect.update(options)
    if boxes is not None and len(boxes) != len(images):
        raise ValueError(f"boxes must hold one list of boxes per image: {len(boxes)} lists for {len(images)} images")
    model = resolve_model(model)

    def read_and_detect(start: int):
        decoded = []
        for i in range(start, min(start + chunk, len(images))):
            try:
                arr, scale = _decoded(images[i], channel_order, reduce=boxes is None)
                decoded.append((i, arr, scale, None))
            except (ImageError, OSError) as exc:
                decoded.append((i, None, 1.0, str(exc)))
        ok = [d for d in decoded if d[1] is not None]
        chosen = [boxes[d[0]] for d in ok] if boxes is not None else None
        return decoded, _detected([d[1] for d in ok], None, chosen, **detect)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read_and_detect, 0) if images else None
        for start in range(0, len(images), chunk):
            decoded, detected = pending.result()
            if start + chunk < len(images):
                pending = pool.submit(read_and_detect, start + chunk)  # overlaps the classification below
            results = iter(_classified(detected, model, tta, batch_size))
            for i, arr, scale, error in decoded:
                if error is not None:
                    yield PhotoResult(i, None, 1.0, Faces(error=error))
                else:
                    yield PhotoResult(i, arr, scale, Faces(in_original_pixels(next(results), scale)))


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

    def __init__(self, faces=(), error: str | None = None):
        super().__init__(faces)
        self.error = error  # many photos at once (predict_emotion(list)): why this one could not be read

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


def predict_emotion(image, model=None, face_crop: bool | None = None, boxes=None, **options) -> Faces | list[Faces]:
    """The emotion of every face in a photo, or of a face crop: always a list of Predictions.

    image: a file path, a PIL image or a NumPy array ((H, W) gray, (H, W, 3) RGB, or
        BGR with channel_order="bgr"; RGBA, 16-bit and EXIF-rotated files are handled).
        A list (or tuple) of these: one Faces per item, in order, the faces of all of them classified
        together in batches (much faster than a loop; see iter_photos); an unreadable item gets an empty
        Faces whose `.error` says why, and the others are predicted. `boxes` is then one list per item.
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
    if isinstance(image, (list, tuple)):
        return _predict_many(list(image), model, face_crop, boxes, options)
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


def _predict_many(images: list, model, face_crop: bool | None, boxes, options: dict) -> list[Faces]:
    """predict_emotion on a list: one Faces per item (see predict_emotion)."""
    if face_crop is True:
        if boxes is not None or set(options) - {"tta", "batch_size", "channel_order"}:
            raise ValueError("face_crop=True takes each item as one face crop: no boxes or detection options")
        channel_order = options.get("channel_order", "rgb")
        faces, errors = [], {}
        for i, item in enumerate(images):
            try:
                faces.append(to_face(as_array(item, channel_order)))
            except (ImageError, OSError, ValueError) as exc:
                errors[i] = str(exc)
        crop = {k: v for k, v in options.items() if k in ("tta", "batch_size")}
        done = iter(predict_emotions(np.stack(faces), model=model, **crop) if faces else [])
        return [Faces(error=errors[i]) if i in errors else Faces([next(done)]) for i in range(len(images))]
    results = [r.faces for r in iter_photos(images, model, boxes=boxes, small_crops=face_crop is None, **options)]
    # A 48x48 item is a face crop, as in predict_emotion(one): no box (predict_photos gives it (0, 0, 48, 48)).
    return [
        Faces([replace(p, box=None, face_score=None) if p.source == "crop" else p for p in f], f.error) for f in results
    ]
