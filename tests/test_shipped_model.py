"""The models in models/: load safely, the FER+ model is the default, and none has regressed below its card."""

import json

import numpy as np
import pytest

from fer.analysis.evaluation import evaluate
from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.data.ferplus import load_ferplus_split
from fer.data.loading import load_split
from fer.inference.models import load_model
from fer.inference.predict import predict_crop
from fer.modeling.files import DEFAULT_MODEL_NAME, MODELS_DIR, default_model_path

# (model file, its card, the label set its card reports first): the default FER+ model, the FER-2013 ensemble
# and its first member, the single FER-2013 network.
SHIPPED = {
    "ferplus_votes.keras": ("ferplus_votes_CARD.md", "ferplus"),
    "ferplus.json": ("ferplus_CARD.md", "ferplus"),
    "fer_ensemble.json": ("fer_ensemble_CARD.md", "fer2013"),
    "fer_emotion.keras": ("MODEL_CARD.md", "fer2013"),
}


@pytest.fixture(scope="module", params=list(SHIPPED))
def shipped(request):
    path = MODELS_DIR / request.param
    if not path.is_file():
        pytest.fail(f"{path} is missing: the repository ships trained models")
    return path, load_model(path)  # safe_mode=True


def metrics_of(path):
    return json.loads(path.with_name(f"{path.stem}.metrics.json").read_text())


def headline(path) -> dict:
    """The card's main figures: FER+ models report them under "ferplus", FER-2013 ones at the top level."""
    metrics = metrics_of(path)
    return metrics["ferplus"] if SHIPPED[path.name][1] == "ferplus" else metrics


def test_the_default_is_the_ferplus_model_and_every_file_is_small():
    assert DEFAULT_MODEL_NAME == "ferplus_votes.keras" and default_model_path() == MODELS_DIR / "ferplus_votes.keras"
    for path in MODELS_DIR.rglob("*.keras"):
        assert path.stat().st_size < 16 * 2**20, path
    face = np.full((48, 48), 128, np.uint8)
    p = predict_crop(face)  # no model argument: the default one
    assert list(p.probabilities) == list(FERPLUS_CLASSES)
    assert p.probabilities == pytest.approx(predict_crop(face, model=MODELS_DIR / "ferplus_votes.keras").probabilities)


def test_the_fer2013_ensemble_is_the_mean_of_its_members():
    path = MODELS_DIR / "fer_ensemble.json"
    members = json.loads(path.read_text())["members"]
    assert members[0] == "fer_emotion.keras" and len(members) == 4
    face = np.full((48, 48), 128, np.uint8)
    p = predict_crop(face, model=path)
    assert list(p.probabilities) == list(EMOTIONS)
    singles = [predict_crop(face, model=MODELS_DIR / m).probabilities for m in members]
    mean = {e: np.mean([s[e] for s in singles]) for e in EMOTIONS}
    assert p.probabilities == pytest.approx(mean, abs=1e-5)
    assert p.probabilities != pytest.approx(singles[0], abs=1e-4)


def test_each_card_reports_its_metrics(shipped):
    path, model = shipped
    card = (MODELS_DIR / SHIPPED[path.name][0]).read_text()
    assert f"{headline(path)['accuracy']:.2%}" in card and metrics_of(path)["params"] == model.count_params()


@pytest.mark.realdata
def test_shipped_model_publictest_accuracy_has_not_regressed(shipped, real_data):
    path, model = shipped
    card = headline(path)
    if SHIPPED[path.name][1] == "ferplus":  # scored against the FER+ crowd majority, as its card is
        test = load_ferplus_split(real_data, "test")
        result = evaluate(model, test.images, test.labels, classes=test.classes, votes=test.votes)
        assert result.n == 3199
        assert result.crowd_agreement >= card["crowd_agreement"] - 0.005
    else:
        test = load_split(real_data, "test")
        result = evaluate(model, test.images, test.labels)  # plain, no TTA: keeps CI fast
        assert result.n == 3589
        # The rare class has not collapsed either.
        per_class = metrics_of(path)["per_class"]
        assert result.per_class.loc["disgust", "recall"] >= per_class["disgust"]["recall"] - 0.05
    assert result.accuracy >= card["accuracy"] - 0.005, (path.name, result.accuracy, card["accuracy"])
