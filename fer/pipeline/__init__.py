"""Running the project headless: notebooks by papermill, sweeps, the runs table, batch prediction on Ray Data."""

from fer.paths import STEPS
from fer.pipeline.config import load_yaml
from fer.pipeline.notebooks import NOTEBOOKS, check_parameters, kernel_manager_class, run_pipeline
from fer.pipeline.sweeps import expand_sweep, load_sweep, run_sweep, sweep_commands
from fer.pipeline.table import RECORD, build_runs_table, read_runs_table, run_id_of, summarize_runs

__all__ = [
    "NOTEBOOKS",
    "RECORD",
    "STEPS",
    "build_runs_table",
    "check_parameters",
    "expand_sweep",
    "kernel_manager_class",
    "load_sweep",
    "load_yaml",
    "read_runs_table",
    "run_id_of",
    "run_pipeline",
    "run_sweep",
    "summarize_runs",
    "sweep_commands",
]
