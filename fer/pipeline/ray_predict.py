"""Batch prediction on Ray Data: an actor pool that finds and classifies faces, long videos split into frame ranges.

The same job as `python -m fer predict --out` (fer.inference.corpus), spread over the CPUs of one machine or a Ray
cluster. Each actor holds one model (its ONNX sessions, loaded once, with as many threads as the actor has CPUs)
and reads, decodes, detects and classifies its batch of photos the way `predict` does (the next photos read and
decoded while these are classified). Reading in separate Ray tasks was measured and dropped: each read task costs a
worker process and its scheduling, which on 2 cores made two actors no faster than one (docs/experiments.md). A
long video is split into frame ranges, each a separate task (`fer.analyze_video(start_frame=, max_frames=)`), and
joined back in frame order.

With an output folder the driver commits whole inputs to the resumable Parquet dataset as they come back (a video
once all its ranges are in), so the resume rule is point 1's: a rerun skips every input already committed, and a
worker that dies mid-run (Ray restarts the actor and retries its batch) costs time, never a lost or doubled row.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from fer.errors import optional_import
from fer.inference.corpus import (
    COLUMNS,
    POSE,
    PredictionDataset,
    expand_inputs,
    input_key,
    photo_rows,
    video_rows,
)

SCALE_INSTALL = "pip install 'fer2013-emotion-cnn[scale]' (Ray Data)"
# A video task analyses this many frames (about 20 s at 30 frames/s): long enough that the seek at its start is
# cheap, short enough that a 2-hour film keeps a few hundred workers busy.
FRAMES_PER_TASK = 600
PHOTOS_PER_BATCH = 32


def _ray():
    return optional_import("ray", "Prediction on Ray (engine='ray')", SCALE_INSTALL)


def video_tasks(path: Path, stride: int, frames_per_task: int = FRAMES_PER_TASK) -> list[dict]:
    """The frame ranges of one video, each a multiple of `stride` frames long (so every range analyses the frames
    one pass would); one open-ended range where the frame count is unknown."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    size = max(stride, frames_per_task // stride * stride)
    starts = list(range(0, total, size)) or [0]
    key = input_key(path)
    return [
        {"path": key[0], "size": key[1], "mtime_ns": key[2], "kind": "video", "start": s,
         "frames": size if total else 0, "part": i, "parts": len(starts)}  # frames 0: to the end
        for i, s in enumerate(starts)
    ]  # fmt: skip


def plan(photos: list[Path], videos: list[Path], stride: int, frames_per_task: int = FRAMES_PER_TASK) -> list[dict]:
    """One task per photo and per video range, photos first."""
    tasks = []
    for path in photos:
        key = input_key(path)
        tasks.append({"path": key[0], "size": key[1], "mtime_ns": key[2], "kind": "photo", "start": 0, "frames": 0,
                      "part": 0, "parts": 1})  # fmt: skip
    for path in videos:
        tasks += video_tasks(path, stride, frames_per_task)
    return tasks


class Predictor:
    """One actor of the pool: the model and detector loaded once; a batch of tasks in, their rows out."""

    def __init__(self, model, options: dict, stride: int, threads: int):
        import cv2

        os.environ["FER_THREADS"] = str(threads)  # ONNX Runtime and BlazeFace's tiles: this actor's CPUs only
        cv2.setNumThreads(threads)  # and OpenCV's resizing (this process is the actor's own)
        from fer.inference.options import PredictOptions

        self.options = PredictOptions.make(model, **options)
        self.keywords, self.stride = options, stride

    def __call__(self, batch: dict) -> dict:
        rows = []
        tasks = [task for unit in batch["unit"] for task in json.loads(unit)]
        photos = [t for t in tasks if t["kind"] == "photo"]
        rows += self._photos(photos)
        for task in tasks:
            if task["kind"] == "video":
                rows += self._video(task)
        return {column: [row.get(column) for row in rows] for column in self.columns()}

    def columns(self) -> list[str]:
        mesh = [*POSE, "landmarks"] if self.options.landmarks else []
        return [*COLUMNS, *(f"p_{c}" for c in self.options.classes), *mesh, "part", "parts"]

    def _photos(self, tasks: list[dict]) -> list[dict]:
        from fer.inference.predict import photo_results

        rows = []
        for task, result in zip(tasks, photo_results([t["path"] for t in tasks], self.options)):
            rows += self._tagged(task, photo_rows(_key(task), result.faces, result.faces.error))
        return rows

    def _video(self, task: dict) -> list[dict]:
        from fer.errors import ImageError
        from fer.inference.video import analyze_video

        k = self.keywords
        try:
            frames = analyze_video(
                task["path"], self.options.model, stride=self.stride, start_frame=int(task["start"]),
                max_frames=int(task["frames"]) or None, progress=False, detector=k["detector"], tta=k["tta"],
                labels=k["labels"], prior=k["prior"], landmarks=k.get("landmarks", False),
            )  # fmt: skip
            found = video_rows(_key(task), frames, self.options.classes)
        except (ImageError, OSError, ValueError) as exc:
            found = photo_rows(_key(task), [], str(exc), kind="video") if task["part"] == 0 else []
        return self._tagged(task, found or [{"path": task["path"], "size": task["size"], "mtime_ns": task["mtime_ns"],
                                             "kind": "video", "status": "empty range"}])  # fmt: skip

    @staticmethod
    def _tagged(task: dict, rows: list[dict]) -> list[dict]:
        return [{**row, "part": task["part"], "parts": task["parts"]} for row in rows]


