"""Choose the test-time augmentation scheme on a run's validation split (never on the test split).

    python benchmarks/eval_tta.py --run reports/runs/vgg_lite_cosine/<run-id>/train [--out CSV]

Rebuilds the run's own validation split from its config.json (the stratified hold-out of train,
without copies of test images), scores the run's model on it with every scheme of
`fer.analysis.probabilities.TTA_SCHEMES` and without TTA, and prints accuracy and macro-F1 per scheme with
the cost in network passes. `fer.analysis.probabilities.DEFAULT_TTA` (what `--tta` means) is set from this.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from fer.analysis.evaluation import evaluate
from fer.analysis.probabilities import TTA_SCHEMES, tta_views
from fer.inference.models import load_model
from fer.modeling.config import TrainConfig
from fer.modeling.run_data import split_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a run folder (config.json and its model)")
    parser.add_argument("--out", help="also write the table as CSV")
    args = parser.parse_args()
    run = Path(args.run)
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    if config.validation != "train":
        raise SystemExit(f"{run}: its validation split is not held out of train; nothing to choose on")
    _, val = split_data(config)
    model = load_model(run / f"{config.checkpoint}.keras")
    rows = []
    for scheme in (False, *TTA_SCHEMES):
        result = evaluate(model, val.images, val.labels, tta=scheme)
        views = len(tta_views(val.images[:1, ..., None], scheme or None))
        rows.append(
            {
                "tta": scheme or "none",
                "views": views,
                "val accuracy": round(result.accuracy, 4),
                "val macro-F1": round(result.macro_f1, 4),
            }
        )
    table = pd.DataFrame(rows)
    print(f"{run} ({config.checkpoint}.keras) on its validation split: n={len(val)}")
    print(table.to_string(index=False))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.assign(run=str(run), n=len(val)).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
