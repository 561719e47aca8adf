"""OpenCV's frontal-face Haar cascade (shipped in the opencv-python-headless 4.x wheel): FER-2013's own detector."""

from __future__ import annotations

import cv2
import numpy as np

from fer.inference.detectors.base import Face


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
