"""The package as users install it: the wheel in a fresh venv (core only), used from outside the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# The target was 400 MB; pandas (kept for analyze_video's table and the CLI's) and its two dependencies
# take 90 MB of the ~460 MB measured (docs/usage.md). The budget catches the research stack creeping back in
# (TensorFlow alone is over 1 GB).
VENV_BUDGET_MB = 480

pytestmark = pytest.mark.slow

CHECK = """
import importlib.util, json, sys, time, warnings
t = time.perf_counter(); import fer; t_import = time.perf_counter() - t
t = time.perf_counter(); faces = fer.predict_emotion(sys.argv[1]); t_first = time.perf_counter() - t
crop = fer.predict_crop(sys.argv[1])
meshed = fer.predict_emotion(sys.argv[1], landmarks=True)[0]  # the face mesh's files ship inside the package too
missing = {}
for name in ("train", "evaluate"):
    try:
        getattr(fer, name)
    except fer.MissingPackageError as exc:
        missing[name] = str(exc)
print(json.dumps({
    "faces": [f.to_dict() for f in faces], "crop": crop.to_dict(), "classes": fer.model_classes(),
    "mesh": meshed.to_dict(),
    "file": fer.__file__, "research": [m for m in ("tensorflow", "keras", "jupyterlab", "sklearn")
                                       if importlib.util.find_spec(m)],
    "missing": missing, "import_s": t_import, "first_prediction_s": t_first,
}))
"""


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory) -> Path:
    """A fresh venv with the wheel built from this checkout, core dependencies only."""
    root = tmp_path_factory.mktemp("install")
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(root / "dist"), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = (root / "dist").glob("*.whl")
    assert wheel.stat().st_size < 16 * 2**20
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr[-2000:]
    return venv


def test_the_installed_wheel_predicts_a_real_photo_outside_the_checkout(core_venv, tmp_path):
    from PIL import Image

    skdata = pytest.importorskip("skimage.data")
    photo = tmp_path / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(photo)
    env = {k: v for k, v in os.environ.items() if k not in ("FER_MODEL", "FER_ENGINE", "PYTHONPATH")}
    run = subprocess.run(
        [str(core_venv / "bin" / "python"), "-c", CHECK, str(photo)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout)
    assert "site-packages" in got["file"] and got["research"] == []
    assert {"train", "evaluate"} <= set(got["missing"]) and "[research]" in got["missing"]["train"]
    # The same answer as the checkout's (the default's twin inside the package is the one the checkout runs).
    from fer.inference.predict import predict_emotion

    expected = predict_emotion(photo)
    assert [f["emotion"] for f in got["faces"]] == [p.emotion for p in expected] == ["happy"]
    assert got["faces"][0]["box"] == list(expected[0].box)
    assert got["faces"][0]["probability"] == pytest.approx(expected[0].probability, abs=1e-5)
    (meshed,) = predict_emotion(photo, landmarks=True)
    assert got["mesh"]["pose"] == pytest.approx(dict(zip(("yaw", "pitch", "roll"), meshed.pose)), abs=0.05)
    assert np.allclose(got["mesh"]["landmarks"], meshed.landmarks, atol=0.02)
    # The command line: predicts; a research command says in one line what to install, exit 2.
    cli = str(core_venv / "bin" / "fer-emotion")
    predicted = subprocess.run(
        [cli, "predict", str(photo), "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert predicted.returncode == 0 and json.loads(predicted.stdout)[0]["emotion"] == "happy", predicted.stderr
    # --out without pyarrow (the batch extra): the tables as before, and one line on what resuming needs.
    kept = subprocess.run(
        [cli, "predict", str(photo), "--out", "out"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert kept.returncode == 0 and (tmp_path / "out" / "predictions.csv").is_file(), kept.stderr
    assert not (tmp_path / "out" / "predictions.parquet").exists() and "[batch]" in kept.stderr
    for command in (["run"], ["train", "--epochs", "1"], ["evaluate"]):
        refused = subprocess.run([cli, *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2, (command, refused.stderr)
        assert refused.stderr.count("\n") == 1 and "[research]" in refused.stderr, (command, refused.stderr)


def test_the_core_install_stays_light(core_venv):
    site = next((core_venv / "lib").glob("python*/site-packages"))
    assert not [p.name for p in site.iterdir() if p.name.split("-")[0].lower() in ("tensorflow", "keras", "jupyterlab")]
    size_mb = sum(f.stat().st_size for f in core_venv.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20
    assert size_mb <= VENV_BUDGET_MB, f"the core venv is {size_mb:.0f} MB"
