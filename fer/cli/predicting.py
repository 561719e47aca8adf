"""`predict`: the emotions of the faces in photos, folders and videos, as a table, CSV/JSON and annotated images."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

from fer.atomic import write_atomic
from fer.cli.common import UsageError, add_answer, add_engine, add_model, add_tta
from fer.inference.corpus import POSE, expand_inputs
from fer.inference.detectors.registry import DEFAULT_DETECTOR, DETECTORS


def _manifest(path: str | None, column: str) -> list[str]:
    """The inputs a manifest lists: a text file (one path a line) or a CSV/Parquet table's `column`."""
    if path is None:
        return []
    manifest = Path(path)
    if not manifest.is_file():
        raise UsageError(f"--from {path}: no such file")
    if manifest.suffix.lower() not in (".csv", ".parquet"):
        return [line.strip() for line in manifest.read_text().splitlines() if line.strip()]
    import pandas as pd

    table = pd.read_parquet(manifest) if manifest.suffix.lower() == ".parquet" else pd.read_csv(manifest)
    if column not in table:
        raise UsageError(
            f"--from {path}: no column {column!r} (it has {', '.join(map(str, table.columns))}); "
            "name the paths' column with --column"
        )
    return [str(v) for v in table[column].dropna()]


def _output_stems(items: list[str], files: list[Path]) -> dict[Path, Path]:
    """Each input's output name without suffix, relative to --out: its path below the folder argument that
    named it (a named file: its name). Where two inputs would share a name (`predict a/ b/` with a/face.jpg
    and b/face.jpg), every name is prefixed with its argument's own name, so nothing is written over."""
    folders = [Path(i) for i in items if Path(i).is_dir()]
    stems = {}
    for f in files:
        root = next((d for d in folders if f.is_relative_to(d)), None)
        stems[f] = (f.relative_to(root) if root is not None else Path(f.name)).with_suffix("")
    if len(set(stems.values())) < len(stems):
        for f in files:
            root = next((d for d in folders if f.is_relative_to(d)), f.parent)
            stems[f] = Path(root.resolve().name) / stems[f]
    return stems


def _error_row(path: Path, message: str, quiet: bool = False) -> dict:
    if not quiet:
        print(f"error: {message}", file=sys.stderr)
    return {"path": str(path), "face": None, "status": "error", "emotion": None, "error": message}


def _predict_images(paths: list[Path], args, options, out: Path | None, stems: dict[Path, Path]):
    """Dataset rows (fer.inference.corpus.photo_rows), one list per image file in the order given, as each is done;
    an unreadable file gets an error row.

    Photos go through fer.inference.predict.photo_results: detected one by one, classified --chunk at a time in
    batches, the next chunk read and detected while this one is classified."""
    from fer.inference.corpus import input_key, photo_rows
    from fer.inference.predict import photo_results

    for result in photo_results(paths, options, chunk=args.chunk):
        path, faces = paths[result.index], result.faces
        if faces.error:
            print(f"error: {faces.error}", file=sys.stderr)
        yield photo_rows(input_key(path), faces, faces.error)
        if out is not None and faces:
            _write_images(result, options, args, out / stems[path], _annotated_suffix(path))


def _annotated_suffix(path: Path) -> str:
    """A JPEG photo's annotated copy is a JPEG, any other's a PNG: PNG-encoding a photo costs more than finding and
    classifying its faces (docs/experiments.md), and a JPEG photo has no lossless detail to keep."""
    return ".jpg" if path.suffix.lower() in (".jpg", ".jpeg") else ".png"


def _write_images(result, options, args, base: Path, suffix: str = ".png") -> None:
    """`<name>_annotated.jpg|.png` (not for --crop) and, with --explain, `<name>_face<k>_<emotion>_explain.png` per
    face: its crop beside the crop with the saliency map (fer.inference.explain)."""
    import numpy as np
    from PIL import Image

    from fer.inference.explain import explanations

    base.parent.mkdir(parents=True, exist_ok=True)
    if not args.crop:
        result.annotated(base.parent / f"{base.name}_annotated{suffix}", landmarks=args.landmarks)
    if not args.explain:
        return
    for k, e in enumerate(explanations(result, options)):
        plain = np.repeat(np.asarray(Image.fromarray(e.face).resize((192, 192), Image.BICUBIC))[..., None], 3, 2)
        panel = np.concatenate([plain, e.overlay()], axis=1)
        Image.fromarray(panel).save(base.parent / f"{base.name}_face{k}_{e.target}_explain.png")


