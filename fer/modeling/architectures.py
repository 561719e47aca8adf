"""Keras 3 model builders, by name: `build_model("seed")`, `build_model("vgg")`, ...

Models are written with `keras.layers` only, so the same code trains on TensorFlow
(CPU here) and on JAX (the GPU machine). Every model takes raw 0..255 gray faces of
shape (48, 48, 1): rescaling and the training-only augmentation layers are part of it.

Parameter counts (7 classes; augmentation layers have none):
    seed       587,847   the seed project's 4-block BN CNN with global average pooling
    vgg_lite 1,767,463   VGG-style, 32-64-128-256 filters: trainable on a 2-core CPU
    vgg     10,474,567   Khaireddin & Chen 2021 (arXiv:2105.03588) widths 64-128-256-512,
                         with 1024-unit dense layers instead of 4096 (42 MB as float32)
    resnet   2,763,687   ResNet-18-style basic blocks for 48x48 inputs: a 3x3 stem, then
                         2 blocks each at 64 (24x24), 128 (12x12) and 256 (6x6) filters
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from fer.data.augment import Augmentation, allow_xla_on_jax, augmentation_layers
from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.data.images import FACE_SIZE
from fer.errors import ModelError

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


def _basic_block(x, filters: int, stride: int, reg, bn_momentum: float):
    """Two 3x3 convs with an identity (or strided 1x1 projection) shortcut, He et al. 2016."""
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, kernel_regularizer=reg)(x)
    y = layers.BatchNormalization(momentum=bn_momentum)(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg)(y)
    # BN scale starts at 1, not 0: with "zero-init" residual branches (Goyal et al. 2017) and SGD at
    # lr 0.01 with weight decay the net did not learn in 4 epochs here (train accuracy 17%).
    y = layers.BatchNormalization(momentum=bn_momentum)(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, kernel_regularizer=reg)(x)
        shortcut = layers.BatchNormalization(momentum=bn_momentum)(shortcut)
    return layers.Activation("relu")(layers.Add()([y, shortcut]))


def build_resnet(
    n_classes: int = len(EMOTIONS),
    augmentation: Augmentation | None = None,
    stem_filters: int = 32,
    base_filters: int = 64,
    blocks: tuple[int, ...] = (2, 2, 2),
    dropout: float = 0.3,
    weight_decay: float = 0.0,
    bn_momentum: float = 0.99,
    seed: int | None = None,
    name: str = "resnet",
) -> keras.Model:
    """A small ResNet for 48x48 faces (the CIFAR-style layout of He et al. 2016).

    A 3x3 stem conv at full resolution, then one stage per entry of `blocks`, each halving
    the map with a strided first block and doubling the filters from `base_filters`
    (48 -> 24 -> 12 -> 6), global average pooling, dropout and a softmax. About twice the
    multiply-adds of `vgg_lite` (about half its training img/s), with 2.8M parameters.
    """
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    inputs = keras.Input(INPUT_SHAPE, name="face")
    x = _stem(inputs, augmentation, seed)
    x = layers.Conv2D(stem_filters, 3, padding="same", use_bias=False, kernel_regularizer=reg)(x)
    x = layers.BatchNormalization(momentum=bn_momentum)(x)
    x = layers.Activation("relu")(x)
    for stage, n_blocks in enumerate(blocks):
        for block in range(n_blocks):
            x = _basic_block(x, base_filters * 2**stage, 2 if block == 0 else 1, reg, bn_momentum)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="emotion", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


MODELS: dict[str, Callable[..., keras.Model]] = {
    "seed": build_seed,
    "vgg": build_vgg,
    "vgg_lite": build_vgg_lite,
    "resnet": build_resnet,
}


def _renamed_copy(model: keras.Model, name: str) -> keras.Model:
    """The same network under another name (nested models need unique names), weights shared by value."""
    config = model.get_config()
    config["name"] = name
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def _as_ferplus(output, index: int):
    """A FER-2013 member's 7 probabilities as FER+'s 8 (contempt 0), by a frozen 0/1 matrix: plain Keras layers,
    so the ensemble still saves as an ordinary `.keras` file and loads with safe_mode=True."""
    import numpy as np

    mapping = np.zeros((len(EMOTIONS), len(FERPLUS_CLASSES)), np.float32)
    for i, emotion in enumerate(EMOTIONS):
        mapping[i, FERPLUS_CLASSES.index(emotion)] = 1.0
    layer = layers.Dense(len(FERPLUS_CLASSES), use_bias=False, trainable=False, name=f"member_{index}_to_ferplus")
    mapped = layer(output)
    layer.set_weights([mapping])
    return mapped


def build_ensemble(members: list[keras.Model], name: str = "ensemble") -> keras.Model:
    """One model whose output is the mean of `members`' softmax outputs (all take the same 48x48x1 input).

    The members are nested models and the mean a `keras.layers.Average`: an ordinary functional
    model that saves as one `.keras` file and loads with safe_mode=True. FER-2013 (7-class) and FER+
    (8-class) members may be mixed: the mean is then over FER+'s eight classes, a FER-2013 member
    giving contempt 0 (its other probabilities are averaged with the FER+ members' as they are).
    """
    if len(members) < 2:
        raise ValueError(f"An ensemble needs at least two members, got {len(members)}")
    sizes = {m.output_shape[-1] for m in members}
    inputs_shapes = {tuple(m.input_shape[1:]) for m in members}
    if len(inputs_shapes) != 1 or not sizes <= {len(EMOTIONS), len(FERPLUS_CLASSES)} or len(sizes) > 2:
        shapes = sorted({(tuple(m.input_shape[1:]), m.output_shape[-1]) for m in members})
        raise ModelError(f"Ensemble members disagree on input/output shapes: {shapes}")
    inputs = keras.Input(members[0].input_shape[1:], name="face")
    outputs = [_renamed_copy(m, f"member_{i}")(inputs) for i, m in enumerate(members)]
    if len(sizes) == 2:  # mixed label sets: FER-2013 members' outputs re-expressed over FER+'s classes
        outputs = [
            _as_ferplus(out, i) if m.output_shape[-1] == len(EMOTIONS) else out
            for i, (m, out) in enumerate(zip(members, outputs))
        ]
    mean = keras.layers.Average(name="emotion", dtype="float32")(outputs)
    # The copies' augmentation layers come back un-jittable, as from a file: see fer.data.augment.allow_xla_on_jax.
    return allow_xla_on_jax(keras.Model(inputs, mean, name=name))


def check_model_options(name: str, options: dict) -> None:
    """ValueError for an unknown model name or an option its builder does not take (before any work is done)."""
    import inspect

    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; available: {sorted(MODELS)}")
    builder = build_vgg if name == "vgg_lite" else MODELS[name]  # vgg_lite passes its options on to build_vgg
    accepted = set(inspect.signature(builder).parameters) - {"augmentation", "seed", "name"}
    unknown = set(options) - accepted
    if unknown:
        raise ValueError(
            f"model_options {sorted(unknown)} are not options of model {name!r}; it takes {sorted(accepted)}"
        )


def build_model(name: str, **options) -> keras.Model:
    """Build the (uncompiled) model registered as `name` with builder keyword options."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; available: {sorted(MODELS)}")
    if isinstance(options.get("augmentation"), dict):
        options["augmentation"] = Augmentation.from_dict(options["augmentation"])
    return MODELS[name](**options)
