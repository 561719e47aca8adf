import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest

from fer.analysis.evaluation import evaluate
from fer.data.classes import EMOTIONS
from fer.inference.models import load_model
from fer.inference.predict import predict_crop
from fer.modeling.checkpoints import EpochBackup
from fer.modeling.config import TrainConfig
from fer.modeling.training import train


def test_end_to_end_train_save_reload_evaluate_predict(trained, tmp_path):
    result, _, test_faces = trained
    run = result.run_dir
    for name in ("config.json", "history.csv", "best.keras", "final.keras", "summary.json"):
        assert (run / name).is_file(), name
    assert not (run / "backup").exists()  # removed once training finished
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "seed" and config["class_weighting"] is True and config["augmentation"]["rotation"] == 30
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"} <= set(history.columns)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_done"] == 1 and summary["images_per_second"] > 0

    reloaded = load_model(run / "best.keras")  # safe_mode=True inside
    x = test_faces.images[:5, ..., None].astype("float32")
    assert np.allclose(reloaded.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=1e-5)
    scores = evaluate(reloaded, test_faces.images, test_faces.labels)
    direct = reloaded.predict(test_faces.images[..., None].astype("float32"), verbose=0).argmax(axis=1)
    assert scores.n == 70 and scores.accuracy == pytest.approx(np.mean(direct == test_faces.labels))
    pred = predict_crop(test_faces.images[0], model=reloaded)
    assert pred.emotion in EMOTIONS and sum(pred.probabilities.values()) == pytest.approx(1, abs=1e-4)


def test_training_learns_the_synthetic_classes(tmp_path):
    """Guards against silently broken wiring (labels shuffled apart from images, no gradient, ...)."""
    from fer.data.sample import make_sample

    result = train(
        out_dir=tmp_path / "run",
        train_faces=make_sample(60, seed=0),
        val_faces=make_sample(15, seed=1),
        model="vgg_lite",
        model_options={"bn_momentum": 0.8},  # few steps: let BatchNorm statistics catch up
        epochs=5,
        batch_size=32,
        augmentation={"rotation": 0.0, "flip": False},
        verbose=0,
    )
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0] * 0.6
    test = make_sample(15, seed=2)
    assert evaluate(result.model, test.images, test.labels).accuracy > 0.6  # chance is 0.14


def test_finished_run_is_returned_without_training_and_changed_settings_are_refused(trained):
    result, train_faces, test_faces = trained
    config = json.loads((result.run_dir / "config.json").read_text())
    mtime = (result.run_dir / "best.keras").stat().st_mtime
    again = train(config, out_dir=result.run_dir, train_faces=train_faces, val_faces=test_faces, verbose=0)
    assert (result.run_dir / "best.keras").stat().st_mtime == mtime
    assert again.summary == result.summary
    with pytest.raises(ValueError, match="different settings \\(learning_rate\\)"):
        train({**config, "learning_rate": 0.5}, out_dir=result.run_dir, train_faces=train_faces, verbose=0)


def test_init_weights_starts_a_run_from_a_trained_models_weights(trained, tmp_path):
    result, train_faces, test_faces = trained
    source = load_model(result.run_dir / "final.keras")
    # Learning rate 0: no step moves a trainable weight, so a run ends where it started.
    still = dict(
        train_faces=train_faces, val_faces=test_faces, model="seed", epochs=1, batch_size=32, verbose=0,
        optimizer="sgd", learning_rate=0.0, checkpoint="final",
    )  # fmt: skip
    init = str(result.run_dir / "final.keras")
    warm = train(out_dir=tmp_path / "warm", init_weights=init, **still)
    ours, theirs = warm.model.trainable_weights, source.trainable_weights
    assert len(ours) == len(theirs)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(ours, theirs))
    assert json.loads((warm.run_dir / "config.json").read_text())["init_weights"] == init
    # The same run from scratch starts elsewhere: the equality above is the init's doing.
    cold = train(out_dir=tmp_path / "cold", **still)
    assert not np.array_equal(cold.model.trainable_weights[0].numpy(), theirs[0].numpy())


def test_init_weights_of_another_architecture_or_a_missing_file_fail_before_the_run_is_written(trained, tmp_path):
    from fer.errors import ModelError

    result, train_faces, test_faces = trained
    common = dict(train_faces=train_faces, val_faces=test_faces, epochs=1, batch_size=32, verbose=0)
    with pytest.raises(ValueError, match="do not fit model='vgg_lite'.*same architecture"):
        train(out_dir=tmp_path / "a", model="vgg_lite", init_weights=str(result.run_dir / "final.keras"), **common)
    with pytest.raises(ModelError, match="nowhere.keras"):
        train(out_dir=tmp_path / "b", model="seed", init_weights=str(tmp_path / "nowhere.keras"), **common)
    # Nothing was written that would refuse the corrected re-run as "a run with different settings".
    assert not (tmp_path / "a" / "config.json").exists() and not (tmp_path / "b" / "config.json").exists()


