"""The models in models/: load safely, the ensemble is the default, and neither has regressed below its card."""

import json

import numpy as np
import pytest

from fer.analysis.evaluation import evaluate
from fer.data.loading import EMOTIONS, load_split
from fer.inference.predict import load_model, predict_crop
from fer.modeling.files import MODELS_DIR, default_model_path

# (model file, its card): the default ensemble and its first member, the single network.
SHIPPED = {"fer_ensemble.json": "fer_ensemble_CARD.md", "fer_emotion.keras": "MODEL_CARD.md"}


@pytest.fixture(scope="module", params=list(SHIPPED))
def shipped(request):
    path = MODELS_DIR / request.param
    if not path.is_file():
        pytest.fail(f"{path} is missing: the repository ships trained models")
    return path, load_model(path)  # safe_mode=True


def metrics_of(path):
    return json.loads(path.with_name(f"{path.stem}.metrics.json").read_text())


def test_the_default_is_the_shipped_ensemble_and_every_file_is_small():
    assert default_model_path() == MODELS_DIR / "fer_ensemble.json"
    members = json.loads(default_model_path().read_text())["members"]
    assert members[0] == "fer_emotion.keras" and len(members) == 2
    for member in members:
        assert (MODELS_DIR / member).stat().st_size < 16 * 2**20
    face = np.full((48, 48), 128, np.uint8)
    p = predict_crop(face)  # no model argument: the default one
    assert p.emotion in EMOTIONS
    ensemble = load_model(default_model_path())
    assert p.probabilities == pytest.approx(predict_crop(face, model=ensemble).probabilities)
    # It is the mean of its members, and differs from the first one alone.
    singles = [predict_crop(face, model=MODELS_DIR / m).probabilities for m in members]
    mean = {e: np.mean([s[e] for s in singles]) for e in EMOTIONS}
    assert p.probabilities == pytest.approx(mean, abs=1e-5)
    assert p.probabilities != pytest.approx(singles[0], abs=1e-4)


def test_each_card_reports_its_metrics(shipped):
    path, model = shipped
    metrics = metrics_of(path)
    card = (MODELS_DIR / SHIPPED[path.name]).read_text()
    assert f"{metrics['accuracy']:.2%}" in card and metrics["params"] == model.count_params()


@pytest.mark.realdata
def test_shipped_model_publictest_accuracy_has_not_regressed(shipped, real_data):
    path, model = shipped
    card = metrics_of(path)
    test = load_split(real_data, "test")
    result = evaluate(model, test.images, test.labels)  # plain, no TTA: keeps CI fast
    assert result.n == 3589
    assert result.accuracy >= card["accuracy"] - 0.005, (path.name, result.accuracy, card["accuracy"])
    # The rare class has not collapsed either.
    assert result.per_class.loc["disgust", "recall"] >= card["per_class"]["disgust"]["recall"] - 0.05
