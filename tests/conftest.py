"""Shared fixtures: small generated datasets and one tiny trained model for the whole session."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from helpers import skip_or_fail  # noqa: E402

from fer.data.loading import data_dir  # noqa: E402

# The package's one resolution order: $FER2013_DIR (CI sets it), else data/fer2013.
REAL_DATA = data_dir()


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "train").is_dir():
        skip_or_fail(f"FER-2013 not found at {REAL_DATA} (set FER2013_DIR)")
    return REAL_DATA


@pytest.fixture(scope="session")
def real_data_or_none() -> Path | None:
    return REAL_DATA if (REAL_DATA / "train").is_dir() else None


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """A synthetic dataset in the FER-2013 folder layout: 20 train and 8 test images per class."""
    from fer.data.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"), n_train=20, n_test=8, seed=0)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A seed CNN trained briefly on synthetic faces: (TrainResult, train FaceSet, test FaceSet)."""
    from fer.data.sample import make_sample
    from fer.modeling.training import train

    train_faces, test_faces = make_sample(40, seed=0), make_sample(10, seed=1)
    result = train(
        out_dir=tmp_path_factory.mktemp("run"),
        train_faces=train_faces,
        val_faces=test_faces,
        model="seed",
        epochs=1,
        batch_size=32,
        verbose=0,
    )
    return result, train_faces, test_faces


@pytest.fixture
def rng():
    return np.random.default_rng(0)
