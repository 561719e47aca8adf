"""A corpus's predictions as a Parquet dataset that resumes: part files committed atomically, each input keyed by
its path, size and modification time, so a rerun after any stop does only what is new or changed.

The folder (`predictions.parquet/` under `predict --out`) holds `_settings.json` (the model and options every row was
made with) and `part-NNNNNN.parquet` files; names starting with `_` or `.` (the settings, a part being written) are
the ones Parquet readers skip. A part holds whole inputs only and appears by one rename, so after a
kill at any moment every input is in at most one part; a rerun reads the keys of the committed parts and skips
those inputs. A file whose size or modification time changed is predicted again and its old rows are dropped
(each affected part rewritten by one rename). Read it with pandas (`pd.read_parquet(folder)`), DuckDB or Polars.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from fer.atomic import write_atomic
from fer.errors import optional_import

KEY = ("path", "size", "mtime_ns")
POSE = ("yaw", "pitch", "roll")
MESH_POINTS = 468  # fer.inference.mesh.N_POINTS (not imported: this module loads no OpenCV, the CLI's --help reads it)
# One row per face (per frame for a video), per photo without a face, per unreadable input.
COLUMNS = (
    "path",
    "size",
    "mtime_ns",
    "kind",
    "frame",
    "time_s",
    "face",
    "status",
    "error",
    "x",
    "y",
    "w",
    "h",
    "face_score",
    "face_source",
    "emotion",
    "probability",
)


def expand_inputs(items: list[str]) -> tuple[list[Path], list[Path], list[Path]]:
    """(images, videos, missing) from files and folders (searched recursively), in sorted order."""
    from fer.data.images import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    images, videos, missing = [], [], []
    for item in map(Path, items):
        if not item.exists():
            missing.append(item)
            continue
        files = sorted(f for f in item.rglob("*") if f.is_file()) if item.is_dir() else [item]
        for f in files:
            suffix = f.suffix.lower()
            if suffix in VIDEO_SUFFIXES:
                videos.append(f)
            elif suffix in IMAGE_SUFFIXES or not item.is_dir():  # a named file is tried whatever its suffix
                images.append(f)
    return images, videos, missing


def input_key(path: str | Path) -> tuple[str, int, int]:
    """(path, size in bytes, modification time in ns): what says an input is the one already predicted."""
    stat = os.stat(path)
    return str(path), int(stat.st_size), int(stat.st_mtime_ns)


class PredictionDataset:
    """The Parquet folder of one corpus's predictions: `start` says what is done, `commit` adds whole inputs."""

    def __init__(self, folder: str | Path, settings: dict, classes: tuple[str, ...], landmarks: bool = False):
        install = "pip install 'fer2013-emotion-cnn[batch]' (pyarrow)"
        self.pa = optional_import("pyarrow", "The Parquet dataset", install)
        optional_import("pyarrow.parquet", "The Parquet dataset", install)
        self.folder, self.settings, self.classes = Path(folder), {**settings, "classes": list(classes)}, classes
        types = {
            "path": "string",
            "size": "int64",
            "mtime_ns": "int64",
            "frame": "int64",
            "time_s": "float64",
            "face": "int64",
            "x": "int64",
            "y": "int64",
            "w": "int64",
            "h": "int64",
            "face_score": "float64",
            "probability": "float64",
        }
        fields = [(c, types.get(c, "string")) for c in COLUMNS] + [(f"p_{c}", "float64") for c in classes]
        schema = [(name, getattr(self.pa, kind)()) for name, kind in fields]
        if landmarks:  # the head pose, and the mesh as 468 (x, y, z) triples in a row: .reshape(468, 3)
            schema += [(c, self.pa.float64()) for c in POSE] + [("landmarks", self.pa.list_(self.pa.float32()))]
        self.schema = self.pa.schema(schema)

    def _parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet"))

    def start(self, keys: dict[str, tuple[str, int, int]], redo: bool = False) -> set[tuple[str, int, int]]:
        """Open the folder for this run and return the keys already done. `keys`: this run's inputs by path (their
        rows from an older version of the file are dropped); `redo`: start over. ValueError where the folder holds
        predictions made with other settings."""
        if redo and self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for left in self.folder.glob(".*.tmp"):  # a part or settings file a killed run did not finish
            left.unlink()
        saved = self.folder / "_settings.json"
        if saved.is_file() and json.loads(saved.read_text()) != self.settings:
            raise ValueError(
                f"{self.folder} holds predictions made with other settings ({saved}); use another --out folder, or "
                "--redo to predict everything again with these"
            )
        write_atomic(saved, lambda tmp: tmp.write_text(json.dumps(self.settings, indent=2)))
        done = set()
        for part in self._parts():
            found = self.pa.parquet.read_table(part, columns=list(KEY)).to_pylist()
            stale = {i for i, row in enumerate(found) if row["path"] in keys and _key(row) != keys[row["path"]]}
            if stale:  # the file changed since: its old rows go (the part rewritten whole, or removed)
                self._rewrite_without(part, stale)
            done |= {_key(row) for i, row in enumerate(found) if i not in stale}
        return done

    def _rewrite_without(self, part: Path, rows: set[int]) -> None:
        table = self.pa.parquet.read_table(part)
        kept = table.take([i for i in range(table.num_rows) if i not in rows])
        if kept.num_rows == 0:
            part.unlink()
            return
        write_atomic(part, lambda tmp: self.pa.parquet.write_table(kept, tmp))

    def commit(self, rows: list[dict]) -> Path | None:
        """Write `rows` (whole inputs) as the next part, by one rename: all of them are committed, or none."""
        if not rows:
            return None
        parts = self._parts()
        number = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        path = self.folder / f"part-{number:06d}.parquet"
        table = self.pa.Table.from_pylist(rows, schema=self.schema)
        write_atomic(path, lambda tmp: self.pa.parquet.write_table(table, tmp))
        return path

    def rows(self) -> int:
        return sum(self.pa.parquet.read_metadata(p).num_rows for p in self._parts())

    def read_rows(self) -> list[dict]:
        """Every committed row as a dict (Python ints, floats and None), parts in order."""
        return [row for p in self._parts() for row in self.pa.parquet.read_table(p, schema=self.schema).to_pylist()]


