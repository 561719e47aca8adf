"""Train a sweep's runs side by side on one accelerator, their epochs fitted to a wall-clock budget.

    KERAS_BACKEND=jax python scripts/train_parallel.py sweeps/gpu_members.yaml --budget 420 --out runs/gpu \
        [--probe-epochs 2 | --epochs N] [--max-epochs 200] [--pack DIR]

Made for a short accelerator lease (minutes of one GPU). A `vgg_lite` step on 48x48 faces leaves a GPU mostly
idle, so every run of the sweep trains in its own process at the same time: K runs cost little more than one.
How many epochs fit is not known in advance (GPU, contention, compile time), so the script first runs every run
for --probe-epochs epochs side by side and reads the seconds per epoch from their history; the real runs then get
the most epochs that fit what is left of --budget (all the same number, and a fixed schedule: nothing is chosen
on any score). The epoch count is written into each run's config.json, so a run repeats anywhere with
`python -m fer train --config <run>/config.json --out <run>`. The probe pays the start-up (loading the faces,
XLA compiling) a second time; where the time per epoch is known, `--epochs N` skips it. Measured on an H200
(2026-11-26, reports/benchmarks/gpu_lease_h200.txt): four vgg_lite runs side by side took 1.4-1.7 s per epoch each
(about 16,000 faces/s per run) after 45-60 s of start-up, against about 110 s per epoch alone on the 2-core CPU.

The sweep file is the usual one (`python -m fer sweep`): `base` and `runs`, with the notebook parameter names
(`data_dir`, `model_name`) or TrainConfig's; `epochs` is replaced by the fitted count. Each run folder is the usual
one (config.json, history.csv, final.keras, summary.json, a log). --pack DIR writes each finished run as one
`<run_id>.tar` with final.keras without its optimizer state (half the size: what `init_weights`, `ship` and
`eval_ensemble` need), plus `train_parallel.json` (device, probe timings, fitted epochs, each run's status),
so that a lease's few output files bring everything home.

On a lent machine (Python 3.12 with JAX, no Keras, no internet), after `scripts/device_payload.sh` here, one call
carrying `.whl` and `.devdata`:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
    python3 -c "import tarfile; tarfile.open('.devdata/fer2013.tar.xz').extractall('/work/shared')"  # as here
    FER2013_DIR=/work/shared/fer2013 KERAS_BACKEND=jax python3 scripts/train_parallel.py sweeps/gpu_members.yaml \
        --epochs 150 --budget 420 --out /tmp/gpu_runs --pack $OUT
then here `tar xf <run_id>.tar -C reports/runs/gpu_members/`: each folder is a run folder for eval_ensemble and ship.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pandas as pd

from fer.pipeline import expand_sweep, load_yaml

# Notebook parameter names (the sweep files' vocabulary) -> TrainConfig fields; evaluation-only ones dropped.
RENAMED = {"data_dir": "data", "model_name": "model"}
NOT_TRAINING = {"n_mistakes", "steps"}


def train_configs(spec: dict, data: str | None = None) -> list[tuple[str, dict]]:
    """[(run_id, TrainConfig dict)] for a sweep spec; `data` (else the spec's, else fer's data_dir()) for every run."""
    from fer.data.loading import data_dir

    runs = []
    for run_id, params in expand_sweep(spec):
        config = {RENAMED.get(k, k): v for k, v in params.items() if k not in NOT_TRAINING}
        if data is not None or "data" not in config:
            config["data"] = str(data_dir(data))
        runs.append((run_id, config))
    return runs


def fit_epochs(seconds_left: float, seconds_per_epoch: float, overhead: float, max_epochs: int) -> int:
    """The most whole epochs that fit `seconds_left` after `overhead` (start-up), 10% kept in hand."""
    if seconds_per_epoch <= 0:
        raise ValueError(f"seconds_per_epoch must be > 0, got {seconds_per_epoch}")
    return max(0, min(max_epochs, math.floor((seconds_left - overhead) / (1.10 * seconds_per_epoch))))


def launch(
    configs: list[tuple[str, dict]], out: Path, teacher_cache: Path | None = None, **overrides
) -> dict[str, subprocess.Popen]:
    """Start one `python -m fer train` process per run, its config updated with `overrides`; `teacher_cache`: a
    folder of teacher_*.npz (a distillation run's cached teacher probabilities) copied into each run folder."""
    import shutil

    procs = {}
    for run_id, config in configs:
        run_dir = out / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        for cached in sorted(Path(teacher_cache).glob("teacher*.npz")) if teacher_cache else []:
            shutil.copy(cached, run_dir / cached.name)  # used where its key (teacher, TTA, faces) matches the run
        config_path = run_dir.parent / f"{run_id}.request.json"
        config_path.write_text(json.dumps({**config, **overrides}, indent=2))
        cmd = [sys.executable, "-m", "fer", "train", "--config", str(config_path), "--out", str(run_dir)]
        with (run_dir.parent / f"{run_id}.log").open("w") as log:  # the child keeps its own handle
            procs[run_id] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    return procs


def wait_all(procs: dict[str, subprocess.Popen], deadline: float) -> dict[str, int | None]:
    """Exit codes; a process still running at `deadline` is stopped (None)."""
    codes = {}
    for run_id, proc in procs.items():
        try:
            codes[run_id] = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
            codes[run_id] = None
    return codes


def last_epoch_seconds(run_dir: Path) -> float:
    """Seconds of the last epoch in `run_dir`'s history.csv (the first one includes compiling)."""
    return float(pd.read_csv(run_dir / "history.csv")["seconds"].iloc[-1])


def log_tail(out: Path, run_id: str) -> str:
    """The end of a run's training log (written beside its run folder by `launch`)."""
    return (out / f"{run_id}.log").read_text()[-3000:]


def pack(run_dir: Path, dest: Path) -> Path:
    """`run_dir` as `dest/<run_id>.tar`: its small files, and final.keras without optimizer state."""
    from fer.release import strip_optimizer

    tar_path = dest / f"{run_dir.name}.tar"
    with tarfile.open(tar_path, "w") as tar, tempfile.TemporaryDirectory() as tmp:
        for name in ("config.json", "history.csv", "summary.json", "train_metrics.json", "learning_curves.png"):
            if (run_dir / name).exists():
                tar.add(run_dir / name, arcname=f"{run_dir.name}/{name}")
        log = run_dir.parent / f"{run_dir.name}.log"
        if log.exists():
            tar.add(log, arcname=f"{run_dir.name}/train.log")
        if (run_dir / "final.keras").exists():
            light = Path(tmp) / "final.keras"
            strip_optimizer(run_dir / "final.keras", light)
            tar.add(light, arcname=f"{run_dir.name}/final.keras")
    return tar_path


def probe(configs: list[tuple[str, dict]], out: Path, args, start: float, report: dict) -> tuple[int, float]:
    """Run every run for args.probe_epochs side by side; (epochs that fit what is left, seconds left)."""
    probe_start = time.monotonic()
    probe_runs = launch(configs, out / "_probe", args.teacher_cache, epochs=args.probe_epochs, warmup_epochs=0)
    codes = wait_all(probe_runs, start + args.budget)
    failed = {r: c for r, c in codes.items() if c != 0}
    if failed:
        for run_id in failed:
            print(f"probe of {run_id} failed ({failed[run_id]}):", flush=True)
            print(log_tail(out / "_probe", run_id), flush=True)
        raise SystemExit("probe failed: nothing trained")
    probe_wall = time.monotonic() - probe_start
    per_epoch = max(last_epoch_seconds(out / "_probe" / r) for r, _ in configs)
    overhead = probe_wall - args.probe_epochs * per_epoch  # data loading, compiling, saving
    left = start + args.budget - time.monotonic()
    epochs = fit_epochs(left, per_epoch, overhead, args.max_epochs)
    report.update(probe_s=round(probe_wall, 1), seconds_per_epoch=per_epoch, overhead_s=round(overhead, 1))
    print(
        f"probe: {per_epoch:.1f} s/epoch with all {len(configs)} running, {overhead:.0f} s start-up; "
        f"{left:.0f} s left -> {epochs} epochs each",
        flush=True,
    )
    return epochs, left


def device_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        )
        return out.stdout.strip() or "no GPU"
    except OSError:
        return "no GPU (nvidia-smi not found)"


