"""Cache the features issue 41's fusion tries read: face-mesh geometry and the default network's, per label set.

    python benchmarks/mesh_features.py [--data DIR] [--model models/ferplus_votes.keras] [--out /tmp/fusion]

For FER+ train (split_seed 42, the faces the default trained on, with the crowd's votes), FER+ validation (majority
and FER-2013 labels), posed-dev and wild-dev (benchmarks/eval_label_sets.py's crops): the 48x48 faces' mesh points
(fer.inference.mesh.FaceMesh.of_crops, (N, 468, 3) in crop pixels), the default's probabilities under its training
prior (N, 8) and its penultimate activations (N, 256), and the labels. One .npz per set under --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from eval_label_sets import add_set_arguments, label_sets  # noqa: E402

from fer.analysis.probabilities import predict_proba  # noqa: E402
from fer.inference.mesh import FaceMesh  # noqa: E402
from fer.inference.models import load_model  # noqa: E402
from fer.modeling.config import TrainConfig  # noqa: E402
from fer.modeling.run_data import split_data  # noqa: E402


def penultimate(model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The activations the classifier's last Dense layer reads (inference mode: dropout off)."""
    import keras

    trunk = keras.Model(model.inputs, model.layers[-2].output)
    x = images[..., None].astype("float32")
    return np.concatenate(
        [np.asarray(trunk(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_arguments(parser)
    parser.add_argument("--model", default=str(REPO / "models" / "ferplus_votes.keras"))
    parser.add_argument("--out", default="/tmp/fusion")
    args = parser.parse_args()
    args.test = False
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, mesh = load_model(args.model), FaceMesh()
    train, _ = split_data(TrainConfig(data=args.data, labels="ferplus_votes"))
    sets = {"train": (train, None), **label_sets(args)}
    for name, (faces, classes) in sets.items():
        start = time.perf_counter()
        images = np.asarray(faces.images, np.uint8)
        np.savez(
            out / f"{name.replace(' ', '_').replace('+', 'plus')}.npz",
            points=mesh.of_crops(images),
            probs=predict_proba(model, images),
            features=penultimate(model, images),
            labels=np.asarray(faces.labels),
            votes=np.asarray(getattr(faces, "votes", None) if getattr(faces, "votes", None) is not None else []),
            classes=np.asarray(classes if classes is not None else []),
        )
        print(f"{name}: {len(images)} faces, {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
