"""`predict`: the emotions of the faces in photos, folders and videos, as a table, CSV/JSON and annotated images."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

from fer.cli.common import UsageError, add_answer, add_engine, add_model, add_tta, write_atomic
from fer.inference.detectors.registry import DEFAULT_DETECTOR, DETECTORS


def _expand_inputs(items: list[str]) -> tuple[list[Path], list[Path], list[Path]]:
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


def _error_row(path: Path, message: str) -> dict:
    print(f"error: {message}", file=sys.stderr)
    return {"path": str(path), "face": None, "status": "error", "emotion": None, "error": message}


def _predict_images(paths: list[Path], args, options, out: Path | None, stems: dict[Path, Path]):
    """Row lists, one per image file in the order given (as each is done); an unreadable file gets an error row.

    Photos go through fer.inference.predict.photo_results: detected one by one, classified --chunk at a time in
    batches, the next chunk read and detected while this one is classified."""
    from fer.inference.predict import photo_results

    for result in photo_results(paths, options, chunk=args.chunk):
        path, faces = paths[result.index], result.faces
        if faces.error:
            yield [_error_row(path, faces.error)]
        elif not faces:
            yield [{"path": str(path), "face": -1, "status": "no face", "emotion": None}]
        else:
            yield [{"path": str(path), "face": k, "status": "ok", **p.to_dict()} for k, p in enumerate(faces)]
            if out is not None:
                _write_images(result, options, args, out / stems[path])


def _write_images(result, options, args, base: Path) -> None:
    """`<name>_annotated.png` (not for --crop) and, with --explain, `<name>_face<k>_<emotion>_explain.png` per face:
    its crop beside the crop with the saliency map (fer.inference.explain)."""
    import numpy as np
    from PIL import Image

    from fer.inference.explain import explanations

    base.parent.mkdir(parents=True, exist_ok=True)
    if not args.crop:
        result.annotated(base.parent / f"{base.name}_annotated.png")
    if not args.explain:
        return
    for k, e in enumerate(explanations(result, options)):
        plain = np.repeat(np.asarray(Image.fromarray(e.face).resize((192, 192), Image.BICUBIC))[..., None], 3, 2)
        panel = np.concatenate([plain, e.overlay()], axis=1)
        Image.fromarray(panel).save(base.parent / f"{base.name}_face{k}_{e.target}_explain.png")


def _predict_video(video: Path, args, options, out: Path | None, stems: dict[Path, Path]) -> dict:
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
    )
    with_face = frames[frames["face"] >= 0]
    summary = with_face["emotion"].value_counts(normalize=True).round(3).to_dict() if len(with_face) else {}
    if out is not None:
        base = out / stems[video]
        base.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(base.parent / f"{base.name}_frames.csv", lambda p: frames.to_csv(p, index=False))
        if len(with_face) and importlib.util.find_spec("matplotlib") is not None:  # the plot: research extra
            from fer.analysis import plots

            plots.save(plots.emotions_over_time(frames), base.parent, f"{base.name}_emotions")
    return {
        "path": str(video),
        "face": None,
        "status": "ok" if summary else "no face",
        "emotion": max(summary, key=summary.get) if summary else None,
        "frames": int(frames["frame"].nunique()),
        "emotion_shares": summary,
    }


def _unreadable(images: list[Path]) -> tuple[list[Path], list[dict]]:
    """(the images whose header PIL can read, error rows for the others): a cheap check before TensorFlow loads."""
    from PIL import Image, UnidentifiedImageError

    good, bad = [], []
    for path in images:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # large photos are decoded reduced
                Image.open(path).close()
            good.append(path)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            bad.append(_error_row(path, f"{path}: not a readable image ({type(exc).__name__}: {exc})"))
    return good, bad


def _write_tables(table, out: Path) -> None:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "predictions.json", lambda p: table.to_json(p, orient="records", indent=2))
    flat = table.drop(columns=[c for c in ("probabilities", "emotion_shares") if c in table])
    if "probabilities" in table:
        probs = pd.DataFrame([p if isinstance(p, dict) else {} for p in table["probabilities"]])
        flat = pd.concat([flat, probs.add_prefix("p_")], axis=1)
    write_atomic(out / "predictions.csv", lambda p: flat.to_csv(p, index=False))


def cmd_predict(args) -> int:
    if args.explain and not args.out:
        raise UsageError("--explain writes one image per face: give the folder with --out DIR")
    # Paths and image headers are checked before TensorFlow and the model load (seconds): bad input is told at once.
    images, videos, missing = _expand_inputs(args.paths)
    if not images and not videos:
        what = f"{', '.join(map(str, missing))}: no such file or folder. " if missing else ""
        raise UsageError(f"Nothing to predict. {what}Pass image or video files, or folders that contain them.")
    rows = [_error_row(path, f"{path}: no such file or folder") for path in missing]
    readable, unreadable = _unreadable(images)
    rows += unreadable
    import pandas as pd

    from fer.errors import ImageError
    from fer.inference.options import PredictOptions

    # The model loaded and every option checked once (--labels naming a head the model lacks: exit 2 up front).
    options = PredictOptions.make(
        args.model,
        engine=args.engine,
        labels=args.labels,
        prior=args.prior,
        tta=args.tta,
        face_crop=True if args.crop else None,
        detector=args.detector,
    )
    out = Path(args.out) if args.out else None
    stems = _output_stems(args.paths, images + videos)
    interrupted = False
    try:
        for image_rows in _predict_images(readable, args, options, out, stems):  # --chunk bounds memory
            rows += image_rows
        for video in videos:
            try:
                rows.append(_predict_video(video, args, options, out, stems))
            except (ImageError, OSError, ValueError) as exc:
                rows.append(_error_row(video, str(exc)))
    except KeyboardInterrupt:  # Ctrl-C: keep what is done, write it, say so
        interrupted = True

    position = {str(p): i for i, p in enumerate([*missing, *images, *videos])}
    rows.sort(key=lambda row: position.get(row["path"], len(position)))  # input order, whatever failed first
    table = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["path", "face", "status", "emotion"])
    failed = int((table["status"] == "error").sum())
    inputs = len(missing) + len(images) + len(videos)
    if out is not None:
        _write_tables(table, out)
    if args.json:
        print(table.to_json(orient="records", indent=2))
    else:
        shown = [c for c in ("path", "face", "status", "box", "emotion", "probability", "frames") if c in table]
        print(table[shown].to_string(index=False, na_rep=""))
        if out is not None:
            print(f"\nWrote {out}/predictions.csv, predictions.json and annotated images")
    done = len(table["path"].unique()) if len(table) else 0
    if interrupted:
        print(f"interrupted: {done} of {inputs} input(s) done and written; run again for the rest", file=sys.stderr)
        return 130
    print(f"{inputs} input(s): {inputs - failed} predicted, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def add_predict(sub) -> None:
    """The `predict` subcommand's arguments."""
    p = sub.add_parser("predict", help="emotions of the faces in photos, folders and videos")
    p.add_argument("paths", nargs="+", help="image files, video files, or folders of them")
    add_model(p)
    add_engine(p, "auto")
    p.add_argument("--crop", action="store_true", help="images are face crops: no face detection")
    p.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        choices=list(DETECTORS),
        help="; ".join(f"{name}: {info.about}" for name, info in DETECTORS.items()),
    )
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
        default=1024,
        metavar="PX",
        help="videos: downscale frames to PX for face detection only (speeds up the Haar detector; BlazeFace "
        "works on 128x128 inputs whatever the frame size)",
    )
    p.add_argument("--out", help="folder for predictions.csv/.json, annotated images and video tables")
    p.add_argument("--annotate-video", action="store_true", help="with --out: also write annotated videos")
    p.add_argument(
        "--explain",
        action="store_true",
        help="with --out: what the network looked at, per face: <name>_face<k>_<emotion>_explain.png (fer.explain)",
    )
    p.add_argument("--chunk", type=int, default=64, help="images read and predicted together")
    add_tta(p)
    add_answer(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_predict)
