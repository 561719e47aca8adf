"""BlazeFace: a fast neural face detector, with the Haar cascade re-measuring its boxes.

BlazeFace (Bazarevsky et al. 2019, "BlazeFace: Sub-millisecond Neural Face Detection on Mobile
GPUs") is MediaPipe's selfie-range face detector: a 128x128 RGB input, 896 anchor boxes, six
landmarks per face (eyes, nose, mouth, ears). Its model file, `assets/blazeface_short_range.tflite`,
is MediaPipe's `face_detection_short_range.tflite` (Apache License 2.0; see
`assets/NOTICE-blazeface.md`); it ships inside this package and runs on the LiteRT interpreter
(`ai-edge-litert`, or TensorFlow's `tf.lite.Interpreter`), so detection stays offline.

Why it is the default detector (benchmarks/bench_detection.py): about 1.5 ms a pass instead of the
cascade's 70+ ms on a 512x512 photo, and it finds faces that fill the frame (selfies, close-ups),
which the cascade misses without background around the face. Its reach is faces down to about a
sixth of the image side; smaller faces are found on overlapping tiles of the image (down to about a
twelfth of the side), and where BlazeFace finds nothing at all the cascade searches the whole image
(a crowd of small faces). Small faces beside larger ones that BlazeFace did find are not searched
for by the cascade: for crowds of small faces, use detector="haar".

Its boxes are not FER-2013's framing (they cut the forehead: on validation faces the FER-2013 box
is 1.16x as wide and 9% of a width higher). The network was trained on Haar boxes, so each
BlazeFace box is mapped to that framing and then re-measured by the cascade in its neighbourhood
(`HaarDetector.remeasure`, cheap: a narrow search around one face). Where the cascade does not
confirm a face (a profile, a tilted head) the mapped box is kept if BlazeFace is confident.

The cascade's box is kept rather than the mapped one: it scores better on real photos (wild-dev),
the mapped one only on images made from FER-2013 faces (docs/experiments.md, "Face crops").
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np

from fer.inference.detectors import Face, HaarDetector, iou, mostly_inside
from fer.inference.litert_model import _interpreter_class
from fer.quiet import stderr_silenced, verbose

MODEL_PATH = Path(__file__).resolve().parent.parent / "assets" / "blazeface_short_range.tflite"
INPUT_SIZE = 128
# MediaPipe's face_detection_short_range graph: score threshold 0.5, anchors from strides 8 and 16.
MIN_SCORE = 0.5
# A box the cascade does not confirm is kept only above this score: below it, unconfirmed boxes were the
# false faces on the no-face benchmark images (docs/experiments.md, "Face crops").
MIN_UNCONFIRMED_SCORE = 0.75
# BlazeFace box -> FER-2013 (Haar) box: centre shift in box widths (x, y) and width ratio. Medians
# over 500 faces of close-ups and pasted scenes made from the VALIDATION split (never test).
TO_FER_FRAMING = (-0.006, -0.087, 1.156)
# Tiles: a face under a sixth of the image side is too small for one 128x128 pass, so images of at
# least TILE_MIN_SIDE px are also searched in 3x3 overlapping tiles of half the side; a tile keeps
# only faces up to TILE_MAX_FACE of its side (bigger ones are parts of a face the whole-image pass has).
TILE_MIN_SIDE = 256
TILE_MAX_FACE = 0.4
NMS_IOU = 0.3


def anchors() -> np.ndarray:
    """(896, 2) anchor centres in 0..1: 16x16 cells x 2 anchors (stride 8), then 8x8 cells x 6 (stride 16)."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = INPUT_SIZE // stride
        yy, xx = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xx + 0.5) / cells, (yy + 0.5) / cells], -1).reshape(-1, 2)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out)


