"""What a face detector is: the Face it finds, the Detector protocol, your own callable as one, box geometry."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

# A box with at least this share of its area inside another box is part of that face, not a face
# of its own (an eye or a mouth the cascade boxed too, or one face seen twice across tiles).
MOSTLY_INSIDE = 0.6
# A face whose box covers at least this share of the image fills the frame (a close-up, a selfie, a crop someone
# already cut): it has no background around it, which the cascade needs, and it is the photo's one subject.
FRAME_FILLING_AREA = 0.4


@dataclass(frozen=True)
class Face:
    """A face found in an image: box (x, y, w, h) in pixels of the original image.

    `score` is the detector's confidence (Haar: cascade level weight, MTCNN: probability);
    `left_eye`/`right_eye` are (x, y) eye centres when the detector gives landmarks
    (named as the detector names them; alignment only uses which one is further left).
    """

    box: tuple[int, int, int, int]
    score: float | None = 1.0
    left_eye: tuple[float, float] | None = None
    right_eye: tuple[float, float] | None = None
    # How the face was found: "detector" (first pass), "padded" (retry on a bordered and, for small
    # images, upscaled copy: close-ups whose face touches the frame), "close-up" (a relaxed retry
    # that only accepts a face filling much of the image), or "whole image" (nothing detected in a
    # small, face-shaped image, taken as one face crop; score None).
    source: str = "detector"


@runtime_checkable
class Detector(Protocol):
    """What fer.inference.faces.detect_faces asks of a face detector: called on a gray uint8 image, it returns
    the faces in that image's pixels. Three attributes say what more it can do; a fourth, optional, `runs_beside`
    (BlazeFaceDetector): __call__(gray, beside=retry) runs detect_faces' close-up retry itself or skips it."""

    takes_min_side: bool  # __call__(gray, min_side=N) can skip the scales of faces under N px (much faster)
    frames_close_ups: bool  # it frames a frame-filling face itself: no bordered re-measure, no MTCNN opinion
    haar: Detector | None  # the cascade behind it (a HaarDetector), for the close-up second opinions (None: none)

    def __call__(self, gray: np.ndarray, min_side: int = 0) -> list[Face]: ...


_DECLARED = ("takes_min_side", "frames_close_ups", "haar")
_MISSING = object()


class FunctionDetector:
    """Your own detector, a callable gray -> list[Face], as a Detector: the abilities it declares (any of the
    three attributes), none that it does not."""

    def __init__(self, function):
        self.function = function
        self.takes_min_side = bool(getattr(function, "takes_min_side", False))
        self.frames_close_ups = bool(getattr(function, "frames_close_ups", False))
        self.haar = getattr(function, "haar", None)

    def __call__(self, gray: np.ndarray, min_side: int = 0) -> list[Face]:
        return self.function(gray, min_side=min_side) if self.takes_min_side else self.function(gray)


def as_detector(detector) -> Detector:
    """`detector` itself where it is a Detector, else a callable wrapped as one."""
    # Looked up statically (as isinstance does from Python 3.12): a property such as BlazeFaceDetector.haar, which
    # loads the cascade, is not run just to ask whether it is there.
    declared = all(inspect.getattr_static(detector, name, _MISSING) is not _MISSING for name in _DECLARED)
    return detector if declared and callable(detector) else FunctionDetector(detector)


def _intersection(a, b) -> float:
    """Area shared by two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))


def mostly_inside(a, b, share: float = MOSTLY_INSIDE) -> bool:
    """Whether at least `share` of box `a`'s area lies inside box `b` ((x, y, w, h) boxes)."""
    return _intersection(a, b) >= share * a[2] * a[3]


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    shared = _intersection(a, b)
    return shared / (a[2] * a[3] + b[2] * b[3] - shared)
