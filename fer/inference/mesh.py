"""The face mesh: MediaPipe's 468 face landmarks, and the head pose they give, for the faces of an image.

The network is MediaPipe's face landmark model (Kartynnik et al. 2019, "Real-time Facial Surface Geometry from
Monocular Video on Mobile GPUs"), `assets/face_landmark.tflite` of the `mediapipe` 0.10.21 wheel (Apache License
2.0; fer/assets/NOTICE-face-mesh.md), run by ONNX Runtime from its conversion `face_landmark.onnx`. It reads a
192x192 RGB square around a face and answers 468 points (x, y in that square's pixels, z a depth on the same
scale, smaller nearer the camera) and a face-presence logit. Here the square is the face's FER-2013 box (a
detector's box, your box, or a whole 48x48 crop) grown ROI_SCALE times about its centre, turned so the eyes are
level where the detector gave eye points; points come back in the image's own pixels.

Head pose is the rotation that best carries the reference mesh (REFERENCE_PATH: the mean frontal mesh of
validation faces, made left-right symmetric by benchmarks/fit_mesh_reference.py) onto a face's points (Kabsch), as
three angles in degrees with the signs of the image as seen: yaw > 0 the nose points to the image's right, pitch > 0
it points up, roll > 0 the face is turned clockwise (its image-right side lower). A mirrored photo negates yaw and
roll and keeps pitch.

One session serves every thread (ONNX Runtime's run is thread-safe); it is loaded on first use, never by
`import fer` or by a call without landmarks.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MODEL_PATH = ASSETS / "face_landmark.onnx"  # tf2onnx's conversion, batch made dynamic (scripts/convert_face_mesh.py)
TFLITE_PATH = ASSETS / "face_landmark.tflite"
REFERENCE_PATH = ASSETS / "face_mesh_reference.npz"  # benchmarks/fit_mesh_reference.py
INPUT_SIZE = 192
N_POINTS = 468
# A table's columns for one face's mesh (analyze_video, predict's CSV): x_0..x_467, y_0..y_467, z_0..z_467.
COLUMNS = tuple(f"{axis}_{i}" for axis in "xyz" for i in range(N_POINTS))
# The square the mesh reads, in FER-2013 box sides: the box plus 20% on each side (MediaPipe's own is 1.5 BlazeFace
# boxes, ~1.3 FER boxes); benchmarks/eval_mesh.py measures how much the points move with it.
ROI_SCALE = 1.4
# Named points (MediaPipe's numbering): eye corners as seen in the image of a frontal face, nose tip, mouth corners.
POINTS = {
    "image_left_eye_outer": 33,
    "image_left_eye_inner": 133,
    "image_right_eye_inner": 362,
    "image_right_eye_outer": 263,
    "nose_tip": 1,
    "image_left_mouth_corner": 61,
    "image_right_mouth_corner": 291,
}


# The mesh's points -> FER-2013's framing (the Haar box the training faces were cut with): the box's centre from the
# eyes' midpoint in eye distances along and across the eye line, its side in eye distances; medians over VALIDATION
# faces (benchmarks/fit_mesh_framing.py).
MESH_FRAMING = (0.011, 0.24, 1.907)


class HeadPose(NamedTuple):
    """Head rotation in degrees: yaw > 0 nose to the image's right, pitch > 0 nose up, roll > 0 turned clockwise."""

    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class Mesh:
    """One face's mesh: `points` (468, 3) x, y in the image's pixels and z (depth, same scale, smaller nearer),
    `score` the network's face presence (0-1; low: the square held no face) and the head `pose`."""

    points: np.ndarray = field(repr=False)
    score: float
    pose: HeadPose


class FaceMesh:
    """The network and its geometry: `__call__(image, boxes, eyes)` -> one Mesh per box, in one batched run."""

    def __init__(self, path: str | Path = MODEL_PATH, threads: int | None = None, reference=REFERENCE_PATH):
        path = Path(path)
        if not path.is_file():
            raise RuntimeError(
                f"The face mesh model file is missing ({path}); it ships inside the package. Reinstall the project "
                "(`make setup`), or leave landmarks off."
            )
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        # One thread: a 192x192 pass is ~3.4 ms with one or two (eval_mesh.py's machine), so a server's other
        # threads keep the second core.
        options.intra_op_num_threads = threads or int(os.environ.get("FER_THREADS", 0)) or 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own types for a corrupt file
            raise RuntimeError(
                f"{path} is not a loadable ONNX model ({type(exc).__name__}): reinstall the project (`make setup`)."
            ) from exc
        self.input_name = self.session.get_inputs()[0].name
        # The frontal shape head poses are measured against, and each point's left-right partner (a flipped face's
        # point i is the unflipped face's mirror[i]); None: points only (how the reference itself is fitted).
        if reference is not None:
            with np.load(reference) as saved:
                self.reference, self.mirror = saved["shape"].astype(np.float64), saved["mirror"].astype(np.intp)

    def __call__(self, image: np.ndarray, boxes, eyes=None) -> list[Mesh]:
        """The meshes of `boxes` ((x, y, w, h) FER-2013 boxes) in a gray or RGB uint8 image; `eyes`: per box, the
        two eye points or None (the square is then upright)."""
        return [Mesh(p, s, head_pose(p, self.reference)) for p, s in zip(*self.points(image, boxes, eyes))]

    def of_crops(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, 468, 3) points of (N, H, W) gray face crops (each crop its own box: 48x48 faces), in crop pixels."""
        square = roi((0, 0, crops.shape[2], crops.shape[1]))
        out = np.empty((len(crops), N_POINTS, 3), np.float32)
        for start in range(0, len(crops), batch_size):
            part = crops[start : start + batch_size]
            out[start : start + len(part)] = self._run([(cv2.cvtColor(c, cv2.COLOR_GRAY2RGB), square) for c in part])[0]
        return out

    def points(self, image: np.ndarray, boxes, eyes=None) -> tuple[list[np.ndarray], list[float]]:
        """(each box's (468, 3) points in the image's pixels, each face-presence score), in one network run."""
        boxes = list(boxes)
        if not boxes:
            return [], []
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
        return self._run([(rgb, roi(box, pair)) for box, pair in zip(boxes, eyes or [None] * len(boxes))])

    def _run(self, views: list[tuple[np.ndarray, Square]]) -> tuple[list[np.ndarray], list[float]]:
        """One network run over (RGB image, square) pairs: each square's points in its image's pixels, and scores."""
        x = np.stack([_sampled(rgb, square) for rgb, square in views]).astype(np.float32) / 255.0
        raw, logits = self.session.run(None, {self.input_name: x})
        points = [to_image(p, square) for p, (_, square) in zip(raw.reshape(len(views), N_POINTS, 3), views)]
        scores = [float(1.0 / (1.0 + math.exp(-float(np.clip(v, -80, 80))))) for v in logits.reshape(-1)]
        return points, scores


class Square(NamedTuple):
    """The square the mesh reads: centre (x, y) and side in image pixels, and its turn in degrees (eyes level)."""

    cx: float
    cy: float
    side: float
    angle: float


def roi(box, eyes=None, scale: float = ROI_SCALE) -> Square:
    """The square around a FER-2013 box (x, y, w, h), turned by the eye line's angle where `eyes` are given."""
    x, y, w, h = (float(v) for v in box)
    angle = 0.0
    if eyes is not None and eyes[0] is not None and eyes[1] is not None:
        (lx, ly), (rx, ry) = sorted(eyes)  # the image-left eye first
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
    return Square(x + w / 2, y + h / 2, max(w, h) * scale, angle)


