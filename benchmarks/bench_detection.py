"""Face detection on several image sets: faces found, false faces, top-emotion accuracy, ms per photo.

    python benchmarks/bench_detection.py [--wild ../shared/wild-dev] [--data DIR] [--n 300] [--out CSV]

Sets (built here; nothing is written to disk but the optional CSV of the table):
- wild-dev: close-up web photos, one face each, crowd labels (never trained on).
- PublicTest close-ups: each 48x48 PublicTest face upscaled to a random size between 64 and
  400 px, half of them with a small border: the face fills the frame (a user's own crop).
- pasted scenes: 1-3 PublicTest faces pasted at random scales (60-200 px) and places into a
  640x480 background (noise + gradient): small-face and multi-face recall.
- wild-dev portraits: each wild-dev photo shrunk to 130-200 px onto a plain 256x256 or 256x320 backdrop (its
  edge colour): real heads that do not fill the frame, the faces the cascade used to re-measure.
- no-face: blank, noise, gradient, bricks, text, coffee, rocket images: any face found is false.

Configurations, each timed in this same process so the ratios hold:
- before: the release before close-up handling (Haar with scale step 1.1 at a 1024 px working
  resolution, no close-up retries);
- haar: `detect_faces(detector="haar")`: the cascade with a fine re-measure, close-up retries,
  re-measuring faces that fill the frame, whole-image fallback (the default until BlazeFace);
- 0.2: the 0.2 release's defaults: BlazeFace with 3x3 tiles and the cascade's re-measure, the cascade searching
  photos where BlazeFace found nothing, frame-filling faces re-measured on a bordered copy, MTCNN's second opinion;
- 0.4: the 0.4 release's defaults: BlazeFace with tiles as the overlap needs, the cascade re-measuring every face
  that does not fill the frame and confirming faces BlazeFace is unsure of (`BlazeFaceDetector(cascade=True)`),
  frame-filling faces framed from BlazeFace's box (CLOSE_UP_FRAMING), the close-up retries;
- now: `detect_faces` defaults: BlazeFace alone (fer.inference.detectors.blazeface): every face framed from its box
  (TO_FER_FRAMING, CLOSE_UP_FRAMING), unsure faces confirmed by a closer BlazeFace look, no cascade;
- cascade retry: the default until issue 42 dropped the cascade's second opinion on photos BlazeFace finds
  nothing in;
- tiles: the default before issue 42's strips (small faces in 6-9 tiles of 128 px, fractional area resizes);
- strips: the strips with the close-up retry on every photo the whole-image pass finds nothing in (before the
  close-up evidence gate);
- mtcnn: `detect_faces(detector="mtcnn")`.
Last, one 512x512 photo (scikit-image's astronaut) end to end per configuration: detect, crop and
classify, median of 20 runs.
A face is "found" when exactly one box (close-ups) or one box per pasted face (IoU >= 0.3)
comes back; extra boxes count as false faces. Accuracy is of the default model's top emotion
(--model for another) on found faces (wild-dev: its crowd labels, reported for the classes it
holds); for the PublicTest close-ups the last column is the paired difference from the same faces
scored as 48x48 crops, with its standard error.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

# benchmarks/ is the script's folder: shared rules
from bench_inference import median_seconds, no_face_photos, portrait_set

from fer.analysis.probabilities import predict_proba
from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.data.ferplus import convert_probabilities
from fer.data.images import read_image
from fer.data.loading import data_dir, label_of, load_split
from fer.inference.cropping import DEFAULT_MARGIN, crop_face
from fer.inference.detectors.base import iou
from fer.inference.detectors.haar import HaarDetector
from fer.inference.faces import detect_faces
from fer.inference.models import load_model

CONFIGS = {
    # The detection of the release before close-up handling: cascade scale step 1.1, 1024 px, no
    # retries, crops at margin 0. "margin" is crop_face's; the rest are detect_faces options.
    "before": {
        "detector": HaarDetector(scale_factor=1.1),
        "max_side": 1024,
        "close_ups": False,
        "whole_image": False,
        "margin": 0.0,
    },
    "haar": {"detector": "haar"},
    "0.2": {"detector": "blazeface-0.2"},
    "0.4": {"detector": "blazeface-0.4"},
    "0.5": {"detector": "blazeface-0.5"},
    "cascade retry": {"detector": "blazeface-cascade-retry"},
    "tiles": {"detector": "blazeface-tiles"},
    "strips": {"detector": "blazeface-strips"},
    "now": {},
    "mtcnn": {"detector": "mtcnn"},
}


_OLD_BLAZEFACE = {}
# The earlier defaults, re-created in benchmarks/old_detectors.py: config name -> its class there.
OLD_DETECTORS = {
    "blazeface-0.2": "BlazeFace02",
    "blazeface-0.4": "BlazeFace04",
    "blazeface-0.5": "BlazeFace05",
    "blazeface-cascade-retry": "BlazeFaceCascadeRetry",
    "blazeface-tiles": "BlazeFaceTiles",
    "blazeface-strips": "BlazeFaceStrips",
}


def _detect_options(config: dict) -> dict:
    options = {k: v for k, v in config.items() if k != "margin"}
    old = options.get("detector")
    if old in OLD_DETECTORS:  # built on first use
        if old not in _OLD_BLAZEFACE:
            import old_detectors  # benchmarks/ is the script's folder

            _OLD_BLAZEFACE[old] = getattr(old_detectors, OLD_DETECTORS[old])()
        options["detector"] = _OLD_BLAZEFACE[old]
    return options


def _margin(config: dict) -> float:
    return config.get("margin", DEFAULT_MARGIN)


def wild_set(root: Path, limit: int | None):
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            items.append((read_image(path), [None], label_of(folder.name)))
    return items[:limit] if limit else items


def close_up_set(test, n: int, rng):
    """(items, chosen indices): the indices give the same faces as 48x48 crops, the reference accuracy."""
    items = []
    chosen = rng.choice(len(test), n, replace=False)
    for i in chosen:
        side = int(rng.integers(64, 401))
        img = cv2.resize(test.images[i], (side, side), interpolation=cv2.INTER_CUBIC)
        box = (0, 0, side, side)
        if rng.random() < 0.5:
            b = max(2, side // 20)
            img = cv2.copyMakeBorder(img, b, b, b, b, cv2.BORDER_CONSTANT, value=int(rng.integers(0, 256)))
            box = (b, b, side, side)
        items.append((img, [box], int(test.labels[i])))
    return items, chosen


def pasted_set(test, n: int, rng):
    items = []
    for _ in range(n):
        yy, xx = np.mgrid[0:480, 0:640]
        canvas = (60 + 0.15 * xx + 0.1 * yy + rng.normal(0, 12, (480, 640))).clip(0, 255).astype(np.uint8)
        boxes, labels = [], []
        for _ in range(int(rng.integers(1, 4))):
            side = int(rng.integers(60, 201))
            for _try in range(20):
                x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
                if all(iou((x, y, side, side), b) == 0 for b in boxes):
                    i = int(rng.integers(len(test)))
                    canvas[y : y + side, x : x + side] = cv2.resize(test.images[i], (side, side), cv2.INTER_CUBIC)
                    boxes.append((x, y, side, side))
                    labels.append(int(test.labels[i]))
                    break
        items.append((canvas, boxes, labels))
    return items


def no_face_set(rng):
    return [(im, [], None) for im in no_face_photos(rng)]


def on_fer2013_classes(probs: np.ndarray) -> np.ndarray:
    """A FER+ model's 8-class probabilities, contempt dropped and the rest renormalised (FER-2013 labels)."""
    if probs.shape[1] == len(EMOTIONS):
        return probs
    return convert_probabilities(probs, FERPLUS_CLASSES, EMOTIONS)


