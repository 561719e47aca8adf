"""Ensembles: several trained emotion models as one `.keras` file that averages their probabilities.

    fer.ensemble(["models/member_a.keras", "models/member_b.keras"], "models/ensemble.keras")
    python -m fer ensemble models/member_a.keras models/member_b.keras --out models/ensemble.keras

The result is an ordinary Keras functional model (the members are nested models, the mean a
`keras.layers.Average`), so it loads with `safe_mode=True` and works wherever a model path is
accepted: evaluate, predict, notebooks. (The module is not called `ensemble` so that it can
never shadow the function `fer.ensemble`.) An ensemble too big for one file is shipped as its
member files; `ensemble()` rebuilds it from them in seconds.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from fer.errors import ModelError
from fer.predict import load_model


def _renamed_copy(model: keras.Model, name: str) -> keras.Model:
    """The same network under another name (nested models need unique names), weights shared by value."""
    config = model.get_config()
    config["name"] = name
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def build_ensemble(members: list[keras.Model], name: str = "ensemble") -> keras.Model:
    """One model whose output is the mean of `members`' softmax outputs (all take the same 48x48x1 input)."""
    if len(members) < 2:
        raise ValueError(f"An ensemble needs at least two members, got {len(members)}")
    shapes = {(tuple(m.input_shape[1:]), m.output_shape[-1]) for m in members}
    if len(shapes) != 1:
        raise ModelError(f"Ensemble members disagree on input/output shapes: {sorted(shapes)}")
    inputs = keras.Input(members[0].input_shape[1:], name="face")
    outputs = [_renamed_copy(m, f"member_{i}")(inputs) for i, m in enumerate(members)]
    mean = keras.layers.Average(name="emotion", dtype="float32")(outputs)
    return keras.Model(inputs, mean, name=name)


def ensemble(members: list[str | Path | keras.Model], out: str | Path | None = None) -> keras.Model:
    """Average the probabilities of several emotion models; save to `out` (.keras) when given.

    Members are paths (loaded with safe_mode, and checked like any model) or keras.Models.
    """
    models = [m if isinstance(m, keras.Model) else load_model(m) for m in members]
    model = build_ensemble(models)
    if out is not None:
        out = Path(out)
        if out.suffix != ".keras":
            raise ValueError(f"{out}: an ensemble is saved as a .keras file")
        out.parent.mkdir(parents=True, exist_ok=True)
        model.save(out)
    return model


def compare_subsets(probabilities: dict[str, np.ndarray], labels: np.ndarray, min_size: int = 1) -> pd.DataFrame:
    """Score every subset of the members by the mean of their probabilities.

    `probabilities` maps a member's name to its (n, classes) probabilities on ONE shared
    validation split (`labels`); choose the ensemble on that split, never on the test split.
    Returns one row per subset (members joined by " + ", size, accuracy, macro-F1), best
    accuracy first and, at equal accuracy, the smaller (cheaper) subset first.
    """
    names = list(probabilities)
    shapes = {probabilities[n].shape for n in names}
    if len(shapes) != 1 or len(labels) != next(iter(shapes))[0]:
        raise ValueError(f"Members' probabilities must share one shape matching {len(labels)} labels, got {shapes}")
    rows = []
    for size in range(min_size, len(names) + 1):
        for subset in combinations(names, size):
            predicted = np.mean([probabilities[n] for n in subset], axis=0).argmax(axis=1)
            rows.append(
                {
                    "members": " + ".join(subset),
                    "size": size,
                    "accuracy": accuracy_score(labels, predicted),
                    "macro_f1": f1_score(labels, predicted, average="macro"),
                }
            )
    table = pd.DataFrame(rows)
    return table.sort_values(["accuracy", "size"], ascending=[False, True], kind="stable").reset_index(drop=True)
