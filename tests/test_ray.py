"""Prediction on Ray Data (fer.pipeline.ray_predict) on a local Ray: the rows predict --out gives, whole inputs
exactly once when a worker dies mid-run, and the command line's --engine ray."""

import os
import shutil
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
from helpers import require, write_clip

require("pyarrow")
ray = require("ray")
from fer.pipeline import ray_predict  # noqa: E402  (after the skip)

SORT = ["path", "frame", "face"]


@pytest.fixture(scope="module")
def local_ray():
    started = not ray.is_initialized()
    ray_predict.connect(quiet=True)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A mixed corpus: a portrait, a photo without a face, a corrupt file, a huge photo, a zero-byte video, a clip."""
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("corpus")
    Image.fromarray(data.astronaut()).save(root / "astronaut.jpg")
    Image.fromarray(data.coffee()).save(root / "coffee.jpg")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    huge = np.zeros((6000, 5000), np.uint8)
    huge[:2000, :2000] = np.asarray(Image.fromarray(data.astronaut()).convert("L").resize((2000, 2000)))
    Image.fromarray(huge).save(root / "huge.jpg", quality=50)  # 30 MP: decoded reduced, never whole
    (root / "empty.mp4").write_bytes(b"")
    write_clip(root / "clip.mp4", seconds=4.0)  # 40 frames: split into ranges below
    return root


def rows_of(folder) -> pd.DataFrame:
    table = pd.read_parquet(folder).sort_values(SORT, na_position="first").reset_index(drop=True)
    return table.drop(columns=["error"])


def test_the_ray_job_gives_the_rows_predict_out_gives(local_ray, corpus, tmp_path, monkeypatch):
    from fer.cli import main

    assert main(["predict", str(corpus), "--out", str(tmp_path / "plain"), "--stride", "3"]) == 1  # 2 bad inputs
    monkeypatch.setattr(ray_predict, "FRAMES_PER_TASK", 9)  # the clip in 5 ranges of 9 frames (a multiple of 3)
    folder = ray_predict.predict_dataset(corpus, tmp_path / "ray", stride=3, workers=2)
    plain, on_ray = rows_of(tmp_path / "plain" / "predictions.parquet"), rows_of(folder)
    pd.testing.assert_frame_equal(plain, on_ray, check_exact=False, atol=1e-4)
    clip = on_ray[on_ray["path"].str.endswith("clip.mp4")]
    assert clip["frame"].tolist() == list(range(0, 40, 3))  # joined back in frame order, every analysed frame once
    status = dict(zip(on_ray["path"].str.rsplit("/", n=1).str[1], on_ray["status"]))
    assert status["corrupt.jpg"] == status["empty.mp4"] == "error" and status["coffee.jpg"] == "no face"
    assert status["astronaut.jpg"] == "ok" and status["huge.jpg"] in ("ok", "no face")  # huge: rows, not an error


def test_a_rerun_does_only_new_files_and_the_command_runs_on_ray(local_ray, corpus, tmp_path, capsys):
    from fer.cli import main

    out = tmp_path / "job"
    args = ["predict", str(corpus), "--out", str(out), "--engine", "ray", "--workers", "2"]
    assert main(args) == 1
    first = rows_of(out / "predictions.parquet")
    shutil.copy(corpus / "astronaut.jpg", corpus / "new.jpg")
    try:
        assert main(args) == 1
    finally:
        (corpus / "new.jpg").unlink()
    second = rows_of(out / "predictions.parquet")
    assert len(second) == len(first) + 1 and second["path"].str.endswith("new.jpg").sum() == 1
    assert "7 input(s): 5 predicted, 2 failed" in capsys.readouterr().err


def test_ray_needs_an_output_folder(capsys):
    from fer.cli import main

    assert main(["predict", "x.jpg", "--engine", "ray"]) == 2
    assert "--engine ray writes the Parquet dataset: give --out DIR" in capsys.readouterr().err


def actor_pids() -> list[int]:
    """The processes of the pool's actors (Ray names them after the class: ray::MapWorker(MapBatches(Predictor)))."""
    from pathlib import Path

    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"MapBatches(Predictor)" in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return sorted(found)


def test_a_worker_killed_mid_run_loses_and_doubles_nothing(local_ray, tmp_path):
    """SIGKILL one actor of the pool while the job runs: Ray restarts it and runs its batch again; every input is in
    the dataset exactly once."""
    from PIL import Image
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(96):
        Image.fromarray(np.clip(data.astronaut().astype(int) + i - 48, 0, 255).astype(np.uint8)).save(
            photos / f"p{i:03d}.jpg"
        )
    result = {}
    job = threading.Thread(target=lambda: result.update(folder=ray_predict.predict_dataset(photos, tmp_path / "out")))
    job.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and job.is_alive():
        alive = actor_pids()
        if alive:
            time.sleep(1.0)  # its first batches under way
            killed, before = alive[0], set(alive)
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    seen = set(actor_pids())
    while job.is_alive() and time.monotonic() < deadline + 180:
        seen |= set(actor_pids())
        time.sleep(0.2)
    job.join(timeout=60)
    assert killed is not None and not job.is_alive()
    assert seen - before, "Ray started an actor in place of the killed one"
    table = pd.read_parquet(result["folder"])
    assert sorted(table["path"].str.rsplit("/", n=1).str[1]) == [f"p{i:03d}.jpg" for i in range(96)]
    assert (table["status"] == "ok").all()


def test_videos_split_in_ranges_of_whole_strides_and_an_unknown_length_in_one(corpus):
    ranges = ray_predict.video_tasks(corpus / "clip.mp4", stride=3, frames_per_task=10)  # 40 frames
    assert [(t["start"], t["frames"]) for t in ranges] == [(0, 9), (9, 9), (18, 9), (27, 9), (36, 9)]
    (unknown,) = ray_predict.video_tasks(corpus / "empty.mp4", stride=3)  # no frame count: one range to the end
    assert (unknown["start"], unknown["frames"], unknown["parts"]) == (0, 0, 1)


def test_the_face_mesh_columns_come_back_from_ray_as_from_predict(local_ray, corpus, tmp_path):
    from fer.cli import main

    inputs = [str(corpus / "astronaut.jpg"), str(corpus / "clip.mp4")]
    assert main(["predict", *inputs, "--out", str(tmp_path / "plain"), "--stride", "10", "--landmarks"]) == 0
    folder = ray_predict.predict_dataset(inputs, tmp_path / "ray", stride=10, workers=1, landmarks=True)
    plain, on_ray = rows_of(tmp_path / "plain" / "predictions.parquet"), rows_of(folder)
    found = on_ray["status"] == "ok"
    assert found.sum() == 5 and on_ray.loc[found, "yaw"].notna().all()  # her photo and 4 analysed frames
    meshes = [np.stack(t.loc[found, "landmarks"].to_list()) for t in (plain, on_ray)]
    assert meshes[0].shape == (5, 1404) and np.allclose(*meshes, atol=1e-3)
    columns = [c for c in plain.columns if c != "landmarks"]
    pd.testing.assert_frame_equal(plain[columns], on_ray[columns], check_exact=False, atol=1e-4)
