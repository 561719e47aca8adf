"""Choose an ensemble on the members' shared validation split (never on the test split).

    python benchmarks/eval_ensemble.py --runs RUN_DIR RUN_DIR ... [--tta shift] [--out CSV] [--cache DIR]

Each RUN_DIR is a training run folder (config.json and its `<checkpoint>.keras`). Every run must
hold out the same validation split (same data, validation, val_fraction, split_seed and
max_train_samples: the members of sweeps/equal_budget.yaml and sweeps/vgg_lite_cosine.yaml do);
the script rebuilds that split once, scores each member on it with and without test-time
augmentation, and prints every subset's accuracy and macro-F1 (`fer.modeling.ensembling.compare_subsets`)
with its cost in network passes per face. The first row of the TTA table is the ensemble to ship.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from fer.analysis.probabilities import DEFAULT_TTA, TTA_SCHEMES, predict_proba, tta_views
from fer.inference.models import load_model
from fer.modeling.config import TrainConfig
from fer.modeling.ensembling import compare_subsets
from fer.modeling.run_data import split_data
from fer.pipeline import run_id_of

SPLIT_FIELDS = ("data", "validation", "val_fraction", "split_seed", "max_train_samples")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (config.json + model)")
    parser.add_argument("--tta", default=DEFAULT_TTA, choices=TTA_SCHEMES, help=f"scheme (default {DEFAULT_TTA})")
    parser.add_argument("--out", help="also write the table as CSV")
    parser.add_argument("--cache", help="folder that keeps each member's validation probabilities between calls")
    args = parser.parse_args()
    runs = [Path(r) for r in args.runs]
    configs = {run: TrainConfig.from_dict(json.loads((run / "config.json").read_text())) for run in runs}
    splits = {tuple(getattr(c, f) for f in SPLIT_FIELDS) for c in configs.values()}
    if len(splits) != 1:
        raise SystemExit(f"The runs hold out different validation splits ({SPLIT_FIELDS}): {sorted(splits, key=str)}")
    first = next(iter(configs.values()))
    if first.validation != "train":
        raise SystemExit("The runs' validation split is not held out of train; nothing to choose on")
    _, val = split_data(first)
    names = {run: run_id_of(run) for run in runs}
    if len(set(names.values())) != len(runs):
        raise SystemExit(f"Two runs share a name: {sorted(names.values())}")
    tables = []
    for scheme in (False, args.tta):
        probs = {}
        for run in runs:
            path = run / f"{configs[run].checkpoint}.keras"
            key = f"{names[run]}-{scheme or 'none'}-{path.stat().st_mtime_ns}.npy"  # a re-trained model misses
            cached = Path(args.cache, key) if args.cache else None
            if cached is not None and cached.is_file():
                probs[names[run]] = np.load(cached)
                continue
            probs[names[run]] = predict_proba(load_model(path), val.images, tta=scheme)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.save(cached, probs[names[run]])
        views = len(tta_views(val.images[:1, ..., None], scheme or None))
        table = compare_subsets(probs, val.labels)
        tables.append(table.assign(tta=scheme or "none", passes=table["size"] * views))
    table = pd.concat(tables, ignore_index=True)
    table[["accuracy", "macro_f1"]] = table[["accuracy", "macro_f1"]].round(4)
    print(f"Validation split: n={len(val)} (split_seed {first.split_seed}, {first.val_fraction:.0%} of train)")
    for name, run in zip(names.values(), runs):
        print(f"  {name}: {run}")
    with pd.option_context("display.width", 200, "display.max_colwidth", 120):
        print(table.to_string(index=False))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.assign(n=len(val)).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
