"""`train`, `run` and `sweep`: training a model, running the notebooks, running a sweep."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

from fer.cli.common import UsageError, add_data, load_options


def _train_options(args) -> dict:
    from fer.modeling.config import TrainConfig
    from fer.modeling.recipes import RECIPES

    loaded, pairs = load_options(args.config, args.set, "--set")
    # A run's own config.json already holds every setting; otherwise the recipe fills in what is not given.
    options = {**RECIPES[args.recipe], **loaded}
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
        "distribute",
    ):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.no_class_weights:
        options["class_weighting"] = False
    defaults = TrainConfig()
    known = {f.name for f in fields(TrainConfig)}
    nested = sorted(name for name in known if isinstance(getattr(defaults, name), dict))
    for key, value in pairs:
        name, dot, inner = key.partition(".")
        if dot and name in nested and inner:  # augmentation.erasing=0.5, model_options.bn_momentum=0.9
            options[name] = {**(options.get(name) or getattr(defaults, name)), inner: value}
        elif not dot and key in known:
            options[key] = value
        else:
            raise UsageError(
                f"--set: unknown option {key!r}; known: {', '.join(sorted(known))}, and "
                f"{', '.join(n + '.<key>' for n in nested)}"
            )
    return options


def cmd_train(args) -> int:
    from fer.modeling.training import train

    if args.old_progress is not None:
        print("train --verbose N is deprecated (0.5): use --progress N", file=sys.stderr)
        args.progress = args.old_progress
    result = train(_train_options(args), out_dir=args.out, verbose=args.progress)
    print(json.dumps(result.summary, indent=2))
    print(f"Run folder: {result.run_dir} (best model: {result.run_dir / 'best.keras'})")
    return 0


def add_train(sub) -> None:
    """The `train` subcommand's arguments."""
    from fer.modeling.config import DISTRIBUTE, OPTIMIZERS, VALIDATIONS
    from fer.modeling.recipes import RECIPES

    p = sub.add_parser("train", help="train a model into a run folder (resumes if interrupted)")
    p.add_argument("--config", help="YAML file of training options (see fer.modeling.config.TrainConfig)")
    p.add_argument(
        "--recipe",
        default="shipped",
        choices=sorted(RECIPES),
        help="starting settings: shipped = the shipped single network's (vgg_lite, SGD + cosine, 45 epochs, "
        "~1.5 h on 2 cores; default); seed = the seed project's baseline (seed CNN, Adam, 30 epochs); dual = one "
        "network with a FER+ and a FER-2013 head, distilled from both shipped ensembles (60 epochs, ~1 h on 2 cores)",
    )
    p.add_argument("--model", help="the architecture (default: the recipe's; an unknown name lists those there are)")
    add_data(p, "dataset root, fer2013.csv, or folder of <emotion>/")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float)
    p.add_argument(
        "--validation",
        choices=VALIDATIONS,
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
        "--distribute",
        choices=DISTRIBUTE,
        help="several GPUs (JAX): auto (default) splits each batch over every local GPU; see docs/training.md",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any other option, e.g. --set label_smoothing=0.1 --set augmentation.erasing=0.5",
    )
    p.add_argument("--out", default="runs/latest", help="run folder (default: runs/latest)")
    p.add_argument(
        "--progress", type=int, default=2, choices=[0, 1, 2], help="Keras' progress: 1 a bar, 2 a line/epoch"
    )
    # Before 0.5 `train --verbose N` set the progress; `--verbose` alone (before the command) shows library logs.
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], dest="old_progress", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_train)


def _pipeline_params(args) -> dict:
    params, pairs = load_options(args.config, args.param, "-p")
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
    # Adam with plateau cuts and the best epoch: on 4 epochs the full recipe's cosine schedule has no time to work.
    "optimizer": "adam",
    "learning_rate": 0.001,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "lr_schedule": "plateau",
    "warmup_epochs": 0,
    "checkpoint": "best",
}
# The default model's run, with the notebooks: 120 epochs of FER+ votes from a random start (a GPU lease's run;
# about 3.7 h on the 2-core CPU). sweeps/ferplus.yaml is the CPU-sized fine-tune it replaced.
FULL_RECIPE = "python -m fer sweep sweeps/gpu_lease.yaml --index 1"


