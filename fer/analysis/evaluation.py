"""Scoring a model on labelled faces: accuracy, macro-F1, per-class table, confusion, calibration, crowd agreement."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from fer.analysis.probabilities import (
    adjust,
    classes_of,
    predict_proba,
    prior_weights,
    training_prior,
    tta_scheme,
)
from fer.data import ferplus
from fer.data.classes import EMOTIONS, FERPLUS_CLASSES, classes_for_size
from fer.data.quality import duplicates_of

if TYPE_CHECKING:  # Keras is imported by whoever built the model; ONNX twins need none
    import keras


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
    """Everything `evaluate` measured; `to_dict()` is the JSON the CLI prints.

    `duplicates` (optional) marks faces that are exact copies of training images: FER-2013's
    PublicTest has ~280 of them, on which any model scores far higher than on the rest.
    `deduplicated` is the same evaluation without them, reported beside the full figure.
    `classes` names the label indices (EMOTIONS, or FER+'s eight); `votes` (N, 10), where given,
    are the faces' FER+ crowd votes, for crowd agreement and calibration against the vote shares.
    """

    labels: np.ndarray
    probabilities: np.ndarray
    tta: bool | str = False
    duplicates: np.ndarray | None = None
    classes: tuple[str, ...] = EMOTIONS
    votes: np.ndarray | None = None

    def subset(self, mask: np.ndarray) -> Evaluation:
        votes = None if self.votes is None else self.votes[mask]
        return Evaluation(self.labels[mask], self.probabilities[mask], self.tta, classes=self.classes, votes=votes)

    @property
    def scored_classes(self) -> list[int]:
        """The classes macro-F1 averages over: those with faces in this set (an absent class has no F1 to add)."""
        return sorted(set(np.unique(self.labels).tolist()))

    @property
    def deduplicated(self) -> Evaluation | None:
        """This evaluation without the faces that duplicate training images (None if unknown)."""
        return None if self.duplicates is None else self.subset(~self.duplicates)

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
            f1_score(self.labels, self.predictions, labels=self.scored_classes, average="macro", zero_division=0)
        )

    @property
    def crowd_agreement(self) -> float | None:
        """Mean share of the ten FER+ annotators who chose the predicted emotion (None without votes)."""
        if self.votes is None or self.classes != FERPLUS_CLASSES:
            return None
        return float(ferplus.crowd_agreement(self.votes, self.predictions).mean())

    @property
    def vote_cross_entropy(self) -> float | None:
        """Mean cross-entropy (nats) of the probabilities against the FER+ vote shares (None without votes)."""
        if self.votes is None or self.classes != FERPLUS_CLASSES:
            return None
        return float(ferplus.vote_cross_entropy(self.votes, self.probabilities).mean())

    @property
    def per_class(self) -> pd.DataFrame:
        p, r, f, s = precision_recall_fscore_support(
            self.labels, self.predictions, labels=range(len(self.classes)), zero_division=0
        )
        return pd.DataFrame(
            {"precision": p, "recall": r, "f1": f, "support": s}, index=pd.Index(self.classes, name="emotion")
        )

    @property
    def confusion(self) -> pd.DataFrame:
        """Counts: rows are true emotions, columns predicted."""
        m = confusion_matrix(self.labels, self.predictions, labels=range(len(self.classes)))
        return pd.DataFrame(
            m, index=pd.Index(self.classes, name="true"), columns=pd.Index(self.classes, name="predicted")
        )

    @property
    def confusion_normalized(self) -> pd.DataFrame:
        """Each row divided by its count: the diagonal is per-class recall."""
        counts = self.confusion
        return counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)

    @property
    def ece(self) -> float:
        return expected_calibration_error(self.probabilities, self.labels)

    def to_dict(self) -> dict:
        dedup = self.deduplicated
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 5),
            "macro_f1": round(self.macro_f1, 5),
            "ece": round(self.ece, 5),
            "tta": self.tta,
            "without_train_duplicates": None
            if dedup is None
            else {
                "n": dedup.n,
                "n_removed": self.n - dedup.n,
                "accuracy": round(dedup.accuracy, 5),
                "macro_f1": round(dedup.macro_f1, 5),
            },
            "per_class": {
                e: {k: (int(v) if k == "support" else round(float(v), 5)) for k, v in row.items()}
                for e, row in self.per_class.iterrows()
            },
            "confusion": self.confusion.to_numpy().tolist(),
            "classes": list(self.classes),
            **(
                {}
                if self.crowd_agreement is None
                else {
                    "crowd_agreement": round(self.crowd_agreement, 5),
                    "vote_cross_entropy": round(self.vote_cross_entropy, 5),
                }
            ),
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def summary(self) -> str:
        """One line: n, accuracy, macro-F1, ECE, TTA and the duplicate-free accuracy when known."""
        line = (
            f"n={self.n}  accuracy={self.accuracy:.4f}  macro-F1={self.macro_f1:.4f}  "
            f"ECE={self.ece:.4f}  TTA={tta_scheme(self.tta) or 'off'}"
        )
        if self.crowd_agreement is not None:
            line += f"  crowd-agreement={self.crowd_agreement:.4f}  vote-CE={self.vote_cross_entropy:.4f}"
        dedup = self.deduplicated
        if dedup is not None:
            line += f"\nwithout the {self.n - dedup.n} faces that duplicate training images: n={dedup.n}  "
            line += f"accuracy={dedup.accuracy:.4f}  macro-F1={dedup.macro_f1:.4f}"
        return line

    def __repr__(self) -> str:
        return f"Evaluation(n={self.n}, accuracy={self.accuracy:.4f}, macro_f1={self.macro_f1:.4f}, tta={self.tta})"


def evaluate(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    tta: bool | str = False,
    batch_size: int = 256,
    train_images: np.ndarray | None = None,
    classes: tuple[str, ...] = EMOTIONS,
    votes: np.ndarray | None = None,
    head: str | None = None,
    prior="training",
) -> Evaluation:
    """Score `model` on (N, 48, 48) uint8 faces with int labels into `classes` (EMOTIONS, or FER+'s eight).

    `train_images`: the training images; faces that are exact copies of one are marked, and the
    result also reports accuracy without them (`Evaluation.deduplicated`). A model of the other
    label set is scored through fer.data.ferplus.convert_probabilities: a FER+ model on FER-2013
    labels drops contempt, a FER-2013 model on FER+ labels never predicts it. `votes`: the faces'
    FER+ votes, for crowd agreement and calibration against the vote shares. `head`: which head of a
    dual-head model answers ("ferplus", "fer2013"; None: the one in `classes`' label set where it has it).
    `prior`: "training", "uniform" or {class: share}, as in fer.predict_crop (logit adjustment).
    """
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("Cannot evaluate on an empty set of faces")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    duplicates = None if train_images is None else duplicates_of(images, train_images)
    if head is None and isinstance(getattr(model, "output_shape", None), list):  # a dual-head model
        head = "ferplus" if tuple(classes) == FERPLUS_CLASSES else "fer2013"
    probs = predict_proba(model, images, tta=tta, batch_size=batch_size, labels=head)
    if not (isinstance(prior, str) and prior == "training"):
        probs = adjust(probs, prior_weights(prior, training_prior(model, head), classes_of(model, head)))
    source = classes_for_size(probs.shape[1])
    if source is None:
        raise ValueError(f"The model gives {probs.shape[1]} probabilities per face; expected 7 (FER-2013) or 8 (FER+)")
    probs = ferplus.convert_probabilities(probs, source, tuple(classes))
    return Evaluation(
        labels, probs, tta=tta_scheme(tta) or False, duplicates=duplicates, classes=tuple(classes), votes=votes
    )
