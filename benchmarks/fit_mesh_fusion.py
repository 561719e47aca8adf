"""Issue 41 point 4 (a): the face mesh's geometry beside the default network's appearance, on every label set.

    python benchmarks/mesh_features.py            # first: the cached features (/tmp/fusion)
    python benchmarks/fit_mesh_fusion.py [--features /tmp/fusion] [--out reports/mesh/fusion.csv]

Geometry: each face's 468 mesh points (from its 48x48 crop) centred, scaled to unit size and turned onto the
reference frontal shape (so pose is gone and expression is left), 1404 numbers; every training face also counts
mirrored (its points mirrored and re-paired: fer.inference.mesh's `mirror`). Fitted on FER+ TRAIN only (the
faces the default trained on, split_seed 42), its targets the crowd's vote shares (each face weighted per class
by its share of votes); chosen on validation, posed-dev and wild-dev, never on test. Tries, each a row set of
benchmarks/eval_label_sets.py's table (per class on every set) and its summary with the bar for a new default:
- `default`: the network alone (training prior);
- `geometry`: standardised geometry -> PCA -> multinomial logistic regression alone, classes balanced (each class
  weighted by the inverse of its vote share: FER+'s neutral third would otherwise be geometry's answer to a posed
  face), its probabilities averaged over the face and its mirror image;
- `late w`: log p(network) + w log p(geometry), renormalised (w in 0.1 .. 1);
- `neutral x f`: the network alone with neutral's probability multiplied by f (0.5, 0.25) and renormalised: a prior
  on neutral alone (the `uniform` prior moves posed angry faces to disgust and contempt, not to angry);
- `stacked`: one logistic regression on [the network's penultimate activations, geometry's PCA], trained on the
  same train faces (the network has seen them: its activations there are more confident than on new faces).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from eval_label_sets import set_rows, summary  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fer.data.classes import FERPLUS_CLASSES  # noqa: E402
from fer.data.ferplus import vote_distribution  # noqa: E402
from fer.inference.mesh import face_mesh  # noqa: E402

SETS = {"FER+ val": "FERplus_val", "FER-2013 val": "FER-2013_val", "posed-dev": "posed-dev", "wild-dev": "wild-dev"}


def geometry(points: np.ndarray) -> np.ndarray:
    """(N, 468, 3) -> (N, 1404): centred, unit size, turned onto the reference (Kabsch per face)."""
    reference = face_mesh().reference
    p = points - points.mean(axis=1, keepdims=True)
    p /= np.sqrt((p**2).sum(axis=2).mean(axis=1))[:, None, None]
    q = reference - reference.mean(axis=0)
    u, _, vt = np.linalg.svd(np.einsum("nki,kj->nij", p, q))  # p -> q rotation per face
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.ones((len(p), 3))
    fix[:, 2] = d
    rotation = u @ (fix[:, :, None] * vt)
    return np.einsum("nki,nij->nkj", p, rotation).reshape(len(p), -1).astype(np.float32)


def mirrored(points: np.ndarray) -> np.ndarray:
    mesh = face_mesh()
    return points[:, mesh.mirror] * np.array([-1.0, 1.0, 1.0], np.float32)


def soft_rows(x: np.ndarray, votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each face repeated once per class it got votes for, weighted by that class's share (soft-label training,
    the shares the default trained on: fer.data.ferplus.vote_distribution, FERPLUS_CLASSES' order)."""
    shares = vote_distribution(votes)
    face, cls = np.nonzero(shares)
    return x[face], cls, shares[face, cls]


def load(folder: Path) -> dict:
    return {name: dict(np.load(folder / f"{stem}.npz")) for name, stem in {"train": "train", **SETS}.items()}


def scored(name: str, probs: dict[str, np.ndarray], data: dict) -> list[dict]:
    rows = []
    for set_name in SETS:
        d = data[set_name]
        faces = SimpleNamespace(labels=d["labels"], votes=d["votes"] if d["votes"].size else None)
        classes = tuple(str(c) for c in d["classes"])
        rows.append(
            {"model": name, "tta": "off", "prior": "training", **set_rows(set_name, probs[set_name], faces, classes)}
        )
    return rows


def normalised(logp: np.ndarray) -> np.ndarray:
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", default="/tmp/fusion")
    parser.add_argument("--components", type=int, default=120)
    parser.add_argument("--out", default=str(REPO / "reports" / "mesh" / "fusion.csv"))
    args = parser.parse_args()
    data = load(Path(args.features))
    train = data["train"]
    geo_train = np.concatenate([geometry(train["points"]), geometry(mirrored(train["points"]))])
    votes = np.concatenate([train["votes"], train["votes"]])
    x, y, w = soft_rows(geo_train, votes)
    share = np.bincount(y, weights=w, minlength=len(FERPLUS_CLASSES)) / w.sum()
    geo = make_pipeline(StandardScaler(), PCA(args.components, random_state=0), LogisticRegression(C=1.0, max_iter=500))
    geo.fit(x, y, logisticregression__sample_weight=w / share[y] / len(share))
    geo_probs = {
        s: (geo.predict_proba(geometry(data[s]["points"])) + geo.predict_proba(geometry(mirrored(data[s]["points"]))))
        / 2
        for s in SETS
    }
    net = {s: data[s]["probs"] for s in SETS}
    rows = scored("default", net, data) + scored("geometry", geo_probs, data)
    for weight in (0.25, 0.5, 1.0):
        late = {s: normalised(np.log(net[s] + 1e-7) + weight * np.log(geo_probs[s] + 1e-7)) for s in SETS}
        rows += scored(f"late {weight}", late, data)
    neutral = FERPLUS_CLASSES.index("neutral")
    for factor in (0.5, 0.25):
        scaled = {s: net[s] * np.where(np.arange(len(FERPLUS_CLASSES)) == neutral, factor, 1.0) for s in SETS}
        rows += scored(f"neutral x{factor}", {s: p / p.sum(axis=1, keepdims=True) for s, p in scaled.items()}, data)
    # Stacked: the network's activations beside geometry's principal components, one logistic regression.
    pca = geo[:2]
    stack_train = np.concatenate([np.concatenate([train["features"]] * 2), pca.transform(geo_train)], axis=1)
    xs, ys, ws = soft_rows(stack_train, votes)
    stacked = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=300)).fit(
        xs, ys, logisticregression__sample_weight=ws
    )
    stack_probs = {
        s: stacked.predict_proba(
            np.concatenate([data[s]["features"], pca.transform(geometry(data[s]["points"]))], axis=1)
        )
        for s in SETS
    }
    rows += scored("stacked", stack_probs, data)
    columns = ["model", "tta", "prior", "set", "n", "acc", "macro_recall", "macro_f1", "crowd_agreement"]
    table = pd.DataFrame(rows)[columns + list(FERPLUS_CLASSES)]
    overview = summary(table, "default")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.round(4).to_csv(out, index=False)
    overview.round(4).to_csv(out.with_name(out.stem + "_summary.csv"), index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(table.round(3).to_string(index=False))
        print()
        print(overview.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
