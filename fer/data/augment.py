"""Training-time augmentation as Keras 3 preprocessing layers.

The layers live inside the model (`fer.modeling.architectures.build_model(..., augmentation=...)`), so
they run on whatever device trains the model, are active only in training and are
identity at inference: a saved model takes raw 0..255 gray faces either way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras


@dataclass
class Augmentation:
    """What to randomise during training. The defaults are the seed project's recipe.

    rotation: max rotation in degrees (seed: 30). flip: random horizontal flip.
    shift: max translation as a fraction of the side (random crop of a padded image).
    zoom: max zoom in/out as a fraction. erasing: probability of erasing one random
    rectangle (random erasing, Zhong et al. 2017). contrast: max contrast change factor.

    Camera photos (off by default; what a phone or webcam does to a face that FER's web crops rarely show):
    blur: max Gaussian blur sigma in pixels. sharpen: max sharpening factor. gamma: max |log gamma| (exposure
    curves). noise: sensor noise, standard deviation as a fraction of the gray range. resolution: probability
    that a face was seen at a lower resolution (20, 28 or 36 px) and scaled back up.
    """

    rotation: float = 30.0
    flip: bool = True
    shift: float = 0.0
    zoom: float = 0.0
    erasing: float = 0.0
    contrast: float = 0.0
    blur: float = 0.0
    sharpen: float = 0.0
    gamma: float = 0.0
    noise: float = 0.0
    resolution: float = 0.0

    @classmethod
    def none(cls) -> Augmentation:
        return cls(rotation=0.0, flip=False)

    @classmethod
    def strong(cls) -> Augmentation:
        """The recipe of the best from-scratch FER-2013 networks (shift/zoom crops, erasing)."""
        return cls(rotation=10.0, flip=True, shift=0.2, zoom=0.2, erasing=0.5, contrast=0.2)

    @classmethod
    def from_dict(cls, options: dict | None) -> Augmentation:
        if options is None:
            return cls()
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"Unknown augmentation option(s) {sorted(unknown)}; known: {list(cls.__dataclass_fields__)}"
            )
        return cls(**options)

    def to_dict(self) -> dict:
        return asdict(self)

    def is_identity(self) -> bool:
        return self == Augmentation.none()


def augmentation_layers(aug: Augmentation, seed: int | None = None) -> list[keras.layers.Layer]:
    """The preprocessing layers for `aug`, in the order they are applied (on 0..1 images)."""
    layers = []
    if aug.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if aug.rotation:
        # Keras takes a fraction of a full turn: 30 degrees = 30/360.
        layers.append(keras.layers.RandomRotation(aug.rotation / 360.0, fill_mode="reflect", seed=seed))
    if aug.shift:
        layers.append(keras.layers.RandomTranslation(aug.shift, aug.shift, fill_mode="reflect", seed=seed))
    if aug.zoom:
        layers.append(keras.layers.RandomZoom(aug.zoom, fill_mode="reflect", seed=seed))
    if aug.contrast:
        layers.append(keras.layers.RandomContrast(aug.contrast, value_range=(0, 1), seed=seed))
    if aug.erasing:
        layers.append(
            keras.layers.RandomErasing(
                factor=aug.erasing, scale=(0.02, 0.25), fill_value=0.5, value_range=(0, 1), seed=seed
            )
        )
    layers += _camera_layers(aug, seed)
    _mark_jittable_on_jax(layers)
    return layers


def _camera_layers(aug: Augmentation, seed: int | None) -> list[keras.layers.Layer]:
    """The photometric layers, after the geometric ones: a camera degrades the scene it was pointed at."""
    layers = []
    if aug.resolution:
        layers.append(RandomResolution(aug.resolution, seed=seed))
    if aug.blur:
        layers.append(
            keras.layers.RandomGaussianBlur(
                factor=1.0, kernel_size=5, sigma=(0.1, aug.blur), value_range=(0, 1), seed=seed
            )
        )
    if aug.sharpen:
        layers.append(keras.layers.RandomSharpness(aug.sharpen, value_range=(0, 1), seed=seed))
    if aug.gamma:
        layers.append(RandomGamma(aug.gamma, seed=seed))
    if aug.noise:
        layers.append(keras.layers.GaussianNoise(aug.noise, seed=seed))
    return layers


@keras.saving.register_keras_serializable(package="fer")
class RandomGamma(keras.layers.Layer):
    """Training only: each image (0..1) raised to a gamma drawn log-uniformly in [exp(-limit), exp(limit)]."""

    def __init__(self, limit: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.limit, self.seed = float(limit), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        shape = (keras.ops.shape(images)[0], 1, 1, 1)
        log_gamma = keras.random.uniform(shape, -self.limit, self.limit, seed=self.seed_generator)
        clipped = keras.ops.clip(images, 1e-6, 1.0)
        return keras.ops.power(clipped, keras.ops.cast(keras.ops.exp(log_gamma), images.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "limit": self.limit, "seed": self.seed}


@keras.saving.register_keras_serializable(package="fer")
class RandomResolution(keras.layers.Layer):
    """Training only: with probability `rate` an image is shrunk to 20, 28 or 36 px (area) and scaled back up
    (bilinear), as a small face in a photo is. Every size is computed for the batch and one picked per image,
    so all shapes stay static (XLA compiles it on any backend)."""

    SIDES = (20, 28, 36)

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = float(rate), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        height, width = images.shape[1], images.shape[2]
        versions = [images] + [
            keras.ops.image.resize(keras.ops.image.resize(images, (side, side), interpolation="area"), (height, width))
            for side in self.SIDES
        ]
        n = keras.ops.shape(images)[0]
        degrade = keras.random.uniform((n,), seed=self.seed_generator) < self.rate
        pick = keras.random.randint((n,), 1, len(versions), seed=self.seed_generator)
        choice = keras.ops.where(degrade, pick, 0)
        mask = keras.ops.cast(keras.ops.one_hot(choice, len(versions)), images.dtype)  # (n, versions)
        stacked = keras.ops.stack(versions, axis=1)  # (n, versions, h, w, c)
        return keras.ops.einsum("nv,nvhwc->nhwc", mask, stacked)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


# Keras marks its affine-transform layers supports_jit=False, because TensorFlow's XLA lacks the op they use there.
# One such layer turns XLA off for the whole model, and on JAX every step then runs op by op: 0.9 s a training step
# of vgg_lite on an H200, against ~5 ms compiled. JAX's own affine transform compiles, so on JAX say so.
_AFFINE_LAYERS = (keras.layers.RandomRotation, keras.layers.RandomTranslation, keras.layers.RandomZoom)


def _mark_jittable_on_jax(layers) -> None:
    if keras.backend.backend() == "jax":
        for layer in layers:
            if isinstance(layer, _AFFINE_LAYERS):
                layer.supports_jit = True


def _all_layers(layer: keras.layers.Layer):
    yield layer
    for sub in getattr(layer, "layers", ()):  # a model, or a Sequential of augmentation layers inside one
        yield from _all_layers(sub)


def allow_xla_on_jax(model: keras.Model) -> keras.Model:
    """Let a model loaded from a file (whose augmentation layers came back supports_jit=False) run under XLA on
    JAX, as the model that trained it did. Keras decided jit_compile when it compiled the model while loading it;
    decide again. No-op on other backends, and where some other layer really can't be compiled."""
    if keras.backend.backend() == "jax":
        layers = list(_all_layers(model))
        _mark_jittable_on_jax(layers)
        if not model.jit_compile and all(layer.supports_jit for layer in layers):
            model.jit_compile = True
    return model
