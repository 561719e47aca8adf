"""Does eye alignment help? Accuracy on labelled FER-2013 faces re-found in larger images.

    python benchmarks/eval_alignment.py --model models/fer_emotion.keras [--n 600] [--tilt 15]

Each PublicTest face is upscaled 3x, optionally rotated by a random angle up to --tilt
degrees (head tilt), and placed in a larger gray image. MTCNN finds it with its eye
landmarks; the face is cropped with and without eye alignment and classified. Prints
accuracy of both on the faces MTCNN found (the same faces for both), and the gap.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fer.analysis.probabilities import predict_proba  # noqa: E402
from fer.data.loading import data_dir, load_split  # noqa: E402
from fer.inference.cropping import crop_face  # noqa: E402
from fer.inference.faces import detect_faces  # noqa: E402
from fer.inference.models import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/fer_emotion.keras")
    parser.add_argument("--data", default=None, help="FER-2013 root (default: $FER2013_DIR, else data/fer2013)")
    parser.add_argument("--n", type=int, default=600, help="PublicTest faces to try")
    parser.add_argument("--tilts", type=float, nargs="+", default=[0.0, 15.0], help="max random tilt, degrees")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="reports/alignment/eval_alignment.csv", help="CSV of the table ('' : none)")
    args = parser.parse_args()
    model = load_model(args.model)
    test = load_split(data_dir(args.data), "test")
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(test), min(args.n, len(test)), replace=False)
    rows = []
    for tilt in args.tilts:
        plain, aligned, labels = [], [], []
        for i in chosen:
            face = cv2.resize(test.images[i], (144, 144), interpolation=cv2.INTER_CUBIC)
            if tilt:
                matrix = cv2.getRotationMatrix2D((72, 72), rng.uniform(-tilt, tilt), 1.0)
                face = cv2.warpAffine(face, matrix, (144, 144), borderMode=cv2.BORDER_REPLICATE)
            canvas = cv2.copyMakeBorder(face, 60, 60, 80, 80, cv2.BORDER_REPLICATE)
            found = detect_faces(canvas, detector="mtcnn")
            if len(found) != 1 or found[0].left_eye is None:
                continue
            plain.append(crop_face(canvas, found[0].box))
            aligned.append(crop_face(canvas, found[0].box, align=found[0]))
            labels.append(test.labels[i])
        labels = np.array(labels)
        acc_plain = float((predict_proba(model, np.stack(plain)).argmax(1) == labels).mean())
        acc_aligned = float((predict_proba(model, np.stack(aligned)).argmax(1) == labels).mean())
        rows.append(
            {
                "max tilt": f"{tilt:g} deg",
                "faces found": f"{len(labels)}/{len(chosen)}",
                "accuracy plain": round(acc_plain, 4),
                "accuracy aligned": round(acc_aligned, 4),
                "gap (points)": round(100 * (acc_aligned - acc_plain), 2),
            }
        )
    table = pd.DataFrame(rows)
    print(f"model: {args.model}")
    print(table.to_string(index=False))
    if args.out:  # the committed result behind any claim about alignment
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        table.assign(model=args.model, n_tried=len(chosen), seed=args.seed).to_csv(out, index=False)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
