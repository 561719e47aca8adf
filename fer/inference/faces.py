"""Finding the faces in a photo: the chosen detector's first pass, then the retries for close-ups it misses.

Detection works offline (fer.inference.detectors: BlazeFace by default, OpenCV's Haar cascade, MTCNN with the
research extra). Large photos are downscaled for detection only; boxes come back in the photo's own pixels. A
face that fills the frame has no background around it, which detectors need: when nothing is found, the photo
is searched again with a replicated border (and, if small, upscaled), then by second opinions that only accept
a face filling much of the image (see detect_faces). Cutting the faces out: fer.inference.cropping.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from fer.data.images import FACE_SIZE, shrunk, to_gray
from fer.errors import MissingPackageError
from fer.inference.cropping import DEFAULT_MARGIN, crop_face
from fer.inference.detectors.base import FRAME_FILLING_AREA, Detector, Face, as_detector, mostly_inside
from fer.inference.detectors.haar import HaarDetector
from fer.inference.detectors.registry import DEFAULT_DETECTOR, borrowed_detector

# Photos are searched at most this many px on a side (boxes are mapped back; faces are cropped from the full image).
DETECT_MAX_SIDE = 1024
# A larger image is searched shrunk by a whole factor (a block mean, OpenCV's fast path) where that leaves at least this
# share of max_side: a 1080p frame at 960 px, a 4032 px photo at 1008 (area averaging by a fraction costs far more:
# docs/experiments.md); any other size goes to max_side.
WHOLE_FACTOR_SHARE = 0.9
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
# A face covering area A of the image is at least sqrt(A) px on a side when square; searches for such
# a face ask the detector for sides of at least AREA_SIDE_SLACK * sqrt(A), room for oblong boxes.
AREA_SIDE_SLACK = 0.8


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
    image: np.ndarray,
    detector=DEFAULT_DETECTOR,
    max_side: int = DETECT_MAX_SIDE,
    close_ups: bool = True,
    whole_image: bool = True,
) -> list[Face]:
    """Faces in a uint8 image ((H, W) gray or (H, W, 3) RGB), sorted left to right.

    `detector`: a name of fer.inference.detectors.registry.DETECTORS ("blazeface" by default) or a callable
    gray -> list[Face].
    Images larger than `max_side` are downscaled for detection (speed; boxes are mapped back
    to full resolution). When nothing is found and `close_ups` is on, the image is tried again
    with a replicated border (a face that fills the frame has no background around it, which
    the cascade needs) and, if small, upscaled (the cascade has a minimum face size); then once
    more with a relaxed detector that only accepts a face filling much of the image. Last, with
    `whole_image`, a small face-shaped image (at most SMALL_SIDE px, near square, not flat) is
    taken as one face crop, marked `source="whole image"` and `score=None`. Each Face says how
    it was found (`source`). Retries run only when the first pass finds nothing, so photos
    with faces give no duplicates. With `close_ups`, when the first pass finds a face that
    covers FRAME_FILLING_AREA of the image, boxes under a third of its width are dropped (they are not
    faces beside a frame-filling one), and such a face, or any face in a small image (at most
    SMALL_SIDE px), is re-measured on the bordered copy (FER-2013's framing).
    """
    gray = to_gray(image)
    with borrowed_detector(detector) as found:
        return _detect(gray, found, max_side, close_ups, whole_image)


def _detect(gray: np.ndarray, found, max_side: int, close_ups: bool, whole_image: bool) -> list[Face]:
    """detect_faces with the detector `found` (held by this thread alone)."""
    found = as_detector(found)
    small, scale = _detection_copy(gray, max_side)
    retry = _Retry(lambda: _close_up_retry(found, small, scale, gray.shape))
    # A detector that can (BlazeFace) runs the retry while it reads small faces, once its whole-image look found
    # nothing (a photo without a face then costs the longer of the two, not their sum), or skips it where nothing in
    # the photo looked like a face filling it.
    first = found(small, beside=retry) if close_ups and getattr(found, "runs_beside", False) else found(small)
    faces = [_mapped(f, scale, 0, gray.shape, "detector") for f in first]
    if close_ups and faces:
        faces = _refit_subject(faces, found, small, scale, gray.shape)
    elif close_ups:
        faces = retry()
    if not faces and whole_image and _face_shaped(gray):
        faces = [Face((0, 0, gray.shape[1], gray.shape[0]), None, source="whole image")]
    return sorted(_without_nested(faces), key=lambda f: (f.box[0], f.box[1]))


def _detection_copy(gray: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """(the image detection searches, its scale: copy px / image px): at most `max_side` px on a side, by a whole
    factor where that leaves WHOLE_FACTOR_SHARE of it."""
    side = max(gray.shape)
    if side <= max_side:
        return gray, 1.0
    k = -(-side // max_side)
    scale = 1 / k if side / k >= WHOLE_FACTOR_SHARE * max_side else max_side / side
    return shrunk(gray, scale), scale


class _Retry:
    """detect_faces' close-up retry, run at most once: beside the detector's small-face pass, after it, or never
    where the detector skips it."""

    def __init__(self, run):
        self._run, self._faces = run, None

    def __call__(self) -> list[Face]:
        if self._faces is None:
            self._faces = self._run()
        return self._faces

    def skip(self) -> None:
        if self._faces is None:
            self._faces = []


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
    # BlazeFace frames frame-filling faces itself (its CLOSE_UP_FRAMING): no second search.
    fills = max(shape) <= SMALL_SIDE or max(f.box[2] * f.box[3] for f in faces) >= FRAME_FILLING_AREA * area
    if found.frames_close_ups or not fills:
        return faces
    # A face that fills the frame (a close-up, or a crop someone already cut around the face)
    # has no background around it, and the cascade then boxes it too tight or finds only part of it
    # (an eye, the mouth); on the bordered copy it gets the whole-face box (docs/experiments.md).
    copy = _bordered(small)
    # Only the frame-filling subject is wanted here (FRAME_FILLING_AREA of the image, so at least
    # sqrt(FRAME_FILLING_AREA) of its shorter side): the smaller scales need not be searched.
    again = [
        _mapped(f, scale * copy.up, copy.border, shape, "padded")
        for f in _faces_at_least(found, copy.image, AREA_SIDE_SLACK * math.sqrt(FRAME_FILLING_AREA) * min(copy.inner))
    ]
    subject = max(again, key=lambda f: f.box[2] * f.box[3], default=None)
    if subject is None or subject.box[2] * subject.box[3] < FRAME_FILLING_AREA * area:
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
    """In a close-up (the largest face covers FRAME_FILLING_AREA of the image) keep no box under a third of its width.

    A face that fills the frame is the photo's subject; boxes that small beside it are the cascade
    firing on an ear, hair or background texture at the edge (6 of 400 close-ups made from
    validation faces got such a second box; dropping these left 2).
    """
    if len(faces) < 2:
        return faces
    largest = max(faces, key=lambda f: f.box[2] * f.box[3])
    if largest.box[2] * largest.box[3] < FRAME_FILLING_AREA * shape[0] * shape[1]:
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
