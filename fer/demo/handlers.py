"""What each demo tab does with its inputs, through fer's public API only; no Gradio here (tested on its own)."""

from __future__ import annotations

import html
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fer.demo.limits import LimitError, Limits
from fer.inference.drawing import annotate
from fer.inference.explain import explanations
from fer.inference.models import model_classes
from fer.inference.options import PredictOptions
from fer.inference.predict import photo_results, predict_emotion
from fer.inference.video import analyze_video

POSE = ("yaw", "pitch", "roll")
SHOWN_SIDE = 1600  # annotated photos are scaled to this for the browser; the boxes were found at full size
CHART_FACES = 4  # a clip's chart per face, for the leftmost faces


@dataclass(frozen=True)
class Settings:
    """The options a person picks in the demo, passed to fer's functions as their keywords of the same name."""

    labels: str | None = None
    prior: str = "training"
    tta: bool | str = False
    detector: str = "blazeface"

    def keywords(self, tta: bool = True) -> dict:
        found = {"labels": self.labels, "prior": self.prior, "detector": self.detector}
        return {**found, "tta": self.tta} if tta else found


@dataclass
class PhotoOutput:
    """The Photo tab's answer: annotated photos, one table row per face (or per refused photo), saliency overlays."""

    annotated: list[tuple[np.ndarray, str]]
    table: pd.DataFrame
    overlays: list[tuple[np.ndarray, str]]
    classes: tuple[str, ...]
    seconds: float

    @property
    def summary(self) -> str:
        faces = self.table[self.table["emotion"].notna()]
        refused = self.table[self.table["error"].notna()]
        line = f"{len(self.annotated)} photo(s), {len(faces)} face(s) in {self.seconds * 1000:.0f} ms"
        return line + "".join(f"\n{row.photo}: {row.error}" for row in refused.itertuples())


def _shown(image: np.ndarray) -> np.ndarray:
    import cv2

    scale = SHOWN_SIDE / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image


def _face_rows(name: str, faces, classes) -> list[dict]:
    rows = []
    for i, p in enumerate(faces):
        x, y, w, h = p.box if p.box is not None else (None,) * 4
        row = {"photo": name, "face": i + 1, "emotion": p.emotion, "probability": round(p.probability, 4)}
        pose = p.pose._asdict() if p.pose is not None else {}
        rows.append({**row, "x": x, "y": y, "w": w, "h": h, **{c: round(p.probabilities[c], 4) for c in classes},
                     **pose})  # fmt: skip
    return rows


def analyze_photos(
    paths: list[str | Path],
    settings: Settings,
    *,
    limits: Limits,
    explain: bool = False,
    landmarks: bool = False,
    model=None,
) -> PhotoOutput:
    """Every face of every photo: boxes drawn, a row each; a photo over the limits or unreadable gets an error row
    and the others are still analysed. `explain` adds each face's saliency overlay (fer.explain's maps);
    `landmarks` draws each face's mesh and gives its head pose (yaw, pitch, roll columns)."""
    start = time.perf_counter()
    options = PredictOptions.make(model, landmarks=landmarks, **settings.keywords())  # every option checked once
    classes = options.classes
    accepted, rows = [], []
    for path in paths:
        try:
            limits.check_photo(path)
            accepted.append(Path(path))
        except LimitError as exc:
            rows.append({"photo": Path(path).name, "error": str(exc)})
    annotated, overlays = [], []
    # predict_emotion's own pipeline, kept whole: each photo is decoded and searched once, and its drawing and
    # saliency maps reuse that decode and the crops the network saw.
    for path, result in zip(accepted, photo_results([str(p) for p in accepted], options)):
        faces = result.faces
        if faces.error:
            rows.append({"photo": path.name, "error": faces.error})
            continue
        rows += _face_rows(path.name, faces, classes) or [{"photo": path.name, "error": "no face found"}]
        annotated.append((_shown(result.annotated(landmarks=landmarks)), f"{path.name}: {len(faces)} face(s)"))
        if explain and faces:
            for i, e in enumerate(explanations(result, options)[: limits.max_faces_explained]):
                overlays.append((e.overlay(), f"{path.name} face {i + 1}: {e.target}"))
    pose = list(POSE) if landmarks else []
    table = pd.DataFrame(rows, columns=["photo", "face", "emotion", "probability", "x", "y", "w", "h", *classes, *pose])
    table = table.assign(error=[r.get("error") for r in rows]) if rows else table.assign(error=[])
    return PhotoOutput(annotated, table, overlays, classes, time.perf_counter() - start)


