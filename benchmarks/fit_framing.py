"""Framing faces from BlazeFace alone: which mapping of its box (and six keypoints) to FER-2013's crop, against the
cascade's re-measure it replaces. Validation faces only (split_seed 42; never test).

    python benchmarks/fit_framing.py [--data DIR] [--n 2481] [--folds 4] [--out CSV]

Each validation face (FER-2013's crop: the cascade's box on the original photo) is upscaled to 60-220 px and pasted
into a 640x480 noisy gradient: the true box is where it was pasted. BlazeFace's raw box and keypoints are recorded
once per face, with the cascade's re-measure of the mapped box (the path before 0.5). Mappings, each fitted on
the other folds and scored on the held-out fold (cross-fitting: every face is scored once, by a fit that never saw
it):
- median box: the centre shift and side ratio from BlazeFace's box to the true box, medians (TO_FER_FRAMING's form);
- box + keypoints: a ridge regression of the true box's centre and log side, in units of BlazeFace's box, on the
  six keypoints in the same units;
- keypoints: the same from the eyes, nose and mouth alone, in a frame they define (origin between eyes and mouth,
  scale from the eye distance and the eye-mouth distance), blind to where the head is cut;
- TO_FER_FRAMING as shipped, and the cascade's re-measure (where it finds the face; the mapped box where not).
Printed per mapping: median IoU with the true box, and top-emotion accuracy of the default model's crops (FER+
majority labels) with its paired difference from the re-measure: mean +- standard error over all faces, and the
spread (standard deviation) of that difference over the held-out folds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from fit_close_up_framing import relative  # benchmarks/ is the script's folder: the same relation, one definition

from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.data.ferplus import convert_probabilities
from fer.inference.cropping import DEFAULT_MARGIN, crop_face
from fer.inference.detectors.base import iou
from fer.inference.detectors.blazeface import TO_FER_FRAMING, BlazeFaceDetector, _framed
from fer.inference.options import PredictOptions
from fer.modeling.config import TrainConfig
from fer.modeling.run_data import split_data


def pasted_faces(val, n: int, rng) -> list[dict]:
    """One record per validation face found: BlazeFace's best match (score, box, keypoints), the true box, the
    cascade's re-measure and the neighbourhood of the face (to crop from)."""
    detector = BlazeFaceDetector(cascade=True)
    records = []
    yy, xx = np.mgrid[0:480, 0:640]
    for i in rng.permutation(len(val))[:n]:
        side = int(rng.integers(60, 221))
        canvas = (60 + 0.15 * xx + 0.1 * yy + rng.normal(0, 12, (480, 640))).clip(0, 255).astype(np.uint8)
        x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
        canvas[y : y + side, x : x + side] = cv2.resize(val.images[i], (side, side), interpolation=cv2.INTER_CUBIC)
        truth = (x, y, side, side)
        matches = [(iou(_framed(b, TO_FER_FRAMING), truth), s, b, p) for s, b, p in detector.proposals(canvas)]
        matches = [m for m in matches if m[0] >= 0.3]
        if not matches:
            continue
        _, score, box, points = max(matches, key=lambda m: m[0])
        found = detector.haar.remeasure(cv2.equalizeHist(canvas), _framed(box, TO_FER_FRAMING))
        x0, y0 = max(0, x - side), max(0, y - side)
        records.append(
            {
                "index": int(i),
                "box": tuple(float(v) for v in box),
                "points": np.asarray(points, float),
                "truth": truth,
                "cascade": None if found is None else found[0],
                "offset": (x0, y0),
                "patch": canvas[y0 : y + 2 * side, x0 : x + 2 * side].copy(),
            }
        )
    return records


def box_frame(record) -> tuple[np.ndarray, float, np.ndarray]:
    """(origin, scale, features): BlazeFace's box centre and side, the six keypoints in those units."""
    x, y, w, h = record["box"]
    origin, scale = np.array([x + w / 2, y + h / 2]), max(w, h)
    return origin, scale, ((record["points"] - origin) / scale).ravel()


def keypoint_frame(record) -> tuple[np.ndarray, float, np.ndarray]:
    """(origin, scale, features) from the eyes, nose tip and mouth alone (MediaPipe's points 0-3)."""
    eyes, mouth = record["points"][:2], record["points"][3]
    middle = eyes.mean(0)
    scale = float(np.hypot(*(mouth - middle)) + 0.5 * np.hypot(*(eyes[0] - eyes[1])))
    origin = (middle + mouth) / 2
    return origin, scale, ((record["points"][:4] - origin) / scale).ravel()


def target(origin, scale, box) -> list[float]:
    """`box` relative to a frame: centre shift in units of scale (x, y) and log side ratio."""
    x, y, w, h = box
    return [(x + w / 2 - origin[0]) / scale, (y + h / 2 - origin[1]) / scale, float(np.log(max(w, h) / scale))]


