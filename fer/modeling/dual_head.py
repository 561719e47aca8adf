"""Dual-head networks: one trunk, a FER+ head (8 classes) and a FER-2013 head (7), trained on both label sets.

The two heads are the model's two outputs, in the order of HEADS. Every training face has FER-2013's label; a
face whose FER+ votes are unusable (not a face, unknown) only trains the FER-2013 head (its FER+ weight is 0).
Each head's target mixes its labels with a teacher's probabilities (distillation), as `train` sets up.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from fer.data import ferplus
from fer.data.batches import FaceBatches, mix_batch
from fer.data.classes import EMOTIONS, FERPLUS_CLASSES, classes_for_size
from fer.data.images import to_model_input
from fer.data.loading import FaceSet, class_weights

# Output order of a dual-head model: its output layers carry these names.
HEADS: dict[str, tuple[str, ...]] = {"ferplus": FERPLUS_CLASSES, "fer2013": EMOTIONS}


def add_heads(model: keras.Model) -> keras.Model:
    """`model` (a single-head network built by fer.modeling.architectures) with its output layer replaced by
    one softmax head per label set, both on the features the old output layer read."""
    features = model.get_layer("emotion").input
    outputs = [
        layers.Dense(len(classes), activation="softmax", name=name, dtype="float32")(features)
        for name, classes in HEADS.items()
    ]
    return keras.Model(model.inputs, outputs, name=f"{model.name}_dual")


def is_dual(model) -> bool:
    """Whether `model` is a dual-head network (two outputs named as in HEADS)."""
    return list(getattr(model, "output_names", None) or []) == list(HEADS)


def transfer_weights(model: keras.Model, source: keras.Model) -> None:
    """Start dual-head `model` from `source`: a dual network as it is, or a single-head network's trunk, with
    each head's class columns taken from `source`'s output layer where the class exists there (FER+'s 8 and
    FER-2013's 7 share seven emotions; contempt in a FER-2013 source starts afresh)."""
    if is_dual(source):
        model.set_weights(source.get_weights())
        return
    ours = [layer for layer in model.layers if layer.weights and layer.name not in HEADS]
    theirs = [layer for layer in source.layers if layer.weights]
    head = theirs.pop()
    if len(ours) != len(theirs) or any(
        [w.shape for w in a.weights] != [w.shape for w in b.weights] for a, b in zip(ours, theirs)
    ):
        raise ValueError(
            f"init_weights: the network's trunk ({len(theirs)} layers with weights) does not fit this model's "
            f"({len(ours)}); start from a network of the same architecture"
        )
    for a, b in zip(ours, theirs):
        a.set_weights(b.get_weights())
    kernel, bias = head.get_weights()
    source_classes = classes_for_size(kernel.shape[1])
    for name, classes in HEADS.items():
        layer = model.get_layer(name)
        k, b = layer.get_weights()
        for i, emotion in enumerate(classes):
            if emotion in source_classes:
                j = source_classes.index(emotion)
                k[:, i], b[i] = kernel[:, j], bias[j]
        layer.set_weights([k, b])


def mix(label_targets: np.ndarray, teacher_probs: np.ndarray | None, weight: float, temperature: float) -> np.ndarray:
    """(1 - weight) * label targets + weight * the teacher's probabilities tempered by `temperature`."""
    if teacher_probs is None:
        return label_targets.astype(np.float32)
    tempered = np.power(np.clip(teacher_probs, 1e-12, 1.0), 1.0 / temperature)
    tempered /= tempered.sum(axis=1, keepdims=True)
    return ((1 - weight) * label_targets + weight * tempered).astype(np.float32)


def head_targets(faces: FaceSet, teachers: dict[str, np.ndarray | None], weight: float, temperature: float):
    """(targets, usable) per head for `faces` (FER-2013 labels, FER+ votes attached): soft targets mixing the
    labels (FER+ vote shares; FER-2013 one-hot) with each head's teacher, and which faces each head learns from."""
    votes = faces.votes
    label_targets = {
        "ferplus": ferplus.vote_distribution(votes),
        "fer2013": np.eye(len(EMOTIONS), dtype=np.float32)[faces.labels],
    }
    usable = {"ferplus": ferplus.usable_for_votes(votes), "fer2013": np.ones(len(faces), bool)}
    targets = {name: mix(label_targets[name], teachers.get(name), weight, temperature) for name in HEADS}
    return targets, usable


def head_weights(targets: dict[str, np.ndarray], usable: dict[str, np.ndarray], power: float) -> dict:
    """Per-face sample weights per head: class weights (balanced ** power) of each face's top target class,
    0 where the head has no usable label."""
    weights = {}
    for name, y in targets.items():
        top = y.argmax(axis=1)
        table = class_weights(top[usable[name]], power, y.shape[1]) if power else {}
        w = np.array([table.get(int(c), 1.0) for c in top], np.float32)
        weights[name] = np.where(usable[name], w, 0.0).astype(np.float32)
    return weights


def validation_data(val: FaceSet, to_input) -> tuple:
    """(x, targets, weights) for Keras' validation: the FER+ majority (faces without one weigh 0) and FER-2013."""
    majority = ferplus.majority_labels(val.votes)
    has = majority >= 0
    y_plus = np.eye(len(FERPLUS_CLASSES), dtype=np.float32)[np.where(has, majority, 0)]
    y_2013 = np.eye(len(EMOTIONS), dtype=np.float32)[val.labels]
    return to_input(val.images), (y_plus, y_2013), (has.astype(np.float32), np.ones(len(val), np.float32))


class DualBatches(FaceBatches):
    """FaceBatches yielding (faces, (FER+ targets, FER-2013 targets), (FER+ weights, FER-2013 weights))."""

    def __init__(self, images, targets: dict, weights: dict, batch_size: int = 64, **kwargs):
        super().__init__(images, targets["fer2013"].argmax(axis=1), batch_size, **kwargs)
        self.head_targets = tuple(np.asarray(targets[name], np.float32) for name in HEADS)
        self.head_weights = tuple(np.asarray(weights[name], np.float32) for name in HEADS)

    def __getitem__(self, index):
        batch = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = batch[: len(batch) - len(batch) % self.multiple_of]
        x = to_model_input(self.images[batch])
        targets, weights = [t[batch] for t in self.head_targets], [w[batch] for w in self.head_weights]
        x, targets, weights = mix_batch(x, targets, weights, self.mix, self.mix_alpha, self._mix_rng(index))
        return x, tuple(targets), tuple(weights)


class MeanValAccuracy(keras.callbacks.Callback):
    """logs['val_accuracy'] = the mean of the two heads' validation accuracies: what a dual run monitors."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and all(f"val_{name}_accuracy" in logs for name in HEADS):
            logs["val_accuracy"] = float(np.mean([logs[f"val_{name}_accuracy"] for name in HEADS]))
