"""What a photo without a face costs: detect_faces' ms per photo on bench_detection's no-face images, per config.

    python benchmarks/bench_no_face.py [--configs "cascade retry" tiles now] [--rounds 10] [--threads 2]

bench_detection times each image once, in a table of many sets: a few ms of noise on 10 images. Here every image is
timed in `--rounds` rounds, each a block of 6 calls per configuration in turn (the first of a block not counted: a
batch job's steady state, while a slow spell of the machine hits every configuration alike); the table gives each
image's median, their mean (the figure issue 42 asks <= 5 ms of) and the ratio to the first configuration.
Configs are bench_detection's: "cascade retry" is the default before issue 42 (~13.5 ms in its text), "tiles" the
one before its strips, "strips" the strips with the close-up retry on every such photo, "now" the default.
`--threads 1` sets FER_THREADS=1 first (a Ray actor's setting: no helper thread beside the caller). Run it with
nothing else on the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["cascade retry", "tiles", "strips", "now"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="FER_THREADS for this process (0: unset)")
    args = parser.parse_args()
    if args.threads:
        os.environ["FER_THREADS"] = str(args.threads)  # read when BlazeFace's helper thread is first made
    from bench_detection import CONFIGS, _detect_options
    from bench_inference import no_face_photos

    from fer.inference.faces import detect_faces

    options = {name: _detect_options(CONFIGS[name]) for name in args.configs}
    images = no_face_photos()
    rows = []
    for k, image in enumerate(images):
        times = {name: [] for name in options}
        for name in options:
            assert detect_faces(image, **options[name]) == [], f"{name} found a face in no-face image {k}"
        for _ in range(args.rounds):
            for name, opts in options.items():
                for call in range(6):
                    start = time.perf_counter()
                    detect_faces(image, **opts)
                    if call:
                        times[name].append(1000 * (time.perf_counter() - start))
        rows.append({"image": f"{k} {'x'.join(map(str, image.shape))}", **{n: np.median(t) for n, t in times.items()}})
    table = pd.DataFrame(rows).set_index("image")
    table.loc["mean"] = table.mean()
    first = args.configs[0]
    for name in args.configs[1:]:
        table[f"{name} vs {first}"] = table[first] / table[name]
    threads = args.threads or "unset"
    print(f"ms per photo without a face, median of {args.rounds} x 5 interleaved runs (FER_THREADS={threads})")
    print(table.round(2).to_string())


if __name__ == "__main__":
    main()
