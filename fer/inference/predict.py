"""Predicting emotions: `predict_emotion` (the faces in photos) and `predict_crop` (face crops), and the models
they run.

Inputs are paths, PIL images or arrays. A face crop of any size and colour is converted to a 48x48 gray
face exactly as the training data is (see fer.data.images); in a photo, faces are found and cropped by
fer.inference.faces first. Every function here is safe to call from several threads at once: detectors are
borrowed per call (fer.inference.faces.borrowed_detector) and a model file is loaded once.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fer.analysis.probabilities import adjust, classes_of, predict_proba, prior_weights, training_prior
from fer.data.images import FACE_SIZE, as_array, read_photo, to_face
from fer.errors import ImageError, ModelError
from fer.inference.faces import DEFAULT_DETECTOR, DEFAULT_MARGIN, Face, crop_face, detect_faces
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


@dataclass
class Prediction:
    """The emotion of one face: top emotion, its probability, every class's probability (7, or 8 for FER+).

    `box` is the face's (x, y, w, h) in the source image and `face_score` the detector's
    confidence when the face was found in a photo; both are None for a face crop.
    `source` says where the face came from: "detector", "padded" or "close-up" (found by
    detect_faces' close-up retries), "whole image" (nothing detected: the whole small image
    was taken as the face; face_score None), "box" (your own box) or "crop" (a face crop).
    `error` says why an input of a list could not be read (emotion None, no probabilities).
    """

    emotion: str | None
    probability: float
    probabilities: dict[str, float] = field(repr=False)
    box: tuple[int, int, int, int] | None = None
    face_score: float | None = None
    source: str = "crop"
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "emotion": self.emotion,
            "probability": self.probability,
            "probabilities": self.probabilities,
            "box": list(self.box) if self.box is not None else None,
            "face_score": self.face_score,
            "source": self.source,
            "error": self.error,
        }


class Faces(list):
    """The list of Predictions `predict_emotion` returns for one input (one per face, left to right).

    `error` says why the input could not be read (predict_emotion on a list: the others are still predicted).
    Code written for an old return type (`predict_emotion(crop).emotion`) gets an error saying what to write.
    """

    def __init__(self, faces=(), error: str | None = None):
        super().__init__(faces)
        self.error = error

    def __getattr__(self, name):
        if name in Prediction.__dataclass_fields__:
            raise AttributeError(
                f"predict_emotion returns a list of faces (Predictions), so it has no .{name}. For one face crop "
                f"use fer.predict_crop(image).{name}, or predict_emotion(image)[0].{name}."
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


@dataclass(frozen=True)
class _Answer:
    """How faces are turned into Predictions: the model, its head, the prior, TTA and batch size."""

    model: object
    labels: str | None = None
    prior: str | Mapping = "training"
    tta: bool | str = False
    batch_size: int = 256

    @classmethod
    def make(cls, model, labels=None, prior="training", tta=False, batch_size=256, engine=None) -> _Answer:
        model = resolve_model(model, engine=engine)
        classes_of(model, labels)  # a head the model lacks: ValueError now, before any work
        prior_weights(prior, training_prior(model, labels), classes_of(model, labels))  # a bad prior: now too
        return cls(model, labels, prior, tta, batch_size)

    @property
    def classes(self) -> tuple[str, ...]:
        return classes_of(self.model, self.labels)

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        probs = predict_proba(self.model, faces, tta=self.tta, batch_size=self.batch_size, labels=self.labels)
        return adjust(probs, prior_weights(self.prior, training_prior(self.model, self.labels), self.classes))

    def predictions(self, faces: np.ndarray, found: list[Face | None] | None = None) -> list[Prediction]:
        probs = self.probabilities(faces) if len(faces) else []
        return [_prediction(p, self.classes, f) for p, f in zip(probs, found or [None] * len(probs))]


def _prediction(probs: np.ndarray, classes: tuple[str, ...], face: Face | None = None) -> Prediction:
    top = int(np.argmax(probs))
    return Prediction(
        emotion=classes[top],
        probability=float(probs[top]),
        probabilities={e: float(p) for e, p in zip(classes, probs)},
        box=face.box if face is not None else None,
        face_score=face.score if face is not None else None,
        source=face.source if face is not None else "crop",
    )


def _failed(error: str) -> Prediction:
    return Prediction(None, float("nan"), {}, error=error)


def _skipped(image, index: int | None, error: str) -> str:
    """The warning for an input that could not be read (its error names the file already where it is one)."""
    name = _name(image, index)
    return f"Skipped {error}" if error.startswith(name) else f"Skipped {name}: {error}"


def _name(image, index: int | None = None) -> str:
    if isinstance(image, (str, Path)):
        return str(image)
    return f"the {type(image).__name__} image" + (f" at index {index}" if index is not None else "")


def inputs(image, boxes=None) -> tuple[bool, list, list | None]:
    """(a list was given, the inputs as a list, one list of boxes per input or None): single and list alike."""
    many = _is_many(image)
    if boxes is not None and not many:
        boxes = [boxes]
    return many, list(image) if many else [image], boxes


def _is_many(images) -> bool:
    """Whether `images` is several inputs (a list or tuple); an (N, 48, 48) array is predict_crop's own case."""
    return isinstance(images, (list, tuple))


