"""Fit the close-up framing: BlazeFace's box -> the box the cascade gives a frame-filling face on a bordered copy.

    python benchmarks/fit_close_up_framing.py [--data DIR] [--n 600] [--model M] [--out CSV]

A face that fills the photo (a portrait, a selfie, a user's own crop) has no background around it, so the
cascade boxes it too tight; detect_faces used to re-run the whole detector on a bordered copy of the photo
to get FER-2013's framing (fer.inference.detectors.base.FRAME_FILLING_AREA). That second search is most of a portrait's
time. Instead, BlazeFace's own box can be mapped to that framing: (centre shift in box widths, width
ratio), the medians over close-ups made from VALIDATION faces (split_seed 42; never test): each 48x48 face
upscaled to 64-400 px, half of them with a thin border (the same recipe as bench_detection's close-ups).

The first half of the close-ups fits the three numbers, the second half checks them: top-emotion
accuracy of crops from (a) the refit (the cascade on the bordered copy: the old path), (b) the mapped box,
(c) the 48x48 faces themselves, with the paired difference (b - a) and its standard error.
Prints the fitted numbers (fer.inference.detectors.blazeface.CLOSE_UP_FRAMING) and the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from old_detectors import BlazeFace02  # benchmarks/ is the script's folder

from fer.analysis.probabilities import predict_proba
from fer.inference.cropping import DEFAULT_MARGIN, crop_face
from fer.inference.detectors.blazeface import BlazeFace, _framed
from fer.inference.faces import detect_faces
from fer.inference.models import load_model
from fer.modeling.config import TrainConfig
from fer.modeling.run_data import split_data


def close_ups(faces, n: int, rng) -> list[tuple[np.ndarray, int]]:
    """(image, index of its face) for n validation faces upscaled to 64-400 px, half with a thin border."""
    items = []
    for i in rng.choice(len(faces), n, replace=False):
        side = int(rng.integers(64, 401))
        img = cv2.resize(faces.images[i], (side, side), interpolation=cv2.INTER_CUBIC)
        if rng.random() < 0.5:
            b = max(2, side // 20)
            img = cv2.copyMakeBorder(img, b, b, b, b, cv2.BORDER_CONSTANT, value=int(rng.integers(0, 256)))
        items.append((img, int(i)))
    return items


def relative(target, box) -> tuple[float, float, float]:
    """`target` (x, y, w, h) relative to BlazeFace's `box`: centre shift in box widths/heights, width ratio."""
    x, y, w, h = box
    tx, ty, tw, th = target
    return ((tx + tw / 2) - (x + w / 2)) / w, ((ty + th / 2) - (y + h / 2)) / h, max(tw, th) / max(w, h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="FER-2013 root (default: $FER2013_DIR, else data/fer2013)")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--model", help="scored with (default: the FER-2013 network models/fer_emotion.keras)")
    parser.add_argument("--out", help="also write the table as CSV")
    args = parser.parse_args()
    from fer.modeling.files import MODELS_DIR, SINGLE_MODEL_NAME

    _, val = split_data(TrainConfig(data=args.data))
    model = load_model(args.model or MODELS_DIR / SINGLE_MODEL_NAME)
    net = BlazeFace()
    old_path = BlazeFace02()
    rows = []
    for image, index in close_ups(val, args.n, np.random.default_rng(0)):
        found = net(image)
        # The old path's box: the first pass finds the frame-filling face, the refit re-measures it bordered.
        old = detect_faces(image, old_path)
        if len(found) != 1 or len(old) != 1:
            continue
        rows.append({"index": index, "image": image, "blaze": tuple(found[0][1]), "old": old[0].box})
    half = len(rows) // 2
    fit = np.median([relative(r["old"], r["blaze"]) for r in rows[:half]], axis=0)
    framing = tuple(round(float(v), 3) for v in fit)
    check = rows[half:]
    labels = val.labels[[r["index"] for r in check]]
    crops = {
        "refit (cascade on a bordered copy)": [crop_face(r["image"], r["old"], DEFAULT_MARGIN) for r in check],
        "mapped BlazeFace box": [crop_face(r["image"], _framed(r["blaze"], framing), DEFAULT_MARGIN) for r in check],
        "48x48 faces": [val.images[r["index"]] for r in check],
    }
    correct = {k: predict_proba(model, np.stack(v)).argmax(1) == labels for k, v in crops.items()}
    diff = correct["mapped BlazeFace box"].astype(float) - correct["refit (cascade on a bordered copy)"]
    iou_boxes = [_iou(_framed(r["blaze"], framing), r["old"]) for r in check]
    table = pd.DataFrame(
        [{"crops from": k, "faces": len(v), "top-emotion acc": round(float(v.mean()), 4)} for k, v in correct.items()]
    )
    print(f"CLOSE_UP_FRAMING = {framing}  (fitted on {half} validation close-ups; checked on {len(check)})")
    print(f"mapped vs refit box: median IoU {np.median(iou_boxes):.3f}")
    print(table.to_string(index=False))
    print(f"mapped - refit: {100 * diff.mean():+.2f} +- {100 * diff.std() / np.sqrt(len(diff)):.2f} points (paired)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.assign(framing=str(framing), paired_diff_points=round(100 * diff.mean(), 2)).to_csv(args.out, index=False)


def _iou(a, b) -> float:
    from fer.inference.detectors.base import iou

    return iou(a, b)


if __name__ == "__main__":
    main()
