"""Batch prediction that resumes (fer.inference.corpus, `python -m fer predict --out`): every input exactly once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from fer.cli import main
from fer.inference.corpus import PredictionDataset, input_key, photo_rows

pytestmark = pytest.mark.slow

# `predict` with parts of 3 inputs, so a kill lands between, inside or after part commits.
SCRIPT = (
    "import sys, fer.cli.predicting as p; p.PART_INPUTS = 3; from fer.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _predict(folder: Path, out: Path) -> subprocess.Popen:
    command = [sys.executable, "-c", SCRIPT, "predict", str(folder), "--out", str(out), "--chunk", "2", "--json"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _parts(out: Path) -> list[Path]:
    return sorted((out / "predictions.parquet").glob("part-*.parquet"))


def _scenes(sample_root: Path, folder: Path, n: int) -> list[str]:
    """`n` photos of the sample's faces on plain backdrops (detection runs on each: a run takes a few seconds)."""
    folder.mkdir()
    faces = sorted((sample_root / "test").rglob("*.png"))
    for i in range(n):
        canvas = Image.new("L", (200, 200), 90 + i % 60)
        canvas.paste(Image.open(faces[i % len(faces)]).resize((120, 120)), (10 + i % 50, 20 + i % 40))
        canvas.save(folder / f"scene_{i:04d}.png")
    return sorted(str(p) for p in folder.iterdir())


def test_a_run_killed_at_any_moment_ends_with_every_input_exactly_once(sample_root, tmp_path):
    folder = tmp_path / "corpus"
    inputs = _scenes(sample_root, folder, 240)
    whole = tmp_path / "whole"
    assert _predict(folder, whole).wait(timeout=300) == 0
    out = tmp_path / "killed"
    # Killed three times: at once (before the model loads), as the first part appears, a moment after a later one.
    for wait_for_parts, extra in ((0, 0.0), (1, 0.0), (20, 0.05)):
        run = _predict(folder, out)
        deadline = time.monotonic() + 120
        while len(_parts(out)) < wait_for_parts and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(extra)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    assert len(_parts(out)) < len(inputs) / 3  # the kills left work to do
    assert _predict(folder, out).wait(timeout=300) == 0
    done = pd.read_parquet(out / "predictions.parquet")
    assert sorted(done["path"]) == inputs  # every input once: none lost, none twice
    reference = pd.read_parquet(whole / "predictions.parquet").set_index("path").sort_index()
    resumed = done.set_index("path").sort_index()
    pd.testing.assert_frame_equal(resumed[reference.columns], reference)  # as the uninterrupted run answered
    # Run again: nothing left to do, nothing written; the table still lists every input.
    before = [p.stat().st_mtime_ns for p in _parts(out)]
    assert _predict(folder, out).wait(timeout=300) == 0
    assert [p.stat().st_mtime_ns for p in _parts(out)] == before
    assert pd.read_csv(out / "predictions.csv")["path"].nunique() == len(inputs)


def test_new_and_changed_files_are_predicted_and_the_rest_skipped(sample_root, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    faces = sorted((sample_root / "test").rglob("*.png"))
    for face in faces[:4]:
        (folder / face.name).write_bytes(face.read_bytes())
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out)]) == 0
    first = pd.read_parquet(out / "predictions.parquet")
    # One new file, one changed (another face under the same name), one unchanged but touched back to its time.
    (folder / faces[4].name).write_bytes(faces[4].read_bytes())
    changed = folder / faces[0].name
    changed.write_bytes(faces[5].read_bytes())
    assert main(["predict", str(folder), "--out", str(out)]) == 0
    second = pd.read_parquet(out / "predictions.parquet")
    assert sorted(second["path"]) == sorted(str(p) for p in folder.iterdir())  # each once
    assert len(_parts(out)) == 2 and len(pd.read_parquet(_parts(out)[1])) == 2  # only the new and the changed
    new_row = second.set_index("path").loc[str(changed)]
    assert new_row["mtime_ns"] == changed.stat().st_mtime_ns
    old_row = first.set_index("path").loc[str(changed)]
    assert (new_row["p_happy"], new_row["size"]) != (old_row["p_happy"], old_row["size"])
    # --redo starts over; other settings are refused rather than mixed into one dataset.
    assert main(["predict", str(folder), "--out", str(out), "--redo"]) == 0
    assert len(_parts(out)) == 1
    capsys.readouterr()
    assert main(["predict", str(folder), "--out", str(out), "--prior", "uniform"]) == 2
    assert "holds predictions made with other settings" in capsys.readouterr().err


def test_a_manifest_names_the_inputs(sample_root, tmp_path):
    faces = sorted(str(p) for p in (sample_root / "test").rglob("*.png"))[:3]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(faces) + "\n\n")
    table = tmp_path / "list.csv"
    pd.DataFrame({"file": faces[1:]}).to_csv(table, index=False)
    assert main(["predict", "--from", str(listing), "--out", str(tmp_path / "a")]) == 0
    assert sorted(pd.read_parquet(tmp_path / "a" / "predictions.parquet")["path"]) == faces
    assert main(["predict", "--from", str(table), "--column", "file", "--out", str(tmp_path / "b")]) == 0
    assert sorted(pd.read_parquet(tmp_path / "b" / "predictions.parquet")["path"]) == faces[1:]
    assert main(["predict", "--from", str(table), "--out", str(tmp_path / "c")]) == 2  # no "path" column


def test_a_bad_file_gives_its_row_and_a_part_is_all_or_nothing(sample_root, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = next((sample_root / "test").rglob("*.png"))
    Image.open(good).save(folder / "good.png")
    (folder / "bad.jpg").write_bytes(b"not an image")
    (folder / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out)]) == 1  # some inputs failed, the rest predicted
    rows = pd.read_parquet(out / "predictions.parquet").set_index("path")
    assert rows.loc[str(folder / "good.png"), "status"] == "ok"
    assert (rows.loc[[str(folder / "bad.jpg"), str(folder / "empty.png")], "status"] == "error").all()
    # A part being written when the process died is left as a dot file, which the next start removes.
    dataset = PredictionDataset(out / "predictions.parquet", {}, ("happy",))
    (out / "predictions.parquet" / ".part-000009.parquet.tmp").write_bytes(b"half a part")
    with pytest.raises(ValueError, match="other settings"):
        dataset.start({})
    assert not list((out / "predictions.parquet").glob(".*.tmp"))
    key = input_key(folder / "good.png")
    assert photo_rows(key, [], "broken") == [
        {"path": key[0], "size": key[1], "mtime_ns": key[2], "kind": "photo", "status": "error", "error": "broken"}
    ]


def test_an_unwritable_out_or_a_full_disk_fails_at_once_in_one_line(sample_root, tmp_path, capsys, monkeypatch):
    import errno

    folder = sample_root / "test" / "happy"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["predict", str(folder), "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write there" in err  # before the model loads: nothing else said
    # The disk fills after the first part: the run stops with one line, and the part committed stands.
    import fer.cli.predicting as predicting
    from fer.inference import corpus

    monkeypatch.setattr(predicting, "PART_INPUTS", 3)
    real = corpus.PredictionDataset.commit
    calls = []

    def filling(self, rows):
        calls.append(len(rows))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, rows)

    monkeypatch.setattr(corpus.PredictionDataset, "commit", filling)
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "run the same command again" in err
    assert len(pd.read_parquet(out / "predictions.parquet")) == 3 and len(calls) == 2
