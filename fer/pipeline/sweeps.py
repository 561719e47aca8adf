"""Sweeps: a YAML file expanded into runs of the notebook pipeline, each recorded in the runs table.

A failing run is recorded with its error while the others go ahead; re-running a sweep skips the runs that already
finished; `--index I` runs one (a job array's task).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from pathlib import Path

import pandas as pd

from fer.paths import REPORTS_DIR
from fer.pipeline.config import load_yaml
from fer.pipeline.notebooks import NOTEBOOKS, run_pipeline
from fer.pipeline.table import RECORD, build_runs_table


def expand_sweep(spec: dict) -> list[tuple[str, dict]]:
    """[(run_id, params)] from a sweep spec.

    spec keys: `base` (params shared by all runs), `grid` (name -> list: every
    combination), `runs` (a list of param dicts, each merged over base; may hold
    `run_id`). Without grid or runs, the base alone is one run. Run ids default to a
    readable hash of the parameters, so re-running a sweep finds its finished runs.
    """
    unknown = set(spec) - {"name", "base", "grid", "runs", "steps"}
    if unknown:
        raise ValueError(f"Unknown sweep key(s) {sorted(unknown)}; expected name, base, grid, runs, steps")
    base = dict(spec.get("base") or {})
    variants: list[dict] = []
    grid = spec.get("grid") or {}
    if grid:
        names = list(grid)
        for values in itertools.product(*(grid[n] if isinstance(grid[n], list) else [grid[n]] for n in names)):
            variants.append(dict(zip(names, values)))
    variants += [dict(run) for run in spec.get("runs") or []]
    if not variants:
        variants = [{}]
    runs = []
    for variant in variants:
        run_id = variant.pop("run_id", None)
        params = {**base, **variant}
        if run_id is None:
            label = "-".join(f"{k}={v}" for k, v in variant.items() if not isinstance(v, (dict, list)))[:60]
            digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
            run_id = f"{label}-{digest}" if label else digest
        runs.append((str(run_id).replace("/", "_").replace(" ", ""), params))
    ids = [r for r, _ in runs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"Sweep has duplicate run ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    return runs


def _flatten(params: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_sweep(spec: dict | str | Path) -> dict:
    """A sweep spec from a YAML path (or the dict itself); DataError-free: a missing file is a ValueError."""
    if isinstance(spec, dict):
        return spec
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"{path}: no such sweep file (see sweeps/ for examples)")
    spec = load_yaml(path.read_text()) or {}
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: a sweep file is a YAML mapping with name, base, grid, runs, steps")
    return spec


def sweep_commands(spec_path: str | Path, data: str | None = None) -> list[str]:
    """One shell command per run of the sweep at `spec_path`: what a job array's task I runs (`--index I`)."""
    runs = expand_sweep(load_sweep(spec_path))
    extra = f" --data {data}" if data else ""
    return [f"python -m fer sweep {spec_path} --index {i}{extra}  # {run_id}" for i, (run_id, _) in enumerate(runs)]


def run_sweep(
    spec: dict | str | Path,
    runs_root: str | Path = REPORTS_DIR / "runs",
    table_path: str | Path = REPORTS_DIR / "runs.csv",
    notebooks_dir: Path = NOTEBOOKS,
    data: str | Path | None = None,
    index: int | None = None,
) -> pd.DataFrame:
    """Run every parameter set of a sweep (YAML path or dict), or only run `index`; return the runs table.

    `data`: the dataset for every run (else the spec's `data_dir`, else $FER2013_DIR, else data/fer2013;
    a sweep never falls back to the synthetic sample unless its spec names it). A failing run is recorded
    with its error and the others go ahead; a run already finished is skipped.
    """
    from fer.analysis import plots
    from fer.data.loading import data_dir

    spec = load_sweep(spec)
    name = str(spec.get("name", "sweep"))
    steps = tuple(spec.get("steps", ("train", "evaluate")))
    runs = list(enumerate(expand_sweep(spec)))
    if index is not None:
        if not 0 <= index < len(runs):
            raise ValueError(f"--index {index}: sweep {name!r} has runs 0 to {len(runs) - 1}")
        runs = [runs[index]]
    for order, (run_id, params) in runs:
        run_dir = Path(runs_root) / name / run_id
        record = run_dir / RECORD
        if (
            record.is_file()
            and json.loads(record.read_text()).get("status") == "ok"
            and (run_dir / "metrics.json").is_file()
        ):
            print(f"[{name}/{run_id}] already finished: skipped")
            continue
        params = dict(params)
        if data is not None or "data_dir" not in params:
            params["data_dir"] = str(data_dir(data))  # the one order: --data > $FER2013_DIR > data/fer2013
        start = time.perf_counter()
        row = {"sweep": name, "run_id": run_id, "order": order, "run_dir": str(run_dir), "status": "ok", "error": ""}
        try:
            if not Path(params["data_dir"]).exists():
                from fer.errors import DataError

                raise DataError(f"{params['data_dir']}: not found (pass --data, or set FER2013_DIR)")
            metrics = run_pipeline(params, run_dir, steps=steps, notebooks_dir=notebooks_dir)
        except Exception as exc:  # a failing run is recorded; the sweep goes on
            metrics = {}
            row.update(status="failed", error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}")
            print(f"[{name}/{run_id}] FAILED: {row['error']} (see {run_dir})")
        row["seconds"] = round(time.perf_counter() - start, 1)
        row.update({k: metrics.get(k) for k in ("accuracy", "macro_f1", "ece", "n")})
        row.update(_flatten(params))
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{RECORD}.tmp")
        tmp.write_text(json.dumps(row, indent=2, default=str))
        os.replace(tmp, record)
        build_runs_table(runs_root, table_path)
    table = build_runs_table(runs_root, table_path)
    latest = table[table["sweep"] == name]
    if len(latest):
        plots.save(plots.compare_runs(latest), Path(table_path).parent, f"runs_{name}")
    return table