def _headline(metrics: dict, label: str) -> str:
    truth = "FER+ crowd majority" if metrics.get("votes") else "dataset labels"
    line = (
        f"{label}: {metrics['split']} ({truth}) n={metrics['n']} accuracy={metrics['accuracy']:.4f} "
        f"macro-F1={metrics['macro_f1']:.4f} ECE={metrics['ece']:.4f}"
        + (f" crowd-agreement={metrics['crowd_agreement']:.4f}" if metrics.get("crowd_agreement") else "")
    )
    dedup = metrics.get("without_train_duplicates")
    if dedup:
        line += (
            f"\n  without the {dedup['n_removed']} faces that copy training images: accuracy={dedup['accuracy']:.4f}"
        )
    return line


def cmd_run(args) -> int:
    from fer.paths import REPO
    from fer.pipeline import run_pipeline

    run_dir = (
        Path(args.out) if args.out else REPO / "reports" / "runs" / (args.run_id or time.strftime("%Y%m%d-%H%M%S"))
    )
    params = _pipeline_params(args)
    start = time.perf_counter()
    metrics = run_pipeline(params, run_dir, steps=args.steps, log_output=args.log_output)
    smoke = json.loads((run_dir / "params.json").read_text()).get("smoke_run", False)
    print(f"Run folder: {run_dir.resolve()} ({time.perf_counter() - start:.0f} s)")
    if metrics:
        trained_here = "train" in args.steps
        label = "This run's model" if trained_here else f"Model {metrics.get('model_path')}"
        if smoke:  # generated faces: the number only shows that the pipeline runs
            label = f"SMOKE RUN, synthetic faces (says nothing about FER-2013), {label[0].lower()}{label[1:]}"
        print(_headline(metrics, label))
    if args.demo:
        print(
            f"\nDEMONSTRATION training run: {DEMO_PARAMS['model_name']}, {DEMO_PARAMS['epochs']} epochs on "
            f"{DEMO_PARAMS['max_train_samples']:,} faces. Its accuracy is NOT the project's result (above); "
            f"the full recipe is: {FULL_RECIPE}"
        )
        demo_params = {**DEMO_PARAMS, **{k: v for k, v in params.items() if k in ("data_dir",)}}
        demo = run_pipeline(demo_params, run_dir / "demo", steps=("train", "evaluate"), log_output=args.log_output)
        if demo:
            what = "SMOKE RUN on synthetic faces" if smoke else "short training, not the project's result"
            print(_headline(demo, f"Demonstration run ({what})"))
            print(f"Full recipe: {FULL_RECIPE}")
    return 0


def add_run(sub) -> None:
    """The `run` subcommand's arguments."""
    from fer.paths import STEPS

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
        choices=list(STEPS),
        help="notebooks 01-04: default eda evaluate (the default model's results); add train to train a model "
        "first; faces shows detection and cropping on a photo",
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


def cmd_sweep(args) -> int:
    from fer.pipeline import expand_sweep, load_sweep, run_sweep, sweep_commands

    if args.list:  # one command per run: what a SLURM/PBS job array or a Kubernetes indexed job runs
        print("\n".join(sweep_commands(args.spec, args.data)))
        return 0
    spec = load_sweep(args.spec)
    where = {"table_path": args.table} if args.table else {}
    if args.out:
        where["runs_root"] = args.out
    table = run_sweep(spec, data=args.data, index=args.index, **where)
    ids = [run_id for run_id, _ in expand_sweep(spec)]
    ids = ids if args.index is None else [ids[args.index]]
    mine = table[(table["sweep"] == str(spec.get("name", "sweep"))) & table["run_id"].isin(ids)]
    columns = [c for c in ("sweep", "run_id", "status", "accuracy", "macro_f1", "seconds", "error") if c in mine]
    print(mine[columns].to_string(index=False))
    failed = int((mine["status"] != "ok").sum())
    if failed:
        print(f"error: {failed} of {len(mine)} run(s) failed; their executed notebooks show where", file=sys.stderr)
    return 1 if failed else 0


def add_sweep(sub) -> None:
    """The `sweep` subcommand's arguments."""
    p = sub.add_parser("sweep", help="run a YAML sweep of parameter sets; results go to reports/runs.csv")
    p.add_argument("spec", help="sweep YAML (keys: name, base, grid, runs, steps)")
    p.add_argument("--table", help="runs table CSV (default: reports/runs.csv)")
    p.add_argument("--out", help="folder of the run folders, <out>/<sweep>/<run-id>/ (default: reports/runs)")
    add_data(p, "dataset for every run; else the spec's data_dir")
    p.add_argument("--list", action="store_true", help="print one command per run (for cluster job arrays) and exit")
    p.add_argument(
        "--index",
        type=int,
        metavar="I",
        help="run only run I (0-based), e.g. --index $SLURM_ARRAY_TASK_ID; each run writes its own record",
    )
    p.set_defaults(func=cmd_sweep)
