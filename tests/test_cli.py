import json
import subprocess
import sys

import pytest

from fer.cli import main
from fer.data import EMOTIONS


def test_evaluate_json(trained, sample_root, capsys):
    model = trained[0].run_dir / "best.keras"
    assert main(["evaluate", "--model", str(model), "--data", str(sample_root), "--split", "test", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "n", "per_class"} <= set(data)
    assert data["n"] == 56 and 0 <= data["accuracy"] <= 1 and data["tta"] is False


def test_evaluate_accepts_a_folder_of_emotion_folders_and_tta(trained, sample_root, capsys):
    model = trained[0].run_dir / "best.keras"
    assert main(["evaluate", "--model", str(model), "--data", str(sample_root / "test"), "--tta"]) == 0
    out = capsys.readouterr().out
    assert "n=56" in out and "TTA=on" in out and "Confusion matrix" in out and "surprise" in out


def test_predict_folder_prints_one_line_per_image(trained, sample_root, capsys):
    model = trained[0].run_dir / "best.keras"
    assert main(["predict", str(sample_root / "test" / "happy"), "--model", str(model), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 8 and all(r["path"].endswith(".png") for r in rows)
    # 48x48 images are face crops: predicted whole, no detection (which finds no cartoon face).
    assert all(r["emotion"] in EMOTIONS and r["box"] == [0, 0, 48, 48] for r in rows)


def test_errors_are_reported_without_a_traceback(tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path / "m.keras"), "--data", str(tmp_path)]) == 2
    assert "error: " in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run")]) == 2
    assert "missing: not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--set", "nonsense=1"])


def test_sample_command_writes_the_folder_layout(tmp_path):
    assert main(["sample", "--out", str(tmp_path / "s"), "--n-train", "2", "--n-test", "1"]) == 0
    assert len(list((tmp_path / "s" / "train").rglob("*.png"))) == 14
    assert len(list((tmp_path / "s" / "test" / "fear").glob("*.png"))) == 1


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "fer", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "train" in out.stdout and "evaluate" in out.stdout


def test_train_options_read_scientific_notation_and_a_runs_own_config(tmp_path):
    from dataclasses import asdict

    from fer.cli import _train_options, build_parser
    from fer.training import TrainConfig

    # A run's config.json fed back with --config must give back exactly its settings; PyYAML's
    # YAML 1.1 rules would read 1e-06 as a string and the resume check would refuse the run.
    saved = asdict(TrainConfig(min_learning_rate=1e-6, weight_decay=5e-4))
    (tmp_path / "config.json").write_text(json.dumps(saved, indent=2))
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "config.json")])
    assert _train_options(args) == saved

    args = build_parser().parse_args(["train", "--set", "learning_rate=1e-4", "--set", "augmentation.erasing=5e-1"])
    options = _train_options(args)
    assert options["learning_rate"] == 1e-4 and options["augmentation"]["erasing"] == 0.5
