import json

import keras
import numpy as np
import pytest

from fer.analysis.evaluation import Evaluation, calibration_table, evaluate, expected_calibration_error
from fer.analysis.probabilities import predict_proba
from fer.data.classes import EMOTIONS


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
    # Macro-F1 averages the classes with faces here (angry, disgust, happy, sad): an absent class has no F1.
    f1s = [2 * 0.5 * 0.5 / 1, 1, 2 / 3, 1]
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


def test_accuracy_without_faces_that_copy_training_images():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (20, 48, 48), dtype=np.uint8)
    test = np.concatenate([train[:3], rng.integers(0, 256, (5, 48, 48), dtype=np.uint8)])  # 3 copies, 5 new
    labels = np.zeros(8, int)

    class Fixed(keras.Model):  # right on the copies, wrong on the rest: the two figures must differ
        def call(self, x):
            return keras.ops.one_hot(keras.ops.zeros(keras.ops.shape(x)[:1], "int32"), 7)

    model = Fixed()
    result = evaluate(model, test, labels, train_images=train)
    assert result.duplicates.tolist() == [True] * 3 + [False] * 5
    assert result.accuracy == 1.0 and result.deduplicated.n == 5
    wrong = evaluate(model, test, np.r_[np.zeros(3, int), np.ones(5, int)], train_images=train)
    assert wrong.accuracy == pytest.approx(3 / 8) and wrong.deduplicated.accuracy == 0.0
    dedup = wrong.to_dict()["without_train_duplicates"]
    assert dedup == {"n": 5, "n_removed": 3, "accuracy": 0.0, "macro_f1": 0.0}
    assert "without the 3 faces" in wrong.summary()
    assert evaluate(model, test, labels).to_dict()["without_train_duplicates"] is None


def test_tta_schemes_average_the_views_they_name():
    from fer.analysis.probabilities import tta_views

    x = np.arange(2 * 48 * 48, dtype=np.float32).reshape(2, 48, 48, 1)
    flip = tta_views(x, "flip")
    assert len(flip) == 2 and np.array_equal(flip[1], x[:, :, ::-1])
    shift = tta_views(x, "shift")
    assert len(shift) == 10
    assert np.array_equal(shift[1][:, :, 2:], x[:, :, :-2])  # shifted right by 2 px
    assert np.array_equal(shift[1][:, :, :2], np.repeat(x[:, :, :1], 2, axis=2))  # the gap repeats the edge
    assert np.array_equal(shift[2][:, :, :-2], x[:, :, 2:])  # and left
    assert np.array_equal(shift[5], x[:, :, ::-1])  # the mirrored half starts with the mirrored face
    with pytest.raises(ValueError, match="tta must be"):
        predict_proba(None, x[..., 0].astype(np.uint8), tta="ten-crop")


def test_tta_changes_the_prediction_of_a_model_that_is_not_symmetric():
    # A "model" that reads the left half only: flipping must change its output, so TTA is really applied.
    inputs = keras.Input((48, 48, 1))
    left = keras.layers.Cropping2D(((0, 0), (0, 24)))(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(left)
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(pooled))
    faces = np.zeros((4, 48, 48), np.uint8)
    faces[:, :, :24] = 255  # bright left half
    plain, flipped = predict_proba(model, faces), predict_proba(model, faces, tta="flip")
    assert not np.allclose(plain, flipped)
    both = (predict_proba(model, faces) + predict_proba(model, faces[:, :, ::-1].copy())) / 2
    assert np.allclose(flipped, both, atol=1e-6)
    from fer.analysis.probabilities import DEFAULT_TTA

    assert np.allclose(predict_proba(model, faces, tta=True), predict_proba(model, faces, tta=DEFAULT_TTA))
