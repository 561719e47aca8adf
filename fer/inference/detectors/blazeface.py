"""BlazeFace: a fast neural face detector, whose boxes are mapped to FER-2013's framing.

BlazeFace (Bazarevsky et al. 2019, "BlazeFace: Sub-millisecond Neural Face Detection on Mobile
GPUs") is MediaPipe's selfie-range face detector: a 128x128 RGB input, 896 anchor boxes, six
landmarks per face (eyes, nose, mouth, ears). Its model file, `assets/blazeface_short_range.tflite`,
is MediaPipe's `face_detection_short_range.tflite` (Apache License 2.0; see
`fer/assets/NOTICE-blazeface.md`); it ships inside this package with its ONNX conversion
(`blazeface_short_range.onnx`), which ONNX Runtime runs by default, so detection stays offline and
needs neither TensorFlow nor LiteRT (a `.tflite` path runs on LiteRT, or TensorFlow's `tf.lite.Interpreter`).

Why it is the default detector (benchmarks/bench_detection.py): about 1 ms a pass instead of the
cascade's 70+ ms on a 512x512 photo, and it finds faces that fill the frame (selfies, close-ups),
which the cascade misses without background around the face. Its reach is faces down to about a
sixth of the image side; smaller faces (down to about a twelfth of the side) are found by a second pass over the
image at twice the scale, in two overlapping strips read side by side by the caller's thread and a helper thread
(the network is fully convolutional: the ONNX file takes any input size). For crowds of smaller faces, use
detector="haar".

Its boxes are not FER-2013's framing (FER-2013's faces are the Haar cascade's boxes; on validation faces
that box is 1.16x as wide and 9% of a width higher), so each box is mapped to it: TO_FER_FRAMING for a face
in a scene, CLOSE_UP_FRAMING for a face that fills the photo (fitted on validation faces:
benchmarks/fit_framing.py, fit_close_up_framing.py). Until 0.4 the cascade then re-measured every scene face
in its neighbourhood (~4-5 ms a face, most of a portrait's time); since 0.5 the mapped box is the crop: on
2,384 validation faces in scenes its crops score +0.25 +- 0.44 points against the re-measure's
(docs/detection.md). `cascade=True` (detector="blazeface-cascade") keeps that path.

A face BlazeFace is unsure of (score under MIN_UNCONFIRMED_SCORE) is looked at again on a square twice its
size around it and kept if BlazeFace is sure there (`second_look`); the cascade is only asked about an unsure
face that fills the frame (no background for a closer look to add) and, through detect_faces, about close-ups
BlazeFace misses: it is loaded on first such use, never for a photo whose faces BlazeFace is sure of.
"""

from __future__ import annotations

import os
import threading
import warnings
from contextlib import nullcontext
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from fer.data.images import shrunk
from fer.inference.detectors.base import FRAME_FILLING_AREA, Face, iou, mostly_inside
from fer.inference.detectors.haar import HaarDetector
from fer.inference.litert_model import interpreter_class
from fer.quiet import stderr_silenced, verbose

