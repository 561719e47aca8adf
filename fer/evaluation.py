"""Scoring a model on labelled faces: accuracy, macro-F1, per-class table, confusion, calibration."""

from __future__ import annotations

import json
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from fer.data import EMOTIONS
from fer.dataset import to_model_input


def predict_proba(model: keras.Model, images: np.ndarray, tta: bool = False, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, 7) for (N, 48, 48) uint8 faces.

    tta=True averages the prediction of each face and its mirror image: faces are
    roughly symmetric and the models were trained with flips, so it is a cheap gain.
    """
    x = to_model_input(images)
    if len(x) == 0:
        return np.zeros((0, len(EMOTIONS)), dtype=np.float32)

    def run(batch):
        # predict() sets up a data pipeline per call: for one batch, predict_on_batch is ~5x faster.
        if len(batch) <= batch_size:
            return np.asarray(model.predict_on_batch(batch))
        return model.predict(batch, batch_size=batch_size, verbose=0)

    probs = run(x)
    if tta:
        probs = (probs + run(x[:, :, ::-1])) / 2
    return np.asarray(probs, dtype=np.float32)


def calibration_table(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> pd.DataFrame:
    """Reliability-diagram data: per confidence bin, count, mean confidence and accuracy."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = bins == b
        rows.append(
            {
                "bin_low": edges[b],
                "bin_high": edges[b + 1],
                "count": int(mask.sum()),
                "confidence": float(confidence[mask].mean()) if mask.any() else np.nan,
                "accuracy": float(correct[mask].mean()) if mask.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over confidence bins."""
    table = calibration_table(probs, labels, n_bins).dropna()
    if table.empty:
        return float("nan")
    gaps = (table["confidence"] - table["accuracy"]).abs()
    return float((gaps * table["count"]).sum() / table["count"].sum())


@dataclass
class Evaluation:
    """Everything `evaluate` measured; `to_dict()` is the JSON the CLI prints."""

    labels: np.ndarray
    probabilities: np.ndarray
    tta: bool = False

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def accuracy(self) -> float:
        return float(accuracy_score(self.labels, self.predictions))

    @property
    def macro_f1(self) -> float:
        return float(
            f1_score(self.labels, self.predictions, labels=range(len(EMOTIONS)), average="macro", zero_division=0)
        )

    @property
    def per_class(self) -> pd.DataFrame:
        p, r, f, s = precision_recall_fscore_support(
            self.labels, self.predictions, labels=range(len(EMOTIONS)), zero_division=0
        )
        return pd.DataFrame(
            {"precision": p, "recall": r, "f1": f, "support": s}, index=pd.Index(EMOTIONS, name="emotion")
        )

    @property
    def confusion(self) -> pd.DataFrame:
        """Counts: rows are true emotions, columns predicted."""
        m = confusion_matrix(self.labels, self.predictions, labels=range(len(EMOTIONS)))
        return pd.DataFrame(m, index=pd.Index(EMOTIONS, name="true"), columns=pd.Index(EMOTIONS, name="predicted"))

    @property
    def confusion_normalized(self) -> pd.DataFrame:
        """Each row divided by its count: the diagonal is per-class recall."""
        counts = self.confusion
        return counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)

    @property
    def ece(self) -> float:
        return expected_calibration_error(self.probabilities, self.labels)

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 5),
            "macro_f1": round(self.macro_f1, 5),
            "ece": round(self.ece, 5),
            "tta": self.tta,
            "per_class": {
                e: {k: (int(v) if k == "support" else round(float(v), 5)) for k, v in row.items()}
                for e, row in self.per_class.iterrows()
            },
            "confusion": self.confusion.to_numpy().tolist(),
            "classes": list(EMOTIONS),
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __repr__(self) -> str:
        return f"Evaluation(n={self.n}, accuracy={self.accuracy:.4f}, macro_f1={self.macro_f1:.4f}, tta={self.tta})"


def evaluate(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, tta: bool = False, batch_size: int = 256
) -> Evaluation:
    """Score `model` on (N, 48, 48) uint8 faces with int labels into EMOTIONS."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("Cannot evaluate on an empty set of faces")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    return Evaluation(labels, predict_proba(model, images, tta=tta, batch_size=batch_size), tta=tta)
