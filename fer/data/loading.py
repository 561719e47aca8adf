"""Loading FER-2013 (folder layout or fer2013.csv) into arrays, splits, class tables and weights.

Every loader returns a `FaceSet`: uint8 images (N, 48, 48) and int labels indexing
`EMOTIONS`, the one canonical class order of the package (alphabetical, which is
also the order Keras' directory loaders use, so folder-trained models agree).
"""

from __future__ import annotations

import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.data.images import FACE_SIZE, read_image, to_face
from fer.errors import DataError, ImageError
from fer.paths import REPO

log = logging.getLogger(__name__)


# Spellings seen in FER-2013 mirrors, AffectNet/RAF-DB exports and people's own folders.
_ALIASES = {
    "angry": ("angry", "anger", "mad"),
    "disgust": ("disgust", "disgusted", "disgusting", "contempt_disgust"),
    "fear": ("fear", "fearful", "scared", "afraid"),
    "happy": ("happy", "happiness", "joy", "happiness_joy"),
    "neutral": ("neutral", "neutrality", "none"),
    "sad": ("sad", "sadness"),
    "surprise": ("surprise", "surprised", "surprising"),
}
_LABEL_OF_NAME = {alias: EMOTIONS.index(c) for c, names in _ALIASES.items() for alias in names}
# FER+'s eighth class: a folder of it makes the whole set FER+-labelled (FERPLUS_CLASSES), as posed-dev (CK+) is.
_CONTEMPT = ("contempt", "contemptuous")


def _folder_key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _folder_classes(names: list[str]) -> tuple[str, ...]:
    """EMOTIONS, or FERPLUS_CLASSES where one of the class folders is contempt."""
    return FERPLUS_CLASSES if any(_folder_key(n) in _CONTEMPT for n in names) else EMOTIONS


def _folder_label(name: str, classes: tuple[str, ...]) -> int:
    return classes.index("contempt") if _folder_key(name) in _CONTEMPT else classes.index(EMOTIONS[label_of(name)])


# fer2013.csv numbers its classes in the original Kaggle order, not ours.
_CSV_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
_CSV_USAGE = {"Training": "train", "PublicTest": "test", "PrivateTest": "private"}
_FOLDER_SPLITS = {"train": ("train", "training"), "test": ("test", "publictest", "validation", "val")}


@dataclass
class FaceSet:
    """One split: images (N, 48, 48) uint8, labels (N,) int64 into EMOTIONS.

    `sources` names where each image came from (file path or csv row) so problems can be
    traced back; `n_converted` counts images that were colour or not 48x48 and were
    converted; `skipped` lists files that could not be read. `classes` names the label
    indices (EMOTIONS, or fer.data.classes.FERPLUS_CLASSES for FER+ labels); `votes` (N, 10)
    holds the FER+ crowd votes where they were attached (fer.data.ferplus).
    """

    images: np.ndarray
    labels: np.ndarray
    sources: list[str] = field(default_factory=list)
    n_converted: int = 0
    skipped: list[str] = field(default_factory=list)
    classes: tuple[str, ...] = EMOTIONS
    votes: np.ndarray | None = None

    def __post_init__(self):
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        counts = ", ".join(f"{e}={n}" for e, n in zip(self.classes, self.counts()))
        extra = f", converted={self.n_converted}" if self.n_converted else ""
        extra += f", skipped={len(self.skipped)}" if self.skipped else ""
        return f"FaceSet(n={len(self)}: {counts}{extra})"

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))

    def per_class(self, n: int, seed: int = 0) -> FaceSet:
        """A random subset of at most `n` faces of each emotion (seeded), in original order."""
        rng = np.random.default_rng(seed)
        index = [rng.permutation(np.flatnonzero(self.labels == c))[:n] for c in range(len(self.classes))]
        return self.subset(np.sort(np.concatenate(index)))

    def subset(self, index) -> FaceSet:
        index = np.asarray(index)
        sources = [self.sources[i] for i in index] if self.sources else []
        votes = None if self.votes is None else self.votes[index]
        return FaceSet(self.images[index], self.labels[index], sources, classes=self.classes, votes=votes)


