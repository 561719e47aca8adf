"""Training benchmarks: data load time, per-model training throughput, input-pipeline overhead.

    python benchmarks/bench_training.py [--data DIR] [--steps 30] [--models seed vgg_lite vgg]
        [--precisions float32 bfloat16] [--batch-sizes 64 128] [--repeats 5]

Prints one table. Throughput is measured on an epoch of `--steps` batches after a warm-up
epoch (graph tracing excluded), with the models' default (seed) augmentation inside, for
every model x precision x batch size. Ratios are against the first model in float32 at the
first batch size, and against the same model in float32 at the same batch size (the bfloat16
gain), all measured in this same process, so they transfer between machines better than the
absolute numbers. Data: --data, else $FER2013_DIR, else data/fer2013 (fer.data_dir).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# fer before keras: importing fer installs fer.quiet, which keeps TensorFlow's start-up lines off stderr.
import fer  # noqa: E402, F401

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fer.data.augment import Augmentation  # noqa: E402
from fer.data.batches import FaceBatches  # noqa: E402
from fer.data.classes import EMOTIONS
from fer.data.images import to_model_input
from fer.data.loading import data_dir, load_fer2013  # noqa: E402
from fer.data.sample import make_sample  # noqa: E402
from fer.modeling.architectures import build_model  # noqa: E402
from fer.modeling.config import TrainConfig  # noqa: E402
from fer.modeling.devices import native_bfloat16  # noqa: E402
from fer.modeling.network import build_for_training, compile_model  # noqa: E402


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
    parser.add_argument("--data", default=None, help="FER-2013 root (default: $FER2013_DIR, else data/fer2013)")
    parser.add_argument("--steps", type=int, default=30, help="batches per timed epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", nargs="+", default=["seed", "vgg_lite", "vgg"])
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="default: --batch-size")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of the input-pipeline comparison")
    args = parser.parse_args()
    args.data = str(data_dir(args.data))
    rows = []
    rows.append(
        {"benchmark": "native bfloat16", "value": str(native_bfloat16()), "detail": "AVX512_BF16/AMX CPU or a GPU"}
    )

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
    batch_sizes = args.batch_sizes or [bs]
    needed = 2 * steps * max(batch_sizes)
    if len(train) < needed:  # the synthetic fallback: repeat it to fill the timed epochs
        train = train.subset(np.resize(np.arange(len(train)), needed))
    images, labels = train.images[:needed], train.labels[:needed]
    config = TrainConfig()
    aug = Augmentation.from_dict(config.augmentation)

    base = None
    for name in args.models:
        for batch in batch_sizes:
            float32 = None
            for precision in args.precisions:
                model = compile_model(build_for_training(TrainConfig(model=name, seed=0), precision), config)
                batches = FaceBatches(images, labels, batch, shuffle=True, seed=0)
                ips = steps * batch / _fit_seconds(model, batches, steps, batch)
                base = base or ips
                float32 = ips if precision == "float32" else float32
                gain = f"; {ips / float32:.2f}x of float32" if float32 and precision != "float32" else ""
                rows.append(
                    {
                        "benchmark": f"train {name} {precision} batch {batch}",
                        "value": f"{ips:.0f} img/s",
                        "detail": f"{model.count_params():,} params; {ips / base:.2f}x of the first row{gain}; "
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