def score(items, config: dict, model, close_up: bool):
    """(found, expected, false faces, top-emotion accuracy, ms per photo, per-photo correctness, per-face
    results) for one set and configuration; per-photo correctness (close-up sets: 1/0, NaN where no single face
    was found) pairs each photo with its face scored as a 48x48 crop; per-face results {(photo, face): (label,
    correct)} pair configurations face by face."""
    found = expected = false = correct = scored = 0
    seconds = 0.0
    per_photo = np.full(len(items), np.nan)
    per_face = {}
    for k, (image, boxes, labels) in enumerate(items):
        start = time.perf_counter()
        faces = detect_faces(image, **_detect_options(config))
        seconds += time.perf_counter() - start
        expected += len(boxes)
        if close_up:  # one face fills the image: any single box counts (its position is the face)
            hit = [(faces[0], labels)] if len(faces) == 1 else []
            found += len(hit)
            false += max(0, len(faces) - 1)
        else:
            used, hit = set(), []
            for box, label in zip(boxes, labels if isinstance(labels, list) else [labels]):
                match = next((k for k, f in enumerate(faces) if k not in used and iou(f.box, box) >= 0.3), None)
                if match is not None:
                    used.add(match)
                    hit.append((faces[match], label))
            found += len(hit)
            false += len(faces) - len(used)
        crops = [crop_face(image, f.box, _margin(config)) for f, label in hit if label is not None]
        if crops:
            probs = on_fer2013_classes(predict_proba(model, np.stack(crops)))
            truth = np.array([label for _, label in hit if label is not None])
            right = probs.argmax(1) == truth
            correct += int(right.sum())
            scored += len(truth)
            labelled = [j for j, (_, label) in enumerate(hit) if label is not None]
            per_face.update({(k, j): (int(t), bool(r)) for j, t, r in zip(labelled, truth, right)})
            if close_up:
                per_photo[k] = float(probs[0].argmax() == truth[0])
    accuracy = correct / scored if scored else float("nan")
    return found, expected, false, accuracy, 1000 * seconds / len(items), per_photo, per_face


