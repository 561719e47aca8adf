"""Emotions through a video: per-frame, per-face predictions, an annotated copy, a timeline."""

from __future__ import annotations

import contextlib
from pathlib import Path

import cv2
import pandas as pd
from tqdm.auto import tqdm

from fer import quiet
from fer.data.images import VIDEO_SUFFIXES  # noqa: F401  (re-exported: fer.inference.video.VIDEO_SUFFIXES)
from fer.errors import ImageError
from fer.inference.drawing import annotate
from fer.inference.faces import DEFAULT_DETECTOR, DEFAULT_MARGIN, detect_faces
from fer.inference.predict import iter_photos, model_classes, resolve_model


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
    max_side: int = 1024,
    labels: str | None = None,
    prior="training",
) -> pd.DataFrame:
    """Predict the faces of every `stride`-th frame; one row per face.

    Columns: frame, time_s, face (index left to right; -1 for a frame without faces),
    detected (True where the boxes were found in this frame), x, y, w, h, emotion,
    probability and one probability column per emotion. Frames go through the network
    `chunk` at a time. `out_video` writes the processed frames with boxes and labels (mp4v
    codec) at fps / stride. `tta`, `labels` (a dual-head model's head) and `prior`: as in predict_crop.

    Speed: face detection, not the network, is what limits frames per second. `detect_every=N`
    runs the detector on every N-th analysed frame and classifies the frames between in the
    boxes found last (faces move little in a few frames; every frame still gets its own
    emotion). `max_side` downscales frames for detection only (e.g. 320: faces under ~50 px of
    a 640x480 frame are then missed, but detection costs about a quarter).
    """
    path = Path(path)
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    if detect_every < 1:
        raise ValueError(f"detect_every must be at least 1, got {detect_every}")
    if not path.is_file():
        raise ImageError(f"{path}: no such video file")
    with contextlib.nullcontext() if quiet.verbose() else quiet.stderr_silenced():
        capture = cv2.VideoCapture(str(path))  # ffmpeg prints raw lines ("moov atom not found") on bad files
    if not capture.isOpened():
        raise ImageError(f"{path}: cannot open as a video (unsupported codec or not a video file)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    model = resolve_model(model)
    classes = model_classes(model, labels)  # a head the model lacks: ValueError before any frame is read
    writer = None
    rows: list[dict] = []
    frames: list = []
    indices: list[int] = []
    boxes: list[list] = []  # the boxes found last (detect_every > 1 re-uses them)

    def flush():
        nonlocal writer
        per_frame, fresh = [], []
        for k, rgb in zip(indices, frames):
            detect = (k // stride) % detect_every == 0
            if detect:
                # Frames are scenes: no close-up retries (they would run on every frame without a face).
                found = detect_faces(rgb, detector, max_side=max_side, close_ups=False, whole_image=False)
                boxes[:] = [f.box for f in found]
            per_frame.append(list(boxes))
            fresh.append(detect)
        done = iter_photos(frames, model, boxes=per_frame, margin=margin, tta=tta, labels=labels, prior=prior)
        results = [r.faces for r in done]
        for index, rgb, faces, detected in zip(indices, frames, results, fresh):
            base = {"frame": index, "time_s": round(index / fps, 3), "detected": detected}
            if not faces:
                rows.append({**base, "face": -1})
            for k, p in enumerate(faces):
                x, y, w, h = p.box
                rows.append(
                    {
                        **base,
                        "face": k,
                        "x": x,
                        "y": y,
                        "w": w,
                        "h": h,
                        "emotion": p.emotion,
                        "probability": p.probability,
                        **p.probabilities,
                    }
                )
            if out_video is not None:
                if writer is None:
                    Path(out_video).parent.mkdir(parents=True, exist_ok=True)
                    size = (rgb.shape[1], rgb.shape[0])
                    writer = cv2.VideoWriter(str(out_video), cv2.VideoWriter_fourcc(*"mp4v"), fps / stride, size)
                writer.write(cv2.cvtColor(annotate(rgb, faces), cv2.COLOR_RGB2BGR))
        frames.clear()
        indices.clear()

    limit = min(total, max_frames) if total and max_frames else (max_frames or total)
    bar = tqdm(total=limit, unit="frame", desc=path.name, disable=not progress)
    index = 0
    try:
        while max_frames is None or index < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            if index % stride == 0:
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                indices.append(index)
                if len(frames) == chunk:
                    flush()
            index += 1
            bar.update(1)
        if frames:
            flush()
    finally:
        bar.close()
        capture.release()
        if writer is not None:
            writer.release()
    if index == 0:
        raise ImageError(f"{path}: no frame could be decoded")
    columns = ["frame", "time_s", "face", "detected", "x", "y", "w", "h", "emotion", "probability", *classes]
    return pd.DataFrame(rows).reindex(columns=columns)
