"""The PyPI `fer` package (Haar cascade + mini-Xception) on a folder of photos: median ms per photo, decoding included.

    /path/to/other-venv/bin/python benchmarks/peer_fer.py FOLDER [--repeats 3]

Run by benchmarks/bench_inference.py --peer-python in a SEPARATE virtual environment that has `fer` (PyPI) installed:
that package is also imported as `fer`, so it must never be installed beside this project.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import cv2

    from fer import FER  # the PyPI package, in its own venv

    detector = FER(mtcnn=False)  # its default: OpenCV's Haar cascade
    files = sorted(p for p in Path(args.folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    detector.detect_emotions(cv2.imread(str(files[0])))  # warm-up: graph tracing
    per_photo = []
    for path in files:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            detector.detect_emotions(cv2.imread(str(path)))
            times.append(time.perf_counter() - start)
        per_photo.append(statistics.median(times))
    found = sum(bool(detector.detect_emotions(cv2.imread(str(p)))) for p in files)
    print(f"{1000 * statistics.median(per_photo):.3f} ms per photo (median), faces in {found}/{len(files)} photos")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