def predict_crop(
    image,
    model=None,
    *,
    labels: str | None = None,
    prior: str | Mapping[str, float] = "training",
    tta: bool | str = False,
    channel_order: str = "rgb",
    batch_size: int = 256,
) -> Prediction | list[Prediction]:
    """The emotion of a face crop (any size and colour; no face detection): "face in, emotion out".

    image: a file path, a PIL image or a NumPy array of a face already cut out (a 48x48 FER-2013 face, or a
        larger crop, converted exactly as the training faces were). A list of these, or an (N, 48, 48) uint8
        array: one Prediction each, in order, classified in batches; an item that cannot be read gets a
        Prediction with `.error` set (emotion None) and a warning, and the others are predicted.
    model: a model object or file (.keras, .json ensemble, .onnx, .tflite); None: the default model.
    labels: which label set a dual-head model answers in ("ferplus": 8 classes, "fer2013": 7; None: its first);
        a single-head model accepts only its own (ValueError otherwise).
    prior: "training" (as the model learned: default), "uniform" (every emotion equally likely: e.g. posed
        photo sets with one photo per emotion) or {emotion: share}: probabilities re-weighted from the
        model's recorded training prior to this one (logit adjustment; docs/evaluation.md has the trade-off).
    tta: average over flipped/shifted views (True, "flip", "shift"; ~10x the work for "shift").
    channel_order: "rgb" (default; PIL, matplotlib, skimage) or "bgr" (OpenCV's cv2.imread and VideoCapture).
    batch_size: faces per network call (memory against speed; the answers are the same).

    >>> predict_crop("face48.png").emotion                        # doctest: +SKIP
    """
    answer = _Answer.make(model, labels, prior, tta, batch_size)
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[1:] == (FACE_SIZE, FACE_SIZE):
        return answer.predictions(image.astype(np.uint8, copy=False))
    if not _is_many(image):
        return answer.predictions(to_face(as_array(image, channel_order))[None])[0]
    faces, errors = [], {}
    for i, item in enumerate(image):
        try:
            faces.append(to_face(as_array(item, channel_order)))
        except (ImageError, OSError, ValueError) as exc:
            errors[i] = str(exc)
            warnings.warn(_skipped(item, i, str(exc)), stacklevel=2)
    done = iter(answer.predictions(np.stack(faces)) if faces else [])
    return [_failed(errors[i]) if i in errors else next(done) for i in range(len(image))]


def predict_emotion(
    image,
    model=None,
    *,
    labels: str | None = None,
    prior: str | Mapping[str, float] = "training",
    face_crop: bool | None = None,
    boxes=None,
    detector=DEFAULT_DETECTOR,
    margin: float = DEFAULT_MARGIN,
    align: bool = False,
    close_ups: bool = True,
    channel_order: str = "rgb",
    tta: bool | str = False,
    batch_size: int = 256,
) -> Faces | list[Faces]:
    """The emotion of every face in a photo (or of a face crop): a Faces list of Predictions, left to right.

    image: a file path, a PIL image or a NumPy array ((H, W) gray, (H, W, 3) RGB, or BGR with
        channel_order="bgr"; RGBA, 16-bit and EXIF-rotated files are handled). A list (or tuple) of these:
        one Faces per item, in order, the faces of all classified together in batches (much faster than a
        loop); an item that cannot be read gets an empty Faces whose `.error` says why (and a warning), and
        the others are predicted. A photo without a face gives an empty Faces and a warning, in both forms.
    model, labels, prior, tta, channel_order, batch_size: as in predict_crop.
    face_crop: True: each image is one face (no detection) -> a Faces of one Prediction (box None).
        False: find the faces. None (default): a 48x48 image is a crop, anything else a photo.
    boxes: your own face boxes [(x, y, w, h), ...] to skip detection (a list of such lists for a list).
    detector: "blazeface" (default), "blazeface-cascade" (the cascade re-measures its faces: before 0.5), "haar",
        "mtcnn" (research extra) or a callable gray -> list[Face].
    margin: share of the box added on each side before cropping (FER-2013's framing; docs/detection.md).
    align: level the eyes first (blazeface and mtcnn give eye landmarks).
    close_ups: retry a photo without a face as a close-up (off for video frames, which are scenes).

    >>> [(p.box, p.emotion) for p in predict_emotion("group.jpg")]  # doctest: +SKIP
    """
    answer = _Answer.make(model, labels, prior, tta, batch_size)
    many, images, boxes = inputs(image, boxes)
    if face_crop and (boxes is not None or detector != DEFAULT_DETECTOR or margin != DEFAULT_MARGIN or align):
        raise ValueError(
            f"{'these images are' if many else _name(image) + ' is'} taken as face crops (face_crop=True), so no "
            "face is detected and boxes/detector/margin/align would do nothing. Pass face_crop=False to detect faces."
        )
    detect = {"detector": detector, "margin": margin, "align": align, "close_ups": close_ups}
    results = []
    # Gray decoding: nothing here returns the pixels, and detection and the network read gray.
    found = _iter_photos(images, answer, boxes, channel_order, face_crop, gray=True, **detect)
    for r in found:
        name = _name(images[r.index], r.index if many else None)
        if r.faces.error is not None:
            if not many:
                raise ImageError(r.faces.error)
            warnings.warn(_skipped(images[r.index], r.index, r.faces.error), stacklevel=2)
        elif not r.faces:
            warnings.warn(f"No face found in {name}", stacklevel=2)
        elif any(p.source == "whole image" for p in r.faces):
            warnings.warn(
                f"No face detected in {name}; it is small and face-shaped, so the whole image was taken "
                "as one face crop (source='whole image'). Pass face_crop=True to say so, or a larger photo.",
                stacklevel=2,
            )
        results.append(r.faces)
    return results if many else results[0]


