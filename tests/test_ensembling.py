"""Ensembles (one .keras file averaging several models) and distillation (training on a teacher's probabilities)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import fer
from fer.analysis.probabilities import predict_proba
from fer.cli import main
from fer.errors import ModelError
from fer.inference.models import load_model
from fer.inference.predict import predict_crop
from fer.modeling.architectures import build_model


@pytest.fixture(scope="module")
def members(trained, tmp_path_factory):
    """The session's trained seed CNN and an untrained vgg_lite: different networks, different outputs."""
    folder = tmp_path_factory.mktemp("members")
    other = build_model("vgg_lite", seed=1)
    other.save(folder / "b.keras")
    return [trained[0].run_dir / "best.keras", folder / "b.keras"]


def test_ensemble_averages_its_members_and_loads_safely(members, trained, tmp_path):
    faces = trained[2].images[:12]
    out = tmp_path / "ensemble.keras"
    model = fer.ensemble(members, out)
    a, b = (predict_proba(load_model(m), faces) for m in members)
    assert not np.allclose(a, b, atol=1e-3)  # so the mean is a real check
    expected = (a + b) / 2
    assert np.allclose(predict_proba(model, faces), expected, atol=1e-5)
    reloaded = load_model(out)  # safe_mode=True, and checked like any emotion model
    assert np.allclose(predict_proba(reloaded, faces), expected, atol=1e-5)
    assert reloaded.count_params() == sum(load_model(m).count_params() for m in members)
    p = predict_crop(faces[0], model=out)
    assert p.probabilities["happy"] == pytest.approx(float(expected[0, 3]), abs=1e-5)


def test_ensemble_cli_and_evaluate_with_an_ensemble(members, sample_root, tmp_path, capsys):
    out = tmp_path / "e.keras"
    assert main(["ensemble", *map(str, members), "--out", str(out)]) == 0
    assert "the mean of 2 models" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(out), "--data", str(sample_root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 56


def test_a_json_ensemble_lists_its_members_and_loads_like_a_model(members, trained, tmp_path, capsys):
    faces = trained[2].images[:12]
    spec = tmp_path / "shipped" / "ensemble.json"
    fer.ensemble(members, spec)
    listed = json.loads(spec.read_text())["members"]
    assert all(not Path(m).is_absolute() for m in listed)  # relative: the folder can move as a whole
    expected = predict_proba(fer.ensemble(members), faces)
    assert np.allclose(predict_proba(load_model(spec), faces), expected, atol=1e-5)
    p = predict_crop(faces[0], model=spec)
    assert p.probabilities["happy"] == pytest.approx(float(expected[0, 3]), abs=1e-5)
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "shipped", moved / "shipped")
    for m in members:  # the member files keep their place relative to the spec
        target = moved / "shipped" / listed[members.index(m)]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(m, target)
    assert np.allclose(predict_proba(load_model(moved / "shipped" / "ensemble.json"), faces), expected, atol=1e-5)
    # Broken specs are clear errors.
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="bad.json: not an ensemble file"):
        load_model(tmp_path / "bad.json")
    (tmp_path / "one.json").write_text(json.dumps({"members": [str(members[0])]}))
    with pytest.raises(ModelError, match="at least two .keras member files"):
        load_model(tmp_path / "one.json")
    (tmp_path / "gone.json").write_text(json.dumps({"members": [str(members[0]), "missing.keras"]}))
    with pytest.raises(ModelError, match="missing.keras: model file not found"):
        load_model(tmp_path / "gone.json")
    with pytest.raises(ValueError, match="pass the members as paths"):
        fer.ensemble([load_model(m) for m in members], tmp_path / "objects.json")


def test_ensemble_refuses_what_it_cannot_average(members, tmp_path):
    with pytest.raises(ValueError, match="at least two"):
        fer.ensemble(members[:1])
    with pytest.raises(ModelError, match="not found"):
        fer.ensemble([members[0], tmp_path / "missing.keras"])
    with pytest.raises(ValueError, match=".keras file, or as a .json list"):
        fer.ensemble(members, tmp_path / "e.h5")


def test_compare_subsets_scores_every_combination_by_its_mean_probabilities():
    from fer.modeling.ensembling import compare_subsets

    labels = np.array([0, 1, 2, 0])
    # a is right on faces 0-1 only, b on faces 2-3 only, c says class 1 everywhere: a and b each
    # score 0.5 but their mean is right on all four; adding c keeps 1.0 (so the smaller pair ranks first).
    probs = {
        "a": np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.4, 0.3, 0.3], [0.3, 0.4, 0.3]]),
        "b": np.array([[0.3, 0.4, 0.3], [0.4, 0.3, 0.3], [0.05, 0.05, 0.9], [0.9, 0.05, 0.05]]),
        "c": np.tile([0.2, 0.6, 0.2], (4, 1)),
    }
    table = compare_subsets(probs, labels)
    assert len(table) == 7
    scores = dict(zip(table["members"], table["accuracy"]))
    assert scores == {"a": 0.5, "b": 0.5, "c": 0.25, "a + b": 1.0, "a + c": 0.5, "b + c": 0.75, "a + b + c": 1.0}
    assert list(table["members"][:2]) == ["a + b", "a + b + c"]
    assert table.loc[0, "macro_f1"] == 1.0 and table.loc[0, "size"] == 2
    with pytest.raises(ValueError, match="share one shape"):
        compare_subsets({"a": probs["a"], "b": probs["b"][:3]}, labels)


