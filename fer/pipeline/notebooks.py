"""Running the notebooks headless with papermill: one pipeline run of the steps eda -> train -> evaluate.

A run executes some of the steps into `reports/runs/<run-id>/`: the executed notebooks, their figures, the model
(`train/best.keras`) and `metrics.json`. Parameters form one flat dict; each notebook receives the ones its
`parameters` cell declares, and a name no notebook declares is an error (typos don't pass silently).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from fer.paths import DATA_DIR, NOTEBOOKS_DIR, REPORTS_DIR, STEPS

NOTEBOOKS = NOTEBOOKS_DIR
PATH_PARAMS = ("data_dir", "output_dir", "model_path", "teacher", "ferplus_teacher", "init_weights", "votes")


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

    sample = DATA_DIR / "sample"
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
    run_dir = Path(run_dir or REPORTS_DIR / "runs" / time.strftime("%Y%m%d-%H%M%S")).resolve()
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