def _key(row: dict) -> tuple[str, int, int]:
    return row["path"], int(row["size"]), int(row["mtime_ns"])


def photo_rows(key: tuple[str, int, int], faces, error: str | None = None, kind: str = "photo") -> list[dict]:
    """Dataset rows of one photo: one per face (fer.inference.predict.Prediction), one without a face, or its error
    (`kind="video"`: a video that could not be read)."""
    base = {"path": key[0], "size": key[1], "mtime_ns": key[2], "kind": kind}
    if error is not None:
        return [{**base, "status": "error", "error": error}]
    if not faces:
        return [{**base, "face": -1, "status": "no face"}]
    return [{**base, "face": k, "status": "ok", **_answer(p)} for k, p in enumerate(faces)]


def _answer(p) -> dict:
    box = dict(zip("xywh", p.box)) if p.box is not None else {}
    probs = {f"p_{c}": v for c, v in p.probabilities.items()}
    mesh = {} if p.landmarks is None else {**p.pose._asdict(), "landmarks": p.landmarks.ravel().tolist()}
    return {
        **box,
        "face_score": p.face_score,
        "face_source": p.source,
        "emotion": p.emotion,
        "probability": p.probability,
        **probs,
        **mesh,
    }


def video_rows(key: tuple[str, int, int], frames, classes: tuple[str, ...]) -> list[dict]:
    """Dataset rows of one video from fer.inference.video.analyze_video's table (face -1: a frame without one)."""
    base = {"path": key[0], "size": key[1], "mtime_ns": key[2], "kind": "video"}
    rows = []
    for record in frames.to_dict("records"):
        found = record["face"] >= 0
        row = {**base, "frame": int(record["frame"]), "time_s": float(record["time_s"]), "face": int(record["face"])}
        row["status"] = "ok" if found else "no face"
        if found:
            row.update({c: int(record[c]) for c in "xywh"})
            row.update({"emotion": record["emotion"], "probability": float(record["probability"])})
            row.update({f"p_{c}": float(record[c]) for c in classes})
            if "yaw" in record:  # analyze_video(landmarks=True): x_0.., y_0.., z_0.. -> (x, y, z) triples
                row.update({c: float(record[c]) for c in POSE})
                row["landmarks"] = [float(record[f"{a}_{i}"]) for i in range(MESH_POINTS) for a in "xyz"]
        rows.append(row)
    if not rows:
        rows.append({**base, "face": -1, "status": "no face"})
    return rows
