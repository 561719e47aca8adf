"""Dual-head networks: one trunk, a FER+ and a FER-2013 head, trained jointly, shipped with twins, served by head."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import require

from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.data.sample import make_sample, write_sample, write_sample_votes
from fer.modeling import dual_head
from fer.modeling.architectures import build_model


def test_a_single_head_network_starts_both_heads_where_the_classes_match():
    source = build_model("seed", n_classes=8)
    dual = dual_head.add_heads(build_model("seed", n_classes=8))
    dual_head.transfer_weights(dual, source)
    kernel, bias = source.get_layer("emotion").get_weights()
    plus, f2013 = dual.get_layer("ferplus").get_weights(), dual.get_layer("fer2013").get_weights()
    assert np.array_equal(plus[0], kernel) and np.array_equal(plus[1], bias)
    for i, emotion in enumerate(EMOTIONS):  # FER-2013's seven are FER+'s columns of the same name
        assert np.array_equal(f2013[0][:, i], kernel[:, FERPLUS_CLASSES.index(emotion)])
    faces = np.random.default_rng(0).integers(0, 255, (4, 48, 48, 1)).astype(np.float32)
    assert np.allclose(dual.predict_on_batch(faces)[0], source.predict_on_batch(faces), atol=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        dual_head.transfer_weights(dual, build_model("vgg_lite", n_classes=7))


def test_targets_mix_labels_with_teachers_and_unusable_votes_weigh_nothing():
    faces = make_sample(2, seed=3)
    votes = np.zeros((len(faces), 10), int)
    votes[:, 0] = 10  # everyone says neutral
    votes[0] = 0
    votes[0, 9] = 10  # ... but face 0 is not a face (NF)
    faces.votes = votes
    teacher = {"fer2013": np.full((len(faces), 7), 1 / 7, np.float32), "ferplus": None}
    targets, usable = dual_head.head_targets(faces, teacher, weight=0.5, temperature=1.0)
    assert not usable["ferplus"][0] and usable["ferplus"][1:].all() and usable["fer2013"].all()
    onehot = np.eye(7)[faces.labels]
    assert np.allclose(targets["fer2013"], 0.5 * onehot + 0.5 / 7)
    assert np.allclose(targets["ferplus"][1:, FERPLUS_CLASSES.index("neutral")], 1)
    weights = dual_head.head_weights(targets, usable, power=0.0)
    assert weights["ferplus"][0] == 0 and (weights["ferplus"][1:] == 1).all() and (weights["fer2013"] == 1).all()


@pytest.mark.slow
def test_a_dual_run_trains_records_its_prior_ships_and_answers_through_either_head(tmp_path):
    require("onnxruntime")
    require("tf2onnx")
    from fer.inference.models import load_model, model_classes
    from fer.inference.predict import predict_crop
    from fer.modeling.recipes import RECIPES
    from fer.modeling.training import train
    from fer.release import package_default, ship_dual

    root = write_sample(tmp_path / "fer", n_train=12, n_test=4)
    table = write_sample_votes(root)
    teacher = train(model="seed", data=str(root), epochs=1, batch_size=16, out_dir=tmp_path / "teacher", verbose=0)
    options = {
        **RECIPES["dual"],
        "model": "seed",
        "init_weights": None,
        "teacher": str(teacher.run_dir / "best.keras"),
        "ferplus_teacher": None,
        "teacher_tta": False,
        "epochs": 2,
        "batch_size": 16,
    }
    result = train(options, data=str(root), votes=str(table), out_dir=tmp_path / "run", verbose=0)
    assert (tmp_path / "run" / "teacher_fer2013.npz").is_file()  # computed once, kept for a resume
    history = result.history
    assert {"val_ferplus_accuracy", "val_fer2013_accuracy", "val_accuracy"} <= set(history)
    assert np.allclose(history["val_accuracy"], (history["val_ferplus_accuracy"] + history["val_fer2013_accuracy"]) / 2)
    prior = result.summary["training_prior"]
    assert set(prior) == {"ferplus", "fer2013"} and sum(prior["fer2013"].values()) == pytest.approx(1, abs=1e-3)

    models = tmp_path / "models"
    models.mkdir()
    metrics = ship_dual(result.run_dir, root, models_dir=models, selection="test")
    card = (models / "fer_dual_CARD.md").read_text()
    assert "FER-2013 head, FER-2013 labels" in card and "$" not in card.replace("$ ", "")
    assert metrics["fer2013"]["n"] == 28 and 0 <= metrics["ferplus"]["accuracy"] <= 1
    face = make_sample(1).images[0]
    for labels, classes in (("ferplus", FERPLUS_CLASSES), ("fer2013", EMOTIONS)):
        keras_answer = predict_crop(face, model=load_model(models / "fer_dual.keras"), labels=labels)
        twin_answer = predict_crop(face, model=models / "fer_dual.keras", labels=labels)  # auto: its ONNX twin
        assert tuple(twin_answer.probabilities) == classes == model_classes(models / "fer_dual.keras", labels)
        assert twin_answer.probabilities == pytest.approx(keras_answer.probabilities, abs=1e-4)
        uniform = predict_crop(face, model=models / "fer_dual.keras", labels=labels, prior="uniform")
        assert uniform.probabilities != twin_answer.probabilities
    packaged = tmp_path / "package"
    packaged.mkdir()
    written = package_default(models / "fer_dual.keras", packaged)
    info = json.loads(written[0].with_suffix(".json").read_text())
    assert info["source_model"] == "fer_dual.keras" and set(info["training_prior"]) == {"ferplus", "fer2013"}
    assert [o["name"] for o in info["outputs"]] == ["ferplus", "fer2013"]