def _on_ray(photos: list[Path], videos: list[Path], args):
    """Each input's rows from the job on Ray Data (fer.pipeline.ray_predict), as inputs become whole."""
    from fer.inference.faces import DETECT_MAX_SIDE
    from fer.pipeline.ray_predict import connect, whole_inputs

    if args.detect_every != 1 or args.max_side != DETECT_MAX_SIDE:
        raise UsageError("--engine ray analyses videos with the default --detect-every and --max-side")
    connect(args.address, quiet=not args.show_logs)
    options = {"labels": args.labels, "prior": args.prior, "tta": args.tta, "detector": args.detector}
    options["landmarks"] = args.landmarks
    yield from whole_inputs(photos, videos, options, model=args.model, stride=args.stride, workers=args.workers)


def _predict_video(video: Path, args, options, out: Path | None, stems: dict[Path, Path]) -> list[dict]:
    """Dataset rows of one video (one per face per analysed frame); with --out its frames table and plot too."""
    from fer.inference.corpus import input_key, video_rows
    from fer.inference.video import analyze_video

    frames = analyze_video(
        video,
        model=options.model,
        stride=args.stride,
        detect_every=args.detect_every,
        max_side=args.max_side,
        detector=args.detector,
        tta=args.tta,
        labels=args.labels,
        prior=args.prior,
        out_video=out / f"{stems[video]}_annotated.mp4" if out and args.annotate_video else None,
        progress=False,
        landmarks=args.landmarks,
    )
    if out is not None:
        base = out / stems[video]
        base.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(base.parent / f"{base.name}_frames.csv", lambda p: frames.to_csv(p, index=False))
        if (frames["face"] >= 0).any() and importlib.util.find_spec("matplotlib") is not None:  # research extra
            from fer.analysis import plots

            plots.save(plots.emotions_over_time(frames), base.parent, f"{base.name}_emotions")
    return video_rows(input_key(video), frames, options.classes)


def _table_rows(rows: list[dict], classes: tuple[str, ...]) -> list[dict]:
    """The printed table's and predictions.csv/.json's rows from one input's dataset rows: a photo's faces as they
    are; a video's summary (its top emotion, the share of each over its faces, the frames analysed)."""
    first = rows[0]
    if first["status"] == "error":
        return [{"path": first["path"], "face": None, "status": "error", "emotion": None, "error": first["error"]}]
    if first["kind"] == "video":
        import pandas as pd

        found = [r["emotion"] for r in rows if r["status"] == "ok"]
        shares = pd.Series(found, dtype=object).value_counts(normalize=True).round(3).to_dict() if found else {}
        return [
            {
                "path": first["path"],
                "face": None,
                "status": "ok" if found else "no face",
                "emotion": max(shares, key=shares.get) if shares else None,
                "frames": len({r.get("frame") for r in rows}),
                "emotion_shares": shares,
            }
        ]
    if first["status"] == "no face":
        return [{"path": first["path"], "face": -1, "status": "no face", "emotion": None}]
    return [
        {
            "path": r["path"],
            "face": r["face"],
            "status": "ok",
            "emotion": r["emotion"],
            "probability": r["probability"],
            "probabilities": {c: r[f"p_{c}"] for c in classes},
            "box": [r[c] for c in "xywh"] if r.get("x") is not None else None,
            "face_score": r.get("face_score"),
            "source": r.get("face_source"),
            "error": None,
            **_mesh_fields(r),
        }
        for r in rows
    ]


def _mesh_fields(row: dict) -> dict:
    """With --landmarks: a face's pose ({yaw, pitch, roll}) and its mesh points ([[x, y, z], ...]), else nothing."""
    if row.get("landmarks") is None:
        return {}
    points = [[round(float(v), 2) for v in row["landmarks"][i : i + 3]] for i in range(0, len(row["landmarks"]), 3)]
    return {"pose": {c: row[c] for c in POSE}, "landmarks": points}


