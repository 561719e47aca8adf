import keras
import numpy as np
import pytest

from fer.data.augment import Augmentation, augmentation_layers
from fer.modeling.architectures import build_model


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_seed_is_the_seed_projects_architecture():
    model = build_model("seed")
    assert model.input_shape == (None, 48, 48, 1) and model.output_shape == (None, 7)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [256, 128, 128, 64]
    assert all(c.kernel_size == (3, 3) for c in convs)
    types = _layer_types(model)
    block = ["Conv2D", "BatchNormalization", "Activation", "MaxPooling2D"]
    assert types[:3] == ["InputLayer", "Rescaling", "Conv2D"]
    assert types[2:18] == block * 4
    assert types[18:] == ["GlobalAveragePooling2D", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [512, 64, 7]
    assert all(d.rate == 0.2 for d in model.layers if isinstance(d, keras.layers.Dropout))
    assert dense[-1].activation.__name__ == "softmax"
    assert model.count_params() == 587_847


@pytest.mark.parametrize("name,params", [("vgg_lite", 1_767_463), ("vgg", 10_474_567), ("resnet", 2_763_687)])
def test_stronger_models_and_documented_parameter_counts(name, params):
    model = build_model(name)
    assert model.count_params() == params
    assert model.output_shape == (None, 7)
    import fer.modeling.architectures

    assert f"{params:,}" in fer.modeling.architectures.__doc__


def test_unknown_model_name():
    available = "available: \\['resnet', 'seed', 'vgg', 'vgg_lite'\\]"
    with pytest.raises(ValueError, match=f"Unknown model 'resnet50'; {available}"):
        build_model("resnet50")


def test_resnet_stages_halve_the_map_and_blocks_add_an_identity_shortcut(tmp_path):
    model = build_model("resnet")
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 6  # 2 basic blocks x 3 stages
    assert [tuple(a.output.shape[1:]) for a in adds] == [(24, 24, 64)] * 2 + [(12, 12, 128)] * 2 + [(6, 6, 256)] * 2
    # The second block of a stage adds its input unchanged: with its residual branch silenced (last
    # BatchNorm scale and shift 0) the block outputs relu(its input).
    branch_bn = adds[1].input[0]._keras_history.operation
    assert isinstance(branch_bn, keras.layers.BatchNormalization)
    gamma, beta, mean, var = branch_bn.get_weights()
    branch_bn.set_weights([np.zeros_like(gamma), np.zeros_like(beta), mean, var])
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype("float32")
    block_in = keras.Model(model.input, adds[1].input[1])
    block_out = keras.Model(model.input, model.get_layer(index=model.layers.index(adds[1]) + 1).output)
    np.testing.assert_allclose(block_out(faces), np.maximum(block_in(faces), 0), atol=1e-6)
    # It saves and reloads with safe_mode like every shipped model.
    path = tmp_path / "resnet.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(again.predict(faces, verbose=0), model.predict(faces, verbose=0), atol=1e-6)


def test_augmentation_is_active_in_training_only():
    aug = Augmentation.strong()
    model = build_model("vgg_lite", augmentation=aug, seed=1)
    assert any(layer.name == "augmentation" for layer in model.layers)
    x = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 1)).astype("float32")
    block = model.get_layer("augmentation")
    scaled = x / 255
    assert np.allclose(keras.ops.convert_to_numpy(block(scaled, training=False)), scaled)
    assert not np.allclose(keras.ops.convert_to_numpy(block(scaled, training=True)), scaled)
    # Inference is deterministic despite the random layers.
    assert np.allclose(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_augmentation_config_round_trip_and_validation():
    aug = Augmentation.from_dict({"rotation": 5, "erasing": 0.5})
    assert aug.rotation == 5 and aug.flip is True and aug.erasing == 0.5
    assert Augmentation.from_dict(aug.to_dict()) == aug
    assert Augmentation.none().is_identity() and augmentation_layers(Augmentation.none()) == []
    names = [type(layer).__name__ for layer in augmentation_layers(Augmentation.strong())]
    assert names == [
        "RandomFlip",
        "RandomRotation",
        "RandomTranslation",
        "RandomZoom",
        "RandomContrast",
        "RandomErasing",
    ]
    with pytest.raises(ValueError, match="Unknown augmentation option"):
        Augmentation.from_dict({"bluring": 1})


CAMERA = {"blur": 0.8, "sharpen": 0.5, "gamma": 0.3, "noise": 0.015, "resolution": 0.25}


def test_camera_augmentation_changes_training_faces_only_and_saves_safely(tmp_path):
    aug = Augmentation(rotation=0.0, flip=False, **CAMERA)
    names = [type(layer).__name__ for layer in augmentation_layers(aug)]
    assert names == ["RandomResolution", "RandomGaussianBlur", "RandomSharpness", "RandomGamma", "GaussianNoise"]
    model = build_model("vgg_lite", augmentation=aug, seed=1)
    block = model.get_layer("augmentation")
    faces = np.random.default_rng(0).uniform(0, 1, (8, 48, 48, 1)).astype("float32")
    assert np.array_equal(keras.ops.convert_to_numpy(block(faces, training=False)), faces)
    trained = keras.ops.convert_to_numpy(block(faces, training=True))
    assert trained.shape == faces.shape and not np.allclose(trained, faces)
    path = tmp_path / "camera.keras"
    model.save(path)  # the custom layers are registered: the file loads with safe_mode, no code run
    again = keras.saving.load_model(path, safe_mode=True)
    x = faces * 255
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_each_camera_layer_does_what_it_says():
    from fer.data.augment import RandomGamma, RandomResolution

    ramp = np.tile(np.linspace(0.05, 0.95, 48, dtype="float32"), (16, 48, 1))[..., None]
    gamma = keras.ops.convert_to_numpy(RandomGamma(0.5, seed=3)(ramp, training=True))
    per_image = np.log(gamma[:, 0, 10, 0]) / np.log(ramp[:, 0, 10, 0])  # the exponent each image got
    assert np.all((per_image > np.exp(-0.5) - 1e-3) & (per_image < np.exp(0.5) + 1e-3)) and per_image.std() > 0.05
    checker = np.indices((48, 48)).sum(axis=0) % 2
    faces = np.repeat(checker[None, ..., None].astype("float32"), 64, axis=0)
    lowered = keras.ops.convert_to_numpy(RandomResolution(0.5, seed=3)(faces, training=True))
    changed = ~np.isclose(lowered, faces).all(axis=(1, 2, 3))
    assert 16 < changed.sum() < 48  # about half the faces lost their finest detail, the others are untouched
    assert np.allclose(lowered[changed].mean(axis=(1, 2, 3)), 0.5, atol=0.05)  # the checkerboard averages out


def test_seed_rotation_is_thirty_degrees():
    rotation = augmentation_layers(Augmentation())[1]
    assert isinstance(rotation, keras.layers.RandomRotation)
    assert rotation.factor == pytest.approx((-30 / 360, 30 / 360))
