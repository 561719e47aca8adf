"""fer.explain: occlusion maps that say what the network looked at, and checks that such maps can fail."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fer
from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.data.sample import make_sample
from fer.inference.explain import explain, face_maps, heat_overlay

skdata = pytest.importorskip("skimage.data")


def _toy_model(region: tuple[slice, slice]):
    """A 7-class 'emotion model' that looks only at `region`: the brighter it is, the surer of class 0."""
    import keras

    mask = np.zeros((48, 48, 1), np.float32)
    mask[region] = 1.0
    inputs = keras.Input((48, 48, 1))
    mean = keras.layers.Lambda(lambda x: keras.ops.sum(x * mask, axis=(1, 2, 3), keepdims=False)[:, None] / mask.sum())(
        inputs
    )
    logits = keras.layers.Dense(7, kernel_initializer=keras.initializers.Constant(0.0))(mean / 255.0)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    dense = model.layers[-2]
    kernel = np.zeros((1, 7), np.float32)
    kernel[0, 0] = 8.0  # class 0's logit grows with the region's brightness
    dense.set_weights([kernel, np.zeros(7, np.float32)])
    return model


def test_the_map_peaks_where_the_only_signal_is():
    region = (slice(30, 42), slice(6, 18))  # lower left: where a mouth corner would be
    model = _toy_model(region)
    face = np.random.default_rng(0).integers(40, 90, (48, 48), dtype=np.uint8)
    face[region] = 230
    (saliency,) = face_maps(model, face, [0])
    y, x = np.unravel_index(saliency.argmax(), saliency.shape)
    assert 30 <= y < 42 and 6 <= x < 18
    inside, outside = (
        saliency[region].mean(),
        np.delete(saliency.ravel(), np.ravel_multi_index(np.mgrid[region].reshape(2, -1), (48, 48))).mean(),
    )
    assert inside > 5 * outside  # hiding anything else changes nothing the model reads


def test_a_map_is_deterministic_and_scaled_to_one():
    face = make_sample(1, seed=4).images[0]
    a = fer.explain(face, target="all")
    b = fer.explain(face, target="all")
    assert len(a) == 1 and set(a[0].maps) == set(FERPLUS_CLASSES)
    for c in FERPLUS_CLASSES:
        assert np.array_equal(a[0].maps[c], b[0].maps[c])
        assert a[0].maps[c].dtype == np.float32 and a[0].maps[c].min() >= 0 and a[0].maps[c].max() <= 1


def test_the_trained_networks_map_is_not_what_random_weights_give():
    """Adebayo et al. 2018's model-randomisation check: the explanation must depend on what the network learned."""
    from fer.data.loading import load_split
    from fer.inference.models import load_model
    from fer.modeling.architectures import build_model

    try:
        faces = load_split(fer.data_dir(), "test").images[:12]
    except Exception:
        faces = make_sample(2, seed=7).images[:12]
    trained = load_model(engine="auto")
    random = build_model("vgg_lite", n_classes=8, seed=0)
    correlations = []
    for face in faces:
        target = int(np.argmax(trained.predict_on_batch(face[None, ..., None].astype(np.float32))))
        (ours,) = face_maps(trained, face, [target])
        (theirs,) = face_maps(random, face, [target])
        if ours.std() > 0 and theirs.std() > 0:
            correlations.append(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1])
    assert len(correlations) >= 8 and np.mean(correlations) < 0.3, correlations  # trained vs random: ~0.0


def test_explain_maps_each_face_onto_the_photo_and_checks_its_targets(tmp_path):
    astronaut = skdata.astronaut()
    (e,) = explain(astronaut)
    assert e.prediction.emotion == e.target == "happy" and e.saliency.shape == (48, 48)
    photo = e.photo_map(astronaut.shape)
    (x0, y0), side = e.origin, e.side
    x, y, w, h = e.prediction.box
    assert x0 <= x and y0 <= y and x + w <= x0 + side and y + h <= y0 + side  # the crop holds the detected face
    inside = np.zeros(photo.shape, bool)
    inside[y0 : y0 + side, x0 : x0 + side] = True
    assert photo[inside].max() == pytest.approx(1, abs=0.1) and photo[~inside].max() == 0  # on the face only
    assert e.overlay().shape == (192, 192, 3) and heat_overlay(astronaut, photo).shape == astronaut.shape
    assert explain(astronaut, target=["sad", "fear"])[0].target == "sad"
    with pytest.raises(ValueError, match=r"does not answer in: \['joy'\]"):
        explain(astronaut, target="joy")
    many = explain([astronaut, make_sample(1).images[0]])
    assert len(many) == 2 and len(many[0]) == 1 and many[1][0].origin is None  # a crop: no place in a photo
    assert np.array_equal(many[0][0].saliency, e.saliency)


def test_a_dual_models_heads_are_explained_in_their_own_classes(tmp_path):
    from fer.modeling.architectures import build_model
    from fer.modeling.dual_head import add_heads

    add_heads(build_model("seed", n_classes=8)).save(tmp_path / "dual.keras")
    face = make_sample(1, seed=2).images[0]
    (plus,) = explain(face, model=tmp_path / "dual.keras", target="all")
    (f2013,) = explain(face, model=tmp_path / "dual.keras", labels="fer2013", target="all")
    assert tuple(plus.maps) == FERPLUS_CLASSES and tuple(f2013.maps) == EMOTIONS


def test_the_cli_writes_one_explanation_per_face_with_names_that_cannot_clash(tmp_path, capsys):
    from PIL import Image

    from fer.cli import main

    astronaut = skdata.astronaut()
    for folder in ("a", "b"):  # the same file name twice: the outputs keep their folder
        (tmp_path / folder).mkdir()
        Image.fromarray(astronaut).save(tmp_path / folder / "photo.png")
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--explain", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_explain.png"))
    assert len(rows) == 2 and len(written) == 2 and len(set(written)) == 2, written
    assert all(name.endswith("_face0_happy_explain.png") for name in written)
    assert main(["predict", str(tmp_path / "a"), "--explain"]) == 2  # nowhere to write
    assert "--out" in capsys.readouterr().err
