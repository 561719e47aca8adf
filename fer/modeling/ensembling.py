"""Ensembles: several trained emotion models as one model that averages their probabilities.

    fer.ensemble(["models/member_a.keras", "models/member_b.keras"], "models/ensemble.keras")
    fer.ensemble(["models/member_a.keras", "models/member_b.keras"], "models/ensemble.json")
    python -m fer ensemble models/member_a.keras models/member_b.keras --out models/ensemble.keras

A `.keras` ensemble is an ordinary Keras functional model (`fer.modeling.architectures.build_ensemble`: the
members nested, the mean a `keras.layers.Average`), so it loads with `safe_mode=True`. A `.json`
ensemble is a small file listing its member files (paths relative to it): for ensembles whose
one file would be too big to commit; `fer.modeling.files.load_network` assembles it from the members. Both work
wherever a model path is accepted: evaluate, predict, notebooks. Choose members on a validation
split with `compare_subsets`. (The module is not called `ensemble` so that it can never shadow
the function `fer.ensemble`.)
"""

from __future__ import annotations

import json
import os
from itertools import combinations
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from fer.modeling.architectures import build_ensemble
from fer.modeling.files import load_network


def ensemble(members: list[str | Path | keras.Model], out: str | Path | None = None) -> keras.Model:
    """Average the probabilities of several emotion models; save to `out` when given.

    Members are paths (loaded with safe_mode, and checked like any model) or keras.Models.
    `out`: a `.keras` file (the whole ensemble in one file) or a `.json` file that lists the
    member files (members given as paths), for ensembles too big to commit as one file.
    """
    models = [m if isinstance(m, keras.Model) else load_network(m) for m in members]
    model = build_ensemble(models)
    if out is not None:
        out = Path(out)
        if out.suffix not in (".keras", ".json"):
            raise ValueError(f"{out}: an ensemble is saved as a .keras file, or as a .json list of its member files")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".keras":
            model.save(out)
        else:
            if not all(isinstance(m, (str, Path)) for m in members):
                raise ValueError(f"{out}: a .json ensemble lists member files, so pass the members as paths")
            paths = [os.path.relpath(Path(m).resolve(), out.parent.resolve()) for m in members]
            out.write_text(json.dumps({"ensemble": "mean of probabilities", "members": paths}, indent=2) + "\n")
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
