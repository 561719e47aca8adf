"""Fit the face mesh's reference: the frontal shape head poses are measured against, and each point's mirror partner.

    python benchmarks/fit_mesh_reference.py [--data DIR] [--n 2000] [--out fer/assets/face_mesh_reference.npz]

On n VALIDATION faces (split_seed 42; never test), each 48x48 face and its mirror image are meshed
(fer.inference.mesh, the whole face as its box). A point of the mirrored face, flipped back, lands where its
left-right partner lands on the face itself: averaged over the faces, the nearest such point names each point's
partner (`mirror`, checked to pair the points both ways). The shapes, centred and scaled, are aligned to their mean
(generalised Procrustes), the mean is turned to the camera's frame and averaged with its mirror image: `shape`,
left-right symmetric, so a frontal face has yaw and roll 0, and pitch 0 is the average validation face's.
"""

from __future__ import annotations

import argparse

import numpy as np

from fer.inference.mesh import REFERENCE_PATH, FaceMesh, head_pose
from fer.modeling.config import TrainConfig
from fer.modeling.run_data import split_data


def normalised(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(axis=0)
    return centred / np.sqrt((centred**2).sum(axis=1).mean())


def rotated_onto(shape: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`shape` turned (no reflection) to best match `target` (both centred)."""
    u, _, vt = np.linalg.svd(shape.T @ target)
    d = np.sign(np.linalg.det(u @ vt))
    return shape @ (u @ np.diag([1.0, 1.0, d]) @ vt)


def procrustes_mean(shapes: list[np.ndarray], rounds: int = 5) -> np.ndarray:
    mean = shapes[0]
    for _ in range(rounds):
        mean = normalised(np.mean([rotated_onto(s, mean) for s in shapes], axis=0))
    return mean


def mirror_pairs(faces: list[np.ndarray], flipped_back: list[np.ndarray]) -> np.ndarray:
    """mirror[i]: the point whose place point i of a mirrored face takes once flipped back."""
    from scipy.optimize import linear_sum_assignment

    a, b = np.mean(faces, axis=0), np.mean(flipped_back, axis=0)
    # One partner per point (an assignment, not each point's nearest: closed lips put points within a pixel).
    _, mirror = linear_sum_assignment(((b[:, None, :] - a[None, :, :]) ** 2).sum(-1))
    if not np.array_equal(mirror[mirror], np.arange(len(mirror))):
        raise SystemExit(f"the nearest points do not pair up ({int((mirror[mirror] != np.arange(len(mirror))).sum())})")
    return mirror


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="FER-2013 root (default: $FER2013_DIR, else data/fer2013)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--out", default=str(REFERENCE_PATH))
    args = parser.parse_args()
    _, val = split_data(TrainConfig(data=args.data))
    faces = val.images[np.random.default_rng(0).choice(len(val), min(args.n, len(val)), replace=False)]
    mesh = FaceMesh(reference=None)
    box = [(0, 0, faces.shape[2], faces.shape[1])]
    plain = [mesh.points(face, box)[0][0] for face in faces]
    flipped = [mesh.points(np.ascontiguousarray(face[:, ::-1]), box)[0][0] for face in faces]
    for points in flipped:
        points[:, 0] = faces.shape[2] - points[:, 0]
    mirror = mirror_pairs(plain, flipped)
    shapes = [normalised(p) for p in plain]
    # Procrustes' mean comes in the first face's orientation: turned back to the camera's (the faces' plain average).
    mean = rotated_onto(procrustes_mean(shapes), normalised(np.mean(shapes, axis=0)))
    mirrored = mean[mirror] * np.array([-1.0, 1.0, 1.0])  # the mirror image in the camera's frame: x negated
    shape = normalised((mean + mirrored) / 2).astype(np.float32)
    np.savez_compressed(args.out, shape=shape, mirror=mirror.astype(np.int16))
    poses = np.array([head_pose(p, shape.astype(np.float64)) for p in plain])
    print(f"{args.out}: {len(faces)} faces, {int((mirror == np.arange(len(mirror))).sum())} points on the midline")
    print(
        "validation faces' pose (yaw, pitch, roll): median",
        np.median(poses, 0).round(1),
        "IQR",
        (np.percentile(poses, 75, 0) - np.percentile(poses, 25, 0)).round(1),
    )


if __name__ == "__main__":
    main()
