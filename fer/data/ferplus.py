"""FER+ crowd labels (10 votes per FER-2013 image): reading vote tables, the label protocols, relabelling FaceSets.

FER+ (Barsoum et al. 2016) re-labelled every FER-2013 image with 10 crowd votes over eight
emotions plus "unknown" and "not a face". Two label modes follow the FER+ reference code:

- ``majority``: votes of 1 are dropped as noise; a face is kept when its top label holds more
  than half of the remaining votes and is an emotion (not unknown, not NF).
- ``votes``: the same noise removal, then the eight emotions' vote shares as a soft target;
  faces whose top vote is unknown or NF (or with no emotion vote left) are dropped.

Not-a-face images (NF the top vote) are dropped in every mode.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.data.loading import FaceSet
from fer.errors import DataError
from fer.paths import DATA_DIR

# The vote columns of ferplus_votes.csv and Microsoft's fer2013new.csv, in their order.
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
VOTE_CLASS = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "contempt": "contempt",
}
# Column index in VOTE_COLUMNS of each FERPLUS_CLASSES entry: votes[:, _EMOTION_COLUMNS] is class-ordered.
_EMOTION_COLUMNS = np.array(
    [VOTE_COLUMNS.index(next(k for k, v in VOTE_CLASS.items() if v == c)) for c in FERPLUS_CLASSES]
)
_UNKNOWN, _NF = VOTE_COLUMNS.index("unknown"), VOTE_COLUMNS.index("NF")
LABEL_MODES = ("majority", "votes")
VOTES_ENV = "FERPLUS_VOTES"


def votes_path(explicit: str | Path | None = None) -> Path:
    """Where the votes table is: `explicit`, else $FERPLUS_VOTES, else data/ferplus_votes.csv (shipped)."""
    if explicit not in (None, ""):
        return Path(explicit).expanduser()
    env = os.environ.get(VOTES_ENV)
    if env:
        return Path(env).expanduser()
    return DATA_DIR / "ferplus_votes.csv"


def read_votes(path: str | Path) -> pd.DataFrame:
    """A votes table: ferplus_votes.csv (a `file` column) or Microsoft's fer2013new.csv (rows aligned with fer2013.csv).

    Returns the table with the ten vote columns as integers; raises DataError naming what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: no such votes file. The FER+ votes for the FER-2013 folder layout ship as "
            f"data/ferplus_votes.csv; pass --votes or set {VOTES_ENV} to another copy."
        )
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in VOTE_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing vote column(s) {missing}; expected {', '.join(VOTE_COLUMNS)}")
    votes = table[list(VOTE_COLUMNS)]
    bad = votes.isna().any(axis=1) | (votes < 0).any(axis=1)
    if bad.any():
        lines = (table.index[bad][:10] + 2).tolist()
        raise DataError(f"{path}: vote counts must be non-negative numbers; bad on lines {lines}")
    table[list(VOTE_COLUMNS)] = votes.astype(np.int64)
    return table


def _clean(votes: np.ndarray) -> np.ndarray:
    """Votes (N, 10) with single votes removed (FER+'s outlier rule)."""
    votes = np.asarray(votes, dtype=np.float64).copy()
    votes[votes <= 1] = 0
    return votes


def not_a_face(votes: np.ndarray) -> np.ndarray:
    """(N,) bool: NF is the (or a tied) top vote, or every vote is NF."""
    votes = np.asarray(votes, dtype=np.float64)
    return (votes[:, _NF] > 0) & (votes[:, _NF] >= votes.max(axis=1))


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """(N,) index into FERPLUS_CLASSES of the FER+ majority label, or -1 where there is none.

    The FER+ protocol: drop votes of 1, keep a face whose top label holds more than half of the
    remaining votes, and that label is an emotion (not unknown or NF).
    """
    votes = _clean(votes)
    total = votes.sum(axis=1)
    top = votes.argmax(axis=1)
    strict = votes.max(axis=1) > 0.5 * total  # > half: no tie possible
    emotion_of_column = np.full(len(VOTE_COLUMNS), -1)
    emotion_of_column[_EMOTION_COLUMNS] = np.arange(len(FERPLUS_CLASSES))
    labels = emotion_of_column[top]
    return np.where(strict & (total > 0), labels, -1)


def vote_distribution(votes: np.ndarray) -> np.ndarray:
    """(N, 8) float32 shares of the eight emotions' votes (single votes dropped), rows summing to 1.

    Rows with no emotion vote left are all zero: `usable_for_votes` tells them apart.
    """
    emotions = _clean(votes)[:, _EMOTION_COLUMNS]
    total = emotions.sum(axis=1, keepdims=True)
    return np.divide(emotions, total, out=np.zeros_like(emotions), where=total > 0).astype(np.float32)


