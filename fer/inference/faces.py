"""Finding faces in photos and cutting them out the way FER-2013 faces look.

Detection works offline: BlazeFace (fer.inference.blazeface, its model file inside the package) by
default, OpenCV's Haar cascade (shipped in the opencv-python-headless 4.x wheel), or MTCNN
(installed with the project, weights inside its wheel; more accurate, with eye landmarks) when
asked for; MTCNN is also the last second opinion on close-ups the others miss (see
detect_faces). Large photos are downscaled for detection only; faces are cropped from the
full-resolution image.

The crop: the detector's box grown by `margin` on each side, made square, padded by
replicating edge pixels where it leaves the image (faces at the border), converted to gray
and shrunk to 48x48 with area averaging, as `fer.data.images.to_face` does for training data.
FER-2013's faces are the Haar box itself, and the network is sensitive to framing, so crops
follow it (docs/detection.md); DEFAULT_MARGIN was chosen on validation accuracy.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import cv2
import numpy as np

from fer.data.images import FACE_SIZE, to_face, to_gray
from fer.errors import MissingPackageError
from fer.inference.blazeface import BlazeFaceDetector
from fer.inference.detectors import (  # noqa: F401  (re-exported)
    Detector,
    Face,
    HaarDetector,
    MTCNNDetector,
    as_detector,
    iou,
    mostly_inside,
)

# 4% of the box on each side: margin 0 reproduces FER-2013's pixels best, but the network is most accurate
# on slightly looser crops (chosen on validation close-ups; numbers in docs/experiments.md, "Face crops").
DEFAULT_MARGIN = 0.04
# Close-up retries (detect_faces): small images are upscaled to about CLOSE_UP_SIDE px and every
# retry adds a replicated border of CLOSE_UP_BORDER of the side; the relaxed pass accepts only a
# face covering CLOSE_UP_AREA of the image; images up to SMALL_SIDE px may be one whole face crop.
CLOSE_UP_SIDE = 320
CLOSE_UP_BORDER = 0.25
CLOSE_UP_AREA = 0.2
SMALL_SIDE = 400
# The bordered retry looks only for faces at least RETRY_MIN_FACE of the image's shorter side: a face
# the border (or upscaling a small image) can reveal is one that fills much of the frame.
RETRY_MIN_FACE = 0.25
# A first-pass face covering at least REFIT_AREA of the image is re-measured on the bordered copy:
# without background around it the cascade boxes a face about 14% too tight (see detect_faces).
REFIT_AREA = 0.4
# A face covering area A of the image is at least sqrt(A) px on a side when square; searches for such
# a face ask the detector for sides of at least AREA_SIDE_SLACK * sqrt(A), room for oblong boxes.
AREA_SIDE_SLACK = 0.8


DEFAULT_DETECTOR = "blazeface"
_DETECTORS: dict[str, Callable[[], Callable]] = {
    "blazeface": BlazeFaceDetector,
    # The default before 0.5: BlazeFace's faces re-measured by the cascade (slower; docs/detection.md).
    "blazeface-cascade": lambda: BlazeFaceDetector(cascade=True),
    "haar": HaarDetector,
    "mtcnn": MTCNNDetector,
}
# Idle detectors by name. OpenCV's cascade (the Haar detector, BlazeFace's re-measure) keeps per-call state, so
# two threads sharing one instance get wrong boxes or a cv2.error: each call borrows one no other thread holds.
_idle: dict[str, list[Callable]] = {}
_idle_lock = threading.Lock()


def get_detector(detector=DEFAULT_DETECTOR) -> Callable[[np.ndarray], list[Face]]:
    """A new detector by name ("blazeface", "blazeface-cascade", "haar", "mtcnn"); a callable is returned as is.

    An instance is for one thread at a time; detect_faces borrows pooled ones (borrowed_detector)."""
    if callable(detector):
        return detector
    if detector not in _DETECTORS:
        raise ValueError(f"Unknown face detector {detector!r}; choose from {sorted(_DETECTORS)} or pass a callable")
    return _DETECTORS[detector]()


@contextmanager
def borrowed_detector(detector=DEFAULT_DETECTOR) -> Iterator[Callable[[np.ndarray], list[Face]]]:
    """A detector this thread alone uses inside the block: an idle pooled one, or a new one; pooled again after.
    A callable passed in is used as it is (thread safety is then its own)."""
    if callable(detector):
        yield detector
        return
    with _idle_lock:
        idle = _idle.setdefault(detector, [])
        found = idle.pop() if idle else None
    if found is None:
        found = get_detector(detector)
    try:
        yield found
    finally:
        with _idle_lock:
            _idle[detector].append(found)


def _mapped(face: Face, scale: float, offset: float, shape, source: str) -> Face:
    """`face` found in a copy scaled by `scale` and bordered by `offset` pixels, in original pixels."""

    def point(p):
        return None if p is None else ((p[0] - offset) / scale, (p[1] - offset) / scale)

    x, y, w, h = ((v - offset) / scale if i < 2 else v / scale for i, v in enumerate(face.box))
    # Clip to the image: the border is made of replicated edge pixels, not more face.
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(shape[1]), x + w), min(float(shape[0]), y + h)
    box = tuple(int(round(v)) for v in (x0, y0, max(1.0, x1 - x0), max(1.0, y1 - y0)))
    return Face(box, face.score, point(face.left_eye), point(face.right_eye), source)


def _close_up_detectors(haar: HaarDetector, mtcnn: bool):
    """The second opinions on a close-up nothing else found: the cascade with fewer neighbours required,
    then MTCNN (`mtcnn`: not behind BlazeFace with its close-up framing, which has already looked at the
    bordered copy: there MTCNN found 2 of 300 validation close-ups and cost a photo without a face ~100 ms)."""
    # Loading the cascade file costs ~10 ms: once per detector, kept on it (so it is this thread's too).
    relaxed = getattr(haar, "relaxed", None)
    if relaxed is None:
        relaxed = haar.relaxed = HaarDetector(haar.scale_factor, min_neighbors=2, min_size=haar.min_size)
    yield relaxed
    if mtcnn:
        try:
            with borrowed_detector("mtcnn") as second:
                yield second
        except MissingPackageError:  # mtcnn not installed (the research extra): the cascade's retries are all
            return


def _face_shaped(gray: np.ndarray) -> bool:
    """A small, roughly square image with large-scale structure: what a user's own face crop looks like.

    Flat images (blank frames) and fine-grained ones (noise, texture, print) are not: a face
    keeps most of its contrast when blurred at a twelfth of its size, noise loses it.
    """
    h, w = gray.shape
    if max(h, w) > SMALL_SIDE or not 0.75 <= w / h <= 1.33:
        return False
    std = float(gray.std())
    if std < 12.0:
        return False
    blurred = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), sigmaX=max(h, w) / 24)
    return float(blurred.std()) >= 0.5 * std


def detect_faces(
    image: np.ndarray, detector=DEFAULT_DETECTOR, max_side: int = 1024, close_ups: bool = True, whole_image: bool = True
) -> list[Face]:
    """Faces in a uint8 image ((H, W) gray or (H, W, 3) RGB), sorted left to right.

    `detector`: "blazeface" (default; fer.inference.blazeface), "haar", "mtcnn" or a callable gray -> list[Face].
    Images larger than `max_side` are downscaled for detection (speed; boxes are mapped back
    to full resolution). When nothing is found and `close_ups` is on, the image is tried again
    with a replicated border (a face that fills the frame has no background around it, which
    the cascade needs) and, if small, upscaled (the cascade has a minimum face size); then once
    more with a relaxed detector that only accepts a face filling much of the image. Last, with
    `whole_image`, a small face-shaped image (at most SMALL_SIDE px, near square, not flat) is
    taken as one face crop, marked `source="whole image"` and `score=None`. Each Face says how
    it was found (`source`). Retries run only when the first pass finds nothing, so photos
    with faces give no duplicates. With `close_ups`, when the first pass finds a face that
    covers REFIT_AREA of the image, boxes under a third of its width are dropped (they are not
    faces beside a frame-filling one), and such a face, or any face in a small image (at most
    SMALL_SIDE px), is re-measured on the bordered copy (FER-2013's framing).
    """
    gray = to_gray(image)
    with borrowed_detector(detector) as found:
        return _detect(gray, found, max_side, close_ups, whole_image)


def _detect(gray: np.ndarray, found, max_side: int, close_ups: bool, whole_image: bool) -> list[Face]:
    """detect_faces with the detector `found` (held by this thread alone)."""
    found = as_detector(found)
    scale = min(1.0, max_side / max(gray.shape))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    faces = [_mapped(f, scale, 0, gray.shape, "detector") for f in found(small)]
    if close_ups and faces:
        faces = _refit_subject(faces, found, small, scale, gray.shape)
    elif close_ups:
        faces = _close_up_retry(found, small, scale, gray.shape)
    if not faces and whole_image and _face_shaped(gray):
        faces = [Face((0, 0, gray.shape[1], gray.shape[0]), None, source="whole image")]
    return sorted(_without_nested(faces), key=lambda f: (f.box[0], f.box[1]))


def _close_up_retry(found: Detector, small: np.ndarray, scale: float, shape) -> list[Face]:
    """Nothing found: a close-up or a small crop. Retry on a bordered (and upscaled) copy, then ask the second
    opinions that only accept a face filling much of the image."""
    copy = _bordered(small)
    # Only faces the border or the upscaling can reveal are looked for: ones that fill much of
    # the frame, or sit in a small image. Skipping the small scales is what keeps photos without
    # a face from costing every detector's full search again (no-face images: 639 -> 234 ms).
    retried = [
        _mapped(f, scale * copy.up, copy.border, shape, "padded")
        for f in _faces_at_least(found, copy.image, RETRY_MIN_FACE * min(copy.inner))
    ]
    faces = _close_up_subject(retried, shape)
    if faces or found.haar is None:
        return faces
    # Two second opinions that only accept a face filling much of the image (a close-up holds
    # one face): the cascade with fewer neighbours required, then MTCNN where it is installed.
    area = CLOSE_UP_AREA * copy.inner[0] * copy.inner[1]
    for second in _close_up_detectors(found.haar, mtcnn=not found.frames_close_ups):
        candidates = _faces_at_least(as_detector(second), copy.image, AREA_SIDE_SLACK * math.sqrt(area))
        big = [f for f in candidates if f.box[2] * f.box[3] >= area]
        if big:
            best = max(big, key=lambda f: f.box[2] * f.box[3])
            return [_mapped(best, scale * copy.up, copy.border, shape, "close-up")]
    return []


def _refit_subject(faces: list[Face], found: Detector, small: np.ndarray, scale: float, shape) -> list[Face]:
    """Faces found: drop strays beside a frame-filling subject, and re-measure that subject on a bordered copy."""
    faces = _close_up_subject(faces, shape)
    area = shape[0] * shape[1]
    # BlazeFace frames frame-filling faces itself (fer.inference.blazeface.CLOSE_UP_FRAMING): no second search.
    fills = max(shape) <= SMALL_SIDE or max(f.box[2] * f.box[3] for f in faces) >= REFIT_AREA * area
    if found.frames_close_ups or not fills:
        return faces
    # A face that fills the frame (a close-up, or a crop someone already cut around the face)
    # has no background around it, and the cascade then boxes it too tight or finds only part of it
    # (an eye, the mouth); on the bordered copy it gets the whole-face box (docs/experiments.md).
    copy = _bordered(small)
    # Only the frame-filling subject is wanted here (REFIT_AREA of the image, so at least
    # sqrt(REFIT_AREA) of its shorter side): the smaller scales need not be searched.
    again = [
        _mapped(f, scale * copy.up, copy.border, shape, "padded")
        for f in _faces_at_least(found, copy.image, AREA_SIDE_SLACK * math.sqrt(REFIT_AREA) * min(copy.inner))
    ]
    subject = max(again, key=lambda f: f.box[2] * f.box[3], default=None)
    if subject is None or subject.box[2] * subject.box[3] < REFIT_AREA * area:
        return faces
    # The frame-filling face replaces the first-pass boxes it covers.
    rest = [f for f in faces if not mostly_inside(f.box, subject.box, 0.5)]
    return _close_up_subject([subject, *rest], shape)


def _faces_at_least(found, image: np.ndarray, min_side: float) -> list[Face]:
    """`found`'s faces in `image` whose box is at least `min_side` px wide or high.

    Our detectors (`takes_min_side`) then skip the smaller scales, most of their work; any other
    callable searches as usual and its smaller faces are dropped.
    """
    min_side = int(min_side)
    faces = found(image, min_side=min_side) if found.takes_min_side else found(image)
    return [f for f in faces if max(f.box[2], f.box[3]) >= min_side]


def _close_up_subject(faces: list[Face], shape) -> list[Face]:
    """In a close-up (the largest face covers REFIT_AREA of the image) keep no box under a third of its width.

    A face that fills the frame is the photo's subject; boxes that small beside it are the cascade
    firing on an ear, hair or background texture at the edge (6 of 400 close-ups made from
    validation faces got such a second box; dropping these left 2).
    """
    if len(faces) < 2:
        return faces
    largest = max(faces, key=lambda f: f.box[2] * f.box[3])
    if largest.box[2] * largest.box[3] < REFIT_AREA * shape[0] * shape[1]:
        return faces
    return [f for f in faces if f is largest or f.box[2] >= largest.box[2] / 3]


class _Bordered(NamedTuple):
    up: float  # upscale factor applied to the image
    border: int  # px of replicated border on each side
    image: np.ndarray  # the upscaled, bordered copy that is searched
    inner: tuple[int, int]  # (h, w) of the upscaled image inside the border


def _bordered(small: np.ndarray) -> _Bordered:
    """`small` upscaled to ~CLOSE_UP_SIDE px if smaller, with a replicated border."""
    up = max(1.0, CLOSE_UP_SIDE / max(small.shape))  # small crops: the cascade has a minimum face size
    work = cv2.resize(small, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC) if up > 1 else small
    border = int(round(CLOSE_UP_BORDER * max(work.shape)))
    padded = cv2.copyMakeBorder(work, border, border, border, border, cv2.BORDER_REPLICATE)
    return _Bordered(up, border, padded, work.shape[:2])


def _without_nested(faces: list[Face]) -> list[Face]:
    """Drop boxes that lie mostly (MOSTLY_INSIDE of their area) inside a larger box: a face holds no face.

    The cascade sometimes adds a box on an eye or the mouth of a face it also found whole.
    """

    def inside(a: Face, b: Face) -> bool:
        return b.box[2] * b.box[3] > a.box[2] * a.box[3] and mostly_inside(a.box, b.box)

    return [f for f in faces if not any(inside(f, g) for g in faces if g is not f)]


def crop_square(box, margin: float = DEFAULT_MARGIN) -> tuple[int, int, int]:
    """(x0, y0, side) in pixels: the square crop_face cuts for `box` (x, y, w, h), grown by `margin` of its size
    on each side, around the box's centre (it may reach outside the image)."""
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"Face box must have positive width and height, got {tuple(box)}")
    side = max(w, h) * (1 + 2 * margin)
    return int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2)), int(round(side))