def test_soft_targets_mix_labels_and_tempered_teacher_probabilities():
    from fer.modeling.run_data import soft_targets

    teacher = np.array([[0.6, 0.2, 0.2, 0, 0, 0, 0]], dtype=np.float32)
    assert np.allclose(soft_targets(np.array([3]), teacher, 0.0, 1.0), np.eye(7)[[3]])
    assert np.allclose(soft_targets(np.array([3]), teacher, 1.0, 1.0), teacher, atol=1e-6)
    half = soft_targets(np.array([3]), teacher, 0.5, 1.0)
    assert half[0, 3] == pytest.approx(0.5) and half[0, 0] == pytest.approx(0.3) and half.sum() == pytest.approx(1)
    soft = soft_targets(np.array([0]), teacher, 1.0, 2.0)  # T=2 flattens: p**0.5 renormalised
    assert soft[0, 0] < 0.6 and soft[0, 0] == pytest.approx(0.6**0.5 / (0.6**0.5 + 2 * 0.2**0.5), abs=1e-4)


def test_distillation_trains_on_the_teachers_probabilities(members, trained, tmp_path, monkeypatch):
    from fer.data import batches as dataset
    from fer.modeling import training

    seen = []
    original = dataset.FaceBatches.__getitem__

    def spy(self, index):
        x, y = original(self, index)
        seen.append(np.asarray(y))
        return x, y

    monkeypatch.setattr(dataset.FaceBatches, "__getitem__", spy)
    train_faces, val_faces = trained[1], trained[2]
    result = training.train(
        out_dir=tmp_path / "student",
        train_faces=train_faces,
        val_faces=val_faces,
        model="seed",
        epochs=1,
        batch_size=280,
        teacher=str(members[1]),
        distill_weight=1.0,
        verbose=0,
    )
    assert json.loads((result.run_dir / "config.json").read_text())["teacher"] == str(members[1])
    targets = np.concatenate(seen)  # Keras may fetch a batch twice (to peek at its shape)
    # With weight 1 the targets are the teacher's probabilities, not one-hot labels.
    assert not np.isin(targets, [0.0, 1.0]).all()
    teacher_probs = predict_proba(load_model(members[1]), train_faces.images)
    # Every target row is some face's teacher probabilities, and every face's row is a target.
    gaps = np.abs(targets[:, None, :] - teacher_probs[None, :, :]).max(axis=2)
    assert gaps.min(axis=1).max() < 1e-5 and gaps.min(axis=0).max() < 1e-5


def test_a_teacher_with_tta_gives_the_mean_over_its_views(members, trained):
    from fer.modeling.config import TrainConfig
    from fer.modeling.run_data import _teacher_targets

    faces = trained[1].subset(np.arange(20))
    plain = _teacher_targets(TrainConfig(teacher=str(members[0]), distill_weight=1.0), faces)
    flipped = _teacher_targets(TrainConfig(teacher=str(members[0]), distill_weight=1.0, teacher_tta="flip"), faces)
    teacher = load_model(members[0])
    assert np.allclose(plain, predict_proba(teacher, faces.images), atol=1e-5)
    assert np.allclose(flipped, predict_proba(teacher, faces.images, tta="flip"), atol=1e-5)
    assert not np.allclose(flipped, plain, atol=1e-4)
    with pytest.raises(ValueError, match="tta must be"):
        TrainConfig(teacher=str(members[0]), teacher_tta="ten-crop").validate()


def test_a_fer2013_and_a_ferplus_network_average_over_ferplus_classes(tmp_path):
    import keras

    from fer.data.classes import FERPLUS_CLASSES
    from fer.data.sample import make_sample
    from fer.modeling.architectures import build_ensemble, build_model

    seven, eight = build_model("vgg_lite", seed=1), build_model("vgg_lite", n_classes=8, seed=2)
    mixed = build_ensemble([seven, eight])
    faces = make_sample(1).images
    p7, p8, mean = predict_proba(seven, faces), predict_proba(eight, faces), predict_proba(mixed, faces)
    as_eight = np.insert(p7, FERPLUS_CLASSES.index("contempt"), 0.0, axis=1)  # contempt 0 from FER-2013's network
    assert mean == pytest.approx((as_eight + p8) / 2, abs=1e-6)
    mixed.save(tmp_path / "mixed.keras")  # plain Keras layers: saves and loads with safe_mode
    assert predict_proba(keras.models.load_model(tmp_path / "mixed.keras", safe_mode=True), faces) == pytest.approx(
        mean, abs=1e-6
    )
    assert predict_crop(faces[0], model=mixed).probabilities.keys() == set(FERPLUS_CLASSES)
