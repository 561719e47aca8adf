"""The notebooks: committed clean, parameterised, and executable by papermill on small data."""

import ast
import json
import os
import subprocess
import sys

import nbformat
import numpy as np
import pandas as pd
import pytest

from fer.paths import REPO
from fer.pipeline import NOTEBOOKS, STEPS, check_parameters, expand_sweep, run_pipeline, run_sweep

NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_all_pipeline_notebooks_exist():
    assert set(STEPS.values()) <= {p.name for p in NOTEBOOK_FILES}


@pytest.mark.slow
def test_faces_notebook_runs(trained, tmp_path, real_data_or_none):
    import papermill as pm

    params = {
        "model_path": str(trained[0].run_dir / "best.keras"),
        "output_dir": str(tmp_path / "faces"),
        "data_dir": str(real_data_or_none or tmp_path / "no-data"),
    }
    pm.execute_notebook(
        str(NOTEBOOKS / "04_faces.ipynb"),
        str(tmp_path / "04_faces.ipynb"),
        parameters=params,
        cwd=str(NOTEBOOKS),
        kernel_name="python3",
        progress_bar=False,
    )
    assert (tmp_path / "faces" / "annotated.png").is_file() and (tmp_path / "faces" / "crops.png").is_file()
    assert (tmp_path / "faces" / "fer_roundtrip.png").is_file() == (real_data_or_none is not None)


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_committed_notebooks_are_clean_and_parameterised(path):
    book = nbformat.read(path, as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    # Only `name = literal` assignments: derived values belong in later cells.
    for stmt in ast.parse(tagged[0].source).body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1, ast.dump(stmt)
        ast.literal_eval(stmt.value)


@pytest.mark.slow
def test_pipeline_runs_all_notebooks_on_generated_data(sample_root, tmp_path, capfd):
    run_dir = tmp_path / "run"
    params = {"data_dir": str(sample_root), "epochs": 1, "batch_size": 16, "model_name": "seed", "warmup_epochs": 0}
    metrics = run_pipeline(params, run_dir, steps=("eda", "train", "evaluate"))
    printed = capfd.readouterr()
    # The kernels' start-up and shutdown say nothing: no TCP-encryption warning, no TensorFlow lines.
    assert not any(noise in printed.err for noise in ("IPKernelApp", "absl", "oneDNN")), printed.err
    for step in ("eda", "train", "evaluate"):
        executed = nbformat.read(run_dir / STEPS[step], as_version=4)
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    for figure in (
        "eda/class_distribution",
        "eda/samples_per_emotion",
        "eda/mean_faces",
        "eda/intensity_histograms",
        "train/learning_curves",
        "evaluate/confusion_matrix",
        "evaluate/confusion_matrix_normalized",
        "evaluate/confident_mistakes",
        "evaluate/reliability_diagram",
    ):
        assert (run_dir / f"{figure}.png").stat().st_size > 5000, figure
    assert (run_dir / "train" / "best.keras").is_file()
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved == metrics and metrics["n"] == 56 and metrics["split"] == "test"
    confusion = np.array(metrics["confusion"])
    assert metrics["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum(), abs=1e-5)
    assert 0 <= metrics["macro_f1"] <= 1 and 0 <= metrics["ece"] <= 1
    assert sum(v["support"] for v in metrics["per_class"].values()) == 56
    eda = json.loads((run_dir / "eda" / "eda.json").read_text())
    assert eda["counts"]["train"]["happy"] == 20 and eda["duplicates"]["groups"] == 0


@pytest.mark.realdata
@pytest.mark.slow
def test_eda_notebook_on_a_subset_of_fer2013(real_data, tmp_path):
    run_pipeline({"data_dir": str(real_data), "max_per_class": 40}, tmp_path / "eda", steps=("eda",))
    eda = json.loads((tmp_path / "eda" / "eda" / "eda.json").read_text())
    assert eda["counts"]["train"]["disgust"] == 40 and eda["counts"]["test"]["angry"] == 40
    assert (tmp_path / "eda" / "eda" / "mean_faces.png").is_file()


def test_unknown_parameters_and_steps_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown parameter\(s\) \['epoch'\]"):
        run_pipeline({"epoch": 3}, tmp_path)
    with pytest.raises(ValueError, match=r"Unknown step\(s\) \['deploy'\]"):
        run_pipeline({}, tmp_path, steps=("deploy",))


def test_expand_sweep_grid_and_runs():
    spec = {
        "base": {"epochs": 3},
        "grid": {"learning_rate": [0.1, 0.01], "optimizer": ["adam", "sgd"]},
        "runs": [{"run_id": "extra", "model_name": "seed"}],
    }
    runs = expand_sweep(spec)
    assert len(runs) == 5
    params = [p for _, p in runs]
    assert {(p["learning_rate"], p["optimizer"]) for p in params[:4]} == {
        (0.1, "adam"),
        (0.1, "sgd"),
        (0.01, "adam"),
        (0.01, "sgd"),
    }
    assert all(p["epochs"] == 3 for p in params) and runs[4] == ("extra", {"epochs": 3, "model_name": "seed"})
    assert expand_sweep(spec) == runs  # ids are stable, so a re-run finds its finished runs
    assert runs[0][0].startswith("learning_rate=0.1-optimizer=adam-")
    with pytest.raises(ValueError, match="duplicate run ids"):
        expand_sweep({"runs": [{"run_id": "a"}, {"run_id": "a"}]})
    with pytest.raises(ValueError, match="Unknown sweep key"):
        expand_sweep({"grids": {}})


@pytest.mark.slow
def test_sweep_records_failures_goes_on_and_skips_finished_runs(sample_root, tmp_path):
    spec = {
        "name": "t",
        "base": {"data_dir": str(sample_root), "epochs": 1, "batch_size": 16, "model_name": "seed", "warmup_epochs": 0},
        "runs": [{"run_id": "bad", "optimizer": "rmsprop"}, {"run_id": "good"}],
    }
    table_path = tmp_path / "runs.csv"
    table = run_sweep(spec, runs_root=tmp_path / "runs", table_path=table_path)
    assert list(table["run_id"]) == ["bad", "good"]
    bad, good = table.iloc[0], table.iloc[1]
    assert bad["status"] == "failed" and "optimizer must be adam, adamw or sgd" in bad["error"]
    good_metrics = json.loads((tmp_path / "runs" / spec["name"] / "good" / "metrics.json").read_text())
    assert good["status"] == "ok" and good["accuracy"] == pytest.approx(good_metrics["accuracy"])
    assert pd.isna(good["optimizer"])  # notebook default
    assert bad["optimizer"] == "rmsprop" and bad["epochs"] == 1
    # The failed run's executed notebook is kept and shows where it stopped.
    failed_nb = nbformat.read(tmp_path / "runs" / "t" / "bad" / "02_train.ipynb", as_version=4)
    errors = [
        o
        for c in failed_nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert errors and errors[0]["ename"] == "ValueError"
    assert (tmp_path / "runs_t.png").is_file()

    again = run_sweep(spec, runs_root=tmp_path / "runs", table_path=table_path)
    assert list(again["run_id"]) == ["bad", "good"]  # one row per run (its last attempt): good skipped, bad retried
    assert list(again["status"]) == ["failed", "ok"]
    assert json.loads((tmp_path / "runs" / "t" / "bad" / "result.json").read_text())["status"] == "failed"


@pytest.mark.slow
def test_job_array_tasks_run_at_once_and_leave_a_whole_runs_table(sample_root, tmp_path):
    """`sweep --list` gives one command per run; two `--index` processes at once (a job array) both land."""
    spec = tmp_path / "array.yaml"
    spec.write_text(
        "name: array\nsteps: [train]\n"
        f"base: {{data_dir: {sample_root}, epochs: 1, batch_size: 16, model_name: seed, warmup_epochs: 0}}\n"
        "runs: [{run_id: one, seed: 1}, {run_id: two, seed: 2}]\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    listed = subprocess.run(
        [sys.executable, "-m", "fer", "sweep", str(spec), "--list"], capture_output=True, text=True, env=env
    )
    assert listed.returncode == 0 and listed.stdout.count("--index") == 2 and "# two" in listed.stdout
    table = tmp_path / "runs.csv"
    jobs = [
        subprocess.Popen(
            [sys.executable, "-m", "fer", "sweep", str(spec), "--index", str(i)]
            + ["--out", str(tmp_path / "runs"), "--table", str(table)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in (0, 1)
    ]
    outputs = [job.communicate(timeout=600)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs
    runs = pd.read_csv(table)
    assert list(runs["run_id"]) == ["one", "two"] and set(runs["status"]) == {"ok"}
    assert (tmp_path / "runs" / "array" / "two" / "train" / "final.keras").is_file()
    failing = subprocess.run(
        [sys.executable, "-m", "fer", "sweep", str(spec), "--index", "5", "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert failing.returncode == 2 and "has runs 0 to 1" in failing.stderr


@pytest.mark.slow
def test_publishable_runs_show_no_dataset_faces(sample_root, trained, tmp_path):
    """show_faces=False / n_mistakes=0: reports that get committed hold no copies of dataset faces."""
    model = str(trained[0].run_dir / "best.keras")
    params = {"data_dir": str(sample_root), "show_faces": False, "n_mistakes": 0, "model_path": model}
    run_pipeline(params, tmp_path / "run", steps=("eda", "evaluate"))
    written = {p.name for p in (tmp_path / "run").rglob("*.png")}
    assert written == {
        "class_distribution.png",
        "mean_faces.png",
        "intensity_histograms.png",
        "confusion_matrix.png",
        "confusion_matrix_normalized.png",
        "reliability_diagram.png",
        "saliency_by_emotion.png",  # maps over the mean of 30 faces per emotion, like mean_faces.png: no one face
    }
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["n"] == 56


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_committed_sweeps_are_valid(path):
    import yaml

    spec = yaml.safe_load(path.read_text())
    runs = expand_sweep(spec)
    assert runs
    for _, params in runs:
        check_parameters(params, spec.get("steps", ("train", "evaluate")))


def test_summarize_runs_reads_each_runs_files_and_plots_accuracy_against_hours(tmp_path):
    from fer.analysis import plots
    from fer.pipeline import summarize_runs

    def fake_run(name, model, options, seconds, val, test):
        train = tmp_path / "sweep" / name / "train"
        train.mkdir(parents=True)
        (train / "config.json").write_text(json.dumps({"model": model, "model_options": options}))
        (train / "summary.json").write_text(json.dumps({"params": 10, "images_per_second": 99.0}))
        pd.DataFrame({"seconds": seconds, "val_accuracy": val}).to_csv(train / "history.csv", index=False)
        if test is not None:
            (train.parent / "metrics.json").write_text(
                json.dumps({"accuracy": test, "without_train_duplicates": {"accuracy": test - 0.01}})
            )
        return train.parent

    a = fake_run("a", "vgg_lite", {}, [1200, 2400], [0.5, 0.6], 0.59)  # the second epoch shared the CPU
    b = fake_run("b", "vgg_lite", {"base_filters": 48}, [3600], [0.55], None)
    table = summarize_runs([a, b / "train"])  # a run folder or its train folder
    assert table["run"].tolist() == ["a", "b"]
    assert table["model"].tolist() == ["vgg_lite", "vgg_lite base_filters=48"]
    assert table["hours"].tolist() == [1.0, 1.0] and table["epochs"].tolist() == [2, 1]
    assert table["hours_alone"].tolist() == [round(2 * 1200 / 3600, 3), 1.0]
    assert table["val_accuracy"].tolist() == [0.6, 0.55]  # the last epoch's, not the best
    assert table.loc[0, "test_accuracy"] == 0.59 and table.loc[0, "test_accuracy_dedup"] == pytest.approx(0.58)
    assert pd.isna(table.loc[1, "test_accuracy"])
    plots.save(plots.accuracy_vs_hours(table), tmp_path, "budget")
    assert (tmp_path / "budget.png").stat().st_size > 0


def test_notebooks_run_by_hand_write_only_git_ignored_scratch():
    """A notebook opened and run with its defaults writes under reports/runs/, which git ignores."""
    for step in STEPS:
        output_dir = notebook_parameters_of(step)["output_dir"]
        assert output_dir.startswith('"../reports/runs/'), (step, output_dir)
    assert "reports/runs/" in (REPO / ".gitignore").read_text().split()


def notebook_parameters_of(step: str) -> dict:
    import papermill as pm

    return {k: v["default"] for k, v in pm.inspect_notebook(str(NOTEBOOKS / STEPS[step])).items()}