def crop_face(
    image: np.ndarray, box, margin: float = DEFAULT_MARGIN, align: Face | None = None, size: int = FACE_SIZE
) -> np.ndarray:
    """A (size, size) gray face from `box` (x, y, w, h) of a gray or RGB uint8 image.

    The box grows by `margin` of its size on each side and becomes square around its
    centre; parts outside the image are filled by replicating the edge. With `align`
    (a Face with eye points) the image is first rotated about the box centre so the eyes
    are level.
    """
    gray = to_gray(image)
    x0, y0, side = crop_square(box, margin)
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    if align is not None and align.left_eye and align.right_eye:
        (lx, ly), (rx, ry) = sorted([align.left_eye, align.right_eye])  # image-left eye first
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        gray = cv2.warpAffine(gray, matrix, (gray.shape[1], gray.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    x1, y1 = x0 + side, y0 + side
    pad = max(0, -x0, -y0, x1 - gray.shape[1], y1 - gray.shape[0])
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    return to_face(gray[y0:y1, x0:x1], size)


def roundtrip_crops(
    faces: np.ndarray, margin: float = DEFAULT_MARGIN, detector=DEFAULT_DETECTOR, upscale: int = 3, **detect
):
    """Put 48x48 faces into larger images, find them again and crop them: (index, crops, correlations).

    The check that detection + cropping reproduces FER-2013's framing: a crop that matches
    its original has pixel correlation near 1. `index` lists the faces that were found
    exactly once; `crops` and `correlations` follow it. `detect`: detect_faces options.
    """
    index, crops, corr = [], [], []
    side = FACE_SIZE * upscale
    for i, face in enumerate(faces):
        canvas = np.full((side + 2 * side // 3, side + side), 128, np.uint8)
        top, left = side // 3, side // 2
        canvas[top : top + side, left : left + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        found = detect_faces(canvas, detector, **detect)
        if len(found) != 1:
            continue
        crop = crop_face(canvas, found[0].box, margin)
        index.append(i)
        crops.append(crop)
        corr.append(float(np.corrcoef(crop.ravel().astype(float), face.ravel().astype(float))[0, 1]))
    return np.array(index, dtype=int), np.array(crops).reshape(-1, FACE_SIZE, FACE_SIZE), np.array(corr)
