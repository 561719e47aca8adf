"""Predicting emotions: `predict_emotion` (the faces in photos) and `predict_crop` (face crops), and the photo
pipeline both run: decode -> find faces -> cut them out -> classify, in batches.

Inputs are paths, PIL images or arrays. A face crop of any size and colour is converted to a 48x48 gray
face exactly as the training data is (see fer.data.images); in a photo, faces are found and cropped by
fer.inference.faces and fer.inference.cropping first. A call's options are checked once (PredictOptions) and
passed down. Boxes are in the photo's own pixels from the detector to the user. Every function here is safe to
call from several threads at once: detectors are borrowed per call (fer.inference.detectors.registry) and a
model file is loaded once (fer.inference.models).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fer.data.images import FACE_SIZE, as_array, is_encoded, is_file_input, read_photo, to_face, to_gray
from fer.errors import ImageError
from fer.inference.cropping import DEFAULT_MARGIN
from fer.inference.detectors.base import Face
from fer.inference.detectors.registry import DEFAULT_DETECTOR
from fer.inference.options import PredictOptions


@dataclass
class Prediction:
    """The emotion of one face: top emotion, its probability, every class's probability (7, or 8 for FER+).

    `box` is the face's (x, y, w, h) in the source image and `face_score` the detector's
    confidence when the face was found in a photo; both are None for a face crop.
    `source` says where the face came from: "detector", "padded" or "close-up" (found by
    detect_faces' close-up retries), "whole image" (nothing detected: the whole small image
    was taken as the face; face_score None), "box" (your own box) or "crop" (a face crop).
    `error` says why an input of a list could not be read (emotion None, no probabilities).
    With landmarks=True: `landmarks`, the face mesh's (468, 3) points (x, y in the source image's pixels, z a
    depth on the same scale, smaller nearer the camera; MediaPipe's numbering, fer.inference.mesh.POINTS names
    a few) and `pose`, the head's (yaw, pitch, roll) in degrees (a HeadPose; signs in docs/usage.md); else None.
    """

    emotion: str | None
    probability: float
    probabilities: dict[str, float] = field(repr=False)
    box: tuple[int, int, int, int] | None = None
    face_score: float | None = None
    source: str = "crop"
    error: str | None = None
    landmarks: np.ndarray | None = field(default=None, repr=False)
    pose: tuple[float, float, float] | None = None

    def to_dict(self) -> dict:
        return {
            "emotion": self.emotion,
            "probability": self.probability,
            "probabilities": self.probabilities,
            "box": list(self.box) if self.box is not None else None,
            "face_score": self.face_score,
            "source": self.source,
            "error": self.error,
            "pose": self.pose._asdict() if self.pose is not None else None,
            "landmarks": self.landmarks.round(2).tolist() if self.landmarks is not None else None,
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


def _prediction(probs: np.ndarray, classes: tuple[str, ...], face: Face | None = None, scale: float = 1.0, mesh=None):
    top = int(np.argmax(probs))
    return Prediction(
        emotion=classes[top],
        probability=float(probs[top]),
        probabilities={e: float(p) for e, p in zip(classes, probs)},
        **_located(face, scale),
        **_meshed(mesh, scale),
    )


def _meshed(mesh, scale: float) -> dict:
    """A Prediction's landmarks and pose from its face's mesh (fer.inference.mesh.Mesh, in the decoded image's
    pixels: scaled to the photo's own, as boxes are), or none."""
    if mesh is None:
        return {}
    return {"landmarks": mesh.points * np.float32(scale) if scale != 1.0 else mesh.points, "pose": mesh.pose}


def _located(face: Face | None, scale: float) -> dict:
    """A Prediction's box, face_score and source for `face`, its box taken from the decoded image's pixels to the
    photo's own (`scale`, photo px per decoded px): here, once, on its way to the user."""
    if face is None or face.source == "crop":  # a face crop has no box in a photo (issue 32)
        return {"box": None, "face_score": None, "source": "crop"}
    return {"box": _scaled(face.box, scale), "face_score": face.score, "source": face.source}


def _scaled(box, scale: float) -> tuple[int, int, int, int]:
    return box if scale == 1.0 else tuple(int(round(v * scale)) for v in box)


def predictions(options: PredictOptions, crops, faces: list[Face] | None = None, meshes=None) -> list[Prediction]:
    """Predictions for 48x48 crops (a list or (N, 48, 48) array), classified in one batch, each with its face's
    box and score where `faces` (in the photo's pixels) are given, and its mesh's landmarks where `meshes` are."""
    probs = options.probabilities(_stacked(crops))
    faces, meshes = faces or [None] * len(probs), meshes or [None] * len(probs)
    return [_prediction(p, options.classes, f, mesh=m) for p, f, m in zip(probs, faces, meshes)]


def _stacked(crops) -> np.ndarray:
    return np.asarray(crops, np.uint8).reshape(-1, FACE_SIZE, FACE_SIZE)


def _failed(error: str) -> Prediction:
    return Prediction(None, float("nan"), {}, error=error)


def _skipped(image, index: int | None, error: str) -> str:
    """The warning for an input that could not be read (its error names the file already where it is one)."""
    name = _name(image, index)
    return f"Skipped {error}" if error.startswith(name) else f"Skipped {name}: {error}"


def _name(image, index: int | None = None) -> str:
    if isinstance(image, (str, Path)):
        return str(image)
    kind = "bytes" if is_encoded(image) and not hasattr(image, "read") else type(image).__name__
    return f"the {kind} image" + (f" at index {index}" if index is not None else "")


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

    image: a file path, bytes or a binary file object of an image file, a PIL image or a NumPy array of a face
        already cut out (a 48x48 FER-2013 face, or a larger crop, converted exactly as the training faces were).
        A list of these, or an (N, 48, 48) uint8 array: one Prediction each, in order, classified in batches; an
        item that cannot be read gets a Prediction with `.error` set (emotion None) and a warning, and the others
        are predicted.
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
    options = PredictOptions.make(
        model, labels=labels, prior=prior, tta=tta, batch_size=batch_size, channel_order=channel_order
    )
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[1:] == (FACE_SIZE, FACE_SIZE):
        return predictions(options, image.astype(np.uint8, copy=False))
    if not _is_many(image):
        return predictions(options, to_face(as_array(image, channel_order))[None])[0]
    faces, errors = [], {}
    for i, item in enumerate(image):
        try:
            faces.append(to_face(as_array(item, channel_order)))
        except (ImageError, OSError, ValueError) as exc:
            errors[i] = str(exc)
            warnings.warn(_skipped(item, i, str(exc)), stacklevel=2)
    done = iter(predictions(options, faces))
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
    landmarks: bool = False,
) -> Faces | list[Faces]:
    """The emotion of every face in a photo (or of a face crop): a Faces list of Predictions, left to right.

    image: a file path, bytes or a binary file object of an image file (an upload, an HTTP body), a PIL image or a
        NumPy array ((H, W) gray, (H, W, 3) RGB, or BGR with channel_order="bgr"; RGBA, 16-bit and EXIF-rotated
        files are handled). A list (or tuple) of these:
        one Faces per item, in order, the faces of all classified together in batches (much faster than a
        loop); an item that cannot be read gets an empty Faces whose `.error` says why (and a warning), and
        the others are predicted. A photo without a face gives an empty Faces and a warning, in both forms.
    model, labels, prior, tta, channel_order, batch_size: as in predict_crop.
    face_crop: True: each image is one face (no detection) -> a Faces of one Prediction (box None).
        False: find the faces. None (default): a 48x48 image is a crop, anything else a photo.
    boxes: your own face boxes [(x, y, w, h), ...] to skip detection (a list of such lists for a list).
    detector: a name from fer.inference.detectors.registry.DETECTORS: "blazeface" (default), "blazeface-cascade"
        (the cascade re-measures its faces: before 0.5), "haar", "mtcnn" (research extra); or a callable
        gray -> list[Face].
    margin: share of the box added on each side before cropping (FER-2013's framing; docs/detection.md).
    align: level the eyes first (blazeface and mtcnn give eye landmarks).
    close_ups: retry a photo without a face as a close-up (off for video frames, which are scenes).
    landmarks: also run the face mesh: each Prediction's `landmarks` (468 points) and head `pose` (~2-4 ms a face).

    >>> [(p.box, p.emotion) for p in predict_emotion("group.jpg")]  # doctest: +SKIP
    """
    many, images, boxes = inputs(image, boxes)
    if face_crop and (boxes is not None or detector != DEFAULT_DETECTOR or margin != DEFAULT_MARGIN or align):
        raise ValueError(
            f"{'these images are' if many else _name(image) + ' is'} taken as face crops (face_crop=True), so no "
            "face is detected and boxes/detector/margin/align would do nothing. Pass face_crop=False to detect faces."
        )
    options = PredictOptions.make(
        model,
        labels=labels,
        prior=prior,
        tta=tta,
        batch_size=batch_size,
        face_crop=face_crop,
        detector=detector,
        margin=margin,
        align=align,
        close_ups=close_ups,
        channel_order=channel_order,
        landmarks=landmarks,
    )
    results = []
    # Gray decoding: nothing here returns the pixels, and detection and the network read gray.
    for r in photo_results(images, options, boxes, gray=True):
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
    """One photo of iter_photos: its index in the input, the decoded array (None if unreadable), the scale of a
    reduced decode (photo px per array px), its faces (boxes in the photo's own pixels; `faces.error` says why it
    is unreadable) and the (n_faces, 48, 48) crops the network saw."""

    index: int
    array: np.ndarray | None
    scale: float
    faces: Faces
    crops: np.ndarray = field(default_factory=lambda: np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8), repr=False)

    def annotated(self, path: str | Path | None = None, landmarks: bool = False) -> np.ndarray:
        """The decoded array with each face's box and emotion drawn (a face crop: a box round the whole image);
        `landmarks`: each face's mesh and head pose too (made with landmarks=True)."""
        from fer.inference.drawing import annotate

        whole = (0, 0, self.array.shape[1], self.array.shape[0])
        # The one way back to the decoded array's pixels: it is smaller than the photo only past MAX_PHOTO_SIDE.
        drawn = [replace(p, box=_scaled(p.box, 1 / self.scale) if p.box else whole, landmarks=_points(p, self.scale))
                 for p in self.faces]  # fmt: skip
        return annotate(self.array, drawn, path, landmarks=landmarks)