def _sampled(rgb: np.ndarray, square: Square) -> np.ndarray:
    """The (192, 192, 3) input: the square cut out (edges replicated), turned upright and resized; a square much
    larger than 192 px is first shrunk with area averaging (bilinear sampling alone would alias)."""
    k = square.side / INPUT_SIZE  # image px per input px
    image, cx, cy = rgb, square.cx, square.cy
    if k >= 2:
        half = int(math.ceil(square.side * 0.75))  # holds the square turned any way
        x0, y0 = int(cx) - half, int(cy) - half
        region = _padded_region(rgb, x0, y0, 2 * half)
        f = int(k)  # an integer factor: area averaging stays exact
        image = cv2.resize(region, (region.shape[1] // f, region.shape[0] // f), interpolation=cv2.INTER_AREA)
        cx, cy, k = (cx - x0) / f, (cy - y0) / f, k / f
    matrix = cv2.getRotationMatrix2D((cx, cy), square.angle, 1.0 / k)
    matrix[:, 2] += (INPUT_SIZE / 2 - cx, INPUT_SIZE / 2 - cy)
    return cv2.warpAffine(
        image, matrix, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _padded_region(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """image[y0:y0+side, x0:x0+side], edge pixels replicated where it leaves the image."""
    h, w = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return image[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]


def to_image(points: np.ndarray, square: Square) -> np.ndarray:
    """(468, 3) network points (192 px square) -> image pixels: turned back, scaled and moved to the square."""
    k = square.side / INPUT_SIZE
    t = math.radians(square.angle)
    c, s = math.cos(t), math.sin(t)
    dx, dy = points[:, 0] - INPUT_SIZE / 2, points[:, 1] - INPUT_SIZE / 2
    out = np.empty_like(points, dtype=np.float32)
    # _sampled turned the image counter-clockwise by `angle` (cv2's sign): the points are turned back clockwise.
    out[:, 0] = square.cx + k * (c * dx - s * dy)
    out[:, 1] = square.cy + k * (s * dx + c * dy)
    out[:, 2] = k * points[:, 2]
    return out


def head_pose(points: np.ndarray, reference: np.ndarray) -> HeadPose:
    """The rotation carrying `reference` (468, 3) onto `points` (least squares, scale free), as yaw, pitch, roll."""
    p = points.astype(np.float64) - points.mean(axis=0)
    q = reference - reference.mean(axis=0)
    u, _, vt = np.linalg.svd(q.T @ p)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T  # points ~ rotation @ reference
    nose = -rotation[:, 2]  # the reference's depth axis points away from the camera
    yaw = math.degrees(math.atan2(nose[0], -nose[2]))
    pitch = math.degrees(math.atan2(-nose[1], math.hypot(nose[0], nose[2])))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return HeadPose(round(yaw, 2), round(pitch, 2), round(roll, 2))


def framed_box(points: np.ndarray, framing=MESH_FRAMING) -> tuple[int, int, int, int]:
    """The FER-2013 box (x, y, w, h) from a face's mesh points: square and upright, about the eyes' midpoint moved
    by `framing` (along, across the eye line, in eye distances), `framing[2]` eye distances on a side."""
    left, right = points[POINTS["image_left_eye_outer"], :2], points[POINTS["image_right_eye_outer"], :2]
    along = right - left
    distance = float(np.hypot(*along))
    along = along / distance
    across = np.array([-along[1], along[0]])  # 90 degrees clockwise on screen: down the face
    centre = (left + right) / 2 + distance * (framing[0] * along + framing[1] * across)
    side = framing[2] * distance
    return int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2)), int(round(side)), int(round(side))


_mesh: FaceMesh | None = None
_lock = threading.Lock()


def face_mesh() -> FaceMesh:
    """The process's FaceMesh, loaded on first use (threads arriving together wait for the one load)."""
    global _mesh
    with _lock:
        if _mesh is None:
            _mesh = FaceMesh()
        return _mesh
