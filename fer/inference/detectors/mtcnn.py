"""MTCNN from the `mtcnn` package (research extra; weights inside its wheel): faces, scores and eye landmarks."""

from __future__ import annotations

import cv2
import numpy as np

from fer.errors import RESEARCH_INSTALL, optional_import
from fer.inference.detectors.base import Face


class MTCNNDetector:
    """MTCNN (Zhang et al. 2016) from the `mtcnn` package: faces, scores and eye landmarks."""

    takes_min_side = True
    frames_close_ups = False
    haar = None

    def __init__(self, min_score: float = 0.9):
        install = f"pip install mtcnn, or the research extra: {RESEARCH_INSTALL}"
        mtcnn = optional_import("mtcnn", "detector='mtcnn'", install)
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