def _points(p: Prediction, scale: float):
    """A Prediction's landmarks in the decoded array's pixels (they are in the photo's own)."""
    return p.landmarks / np.float32(scale) if p.landmarks is not None and scale != 1.0 else p.landmarks


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
    landmarks: bool = False,
) -> Iterator[PhotoResult]:
    """PhotoResults for many photos, in order, as they are done: what predict_emotion(list) runs.

    Faces are detected photo by photo and classified `chunk` photos at a time in batches; the next chunk is
    read and detected in a second thread while the network classifies this one (decoding, detection and
    ONNX Runtime release the GIL). An unreadable input gives empty faces with `.error` set and the rest go on.
    No warnings: see `faces` being empty or `faces.error`. Options: as predict_emotion's.
    """
    options = PredictOptions.make(
        model,
        engine=engine,
        labels=labels,
        prior=prior,
        tta=tta,
        batch_size=batch_size,
        face_crop=face_crop,
        detector=detector,
        margin=margin,
        align=align,
        close_ups=close_ups,
        channel_order=channel_order,
        landmarks=landmarks,
    )
    yield from photo_results(list(images), options, boxes, chunk=chunk)


@dataclass
class _Found:
    """One photo decoded, its faces found (in the decoded image's pixels) and cut out; or why it is unreadable."""

    index: int
    array: np.ndarray | None
    scale: float
    faces: list[Face] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    error: str | None = None
    meshes: list | None = None  # with landmarks=True: each face's fer.inference.mesh.Mesh