def _key(task: dict) -> tuple[str, int, int]:
    return task["path"], int(task["size"]), int(task["mtime_ns"])


def build_dataset(tasks: list[dict], options: dict, *, model=None, stride: int = 1, workers: int | None = None):
    """The lazy Ray Dataset of rows: the tasks through the actor pool (`workers` actors of one CPU each; default:
    the cluster's CPUs). Rows of a video range carry `part`/`parts`; rows come back in no particular order."""
    ray = _ray()
    workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    found = units(tasks)
    # One row per unit of work, one unit per batch: Ray Data bundles small blocks into a batch of batch_size rows,
    # which put a few videos' ranges in one actor's batch (2 workers: 1.05x one on two videos).
    dataset = ray.data.from_items([{"unit": json.dumps(u)} for u in found], override_num_blocks=max(1, len(found)))
    # Ray Data restarts a dead actor and runs its batch again (its actors' default); the driver commits whole
    # inputs only, so a retried batch never doubles rows.
    return dataset.map_batches(
        Predictor,
        fn_constructor_kwargs={"model": model, "options": options, "stride": stride, "threads": 1},
        batch_size=1,
        # Two units in flight per actor: by default an actor queues up to four, so the first one ready took both
        # videos of a two-video corpus and, at the end of a photo run, one actor held units while the other idled;
        # one alone left the actor idle between units (photos 1.28x one worker, docs/experiments.md).
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2),
        num_cpus=1,
    )


def units(tasks: list[dict]) -> list[list[dict]]:
    """The tasks as units of work for one actor call: each video range alone, photos PHOTOS_PER_BATCH at a time."""
    photos = [t for t in tasks if t["kind"] == "photo"]
    ranges = [[t] for t in tasks if t["kind"] != "photo"]
    return ranges + [photos[i : i + PHOTOS_PER_BATCH] for i in range(0, len(photos), PHOTOS_PER_BATCH)]


class _Joiner:
    """Collects the rows of each input until it is whole (a video: all its ranges), then hands it over sorted."""

    def __init__(self):
        self.videos: dict[tuple, dict[int, list[dict]]] = {}

    def add(self, rows: list[dict]) -> Iterator[list[dict]]:
        by_input: dict[tuple, dict[int, list[dict]]] = {}
        for row in rows:
            by_input.setdefault(_key(row), {}).setdefault(int(row["part"]), []).append(row)
        for key, parts in by_input.items():
            parts_total = int(next(iter(parts.values()))[0]["parts"])
            if parts_total == 1:
                yield _clean(next(iter(parts.values())))
                continue
            seen = self.videos.setdefault(key, {})
            for part, part_rows in parts.items():
                seen.setdefault(part, []).extend(part_rows)
            if len(seen) == parts_total:
                whole = [row for part in sorted(seen) for row in seen[part] if row.get("status") != "empty range"]
                del self.videos[key]
                yield _clean(sorted(whole, key=lambda r: (r["frame"] if r["frame"] is not None else -1, r["face"])))


def _clean(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("part", "parts")} for row in rows]


