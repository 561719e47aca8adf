"""Prediction outputs to the last digit, saved and compared: the check that a restructure changed no answer.

    python benchmarks/check_outputs.py --save before.json     # on the old code
    python benchmarks/check_outputs.py --compare before.json  # on the new code: every value equal, or the differences

Covers predict_emotion on real photos (skimage's, wild-dev's 439 close-ups) with each detector and the options that
change the path (align, margin, prior, labels, TTA, int8), predict_crop on PublicTest and posed-dev, explain,
analyze_video on a generated clip and `python -m fer predict` on a folder. Needs ../shared (or $FER2013_DIR).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def _faces(faces) -> list:
    return [
        [p.emotion, p.box and list(p.box), p.face_score, p.source, [p.probabilities[c] for c in p.probabilities]]
        for p in faces
    ]


def _photos() -> list:
    from skimage import data

    wild = sorted((SHARED / "wild-dev").glob("*/*"))
    return [data.astronaut(), data.coffee(), data.chelsea(), *map(str, wild)]


def collect() -> dict:
    import fer
    from fer.data.loading import data_dir, load_split

    out: dict = {}
    photos = _photos()
    warnings.simplefilter("ignore")
    runs = {
        "default": {},
        "cascade": {"detector": "blazeface-cascade"},
        "haar": {"detector": "haar"},
        "align": {"align": True},
        "margin": {"margin": 0.2},
        "uniform": {"prior": "uniform"},
        "tta": {"tta": True},
        "no_close_ups": {"close_ups": False},
    }
    for name, options in runs.items():
        out[f"photos/{name}"] = [_faces(f) for f in fer.predict_emotion(photos, **options)]
    out["photos/one_by_one"] = [_faces(fer.predict_emotion(p)) for p in photos[:40]]
    out["photos/ensemble"] = [_faces(f) for f in fer.predict_emotion(photos[:60], model="models/fer_ensemble.json")]
    out["photos/boxes"] = _faces(fer.predict_emotion(photos[0], boxes=[(170, 30, 110, 130)]))
    test = load_split(data_dir(), "test")
    out["crops/publictest"] = np.round(
        np.array([list(p.probabilities.values()) for p in fer.predict_crop(test.images)]), 12
    ).tolist()
    out["crops/publictest_fer"] = [p.emotion for p in fer.predict_crop(test.images, model="models/fer_emotion.keras")]
    posed = sorted((SHARED / "posed-dev" / "ckplus48").glob("*/*"))
    out["crops/posed"] = [[p.emotion, p.probability] for p in fer.predict_crop([str(p) for p in posed])]
    out["explain"] = [
        [e.prediction.emotion, e.origin, e.side, float(e.saliency.sum())] for e in fer.explain(photos[0], target="all")
    ]
    out["video"] = _video()
    out["cli"] = _cli(photos)
    return out


def _video() -> list:
    import cv2
    from skimage import data

    import fer

    frame = cv2.resize(data.astronaut(), (640, 480))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
        for k in range(12):
            writer.write(cv2.cvtColor(np.roll(frame, 4 * k, axis=1), cv2.COLOR_RGB2BGR))
        writer.release()
        table = fer.analyze_video(path, progress=False)
        table2 = fer.analyze_video(path, progress=False, detect_every=3, stride=2)
    return [table.round(12).astype(str).values.tolist(), table2.round(12).astype(str).values.tolist()]


def _cli(photos) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for p in photos[3:40]:
            (folder / Path(p).name).write_bytes(Path(p).read_bytes())
        cmd = [sys.executable, "-m", "fer", "predict", str(folder), "--out", f"{tmp}/out", "--json"]
        subprocess.run(cmd, check=False, capture_output=True, cwd=ROOT)
        return (Path(tmp) / "out" / "predictions.csv").read_text().replace(tmp, "TMP").splitlines()


def _differences(a, b, where: str = "") -> list[str]:
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return [f"{where}: {a!r} != {b!r}"]
    if isinstance(a, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{where}/{k}")]
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    return [] if a == b or (a != a and b != b) else [f"{where}: {a!r} != {b!r}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path)
    group.add_argument("--compare", type=Path)
    args = parser.parse_args()
    outputs = json.loads(json.dumps(collect()))  # tuples as lists, as read back
    if args.save:
        args.save.write_text(json.dumps(outputs))
        print(f"{sum(len(v) for v in outputs.values())} outputs in {len(outputs)} groups -> {args.save}")
        return 0
    before = json.loads(args.compare.read_text())
    diff = _differences(before, outputs)
    for group in outputs:
        bad = [d for d in diff if d.startswith(f"/{group}")]
        print(f"{group:24s} {'same' if not bad else f'{len(bad)} differences'}")
    for d in diff[:30]:
        print(d)
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