ASSETS = Path(__file__).resolve().parents[2] / "assets"
MODEL_PATH = ASSETS / "blazeface_short_range.onnx"  # tf2onnx's conversion of the .tflite (NOTICE-blazeface.md)
TFLITE_PATH = ASSETS / "blazeface_short_range.tflite"
INPUT_SIZE = 128
# MediaPipe's face_detection_short_range graph: score threshold 0.5, anchors from strides 8 and 16.
MIN_SCORE = 0.5
# A face BlazeFace scores under this is kept only where a closer look (second_look) is sure of it, or, for a face
# that fills the frame, the cascade confirms it: below it were the false faces on the no-face benchmark images
# (docs/experiments.md, "Face crops").
MIN_UNCONFIRMED_SCORE = 0.75
# BlazeFace box -> FER-2013 (Haar) box: centre shift in box widths (x, y) and width ratio. Medians
# over 500 faces of close-ups and pasted scenes made from the VALIDATION split (never test).
TO_FER_FRAMING = (-0.006, -0.087, 1.156)
# Small faces: a face under a sixth of the image side is too small for one 128x128 pass, so images of at least
# TILE_MIN_SIDE px are read again at twice that scale (the longer side SMALL_FACE_SIDE px: faces down to about a
# twelfth of the side), which keeps only faces up to TILE_MAX_FACE of 128 px (bigger ones are the whole-image pass's).
# The network is fully convolutional: that image is read in two strips (one per thread) overlapping by STRIP_OVERLAP,
# more than such a face, instead of 0.5's 6-9 tiles of 128 px that overlapped by 40% (twice the pixels).
TILE_MIN_SIDE = 256
# No tiles beside a face of at least this share of the image's shorter side (a portrait's subject): on 100 scenes
# of 1-3 validation faces pasted at 60-200 px, 164 of 201 faces found against 166 with tiles (0.4: 161; a third: 153).
SUBJECT_SIDE = 0.45
TILE_MAX_FACE = 0.4
SMALL_FACE_SIDE = 2 * INPUT_SIZE
STRIP_OVERLAP = 64  # px at that scale: > TILE_MAX_FACE * INPUT_SIZE, a multiple of 16
# A 128 px pass and its preparation (detect_faces' close-up retry) cost about what this many more px of strip do: the
# strip the helper reads is that much longer when the retry runs beside the other (96 px of a 192 px high strip).
BESIDE_PIXELS = 18_000
NMS_IOU = 0.3
# BlazeFace box -> the cascade's box for a frame-filling face on a bordered copy: centre shift in box widths (x)
# and heights (y), width ratio; medians over validation close-ups (benchmarks/fit_close_up_framing.py).
CLOSE_UP_FRAMING = (-0.01, -0.078, 1.082)
# A face found with a score under MIN_UNCONFIRMED_SCORE is looked at again on a square this many times its box
# around it (the face about half of the 128 px input) and kept if BlazeFace is sure there: on 403 such
# validation faces in scenes 328 were kept (the cascade confirmed 219), no false face on 227 images without one.
SECOND_LOOK_SIDE = 2.0
SECOND_LOOK_PIXELS = 256  # that square is shrunk to at most this many px first (the network reads 128)

Proposal = tuple[float, np.ndarray, np.ndarray]  # BlazeFace's score, box (x, y, w, h), six landmarks (6, 2)
# A photo the whole-image pass finds nothing in gets detect_faces' close-up retry (a bordered copy, one more pass) only
# where some box of at least EVIDENCE_SIDE of its shorter side (the retry's own floor, faces.RETRY_MIN_FACE) scored
# CLOSE_UP_EVIDENCE: the 102 of 2,500 validation close-ups that only the retry found scored 0.43-0.73 there (wild-dev's
# three: 0.39 and up), bench photos without a face 0.04-0.35 (benchmarks/bench_no_face.py; docs/experiments.md).
EVIDENCE_SIDE = 0.25
CLOSE_UP_EVIDENCE = 0.25