def test_config_validation():
    with pytest.raises(ValueError, match="Unknown training option"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="optimizer must be"):
        TrainConfig(optimizer="rmsprop").validate()
    with pytest.raises(ValueError, match="Unknown augmentation option"):
        TrainConfig(augmentation={"twirl": 1}).validate()
    with pytest.raises(ValueError, match="class_weighting"):
        TrainConfig(class_weighting=-0.5).validate()
    TrainConfig(class_weighting=0.5).validate()


@pytest.mark.parametrize("name,cls", [("adam", "Adam"), ("adamw", "AdamW"), ("sgd", "SGD")])
def test_optimizers(name, cls):
    from fer.modeling.network import make_optimizer

    opt = make_optimizer(TrainConfig(optimizer=name, learning_rate=0.01, weight_decay=1e-4))
    assert type(opt).__name__ == cls
    assert float(keras.ops.convert_to_numpy(opt.learning_rate)) == pytest.approx(0.01)
    if name == "sgd":
        assert opt.nesterov and opt.momentum == 0.9


def test_killed_run_resumes_from_its_last_finished_epoch(sample_root, tmp_path):
    """Kill a CLI training run mid-way (SIGKILL, as a crash or a preempted machine would) and resume."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "fer",
        "train",
        "--data",
        str(sample_root),
        "--model",
        "seed",
        "--epochs",
        "5",
        "--batch-size",
        "16",
        "--out",
        str(out),
        "--verbose",
        "2",
        "--set",
        "early_stopping_patience=null",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = out / "history.csv"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if history.is_file() and history.read_text().count("\n") >= 3:  # header + 2 epochs
                break
            assert proc.poll() is None, "training ended before it could be interrupted"
            time.sleep(0.2)
        else:
            pytest.fail("no epoch finished in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = len(pd.read_csv(history))
    assert finished < 5 and (out / "backup").is_dir() and not (out / "summary.json").exists()

    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # Keras prints "Epoch k/5" for each epoch it runs: the resumed process starts after the
    # finished ones (or redoes the last one if the kill fell between logging and backing it up).
    first = int(resumed.stdout.split("Epoch ", 1)[1].split("/", 1)[0])
    assert first in (finished, finished + 1)
    assert f"after epoch {first - 1} of 5" in resumed.stdout  # the resumed run says where it goes on
    rows = pd.read_csv(history)
    assert list(rows["epoch"]) == [0, 1, 2, 3, 4]  # every epoch once: nothing lost, nothing repeated
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_done"] == 5
    assert not (out / "backup").exists()
    # The optimizer state came back too: its step counter spans all five epochs.
    steps_per_epoch = -(-summary["train_samples"] // 16)
    final = keras.models.load_model(out / "final.keras")
    assert int(final.optimizer.iterations.numpy()) == 5 * steps_per_epoch


def test_backup_carries_the_plateau_counters_across_a_resume(tmp_path):
    """A resumed run must stop early and cut the learning rate when the uninterrupted run would."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-3), "mse")

    def plateau_callbacks():
        callbacks = {
            "reduce_lr": keras.callbacks.ReduceLROnPlateau("val_accuracy", mode="max", patience=3, cooldown=1),
            "early_stopping": keras.callbacks.EarlyStopping("val_accuracy", mode="max", patience=10),
        }
        for callback in callbacks.values():
            callback.set_model(model)
            callback.on_train_begin()  # what fit() does first: resets every counter
        return callbacks

    def epoch_end(callbacks, epoch, accuracy):
        for callback in callbacks.values():
            callback.on_epoch_end(epoch, {"val_accuracy": accuracy})

    original = plateau_callbacks()
    for epoch, accuracy in enumerate([0.30, 0.50, 0.40, 0.45]):
        epoch_end(original, epoch, accuracy)
    backup = EpochBackup(tmp_path / "backup", original)
    backup.set_model(model)
    backup.on_epoch_end(3)

    resumed = plateau_callbacks()
    assert resumed["early_stopping"].wait == 0 and resumed["early_stopping"].best is None
    EpochBackup(tmp_path / "backup", resumed).on_train_begin()
    assert resumed["early_stopping"].best == 0.50 and resumed["early_stopping"].best_epoch == 1
    assert resumed["early_stopping"].wait == original["early_stopping"].wait == 2
    assert resumed["reduce_lr"].best == 0.50 and resumed["reduce_lr"].wait == 2
    # The next flat epoch reaches ReduceLROnPlateau's patience of 3 in both runs alike.
    epoch_end(original, 4, 0.42)
    epoch_end(resumed, 4, 0.42)
    for name in ("reduce_lr", "early_stopping"):
        for attr in ("best", "wait", "cooldown_counter"):
            if hasattr(original[name], attr):
                assert getattr(resumed[name], attr) == getattr(original[name], attr), (name, attr)
    assert resumed["reduce_lr"].cooldown_counter == 1  # the cut happened