def _unreadable(images: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(the images whose header PIL can read, (path, error) for the others, told now): a cheap check before the
    model loads."""
    from PIL import Image, UnidentifiedImageError

    good, bad = [], []
    for path in images:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # large photos are decoded reduced
                Image.open(path).close()
            good.append(path)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            bad.append((path, f"{path}: not a readable image ({type(exc).__name__}: {exc})"))
            print(f"error: {bad[-1][1]}", file=sys.stderr)
    return good, bad


def _write_tables(table, out: Path) -> None:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "predictions.json", lambda p: table.to_json(p, orient="records", indent=2))
    flat = table.drop(columns=[c for c in ("probabilities", "emotion_shares", "pose", "landmarks") if c in table])
    if "probabilities" in table:
        probs = pd.DataFrame([p if isinstance(p, dict) else {} for p in table["probabilities"]])
        flat = pd.concat([flat, probs.add_prefix("p_")], axis=1)
    if "landmarks" in table:  # the pose's three columns, the mesh's x_0..x_467, y_0.., z_0.. (analyze_video's)
        from fer.inference.mesh import COLUMNS

        pose = pd.DataFrame([p if isinstance(p, dict) else {} for p in table["pose"]])
        points = [list(zip(*m)) if isinstance(m, list) else None for m in table["landmarks"]]
        mesh = pd.DataFrame([[v for axis in m for v in axis] if m else [None] * len(COLUMNS) for m in points])
        flat = pd.concat([flat, pose, mesh.set_axis(list(COLUMNS), axis=1)], axis=1)
    write_atomic(out / "predictions.csv", lambda p: flat.to_csv(p, index=False))


# Inputs and rows per committed part (memory stays bounded whatever the corpus), and the largest run that also
# gets predictions.csv/.json and a printed table (the Parquet dataset is the output past it).
PART_INPUTS, PART_ROWS = 256, 50_000
TABLE_ROWS, PRINTED_ROWS = 100_000, 200
# What every row of one dataset is made with: a rerun with others is refused (or --redo starts over).
SETTINGS = (
    "model", "engine", "labels", "prior", "tta", "crop", "detector", "stride", "detect_every", "max_side", "landmarks"
)  # fmt: skip


def _check_writable(out: Path) -> None:
    """UsageError at once, before the model loads, where --out cannot be made or written to."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or exc
        raise UsageError(f"--out {out}: cannot write there ({reason}); choose a folder you can write to") from exc


def cmd_predict(args) -> int:
    if args.explain and not args.out:
        raise UsageError("--explain writes one image per face: give the folder with --out DIR")
    if args.engine == "ray" and (not args.out or args.explain or args.annotate_video or args.crop):
        raise UsageError(
            "--engine ray writes the Parquet dataset: give --out DIR, and leave out --explain, --annotate-video "
            "and --crop (images per face or video are the one-machine path's)"
        )
    # Paths and image headers are checked before TensorFlow and the model load (seconds): bad input is told at once.
    images, videos, missing = expand_inputs([*args.paths, *_manifest(args.from_list, args.column)])
    if not images and not videos:
        what = f"{', '.join(map(str, missing))}: no such file or folder. " if missing else ""
        raise UsageError(f"Nothing to predict. {what}Pass image or video files, or folders that contain them.")
    for path in missing:
        print(f"error: {path}: no such file or folder", file=sys.stderr)
    if args.out:
        _check_writable(Path(args.out))
    readable, unreadable = _unreadable(images)
    from fer.inference.options import PredictOptions

    # The model loaded and every option checked once (--labels naming a head the model lacks: exit 2 up front).
    options = PredictOptions.make(
        args.model,
        engine="auto" if args.engine == "ray" else args.engine,
        labels=args.labels,
        prior=args.prior,
        tta=args.tta,
        face_crop=True if args.crop else None,
        detector=args.detector,
        landmarks=args.landmarks,
    )
    out = Path(args.out) if args.out else None
    run = _Run(args, options, out, [*images, *videos])
    interrupted = run.predict(readable, unreadable, videos, _output_stems(args.paths, images + videos))
    return run.report(missing, len(missing) + len(images) + len(videos), interrupted)


class _Run:
    """One `predict` run: what is already done (the Parquet dataset under --out), committing whole inputs as they
    are done, and the table it prints and writes."""

    def __init__(self, args, options, out: Path | None, inputs: list[Path]):
        from fer.inference.corpus import PredictionDataset, input_key

        self.args, self.options, self.out, self.pending, self.rows = args, options, out, [], []
        self.dataset, self.done, self.inputs = None, set(), inputs
        if out is not None and importlib.util.find_spec("pyarrow") is None:
            print(
                "note: --out writes predictions.csv/.json only; for a Parquet dataset that resumes after a stop: "
                "pip install 'fer2013-emotion-cnn[batch]' (pyarrow)",
                file=sys.stderr,
            )
        elif out is not None:
            settings = {name: getattr(args, name) for name in SETTINGS}
            settings["model"] = str(args.model or "default")
            settings["engine"] = "auto" if args.engine == "ray" else args.engine  # the same rows: one dataset
            self.dataset = PredictionDataset(out / "predictions.parquet", settings, options.classes, args.landmarks)
            self.keys = {str(p): input_key(p) for p in inputs}
            self.done = self.dataset.start(self.keys, redo=args.redo)

    def todo(self, paths: list[Path]) -> list[Path]:
        return [p for p in paths if self.dataset is None or self.keys[str(p)] not in self.done]

    def predict(self, readable: list[Path], unreadable: list[tuple[Path, str]], videos: list[Path], stems) -> bool:
        """Predict what is not done yet, committing whole inputs as they are done; True where Ctrl-C stopped it."""
        from tqdm.auto import tqdm

        from fer.errors import ImageError
        from fer.inference.corpus import input_key, photo_rows

        readable, videos = self.todo(readable), self.todo(videos)
        left = set(self.todo([p for p, _ in unreadable]))
        unreadable = [(p, e) for p, e in unreadable if p in left]
        total = len(readable) + len(unreadable) + len(videos)
        bar = tqdm(total=total, unit="input", desc="predict", disable=None, file=sys.stderr)
        try:
            for path, error in unreadable:
                self.add(photo_rows(input_key(path), [], error), bar)
            if self.args.engine == "ray":
                for rows in _on_ray(readable, videos, self.args):
                    self.add(rows, bar)
                return False
            for rows in _predict_images(readable, self.args, self.options, self.out, stems):  # --chunk: memory
                self.add(rows, bar)
            for video in videos:
                try:
                    rows = _predict_video(video, self.args, self.options, self.out, stems)
                except (ImageError, OSError, ValueError) as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    rows = photo_rows(input_key(video), [], str(exc), kind="video")
                self.add(rows, bar)
        except KeyboardInterrupt:  # Ctrl-C: keep what is done, write it, say so
            return True
        finally:
            self.commit()
            bar.close()
        return False

    def add(self, rows: list[dict], bar) -> None:
        """One input's rows: kept for the table (a run without --out) or the next part (committed when full)."""
        bar.update(1)
        if self.dataset is None:
            self.rows += _table_rows(rows, self.options.classes)
            return
        self.pending.append(rows)
        if len(self.pending) >= PART_INPUTS or sum(map(len, self.pending)) >= PART_ROWS:
            self.commit()

    def commit(self) -> None:
        if self.dataset is not None and self.pending:
            try:
                self.dataset.commit([row for rows in self.pending for row in rows])
            except OSError as exc:  # a full disk: stop at once, say so; the parts already committed stand
                self.pending = []  # not done: the next run predicts them again
                raise UsageError(
                    f"--out {self.out}: cannot write the next part ({exc}); the inputs committed so far are kept, "
                    "free some space and run the same command again for the rest"
                ) from exc
            self.pending = []

    def table(self, missing: list[Path]):
        """This run's table (with --out: every input the dataset holds), missing files first, in input order."""
        import pandas as pd

        rows = [_error_row(path, f"{path}: no such file or folder", quiet=True) for path in missing]
        if self.dataset is None:
            rows += self.rows
        elif self.dataset.rows() <= TABLE_ROWS:
            by_input: dict[str, list[dict]] = {}
            for row in self.dataset.read_rows():
                by_input.setdefault(row["path"], []).append(row)
            rows += [r for found in by_input.values() for r in _table_rows(found, self.options.classes)]
        else:
            return None
        position = {str(p): i for i, p in enumerate([*missing, *self.inputs])}
        rows.sort(key=lambda row: position.get(row["path"], len(position)))
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["path", "face", "status", "emotion"])

    def report(self, missing: list[Path], inputs: int, interrupted: bool) -> int:
        """Print the table and the counts, write predictions.csv/.json; the exit code (0, 1 failures, 130)."""
        table, out = self.table(missing), self.out
        if table is not None and out is not None:
            _write_tables(table, out)
        if table is None:
            print(
                f"{self.dataset.rows()} rows in {self.dataset.folder} (too many for predictions.csv; read the "
                "Parquet dataset with pandas, DuckDB or Polars)"
            )
        elif self.args.json:
            print(table.to_json(orient="records", indent=2))
        else:
            shown = [c for c in ("path", "face", "status", "box", "emotion", "probability", "frames") if c in table]
            print(table[shown].head(PRINTED_ROWS).to_string(index=False, na_rep=""))
            if len(table) > PRINTED_ROWS:
                print(f"... {len(table) - PRINTED_ROWS} more rows in {out}/predictions.csv")
            if out is not None:
                images = "" if self.args.engine == "ray" else " and annotated images"
                print(f"\nWrote {out}/predictions.parquet, predictions.csv, predictions.json{images}")
        failed = int((table["status"] == "error").sum()) if table is not None else 0
        done = len(table["path"].unique()) if table is not None and len(table) else 0
        if interrupted:
            print(f"interrupted: {done} of {inputs} input(s) done and written; run again for the rest", file=sys.stderr)
            return 130
        print(f"{inputs} input(s): {inputs - failed} predicted, {failed} failed", file=sys.stderr)
        return 1 if failed else 0