def paired_gap(mine: dict, base: dict) -> str:
    """Accuracy difference on the faces both configurations found (same photo and face), with its standard error."""
    keys = [key for key in mine if key in base]
    if not keys:
        return ""
    diff = np.array([float(mine[key][1]) - float(base[key][1]) for key in keys])
    return f"{100 * diff.mean():+.2f} +- {100 * diff.std() / np.sqrt(len(diff)):.2f} ({len(keys)} faces)"


def per_class(results: dict) -> str:
    """Top-emotion accuracy per true class (FER-2013 names) and its macro average."""
    by_class = {}
    for label, right in results.values():
        by_class.setdefault(label, []).append(right)
    if len(by_class) < 2:
        return ""
    rates = {EMOTIONS[c]: float(np.mean(v)) for c, v in sorted(by_class.items())}
    return " ".join(f"{c[:3]} {v:.2f}" for c, v in rates.items()) + f" | macro {np.mean(list(rates.values())):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wild", default=str(Path(__file__).resolve().parents[2] / "shared" / "wild-dev"))
    parser.add_argument("--data", help="FER-2013 root (default: $FER2013_DIR, else data/fer2013)")
    parser.add_argument("--model", help="default: the default model (the shipped ensemble)")
    parser.add_argument("--n", type=int, default=300, help="PublicTest close-ups; pasted scenes get n/3")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", help="also write the table as CSV")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    model = load_model(args.model)
    test = load_split(data_dir(args.data), "test")
    sets = {}
    if Path(args.wild).is_dir():
        wild = wild_set(Path(args.wild), None)
        sets["wild-dev (close-ups)"] = (wild, True)
        sets["wild-dev portraits"] = (portrait_set(wild, np.random.default_rng(1)), False)
    close_ups, chosen = close_up_set(test, args.n, rng)
    sets["PublicTest close-ups 64-400 px"] = (close_ups, True)
    sets["pasted scenes, 1-3 faces"] = (pasted_set(test, max(1, args.n // 3), rng), False)
    sets["no-face images"] = (no_face_set(rng), False)
    rows, paired = [], {}
    baseline = "0.4" if "0.4" in args.configs else args.configs[0]
    for name, (items, close_up) in sets.items():
        faces = {}
        for config in [baseline] + [c for c in args.configs if c != baseline]:
            detect_faces(items[0][0], **_detect_options(CONFIGS[config]))  # warm-up: loads the detector
            found, expected, false, acc, ms, per_photo, faces[config] = score(items, CONFIGS[config], model, close_up)
            gap = paired_gap(faces[config], faces[baseline]) if config != baseline else ""
            if items is close_ups:
                paired[config] = per_photo
            rows.append(
                {
                    "set": name,
                    "config": config,
                    "photos": len(items),
                    "faces found": f"{found}/{expected}",
                    "recall": round(found / expected, 4) if expected else None,
                    "false faces": false,
                    "top-emotion acc": None if np.isnan(acc) else round(acc, 4),
                    "ms/photo": round(ms, 1),
                    f"acc - {baseline} (paired)": gap,
                    "per class": per_class(faces[config]) if "wild" in name else "",
                }
            )
    reference = on_fer2013_classes(predict_proba(model, test.images[chosen])).argmax(1) == test.labels[chosen]
    rows.append(
        {
            "set": "PublicTest close-ups 64-400 px",
            "config": "48x48 crops (reference)",
            "photos": len(chosen),
            "top-emotion acc": round(float(reference.mean()), 4),
        }
    )
    table = pd.DataFrame(rows)
    # The close-up target is accuracy within 1 point of the same faces as 48x48 crops: the paired
    # difference (found faces only) and its standard error say whether a gap is more than noise.
    gaps = {}
    for config, per_photo in paired.items():
        ok = ~np.isnan(per_photo)
        diff = per_photo[ok] - reference[ok]
        gaps[config] = f"{100 * diff.mean():+.2f} +- {100 * diff.std() / np.sqrt(max(1, ok.sum())):.2f} points"
    table["close-up acc - crops"] = [
        gaps.get(c) if s == "PublicTest close-ups 64-400 px" else None for s, c in zip(table["set"], table["config"])
    ]
    base = table[table["config"] == "before"].set_index("set")["ms/photo"]
    table["speed vs before"] = [
        round(base[s] / ms, 2) if s in base.index and ms == ms else None
        for s, ms in zip(table["set"], table["ms/photo"])
    ]
    print(f"classes: {', '.join(EMOTIONS)}; model: {args.model or 'default'}")
    print(table.to_string(index=False))
    photo = photo_table(args.configs, model)
    print("\none 512x512 photo (astronaut), detect + crop + classify:")
    print(photo.to_string(index=False))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        photo.to_csv(Path(args.out).with_name(Path(args.out).stem + "_photo.csv"), index=False)


def photo_table(configs, model, repeats: int = 20) -> pd.DataFrame:
    from skimage.data import astronaut

    photo = astronaut()

    def end_to_end(config):
        faces = detect_faces(photo, **_detect_options(CONFIGS[config]))
        if faces:
            predict_proba(model, np.stack([crop_face(photo, f.box, _margin(CONFIGS[config])) for f in faces]))
        return faces

    rows = []
    for config in configs:
        ms = 1000 * median_seconds(lambda c=config: end_to_end(c), repeats)
        rows.append({"config": config, "faces": len(end_to_end(config)), "ms": round(ms, 1)})
    table = pd.DataFrame(rows)
    base = table.set_index("config")["ms"].get("before")
    table["speed vs before"] = [round(base / ms, 2) if base else None for ms in table["ms"]]
    return table


if __name__ == "__main__":
    main()
