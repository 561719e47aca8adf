"""How well the face mesh sits on FER-2013's faces, and what it costs: agreement under flips, shifts and framing.

    python benchmarks/eval_mesh.py [--data DIR] [--n 1000] [--wild ../shared/wild-dev] [--repeats 5] [--no-timing]
                                   [--out reports/mesh/eval_mesh.csv]

The mesh has no ground truth on these faces; what can be measured is whether it answers the same face the same way.
Each figure is the mean distance between two meshes of one face over its 468 points, as a share of the distance
between the outer eye corners (NME, %; 1% of a 48x48 face's ~20 px eye distance is 0.2 px), over n VALIDATION faces
(split_seed 42), and over posed-dev's crops:
- flip: the face mirrored, meshed, and mirrored back (each point read at its left-right partner), against the face;
- shift 1 px / 2 px: the 48x48 face moved by that many pixels (edges replicated) and the points moved back;
- framing 1.3 / 1.5: the square the mesh reads at 1.3 or 1.5 face boxes instead of ROI_SCALE's 1.4;
- 48 px vs photo (wild-dev): the photo's detected face meshed at the photo's resolution against its 48x48 crop's
  mesh scaled back to the photo: what reading a 48x48 face loses.
Then (unless --no-timing; nothing else should run) median ms per photo of predict_emotion on the bench_inference
portraits (256x256/256x320 JPEGs, one face) without and with landmarks=True and with detector="blazeface-mesh",
and of the mesh alone on one face.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from eval_label_sets import add_set_arguments  # noqa: E402

from fer import quiet  # noqa: E402

quiet.install()
import fer  # noqa: E402
from fer.data.images import read_photo  # noqa: E402
from fer.data.loading import load_folder  # noqa: E402
from fer.inference.cropping import DEFAULT_MARGIN, crop_face, crop_square  # noqa: E402
from fer.inference.faces import detect_faces  # noqa: E402
from fer.inference.mesh import POINTS, face_mesh, roi  # noqa: E402
from fer.modeling.config import TrainConfig  # noqa: E402
from fer.modeling.run_data import split_data  # noqa: E402

EYES = (POINTS["image_left_eye_outer"], POINTS["image_right_eye_outer"])


def nme(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per face: mean point distance (x, y) of two (N, 468, 3) meshes over the eye-corner distance of `a`, in %."""
    eye = np.linalg.norm(a[:, EYES[0], :2] - a[:, EYES[1], :2], axis=1)
    return 100 * np.linalg.norm(a[..., :2] - b[..., :2], axis=2).mean(axis=1) / eye


def shifted(faces: np.ndarray, dx: int, dy: int) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return np.stack([cv2.warpAffine(f, matrix, f.shape[::-1], borderMode=cv2.BORDER_REPLICATE) for f in faces])


def _at(mesh, face: np.ndarray, scale: float) -> np.ndarray:
    import fer.inference.mesh as m

    square = roi((0, 0, 48, 48), scale=scale)
    x = m._sampled(cv2.cvtColor(face, cv2.COLOR_GRAY2RGB), square)[None].astype(np.float32) / 255.0
    raw, _ = mesh.session.run(None, {mesh.input_name: x})
    return m.to_image(raw.reshape(468, 3), square)


def agreement(name: str, faces: np.ndarray) -> list[dict]:
    mesh = face_mesh()
    base = mesh.of_crops(faces)
    flipped = mesh.of_crops(np.ascontiguousarray(faces[:, :, ::-1]))
    flipped[..., 0] = faces.shape[2] - flipped[..., 0]
    rows = {"flip": nme(base, flipped[:, mesh.mirror])}
    for d in (1, 2):
        moved = np.mean([mesh.of_crops(shifted(faces, dx, dy)) - (dx, dy, 0) for dx, dy in ((d, 0), (0, d), (-d, -d))],
                        axis=0)  # fmt: skip
        rows[f"shift {d} px (mean of 3 moves)"] = nme(base, moved)
    for scale in (1.3, 1.5):
        rows[f"framing {scale} boxes"] = nme(base, np.stack([_at(mesh, f, scale) for f in faces]))
    return [_row(name, k, v) for k, v in rows.items()]


def _row(faces: str, what: str, values: np.ndarray) -> dict:
    return {"faces": faces, "against": what, "n": len(values), "NME % mean": values.mean(),
            "median": np.median(values), "p90": np.percentile(values, 90)}  # fmt: skip


def photo_vs_48(wild: Path) -> dict:
    """wild-dev: the mesh at the photo's resolution against its 48x48 crop's, scaled back."""
    mesh, full, small = face_mesh(), [], []
    for path in sorted(wild.glob("*/*")):
        if not path.is_file():
            continue
        image, _ = read_photo(path, gray=True)
        found = detect_faces(image)
        if not found:
            continue
        face = max(found, key=lambda f: f.box[2] * f.box[3])
        x0, y0, side = crop_square(face.box, DEFAULT_MARGIN)
        crop = crop_face(image, face.box, DEFAULT_MARGIN)
        full.append(mesh.points(image, [face.box])[0][0])
        # The crop's square is the box grown by the margin; its mesh read from a square ROI_SCALE times that.
        points = mesh.of_crops(crop[None])[0] * side / 48 + (x0, y0, 0)
        small.append(points)
    return _row("wild-dev photos", "48x48 crop vs photo resolution", nme(np.stack(full), np.stack(small)))


def timing(wild: Path, repeats: int) -> list[dict]:
    from bench_inference import median_seconds, portrait_files

    files = portrait_files(wild if wild.is_dir() else None, Path(tempfile.mkdtemp(prefix="fer-mesh-")) / "p")
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = (
            ("predict_emotion", {}),
            ("predict_emotion(landmarks=True)", {"landmarks": True}),
            ("predict_emotion(detector='blazeface-mesh')", {"detector": "blazeface-mesh"}),
        )
        for label, options in cases:
            ms = [1000 * median_seconds(lambda f=f, o=options: fer.predict_emotion(f, **o), repeats) for f in files]
            rows.append({"case": label, "photos": len(files), "ms per portrait (median)": statistics.median(ms)})
    face = cv2.imread(str(files[-1]), cv2.IMREAD_GRAYSCALE)
    box = [fer.predict_emotion(face)[0].box]
    face_mesh()(face, box)
    start = time.perf_counter()
    for _ in range(50):
        face_mesh()(face, box)
    rows.append({"case": "the mesh alone, one face", "photos": 1,
                 "ms per portrait (median)": 1000 * (time.perf_counter() - start) / 50})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_arguments(parser)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--out", default=str(REPO / "reports" / "mesh" / "eval_mesh.csv"))
    args = parser.parse_args()
    _, val = split_data(TrainConfig(data=args.data))
    pick = np.random.default_rng(0).choice(len(val), min(args.n, len(val)), replace=False)
    rows = agreement("FER-2013 validation", np.asarray(val.images[pick], np.uint8))
    if Path(args.posed).is_dir():
        rows += agreement("posed-dev", np.asarray(load_folder(args.posed).images, np.uint8))
    if Path(args.wild).is_dir():
        rows.append(photo_vs_48(Path(args.wild)))
    table = pd.DataFrame(rows).round(2)
    print(table.to_string(index=False))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    if not args.no_timing:
        times = pd.DataFrame(timing(Path(args.wild), args.repeats)).round(2)
        print()
        print(times.to_string(index=False))
        times.to_csv(out.with_name(out.stem + "_timing.csv"), index=False)
    print(f"\nWrote {out}")


if __name__ == "__main__":
    main()