def label_of(name: str) -> int:
    """Index into EMOTIONS for a class name in any common spelling ("Happiness" -> 3)."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in _LABEL_OF_NAME:
        raise DataError(
            f"Unknown emotion label {name!r}. Accepted names: "
            + "; ".join(f"{c}: {', '.join(a)}" for c, a in _ALIASES.items())
        )
    return _LABEL_OF_NAME[key]


def _read_face(path: Path) -> tuple[np.ndarray, bool]:
    """(48x48 gray face, whether it needed conversion). Fast path for plain 48x48 gray JPEGs."""
    with Image.open(path) as image:
        if image.mode == "L" and image.size == (FACE_SIZE, FACE_SIZE):
            return np.asarray(image, dtype=np.uint8), False
    arr = read_image(path)
    return to_face(arr), True


def _try_read(path: Path):
    try:
        return _read_face(path)
    except (ImageError, OSError, SyntaxError, ValueError) as exc:
        return exc


def load_folder(folder: str | Path, strict: bool = False, workers: int | None = None) -> FaceSet:
    """Load `<folder>/<emotion>/*` images, e.g. fer2013/train or fer2013/test (a contempt/ folder among them:
    labels over FER+'s eight classes, as in posed-dev's CK+ crops).

    Class folders may use any common spelling (Angry, anger, happiness, ...); hidden
    folders are ignored. Files that cannot be read are skipped with a warning listing
    them, or raise DataError when strict=True. Colour or non-48x48 images are
    converted to 48x48 gray; their count is in `n_converted`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder. Point --data at a FER-2013 root or a split folder.")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not class_dirs:
        raise DataError(
            f"{folder}: no class folders. Expected <emotion>/ sub-folders such as "
            f"{', '.join(EMOTIONS)} (see data/README.md)."
        )
    unknown = [p.name for p in class_dirs if _folder_key(p.name) not in (*_LABEL_OF_NAME, *_CONTEMPT)]
    if unknown:
        raise DataError(
            f"{folder}: unknown class folder(s) {unknown}. Rename them to one of {list(FERPLUS_CLASSES)} "
            "(common spellings such as 'Happiness' or 'surprised' are accepted) or move them out."
        )
    classes = _folder_classes([p.name for p in class_dirs])
    paths, labels = [], []
    for class_dir in sorted(class_dirs, key=lambda p: (_folder_label(p.name, classes), p.name)):
        label = _folder_label(class_dir.name, classes)
        files = sorted(p for p in class_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        paths += files
        labels += [label] * len(files)

    # Decoding releases the GIL, so a few threads overlap file I/O and JPEG decoding.
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(_try_read, paths, chunksize=256))

    bad = [(p, r) for p, r in zip(paths, results) if isinstance(r, Exception)]
    if bad and strict:
        listing = "\n".join(f"  {p}: {e}" for p, e in bad[:20])
        raise DataError(f"{len(bad)} unreadable file(s) under {folder}:\n{listing}\nRemove or replace them.")
    if bad:
        listing = "\n".join(f"  {p}" for p, _ in bad[:20]) + ("\n  ..." if len(bad) > 20 else "")
        warnings.warn(f"Skipped {len(bad)} unreadable file(s) under {folder}:\n{listing}", stacklevel=2)
    good = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    if not good:
        raise DataError(f"{folder}: no readable images in {[p.name for p in class_dirs]}: the split is empty.")
    images = np.stack([results[i][0] for i in good])
    n_converted = sum(results[i][1] for i in good)
    if n_converted:
        log.info("%s: converted %d colour or non-48x48 image(s) to 48x48 gray", folder, n_converted)
    return FaceSet(
        images=images,
        labels=np.asarray([labels[i] for i in good], dtype=np.int64),
        sources=[str(paths[i]) for i in good],
        n_converted=int(n_converted),
        skipped=[str(p) for p, _ in bad],
        classes=classes,
    )


