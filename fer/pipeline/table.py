"""The runs table: each run's own record, the table rebuilt from them, and summaries of finished run folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

RECORD = "result.json"  # each run's own row of the runs table, in its run folder


def read_runs_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["sweep", "run_id", "status"])


def build_runs_table(runs_root: str | Path, table_path: str | Path) -> pd.DataFrame:
    """The runs table rebuilt from every run's own record (<runs_root>/<sweep>/<run>/result.json).

    Each run writes only its own record, and the table is written whole by an atomic rename, so any
    number of runs (job-array tasks) may finish at once: the last rebuild sees every record.
    """
    records = sorted(Path(runs_root).glob(f"*/*/{RECORD}"))
    rows = [json.loads(p.read_text()) for p in records]
    table = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["sweep", "run_id", "status"])
    if len(table):
        table = table.sort_values(["sweep", "order", "run_id"]).reset_index(drop=True)
    table_path = Path(table_path)
    table_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = table_path.with_name(f".{table_path.name}.{os.getpid()}.tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, table_path)
    return table


def run_id_of(run_dir: str | Path) -> str:
    """A run's id from its folder: a sweep's layout is <sweep>/<run-id>/train, so a train folder
    is named by its parent."""
    run_dir = Path(run_dir)
    return run_dir.parent.name if run_dir.name == "train" else run_dir.name


def summarize_runs(run_dirs) -> pd.DataFrame:
    """One row per finished run folder (<run>/train/{config,summary,history} and <run>/metrics.json).

    Columns: run, model (with its options), params, epochs, hours (summed epoch times),
    hours_alone (epochs x the fastest epoch: the run's cost with the machine to itself, which
    compares runs that shared the CPU with other work to different degrees), img/s,
    val_accuracy (the last epoch's: with a fixed schedule that is the shipped weights' score;
    compare runs on it) and, where the run's evaluate step wrote it, test_accuracy and
    test_accuracy_dedup (PublicTest, once per finished model: report it, do not choose on it).
    """
    rows = []
    for run in map(Path, run_dirs):
        if run.name == "train":  # given the train folder itself
            run = run.parent
        train = run / "train" if (run / "train").is_dir() else run
        config = json.loads((train / "config.json").read_text())
        summary = json.loads((train / "summary.json").read_text())
        history = pd.read_csv(train / "history.csv")
        metrics_path = run / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        options = config.get("model_options") or {}
        rows.append(
            {
                "run": run_id_of(run),
                "model": config["model"] + "".join(f" {k}={v}" for k, v in options.items()),
                "params": summary.get("params"),
                "epochs": len(history),
                "hours": round(float(history["seconds"].sum()) / 3600, 3),
                "hours_alone": round(len(history) * float(history["seconds"].min()) / 3600, 3),
                "img/s": summary.get("images_per_second"),
                "val_accuracy": round(float(history["val_accuracy"].iloc[-1]), 4),
                "test_accuracy": metrics.get("accuracy"),
                "test_accuracy_dedup": (metrics.get("without_train_duplicates") or {}).get("accuracy"),
            }
        )
    return pd.DataFrame(rows)
