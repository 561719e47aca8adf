"""Finding faces in photos and cutting them out the way FER-2013 faces look.

Detection works offline: OpenCV's Haar cascade (shipped in the opencv-python-headless 4.x
wheel) by default, or MTCNN (`pip install mtcnn`, weights inside its wheel; more accurate,
with eye landmarks) when asked for. Large photos are downscaled for detection only; faces
are cropped from the full-resolution image.

The crop: the detector's box grown by `margin` on each side, made square, padded by
replicating edge pixels where it leaves the image (faces at the border), converted to gray
and shrunk to 48x48 with area averaging, as `fer.images.to_face` does for training data.
FER-2013's faces are the Haar box itself: placed in a larger image and re-detected, the
box spans 0.97 of the original crop, and margin 0 reproduces the originals best (mean
pixel correlation 0.64 at margin 0, 0.41 at 0.1, 0.24 at 0.2, on 163 PublicTest faces;
`tests/test_faces.py::test_crops_of_fer_faces_match_the_originals` checks it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from fer.images import FACE_SIZE, to_face, to_gray

DEFAULT_MARGIN = 0.0


@dataclass(frozen=True)
class Face:
    """A face found in an image: box (x, y, w, h) in pixels of the original image.

    `score` is the detector's confidence (Haar: cascade level weight, MTCNN: probability);
    `left_eye`/`right_eye` are (x, y) eye centres when the detector gives landmarks
    (named as the detector names them; alignment only uses which one is further left).
    """

    box: tuple[int, int, int, int]
    score: float = 1.0
    left_eye: tuple[float, float] | None = None
    right_eye: tuple[float, float] | None = None


class HaarDetector:
    """OpenCV's frontal-face Haar cascade. Fast on a CPU; frontal, upright faces only."""

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24):
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise RuntimeError(
                f"OpenCV's Haar cascade is missing ({path}). Install opencv-python-headless<5: "
                "the 5.x wheels no longer ship the cascade files."
            )
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def __call__(self, gray: np.ndarray) -> list[Face]:
        # Histogram equalisation helps the cascade on dim or low-contrast photos.
        boxes, _, weights = self.cascade.detectMultiScale3(
            cv2.equalizeHist(gray),
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        return [Face(tuple(int(v) for v in b), float(w)) for b, w in zip(boxes, np.ravel(weights))]


class MTCNNDetector:
    """MTCNN (Zhang et al. 2016) from the `mtcnn` package: faces, scores and eye landmarks."""

    def __init__(self, min_score: float = 0.9):
        try:
            from mtcnn import MTCNN
        except ImportError as exc:
            raise RuntimeError("detector='mtcnn' needs the mtcnn package: pip install mtcnn") from exc
        self.model, self.min_score = MTCNN(), min_score

    def __call__(self, gray: np.ndarray) -> list[Face]:
        faces = []
        for found in self.model.detect_faces(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)):
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


_DETECTORS: dict[str, Callable[[], Callable]] = {"haar": HaarDetector, "mtcnn": MTCNNDetector}
_instances: dict[str, Callable] = {}


def get_detector(detector="haar") -> Callable[[np.ndarray], list[Face]]:
    """A detector by name ("haar", "mtcnn"), created once; a callable is returned as is."""
    if callable(detector):
        return detector
    if detector not in _DETECTORS:
        raise ValueError(f"Unknown face detector {detector!r}; choose from {sorted(_DETECTORS)} or pass a callable")
    if detector not in _instances:
        _instances[detector] = _DETECTORS[detector]()
    return _instances[detector]


def detect_faces(image: np.ndarray, detector="haar", max_side: int = 1024) -> list[Face]:
    """Faces in a uint8 image ((H, W) gray or (H, W, 3) RGB), sorted left to right.

    Images larger than `max_side` are downscaled for detection (speed; the cascade
    finds big faces at any scale) and boxes are mapped back to full resolution.
    """
    gray = to_gray(image)
    scale = min(1.0, max_side / max(gray.shape))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    faces = get_detector(detector)(small)
    if scale < 1:
        faces = [
            Face(
                tuple(int(round(v / scale)) for v in f.box),
                f.score,
                tuple(v / scale for v in f.left_eye) if f.left_eye else None,
                tuple(v / scale for v in f.right_eye) if f.right_eye else None,
            )
            for f in faces
        ]
    return sorted(faces, key=lambda f: (f.box[0], f.box[1]))


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
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"Face box must have positive width and height, got {tuple(box)}")
    cx, cy = x + w / 2, y + h / 2
    if align is not None and align.left_eye and align.right_eye:
        (lx, ly), (rx, ry) = sorted([align.left_eye, align.right_eye])  # image-left eye first
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        gray = cv2.warpAffine(gray, matrix, (gray.shape[1], gray.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    side = max(w, h) * (1 + 2 * margin)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x1, y1 = x0 + int(round(side)), y0 + int(round(side))
    pad = max(0, -x0, -y0, x1 - gray.shape[1], y1 - gray.shape[0])
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    return to_face(gray[y0:y1, x0:x1], size)


def roundtrip_crops(faces: np.ndarray, margin: float = DEFAULT_MARGIN, detector="haar", upscale: int = 3):
    """Put 48x48 faces into larger images, find them again and crop them: (index, crops, correlations).

    The check that detection + cropping reproduces FER-2013's framing: a crop that matches
    its original has pixel correlation near 1. `index` lists the faces that were found
    exactly once; `crops` and `correlations` follow it.
    """
    index, crops, corr = [], [], []
    side = FACE_SIZE * upscale
    for i, face in enumerate(faces):
        canvas = np.full((side + 2 * side // 3, side + side), 128, np.uint8)
        top, left = side // 3, side // 2
        canvas[top : top + side, left : left + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        found = detect_faces(canvas, detector)
        if len(found) != 1:
            continue
        crop = crop_face(canvas, found[0].box, margin)
        index.append(i)
        crops.append(crop)
        corr.append(float(np.corrcoef(crop.ravel().astype(float), face.ravel().astype(float))[0, 1]))
    return np.array(index, dtype=int), np.array(crops).reshape(-1, FACE_SIZE, FACE_SIZE), np.array(corr)
