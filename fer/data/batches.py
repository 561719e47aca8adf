"""Feeding in-memory face arrays to Keras: a shuffling, batching `keras.utils.PyDataset`, with mixup/CutMix."""

from __future__ import annotations

import keras
import numpy as np

from fer.data.classes import EMOTIONS
from fer.data.images import to_model_input

MIXES = ("none", "mixup", "cutmix")


def mix_batch(x: np.ndarray, targets: list, weights: list | None, how: str, alpha: float, rng: np.random.Generator):
    """(x, targets, weights) of a batch mixed with a shuffled copy of itself: mixup (Zhang et al. 2018: images and
    targets blended by lam ~ Beta(alpha, alpha)) or CutMix (Yun et al. 2019: a box of the other face pasted in,
    targets blended by the area each face keeps). Sample weights blend like the targets."""
    if how == "none" or len(x) < 2:
        return x, targets, weights
    lam = float(rng.beta(alpha, alpha))
    order = rng.permutation(len(x))
    if how == "mixup":
        x = lam * x + (1 - lam) * x[order]
    else:
        h, w = x.shape[1:3]
        ch, cw = int(round(h * np.sqrt(1 - lam))), int(round(w * np.sqrt(1 - lam)))
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.copy()
        x[:, y0:y1, x0:x1] = x[order, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the share of its own face each image keeps
    targets = [lam * t + (1 - lam) * t[order] for t in targets]
    if weights is not None:
        weights = [lam * v + (1 - lam) * v[order] for v in weights]
    return x, targets, weights


class FaceBatches(keras.utils.PyDataset):
    """Batches of (faces, one-hot labels) from uint8 arrays held in memory.

    Converting per batch keeps memory at uint8 size (32k faces = 74 MB instead of 300 MB
    as float32). Shuffling is seeded by epoch number, so a resumed run sees the same
    order as an uninterrupted one. Augmentation is not done here: it is part of the model.
    """

    def __init__(
        self,
        images,
        labels,
        batch_size: int = 64,
        shuffle: bool = True,
        seed: int = 0,
        targets=None,
        n_classes: int = len(EMOTIONS),
        multiple_of: int = 1,
        mix: str = "none",
        mix_alpha: float = 0.2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if targets is not None and len(targets) != len(labels):
            raise ValueError(f"{len(targets)} target rows but {len(labels)} labels")
        # Soft targets (N, n_classes) replace the one-hot labels, e.g. a teacher's probabilities (distillation).
        self.targets = None if targets is None else np.asarray(targets, dtype=np.float32)
        if len(images) == 0:
            raise ValueError("FaceBatches needs at least one image")
        self.images = np.asarray(images)
        self.labels = np.asarray(labels)
        self.n_classes = int(n_classes)
        # Data-parallel training splits each batch across devices, so a batch must be a multiple of their
        # count: the epoch's last, partial batch is cut down to one (at most multiple_of - 1 faces skipped).
        self.multiple_of = max(1, int(multiple_of))
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._order = self._make_order()
        if mix not in MIXES:
            raise ValueError(f"mix must be one of {MIXES}, got {mix!r}")
        self.mix, self.mix_alpha = mix, float(mix_alpha)

    def _mix_rng(self, index: int) -> np.random.Generator:
        """Seeded by (seed, epoch, batch): a resumed run mixes the batches an uninterrupted one would."""
        return np.random.default_rng((self.seed, self.epoch, index, 7))

    def _make_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.labels))
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.labels))

    def __len__(self) -> int:
        full, rest = divmod(len(self.labels), self.batch_size)
        return full + (rest >= self.multiple_of)

    def __getitem__(self, index):
        batch = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = batch[: len(batch) - len(batch) % self.multiple_of]
        x = to_model_input(self.images[batch])
        y = (
            self.targets[batch]
            if self.targets is not None
            else np.eye(self.n_classes, dtype=np.float32)[self.labels[batch]]
        )
        x, (y,), _ = mix_batch(x, [y], None, self.mix, self.mix_alpha, self._mix_rng(index))
        return x, y

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._make_order()

    def set_epoch(self, epoch: int) -> None:
        """Jump to `epoch`'s shuffle order (used when a run resumes)."""
        self.epoch = epoch
        self._order = self._make_order()