@dataclass
class PhotoResult:
    """One photo of iter_photos: its index in the input, the decoded array (None if unreadable), the scale of
    a reduced decode, and its faces (boxes in the photo's own pixels; `faces.error` says why it is unreadable)."""

    index: int
    array: np.ndarray | None
    scale: float
    faces: Faces


def iter_photos(
    images,
    model=None,
    *,
    labels: str | None = None,
    prior: str | Mapping[str, float] = "training",
    face_crop: bool | None = None,
    boxes=None,
    detector=DEFAULT_DETECTOR,
    margin: float = DEFAULT_MARGIN,
    align: bool = False,
    close_ups: bool = True,
    channel_order: str = "rgb",
    tta: bool | str = False,
    batch_size: int = 256,
    chunk: int = 64,
    engine: str | None = None,
):
    """PhotoResults for many photos, in order, as they are done: what predict_emotion(list) and the CLI run.

    Faces are detected photo by photo and classified `chunk` photos at a time in batches; the next chunk is
    read and detected in a second thread while the network classifies this one (decoding, detection and
    ONNX Runtime release the GIL). An unreadable input gives empty faces with `.error` set and the rest go on.
    No warnings: see `faces` being empty or `faces.error`. Options: as predict_emotion's.
    """
    answer = _Answer.make(model, labels, prior, tta, batch_size, engine)
    detect = {"detector": detector, "margin": margin, "align": align, "close_ups": close_ups}
    yield from _iter_photos(
        list(images), answer, boxes=boxes, channel_order=channel_order, face_crop=face_crop, chunk=chunk, **detect
    )


def _iter_photos(
    images: list, answer: _Answer, boxes, channel_order, face_crop, chunk: int = 64, gray: bool = False, **detect
):
    """iter_photos with its model resolved (an _Answer); `gray`: files decoded gray (PhotoResult.array too)."""
    if boxes is not None and len(boxes) != len(images):
        raise ValueError(f"boxes must hold one list of boxes per image: {len(boxes)} lists for {len(images)} images")

    def read_and_detect(start: int):
        decoded = []
        for i in range(start, min(start + chunk, len(images))):
            try:
                reduce = boxes is None and face_crop is not True
                arr, scale = _decoded(images[i], channel_order, reduce=reduce, gray=gray)
                decoded.append((i, arr, scale, None))
            except (ImageError, OSError) as exc:
                decoded.append((i, None, 1.0, str(exc)))
        ok = [d for d in decoded if d[1] is not None]
        chosen = [boxes[d[0]] for d in ok] if boxes is not None else None
        return decoded, _detected([d[1] for d in ok], chosen, face_crop=face_crop, **detect)

    for decoded, (crops, found) in _read_ahead(read_and_detect, range(0, len(images), chunk)):
        done = iter(answer.predictions(np.stack(crops), [f for faces in found for f in faces]) if crops else [])
        per_photo = iter([[next(done) for _ in faces] for faces in found])
        for i, arr, scale, error in decoded:
            if error is not None:
                yield PhotoResult(i, None, 1.0, Faces(error=error))
            else:
                faces = [_as_crop(p) for p in next(per_photo)]
                yield PhotoResult(i, arr, scale, Faces(in_original_pixels(faces, scale)))