def photo_results(
    images: list, options: PredictOptions, boxes=None, chunk: int = 64, gray: bool = False
) -> Iterator[PhotoResult]:
    """iter_photos with its options built: decode -> find -> cut (`chunk` photos, read ahead) -> classify.
    `boxes`: one list per image, in its pixels; `gray`: files decoded gray (PhotoResult.array too)."""
    if boxes is not None and len(boxes) != len(images):
        raise ValueError(f"boxes must hold one list of boxes per image: {len(boxes)} lists for {len(images)} images")
    if options.align and boxes is not None:
        raise ValueError(
            "align=True levels the eyes, which needs eye landmarks: your own boxes have none. Let a detector find "
            "the faces (the default gives eye points), or leave align off."
        )

    def found(start: int) -> list[_Found]:
        return [_find(images[i], i, options, boxes, gray) for i in range(start, min(start + chunk, len(images)))]

    for photos in _read_ahead(found, range(0, len(images), chunk)):
        probs = iter(options.probabilities(_stacked([c for photo in photos for c in photo.crops])))
        for photo in photos:  # the chunk's faces went through the network together
            if photo.error is not None:
                yield PhotoResult(photo.index, None, 1.0, Faces(error=photo.error))
                continue
            meshes = photo.meshes or [None] * len(photo.faces)
            faces = Faces(
                _prediction(next(probs), options.classes, f, photo.scale, m) for f, m in zip(photo.faces, meshes)
            )
            yield PhotoResult(photo.index, photo.array, photo.scale, faces, _stacked(photo.crops))


def _find(image, index: int, options: PredictOptions, boxes, gray: bool) -> _Found:
    """Decode one input, find its faces and cut them out (an unreadable one: its error, the rest go on)."""
    try:
        reduce = boxes is None and options.face_crop is not True  # your boxes are in the photo's own pixels
        array, scale = _decoded(image, options.channel_order, reduce=reduce, gray=gray)
    except (ImageError, OSError) as exc:
        return _Found(index, None, 1.0, error=str(exc))
    luma = to_gray(array)  # once: detection and every face's crop read it (the mesh reads colour)
    faces = options.find(luma, boxes[index] if boxes is not None else None)
    return _Found(
        index, array, scale, faces, [options.cut(luma, f) for f in faces], meshes=options.meshes(array, faces)
    )


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


def _decoded(image, channel_order: str, reduce: bool = True, gray: bool = False) -> tuple[np.ndarray, float]:
    """(array, scale): a photo file is decoded at most MAX_PHOTO_SIDE px on a side (scale = how much smaller);
    arrays, PIL images and photos with your own boxes (in original pixels) as they are (scale 1). `gray`: a file
    is decoded gray (arrays stay as given: converting them costs what detection's own conversion does)."""
    if is_file_input(image):  # a path, or a file's bytes (an upload, an HTTP body, a file object)
        return read_photo(image, gray=gray) if reduce else read_photo(image, max_side=None, gray=gray)
    return as_array(image, channel_order), 1.0