def add_predict(sub) -> None:
    """The `predict` subcommand's arguments."""
    p = sub.add_parser("predict", help="emotions of the faces in photos, folders and videos")
    p.add_argument("paths", nargs="*", help="image files, video files, or folders of them")
    p.add_argument(
        "--from",
        dest="from_list",
        metavar="FILE",
        help="also the inputs a manifest lists: a text file (one path a line), or a CSV/Parquet file's --column",
    )
    p.add_argument("--column", default="path", help="with --from a CSV/Parquet file: the paths' column (path)")
    add_model(p)
    add_engine(p, "auto", ray=True)
    p.add_argument(
        "--address",
        help="--engine ray: the Ray cluster (auto: the one this machine is in; ray://head:10001); default: a "
        "local Ray on this machine",
    )
    p.add_argument("--workers", type=int, help="--engine ray: actors in the pool (default: the cluster's CPUs)")
    p.add_argument("--crop", action="store_true", help="images are face crops: no face detection")
    p.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        choices=list(DETECTORS),
        help="; ".join(f"{name}: {info.about}" for name, info in DETECTORS.items()),
    )
    _add_video_options(p)
    p.add_argument(
        "--out",
        help="folder for the Parquet dataset predictions.parquet/ (a rerun does only what is new or changed), "
        "predictions.csv/.json, annotated images and video tables",
    )
    p.add_argument("--redo", action="store_true", help="with --out: predict everything again, not only what is new")
    p.add_argument("--annotate-video", action="store_true", help="with --out: also write annotated videos")
    p.add_argument(
        "--explain",
        action="store_true",
        help="with --out: what the network looked at, per face: <name>_face<k>_<emotion>_explain.png (fer.explain)",
    )
    p.add_argument(
        "--landmarks",
        action="store_true",
        help="also each face's head pose (yaw, pitch, roll) and its 468-point face mesh, in every output and drawn "
        "on the annotated images",
    )
    p.add_argument("--chunk", type=int, default=64, help="images read and predicted together")
    add_tta(p)
    add_answer(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_predict)


def _add_video_options(p) -> None:
    """predict's options for videos."""
    p.add_argument("--stride", type=int, default=1, help="videos: analyse every N-th frame")
    p.add_argument(
        "--detect-every",
        type=int,
        default=1,
        metavar="N",
        help="videos: find faces in every N-th analysed frame and re-use those boxes in between (faster)",
    )
    p.add_argument(
        "--max-side",
        type=int,
        default=1024,  # fer.inference.faces.DETECT_MAX_SIDE, written out: --help loads no OpenCV
        metavar="PX",
        help="videos: downscale frames to PX for face detection only (speeds up the Haar detector; BlazeFace "
        "works on 128x128 inputs whatever the frame size)",
    )
