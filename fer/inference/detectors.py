"""Face detectors that need no download: the Detector interface, OpenCV's Haar cascade, MTCNN, and box geometry."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from fer.errors import optional_import

# A box with at least this share of its area inside another box is part of that face, not a face
# of its own (an eye or a mouth the cascade boxed too, or one face seen twice across tiles).
MOSTLY_INSIDE = 0.6


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
    the faces in that image's pixels. Three attributes say what more it can do."""

    takes_min_side: bool  # __call__(gray, min_side=N) can skip the scales of faces under N px (much faster)
    frames_close_ups: bool  # it frames a frame-filling face itself: no bordered re-measure, no MTCNN opinion
    haar: HaarDetector | None  # the cascade behind it, for the close-up second opinions (None: none)

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


class HaarDetector:
    """OpenCV's frontal-face Haar cascade. Fast on a CPU; frontal, upright faces only."""

    takes_min_side = True  # __call__(gray, min_side=N) skips the scales of faces under N px (see _faces_at_least)
    frames_close_ups = False

    @property
    def haar(self) -> HaarDetector:
        return self  # its own second opinion (with fewer neighbours: fer.inference.faces._close_up_detectors)

    # scale_factor 1.1: a coarser step (1.2) halves the time but missed small faces in scenes
    # (pasted-scene recall 0.63 against 0.68; benchmarks/bench_detection.py).
    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24):
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise RuntimeError(
                f"OpenCV's Haar cascade is missing ({path}). Install opencv-python-headless<5: "
                "the 5.x wheels no longer ship the cascade files."
            )
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def __call__(self, gray: np.ndarray, min_side: int = 0) -> list[Face]:
        # Histogram equalisation helps the cascade on dim or low-contrast photos.
        equalized = cv2.equalizeHist(gray)
        side = max(self.min_size, int(min_side))
        boxes, _, weights = self.cascade.detectMultiScale3(
            equalized,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
            outputRejectLevels=True,
        )
        return [self._refined(equalized, tuple(int(v) for v in b), float(w)) for b, w in zip(boxes, np.ravel(weights))]

    def _refined(self, equalized: np.ndarray, box, weight: float) -> Face:
        """The box re-measured with a fine scale step (1.05) in its neighbourhood.

        A coarse step finds faces fast but sizes them coarsely, and FER-2013's faces are the
        cascade's box at a fine step: the crop must match it (see the module doc).
        """
        if self.scale_factor <= 1.05:
            return Face(box, weight)
        found = self.remeasure(equalized, box)
        return Face(box, weight) if found is None else Face(*found)

    def remeasure(self, equalized: np.ndarray, box):
        """(box, cascade weight): the cascade's box (scale step 1.05) nearest to `box`'s centre at sizes
        within 25% of it, or None.

        `equalized`: the histogram-equalised gray image. Searching only around one face keeps this cheap.
        """
        x, y, w, h = box
        pad = w // 2
        x0, y0 = max(0, x - pad), max(0, y - pad)
        region = equalized[y0 : max(y0, y + h + pad), x0 : max(x0, x + w + pad)]
        if min(region.shape) < int(w * 0.75):
            return None
        found, _, weights = self.cascade.detectMultiScale3(
            region,
            scaleFactor=1.05,
            minNeighbors=self.min_neighbors,
            minSize=(int(w * 0.75), int(w * 0.75)),
            maxSize=(int(w * 1.25) + 1, int(w * 1.25) + 1),
            outputRejectLevels=True,
        )
        if len(found) == 0:
            return None
        centre = np.array([x + w / 2 - x0, y + h / 2 - y0])
        k = int(np.argmin([np.linalg.norm(np.array([bx + bw / 2, by + bh / 2]) - centre) for bx, by, bw, bh in found]))
        bx, by, bw, bh = (int(v) for v in found[k])
        return (bx + x0, by + y0, bw, bh), float(np.ravel(weights)[k])


class MTCNNDetector:
    """MTCNN (Zhang et al. 2016) from the `mtcnn` package: faces, scores and eye landmarks."""

    takes_min_side = True
    frames_close_ups = False
    haar = None

    def __init__(self, min_score: float = 0.9):
        mtcnn = optional_import("mtcnn", "detector='mtcnn'", "pip install mtcnn (installed with the project)")
        self.model, self.min_score = mtcnn.MTCNN(), min_score

    def __call__(self, gray: np.ndarray, min_side: int = 0) -> list[Face]:
        faces = []
        rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
        for found in self.model.detect_faces(rgb, min_face_size=max(20, int(min_side))):
            if found["confidence"] >= self.min_score:
                points = found.get("keypoints", {})
                faces.append(
                    Face(
                        tuple(int(v) for v in found["box"]),
                        float(found["confidence"]),
                        tuple(points["left_eye"]) if "left_eye" in points else None,
                        tuple(points["right_eye"]) if "right_eye" in points else None,
                    )
                )
        return faces


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
