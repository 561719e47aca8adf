"""Emotions through a video: per-frame, per-face predictions, an annotated copy, a timeline."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fer import quiet
from fer.data.images import to_gray
from fer.errors import ImageError
from fer.inference.cropping import DEFAULT_MARGIN
from fer.inference.detectors.base import Face
from fer.inference.detectors.registry import DEFAULT_DETECTOR
from fer.inference.drawing import annotate
from fer.inference.faces import DETECT_MAX_SIDE
from fer.inference.mesh import COLUMNS as MESH_COLUMNS
from fer.inference.options import PredictOptions
from fer.inference.predict import Prediction, predictions


def analyze_video(
    path: str | Path,
    model=None,
    stride: int = 1,
    detector=DEFAULT_DETECTOR,
    margin: float = DEFAULT_MARGIN,
    out_video: str | Path | None = None,
    max_frames: int | None = None,
    chunk: int = 32,
    progress: bool = True,
    tta: bool | str = False,
    detect_every: int = 1,
    max_side: int = DETECT_MAX_SIDE,
    labels: str | None = None,
    prior="training",
    start_frame: int = 0,
    landmarks: bool = False,
) -> pd.DataFrame:
    """Predict the faces of every `stride`-th frame; one row per face.

    Columns: frame, time_s, face (index left to right; -1 for a frame without faces),
    detected (True where the boxes were found in this frame), x, y, w, h, emotion,
    probability and one probability column per emotion. Frames go through the network
    `chunk` at a time. `out_video` writes the processed frames with boxes and labels at
    fps / stride: VP8 for a `.webm` path (browsers play it), mp4v otherwise. `tta`, `labels`
    (a dual-head model's head) and `prior`: as in predict_crop.

    `landmarks`: each face's head pose (yaw, pitch, roll columns, degrees) and face mesh (x_0..x_467, y_0..y_467,
    z_0..z_467 in frame pixels) too, and drawn in `out_video` (fer.inference.mesh; ~2-4 ms a face).

    `start_frame` starts there (a seek) and `max_frames` counts from it; frame numbers, times and the stride stay
    the whole video's, so consecutive ranges give the rows one pass would (how a long video is split into tasks).

    Speed: face detection, not the network, is what limits frames per second. `detect_every=N`
    runs the detector on every N-th analysed frame and classifies the frames between in the
    boxes found last (faces move little in a few frames; every frame still gets its own
    emotion). `max_side` downscales frames for detection only (e.g. 320: faces under ~50 px of
    a 640x480 frame are then missed, but detection costs about a quarter).
    """
    if stride < 1 or detect_every < 1 or start_frame < 0:
        raise ValueError(
            f"stride and detect_every must be at least 1 and start_frame 0 or more, got {stride}, {detect_every} "
            f"and {start_frame}"
        )
    # Frames are scenes: no close-up retries (they would run on every frame without a face).
    options = PredictOptions.make(
        model,
        labels=labels,
        prior=prior,
        tta=tta,
        face_crop=False,
        detector=detector,
        margin=margin,
        close_ups=False,
        max_side=max_side,
        landmarks=landmarks,
    )
    capture, fps = _opened(Path(path))
    rows, writer = [], _Writer(out_video, fps / stride, landmarks)
    frames = _Frames(capture, stride, max_frames, progress, Path(path).name, start_frame)
    last: list[Face] = []  # the faces found last (detect_every > 1 re-uses them)
    try:
        for batch in _chunks(frames, chunk):  # decode
            lumas = [to_gray(rgb) for _, rgb in batch]  # once a frame: detection and every face's crop read it
            found = [_faces_of(options, i // stride, luma, detect_every, last) for (i, _), luma in zip(batch, lumas)]
            for (index, rgb), (_, fresh), answers in zip(batch, found, _classified(options, batch, lumas, found)):
                rows += _rows(index, fps, fresh, answers)  # table
                writer.write(rgb, answers)
    finally:
        frames.close()
        capture.release()
        writer.close()
    if not rows and frames.decoded == 0:
        raise ImageError(f"{path}: no frame could be decoded")
    columns = ["frame", "time_s", "face", "detected", "x", "y", "w", "h", "emotion", "probability", *options.classes]
    if landmarks:
        columns += ["yaw", "pitch", "roll", *MESH_COLUMNS]
    return pd.DataFrame(rows).reindex(columns=columns)


def _faces_of(options: PredictOptions, k: int, luma, detect_every: int, last: list[Face]) -> tuple[list[Face], bool]:
    """Detect: (the faces of the k-th analysed frame, gray, whether they were found in it); between detections every
    `detect_every` frames the faces found last (`last`, updated here) are re-used."""
    fresh = k % detect_every == 0
    if fresh:
        last[:] = options.find(luma)
    return list(last), fresh


def _classified(options: PredictOptions, batch, lumas, found) -> list[list[Prediction]]:
    """Classify: every face of a chunk of frames cut out (of the frames' gray copies) and answered in one batch; the
    Predictions per frame."""
    pairs = [(luma, face) for luma, (faces, _) in zip(lumas, found) for face in faces]
    meshes = [
        m for (_, rgb), (faces, _) in zip(batch, found) for m in options.meshes(rgb, faces) or [None] * len(faces)
    ]
    crops = [options.cut(luma, face) for luma, face in pairs]
    answered = iter(predictions(options, crops, [f for _, f in pairs], meshes))
    return [[next(answered) for _ in faces] for faces, _ in found]


def _opened(path: Path) -> tuple[cv2.VideoCapture, float]:
    """(the capture, its frames per second), or ImageError saying why the file cannot be read as a video."""
    if not path.is_file():
        raise ImageError(f"{path}: no such video file")
    with contextlib.nullcontext() if quiet.verbose() else quiet.stderr_silenced():
        capture = cv2.VideoCapture(str(path))  # ffmpeg prints raw lines ("moov atom not found") on bad files
    if not capture.isOpened():
        raise ImageError(f"{path}: cannot open as a video (unsupported codec or not a video file)")
    return capture, capture.get(cv2.CAP_PROP_FPS) or 25.0


class _Frames:
    """Decode: (frame index, RGB array) of every `stride`-th frame, with a progress bar; `decoded` counts frames."""

    def __init__(self, capture, stride: int, max_frames: int | None, progress: bool, name: str, start: int = 0):
        total = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) - start) or None
        limit = min(total, max_frames) if total and max_frames else (max_frames or total)
        if start:
            capture.set(cv2.CAP_PROP_POS_FRAMES, start)  # FFmpeg seeks to the key frame before, decodes up to it
        self.capture, self.stride, self.max_frames, self.decoded, self.start = capture, stride, max_frames, 0, start
        self.bar = tqdm(total=limit, unit="frame", desc=name, disable=not progress)

    def __iter__(self) -> Iterator[tuple[int, object]]:
        while self.max_frames is None or self.decoded < self.max_frames:
            ok, frame = self.capture.read()
            if not ok:
                return
            index, self.decoded = self.start + self.decoded, self.decoded + 1
            self.bar.update(1)
            if index % self.stride == 0:
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.bar.close()


def _chunks(frames, size: int):
    """The frames `size` at a time (the network classifies a chunk's faces in one batch)."""
    batch = []
    for item in frames:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _rows(index: int, fps: float, detected: bool, faces: list[Prediction]) -> list[dict]:
    """Table: one row per face of a frame (face -1 for a frame without one)."""
    base = {"frame": index, "time_s": round(index / fps, 3), "detected": detected}
    if not faces:
        return [{**base, "face": -1}]
    return [
        {
            **base,
            "face": k,
            **dict(zip("xywh", p.box)),
            "emotion": p.emotion,
            "probability": p.probability,
            **p.probabilities,
            **_mesh_columns(p),
        }
        for k, p in enumerate(faces)
    ]


def _mesh_columns(p: Prediction) -> dict:
    """A face's pose and mesh as table columns (none without landmarks)."""
    if p.landmarks is None:
        return {}
    points = np.round(p.landmarks.T, 2).ravel()  # x_0..x_467, y_0.., z_0..
    return {**p.pose._asdict(), **dict(zip(MESH_COLUMNS, points.tolist()))}


class _Writer:
    """The annotated copy of the analysed frames (VP8 for .webm, else mp4v), opened at the first frame; nothing
    without a path."""

    def __init__(self, path: str | Path | None, fps: float, landmarks: bool = False):
        self.path, self.fps, self.video, self.landmarks = path, fps, None, landmarks

    def write(self, rgb, faces) -> None:
        if self.path is None:
            return
        if self.video is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            size = (rgb.shape[1], rgb.shape[0])
            codec = "VP80" if Path(self.path).suffix.lower() == ".webm" else "mp4v"
            with quiet.stderr_silenced():  # FFmpeg says VP8's tag is "not supported" in WebM, then writes it fine
                self.video = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), self.fps, size)
        self.video.write(cv2.cvtColor(annotate(rgb, faces, landmarks=self.landmarks), cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self.video is not None:
            self.video.release()
