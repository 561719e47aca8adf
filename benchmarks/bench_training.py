"""Training benchmarks: data load time, per-model training throughput, input-pipeline overhead.

    python benchmarks/bench_training.py [--data DIR] [--steps 30] [--models seed vgg_lite vgg] [--repeats 5]

Prints one table. Throughput is measured on an epoch of `--steps` batches after a warm-up
epoch (graph tracing excluded), with the models' default (seed) augmentation inside.
Ratios are against the first model / against plain in-memory arrays, measured in this
same process, so they transfer between machines better than the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fer.augment import Augmentation  # noqa: E402
from fer.data import EMOTIONS, load_fer2013  # noqa: E402
from fer.dataset import FaceBatches, to_model_input  # noqa: E402
from fer.models import build_model  # noqa: E402
from fer.sample import make_sample  # noqa: E402
from fer.training import TrainConfig, compile_model  # noqa: E402


class _EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.last = time.perf_counter() - self.start


def _fit_seconds(model, data, steps: int, batch_size: int) -> float:
    """Seconds for one epoch of `steps` batches, after one warm-up epoch."""
    timer = _EpochTimer()
    if isinstance(data, FaceBatches):
        model.fit(data, epochs=2, steps_per_epoch=steps, callbacks=[timer], verbose=0)
    else:
        x, y = data
        n = steps * batch_size
        model.fit(x[:n], y[:n], batch_size=batch_size, epochs=2, callbacks=[timer], verbose=0, shuffle=True)
    return timer.last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "fer2013"))
    parser.add_argument("--steps", type=int, default=30, help="batches per timed epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", nargs="+", default=["seed", "vgg_lite", "vgg"])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of the input-pipeline comparison")
    args = parser.parse_args()
    rows = []

    if Path(args.data, "train").is_dir():
        start = time.perf_counter()
        splits = load_fer2013(args.data)
        seconds = time.perf_counter() - start
        n = sum(len(s) for s in splits.values())
        rows.append({"benchmark": f"load {args.data}", "value": f"{seconds:.1f} s", "detail": f"{n} images"})
        train = splits["train"]
    else:
        train = make_sample(2 * args.steps * args.batch_size // len(EMOTIONS) + 1)  # per class: fills 2 epochs
        rows.append({"benchmark": "load FER-2013", "value": "skipped", "detail": f"{args.data} not found"})

    bs, steps = args.batch_size, args.steps
    needed = 2 * steps * bs
    images, labels = train.images[:needed], train.labels[:needed]
    config = TrainConfig()
    aug = Augmentation.from_dict(config.augmentation)

    base = None
    for name in args.models:
        model = compile_model(build_model(name, augmentation=aug, seed=0), config)
        batches = FaceBatches(images, labels, bs, shuffle=True, seed=0)
        ips = steps * bs / _fit_seconds(model, batches, steps, bs)
        base = base or ips
        rows.append(
            {
                "benchmark": f"train {name}",
                "value": f"{ips:.0f} img/s",
                "detail": f"{model.count_params():,} params; {ips / base:.2f}x of {args.models[0]}; "
                f"~{len(train) / ips / 60:.1f} min per {len(train)}-image epoch",
            }
        )

    # Input pipeline: the same model fed by FaceBatches vs by float arrays already in memory.
    # Both are warmed up, then timed in alternation `--repeats` times (median), so a burst of
    # load on a shared machine hits both sides alike instead of deciding the ratio.
    name = args.models[0]
    x, y = to_model_input(images), np.eye(len(EMOTIONS), dtype=np.float32)[labels]
    n = steps * bs
    feeds = {
        "arrays": (compile_model(build_model(name, augmentation=aug, seed=0), config), (x[:n], y[:n])),
        "FaceBatches": (
            compile_model(build_model(name, augmentation=aug, seed=0), config),
            FaceBatches(images[:n], labels[:n], bs, shuffle=True, seed=0),
        ),
    }
    times = {feed: [] for feed in feeds}
    for repeat in range(args.repeats + 1):  # the first round is the warm-up (tracing)
        for feed, (model, data) in feeds.items():
            timer = _EpochTimer()
            if feed == "arrays":
                model.fit(*data, batch_size=bs, epochs=1, callbacks=[timer], verbose=0, shuffle=True)
            else:
                model.fit(data, epochs=1, callbacks=[timer], verbose=0)
            if repeat:
                times[feed].append(timer.last)
    t_arrays, t_pydataset = (float(np.median(times[feed])) for feed in ("arrays", "FaceBatches"))
    rows.append(
        {
            "benchmark": f"input pipeline ({name})",
            "value": f"{t_pydataset / t_arrays - 1:+.1%}",
            "detail": f"FaceBatches {t_pydataset:.2f} s vs arrays {t_arrays:.2f} s per {steps} steps, "
            f"median of {args.repeats} (ratio {t_pydataset / t_arrays:.3f})",
        }
    )
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