def load_csv(path: str | Path) -> dict[str, FaceSet]:
    """Load the original fer2013.csv (columns emotion, pixels, Usage).

    Returns {"train": ..., "test": ..., "private": ...} for Training, PublicTest and
    PrivateTest rows (splits with no rows are left out). Labels are remapped from the
    CSV's class numbering to EMOTIONS order.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype={"pixels": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    missing = {"emotion", "pixels"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; expected emotion,pixels,Usage")
    if frame.empty:
        raise DataError(f"{path}: no rows")
    bad_label = ~frame["emotion"].isin(range(len(_CSV_CLASSES)))
    if bad_label.any():
        rows = (frame.index[bad_label][:10] + 2).tolist()  # +2: header line and 1-based lines
        raise DataError(f"{path}: emotion must be 0-6 in the fer2013.csv numbering; bad on lines {rows}")
    pixels = frame["pixels"].fillna("").str.split()
    n_pixels = pixels.str.len()
    wrong = n_pixels != FACE_SIZE * FACE_SIZE
    if wrong.any():
        rows = (frame.index[wrong][:10] + 2).tolist()
        raise DataError(
            f"{path}: {int(wrong.sum())} row(s) do not have {FACE_SIZE * FACE_SIZE} pixel values "
            f"(48x48), e.g. lines {rows} with {n_pixels[wrong].head(3).tolist()} values. Fix or drop them."
        )
    images = np.array(pixels.tolist(), dtype=np.int32)
    if images.min() < 0 or images.max() > 255:
        raise DataError(f"{path}: pixel values must lie in 0..255")
    images = images.astype(np.uint8).reshape(-1, FACE_SIZE, FACE_SIZE)
    remap = np.array([EMOTIONS.index(c) for c in _CSV_CLASSES])
    labels = remap[frame["emotion"].to_numpy()]
    usage = frame["Usage"] if "Usage" in frame.columns else pd.Series(["Training"] * len(frame))
    unknown = set(usage.unique()) - set(_CSV_USAGE)
    if unknown:
        raise DataError(f"{path}: unknown Usage value(s) {sorted(unknown)}; expected {list(_CSV_USAGE)}")
    splits = {}
    for usage_name, split in _CSV_USAGE.items():
        index = np.flatnonzero(usage.to_numpy() == usage_name)
        if len(index):
            splits[split] = FaceSet(images[index], labels[index], [f"{path}:{i + 2}" for i in index])
    return splits


DATA_ENV = "FER2013_DIR"


def data_dir(explicit: str | Path | None = None) -> Path:
    """Where FER-2013 is: `explicit` if given, else $FER2013_DIR, else data/fer2013.

    The one resolution order of the CLI, the notebooks, the tests and the benchmarks.
    `data/fer2013` is the checkout's own folder when the package is installed from one
    (editable install), else data/fer2013 under the current directory. The path is
    returned whether or not it exists: loaders say what is missing.
    """
    if explicit not in (None, ""):
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    checkout = REPO / "data"
    base = REPO if (checkout / "README.md").is_file() else Path.cwd()
    return base / "data" / "fer2013"


def _find_split_folder(root: Path, split: str) -> Path | None:
    for name in _FOLDER_SPLITS.get(split, (split,)):
        for candidate in (root / name, root / name.capitalize(), root / name.upper()):
            if candidate.is_dir():
                return candidate
    return None


def has_split(data: str | Path, split: str) -> bool:
    """Whether dataset `data` holds `split` of its own (a <split>/ folder or CSV rows), not just a bare
    folder of <emotion>/ folders that load_split would hand out for any split name."""
    data = Path(data)
    if data.is_dir() and _find_split_folder(data, split) is not None:
        return True
    csv = data if data.is_file() else data / "fer2013.csv"
    if csv.is_file():
        try:
            return split in load_csv(csv)
        except DataError:
            return False
    return False


def train_images_beside(data: str | Path, split: str) -> np.ndarray | None:
    """The training images of dataset `data`, to find faces of `split` that copy them
    (`fer.evaluate(..., train_images=)`); None for the train split itself or without a train split."""
    if split == "train" or not has_split(data, "train"):  # e.g. a lone folder of <emotion>/ folders
        return None
    return load_split(data, "train").images


def load_split(data: str | Path, split: str = "test", strict: bool = False) -> FaceSet:
    """Load one split from a dataset root, a fer2013.csv, or a folder of <emotion>/ folders.

    `data` may be a FER-2013 root (with train/ and test/), the fer2013.csv file (or a
    folder holding it), or directly a folder whose sub-folders are emotions.
    """
    data = Path(data)
    if not data.exists():
        raise DataError(
            f"{data}: not found. Download FER-2013 as described in data/README.md, or pass "
            f"the folder that holds train/ and test/ (or set {DATA_ENV} to it)."
        )
    csv = data if data.is_file() else data / "fer2013.csv"
    if data.is_file() or (csv.is_file() and _find_split_folder(data, split) is None):
        splits = load_csv(csv)
        if split not in splits:
            raise DataError(f"{csv}: no rows for split {split!r}; it has {sorted(splits)}")
        return splits[split]
    folder = _find_split_folder(data, split)
    if folder is not None:
        return load_folder(folder, strict=strict)
    subdirs = [p.name for p in data.iterdir() if p.is_dir() and not p.name.startswith(".")]
    known = [n for n in subdirs if _folder_key(n) in (*_LABEL_OF_NAME, *_CONTEMPT)]
    if known:  # a folder of <emotion>/ folders; load_folder names any folder that is not an emotion
        return load_folder(data, strict=strict)
    raise DataError(
        f"{data}: found neither {split}/ nor fer2013.csv nor <emotion>/ folders "
        f"(it holds {sorted(subdirs)[:10]}). Expected <root>/train/<emotion>/*.jpg and "
        "<root>/test/<emotion>/*.jpg, or fer2013.csv."
    )


def load_fer2013(root: str | Path, splits=("train", "test"), strict: bool = False) -> dict[str, FaceSet]:
    """Load several splits of a dataset root: {"train": FaceSet, "test": FaceSet}."""
    return {split: load_split(root, split, strict=strict) for split in splits}


def train_val_split(faces: FaceSet, val_fraction: float = 0.1, seed: int = 42) -> tuple[FaceSet, FaceSet]:
    """Seeded split stratified by class, so rare classes (disgust) appear in both parts."""
    from sklearn.model_selection import train_test_split

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    index = np.arange(len(faces))
    counts = np.bincount(faces.labels)
    n_val = int(np.ceil(val_fraction * len(faces)))
    # Stratified where it can be: each class needs 2 faces, and the held-out part one face per class.
    stratify = (
        faces.labels if counts[counts > 0].min() >= 2 and min(n_val, len(faces) - n_val) >= (counts > 0).sum() else None
    )
    train_idx, val_idx = train_test_split(index, test_size=val_fraction, random_state=seed, stratify=stratify)
    return faces.subset(np.sort(train_idx)), faces.subset(np.sort(val_idx))


def class_distribution(**splits: FaceSet) -> pd.DataFrame:
    """Counts and shares per emotion for each named split: class_distribution(train=..., test=...)."""
    table = pd.DataFrame({name: s.counts() for name, s in splits.items()}, index=pd.Index(EMOTIONS, name="emotion"))
    for name in splits:
        table[f"{name}_%"] = (100 * table[name] / max(table[name].sum(), 1)).round(2)
    return table


def class_weights(labels: np.ndarray, power: float = 1.0, n_classes: int = len(EMOTIONS)) -> dict[int, float]:
    """sklearn's "balanced" weights, n / (k * count), raised to `power`, for each of `n_classes` classes.

    power 1 is sklearn's "balanced"; 0 weighs every face alike; 0.5 is halfway on a log scale
    (disgust ~3x instead of ~9x a neutral face). Powers other than 1 are rescaled so the mean
    weight per training face stays 1, so the loss scale (and so the learning rate's effect)
    matches unweighted training. Classes absent from `labels` get weight 1.0 (never used).
    """
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels)
    if labels.size == 0:
        raise DataError("Cannot compute class weights of an empty label array")
    if power < 0:
        raise ValueError(f"class weight power must be >= 0, got {power}")
    present, counts = np.unique(labels, return_counts=True)
    weights = compute_class_weight("balanced", classes=present, y=labels) ** power
    weights *= labels.size / float(np.sum(counts * weights))  # a no-op for power 1
    result = {i: 1.0 for i in range(n_classes)}
    result.update({int(c): float(w) for c, w in zip(present, weights)})
    return result
