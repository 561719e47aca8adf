"""The model in models/: loads safely, is the default, and has not regressed below its card."""

import json

import numpy as np
import pytest

from fer.data import EMOTIONS, load_split
from fer.evaluation import evaluate
from fer.predict import MODELS_DIR, default_model_path, load_model, predict_emotion

METRICS = MODELS_DIR / "fer_emotion.metrics.json"


@pytest.fixture(scope="module")
def shipped():
    if not default_model_path().is_file():
        pytest.fail(f"{default_model_path()} is missing: the repository ships a trained model")
    return load_model()  # safe_mode=True


def test_shipped_model_is_small_and_the_default(shipped):
    assert default_model_path().stat().st_size < 16 * 2**20
    face = np.full((48, 48), 128, np.uint8)
    p = predict_emotion(face)  # no model argument: the shipped one
    assert p.emotion in EMOTIONS
    assert p.probabilities == pytest.approx(predict_emotion(face, model=shipped).probabilities)
    card = (MODELS_DIR / "MODEL_CARD.md").read_text()
    metrics = json.loads(METRICS.read_text())
    assert f"{metrics['accuracy']:.2%}" in card and metrics["params"] == shipped.count_params()


@pytest.mark.realdata
def test_shipped_model_publictest_accuracy_has_not_regressed(shipped, real_data):
    card = json.loads(METRICS.read_text())
    test = load_split(real_data, "test")
    result = evaluate(shipped, test.images, test.labels)  # plain, no TTA: keeps CI fast
    assert result.n == 3589
    assert result.accuracy >= card["accuracy"] - 0.005, (result.accuracy, card["accuracy"])
    # The rare class has not collapsed either.
    assert result.per_class.loc["disgust", "recall"] >= card["per_class"]["disgust"]["recall"] - 0.05
