"""Command line: `python -m fer {train,evaluate,predict,run,sweep,sample} ...` (also installed as `fer-emotion`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

from fer import quiet


class UsageError(Exception):
    """The command line asks for something that cannot be done (exit code 2, like argparse's errors)."""


def _load_options(config: str | None, pairs: list[str] | None, flag: str) -> tuple[dict, list[tuple[str, object]]]:
    """(mapping from a YAML file, [(key, value)] from repeated `flag KEY=VALUE` arguments).

    Values are YAML scalars or flow collections: 0.1, 1e-4, true, null, [1, 2], {a: 1}. The file
    may also be a run's own config.json, to repeat or resume that run.
    """
    from fer.pipeline import load_yaml

    options: dict = {}
    if config:
        loaded = load_yaml(Path(config).read_text()) or {}
        if not isinstance(loaded, dict):
            raise SystemExit(f"{config}: expected a YAML mapping of options")
        options.update(loaded)
    parsed = []
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{flag} expects KEY=VALUE, got {item!r}")
        parsed.append((key, load_yaml(value)))
    return options, parsed


def _train_options(args) -> dict:
    from fer.training import TrainConfig

    options, pairs = _load_options(args.config, args.set, "--set")
    for name in (
        "model",
        "data",
        "epochs",
        "batch_size",
        "optimizer",
        "learning_rate",
        "seed",
        "validation",
        "max_train_samples",
        "init_weights",
    ):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.no_class_weights:
        options["class_weighting"] = False
    known = {f.name for f in fields(TrainConfig)}
    for key, value in pairs:
        if key.startswith("augmentation."):
            aug = dict(options.get("augmentation") or TrainConfig().augmentation)
            aug[key.split(".", 1)[1]] = value
            options["augmentation"] = aug
        elif key in known:
            options[key] = value
        else:
            raise SystemExit(f"--set: unknown option {key!r}; known: {sorted(known)} and augmentation.*")
    return options


def cmd_train(args) -> int:
    from fer.training import train

    result = train(_train_options(args), out_dir=args.out, verbose=args.verbose)
    print(json.dumps(result.summary, indent=2))
    print(f"Run folder: {result.run_dir} (best model: {result.run_dir / 'best.keras'})")
    return 0


def cmd_evaluate(args) -> int:
    from fer.data import data_dir, load_split, train_images_beside
    from fer.predict import default_model_path, load_model

    data = data_dir(args.data)
    faces = load_split(data, args.split)
    model = load_model(args.model)
    from fer.evaluation import evaluate

    train_images = None if args.no_dedup else train_images_beside(data, args.split)
    result = evaluate(model, faces.images, faces.labels, tta=args.tta, train_images=train_images)
    if args.json:
        print(result.to_json())
        return 0
    print(f"model: {args.model or default_model_path()}")
    print(f"{data} [{args.split}]: {result.summary()}")
    print(result.per_class.round(3).to_string())
    print("\nConfusion matrix (rows: true, columns: predicted)")
    print(result.confusion.to_string())
    return 0


def _expand_inputs(items: list[str]) -> tuple[list[Path], list[Path], list[Path]]:
    """(images, videos, missing) from files and folders (searched recursively), in sorted order."""
    from fer.images import IMAGE_SUFFIXES, VIDEO_SUFFIXES

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


def _error_row(path: Path, message: str) -> dict:
    print(f"error: {message}", file=sys.stderr)
    return {"path": str(path), "face": None, "status": "error", "emotion": None, "error": message}


def _write_atomic(path: Path, write) -> None:
    """`write(tmp_path)`, then rename over `path`: an interrupted run never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _predict_images(paths: list[Path], args, model, out: Path | None) -> list[dict]:
    """Rows for one chunk of image files, in the order given; an unreadable file gets an error row."""
    from fer.drawing import annotate
    from fer.errors import ImageError
    from fer.images import as_array
    from fer.predict import predict_emotions, predict_photos

    rows: dict[int, list[dict]] = {}
    arrays, ok = [], []
    for i, path in enumerate(paths):
        try:
            arrays.append(as_array(path))
            ok.append(i)
        except (ImageError, OSError) as exc:
            rows[i] = [_error_row(path, str(exc))]
    if args.crop:
        for i, p in zip(ok, predict_emotions(arrays, model=model, tta=args.tta)):
            rows[i] = [{"path": str(paths[i]), "face": 0, "status": "ok", **p.to_dict()}]
    elif arrays:
        results = predict_photos(arrays, model=model, detector=args.detector, tta=args.tta, warn_no_face=False)
        for i, arr, faces in zip(ok, arrays, results):
            path = paths[i]
            if not faces:
                rows[i] = [{"path": str(path), "face": -1, "status": "no face", "emotion": None}]
                continue
            rows[i] = [{"path": str(path), "face": k, "status": "ok", **p.to_dict()} for k, p in enumerate(faces)]
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                annotate(arr, faces, out / f"{path.stem}_annotated.png")
    return [row for i in sorted(rows) for row in rows[i]]


def _predict_video(video: Path, args, model, out: Path | None) -> dict:
    from fer import plots
    from fer.video import analyze_video

    frames = analyze_video(
        video,
        model=model,
        stride=args.stride,
        detect_every=args.detect_every,
        max_side=args.max_side,
        detector=args.detector,
        tta=args.tta,
        out_video=out / f"{video.stem}_annotated.mp4" if out and args.annotate_video else None,
    )
    with_face = frames[frames["face"] >= 0]
    summary = with_face["emotion"].value_counts(normalize=True).round(3).to_dict() if len(with_face) else {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _write_atomic(out / f"{video.stem}_frames.csv", lambda p: frames.to_csv(p, index=False))
        if len(with_face):
            plots.save(plots.emotions_over_time(frames), out, f"{video.stem}_emotions")
    return {
        "path": str(video),
        "face": None,
        "status": "ok" if summary else "no face",
        "emotion": max(summary, key=summary.get) if summary else None,
        "frames": int(frames["frame"].nunique()),
        "emotion_shares": summary,
    }


def cmd_predict(args) -> int:
    images, videos, missing = _expand_inputs(args.paths)  # checked before TensorFlow and the model load
    if not images and not videos:
        what = f"{', '.join(map(str, missing))}: no such file or folder. " if missing else ""
        raise UsageError(f"Nothing to predict. {what}Pass image or video files, or folders that contain them.")
    import pandas as pd

    from fer.errors import ImageError
    from fer.predict import resolve_model

    model = resolve_model(args.model)
    out = Path(args.out) if args.out else None
    rows = [_error_row(path, f"{path}: no such file or folder") for path in missing]
    for start in range(0, len(images), args.chunk):  # chunks bound memory on big folders
        rows += _predict_images(images[start : start + args.chunk], args, model, out)
    for video in videos:
        try:
            rows.append(_predict_video(video, args, model, out))
        except (ImageError, OSError, ValueError) as exc:
            rows.append(_error_row(video, str(exc)))

    table = pd.DataFrame(rows)
    failed = int((table["status"] == "error").sum())
    inputs = len(missing) + len(images) + len(videos)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _write_atomic(out / "predictions.json", lambda p: table.to_json(p, orient="records", indent=2))
        flat = table.drop(columns=[c for c in ("probabilities", "emotion_shares") if c in table])
        if "probabilities" in table:
            probs = pd.DataFrame([p if isinstance(p, dict) else {} for p in table["probabilities"]])
            flat = pd.concat([flat, probs.add_prefix("p_")], axis=1)
        _write_atomic(out / "predictions.csv", lambda p: flat.to_csv(p, index=False))
    if args.json:
        print(table.to_json(orient="records", indent=2))
    else:
        shown = [c for c in ("path", "face", "status", "box", "emotion", "probability", "frames") if c in table]
        print(table[shown].to_string(index=False, na_rep=""))
        if out is not None:
            print(f"\nWrote {out}/predictions.csv, predictions.json and annotated images")
    print(f"{inputs} input(s): {inputs - failed} predicted, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def _pipeline_params(args) -> dict:
    params, pairs = _load_options(args.config, args.param, "-p")
    return {**params, **dict(pairs)}


# `run --demo`: a short training that shows the training notebook at work in a few minutes.
# BatchNorm momentum 0.9: with ~100 steps, the default 0.99 leaves the inference statistics near
# their initial values and validation accuracy swings between classes (see README, "Quick runs").
# Light augmentation and no class weights: on 5,000 faces the full recipe's erasing, zoom and
# weighting keep accuracy near chance for the first epochs; this shows learning within 4 epochs.
DEMO_PARAMS = {
    "model_name": "vgg_lite",
    "epochs": 4,
    "batch_size": 32,
    "max_train_samples": 5000,
    "model_options": {"bn_momentum": 0.9},
    "class_weighting": False,
    "augmentation": {"rotation": 10.0, "flip": True, "shift": 0.0, "zoom": 0.0, "erasing": 0.0, "contrast": 0.0},
}
FULL_RECIPE = "python -m fer sweep sweeps/vgg_lite_cosine.yaml"


def _headline(metrics: dict, label: str) -> str:
    line = (
        f"{label}: {metrics['split']} n={metrics['n']} accuracy={metrics['accuracy']:.4f} "
        f"macro-F1={metrics['macro_f1']:.4f} ECE={metrics['ece']:.4f}"
    )
    dedup = metrics.get("without_train_duplicates")
    if dedup:
        line += (
            f"\n  without the {dedup['n_removed']} faces that copy training images: accuracy={dedup['accuracy']:.4f}"
        )
    return line


def cmd_run(args) -> int:
    from fer.pipeline import REPO, run_pipeline

    run_dir = (
        Path(args.out) if args.out else REPO / "reports" / "runs" / (args.run_id or time.strftime("%Y%m%d-%H%M%S"))
    )
    params = _pipeline_params(args)
    start = time.perf_counter()
    metrics = run_pipeline(params, run_dir, steps=args.steps, log_output=args.log_output)
    print(f"Run folder: {run_dir.resolve()} ({time.perf_counter() - start:.0f} s)")
    if metrics:
        trained_here = "train" in args.steps
        print(_headline(metrics, "This run's model" if trained_here else f"Model {metrics.get('model_path')}"))
    if args.demo:
        print(
            f"\nDEMONSTRATION training run: {DEMO_PARAMS['model_name']}, {DEMO_PARAMS['epochs']} epochs on "
            f"{DEMO_PARAMS['max_train_samples']:,} faces. Its accuracy is NOT the project's result (above); "
            f"the full recipe is: {FULL_RECIPE}"
        )
        demo_params = {**DEMO_PARAMS, **{k: v for k, v in params.items() if k in ("data_dir",)}}
        demo = run_pipeline(demo_params, run_dir / "demo", steps=("train", "evaluate"), log_output=args.log_output)
        if demo:
            print(_headline(demo, "Demonstration run (short training, not the project's result)"))
            print(f"Full recipe: {FULL_RECIPE}")
    return 0


def cmd_sweep(args) -> int:
    from fer.pipeline import run_sweep

    table = run_sweep(args.spec, **({"table_path": args.table} if args.table else {}))
    columns = [c for c in ("sweep", "run_id", "status", "accuracy", "macro_f1", "seconds", "error") if c in table]
    print(table[columns].to_string(index=False))
    return 0


def cmd_ship(args) -> int:
    from fer.release import ship, ship_ensemble

    where = {"models_dir": args.models_dir} if args.models_dir else {}
    if len(args.run) > 1:
        metrics = ship_ensemble(
            args.run, args.data, **where, name=args.name, hardware=args.hardware, selection=args.selection or ""
        )
        print(
            f"Shipped the ensemble of {len(args.run)} runs as {metrics['model_file']}: accuracy "
            f"{metrics['accuracy']:.4f} (TTA {metrics['accuracy_tta']:.4f}), macro-F1 {metrics['macro_f1']:.4f}, "
            f"{metrics['cpu_faces_per_second']:,} faces/s; card written next to it"
        )
        return 0
    (args.run,) = args.run
    metrics = ship(args.run, args.data, **where, hardware=args.hardware)
    print(
        f"Shipped {args.run}/{metrics['checkpoint']}: accuracy {metrics['accuracy']:.4f} "
        f"(TTA {metrics['accuracy_tta']:.4f}), "
        f"macro-F1 {metrics['macro_f1']:.4f}; card written next to the model"
    )
    return 0


def cmd_ensemble(args) -> int:
    from fer.ensembling import ensemble

    model = ensemble(args.members, args.out)
    print(f"Wrote {args.out}: the mean of {len(args.members)} models ({model.count_params():,} parameters)")
    return 0


def cmd_export(args) -> int:
    from fer.exporting import export

    quantize = None if args.quantize == "none" else args.quantize
    out = export(args.model, args.format, args.out, quantize=quantize, data=args.data)
    print(f"Wrote {out} and {out.with_suffix('.json').name if out.suffix else out.name + '.json'} beside it")
    return 0


def cmd_sample(args) -> int:
    from fer.sample import write_sample

    root = write_sample(args.out, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    print(f"Wrote a synthetic (not FER-2013!) dataset to {root}")
    return 0


def _add_tta(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tta",
        nargs="?",
        const=True,
        default=False,
        choices=["flip", "shift"],  # fer.evaluation.TTA_SCHEMES (not imported: keeps --help fast)
        help="test-time augmentation: average over views of each face (default scheme; or name one)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fer", description=__doc__)
    parser.add_argument(
        "--verbose",
        dest="show_logs",
        action="store_true",
        help="show library start-up and log lines (TensorFlow, ffmpeg); put it before the command",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model into a run folder (resumes if interrupted)")
    p.add_argument("--config", help="YAML file of training options (see fer.training.TrainConfig)")
    p.add_argument("--model", help="seed | vgg_lite | vgg (default: seed)")
    p.add_argument(
        "--data", help="dataset root, fer2013.csv, or folder of <emotion>/ (default: $FER2013_DIR, else data/fer2013)"
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"])
    p.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float)
    p.add_argument(
        "--validation",
        choices=["train", "test"],
        help="train: hold out 10%% of train (default); test: only watched (needs a fixed cosine schedule)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--max-train-samples",
        dest="max_train_samples",
        type=int,
        help="train on a stratified subset of this many images (quick runs; default: all)",
    )
    p.add_argument(
        "--init-weights",
        dest="init_weights",
        help="start from this trained model's weights (same architecture), e.g. models/fer_emotion.keras to fine-tune",
    )
    p.add_argument("--no-class-weights", action="store_true", help="turn off balanced class weights")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any other option, e.g. --set label_smoothing=0.1 --set augmentation.erasing=0.5",
    )
    p.add_argument("--out", default="runs/latest", help="run folder (default: runs/latest)")
    p.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2], help="Keras progress: 1 bar, 2 line/epoch")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a model on a labelled split")
    p.add_argument("--model", help="a .keras, .json (ensemble), .onnx or .tflite model (default: the shipped ensemble)")
    p.add_argument(
        "--data",
        help="dataset root, fer2013.csv, or folder of <emotion>/ folders (default: $FER2013_DIR, else data/fer2013)",
    )
    p.add_argument("--split", default="test", help="train | test | private (default: test)")
    p.add_argument(
        "--no-dedup",
        action="store_true",
        help="skip the second figure without faces that duplicate training images (saves loading train)",
    )
    _add_tta(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="emotions of the faces in photos, folders and videos")
    p.add_argument("paths", nargs="+", help="image files, video files, or folders of them")
    p.add_argument("--model", help="a .keras, .json (ensemble), .onnx or .tflite model (default: the shipped ensemble)")
    p.add_argument("--crop", action="store_true", help="images are face crops: no face detection")
    # default: fer.faces.DEFAULT_DETECTOR (a literal here: the CLI imports OpenCV only when it needs it)
    p.add_argument("--detector", default="blazeface", choices=["blazeface", "haar", "mtcnn"])
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
        help="videos: downscale frames to PX for face detection only (480 is ~2x faster on 640x480 video)",
    )
    p.add_argument("--out", help="folder for predictions.csv/.json, annotated images and video tables")
    p.add_argument("--annotate-video", action="store_true", help="with --out: also write annotated videos")
    p.add_argument("--chunk", type=int, default=64, help="images read and predicted together")
    _add_tta(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("run", help="run the EDA, training and evaluation notebooks with papermill")
    p.add_argument("--config", help="YAML file of notebook parameters")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="a notebook parameter, e.g. -p model_name=vgg_lite -p epochs=10 -p data_dir=data/fer2013",
    )
    p.add_argument(
        "--steps",
        nargs="+",
        default=["eda", "evaluate"],
        choices=["eda", "train", "evaluate"],
        help="default: eda evaluate (the default model's results); add train to train a model first",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="then a short, clearly labelled demonstration training run (4 epochs on 5,000 faces)",
    )
    p.add_argument("--run-id", help="folder name under reports/runs/ (default: a timestamp)")
    p.add_argument("--out", help="run folder (overrides --run-id)")
    p.add_argument("--log-output", action="store_true", help="stream the notebooks' output to the terminal")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="run a YAML sweep of parameter sets; results go to reports/runs.csv")
    p.add_argument("spec", help="sweep YAML (keys: name, base, grid, runs, steps)")
    p.add_argument("--table", help="runs table CSV (default: reports/runs.csv)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "ship", help="make a run's model the default (or ship several runs as an ensemble): export, evaluate, card"
    )
    p.add_argument(
        "--run",
        required=True,
        nargs="+",
        help="run folder with config.json, history.csv and its model; several: ship them as an ensemble",
    )
    p.add_argument("--name", default="fer_ensemble", help="an ensemble's name in models/ (default fer_ensemble)")
    p.add_argument("--selection", help="an ensemble: how its members were chosen (for the card)")
    p.add_argument("--data", help="dataset whose test split is reported (default: $FER2013_DIR, else data/fer2013)")
    p.add_argument("--models-dir", help="default: the repository's models/")
    p.add_argument("--hardware", help="where it was trained, for the card (default: this machine)")
    p.set_defaults(func=cmd_ship)

    p = sub.add_parser("ensemble", help="one .keras model that averages the probabilities of several models")
    p.add_argument("members", nargs="+", help="two or more .keras emotion models")
    p.add_argument("--out", required=True, help="the ensemble's .keras file")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("export", help="write a model as ONNX (float32, float16, int8), LiteRT or SavedModel")
    p.add_argument("--model", help="a .keras, .json (ensemble), .onnx or .tflite model (default: the shipped ensemble)")
    p.add_argument("--format", default="onnx", choices=["onnx", "litert", "saved_model"])
    p.add_argument("--quantize", default="none", choices=["none", "float16", "int8"], help="ONNX only")
    p.add_argument("--out", default="exported", help="output folder (default: exported/)")
    p.add_argument("--data", help="int8 calibration faces: FER-2013 root (default: $FER2013_DIR, else data/fer2013)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("sample", help="write a small synthetic dataset in the FER-2013 folder layout")
    p.add_argument("--out", default="data/sample")
    p.add_argument("--n-train", type=int, default=60, help="images per class in train/")
    p.add_argument("--n-test", type=int, default=20, help="images per class in test/")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done; 1 some inputs failed (predict); 2 usage, data or model errors."""
    args = build_parser().parse_args(argv)
    if args.show_logs:
        os.environ[quiet.VERBOSE_ENV] = "1"
        quiet.uninstall()
    from fer.errors import DataError, ImageError, ModelError

    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stderr.close()
        return 0
    except (UsageError, DataError, ImageError, ModelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