def _read_ahead(work, starts: range):
    """work(start) for each start, in order; from the second on, each is computed in a second thread while the
    caller uses the one before (decoding, detection and ONNX Runtime release the GIL). One chunk: no thread."""
    if len(starts) <= 1:
        yield from (work(start) for start in starts)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(work, starts[0])
        for k in range(len(starts)):
            result = pending.result()
            if k + 1 < len(starts):
                pending = pool.submit(work, starts[k + 1])  # overlaps the caller's work on this one
            yield result


def _as_crop(p: Prediction) -> Prediction:
    """A face crop has no box in a photo: box and face_score None, whatever the function (issue 32)."""
    return replace(p, box=None, face_score=None) if p.source == "crop" else p


def _decoded(image, channel_order: str, reduce: bool = True, gray: bool = False) -> tuple[np.ndarray, float]:
    """(array, scale): a photo file is decoded at most MAX_PHOTO_SIDE px on a side (scale = how much smaller);
    arrays, PIL images and photos with your own boxes (in original pixels) as they are (scale 1). `gray`: a file
    is decoded gray (arrays stay as given: converting them costs what detection's own conversion does)."""
    if isinstance(image, (str, Path)):
        return read_photo(image, gray=gray) if reduce else read_photo(image, max_side=None, gray=gray)
    return as_array(image, channel_order), 1.0


def in_original_pixels(faces: list[Prediction], scale: float) -> list[Prediction]:
    """Boxes found in a reduced decode, mapped back to the photo's own pixels."""
    if scale == 1.0:
        return faces
    return [replace(p, box=tuple(int(round(v * scale)) for v in p.box)) if p.box is not None else p for p in faces]


def _detected(
    arrays, boxes, face_crop=None, detector=DEFAULT_DETECTOR, margin=DEFAULT_MARGIN, align=False, close_ups=True
) -> tuple[list, list[list[Face]]]:
    """(crops, faces per photo): the faces of decoded photos found (or given as `boxes`) and cut out.
    face_crop: True every array is one face crop; None a 48x48 array is one; False detection everywhere."""
    if align and (boxes is not None or detector == "haar"):
        raise ValueError(
            "align=True levels the eyes, which needs eye landmarks: detector='blazeface' (the default) "
            f"and 'mtcnn' give them ({'your own boxes have' if boxes is not None else 'the Haar detector has'} "
            "none). Use one of those, or leave align off."
        )
    crops, found = [], []
    for i, arr in enumerate(arrays):
        if boxes is not None:
            faces = [Face(tuple(int(v) for v in b), source="box") for b in boxes[i]]
        elif face_crop or (face_crop is None and arr.shape[:2] == (FACE_SIZE, FACE_SIZE)):
            faces = [Face((0, 0, arr.shape[1], arr.shape[0]), source="crop")]  # already a face crop
        else:
            faces = detect_faces(arr, detector, close_ups=close_ups, whole_image=close_ups)
        if align and any(face.left_eye is None or face.right_eye is None for face in faces):
            raise ValueError("align=True needs eye landmarks, and this detector gave a face without them")
        # A face crop is the face as it is: no margin around it (there is nothing around it).
        crops += [
            to_face(arr) if face.source == "crop" else crop_face(arr, face.box, margin, align=face if align else None)
            for face in faces
        ]
        found.append(faces)
    return crops, found


# Old names, kept for one release (0.4): each says what to call instead.
def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"fer.{old} is deprecated and goes in 0.5: use {new}", DeprecationWarning, stacklevel=3)


def predict_emotions(images, model=None, channel_order: str = "rgb", tta: bool | str = False, batch_size: int = 256):
    """Deprecated: predict_crop(list or (N, 48, 48) array) does this."""
    _deprecated("predict_emotions", "fer.predict_crop(images) (a list or an (N, 48, 48) array)")
    if isinstance(images, (list, tuple)) and not images:
        return []
    return predict_crop(
        images if isinstance(images, np.ndarray) else list(images),
        model,
        channel_order=channel_order,
        tta=tta,
        batch_size=batch_size,
    )


def predict_faces(image, model=None, boxes=None, **options) -> list[Prediction]:
    """Deprecated: predict_emotion(image) does this."""
    _deprecated("predict_faces", "fer.predict_emotion(image)")
    return list(predict_emotion(image, model, boxes=boxes, **options))


def predict_photos(images, model=None, boxes=None, errors: str = "raise", warn_no_face: bool = True, **options):
    """Deprecated: predict_emotion(list) does this (an unreadable item gets `.error`, the rest go on)."""
    _deprecated("predict_photos", "fer.predict_emotion(list_of_photos)")
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
    with warnings.catch_warnings():
        if not warn_no_face:
            warnings.filterwarnings("ignore", message="No face")
        results = predict_emotion(list(images), model, boxes=boxes, **options)
    failed = next((r.error for r in results if r.error), None)
    if failed and errors == "raise":
        raise ImageError(failed)
    return [list(r) for r in results]