def test_validation_split_holds_no_copies_of_test_images(tmp_path):
    import shutil

    from fer.data.loading import load_split
    from fer.data.quality import duplicates_of
    from fer.data.sample import write_sample
    from fer.modeling.config import TrainConfig
    from fer.modeling.run_data import split_data

    root = write_sample(tmp_path / "data", n_train=20, n_test=6, seed=0)
    copied = 0
    for emotion_dir in sorted((root / "test").iterdir()):  # 4 test images per class also in train
        for image in sorted(emotion_dir.glob("*.png"))[:4]:
            shutil.copy(image, root / "train" / emotion_dir.name / f"copy_{image.name}")
            copied += 1
    test = load_split(root, "test")
    config = TrainConfig(data=str(root), val_fraction=0.5, seed=3)
    train, val = split_data(config)
    assert len(train) + len(val) == 7 * 20 + copied  # nothing lost: the copies moved to train
    assert not duplicates_of(val, test).any()
    assert duplicates_of(train, test).sum() == copied


def test_members_with_other_seeds_share_the_validation_split(sample_root):
    from fer.modeling.config import TrainConfig
    from fer.modeling.run_data import split_data

    _, val_a = split_data(TrainConfig(data=str(sample_root), seed=1))
    _, val_b = split_data(TrainConfig(data=str(sample_root), seed=2))
    _, val_c = split_data(TrainConfig(data=str(sample_root), seed=2, split_seed=7))
    assert val_a.sources == val_b.sources and val_a.sources != val_c.sources


def test_a_one_epoch_run_is_one_epoch_whatever_the_warm_up_and_recipes_are_named(tmp_path, capsys):
    """`train --epochs 1` on a recipe with a 2-epoch warm-up trains one epoch (no warm-up), and says so."""
    from fer.data.sample import make_sample
    from fer.modeling.recipes import RECIPES

    faces = {"train_faces": make_sample(6, seed=0), "val_faces": make_sample(2, seed=1), "verbose": 0}
    result = train(recipe="shipped", model="seed", epochs=1, batch_size=16, out_dir=tmp_path / "one", **faces)
    assert len(result.history) == 1 and "no warm-up in this short run" in capsys.readouterr().out
    saved = json.loads((tmp_path / "one" / "config.json").read_text())
    assert saved["warmup_epochs"] == 0 and saved["optimizer"] == RECIPES["shipped"]["optimizer"] == "sgd"
    with pytest.raises(ValueError, match="Unknown recipe 'best'"):
        train(recipe="best", out_dir=tmp_path / "x", **faces)
    with pytest.raises(ValueError, match="either config or recipe"):
        train({"epochs": 1}, recipe="seed", out_dir=tmp_path / "y", **faces)


def test_mixup_and_cutmix_blend_targets_as_they_blend_faces():
    from fer.data.batches import mix_batch

    rng = np.random.default_rng(0)
    x = np.stack([np.full((48, 48, 1), 0.0, np.float32), np.full((48, 48, 1), 255.0, np.float32)])
    y = [np.eye(2, dtype=np.float32)]
    w = [np.array([1.0, 3.0], np.float32)]
    for how in ("mixup", "cutmix"):
        mixed, (t,), (v,) = mix_batch(x, y, w, how, 1.0, np.random.default_rng(3))
        bright = mixed.reshape(2, -1).mean(axis=1) / 255.0  # each face's share of the bright face
        assert np.allclose(t[:, 1], bright, atol=1e-6) and np.allclose(t.sum(axis=1), 1)
        assert np.allclose(v, 1 + 2 * bright)  # weights blend like the targets
    same, (t,), _ = mix_batch(x, y, None, "none", 1.0, rng)
    assert same is x and t is y[0]


def test_a_run_saved_before_the_camera_options_resumes_and_a_changed_one_is_refused(tmp_path):
    from dataclasses import asdict

    from fer.modeling.config import check_same_config

    config = TrainConfig(augmentation={"rotation": 10.0, "flip": True})
    saved = asdict(config)
    saved["augmentation"] = {"rotation": 10.0, "flip": True, "shift": 0.0, "zoom": 0.0, "erasing": 0.0, "contrast": 0.0}
    (tmp_path / "config.json").write_text(json.dumps(saved))  # what 0.5 wrote: no blur, gamma, ...
    check_same_config(tmp_path, config)
    with pytest.raises(ValueError, match=r"different settings \(augmentation\)"):
        check_same_config(tmp_path, TrainConfig(augmentation={"rotation": 10.0, "flip": True, "blur": 0.5}))
