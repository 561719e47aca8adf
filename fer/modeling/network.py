"""The network a run trains: built with its augmentation at its precision, compiled with its optimizer and
schedule, started from another model's weights, and saved as float32 whatever precision trained it."""

from __future__ import annotations

from pathlib import Path

import keras

from fer.data.augment import Augmentation
from fer.modeling import dual_head
from fer.modeling.architectures import build_model
from fer.modeling.config import TrainConfig
from fer.modeling.files import load_network


def build_for_training(config: TrainConfig, precision: str = "float32") -> keras.Model:
    """`config`'s model with its augmentation, its layers computing in `precision`.

    bfloat16 means Keras' "mixed_bfloat16" policy: float32 weights, bfloat16 compute,
    and a float32 softmax (the output layer pins its dtype), so the loss stays float32.
    """
    policy = {"float32": "float32", "bfloat16": "mixed_bfloat16"}[precision]
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = build_model(
            config.model,
            augmentation=Augmentation.from_dict(config.augmentation),
            seed=config.seed,
            **{"n_classes": len(config.classes), **config.model_options},
        )
        return dual_head.add_heads(model) if config.labels == "dual" else model
    finally:
        keras.config.set_dtype_policy(previous)


def save_float32(model: keras.Model, config: TrainConfig, path: Path, steps_per_epoch: int = 1) -> None:
    """Save `model` as a float32 model: it loads and predicts in float32 on any machine.

    A mixed-precision model is rebuilt in float32 and takes its (float32) weights and, when it
    was compiled, its optimizer state (so a saved final.keras can go on training).
    """
    if model.dtype_policy.name != "float32" or any(layer.dtype_policy.name != "float32" for layer in model.layers):
        plain = build_for_training(config, "float32")
        plain.set_weights(model.get_weights())
        if getattr(model, "optimizer", None) is not None:
            compile_model(plain, config, steps_per_epoch)
            plain.optimizer.build(plain.trainable_variables)
            for mine, theirs in zip(plain.optimizer.variables, model.optimizer.variables):
                mine.assign(theirs)
        model = plain
    model.save(path)


def learning_rate(config: TrainConfig, steps_per_epoch: int):
    """The optimizer's learning rate: a float (plateau schedule) or a warm-up + cosine schedule."""
    if config.lr_schedule == "plateau":
        return config.learning_rate
    warmup = config.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.learning_rate,
        decay_steps=(config.epochs - config.warmup_epochs) * steps_per_epoch,
        alpha=0.0,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(config: TrainConfig, steps_per_epoch: int = 1) -> keras.optimizers.Optimizer:
    lr = learning_rate(config, steps_per_epoch)
    wd = config.weight_decay or None
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=True, weight_decay=wd)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay or 1e-4)
    return keras.optimizers.Adam(lr, weight_decay=wd)


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int = 1) -> keras.Model:
    """`model` compiled with `config`'s optimizer and schedule and cross-entropy on soft targets (label smoothing is
    in the targets themselves: fer.modeling.run_data.smoothed)."""
    if config.labels == "dual":
        model.compile(
            optimizer=make_optimizer(config, steps_per_epoch),
            loss={name: keras.losses.CategoricalCrossentropy() for name in dual_head.HEADS},
            # Weighted: a validation face without a FER+ majority weighs 0 in the FER+ head's accuracy.
            weighted_metrics={name: ["accuracy"] for name in dual_head.HEADS},
        )
        return model
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return model


def _transfer_all_but_head(model: keras.Model, source: keras.Model) -> bool:
    """Copy `source`'s weights into `model` layer by layer where only the output layer differs
    (a 7-class FER-2013 network starting an 8-class FER+ run); False where more than the head differs."""
    ours = [layer for layer in model.layers if layer.weights]
    theirs = [layer for layer in source.layers if layer.weights]
    if len(ours) != len(theirs) or ours[-1].name != "emotion":
        return False
    body = list(zip(ours[:-1], theirs[:-1]))
    if any([w.shape for w in a.weights] != [w.shape for w in b.weights] for a, b in body):
        return False
    for a, b in body:
        a.set_weights(b.get_weights())
    return True


def load_init_weights(model: keras.Model, config: TrainConfig) -> None:
    """Copy the weights of `config.init_weights` (a model file) into `model`, built from `config`.

    A network with another number of classes gives every layer but the output layer, which starts afresh.
    """
    source = load_network(config.init_weights)  # a missing or corrupt file: ModelError
    if config.labels == "dual":
        dual_head.transfer_weights(model, source)
        print(f"init_weights: {config.init_weights} (trunk and matching head columns)", flush=True)
        return
    if source.output_shape[-1] != model.output_shape[-1] and _transfer_all_but_head(model, source):
        print(
            f"init_weights: {source.output_shape[-1]}-class network, all layers but the "
            f"{model.output_shape[-1]}-class output layer taken",
            flush=True,
        )
        return
    weights = source.get_weights()
    try:  # Keras checks the count and every shape; we say what to do about a mismatch
        model.set_weights(weights)
    except ValueError as exc:
        raise ValueError(
            f"init_weights {config.init_weights}: its weights do not fit model={config.model!r} "
            f"model_options={config.model_options} ({exc}). Start from a model of the same architecture "
            "(the config.json of its run says its model and model_options), or set model/model_options to match it."
        ) from exc
