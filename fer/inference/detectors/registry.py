"""The named face detectors: one registry that the library, the CLI's choices and the docs read, and their pool."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module

import numpy as np

from fer.inference.detectors.base import Face


@dataclass(frozen=True)
class DetectorInfo:
    """A named detector: where its class lives (imported when first made, so listing names loads no OpenCV), the
    options it is made with, whether it gives eye points (align=True needs them) and one line on what it is for."""

    module: str
    factory: str
    about: str
    landmarks: bool
    options: dict = field(default_factory=dict)

    def make(self) -> Callable[[np.ndarray], list[Face]]:
        return getattr(import_module(self.module), self.factory)(**self.options)


DEFAULT_DETECTOR = "blazeface"
DETECTORS: dict[str, DetectorInfo] = {
    "blazeface": DetectorInfo(
        "fer.inference.detectors.blazeface",
        "BlazeFaceDetector",
        "BlazeFace, in the package (default): fast, finds faces that fill the frame, eye points",
        landmarks=True,
    ),
    "blazeface-cascade": DetectorInfo(
        "fer.inference.detectors.blazeface",
        "BlazeFaceDetector",
        "BlazeFace with OpenCV's cascade re-measuring each face (the default until 0.4; slower)",
        landmarks=True,
        options={"cascade": True},
    ),
    "blazeface-mesh": DetectorInfo(
        "fer.inference.detectors.blazeface",
        "BlazeFaceDetector",
        "BlazeFace, each face framed by the face mesh: for sharp portraits (+4 points there), ~3 ms more a face",
        landmarks=True,
        options={"mesh": True},
    ),
    "haar": DetectorInfo(
        "fer.inference.detectors.haar",
        "HaarDetector",
        "OpenCV's Haar cascade, FER-2013's own detector: frontal faces, small faces in crowds, no eye points",
        landmarks=False,
    ),
    "mtcnn": DetectorInfo(
        "fer.inference.detectors.mtcnn",
        "MTCNNDetector",
        "MTCNN (research extra): slower, eye points",
        landmarks=True,
    ),
}


def detector_info(name: str) -> DetectorInfo:
    """The registry's entry for `name`, or ValueError listing the names there are."""
    if name not in DETECTORS:
        raise ValueError(f"Unknown face detector {name!r}; choose from {sorted(DETECTORS)} or pass a callable")
    return DETECTORS[name]


def get_detector(detector=DEFAULT_DETECTOR) -> Callable[[np.ndarray], list[Face]]:
    """A new detector by name (see DETECTORS); a callable is returned as is.

    An instance is for one thread at a time; detect_faces borrows pooled ones (borrowed_detector)."""
    return detector if callable(detector) else detector_info(detector).make()


# Idle detectors by name. OpenCV's cascade (the Haar detector, BlazeFace's re-measure) keeps per-call state, so
# two threads sharing one instance get wrong boxes or a cv2.error: each call borrows one no other thread holds.
_idle: dict[str, list[Callable]] = {}
_idle_lock = threading.Lock()


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
