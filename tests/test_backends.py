"""The model code is backend-agnostic: it trains on JAX (the GPU machines have JAX and no
TensorFlow) and a model file from either backend loads and predicts the same on the other."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import require

from fer.analysis.probabilities import predict_proba
from fer.data.sample import make_sample
from fer.inference.models import load_model

pytestmark = pytest.mark.slow
require("jax")  # skips the module on a developer's machine without JAX; fails in CI

# Runs in a fresh interpreter: Keras fixes its backend when first imported.
JAX_SCRIPT = """
import json, sys
import keras, numpy as np
from fer.analysis.probabilities import predict_proba
from fer.modeling.architectures import build_ensemble
from fer.inference.models import load_model
from fer.data.sample import make_sample
from fer.modeling.training import train
from fer.modeling.config import TrainConfig
from fer.modeling.network import build_for_training, compile_model

out, tf_model = sys.argv[1], sys.argv[2]
result = train(out_dir=f"{out}/run", train_faces=make_sample(20, seed=0), val_faces=make_sample(5, seed=1),
               model="vgg_lite", epochs=2, batch_size=32, verbose=0)
faces = make_sample(3, seed=2).images
np.save(f"{out}/jax_model.npy", predict_proba(load_model(f"{out}/run/best.keras"), faces))
np.save(f"{out}/tf_model.npy", predict_proba(load_model(tf_model), faces))
# Keras' rotation/shift/zoom layers say they can't be XLA-compiled (true of TensorFlow's XLA only), which
# would run every JAX step op by op; fer.data.augment lifts that on JAX, and the run above trained so.
config = TrainConfig(model="vgg_lite", augmentation={"rotation": 10.0, "flip": True, "shift": 0.1, "zoom": 0.1})
xla = compile_model(build_for_training(config, "bfloat16"), config).jit_compile
# The same for a model loaded from its file (it comes back with those layers un-jittable again), and for an
# ensemble of such models (built from copies of them): teacher, evaluate and predict run these.
loaded = load_model(f"{out}/run/best.keras")
xla_loaded = {"file": loaded.jit_compile, "ensemble": build_ensemble([loaded, loaded]).jit_compile,
              "train_result": result.model.jit_compile}
info = {"backend": keras.backend.backend(), "epochs_done": result.summary["epochs_done"], "xla": xla,
        "xla_loaded": xla_loaded}
json.dump(info, open(f"{out}/info.json", "w"))
"""


def test_trains_on_jax_and_model_files_cross_backends(trained, tmp_path):
    tf_model = trained[0].run_dir / "best.keras"  # trained by this (TensorFlow) process
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path), str(tf_model)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((tmp_path / "info.json").read_text())
    assert info == {
        "backend": "jax",
        "epochs_done": 2,
        "xla": True,
        "xla_loaded": {"file": True, "ensemble": True, "train_result": True},
    }

    faces = make_sample(3, seed=2).images
    jax_trained_here = predict_proba(load_model(tmp_path / "run" / "best.keras"), faces)
    np.testing.assert_allclose(jax_trained_here, np.load(tmp_path / "jax_model.npy"), atol=1e-4)
    tf_trained_here = predict_proba(load_model(tf_model), faces)
    np.testing.assert_allclose(np.load(tmp_path / "tf_model.npy"), tf_trained_here, atol=1e-4)


# Two virtual CPU devices stand in for two GPUs: keras.distribution.DataParallel splits each batch across them.
# What data parallelism promises is the same update from the same state: a run of one global batch per epoch
# compares that step by step. Over many steps the runs part by float rounding, which is chaotic and CPU-dependent
# (XLA's CPU kernels pick their blocking by the per-device batch, differently on Intel's oneDNN/AMX than on AMD:
# docs/training.md, "Numbers across CPUs"), so the longer run checks only that the model trains and is saved.
DATA_PARALLEL_SCRIPT = """
import json, sys
import keras, numpy as np
from fer.analysis.probabilities import predict_proba
from fer.data.sample import make_sample
from fer.inference.models import load_model
from fer.modeling.training import train

out = sys.argv[1]
no_noise = {"rotation": 0.0, "flip": False, "shift": 0.0, "zoom": 0.0, "erasing": 0.0, "contrast": 0.0}
common = dict(train_faces=make_sample(16, seed=0), val_faces=make_sample(4, seed=1), model="vgg_lite",
              model_options={"dropout": 0.0}, augmentation=no_noise, epochs=2, batch_size=16, precision="float32",
              class_weighting=False, verbose=0)
batch = {**common, "train_faces": make_sample(16, seed=0).subset(np.arange(0, 112, 7)), "epochs": 3, "seed": 7}
steps = [train(out_dir=f"{out}/step{n}", distribute=d, **batch).history["loss"].tolist()
         for n, d in ((1, "none"), (2, "data_parallel"))]
one = train(out_dir=f"{out}/one", distribute="none", **common)
two = train(out_dir=f"{out}/two", distribute="data_parallel", **common)
faces = make_sample(2, seed=3).images
keras.distribution.set_distribution(None)
json.dump({
    "devices": [one.summary["devices"], two.summary["devices"]],
    "steps": steps,
    "two": two.history[["loss", "val_loss"]].to_numpy().tolist(),
    # The data-parallel run's file, read back on one device, predicts as the model it trained.
    "file_vs_memory": float(np.abs(predict_proba(load_model(f"{out}/two/best.keras"), faces)
                                   - predict_proba(two.model, faces)).max()),
    # Resumed (here: re-opened finished) on one device: the run's config may change `distribute`.
    "reopened": train(out_dir=f"{out}/two", **{**common, "distribute": "none"}).summary["epochs_done"],
}, open(f"{out}/dp.json", "w"))
"""


def test_data_parallel_on_two_devices_makes_the_one_device_updates(tmp_path):
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    done = subprocess.run(
        [sys.executable, "-c", DATA_PARALLEL_SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((tmp_path / "dp.json").read_text())
    assert info["devices"] == [1, 2]
    one, two = np.array(info["steps"])
    # Step 1 is the forward pass on the initial weights: batch-norm statistics over the global batch, the loss its
    # mean (measured 4e-7 apart; statistics per device's 8 faces would be 0.6% apart).
    assert two[0] == pytest.approx(one[0], rel=1e-4)
    # Steps 2 and 3 follow one and two updates: the same gradient, averaged over the global batch (measured 1e-5 and
    # 1e-4 apart as the loss falls ~100x; a gradient summed over the devices, i.e. twice the step, is 250% off).
    np.testing.assert_allclose(two[1:], one[1:], rtol=1e-2)
    curve = np.array(info["two"])
    assert curve[1, 0] < curve[0, 0]  # the two-device run learns
    assert info["file_vs_memory"] < 1e-5
    assert info["reopened"] == 2
