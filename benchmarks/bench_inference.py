"""Inference benchmarks: one photo end to end (detect + crop + classify) and batched face crops.

    python benchmarks/bench_inference.py [--model models/fer_emotion.keras] [--repeats 20]

Prints one table: median latency of predict_emotion on one photo (the scikit-image astronaut,
512x512, one face) split into detection and the rest, and throughput of predict_emotions on
1,024 48x48 crops at several batch sizes, each as a ratio to batch size 1 in this process.
Without --model (or the shipped model) an untrained vgg_lite of the same shape is timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fer.faces import detect_faces  # noqa: E402
from fer.models import build_model  # noqa: E402
from fer.predict import default_model_path, load_model, predict_emotion, predict_emotions  # noqa: E402


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: graph tracing, detector loading
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .keras model (default: the shipped one, else an untrained vgg_lite)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    path = args.model or default_model_path()
    if os.path.isfile(path):
        model, name = load_model(path), str(path)
    else:
        model, name = build_model("vgg_lite"), "untrained vgg_lite"
    try:
        from skimage.data import astronaut

        photo = astronaut()
    except ImportError:
        raise SystemExit("this benchmark uses scikit-image's astronaut photo: pip install scikit-image") from None

    rows = []
    total = _median_seconds(lambda: predict_emotion(photo, model=model), args.repeats)
    detect = _median_seconds(lambda: detect_faces(photo), args.repeats)
    rows.append(
        {
            "benchmark": "one photo, detect + classify",
            "value": f"{total * 1000:.1f} ms",
            "detail": f"median of {args.repeats}; {len(detect_faces(photo))} face, 512x512",
        }
    )
    rows.append(
        {
            "benchmark": "  of which Haar detection",
            "value": f"{detect * 1000:.1f} ms",
            "detail": f"{detect / total:.0%} of the total",
        }
    )

    faces = np.random.default_rng(0).integers(0, 256, (1024, 48, 48), dtype=np.uint8)
    base = None
    for batch in (1, 32, 256):
        seconds = _median_seconds(
            lambda b=batch: predict_emotions(faces[: max(b, 64)], model=model, batch_size=b), max(3, args.repeats // 4)
        )
        per_second = max(batch, 64) / seconds
        base = base or per_second
        rows.append(
            {
                "benchmark": f"face crops, batch {batch}",
                "value": f"{per_second:.0f} faces/s",
                "detail": f"{per_second / base:.1f}x batch 1",
            }
        )
    print(f"model: {name}")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
