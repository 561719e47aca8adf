import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import require

from fer.cli import main
from fer.data.classes import EMOTIONS


def test_evaluate_json(trained, sample_root, capsys):
    model = trained[0].run_dir / "best.keras"
    assert main(["evaluate", "--model", str(model), "--data", str(sample_root), "--split", "test", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "n", "per_class"} <= set(data)
    assert data["n"] == 56 and data["tta"] is False
    from fer.analysis.evaluation import evaluate
    from fer.data.loading import load_split

    faces = load_split(sample_root, "test")
    assert data["accuracy"] == round(evaluate(trained[0].model, faces.images, faces.labels).accuracy, 5)


def test_evaluate_accepts_a_folder_of_emotion_folders_and_tta(trained, sample_root, capsys, monkeypatch):
    import fer.analysis.evaluation
    import fer.analysis.probabilities
    from fer.data.loading import load_split

    model = trained[0].run_dir / "best.keras"
    assert main(["evaluate", "--model", str(model), "--data", str(sample_root / "test"), "--tta"]) == 0
    out = capsys.readouterr().out
    assert "n=56" in out and "TTA=shift" in out and "Confusion matrix" in out and "surprise" in out

    # The scores come from averaged views, not just the label: count the views the network sees.
    seen = []
    views = fer.analysis.probabilities.tta_views
    monkeypatch.setattr(
        fer.analysis.probabilities, "tta_views", lambda x, scheme: seen.append(scheme) or views(x, scheme)
    )
    assert main(["evaluate", "--model", str(model), "--data", str(sample_root), "--tta", "shift", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert seen == ["shift"] and data["tta"] == "shift"
    faces = load_split(sample_root, "test")
    expected = fer.analysis.evaluation.evaluate(trained[0].model, faces.images, faces.labels, tta="shift")
    assert data["confusion"] == expected.confusion.to_numpy().tolist()


def test_predict_folder_prints_one_line_per_image(trained, sample_root, capsys):
    model = trained[0].run_dir / "best.keras"
    assert main(["predict", str(sample_root / "test" / "happy"), "--model", str(model), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 8 and all(r["path"].endswith(".png") for r in rows)
    # 48x48 images are face crops: predicted whole, no detection (which finds no cartoon face).
    assert all(r["emotion"] in EMOTIONS and r["box"] is None and r["source"] == "crop" for r in rows)


def test_errors_are_reported_without_a_traceback(tmp_path, capsys, sample_root):
    assert main(["evaluate", "--model", str(tmp_path / "m.keras"), "--data", str(sample_root)]) == 2
    assert "m.keras: model file not found" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run")]) == 2
    assert "missing: not found" in capsys.readouterr().err
    assert main(["train", "--set", "nonsense=1"]) == 2  # a usage error: exit 2 and one line, like argparse's
    assert capsys.readouterr().err.startswith("error: --set: unknown option 'nonsense'")


def test_sample_command_writes_the_folder_layout(tmp_path):
    assert main(["sample", "--out", str(tmp_path / "s"), "--n-train", "2", "--n-test", "1"]) == 0
    assert len(list((tmp_path / "s" / "train").rglob("*.png"))) == 14
    assert len(list((tmp_path / "s" / "test" / "fear").glob("*.png"))) == 1


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "fer", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "train" in out.stdout and "evaluate" in out.stdout


def test_help_loads_no_opencv_onnx_runtime_or_keras():
    """--help answers at once: the subcommands import their heavy modules when they run."""
    code = (
        "import sys; from fer.cli import build_parser; build_parser()\n"
        "print(sorted({'cv2', 'onnxruntime', 'keras', 'tensorflow', 'pandas'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_train_options_read_scientific_notation_and_a_runs_own_config(tmp_path):
    from dataclasses import asdict

    from fer.cli import build_parser
    from fer.cli.training import _train_options
    from fer.modeling.config import TrainConfig
    from fer.modeling.recipes import RECIPES

    # A run's config.json fed back with --config must give back exactly its settings; PyYAML's
    # YAML 1.1 rules would read 1e-06 as a string and the resume check would refuse the run.
    saved = asdict(TrainConfig(min_learning_rate=1e-6, weight_decay=5e-4))
    (tmp_path / "config.json").write_text(json.dumps(saved, indent=2))
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "config.json")])
    assert _train_options(args) == saved

    args = build_parser().parse_args(["train", "--set", "learning_rate=1e-4", "--set", "augmentation.erasing=5e-1"])
    options = _train_options(args)
    assert options["learning_rate"] == 1e-4 and options["augmentation"]["erasing"] == 0.5

    args = build_parser().parse_args(["train", "--init-weights", "models/fer_emotion.keras", "--model", "resnet"])
    assert _train_options(args) == {**RECIPES["shipped"], "model": "resnet", "init_weights": "models/fer_emotion.keras"}
    args = build_parser().parse_args(["train", "--recipe", "seed", "--epochs", "3"])
    assert _train_options(args) == {"epochs": 3}  # the seed baseline: TrainConfig's defaults
    # Any dict option takes dotted keys (the README's demo setting), merged over the recipe's value.
    args = build_parser().parse_args(
        ["train", "--set", "model_options.bn_momentum=0.9", "--set", "augmentation.zoom=0"]
    )
    options = _train_options(args)
    assert options["model_options"] == {"bn_momentum": 0.9}
    assert options["augmentation"] == {**RECIPES["shipped"]["augmentation"], "zoom": 0}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--set", "epochs=abc"], "epochs must be int, got 'abc'"),
        (["train", "--set", "nope=1"], "unknown option 'nope'"),
        (["train", "--set", "epochs"], "expects KEY=VALUE"),
        (["train", "--model", "vgg_lit"], "Unknown model 'vgg_lit'"),
        (["train", "--set", "model_options.bn_momentun=0.9"], "not options of model 'vgg_lite'"),
        (["train", "--config", "no/such.yaml"], "no such options file"),
        (["sweep", "no/such.yaml"], "no such sweep file"),
    ],
)
def test_usage_errors_exit_2_with_one_error_line_and_write_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists()  # a refused setting leaves no half-made run folder behind


def _folder_with_bad_files(sample_root, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    goods = sorted((sample_root / "test" / "happy").glob("*.png"))[:2]
    for good in goods:
        (folder / good.name).write_bytes(good.read_bytes())
    (folder / "empty.png").write_bytes(b"")
    (folder / "corrupt.jpg").write_text("this is not a JPEG")
    return folder, [g.name for g in goods]


def test_predict_goes_past_bad_files_and_says_which_failed(trained, sample_root, tmp_path, capsys):
    folder, goods = _folder_with_bad_files(sample_root, tmp_path)
    model, out = trained[0].run_dir / "best.keras", tmp_path / "out"
    assert main(["predict", str(folder), str(tmp_path / "nowhere.png"), "--model", str(model), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "5 input(s): 2 predicted, 3 failed" in captured.err
    for name in ("empty.png", "corrupt.jpg", "nowhere.png"):
        assert f"error: {tmp_path}" in captured.err and name in captured.err
    table = pd.read_csv(out / "predictions.csv")
    by_name = {Path(p).name: row for p, row in zip(table["path"], table.to_dict("records"))}
    assert set(by_name) == {*goods, "empty.png", "corrupt.jpg", "nowhere.png"}
    assert all(by_name[g]["status"] == "ok" and by_name[g]["emotion"] in EMOTIONS for g in goods)
    assert all(by_name[b]["status"] == "error" and b in by_name[b]["error"] for b in ("empty.png", "corrupt.jpg"))
    assert len(json.loads((out / "predictions.json").read_text())) == 5
    assert not list(out.glob(".*.tmp"))  # written atomically: no temporary files left behind


def test_predict_exit_codes_and_inputs_checked_before_the_model_loads(trained, sample_root, tmp_path, monkeypatch):
    import fer.inference.options

    good = next((sample_root / "test" / "sad").glob("*.png"))
    assert main(["predict", str(good), "--model", str(trained[0].run_dir / "best.keras")]) == 0

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model loaded before the inputs were checked")

    monkeypatch.setattr(fer.inference.options, "resolve_model", must_not_load)
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty")]) == 2  # nothing to predict: a usage error
    assert main(["predict", str(tmp_path / "missing.jpg")]) == 2


def test_evaluate_defaults_to_the_shipped_model_and_the_data_location(trained, sample_root, monkeypatch, capsys):
    model = trained[0].run_dir / "best.keras"
    monkeypatch.setenv("FER_MODEL", str(model))
    monkeypatch.setenv("FER2013_DIR", str(sample_root))
    assert main(["evaluate", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n"] == 56 and data["without_train_duplicates"]["n_removed"] == 0
    assert main(["evaluate"]) == 0
    out = capsys.readouterr().out
    assert f"model: {model}" in out and f"{sample_root} [test]" in out


def test_data_location_resolution_order(monkeypatch, tmp_path):
    from fer.data.loading import data_dir

    monkeypatch.delenv("FER2013_DIR", raising=False)
    assert data_dir() == Path(__file__).resolve().parents[1] / "data" / "fer2013"  # the checkout's data/
    monkeypatch.setenv("FER2013_DIR", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_a_cli_call_prints_no_library_log_lines(trained, sample_root):
    model = trained[0].run_dir / "best.keras"
    cmd = [sys.executable, "-m", "fer", "evaluate", "--model", str(model), "--data", str(sample_root), "--json"]
    quiet = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["n"] == 56
    assert quiet.stderr == "", quiet.stderr
    loud = subprocess.run(cmd[:3] + ["--verbose"] + cmd[3:], capture_output=True, text=True, timeout=300)
    assert loud.returncode == 0
    if platform.machine() == "x86_64":  # TensorFlow's oneDNN line exists there: it is hidden, not absent
        assert "oneDNN" in loud.stderr


def test_jupyter_is_installed_with_the_project():
    import importlib

    assert importlib.import_module("jupyterlab").__version__
    jupyter = Path(sys.executable).with_name("jupyter")
    assert subprocess.run([str(jupyter), "lab", "--version"], capture_output=True, timeout=120).returncode == 0


def test_main_job_shows_the_models_result_then_a_labelled_demonstration(trained, sample_root, tmp_path, capsys):
    model = trained[0].run_dir / "best.keras"
    args = [
        "run",
        "--demo",
        "--out",
        str(tmp_path / "run"),
        "-p",
        f"data_dir={sample_root}",
        "-p",
        f"model_path={model}",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    result, demo = out.index(f"Model {model}: test (dataset labels) n=56"), out.index("DEMONSTRATION training run")
    assert result < demo  # the model's own result comes first
    assert "NOT the project's result" in out
    assert "Full recipe: python -m fer sweep sweeps/gpu_lease.yaml --index 1" in out
    assert (tmp_path / "run" / "eda" / "eda.json").is_file() and (tmp_path / "run" / "demo" / "train").is_dir()
    assert not (tmp_path / "run" / "train").exists()  # the default run trains nothing but the demo


def test_bad_files_are_told_before_the_model_loads_and_ctrl_c_keeps_what_is_done(
    trained, sample_root, tmp_path, monkeypatch, capsys
):
    import fer.cli.predicting
    import fer.inference.options

    folder, goods = _folder_with_bad_files(sample_root, tmp_path)
    real_resolve = fer.inference.options.resolve_model

    told_first = []

    def resolve_after_the_check(model, **options):
        if not told_first:  # the first call is the command's own model load
            told_first.append("corrupt.jpg" in capsys.readouterr().err)  # told before TensorFlow and the model
        return real_resolve(model, **options)

    monkeypatch.setattr(fer.inference.options, "resolve_model", resolve_after_the_check)
    real_images = fer.cli.predicting._predict_images

    def interrupted_after_one_image(*args, **kwargs):
        for done, rows in enumerate(real_images(*args, **kwargs)):  # rows of one image at a time, as they are done
            if done == 1:
                raise KeyboardInterrupt
            yield rows

    monkeypatch.setattr(fer.cli.predicting, "_predict_images", interrupted_after_one_image)
    out = tmp_path / "out"
    model = str(trained[0].run_dir / "best.keras")
    code = main(["predict", str(folder), "--model", model, "--out", str(out), "--chunk", "1"])
    assert code == 130 and "interrupted" in capsys.readouterr().err and told_first == [True]
    table = pd.read_csv(out / "predictions.csv")  # written for what was done, no traceback
    assert (table["status"] == "ok").sum() == 1 and (table["status"] == "error").sum() == 2


def test_predict_on_two_folders_keeps_both_annotated_images(trained, tmp_path):
    from PIL import Image

    astronaut = require("skimage.data").astronaut()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(astronaut).save(tmp_path / name / "face.jpg")
    out = tmp_path / "out"
    model = str(trained[0].run_dir / "best.keras")
    assert main(["predict", str(tmp_path / "a"), str(tmp_path / "b"), "--model", model, "--out", str(out)]) == 0
    # A JPEG photo's annotated copy is a JPEG (a PNG of a photo is slow to write and several times larger).
    for name in ("a", "b"):
        with Image.open(out / name / "face_annotated.jpg") as annotated:
            assert annotated.format == "JPEG" and annotated.size == (512, 512)


def test_evaluate_names_a_folder_that_is_no_emotion(trained, sample_root, tmp_path, capsys):
    import shutil

    shutil.copytree(sample_root / "test", tmp_path / "faces")
    (tmp_path / "faces" / "hapy").mkdir()
    model = str(trained[0].run_dir / "best.keras")
    assert main(["evaluate", "--model", model, "--data", str(tmp_path / "faces"), "--no-dedup"]) == 2
    assert "unknown class folder(s) ['hapy']" in capsys.readouterr().err


def test_sweeps_find_the_data_like_every_command_and_fail_loudly(sample_root, tmp_path, monkeypatch, capsys):
    """No data_dir in the spec: $FER2013_DIR is used; a run that fails makes the sweep exit 1."""
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nsteps: [train]\nruns: [{run_id: bad, optimizer: rmsprop, epochs: 1}]\n")
    monkeypatch.setenv("FER2013_DIR", str(sample_root))
    code = main(["sweep", str(spec), "--out", str(tmp_path / "runs"), "--table", str(tmp_path / "runs.csv")])
    assert code == 1 and "1 of 1 run(s) failed" in capsys.readouterr().err
    row = pd.read_csv(tmp_path / "runs.csv").iloc[0]
    assert row["data_dir"] == str(sample_root) and "optimizer must be adam" in row["error"]
    # No dataset anywhere: each run says where it looked, instead of silently using generated faces.
    monkeypatch.setenv("FER2013_DIR", str(tmp_path / "nowhere"))
    spec.write_text("name: t\nsteps: [train]\nruns: [{run_id: r}]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "runs"), "--table", str(tmp_path / "t.csv")]) == 1
    table = pd.read_csv(tmp_path / "t.csv")  # one table of every sweep's runs under --out
    assert "nowhere: not found" in table.set_index("sweep").loc["t", "error"]


def test_a_missing_optional_package_is_one_line_that_says_what_to_install(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if the onnx extra were not installed
    assert main(["export", "--format", "onnx", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == "error: ONNX export needs the tf2onnx package: pip install -e '.[onnx]'\n"
    monkeypatch.setitem(sys.modules, "mtcnn", None)
    monkeypatch.setattr("fer.inference.detectors.registry._idle", {})  # no MTCNN made earlier in this session
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(photo)
    assert main(["predict", str(photo), "--detector", "mtcnn"]) == 2
    assert "detector='mtcnn' needs the mtcnn package: pip install mtcnn" in capsys.readouterr().err


@pytest.mark.slow
def test_without_the_data_the_main_job_labels_its_numbers_as_a_smoke_run(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FER2013_DIR", str(tmp_path / "no-data-here"))
    model = trained[0].run_dir / "best.keras"
    assert main(["run", "--steps", "evaluate", "--out", str(tmp_path / "run"), "-p", f"model_path={model}"]) == 0
    out = capsys.readouterr().out
    assert "SMOKE RUN: FER-2013 not found" in out
    headline = next(line for line in out.splitlines() if "accuracy=" in line)
    assert headline.startswith("SMOKE RUN, synthetic faces (says nothing about FER-2013)")


def _subcommand(parser, name: str):
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {a.dest: a for a in commands.choices[name]._actions}


def test_the_clis_choices_come_from_the_librarys_registries(monkeypatch):
    from fer.analysis.probabilities import LABEL_SETS, TTA_SCHEMES
    from fer.cli import build_parser
    from fer.inference.detectors import registry
    from fer.inference.models import ENGINES
    from fer.modeling.config import DISTRIBUTE, OPTIMIZERS, VALIDATIONS

    predict = _subcommand(build_parser(), "predict")
    assert predict["detector"].choices == list(registry.DETECTORS)
    assert predict["detector"].default == registry.DEFAULT_DETECTOR
    assert list(predict["labels"].choices) == list(LABEL_SETS)
    assert list(predict["engine"].choices) == [*ENGINES, "ray"] and list(predict["tta"].choices) == list(TTA_SCHEMES)
    train = _subcommand(build_parser(), "train")
    assert (train["optimizer"].choices, train["validation"].choices) == (OPTIMIZERS, VALIDATIONS)
    assert train["distribute"].choices == DISTRIBUTE
    # A detector registered in the library is offered by the CLI with no other change (and described in --help).
    extra = registry.DetectorInfo("fer.inference.detectors.haar", "HaarDetector", "a test entry", landmarks=False)
    monkeypatch.setitem(registry.DETECTORS, "haar-test", extra)
    predict = _subcommand(build_parser(), "predict")
    assert "haar-test" in predict["detector"].choices and "a test entry" in predict["detector"].help


def test_the_detector_docs_list_the_registry():
    from fer.inference.detectors.registry import DETECTORS

    page = (Path(__file__).resolve().parents[1] / "docs" / "detection.md").read_text()
    section = page.split("\n## Detectors\n")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(DETECTORS)
    for row, info in zip(rows, DETECTORS.values()):
        assert info.about in row