def from_target(origin, scale, t) -> tuple[int, int, int, int]:
    side = scale * np.exp(t[2])
    cx, cy = origin[0] + t[0] * scale, origin[1] + t[1] * scale
    return tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, side, side))


def fit_regression(records, frame, ridge: float = 1e-3):
    """A ridge regression from a frame's features to the true box: returns the framing function."""
    frames = [frame(r) for r in records]
    features = np.array([np.append(f[2], 1.0) for f in frames])
    targets = np.array([target(o, s, r["truth"]) for (o, s, _), r in zip(frames, records)])
    weights = np.linalg.solve(features.T @ features + ridge * np.eye(features.shape[1]), features.T @ targets)

    def framing(record):
        origin, scale, f = frame(record)
        return from_target(origin, scale, np.append(f, 1.0) @ weights)

    return framing


def fit_median(records, reference: str = "truth"):
    """TO_FER_FRAMING's form (centre shift in box widths/heights, side ratio), medians fitted on `records` against
    the true box (or the cascade's re-measure, where it found the face)."""
    shifts = []
    for r in records:
        if r[reference] is None:
            continue
        shifts.append(relative(r[reference], r["box"]))
    framing = tuple(float(v) for v in np.median(shifts, axis=0))
    return lambda record: _framed(record["box"], framing)


MAPPINGS = {
    "median box (fitted here)": fit_median,
    "median box, fitted to the cascade's box": lambda records: fit_median(records, "cascade"),
    "box + keypoints (ridge)": lambda records: fit_regression(records, box_frame),
    "keypoints alone (ridge)": lambda records: fit_regression(records, keypoint_frame),
}
FIXED = {
    "TO_FER_FRAMING (shipped; the default now)": lambda r: _framed(r["box"], TO_FER_FRAMING),
    "cascade re-measure (0.4)": lambda r: r["cascade"] or _framed(r["box"], TO_FER_FRAMING),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="FER-2013 root (default: $FER2013_DIR, else data/fer2013)")
    parser.add_argument("--n", type=int, default=2481, help="validation faces to paste (2481: all of them)")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument(
        "--labels",
        choices=["ferplus", "fer2013"],
        default="ferplus",
        help="score against the FER+ majority (default) or FER-2013's labels (contempt dropped)",
    )
    parser.add_argument("--out", help="also write the table as CSV")
    args = parser.parse_args()
    _, val = split_data(
        TrainConfig(data=args.data, labels="ferplus_majority" if args.labels == "ferplus" else "fer2013")
    )
    records = pasted_faces(val, args.n, np.random.default_rng(0))
    fold = np.arange(len(records)) % args.folds
    boxes = {name: [None] * len(records) for name in [*MAPPINGS, *FIXED]}
    for k in range(args.folds):
        train = [r for r, f in zip(records, fold) if f != k]
        for name, fit in MAPPINGS.items():
            framing = fit(train)
            for j in np.flatnonzero(fold == k):
                boxes[name][j] = framing(records[j])
    for name, framing in FIXED.items():
        boxes[name] = [framing(r) for r in records]
    answer = PredictOptions.make(None)
    labels = val.labels[[r["index"] for r in records]]
    correct = {}
    for name, found in boxes.items():
        crops = [crop_face(r["patch"], _shifted(b, r["offset"]), DEFAULT_MARGIN) for r, b in zip(records, found)]
        probabilities = answer.probabilities(np.stack(crops))
        if args.labels == "fer2013":
            probabilities = convert_probabilities(probabilities, FERPLUS_CLASSES, EMOTIONS)
        correct[name] = probabilities.argmax(1) == labels
    base = correct["cascade re-measure (0.4)"].astype(float)
    rows = []
    for name, found in boxes.items():
        diff = correct[name] - base
        per_fold = [diff[fold == k].mean() for k in range(args.folds)]
        overlap = np.median([iou(b, r["truth"]) for r, b in zip(records, found)])
        rows.append(
            {
                "framing": name,
                "faces": len(records),
                "median IoU with the true box": round(float(overlap), 3),
                "top-emotion acc": round(float(correct[name].mean()), 4),
                "acc - re-measure (points)": f"{100 * diff.mean():+.2f} +- {100 * diff.std() / np.sqrt(len(diff)):.2f}",
                "spread over folds": round(100 * float(np.std(per_fold)), 2),
            }
        )
    table = pd.DataFrame(rows)
    cascade_found = sum(r["cascade"] is not None for r in records)
    print(f"{len(records)} validation faces pasted into scenes and found; the cascade re-measured {cascade_found}")
    print(table.to_string(index=False))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)


def _shifted(box, offset):
    return (box[0] - offset[0], box[1] - offset[1], box[2], box[3])


if __name__ == "__main__":
    main()