def bars_html(table: pd.DataFrame, classes) -> str:
    """The per-face table as HTML: one row per face, a bar per class (the top one highlighted)."""
    faces = table[table["emotion"].notna()]
    if faces.empty:
        return "<p>No face found.</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in classes)
    body = []
    for row in faces.itertuples(index=False):
        record = row._asdict()
        cells = []
        for c in classes:
            share, colour = float(record[c]), "#e8833a" if c == record["emotion"] else "#8fb3d9"
            bar = f'<div style="background:{colour};height:10px;width:{share * 100:.0f}%"></div>'
            cells.append(f'<td title="{share:.1%}">{bar}<small>{share:.0%}</small></td>')
        name = html.escape(f"{record['photo']} #{record['face']}")
        if record.get("yaw") is not None:  # with the face mesh: its head pose under the name
            name += "<br><small>yaw {:.0f}° pitch {:.0f}° roll {:.0f}°</small>".format(*(record[c] for c in POSE))
        body.append(f"<tr><td>{name}</td><td><b>{html.escape(record['emotion'])}</b></td>{''.join(cells)}</tr>")
    return (
        '<table class="fer-faces" style="width:100%"><tr><th>face</th><th>emotion</th>'
        f"{head}</tr>{''.join(body)}</table>"
    )


@dataclass
class WebcamSession:
    """One browser's webcam stream: probabilities smoothed over the last `smooth` frames per face (faces matched
    left to right), the first face's recent history for the chart, and the frame rate."""

    smooth: int = 1
    history_seconds: float = 30.0
    recent: list[deque] = field(default_factory=list)
    history: deque = field(default_factory=lambda: deque(maxlen=3000))
    times: deque = field(default_factory=lambda: deque(maxlen=30))
    start: float = field(default_factory=time.perf_counter)
    frames: int = 0

    def step(self, frame: np.ndarray, settings: Settings, model=None) -> np.ndarray:
        """The frame with each face's box and (smoothed) emotion drawn."""
        faces = predict_emotion(frame, model, **settings.keywords())
        now = time.perf_counter()
        self.times.append(now)
        self.frames += 1
        if len(self.recent) != len(faces):  # a face came or went: matching by position would mix people up
            self.recent = [deque(maxlen=max(1, self.smooth)) for _ in faces]
        shown = []
        for p, window in zip(faces, self.recent):
            window.append(p.probabilities)
            mean = {c: float(np.mean([w[c] for w in window])) for c in p.probabilities}
            top = max(mean, key=mean.get)
            shown.append(replace(p, emotion=top, probability=mean[top], probabilities=mean))
        if shown:
            t = round(now - self.start, 2)
            self.history.extend(
                {"time_s": t, "emotion": c, "probability": v} for c, v in shown[0].probabilities.items()
            )
        return annotate(frame, shown)

    def chart(self) -> pd.DataFrame:
        """The first face's emotions over the last `history_seconds` (long form: time_s, emotion, probability)."""
        table = pd.DataFrame(list(self.history), columns=["time_s", "emotion", "probability"])
        return table[table["time_s"] >= table["time_s"].max() - self.history_seconds] if len(table) else table

    @property
    def frames_per_second(self) -> float:
        span = self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0
        return (len(self.times) - 1) / span if span > 0 else 0.0


@dataclass
class ClipOutput:
    """The Clip tab's answer: analyze_video's table, the annotated clip (WebM), the table as CSV, a chart per face."""

    table: pd.DataFrame
    annotated: Path
    csv: Path
    charts: list[pd.DataFrame]
    seconds: float

    @property
    def summary(self) -> str:
        frames = self.table["frame"].nunique()
        faces = int((self.table["face"] >= 0).sum())
        return f"{frames} frames analysed, {faces} face rows, in {self.seconds:.1f} s"


def analyze_clip(
    path: str | Path, workdir: str | Path, settings: Settings, *, limits: Limits, stride: int = 1, model=None
) -> ClipOutput:
    """Every `stride`-th frame of a clip through fer.analyze_video; LimitError for an unreadable or long clip."""
    start = time.perf_counter()
    limits.check_clip(path)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    annotated, csv = workdir / f"{Path(path).stem}-annotated.webm", workdir / f"{Path(path).stem}-emotions.csv"
    table = analyze_video(path, model, stride=stride, out_video=annotated, progress=False, **settings.keywords())
    table.to_csv(csv, index=False)
    classes = model_classes(model, labels=settings.labels)
    charts = []
    for face in range(CHART_FACES):
        rows = table[table["face"] == face]
        if rows.empty:
            break
        long = rows[["time_s", *classes]].melt(id_vars="time_s", var_name="emotion", value_name="probability")
        charts.append(long)
    return ClipOutput(table, annotated, csv, charts, time.perf_counter() - start)
