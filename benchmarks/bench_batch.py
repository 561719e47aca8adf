"""Batch prediction throughput: the one-process job, the resumable job and Ray Data with 1 and 2 workers, one run.

    python benchmarks/bench_batch.py [--photos 1200] [--seconds 60] [--workers 1 2]

A generated mixed corpus (nothing downloaded): portraits, group photos (four faces), photos without a face,
corrupt files, and two videos. Photos and videos are timed apart: photos/s over the photo folder (bad files
included: they are inputs too), frames/s over the videos (every frame analysed). Modes:
- plain: `python -m fer predict DIR` (in this process, nothing written);
- resumable: `predict DIR --out TMP` (the Parquet dataset, committed in parts);
- ray N: `fer.predict_dataset(DIR, TMP, workers=N)` on a local Ray started before the clock (its start-up is
  printed apart); each actor has one CPU and one ONNX Runtime thread, and its start (loading the model) is timed.
Ratios are against plain, and ray 2 against ray 1. A Ray job also has a fixed cost whatever its size (new actor
processes, Ray Data's executor: ~2-3 s, most of it Ray's own: a job of one photo measures it, per worker count, in
the same run), so the table also gives each Ray run's rate after that start-up, and its ratio: what a long job
converges to.
- cores N: the machine's own ceiling for N single-threaded workers, no Ray: N processes (one ONNX Runtime and
  OpenCV thread each, the model loaded before the clock) predict the photos split between them, started together.
  Two vCPUs of a shared host do not give twice one (the host's other load, shared caches); Ray's 2-over-1 ratio
  is read against this one, measured in the same run.
Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fer import quiet  # noqa: E402

quiet.install()


def make_corpus(root: Path, photos: int, seconds: float) -> tuple[Path, Path, int]:
    """(photo folder, video folder, frames in the videos)."""
    import cv2
    from PIL import Image
    from skimage import data

    face = data.astronaut()[:300, 100:400]
    scenes = [data.coffee(), data.chelsea(), data.rocket(), (np.random.default_rng(0).random((480, 640, 3)) * 255)]
    photo_dir, video_dir = root / "photos", root / "videos"
    photo_dir.mkdir(parents=True)
    video_dir.mkdir()
    for i in range(photos):
        kind = i % 4
        if kind == 0:  # a portrait
            image = np.clip(face.astype(int) + i % 40 - 20, 0, 255).astype(np.uint8)
        elif kind == 1:  # a group: four faces on a 1024x768 canvas
            image = np.full((768, 1024, 3), 200, np.uint8)
            for k, (y, x) in enumerate([(40, 60), (40, 560), (420, 60), (420, 560)]):
                small = cv2.resize(face, (300 - 20 * k, 300 - 20 * k))
                image[y : y + small.shape[0], x : x + small.shape[1]] = small
        else:  # no face
            image = np.asarray(scenes[i % len(scenes)], np.uint8)
        Image.fromarray(image).save(photo_dir / f"photo{i:04d}.jpg", quality=90)
    for i in range(max(2, photos // 40)):  # a few bad files
        (photo_dir / f"corrupt{i}.jpg").write_bytes(b"\xff\xd8\xff" + bytes(200))
    fps, frames = 15, 0
    for v in range(2):
        writer = cv2.VideoWriter(str(video_dir / f"clip{v}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
        for f in range(int(seconds * fps)):
            canvas = np.full((480, 640, 3), 120, np.uint8)
            x = 100 + (f * 3) % 200
            canvas[90:390, x : x + 300] = face
            writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
            frames += 1
        writer.release()
    return photo_dir, video_dir, frames


def timed(run) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run()
    return time.perf_counter() - start


def _core_worker(paths: list[str], ready, go, results) -> None:
    """One single-threaded worker of the `cores` rows: the model loaded, then the photos timed from `go`."""
    import os

    os.environ["FER_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)
    from fer.inference.options import PredictOptions
    from fer.inference.predict import photo_results
    from fer.pipeline.ray_predict import PHOTOS_PER_BATCH

    options = PredictOptions.make(None)
    list(photo_results(paths[:1], options))  # the sessions loaded and warm
    ready.release()
    go.wait()
    start = time.monotonic()
    for i in range(0, len(paths), PHOTOS_PER_BATCH):  # as a Ray actor gets them: no read-ahead thread
        list(photo_results(paths[i : i + PHOTOS_PER_BATCH], options))
    results.put((start, time.monotonic()))


def cores(photos: list[str], workers: int) -> float:
    """Seconds for `workers` single-threaded processes to predict `photos` between them (from the first start to
    the last end; model loading left out)."""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, as a Ray actor is
    ready, go, results = spawn.Semaphore(0), spawn.Event(), spawn.Queue()
    # Runs of four photos dealt in turn: each share holds the corpus's mix (photo k is of kind k % 4, so every other
    # photo would give one worker the groups and the other none).
    shares = [[p for i, p in enumerate(photos) if i // 4 % workers == k] for k in range(workers)]
    procs = [spawn.Process(target=_core_worker, args=(share, ready, go, results)) for share in shares]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.acquire()
    go.set()
    spans = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    return max(end for _, end in spans) - min(start for start, _ in spans)


class Arrivals:
    """While a Ray run is timed, when each input came back whole (ray_predict.whole_inputs wrapped)."""

    def __enter__(self):
        from fer.pipeline import ray_predict

        self.times, self.module, self.original = [], ray_predict, ray_predict.whole_inputs

        def stamped(*args, **kwargs):
            for rows in self.original(*args, **kwargs):
                self.times.append(time.perf_counter())
                yield rows

        ray_predict.whole_inputs = stamped
        return self

    def __exit__(self, *exc):
        self.module.whole_inputs = self.original

    def mid_run(self) -> float:
        """Inputs/s in the middle half of the run's time (from the first input back to the last): the slope of
        inputs done against time over the batches that came back then (no start-up, no last straggler; a slope,
        not batches over a span, so two workers' interleaved batches do not bias it)."""
        t = np.array(self.times) - self.times[0] if self.times else np.zeros(0)
        ends = np.r_[np.diff(t) > 0.005, True] if len(t) else t.astype(bool)  # a batch's inputs come back at once
        done, when = np.flatnonzero(ends) + 1, t[ends]
        middle = (when >= 0.25 * t[-1]) & (when <= 0.75 * t[-1]) if len(t) else ends
        return float(np.polyfit(when[middle], done[middle], 1)[0]) if middle.sum() >= 3 else float("nan")


def add_ratios(table, unit: str) -> None:
    """Columns "x plain", "x cores 1" for the cores rows and, for the Ray runs, "x ray 1" (whole runs), "x ray 1
    after start-up" and "x ray 1 mid-run"."""
    part = table[unit].notna()
    plain, ray1 = part & (table["mode"] == "plain"), part & (table["mode"] == "ray 1")
    table.loc[part, "x plain"] = table.loc[part, unit] / float(table.loc[plain, unit].iloc[0])
    ray = part & table["mode"].str.startswith("ray")
    core, core1 = part & table["mode"].str.startswith("cores"), part & (table["mode"] == "cores 1")
    if core1.any():
        table.loc[core, "x cores 1"] = table.loc[core, unit] / float(table.loc[core1, unit].iloc[0])
    if ray1.any():
        for rate, ratio in ((unit, "x ray 1"), (f"{unit} after start-up", "x ray 1 after start-up"),
                            (f"{unit} mid-run", "x ray 1 mid-run")):  # fmt: skip
            if rate in table:
                table.loc[ray, ratio] = table.loc[ray, rate] / float(table.loc[ray1, rate].iloc[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # A corpus of ~15 s a job: Ray's fixed ~2-3 s a job is then a small share, as in a real corpus job.
    parser.add_argument("--photos", type=int, default=1200)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each of the two videos")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import pandas as pd

    from fer.cli import main as fer_main
    from fer.pipeline import ray_predict

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        photo_dir, video_dir, frames = make_corpus(work / "corpus", args.photos, args.seconds)
        photos = len(list(photo_dir.iterdir()))
        fer_main(["predict", str(photo_dir / "photo0000.jpg")])  # warm: model and detector loaded once
        rows = []

        def record(mode, folder, count, unit, seconds, start_up=None, mid_run=None):
            row = {"mode": mode, "corpus": folder, "inputs": count, "seconds": seconds, unit: count / seconds}
            if start_up is not None:
                row.update({"start-up s": start_up, f"{unit} after start-up": count / (seconds - start_up)})
            if mid_run is not None:
                row[f"{unit} mid-run"] = mid_run
            rows.append(row)

        for folder, count, unit in ((photo_dir, photos, "photos/s"), (video_dir, frames, "frames/s")):
            record("plain", folder.name, count, unit, timed(lambda f=folder: fer_main(["predict", str(f)])))
            out = work / f"resumable-{folder.name}"
            seconds = timed(lambda f=folder, o=out: fer_main(["predict", str(f), "--out", str(o)]))
            record("resumable", folder.name, count, unit, seconds)
        files = sorted(str(p) for p in photo_dir.iterdir())
        for n in args.workers:
            record(f"cores {n}", photo_dir.name, photos, "photos/s", cores(files, n))
        start = time.perf_counter()
        ray_predict.connect(quiet=True)
        ray_start = time.perf_counter() - start
        one = photo_dir / "photo0000.jpg"
        for n in args.workers:
            start_up = timed(lambda w=n: ray_predict.predict_dataset(one, work / f"ray{w}-one", workers=w))
            for folder, count, unit in ((photo_dir, photos, "photos/s"), (video_dir, frames, "frames/s")):
                out = work / f"ray{n}-{folder.name}"
                with Arrivals() as arrivals:
                    seconds = timed(lambda f=folder, o=out, w=n: ray_predict.predict_dataset(f, o, workers=w))
                mid_run = arrivals.mid_run() if unit == "photos/s" else None  # two videos: two arrivals
                record(f"ray {n}", folder.name, count, unit, seconds, start_up, mid_run)
        print(f"{photos} photos ({args.photos // 4} portraits, {args.photos // 4} groups of four, the rest without a "
              f"face, {photos - args.photos} corrupt), 2 videos of {frames // 2} frames (640x480)")  # fmt: skip
        print(f"Ray start-up (ray.init, not in the tables): {ray_start:.1f} s")
        report(pd.DataFrame(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(table) -> None:
    """One table per corpus, with its ratios and only the columns that hold numbers for it."""
    for unit in ("photos/s", "frames/s"):
        part = table[table[unit].notna()].copy()
        add_ratios(part, unit)
        print(f"\n{part['corpus'].iloc[0]}:")
        print(part.drop(columns="corpus").dropna(axis=1, how="all").round(2).to_string(index=False, na_rep=""))


if __name__ == "__main__":
    main()
