"""The default detectors of earlier releases, re-created for the benchmarks' before/now tables (not in the package).

BlazeFace02  0.2-0.3: tiles always 3 x 3, no close-up framing (the cascade re-measures every face and
             detect_faces re-measures a frame-filling one on a bordered copy), the cascade searching photos
             where BlazeFace finds nothing
BlazeFace04  0.4: BlazeFace's faces re-measured by the cascade (the package's detector="blazeface-cascade")
BlazeFace05  0.5: the default, whose close-up retries (min_side > 0) still searched tiles where min_side was under
             the largest face a tile keeps
BlazeFaceCascadeRetry  the default before issue 42 dropped the cascade behind BlazeFace on photos it finds nothing in
BlazeFaceTiles         the default before issue 42's strips: small faces in 6-9 tiles of 128 px, each image padded
                       to a square and shrunk by a fractional area resize (~1 ms a pass on a 600 px photo)
BlazeFaceStrips        the strips with the close-up retry on every photo the whole-image pass finds nothing in (before
                       the close-up evidence gate, CLOSE_UP_EVIDENCE)
All of them read small faces in tiles (TiledBlazeFace), the layout before the strips.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from fer.inference.detectors.base import Face
from fer.inference.detectors.blazeface import (
    INPUT_SIZE,
    TILE_MAX_FACE,
    TO_FER_FRAMING,
    BlazeFace,
    BlazeFaceDetector,
)

_threads: list = []


def _pool():
    """The two threads that read tiles before issue 42's strips."""
    if not _threads:
        from concurrent.futures import ThreadPoolExecutor

        _threads.append(ThreadPoolExecutor(max_workers=2, thread_name_prefix="tiles"))
    return _threads[0]


class SquareResizeBlazeFace(BlazeFace):
    """The network as before issue 42: the image padded to a square first, then area-resized to 128 px."""

    def whole(self, image: np.ndarray):
        h, w = image.shape[:2]
        side = max(h, w)
        square = cv2.copyMakeBorder(image, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT, value=0)
        x = cv2.resize(square, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        return self.scan(x, side / INPUT_SIZE), 1.0  # the close-up retry always ran then


class TiledBlazeFace(BlazeFaceDetector):
    """Small faces in overlapping tiles of half the longer side, each its own 128 px pass (before the strips)."""

    runs_beside = False

    def __init__(self, **options):
        super().__init__(**options)
        self.net = SquareResizeBlazeFace()

    @staticmethod
    def tile_starts(length: int, t: int) -> list[int]:
        """Where tiles of side `t` start along an axis, overlapping by at least TILE_MAX_FACE * t."""
        if length <= t:
            return [0]
        n = 1 + math.ceil((length - t) / ((1 - TILE_MAX_FACE) * t))
        return [round(i * (length - t) / (n - 1)) for i in range(n)]

    def small_faces(self, image: np.ndarray, beside=None, lopsided=False):  # nothing ran beside the tiles
        h, w = image.shape[:2]
        t = max(h, w) // 2
        corners = [(y0, x0) for y0 in self.tile_starts(h, t) for x0 in self.tile_starts(w, t)]
        tiles = _pool().map(lambda c: self.net(image[c[0] : c[0] + t, c[1] : c[1] + t]), corners)
        found = []
        for (y0, x0), faces in zip(corners, tiles):
            offset = np.array([x0, y0])
            found += [(s, b + np.array([x0, y0, 0, 0]), p + offset) for s, b, p in faces if b[2] <= TILE_MAX_FACE * t]
        return found


class BlazeFace02(TiledBlazeFace):
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
    return TiledBlazeFace(cascade=True)


class _AlwaysRetry:
    """BlazeFace's network, saying of every image that something in it looked like a frame-filling face."""

    def __init__(self, net: BlazeFace):
        self.net = net

    def __call__(self, image: np.ndarray):
        return self.net(image)

    def whole(self, image: np.ndarray):
        return self.net.whole(image)[0], 1.0

    def scan(self, image: np.ndarray, scale: float, offset=(0, 0)):
        return self.net.scan(image, scale, offset)


class BlazeFaceStrips(BlazeFaceDetector):
    """The strips, the close-up retry run wherever the whole-image pass finds nothing."""

    def __init__(self):
        super().__init__()
        self.net = _AlwaysRetry(self.net)


class BlazeFaceTiles(TiledBlazeFace):
    """The default before issue 42's strips."""


class BlazeFaceCascadeRetry(TiledBlazeFace):
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
