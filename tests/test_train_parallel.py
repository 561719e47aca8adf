"""scripts/train_parallel.py: sweep files become TrainConfigs, and the epoch count fits the time left."""

import importlib.util
from pathlib import Path

import pytest

from fer.modeling.config import TrainConfig
from fer.pipeline import load_yaml

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_parallel.py"
spec = importlib.util.spec_from_file_location("train_parallel", SCRIPT)
train_parallel = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_parallel)


def test_sweep_runs_become_train_configs():
    spec = {
        "name": "x",
        "base": {"data_dir": "data/fer2013", "model_name": "vgg_lite", "epochs": 0, "n_mistakes": 0},
        "runs": [{"run_id": "a", "seed": 1}, {"run_id": "b", "seed": 2, "teacher": "t.keras"}],
    }
    runs = train_parallel.train_configs(spec)
    assert [run_id for run_id, _ in runs] == ["a", "b"]
    assert runs[1][1] == {"data": "data/fer2013", "model": "vgg_lite", "epochs": 0, "seed": 2, "teacher": "t.keras"}


def test_the_gpu_sweep_is_valid_train_configs():
    spec = load_yaml((SCRIPT.parents[1] / "sweeps" / "gpu_members.yaml").read_text())
    for run_id, config in train_parallel.train_configs(spec):
        TrainConfig.from_dict({**config, "epochs": 100})  # raises on an unknown field or a bad value
        assert config["split_seed"] == 42, run_id  # the CPU members' validation split: eval_ensemble compares them


def test_epochs_fit_the_time_left_with_a_margin():
    # 400 s left, 50 s of start-up, 3 s an epoch: 350 / 3.3 = 106 epochs, not 116.
    assert train_parallel.fit_epochs(400, 3.0, 50, max_epochs=500) == 106
    assert train_parallel.fit_epochs(400, 3.0, 50, max_epochs=80) == 80
    assert train_parallel.fit_epochs(40, 3.0, 50, max_epochs=80) == 0  # start-up alone is over the budget
    with pytest.raises(ValueError, match="seconds_per_epoch"):
        train_parallel.fit_epochs(400, 0.0, 50, max_epochs=80)
