"""Compare finished training runs by accuracy and training time (the equal-budget comparison).

    python benchmarks/compare_runs.py --runs reports/runs/equal_budget/* [--out reports/equal_budget]

Prints one row per run (fer.pipeline.summarize_runs: model, parameters, epochs, hours, img/s,
last-epoch validation accuracy, PublicTest accuracy from the run's evaluate step) and, with
--out, writes runs.csv and accuracy_vs_hours.png there. Compare the runs on validation accuracy;
PublicTest is reported, not chosen on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fer.analysis import plots
from fer.pipeline import summarize_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (each with train/ and metrics.json)")
    parser.add_argument("--out", help="folder for runs.csv and accuracy_vs_hours.png")
    args = parser.parse_args()
    table = summarize_runs(args.runs)
    print(table.to_string(index=False))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "runs.csv", index=False)
        plots.save(plots.accuracy_vs_hours(table), out, "accuracy_vs_hours")
        print(f"Wrote {out / 'runs.csv'} and {out / 'accuracy_vs_hours.png'}")


if __name__ == "__main__":
    main()