class BlazeFace:
    """The raw network: an RGB (or gray) uint8 image -> [(score, box (x, y, w, h), landmarks (6, 2))].

    The image is padded to a square at its bottom/right (keeping its aspect ratio) and resized to
    128x128; overlapping boxes are merged by score-weighted averaging (MediaPipe's "weighted NMS").
    """

    def __init__(self, path: str | Path = MODEL_PATH, min_score: float = MIN_SCORE):
        path = Path(path)
        if not path.is_file():
            raise RuntimeError(
                f"The BlazeFace model file is missing ({path}); it ships inside the package. "
                "Reinstall the project (`make setup`), or use detector='haar'."
            )
        # The runtime prints an XNNPACK INFO line; TensorFlow's fallback interpreter warns it is deprecated.
        try:
            with nullcontext() if verbose() else stderr_silenced(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
                self.interpreter = _interpreter_class()(model_path=str(path), num_threads=1)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:  # what the runtimes raise for a corrupt flatbuffer
            raise RuntimeError(
                f"The BlazeFace model file {path} is not a loadable LiteRT model ({type(exc).__name__}). "
                "Reinstall the project (`make setup`), or use detector='haar'."
            ) from exc
        self._input = self.interpreter.get_input_details()[0]["index"]
        # Two outputs: regressors (1, 896, 16) and scores (1, 896, 1).
        outputs = sorted(self.interpreter.get_output_details(), key=lambda o: -int(o["shape"][-1]))
        self._boxes, self._scores = outputs[0]["index"], outputs[1]["index"]
        self.anchors, self.min_score = anchors(), min_score

    def __call__(self, image: np.ndarray) -> list[tuple[float, np.ndarray, np.ndarray]]:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
        h, w = rgb.shape[:2]
        side = max(h, w)
        square = cv2.copyMakeBorder(rgb, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        x = cv2.resize(square, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
        self.interpreter.set_tensor(self._input, (x / 127.5 - 1.0)[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._boxes)[0]
        logits = self.interpreter.get_tensor(self._scores)[0, :, 0].astype(np.float64)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))
        found = []
        for i in np.flatnonzero(scores >= self.min_score):
            r = raw[i] / INPUT_SIZE
            cx, cy = r[0] + self.anchors[i, 0], r[1] + self.anchors[i, 1]
            box = np.array([cx - r[2] / 2, cy - r[3] / 2, r[2], r[3]]) * side
            found.append((float(scores[i]), box, (r[4:].reshape(6, 2) + self.anchors[i]) * side))
        return _weighted_nms(found)


def _weighted_nms(found):
    """Merge boxes overlapping the best remaining one (IoU > NMS_IOU) into their score-weighted mean."""
    found = sorted(found, key=lambda f: -f[0])
    merged = []
    while found:
        top = found[0]
        group = [f for f in found if iou(tuple(f[1]), tuple(top[1])) > NMS_IOU]
        found = [f for f in found if iou(tuple(f[1]), tuple(top[1])) <= NMS_IOU]
        weights = np.array([f[0] for f in group])[:, None]
        box = (np.array([f[1] for f in group]) * weights).sum(0) / weights.sum()
        points = (np.array([f[2] for f in group]) * weights[:, :, None]).sum(0) / weights.sum()
        merged.append((top[0], box, points))
    return merged


def _same_face(box, kept) -> bool:
    return iou(box, kept) >= NMS_IOU or mostly_inside(box, kept)


class BlazeFaceDetector:
    """Faces in a gray or RGB image: BlazeFace on the whole image (and tiles), boxes in FER-2013's framing.

    `Face.score` is BlazeFace's probability; `left_eye`/`right_eye` are its eye landmarks (so
    `align=True` works); `haar` is the cascade that re-measures the boxes (and that detect_faces
    uses for its close-up second opinions, and searches the image with when BlazeFace finds nothing).
    `min_side` (detect_faces' retries): only faces at least that many px wide, so tiles (which hold
    faces under TILE_MAX_FACE of half the image) and the cascade's small scales are skipped.
    """

    takes_min_side = True

    def __init__(
        self, min_unconfirmed_score: float = MIN_UNCONFIRMED_SCORE, tiles: bool = True, haar_fallback: bool = True
    ):
        self.net, self.haar = BlazeFace(), HaarDetector()
        self.min_unconfirmed_score, self.tiles, self.haar_fallback = min_unconfirmed_score, tiles, haar_fallback

    def proposals(self, image: np.ndarray, min_side: int = 0) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """BlazeFace's faces in the whole image and, for larger images, in 3x3 half-size tiles; no duplicates."""
        found = self.net(image)
        h, w = image.shape[:2]
        t = max(h, w) // 2
        if self.tiles and max(h, w) >= TILE_MIN_SIDE and min_side <= TILE_MAX_FACE * t * TO_FER_FRAMING[2]:
            for y0 in sorted({0, max(0, (h - t) // 2), max(0, h - t)}):
                for x0 in sorted({0, max(0, (w - t) // 2), max(0, w - t)}):
                    offset = np.array([x0, y0])
                    for score, box, points in self.net(image[y0 : y0 + t, x0 : x0 + t]):
                        if box[2] <= TILE_MAX_FACE * t:
                            found.append((score, box + np.array([x0, y0, 0, 0]), points + offset))
        kept = []
        for face in sorted(found, key=lambda f: -f[0]):  # best first; a box mostly inside a kept one is a duplicate
            if not any(_same_face(tuple(face[1]), tuple(k[1])) for k in kept):
                kept.append(face)
        return kept

    def __call__(self, image: np.ndarray, min_side: int = 0) -> list[Face]:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        equalized = cv2.equalizeHist(gray)
        faces = []
        for score, box, points in self.proposals(image, min_side):
            x, y, w, h = box
            dx, dy, scale = TO_FER_FRAMING
            side = max(w, h) * scale
            if side < min_side:
                continue
            cx, cy = x + w / 2 + dx * w, y + h / 2 + dy * h
            framed = tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, side, side))
            measured = self.haar.remeasure(equalized, framed)
            if measured is None and score < self.min_unconfirmed_score:
                continue
            # MediaPipe names the eyes from the subject's side: point 0 is the right eye, 1 the left.
            right_eye, left_eye = (tuple(float(v) for v in p) for p in points[:2])
            faces.append(Face(framed if measured is None else measured[0], score, left_eye, right_eye, "detector"))
        if not faces and self.haar_fallback:
            # Nothing BlazeFace can see: faces under about a twelfth of the image side (a crowd, a
            # distant group) are beyond its reach even on tiles, so the cascade searches the image.
            return self.haar(gray, min_side=min_side)
        return faces