def usable_for_votes(votes: np.ndarray) -> np.ndarray:
    """(N,) bool: faces the `votes` mode trains on: an emotion vote survives the noise rule and
    the top vote is not unknown or NF."""
    cleaned = _clean(votes)
    top = cleaned.max(axis=1)
    has_emotion = cleaned[:, _EMOTION_COLUMNS].sum(axis=1) > 0
    top_is_other = (cleaned[:, _UNKNOWN] >= top) | (cleaned[:, _NF] >= top)
    return has_emotion & ~top_is_other & ~not_a_face(votes)


def _source_keys(faces: FaceSet, root: Path) -> list[str]:
    """Each face's key into a votes table: its path relative to the dataset root (folder layout)."""
    keys = []
    for source in faces.sources:
        path = Path(source)
        try:
            keys.append(path.resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            keys.append(path.as_posix())
    return keys


def _csv_rows(faces: FaceSet) -> np.ndarray | None:
    """0-based fer2013.csv data rows of faces loaded from a CSV (sources `file.csv:<line>`), else None."""
    rows = []
    for source in faces.sources:
        head, _, line = source.rpartition(":")
        if not head.endswith(".csv") or not line.isdigit():
            return None
        rows.append(int(line) - 2)  # sources name 1-based file lines after the header
    return np.asarray(rows)


def votes_for(faces: FaceSet, data: str | Path, table: pd.DataFrame, path: str | Path = "votes") -> np.ndarray:
    """(N, 10) votes of each face of `faces` (loaded from dataset `data`), looked up in `table`.

    Folder-layout faces match on the `file` column (path relative to the dataset root); faces
    from fer2013.csv match by row, on `fer2013_row` (ferplus_votes.csv) or on the table's own
    row order (fer2013new.csv, aligned with fer2013.csv). A face without votes is a DataError.
    """
    if not faces.sources:
        raise DataError("These faces carry no sources (file paths or CSV rows), so no votes can be matched to them")
    votes = table[list(VOTE_COLUMNS)].to_numpy()
    rows = _csv_rows(faces)
    if rows is not None:
        if "fer2013_row" in table.columns:
            known = table.dropna(subset=["fer2013_row"])
            index = pd.Series(
                np.arange(len(table))[table["fer2013_row"].notna()], index=known["fer2013_row"].astype(int)
            )
            index = index[~index.index.duplicated()]
            found = index.reindex(rows)
        else:
            found = pd.Series(np.where(rows < len(table), rows, -1)).replace(-1, np.nan)
    else:
        if "file" not in table.columns:
            raise DataError(
                f"{path}: has no `file` column, so it cannot be matched to the images of a folder dataset "
                "(fer2013new.csv matches fer2013.csv by row: use it with the CSV)."
            )
        root = Path(data)
        root = root if root.is_dir() else root.parent
        index = pd.Series(np.arange(len(table)), index=table["file"].astype(str))
        index = index[~index.index.duplicated()]
        # `file` is relative to the dataset root; `data` may be that root or one split folder inside it.
        tries = [index.reindex(_source_keys(faces, base)) for base in (root, root.parent)]
        found = min(tries, key=lambda t: int(t.isna().sum()))
    missing = found.isna().to_numpy()
    if missing.any():
        example = [faces.sources[i] for i in np.flatnonzero(missing)[:3]]
        raise DataError(
            f"{path}: no votes for {int(missing.sum())} of {len(faces)} faces (e.g. {example}). The table must list "
            "every image: `file` relative to the dataset root, or rows aligned with fer2013.csv."
        )
    return votes[found.to_numpy().astype(int)]


def relabel(faces: FaceSet, votes: np.ndarray, mode: str) -> FaceSet:
    """`faces` with FER+ labels over FERPLUS_CLASSES: the faces `mode` keeps, `votes` attached.

    majority: faces with a FER+ majority, labelled with it. votes: faces with a usable vote
    distribution, labelled with its top emotion (the soft target is `vote_distribution(.votes)`).
    """
    if mode not in LABEL_MODES:
        raise ValueError(f"FER+ label mode must be one of {LABEL_MODES}, got {mode!r}")
    votes = np.asarray(votes)
    if votes.shape != (len(faces), len(VOTE_COLUMNS)):
        raise ValueError(f"votes must have shape ({len(faces)}, {len(VOTE_COLUMNS)}), got {votes.shape}")
    if mode == "majority":
        labels = majority_labels(votes)
        keep = labels >= 0
    else:
        keep = usable_for_votes(votes)
        labels = vote_distribution(votes).argmax(axis=1)
    index = np.flatnonzero(keep)
    return FaceSet(
        faces.images[index],
        labels[index].astype(np.int64),
        [faces.sources[i] for i in index] if faces.sources else [],
        classes=FERPLUS_CLASSES,
        votes=votes[index],
    )


def drop_not_faces(faces: FaceSet, votes: np.ndarray) -> FaceSet:
    """`faces` (any labels) without the images the FER+ crowd calls not a face."""
    keep = np.flatnonzero(~not_a_face(votes))
    subset = faces.subset(keep)
    subset.votes = np.asarray(votes)[keep]
    return subset


def agreement_table(fer2013_labels: np.ndarray, votes: np.ndarray) -> pd.DataFrame:
    """Counts of FER-2013 label (rows) x FER+ majority (columns; "none" where there is no majority)."""
    majority = majority_labels(votes)
    columns = [FERPLUS_CLASSES[i] if i >= 0 else "none" for i in majority]
    nf = not_a_face(votes)
    columns = ["not a face" if n else c for c, n in zip(columns, nf)]
    frame = pd.DataFrame({"FER-2013": [EMOTIONS[i] for i in fer2013_labels], "FER+ majority": columns})
    table = pd.crosstab(frame["FER-2013"], frame["FER+ majority"])
    order = [c for c in (*FERPLUS_CLASSES, "none", "not a face") if c in table.columns]
    return table.reindex(index=list(EMOTIONS), columns=order, fill_value=0)


def vote_entropy(votes: np.ndarray) -> np.ndarray:
    """(N,) entropy in bits of each face's emotion vote shares (single votes dropped): 0 = unanimous."""
    p = vote_distribution(votes).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(axis=1)


def convert_probabilities(probs: np.ndarray, source: tuple[str, ...], target: tuple[str, ...]) -> np.ndarray:
    """Probabilities over `source` classes re-expressed over `target` classes.

    A class `target` lacks (contempt, for a FER+ model scored on FER-2013's labels) is dropped and the
    rest renormalised; a class `source` lacks (contempt, for a FER-2013 model scored on FER+) gets 0.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if tuple(source) == tuple(target):
        return probs
    out = np.zeros((len(probs), len(target)), dtype=np.float32)
    for j, name in enumerate(target):
        if name in source:
            out[:, j] = probs[:, source.index(name)]
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.full_like(out, 1.0 / len(target)), where=total > 0)


def crowd_agreement(votes: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(N,) share of each face's ten annotators who chose the predicted FERPLUS_CLASSES label."""
    votes = np.asarray(votes, dtype=np.float64)
    chosen = votes[np.arange(len(votes)), _EMOTION_COLUMNS[np.asarray(predicted)]]
    return chosen / np.maximum(votes.sum(axis=1), 1)


def vote_cross_entropy(votes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(N,) cross-entropy in nats of predicted FERPLUS_CLASSES probabilities against the vote shares: how
    well the model's confidence matches the crowd's split (lower is better; the vote entropy is its floor)."""
    target = vote_distribution(votes).astype(np.float64)
    return -(target * np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1.0))).sum(axis=1)


def load_ferplus_split(
    data: str | Path, split: str = "test", votes: str | Path | None = None, mode: str = "majority"
) -> FaceSet:
    """One split of dataset `data` with FER+ labels (`mode`) and votes attached: what FER+ scores are computed on.

    `votes`: the votes table (default: votes_path()). majority (the FER+ test protocol) keeps the faces with
    a crowd majority; votes keeps the faces with a usable vote distribution.
    """
    from fer.data.loading import load_split

    path = votes_path(votes)
    faces = load_split(data, split)
    return relabel(faces, votes_for(faces, data, read_votes(path), path), mode)


def votes_if_ferplus(n_classes: int, data: str | Path, split: str, votes: str | Path | None = None) -> Path | None:
    """The votes table to score an `n_classes` model against: the FER+ table for an 8-class (FER+) model when it
    covers every face of the split, else None (score against the dataset's own labels).

    What `votes="auto"` means in notebook 03 and `python -m fer run`: a FER+ model answers the crowd's question,
    so that is its headline number; on data FER+ never labelled (your own folders, the synthetic sample) it
    falls back to the dataset's labels.
    """
    if n_classes != len(FERPLUS_CLASSES):
        return None
    from fer.data.loading import load_split

    path = votes_path(votes)
    try:
        votes_for(load_split(data, split), data, read_votes(path), path)
    except DataError:
        return None
    return path
