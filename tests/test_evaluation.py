import json

import keras
import numpy as np
import pytest

from fer.data import EMOTIONS
from fer.evaluation import Evaluation, calibration_table, evaluate, expected_calibration_error, predict_proba


def _onehot_probs(preds, confidence=1.0):
    probs = np.full((len(preds), 7), (1 - confidence) / 6)
    probs[np.arange(len(preds)), preds] = confidence
    return probs


def test_metrics_match_a_hand_count():
    labels = np.array([0, 0, 1, 3, 3, 3, 5])
    preds = np.array([0, 3, 1, 3, 3, 0, 5])
    ev = Evaluation(labels, _onehot_probs(preds))
    assert ev.accuracy == pytest.approx(5 / 7)
    table = ev.per_class
    assert list(table.index) == list(EMOTIONS)
    assert table.loc["angry", ["precision", "recall"]].tolist() == pytest.approx([1 / 2, 1 / 2])
    assert table.loc["happy", ["precision", "recall"]].tolist() == pytest.approx([2 / 3, 2 / 3])
    assert table.loc["fear", "support"] == 0
    assert ev.confusion.loc["happy", "angry"] == 1 and ev.confusion.to_numpy().sum() == 7
    assert np.allclose(np.diag(ev.confusion_normalized)[[0, 1, 3, 5]], [0.5, 1, 2 / 3, 1])
    f1s = [2 * 0.5 * 0.5 / 1, 1, 2 / 3, 0, 0, 1, 0]  # angry, disgust, happy, fear/neutral/surprise 0, sad 1
    assert ev.macro_f1 == pytest.approx(np.mean(f1s))


def test_ece_of_perfectly_calibrated_and_overconfident_models():
    labels = np.array([0] * 8 + [1] * 2)
    # Always predicts class 0 with confidence 0.8 and is right 80% of the time: calibrated.
    probs = np.tile([0.8, 0.2, 0, 0, 0, 0, 0], (10, 1))
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0)
    # Confidence 1.0 with 80% accuracy: ECE 0.2.
    assert expected_calibration_error(_onehot_probs(np.zeros(10, int)), labels) == pytest.approx(0.2)
    table = calibration_table(probs, labels, n_bins=10)
    assert len(table) == 10 and table["count"].sum() == 10 and table.loc[7, "count"] == 10


def test_to_dict_has_the_cli_json_fields():
    ev = Evaluation(np.array([0, 1]), _onehot_probs(np.array([0, 2])))
    data = json.loads(ev.to_json())
    assert {"accuracy", "macro_f1", "n", "per_class", "confusion", "ece"} <= set(data)
    assert data["n"] == 2 and data["accuracy"] == 0.5
    assert set(data["per_class"]) == set(EMOTIONS) and data["per_class"]["angry"]["support"] == 1


class _LeftRightModel:
    """Stands in for a Keras model: 'happy' if the left half is brighter, else 'sad'."""

    def predict(self, x, batch_size=None, verbose=0):
        left = x[:, :, :24].mean(axis=(1, 2, 3)) > x[:, :, 24:].mean(axis=(1, 2, 3))
        probs = np.zeros((len(x), 7), np.float32)
        probs[left, 3] = 1
        probs[~left, 5] = 1
        return probs

    def predict_on_batch(self, x):
        return self.predict(x)


def test_flip_tta_averages_the_mirror_image():
    faces = np.zeros((1, 48, 48), np.uint8)
    faces[:, :, :24] = 200
    plain = predict_proba(_LeftRightModel(), faces)
    tta = predict_proba(_LeftRightModel(), faces, tta=True)
    assert plain[0, 3] == 1
    assert tta[0, 3] == pytest.approx(0.5) and tta[0, 5] == pytest.approx(0.5)


def test_evaluate_rejects_empty_or_mismatched_input():
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(7, "softmax")])
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, np.zeros((0, 48, 48), np.uint8), np.zeros(0, int))
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        evaluate(model, np.zeros((2, 48, 48), np.uint8), np.zeros(1, int))
