"""The default detectors of earlier releases, re-created for the benchmarks' before/now tables (not in the package).

BlazeFace02  0.2-0.3: tiles always 3 x 3, no close-up framing (the cascade re-measures every face and
             detect_faces re-measures a frame-filling one on a bordered copy), the cascade searching photos
             where BlazeFace finds nothing
BlazeFace04  0.4: BlazeFace's faces re-measured by the cascade (the package's detector="blazeface-cascade")
BlazeFace05  0.5: the default, whose close-up retries (min_side > 0) still searched tiles where min_side was under
             the largest face a tile keeps
"""

from __future__ import annotations

import cv2
import numpy as np

from fer.inference.detectors.base import Face
from fer.inference.detectors.blazeface import TILE_MAX_FACE, TO_FER_FRAMING, BlazeFaceDetector


class BlazeFace02(BlazeFaceDetector):
    """The 0.2 default detector (through 0.3's tile layout)."""

    frames_close_ups = False

    def __init__(self):
        super().__init__(cascade=True)

    @staticmethod
    def tile_starts(length: int, t: int) -> list[int]:
        return sorted({0, max(0, (length - t) // 2), max(0, length - t)})  # always three per axis

    def __call__(self, image: np.ndarray, min_side: int = 0) -> list[Face]:
        faces = super().__call__(image, min_side)
        if faces:
            return faces
        # Faces under about a twelfth of the image side are beyond BlazeFace's reach: the cascade searched for them.
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return self.haar(gray, min_side=min_side)


def BlazeFace04() -> BlazeFaceDetector:  # noqa: N802  (named like the class it stands for)
    """The 0.4 default detector."""
    return BlazeFaceDetector(cascade=True)


class BlazeFaceCascadeRetry(BlazeFaceDetector):
    """The default before issue 42 dropped the cascade's second opinion on photos BlazeFace finds nothing in: it
    found 1 face in 300 validation close-ups, at 4-5 ms on every photo without a face."""

    @property
    def haar(self):
        return self.cascade_detector


class BlazeFace05(BlazeFaceCascadeRetry):
    """The 0.5 default detector: tiles in the close-up retries too."""

    def proposals(self, image: np.ndarray, min_side: int = 0):
        t = max(image.shape[:2]) // 2
        return super().proposals(image, 0 if min_side <= TILE_MAX_FACE * t * TO_FER_FRAMING[2] else min_side)
