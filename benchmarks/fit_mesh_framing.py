"""Fit the mesh framing: a face's mesh points -> FER-2013's box, and score it against BlazeFace's on real portraits.

    python benchmarks/fit_mesh_framing.py [--data DIR] [--model M] [--wild ../shared/wild-dev]
                                          [--posed ../shared/posed-dev/ckplus48] [--out reports/mesh/framing.csv]

Fit (VALIDATION faces, split_seed 42; never test): each 48x48 face is its own FER-2013 box (the Haar box it was cut
with); its mesh gives the eye corners; the box's centre relative to the eyes' midpoint (along and across the eye
line) and its side, in eye distances, are taken as the medians over the first half of the faces
(fer.inference.mesh.MESH_FRAMING). Score on real heads that do not fill the frame, each photo's face found by
BlazeFace and cropped four ways, the default model's accuracy and macro recall (training prior):
- `blazeface`: the default's box (BlazeFace mapped to FER's framing); `blazeface-cascade`: the cascade re-measures;
- `mesh`: the mesh read in BlazeFace's box, the box from its points; `mesh, aligned`: that crop turned eyes-level.
Sets: the second half of the validation faces and posed-dev's crops, each scaled to 100-200 px and pasted on a
256x256 or 256x320 backdrop of its edge colour, and the wild-dev photos so pasted (benchmarks/bench_inference's
portraits); then the wild-dev close-ups as they are through predict_emotion, detector "blazeface" against
"blazeface-mesh" (the median framing, shipped as that option).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from eval_label_sets import add_set_arguments  # noqa: E402

from fer import quiet  # noqa: E402

quiet.install()
from bench_inference import portrait_set  # noqa: E402

from fer.analysis.probabilities import predict_proba  # noqa: E402
from fer.data.classes import EMOTIONS, FERPLUS_CLASSES  # noqa: E402
from fer.data.images import read_image  # noqa: E402
from fer.data.loading import load_folder  # noqa: E402
from fer.inference.cropping import DEFAULT_MARGIN, crop_face  # noqa: E402
from fer.inference.detectors.base import Face  # noqa: E402
from fer.inference.faces import detect_faces  # noqa: E402
from fer.inference.mesh import POINTS, face_mesh, framed_box  # noqa: E402
from fer.inference.models import load_model  # noqa: E402
from fer.modeling.config import TrainConfig  # noqa: E402
from fer.modeling.run_data import split_data  # noqa: E402


def eye_frame(points: np.ndarray):
    """(eyes' midpoints (N, 2), unit vectors along (N, 2) and across (N, 2) the eye line, eye distances (N,))."""
    left, right = points[:, POINTS["image_left_eye_outer"], :2], points[:, POINTS["image_right_eye_outer"], :2]
    distance = np.linalg.norm(right - left, axis=1)
    along = (right - left) / distance[:, None]
    return (left + right) / 2, along, np.stack([-along[:, 1], along[:, 0]], axis=1), distance


def inner_features(points: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The inner face's points (eyes, brows, nose, mouth) in the eye frame, in eye distances: (N, 2 * inner)."""
    mid, along, across, distance = eye_frame(points)
    rel = points[:, inner, :2] - mid[:, None]
    return np.concatenate([(rel * along[:, None]).sum(2), (rel * across[:, None]).sum(2)], 1) / distance[:, None]


def targets(points: np.ndarray, size: int) -> np.ndarray:
    """Each 48x48 face's own box (its FER-2013 box) in its eye frame: (along, across, side) in eye distances."""
    mid, along, across, distance = eye_frame(points)
    offset = (np.array([size / 2, size / 2]) - mid) / distance[:, None]
    return np.stack([(offset * along).sum(1), (offset * across).sum(1), size / distance], axis=1)


def fit(faces: np.ndarray) -> dict:
    """The framings fitted on 48x48 faces: the median offsets (MESH_FRAMING) and a ridge regression from the inner
    face's points (the Haar box follows the eyes, nose and mouth it was found by)."""
    from sklearn.linear_model import RidgeCV

    points = face_mesh().of_crops(faces)
    y = targets(points, faces.shape[1])
    reference = face_mesh().reference[:, :2]
    radius = np.linalg.norm(reference - reference.mean(axis=0), axis=1)
    inner = radius < np.percentile(radius, 60)
    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(inner_features(points, inner), y)
    return {"median": tuple(round(float(v), 3) for v in np.median(y, axis=0)), "ridge": ridge, "inner": inner}


def fitted_box(points: np.ndarray, fitted: dict) -> tuple[int, int, int, int]:
    along_, across_, side = fitted["ridge"].predict(inner_features(points[None], fitted["inner"]))[0]
    return framed_box(points, (along_, across_, side))


def pasted(faces: np.ndarray, labels: np.ndarray, rng) -> list[tuple[np.ndarray, int]]:
    """Each 48x48 face scaled to 100-200 px and pasted on a 256x256/256x320 backdrop of its edge colour."""
    out = []
    for face, label in zip(faces, labels):
        side = int(rng.integers(100, 201))
        out.append((cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC), label))
    return [(canvas, label) for (canvas, _, label) in portrait_set([(f, None, y) for f, y in out], rng)]


def crops(image: np.ndarray, framing) -> dict[str, np.ndarray] | None:
    """The four crops of the photo's largest face (None without one)."""
    found = detect_faces(image)
    if not found:
        return None
    face = max(found, key=lambda f: f.box[2] * f.box[3])
    cascade = detect_faces(image, "blazeface-cascade")
    other = max(cascade, key=lambda f: f.box[2] * f.box[3]) if cascade else face
    (points,), _ = face_mesh().points(image, [face.box], [(face.left_eye, face.right_eye)])
    box = framed_box(points, framing["median"])
    fitted = fitted_box(points, framing)
    eyes = Face(box, left_eye=tuple(points[POINTS["image_left_eye_outer"], :2]),
                right_eye=tuple(points[POINTS["image_right_eye_outer"], :2]))  # fmt: skip
    return {
        "blazeface": crop_face(image, face.box, DEFAULT_MARGIN),
        "blazeface-cascade": crop_face(image, other.box, DEFAULT_MARGIN),
        "mesh (median)": crop_face(image, box, DEFAULT_MARGIN),
        "mesh (median), aligned": crop_face(image, box, DEFAULT_MARGIN, align=eyes),
        "mesh (fitted)": crop_face(image, fitted, DEFAULT_MARGIN),
        "mesh (fitted), aligned": crop_face(image, fitted, DEFAULT_MARGIN, align=eyes),
    }


def score(name: str, items, classes, model, framing) -> list[dict]:
    found = [(crops(image, framing), label) for image, label in items]
    found = [(c, y) for c, y in found if c is not None]
    truth = np.array([FERPLUS_CLASSES.index(classes[y]) for _, y in found])
    rows = []
    for way in found[0][0]:
        probs = predict_proba(model, np.stack([c[way] for c, _ in found]))
        if len(classes) < len(FERPLUS_CLASSES):  # a 7-class set: contempt is not an answer
            probs[:, FERPLUS_CLASSES.index("contempt")] = 0
        predicted = probs.argmax(1)
        recall = {FERPLUS_CLASSES[c]: float((predicted[truth == c] == c).mean()) for c in sorted(set(truth))}
        rows.append({"set": name, "crops": way, "n": len(found), "found": f"{len(found)}/{len(items)}",
                     "acc": float((predicted == truth).mean()), "macro_recall": float(np.mean(list(recall.values()))),
                     **recall})  # fmt: skip
    return rows


def as_they_are(wild: Path) -> list[dict]:
    """wild-dev's close-ups as they are, through predict_emotion with each detector (the largest face per photo)."""
    import warnings

    import fer

    files = sorted(f for f in wild.glob("*/*") if f.parent.name in EMOTIONS)
    truth = np.array([f.parent.name for f in files])
    rows = []
    for detector in ("blazeface", "blazeface-mesh"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No face found"
            found = fer.predict_emotion([str(f) for f in files], detector=detector)
        answers = []
        for faces in found:
            probs = max(faces, key=lambda p: p.box[2]).probabilities if faces else {}
            answers.append(max((c for c in probs if c != "contempt"), key=probs.get) if probs else None)
        answers = np.array(answers, dtype=object)
        recall = {c: float((answers[truth == c] == c).mean()) for c in sorted(set(truth))}
        rows.append({"set": "wild-dev photos as they are", "crops": f"predict_emotion, detector={detector}",
                     "n": len(files), "found": f"{sum(bool(f) for f in found)}/{len(files)}",
                     "acc": float((answers == truth).mean()), "macro_recall": float(np.mean(list(recall.values()))),
                     **recall})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_arguments(parser)
    parser.add_argument("--model", default=str(REPO / "models" / "ferplus_votes.keras"))
    parser.add_argument("--n", type=int, default=1200, help="validation faces scored (after the half fitted on)")
    parser.add_argument("--out", default=str(REPO / "reports" / "mesh" / "framing.csv"))
    args = parser.parse_args()
    _, val = split_data(TrainConfig(data=args.data, labels="ferplus_majority"))
    order = np.random.default_rng(0).permutation(len(val))
    half = len(order) // 2
    framing = fit(np.asarray(val.images[order[:half]], np.uint8))
    print(f"MESH_FRAMING = {framing['median']}  (fitted on {half} validation faces)", flush=True)
    model, rng = load_model(args.model), np.random.default_rng(1)
    check = order[half:][: args.n]
    rows = score("validation faces pasted", pasted(val.images[check], val.labels[check], rng), FERPLUS_CLASSES,
                 model, framing)  # fmt: skip
    if Path(args.posed).is_dir():
        posed = load_folder(args.posed)
        rows += score("posed-dev pasted", pasted(posed.images, posed.labels, rng), posed.classes, model, framing)
    if Path(args.wild).is_dir():
        files = sorted(f for f in Path(args.wild).glob("*/*") if f.parent.name in EMOTIONS)
        photos = [(read_image(f), None, EMOTIONS.index(f.parent.name)) for f in files]
        rows += score("wild-dev portraits", [(c, y) for c, _, y in portrait_set(photos, rng)], EMOTIONS, model,
                      framing)  # fmt: skip
        rows += as_they_are(Path(args.wild))
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.round(3).to_string(index=False))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.assign(framing=str(framing["median"])).round(4).to_csv(out, index=False)


if __name__ == "__main__":
    main()
