"""Data-quality checks for face datasets: exact duplicates and near-blank images."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from fer.data.classes import EMOTIONS
from fer.data.loading import FaceSet


def _digests(images: np.ndarray) -> list[str]:
    return [hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=16).hexdigest() for im in images]


def duplicates_of(images, others) -> np.ndarray:
    """Boolean mask over `images`: True where the pixels exactly equal an image in `others`.

    Both are image arrays (N, 48, 48) or FaceSets.
    """
    images = images.images if isinstance(images, FaceSet) else images
    others = others.images if isinstance(others, FaceSet) else others
    seen = set(_digests(others))
    return np.array([d in seen for d in _digests(images)], dtype=bool)


def find_duplicates(splits: dict[str, FaceSet]) -> pd.DataFrame:
    """Every image whose pixels exactly equal another's, within or across splits.

    One row per image in a duplicate group: group, split, index, emotion, source, and
    per group whether it spans several splits (train/test leakage) and whether its
    copies disagree on the label.
    """
    frames = []
    for name, faces in splits.items():
        frames.append(
            pd.DataFrame(
                {
                    "digest": _digests(faces.images),
                    "split": name,
                    "index": np.arange(len(faces)),
                    "emotion": [EMOTIONS[i] for i in faces.labels],
                    "source": faces.sources if faces.sources else [""] * len(faces),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    dup = table[table.duplicated("digest", keep=False)].copy()
    if dup.empty:
        return dup.assign(
            group=pd.Series(dtype=int), cross_split=pd.Series(dtype=bool), conflicting_labels=pd.Series(dtype=bool)
        ).drop(columns="digest")
    dup["group"] = dup.groupby("digest", sort=False).ngroup()
    per_group = dup.groupby("group")
    dup["cross_split"] = per_group["split"].transform("nunique") > 1
    dup["conflicting_labels"] = per_group["emotion"].transform("nunique") > 1
    return dup.drop(columns="digest").sort_values(["group", "split", "index"]).reset_index(drop=True)


def duplicate_summary(duplicates: pd.DataFrame) -> dict:
    """Counts behind the duplicate table: groups, surplus copies, leaks across splits, label conflicts."""
    if duplicates.empty:
        return {
            "groups": 0,
            "images_in_groups": 0,
            "surplus_copies": 0,
            "cross_split_groups": 0,
            "conflicting_label_groups": 0,
        }
    groups = duplicates.groupby("group")
    return {
        "groups": int(groups.ngroups),
        "images_in_groups": int(len(duplicates)),
        "surplus_copies": int(len(duplicates) - groups.ngroups),
        "cross_split_groups": int(groups["cross_split"].first().sum()),
        "conflicting_label_groups": int(groups["conflicting_labels"].first().sum()),
    }


def find_blank(faces: FaceSet, max_std: float = 3.0) -> pd.DataFrame:
    """Images that are (nearly) one flat gray level: pixel standard deviation <= max_std.

    FER-2013 contains such placeholders (all-black or all-gray frames); they carry no face.
    """
    pixels = faces.images.reshape(len(faces), -1)
    std, mean = pixels.std(axis=1), pixels.mean(axis=1)
    index = np.flatnonzero(std <= max_std)
    return pd.DataFrame(
        {
            "index": index,
            "emotion": [EMOTIONS[faces.labels[i]] for i in index],
            "std": std[index].round(3),
            "mean": mean[index].round(1),
            "source": [faces.sources[i] for i in index] if faces.sources else [""] * len(index),
        }
    )