@lru_cache(maxsize=32)
def anchors(height: int = INPUT_SIZE, width: int = INPUT_SIZE) -> np.ndarray:
    """(A, 2) anchor centres in input px for a height x width input: a cell grid of stride 8 with 2 anchors per cell,
    then one of stride 16 with 6 (MediaPipe's layout; 896 anchors at 128x128)."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        yy, xx = np.mgrid[0 : -(-height // stride), 0 : -(-width // stride)]
        centres = np.stack([(xx + 0.5) * stride, (yy + 0.5) * stride], -1).reshape(-1, 2)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out)


class BlazeFace:
    """The raw network: an RGB (or gray) uint8 image -> [(score, box (x, y, w, h), landmarks (6, 2))].

    Called on an image, it reads the whole image shrunk to fit 128x128 (MediaPipe pads it to that square; the network is
    fully convolutional, so the padding is left out: a 4:3 photo is a 128x96 pass, a quarter less work). `scan` reads
    an image already at the network's scale, of any size (the small-face pass).
    Overlapping boxes are merged by score-weighted averaging (MediaPipe's "weighted NMS").
    """

    def __init__(self, path: str | Path = MODEL_PATH, min_score: float = MIN_SCORE):
        path = Path(path)
        if not path.is_file():
            raise RuntimeError(
                f"The BlazeFace model file is missing ({path}); it ships inside the package. "
                "Reinstall the project (`make setup`), or use detector='haar'."
            )
        self._run = self._onnx_runner(path) if path.suffix == ".onnx" else self._litert_runner(path)
        self.min_score = min_score

    @staticmethod
    def _onnx_runner(path: Path):
        """x (1, H, W, 3) -> (regressors (A, 16), score logits (A,)) by ONNX Runtime, one thread."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a 128x128 pass: threads cost more than they give
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own types for a corrupt file
            raise _broken(path, "ONNX", exc) from exc
        name = session.get_inputs()[0].name
        order = sorted(range(2), key=lambda i: -int(session.get_outputs()[i].shape[-1]))  # regressors first

        def run(x):
            outputs = session.run(None, {name: x})
            return outputs[order[0]][0], outputs[order[1]][0, :, 0]

        return run

    @staticmethod
    def _litert_runner(path: Path):
        """The same by the LiteRT interpreter (`ai-edge-litert`, else TensorFlow's tf.lite.Interpreter)."""
        # The runtime prints an XNNPACK INFO line; TensorFlow's fallback interpreter warns it is deprecated.
        try:
            with nullcontext() if verbose() else stderr_silenced(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
                interpreter = interpreter_class()(model_path=str(path), num_threads=1)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:  # what the runtimes raise for a corrupt flatbuffer
            raise _broken(path, "LiteRT", exc) from exc
        index = interpreter.get_input_details()[0]["index"]
        # Two outputs: regressors (1, A, 16) and scores (1, A, 1).
        outputs = sorted(interpreter.get_output_details(), key=lambda o: -int(o["shape"][-1]))
        shape = [tuple(interpreter.get_input_details()[0]["shape"])]
        lock = threading.Lock()  # unlike an ONNX Runtime session, an interpreter serves one thread at a time

        def run(x):
            with lock:
                if x.shape != shape[0]:  # the network is fully convolutional: any input size, once re-allocated
                    interpreter.resize_tensor_input(index, x.shape)
                    interpreter.allocate_tensors()
                    shape[0] = x.shape
                interpreter.set_tensor(index, x)
                interpreter.invoke()
                regressors = interpreter.get_tensor(outputs[0]["index"])[0]
                return regressors, interpreter.get_tensor(outputs[1]["index"])[0, :, 0]

        return run

    def __call__(self, image: np.ndarray) -> list[Proposal]:
        return self.whole(image)[0]

    def whole(self, image: np.ndarray) -> tuple[list[Proposal], float]:
        """The faces in the whole image, and the best score of any box of at least EVIDENCE_SIDE of its shorter side,
        kept or not: how much anything in it looked like a face filling much of it (CLOSE_UP_EVIDENCE)."""
        side = max(image.shape[:2])
        small = shrunk(image, INPUT_SIZE / side)
        h, w = small.shape[:2]
        x = _padded(small, -(-h // 16) * 16, -(-w // 16) * 16)
        raw, scores = self._outputs(x)
        big = raw[:, 2] >= EVIDENCE_SIDE * min(h, w)
        return self._faces(x, raw, scores, side / INPUT_SIZE), float(scores[big].max()) if big.any() else 0.0

    def scan(self, image: np.ndarray, scale: float, offset=(0, 0)) -> list[Proposal]:
        """Faces in `image`, already at the network's scale (padded at its bottom/right to a multiple of 16 px);
        boxes and landmarks mapped to (px + offset) * scale."""
        h, w = image.shape[:2]
        x = _padded(image, -(-h // 16) * 16, -(-w // 16) * 16)
        return self._faces(x, *self._outputs(x), scale, offset)

    def _outputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network on the uint8 RGB input `x`: regressors (A, 16) and scores (A,)."""
        raw, logits = self._run((x.astype(np.float32) / 127.5 - 1.0)[None])
        return raw, 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -80, 80)))

    def _faces(self, x: np.ndarray, raw, scores, scale: float, offset=(0, 0)) -> list[Proposal]:
        """The network's outputs on `x` decoded, merged and mapped to (px + offset) * scale."""
        keep = np.flatnonzero(scores >= self.min_score)
        if not len(keep):
            return []
        centres, r = anchors(*x.shape[:2])[keep], raw[keep].astype(np.float64)
        corner = r[:, :2] + centres - r[:, 2:4] / 2 + offset
        boxes = np.concatenate([corner, r[:, 2:4]], 1) * scale
        points = (r[:, 4:].reshape(-1, 6, 2) + centres[:, None] + offset) * scale
        return _weighted_nms([(float(scores[i]), boxes[j], points[j]) for j, i in enumerate(keep)])


def _padded(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`image` as RGB, padded with black at its bottom/right to height x width."""
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
    h, w = rgb.shape[:2]
    return cv2.copyMakeBorder(rgb, 0, height - h, 0, width - w, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def _broken(path: Path, runtime: str, exc: Exception) -> RuntimeError:
    return RuntimeError(
        f"The BlazeFace model file {path} is not a loadable {runtime} model ({type(exc).__name__}). "
        "Reinstall the project (`make setup`), or use detector='haar'."
    )


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


_helper: list = []


def _helper_thread():
    """The one thread beside the caller's that reads a strip of small faces (the machines this is measured on have
    two cores), made once; None where FER_THREADS says this process has one CPU (a Ray actor among others)."""
    if not _helper:
        from concurrent.futures import ThreadPoolExecutor

        cpus = int(os.environ.get("FER_THREADS", 0)) or os.cpu_count() or 1
        _helper.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="blazeface") if cpus > 1 else None)
    return _helper[0]


def _strips(length: int, width: int, lopsided: bool) -> list[tuple[int, int]]:
    """(start, length) of the small-face pass's strips along an axis of `length` px (`width` px across): two
    overlapping by at least STRIP_OVERLAP, multiples of 16 px; `lopsided`, the first is longer by about a 128 px pass
    (work beside the second strip, in the same thread, while the helper reads the first)."""
    extra = BESIDE_PIXELS // width if lopsided else 0
    first = -(-(length + STRIP_OVERLAP + extra) // 32) * 16
    if length <= first:
        return [(0, length)]
    second = -(-(length + STRIP_OVERLAP - first) // 16) * 16
    return [(0, first), (length - second, second)]


def _fer_side(box) -> float:
    """The side of a BlazeFace box once mapped to FER-2013's framing (TO_FER_FRAMING's width ratio)."""
    return max(box[2], box[3]) * TO_FER_FRAMING[2]


def _framed(box, framing) -> tuple[int, int, int, int]:
    """A BlazeFace box (x, y, w, h) mapped by `framing` (centre shift in box widths, width ratio) to a square."""
    x, y, w, h = box
    dx, dy, scale = framing
    side = max(w, h) * scale
    cx, cy = x + w / 2 + dx * w, y + h / 2 + dy * h
    return tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, side, side))


def _same_face(box, kept) -> bool:
    return iou(box, kept) >= NMS_IOU or mostly_inside(box, kept)


class BlazeFaceDetector:
    """Faces in a gray or RGB image: BlazeFace on the whole image (and tiles), boxes in FER-2013's framing.

    `Face.score` is BlazeFace's probability; `left_eye`/`right_eye` are its eye landmarks (so `align=True`
    works). A face BlazeFace is unsure of gets a closer look (`second_look`); the cascade is loaded on first use:
    the second opinion on an unsure frame-filling face (and, with cascade=True only, detect_faces' close-up retries).
    `min_side` (detect_faces' retries): only faces at least that many px wide, so tiles are skipped.
    `cascade` (detector="blazeface-cascade", the path until 0.4): the cascade re-measures each scene face and
    confirms unsure ones, instead of the mapped box and the closer look.
    """

    takes_min_side = True
    runs_beside = True  # __call__(..., beside=f): see there
    # A frame-filling face is framed by CLOSE_UP_FRAMING here, so detect_faces skips its bordered re-measure.
    frames_close_ups = True

    def __init__(self, min_unconfirmed_score: float = MIN_UNCONFIRMED_SCORE, cascade: bool = False, mesh: bool = False):
        self.net = BlazeFace()
        self._haar = None  # the cascade, loaded on first use (~10 ms): a photo whose faces BlazeFace is sure of never
        self.min_unconfirmed_score, self.cascade, self.mesh = min_unconfirmed_score, cascade, mesh

    @property
    def cascade_detector(self) -> HaarDetector:
        """The cascade, loaded on first use: with cascade=True it re-measures every face; by default it only confirms
        a frame-filling face BlazeFace is unsure of."""
        if self._haar is None:
            self._haar = HaarDetector()
        return self._haar

    @property
    def haar(self) -> HaarDetector | None:
        """The cascade detect_faces asks about a photo BlazeFace finds nothing in (its close-up retries): only with
        cascade=True (0.4's path). By default none: on validation close-ups it found 1 face in 300 that BlazeFace's
        bordered look missed, at 4-5 ms on every photo without a face (benchmarks/bench_detection.py)."""
        return self.cascade_detector if self.cascade else None

    @staticmethod
    def _fills_frame(box, shape) -> bool:
        return _fer_side(box) ** 2 >= FRAME_FILLING_AREA * shape[0] * shape[1]

    def proposals(self, image: np.ndarray, min_side: int = 0, beside=None) -> list[Proposal]:
        """BlazeFace's faces in the whole image and, for larger images, its small faces; no duplicates. `beside`:
        see __call__."""
        found, evidence = self.net.whole(image)
        h, w = image.shape[:2]
        # A portrait's subject (a face of at least SUBJECT_SIDE of the shorter side) seldom stands beside faces
        # small enough to need tiles; beside a frame-filling face they would not be kept anyway (detect_faces'
        # close-up subject rule).
        portrait = self.frames_close_ups and any(
            self._fills_frame(f[1], (h, w)) or _fer_side(f[1]) >= SUBJECT_SIDE * min(h, w) for f in found
        )
        # Nothing found: detect_faces' close-up retry is worth its pass only where something looked like a face
        # filling much of the photo (CLOSE_UP_EVIDENCE).
        retry = not found and (self.cascade or evidence >= CLOSE_UP_EVIDENCE)
        if beside is not None and not found and not retry:
            beside.skip()
        # detect_faces' retries (min_side > 0) look only for faces of a quarter of the image or more: the whole-image
        # pass sees those, and the first pass already searched the smaller ones.
        if not portrait and not min_side and max(h, w) >= TILE_MIN_SIDE:
            found += self.small_faces(image, beside if retry else None, lopsided=retry)
        kept = []
        for face in sorted(found, key=lambda f: -f[0]):  # best first; a box mostly inside a kept one is a duplicate
            if not any(_same_face(tuple(face[1]), tuple(k[1])) for k in kept):
                kept.append(face)
        return kept

    def small_faces(self, image: np.ndarray, beside=None, lopsided: bool = False) -> list[Proposal]:
        """Faces too small for the whole-image pass (up to TILE_MAX_FACE of 128 px at twice its scale): the image
        at twice that scale, read in two strips along its longer side that overlap by more than such a face, the
        first by a helper thread. `lopsided` (the whole-image pass found nothing): the first strip is the longer, and
        `beside()` runs after the second, where there is a helper (the strips depend on the image alone)."""
        factor = SMALL_FACE_SIDE / max(image.shape[:2])
        level = shrunk(image, factor)
        axis = int(level.shape[1] >= level.shape[0])  # 1: strips side by side

        def scan(strip):
            start, length = strip
            part = level[:, start : start + length] if axis else level[start : start + length]
            return self.net.scan(part, 1 / factor, (start, 0) if axis else (0, start))

        # Resizing and ONNX Runtime release the GIL, and a pass this small gains nothing from ONNX Runtime's own
        # threads. The strips do not depend on the thread count, so neither do the faces.
        first, *rest = _strips(level.shape[axis], level.shape[1 - axis], lopsided)
        helper = _helper_thread()
        future = helper.submit(scan, first) if helper else None
        faces = [f for strip in rest for f in scan(strip)]
        if helper and beside is not None:
            beside()
        faces += future.result() if future else scan(first)
        return [f for f in faces if f[1][2] <= TILE_MAX_FACE * INPUT_SIZE / factor]

    def __call__(self, image: np.ndarray, min_side: int = 0, beside=None) -> list[Face]:
        """The faces in `image`. `beside`: detect_faces' close-up retry, a zero-argument call with a `skip()`. Where
        the whole-image pass finds nothing, it is skipped unless something looked like a face filling the photo
        (CLOSE_UP_EVIDENCE), and else run in this thread while the helper reads the longer strip (a photo without a
        face then costs the longer of the two, not their sum: docs/experiments.md); its result is the caller's."""
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        equalized = cv2.equalizeHist(gray) if self.cascade else None
        faces = []
        unsure = self.min_unconfirmed_score
        for score, box, points in self.proposals(image, min_side, beside):
            close_up = self.frames_close_ups and self._fills_frame(box, gray.shape)
            framed = _framed(box, CLOSE_UP_FRAMING if close_up else TO_FER_FRAMING)
            if framed[2] < min_side:
                continue
            if self.cascade:
                framed = self._remeasured(equalized, framed, score, close_up)
            elif (
                score < unsure
                and self.second_look(image, box) < unsure
                and not (close_up and self._confirms(gray, framed))
            ):
                framed = None  # unsure at first sight and at a closer look (and, filling the frame, not the cascade)
            if framed is None:
                continue
            # MediaPipe names the eyes from the subject's side: point 0 is the right eye, 1 the left.
            right_eye, left_eye = (tuple(float(v) for v in p) for p in points[:2])
            faces.append(Face(framed, score, left_eye, right_eye, "detector"))
        return self._mesh_framed(image, faces) if self.mesh and faces else faces

    @staticmethod
    def _mesh_framed(image: np.ndarray, faces: list[Face]) -> list[Face]:
        """mesh=True: each face's box re-framed from its face mesh, read in the mapped box (fer.inference.mesh's
        framed_box: on real portraits +4 points, on small upscaled faces -1 to -2; docs/experiments.md)."""
        from fer.inference.mesh import face_mesh, framed_box

        points, _ = face_mesh().points(image, [f.box for f in faces], [(f.left_eye, f.right_eye) for f in faces])
        return [replace(f, box=framed_box(p)) for f, p in zip(faces, points)]

    def second_look(self, image: np.ndarray, box) -> float:
        """BlazeFace's best score for `box` on a square of SECOND_LOOK_SIDE times its side around it (edges
        replicated): a face it was unsure of in the whole image, looked at closer."""
        x, y, w, h = box
        side = max(w, h) * SECOND_LOOK_SIDE
        x0, y0 = x + w / 2 - side / 2, y + h / 2 - side / 2
        # Only the part inside the image is cut, shrunk first (the network sees 128 px) and then edge-padded:
        # a close-up's square is mostly outside its photo, and padding the whole photo cost more than the pass.
        cx0, cy0 = max(0, int(x0)), max(0, int(y0))
        cx1, cy1 = min(image.shape[1], int(x0 + side)), min(image.shape[0], int(y0 + side))
        if cx1 <= cx0 or cy1 <= cy0:
            return 0.0
        f = min(1.0, SECOND_LOOK_PIXELS / side)
        part = image[cy0:cy1, cx0:cx1]
        if f < 1.0:
            size = (max(1, round((cx1 - cx0) * f)), max(1, round((cy1 - cy0) * f)))
            part = cv2.resize(part, size, interpolation=cv2.INTER_AREA)
        n = round(side * f)
        top, left = max(0, round((cy0 - y0) * f)), max(0, round((cx0 - x0) * f))
        bottom, right = max(0, n - top - part.shape[0]), max(0, n - left - part.shape[1])
        region = cv2.copyMakeBorder(part, top, bottom, left, right, cv2.BORDER_REPLICATE)
        scores = []
        for score, b, _ in self.net(region):
            mapped = ((b[0] - left) / f + cx0, (b[1] - top) / f + cy0, b[2] / f, b[3] / f)
            if iou(mapped, tuple(box)) >= NMS_IOU:
                scores.append(score)
        return max(scores, default=0.0)

    def _confirms(self, gray: np.ndarray, framed) -> bool:
        """The cascade finds a face at `framed`: a face that fills the frame has no background around it, which
        BlazeFace's closer look cannot add (on 300 validation close-ups it kept 249 alone, 272 with this)."""
        return self.cascade_detector.remeasure(cv2.equalizeHist(gray), framed) is not None

    def _remeasured(self, equalized: np.ndarray, framed, score: float, close_up: bool):
        """The path with the cascade (cascade=True; before 0.5): a scene's face re-measured by the cascade in its
        neighbourhood, a face BlazeFace is unsure of kept only where the cascade confirms it; None: dropped."""
        confident = score >= self.min_unconfirmed_score
        measured = self.cascade_detector.remeasure(equalized, framed) if not (close_up and confident) else None
        if close_up:
            # No background around the face for the cascade to box it by: the mapped box is the framing.
            return framed if confident or measured is not None else None
        if measured is None:
            return framed if confident else None
        return measured[0]