def main() -> None:
    start = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="sweep YAML (base + runs)")
    parser.add_argument("--budget", type=float, required=True, help="seconds from now by which training must end")
    parser.add_argument("--out", default="runs/parallel", help="folder for the run folders")
    parser.add_argument("--epochs", type=int, help="train this many epochs, no probe (the time per epoch is known)")
    parser.add_argument("--probe-epochs", type=int, default=2, help="epochs of the probe (its last one is timed)")
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--pack", help="also write each finished run as <run_id>.tar here, plus train_parallel.json")
    parser.add_argument("--data", help="FER-2013 for every run (default: $FER2013_DIR, else data/fer2013)")
    parser.add_argument(
        "--teacher-cache",
        help="folder of teacher_*.npz from a CPU run of the same teachers (distillation without the teacher files)",
    )
    args = parser.parse_args()
    configs = train_configs(load_yaml(Path(args.sweep).read_text()) or {}, args.data)
    out = Path(args.out)
    # Each process would otherwise pre-allocate 75% of the GPU's memory for itself.
    os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / len(configs):.2f}")
    report = {"device": device_name(), "runs": [r for r, _ in configs], "budget_s": args.budget}
    print(f"{len(configs)} runs side by side on {report['device']}; budget {args.budget:.0f} s", flush=True)

    if args.epochs:
        epochs, left = args.epochs, args.budget
    else:
        epochs, left = probe(configs, out, args, start, report)
    report["epochs"] = epochs
    if epochs <= max(c.get("warmup_epochs", 0) for _, c in configs):
        raise SystemExit("too few epochs fit the budget left for the runs' warm-up")

    codes = wait_all(launch(configs, out, args.teacher_cache, epochs=epochs), start + args.budget + 0.15 * left)
    report["status"] = {
        r: ("finished" if c == 0 else f"failed ({c})" if c is not None else "stopped") for r, c in codes.items()
    }
    report["wall_s"] = round(time.monotonic() - start, 1)
    for run_id, status in report["status"].items():
        print(f"{run_id}: {status}", flush=True)
        if status != "finished":
            print(log_tail(out, run_id), flush=True)
    if args.pack:
        dest = Path(args.pack)
        dest.mkdir(parents=True, exist_ok=True)
        for run_id, _ in configs:
            print(f"packed {pack(out / run_id, dest)}", flush=True)
        (dest / "train_parallel.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
