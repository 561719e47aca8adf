"""Running the notebooks headless with papermill: one pipeline run, or a sweep of many.

A run executes some of the steps eda -> train -> evaluate into `reports/runs/<run-id>/`:
the executed notebooks, their figures, the model (`train/best.keras`) and `metrics.json`.
Parameters form one flat dict; each notebook receives the ones its `parameters` cell
declares, and a name no notebook declares is an error (typos don't pass silently).

A sweep (YAML) expands into runs. Each finished or failed run appends a row to a runs
table (`reports/runs.csv`) with its parameters, status, error and metrics, and a comparison
figure is redrawn. A failing run is recorded with its error while the others go ahead;
re-running a sweep skips the runs that already finished.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
STEPS = {"eda": "01_eda.ipynb", "train": "02_train.ipynb", "evaluate": "03_evaluate.ipynb", "faces": "04_faces.ipynb"}
PATH_PARAMS = ("data_dir", "output_dir", "model_path", "teacher", "init_weights", "votes")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but reading `1e-4` as a float (YAML 1.2 and JSON do; PyYAML's
    YAML 1.1 rules demand `1.0e-4` and would hand a learning rate over as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str):
    """Parse YAML (or JSON, e.g. a run's config.json) with numbers like 1e-4 read as floats."""
    return yaml.load(text, Loader=_Loader)


def notebook_parameters(step: str, notebooks_dir: Path = NOTEBOOKS) -> dict:
    """{name: default} declared in a notebook's `parameters` cell."""
    import papermill as pm

    return {name: info["default"] for name, info in pm.inspect_notebook(str(notebooks_dir / STEPS[step])).items()}


def _resolve(value, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _default_data_dir() -> tuple[str, bool]:
    """FER-2013 where `fer.data_dir()` finds it ($FER2013_DIR, else data/fer2013);
    otherwise a generated synthetic sample (a smoke run)."""
    from fer.data.loading import data_dir

    real = data_dir()
    if real.exists():
        return str(real), False
    from fer.data.sample import write_sample

    sample = REPO / "data" / "sample"
    if not (sample / "test").is_dir():
        write_sample(sample)
    return str(sample), True


def _looked_in() -> str:
    import os

    from fer.data.loading import DATA_ENV, data_dir

    return f"${DATA_ENV}={os.environ[DATA_ENV]}" if os.environ.get(DATA_ENV) else str(data_dir())


def kernel_manager_class():
    """The kernel manager papermill starts kernels with: CurveZMQ-encrypted where pyzmq supports it, and quiet.

    ipykernel >= 7.3 warns on every start of a kernel bound over plain TCP ("Kernel is running
    over TCP without encryption ..."); asking the manager to provision Curve keys is the fix
    that ipykernel's message names. Without libsodium in pyzmq, the plain manager is used.
    """
    import os

    import zmq
    from jupyter_client.manager import AsyncKernelManager

    from fer.quiet import QUIET_KERNEL_ENV

    class QuietKernelManager(AsyncKernelManager):
        """Kernels that `import fer` with TensorFlow's start-up lines kept off stderr (our runs print their own)."""

        def __init__(self, **kwargs):
            if zmq.has("curve"):
                kwargs.setdefault("transport_encryption", "auto")
            super().__init__(**kwargs)

        async def _async_pre_start_kernel(self, **kw):
            kw["env"] = {**(kw.get("env") or os.environ), QUIET_KERNEL_ENV: "1"}
            return await super()._async_pre_start_kernel(**kw)

    return QuietKernelManager


def check_parameters(params: dict, steps, notebooks_dir: Path = NOTEBOOKS) -> dict[str, dict]:
    """Raise ValueError for unknown steps or parameters; return each step's declared parameters."""
    if not notebooks_dir.is_dir():
        from fer.errors import CheckoutError

        raise CheckoutError(
            f"{notebooks_dir}: the notebooks live in the repository checkout, not in an installed package: "
            "clone the repository and run `make run` there (or pass notebooks_dir)"
        )
    unknown_steps = [s for s in steps if s not in STEPS]
    if unknown_steps:
        raise ValueError(f"Unknown step(s) {unknown_steps}; choose from {list(STEPS)}")
    declared = {step: notebook_parameters(step, notebooks_dir) for step in steps}
    # output_dir is per step; model_path comes from the train step when there is one.
    known = set().union(*declared.values()) - {"output_dir"} - ({"model_path"} if "train" in steps else set())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"Unknown parameter(s) {unknown} for steps {list(steps)}; known: {sorted(known)}")
    return declared


def run_pipeline(
    params: dict | None = None,
    run_dir: str | Path | None = None,
    steps=("eda", "train", "evaluate"),
    notebooks_dir: Path = NOTEBOOKS,
    log_output: bool = False,
) -> dict:
    """Execute `steps` with `params` into `run_dir`; return the evaluation metrics (or {}).

    Relative paths in params are taken relative to the current directory. Raises
    papermill's PapermillExecutionError when a notebook fails; the executed notebook
    is still written, showing the failing cell.
    """
    import papermill as pm

    params = dict(params or {})
    declared = check_parameters(params, steps, notebooks_dir)

    smoke = False
    if "data_dir" not in params:
        params["data_dir"], smoke = _default_data_dir()
    if smoke and "train" in steps:
        # 420 synthetic faces make only a few batches per epoch: smaller batches and faster
        # BatchNorm statistics let two epochs show that the pipeline learns.
        params.setdefault("batch_size", 16)
        params.setdefault("model_options", {"bn_momentum": 0.8})
    cwd = Path.cwd()
    params = {k: _resolve(v, cwd) if k in PATH_PARAMS and v not in (None, "auto") else v for k, v in params.items()}
    run_dir = Path(run_dir or REPO / "reports" / "runs" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "params.json").write_text(json.dumps({**params, "steps": list(steps), "smoke_run": smoke}, indent=2))
    if smoke:
        print(
            f"SMOKE RUN: FER-2013 not found (looked in {_looked_in()}), "
            f"using the synthetic sample at {params['data_dir']}. "
            "Its numbers say nothing about FER-2013 (see data/README.md)."
        )

    model_path = run_dir / "train" / f"{params.get('checkpoint', 'best')}.keras"
    for step in steps:
        step_params = {k: v for k, v in params.items() if k in declared[step]}
        step_params["output_dir"] = str(run_dir / step)
        if step == "train":
            step_params.setdefault("keras_verbose", 2)  # one line per epoch: readable in a saved notebook
        if step in ("evaluate", "faces") and "train" in steps:
            step_params["model_path"] = str(model_path)
        print(f"[{run_dir.name}] {step}: {STEPS[step]}")
        pm.execute_notebook(
            str(notebooks_dir / STEPS[step]),
            str(run_dir / STEPS[step]),
            parameters=step_params,
            cwd=str(notebooks_dir),
            kernel_name="python3",
            progress_bar=False,
            log_output=log_output,
            kernel_manager_class=kernel_manager_class(),
            # The outputs are saved by then; a graceful stop of a kernel busy with TensorFlow threads
            # ends in SIGINT and an "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel" line.
            shutdown_kernel="immediate",
        )
    metrics_path = run_dir / "evaluate" / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    if metrics:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


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


RECORD = "result.json"  # each run's own row of the runs table, in its run folder


def read_runs_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["sweep", "run_id", "status"])


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


def run_sweep(
    spec: dict | str | Path,
    runs_root: str | Path = REPO / "reports" / "runs",
    table_path: str | Path = REPO / "reports" / "runs.csv",
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
