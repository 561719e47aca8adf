"""Keras 3 model builders, by name: `build_model("seed")`, `build_model("vgg")`, ...

Models are written with `keras.layers` only, so the same code trains on TensorFlow
(CPU here) and on JAX (the GPU machine). Every model takes raw 0..255 gray faces of
shape (48, 48, 1): rescaling and the training-only augmentation layers are part of it.

Parameter counts (7 classes; augmentation layers have none):
    seed       587,847   the seed project's 4-block BN CNN with global average pooling
    vgg_lite 1,767,463   VGG-style, 32-64-128-256 filters: trainable on a 2-core CPU
    vgg     10,474,567   Khaireddin & Chen 2021 (arXiv:2105.03588) widths 64-128-256-512,
                         with 1024-unit dense layers instead of 4096 (42 MB as float32)
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from fer.augment import Augmentation, augmentation_layers
from fer.data import EMOTIONS
from fer.images import FACE_SIZE

INPUT_SHAPE = (FACE_SIZE, FACE_SIZE, 1)


def _stem(inputs, augmentation: Augmentation | None, seed: int | None):
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if augmentation is not None and not augmentation.is_identity():
        x = keras.Sequential(augmentation_layers(augmentation, seed), name="augmentation")(x)
    return x


def _classifier_head(x, dense_units, dropout: float, n_classes: int):
    for units in dense_units:
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    # float32 softmax even under mixed precision: the loss and probabilities stay float32.
    return layers.Dense(n_classes, activation="softmax", name="emotion", dtype="float32")(x)


def build_seed(
    n_classes: int = len(EMOTIONS),
    augmentation: Augmentation | None = None,
    dropout: float = 0.2,
    bn_momentum: float = 0.99,
    seed: int | None = None,
) -> keras.Model:
    """The seed project's CNN, layer for layer.

    Four blocks of Conv2D 3x3 (256, 128, 128, 64 filters) + BatchNorm + ReLU + MaxPool,
    global average pooling, Dense 512 + Dropout, Dense 64 + Dropout, softmax.
    """
    inputs = keras.Input(INPUT_SHAPE, name="face")
    x = _stem(inputs, augmentation, seed)
    for filters in (256, 128, 128, 64):
        x = layers.Conv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _classifier_head(x, (512, 64), dropout, n_classes), name="seed")


def build_vgg(
    n_classes: int = len(EMOTIONS),
    augmentation: Augmentation | None = None,
    base_filters: int = 64,
    dense_units: tuple[int, ...] = (1024, 1024),
    dropout: float = 0.4,
    weight_decay: float = 0.0,
    bn_momentum: float = 0.99,
    seed: int | None = None,
    name: str = "vgg",
) -> keras.Model:
    """VGG-style network for 48x48 faces after Khaireddin & Chen 2021.

    Four stages of two Conv 3x3 + BatchNorm + ReLU and a MaxPool, filters doubling
    from `base_filters`; the 3x3x(8*base_filters) map is flattened into dense layers.
    `weight_decay` adds L2 on conv and dense kernels (the paper uses SGD weight decay).
    `bn_momentum`: lower it (0.9) for tiny datasets, where 0.99 leaves BatchNorm's
    inference statistics near their initial values after a few hundred steps.
    """
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    inputs = keras.Input(INPUT_SHAPE, name="face")
    x = _stem(inputs, augmentation, seed)
    for stage in range(4):
        filters = base_filters * 2**stage
        for _ in range(2):
            # No conv bias: BatchNorm's beta does that job.
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg)(x)
            x = layers.BatchNormalization(momentum=bn_momentum)(x)
            x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    for units in dense_units:
        x = layers.Dense(units, kernel_regularizer=reg)(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)
        x = layers.Activation("relu")(x)
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="emotion", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def build_vgg_lite(**options) -> keras.Model:
    """`vgg` at half width with one 256-unit dense layer: ~4x cheaper, for CPU training."""
    options = {"base_filters": 32, "dense_units": (256,), "dropout": 0.4, "name": "vgg_lite", **options}
    return build_vgg(**options)


MODELS: dict[str, Callable[..., keras.Model]] = {
    "seed": build_seed,
    "vgg": build_vgg,
    "vgg_lite": build_vgg_lite,
}


def build_model(name: str, **options) -> keras.Model:
    """Build the (uncompiled) model registered as `name` with builder keyword options."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; available: {sorted(MODELS)}")
    if isinstance(options.get("augmentation"), dict):
        options["augmentation"] = Augmentation.from_dict(options["augmentation"])
    return MODELS[name](**options)
