"""A small synthetic FER-style dataset: cartoon 48x48 faces whose expression encodes the class.

Used for smoke runs when FER-2013 is not on disk, and by the tests. The classes are
learnable (mouth shape, brows and eyes differ per emotion) but jittered and noisy,
so a short training run shows whether the whole pipeline learns anything at all.
It is clearly not FER-2013: never report numbers measured on it as results.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fer.data.classes import EMOTIONS
from fer.data.loading import FaceSet

# Per emotion: mouth (kind, curvature), brow tilt (+ = inner ends down), eye radius.
_STYLE = {
    "angry": ("line", 0.0, 4, 2),
    "disgust": ("skew", 0.0, 2, 1),
    "fear": ("oval_small", 0.0, -3, 4),
    "happy": ("arc", 1.0, 0, 2),
    "neutral": ("line", 0.0, 0, 2),
    "sad": ("arc", -1.0, -3, 2),
    "surprise": ("oval_big", 0.0, -4, 3),
}


def draw_face(emotion: str, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """One jittered cartoon face (size x size uint8) showing `emotion`."""
    mouth, curve, brow, eye = _STYLE[emotion]
    scale = 4  # draw big, then shrink: smooth edges like a real downsampled photo
    s = size * scale
    skin = int(rng.integers(110, 200))
    image = Image.new("L", (s, s), int(rng.integers(20, 90)))
    d = ImageDraw.Draw(image)
    cx, cy = s / 2 + rng.normal(0, 2) * scale, s / 2 + rng.normal(0, 2) * scale
    r = s * rng.uniform(0.36, 0.44)
    d.ellipse([cx - r * 0.85, cy - r, cx + r * 0.85, cy + r], fill=skin)
    dark = max(skin - 110, 0)
    for side in (-1, 1):
        ex, ey = cx + side * r * 0.35, cy - r * 0.2
        er = eye * scale
        d.ellipse([ex - er, ey - er, ex + er, ey + er], fill=dark)
        # Brow: inner end moves down by `brow` pixels (angry) or up (sad, fear).
        inner = (cx + side * r * 0.12, ey - r * 0.22 + brow * scale)
        outer = (cx + side * r * 0.55, ey - r * 0.22 - brow * scale * 0.3)
        d.line([inner, outer], fill=dark, width=2 * scale)
    mx, my, mw = cx, cy + r * 0.45, r * 0.45
    if mouth == "arc":
        box = [mx - mw, my - mw * 0.6, mx + mw, my + mw * 0.6]
        if curve > 0:
            d.arc(box, 20, 160, fill=dark, width=2 * scale)
        else:
            d.arc([box[0], box[1] + mw * 0.6, box[2], box[3] + mw * 0.6], 200, 340, fill=dark, width=2 * scale)
    elif mouth == "line":
        d.line([(mx - mw * 0.8, my), (mx + mw * 0.8, my)], fill=dark, width=2 * scale)
    elif mouth == "skew":
        d.line([(mx - mw * 0.8, my + mw * 0.3), (mx + mw * 0.8, my - mw * 0.3)], fill=dark, width=2 * scale)
        d.line([(cx - r * 0.15, cy + r * 0.05), (cx + r * 0.15, cy + r * 0.1)], fill=dark, width=scale)
    else:
        k = 0.35 if mouth == "oval_small" else 0.6
        d.ellipse([mx - mw * k, my - mw * k * 1.3, mx + mw * k, my + mw * k * 1.3], fill=dark)
    image = image.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR, fillcolor=int(skin * 0.3))
    arr = np.asarray(image.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    arr += rng.normal(0, 8, arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def make_sample(n_per_class: int = 30, seed: int = 0, size: int = 48) -> FaceSet:
    """A FaceSet with n_per_class synthetic faces of each emotion."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(EMOTIONS)), n_per_class)
    images = np.stack([draw_face(EMOTIONS[label], rng, size) for label in labels])
    return FaceSet(images, labels.astype(np.int64), [f"synthetic:{i}" for i in range(len(labels))])


def write_sample(root: str | Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> Path:
    """Write a synthetic dataset in the FER-2013 folder layout: root/{train,test}/<emotion>/*.png."""
    root = Path(root)
    for split, n, split_seed in (("train", n_train, seed), ("test", n_test, seed + 1)):
        faces = make_sample(n, seed=split_seed)
        for i, (image, label) in enumerate(zip(faces.images, faces.labels)):
            folder = root / split / EMOTIONS[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{split}_{i:05d}.png")
    return root


def write_sample_votes(root: str | Path, out: str | Path | None = None, seed: int = 0) -> Path:
    """Write made-up FER+-style votes for a sample written by write_sample: out (default
    root/ferplus_votes.csv), with the columns of data/ferplus_votes.csv and `file` relative to root.

    Each face gets 6-9 of its 10 votes for its own emotion and the rest scattered; about one face in
    twenty is "not a face" (NF 10) and one in twenty a contempt majority, so every FER+ rule has cases.
    """
    from fer.data.ferplus import VOTE_CLASS, VOTE_COLUMNS

    root = Path(root)
    rng = np.random.default_rng(seed)
    column_of = {cls: name for name, cls in VOTE_CLASS.items()}
    rows = []
    for split, usage in (("train", "Training"), ("test", "PublicTest")):
        for path in sorted((root / split).glob("*/*.png")):
            votes = dict.fromkeys(VOTE_COLUMNS, 0)
            draw = rng.random()
            if draw < 0.05:
                votes["NF"] = 10
            else:
                own = "contempt" if draw < 0.1 else column_of[path.parent.name]
                votes[own] = int(rng.integers(6, 10))
                for _ in range(10 - votes[own]):
                    votes[VOTE_COLUMNS[int(rng.integers(0, len(VOTE_COLUMNS) - 1))]] += 1
            rows.append({"file": path.relative_to(root).as_posix(), "usage": usage, "fer2013_row": None, **votes})
    out = Path(out) if out is not None else root / "ferplus_votes.csv"
    import pandas as pd

    pd.DataFrame(rows).to_csv(out, index=False)
    return out