def connect(address: str | None = None, quiet: bool = False):
    """ray.init where Ray is not running yet: a local Ray on this machine (address None), or a cluster ("auto":
    the one this machine belongs to; "ray://head:10001": a remote one). Returns the ray module. `quiet` (the
    command line): Ray's own start-up and progress lines stay off the terminal (set before Ray starts)."""
    if quiet:
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")  # Ray Data's plan and "progress bars disabled" lines
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # its C++ core's notes on restartable actors
    ray = _ray()
    if not ray.is_initialized():
        # quiet: the workers' log lines stay in Ray's log files (/tmp/ray/session_latest/logs), not on the terminal.
        from fer.quiet import stderr_silenced

        # Its core says at start that it read RAY_BACKEND_LOG_LEVEL, on fd 2: quiet means that line too.
        with stderr_silenced() if quiet else contextlib.nullcontext():
            ray.init(address=address, include_dashboard=False, logging_level="ERROR" if quiet else "WARNING",
                     log_to_driver=not quiet)  # fmt: skip
        ray.data.DataContext.get_current().enable_progress_bars = False  # the caller shows inputs done, not blocks
    return ray


def whole_inputs(
    photos: list[Path],
    videos: list[Path],
    options: dict,
    *,
    model=None,
    stride: int = 1,
    workers: int | None = None,
    frames_per_task: int = FRAMES_PER_TASK,
) -> Iterator[list[dict]]:
    """Run the job on the connected Ray and yield each input's dataset rows (fer.inference.corpus) once it is
    whole: a photo as its batch comes back, a video once all its ranges are in, in frame order."""
    tasks = plan(photos, videos, stride, frames_per_task)
    if not tasks:
        return
    joiner = _Joiner()
    rows = build_dataset(tasks, options, model=model, stride=stride, workers=workers)
    for batch in rows.iter_batches(batch_format="pyarrow", batch_size=None):
        yield from joiner.add(batch.to_pylist())


def predict_dataset(
    sources,
    out: str | Path | None = None,
    *,
    model=None,
    labels: str | None = None,
    prior="training",
    tta: bool | str = False,
    detector: str = "blazeface",
    stride: int = 1,
    address: str | None = None,
    workers: int | None = None,
    redo: bool = False,
    landmarks: bool = False,
):
    """Predict a corpus on Ray Data. `sources`: files and folders (searched recursively) of photos and videos.

    Without `out`: the lazy Ray Dataset of rows (the columns of `predict --out`'s Parquet dataset, video ranges
    unordered: sort by path, frame and face). With `out`: the rows written to `<out>/predictions.parquet/` as
    whole inputs (the folder is returned); a rerun skips what is already there, like `predict --out` (and shares
    its folder: the same model and options give the same rows). `address`: None runs a local Ray on this machine,
    "auto" or "ray://host:10001" a cluster; `workers`: actors in the pool (default: the cluster's CPUs). `model`:
    a model file (None: the default); the other options are predict_emotion's (`landmarks`: pose columns and a
    `landmarks` list column of 468 (x, y, z) triples)."""
    from fer.inference.faces import DETECT_MAX_SIDE
    from fer.inference.options import PredictOptions

    photos, videos, missing = expand_inputs([sources] if isinstance(sources, (str, Path)) else list(sources))
    if missing:
        raise FileNotFoundError(f"{', '.join(map(str, missing))}: no such file or folder")
    options = {"labels": labels, "prior": prior, "tta": tta, "detector": detector, "landmarks": landmarks}
    classes = PredictOptions.make(model, **options).classes  # every option checked before Ray starts
    connect(address)
    if out is None:
        return build_dataset(plan(photos, videos, stride), options, model=model, stride=stride, workers=workers)
    settings = {"model": str(model or "default"), "engine": "auto", **options, "crop": False, "detector": detector,
                "stride": stride, "detect_every": 1, "max_side": DETECT_MAX_SIDE}  # fmt: skip
    dataset = PredictionDataset(Path(out) / "predictions.parquet", settings, classes, landmarks)
    keys = {str(p): input_key(p) for p in [*photos, *videos]}
    done = dataset.start(keys, redo=redo)
    todo = [[p for p in group if keys[str(p)] not in done] for group in (photos, videos)]
    pending = []
    for rows in whole_inputs(*todo, options, model=model, stride=stride, workers=workers):
        pending.append(rows)
        if len(pending) >= 256:
            dataset.commit([row for found in pending for row in found])
            pending = []
    dataset.commit([row for found in pending for row in found])
    return dataset.folder
