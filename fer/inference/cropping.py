"""Cutting a face out of a photo the way FER-2013's faces look: a square around the box, gray, 48x48.

The crop: the detector's box grown by `margin` on each side, made square, padded by replicating edge pixels
where it leaves the image (faces at the border), converted to gray and shrunk to 48x48 with area averaging, as
`fer.data.images.to_face` does for training data. FER-2013's faces are the Haar box itself, and the network is
sensitive to framing, so crops follow it (docs/detection.md); DEFAULT_MARGIN was chosen on validation accuracy.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from fer.data.images import FACE_SIZE, to_face, to_gray
from fer.inference.detectors.base import Face

# 4% of the box on each side: margin 0 reproduces FER-2013's pixels best, but the network is most accurate
# on slightly looser crops (chosen on validation close-ups; numbers in docs/experiments.md, "Face crops").
DEFAULT_MARGIN = 0.04


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
