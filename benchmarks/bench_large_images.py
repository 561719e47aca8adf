"""Large photos and HD video frames: ms per image and faces found, before and after issue 42's large-image path.

    python benchmarks/bench_large_images.py [--rounds 7] [--wild ../shared/wild-dev]

"before" re-creates the path before: the detection copy shrunk to exactly max_side by fractional area averaging
(now: by a whole factor where that leaves 90% of max_side), the gray image made by a PIL round trip once for
detection and again for every face's crop (now: OpenCV's, once), JPEGs decoded in full up to 4096 px (now: 2048).
Two tables:
1. Speed: scikit-image's astronaut (its head and shoulders) pasted at 65% of the height into a 1080p frame, a 4K frame
   and a 12 MP photo (4032x3024) over an enlarged coffee photo, each as an RGB array through photo_results (what a
   video frame or your own array takes), and the 12 MP one also as a JPEG file (`python -m fer predict`'s colour
   decode). Configurations alternate within each round (a slow spell hits both); medians and the ratio.
2. Faces found (with --wild, a folder of wild-dev's layout): every wild-dev photo enlarged (bicubic) to 12-40% of
   the height and pasted at a random place into each size of frame, and scikit-image's photos without a face
   enlarged to each size (any face found there is false): photos with a face found, the largest face's top emotion
   right against the crowd label, false faces, ms per image.
Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fer import quiet  # noqa: E402

quiet.install()


def _old_copy(gray: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    scale = min(1.0, max_side / max(gray.shape))
    return (cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray), scale


def _old_gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else np.asarray(Image.fromarray(image, mode="RGB").convert("L"), dtype=np.uint8)


@contextlib.contextmanager
def before():
    """The path before the whole-factor copy and OpenCV's gray (the modules' names swapped back meanwhile)."""
    from fer.data import images
    from fer.inference import cropping, faces, predict

    saved = faces._detection_copy, faces.to_gray, cropping.to_gray, predict.to_gray, predict.read_photo
    faces._detection_copy, faces.to_gray, cropping.to_gray = _old_copy, _old_gray, _old_gray
    predict.to_gray = lambda image: image  # the colour array went to detection and every crop as it was
    predict.read_photo = lambda path, max_side=4096, gray=False: _old_read(images, path, max_side, gray)
    try:
        yield
    finally:
        faces._detection_copy, faces.to_gray, cropping.to_gray, predict.to_gray, predict.read_photo = saved


def _old_read(images, path, max_side, gray):
    """read_photo before: a JPEG decoded in full up to 4096 px (its DCT reduction only past that)."""
    return images.read_photo(path, max_side=2 * max_side if max_side else None, gray=gray)


SIZES = {"1080p frame": (1080, 1920), "4K frame": (2160, 3840), "12 MP photo": (3024, 4032)}


def images(folder: Path) -> dict[str, object]:
    from skimage import data

    made = {}
    for name, (h, w) in SIZES.items():
        canvas = cv2.resize(data.coffee(), (w, h), interpolation=cv2.INTER_LINEAR)
        side = h * 65 // 100  # the head about a quarter of the frame's height
        canvas[h // 5 : h // 5 + side, w // 2 : w // 2 + side] = cv2.resize(
            data.astronaut()[:300, 100:400], (side, side)
        )
        made[f"{name}, array"] = canvas
    path = folder / "photo12mp.jpg"
    Image.fromarray(made["12 MP photo, array"]).save(path, quality=90)
    made["12 MP photo, JPEG file (predict's colour decode)"] = path
    return made


def speed(rounds: int, run) -> pd.DataFrame:
    """Table 1: median ms per image, before and now, interleaved."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, image in images(Path(tmp)).items():
            times, answers = {"before": [], "now": []}, {}
            for _ in range(rounds + 1):  # the first round warms both paths and is not counted
                for config in times:
                    with before() if config == "before" else contextlib.nullcontext():
                        start = time.perf_counter()
                        answers[config] = run(image)
                        times[config].append(time.perf_counter() - start)
            before_ms, now_ms = (1000 * statistics.median(times[c][1:]) for c in ("before", "now"))
            rows.append({"image": name, "faces before": len(answers["before"]), "faces now": len(answers["now"]),
                         "same answers": answers["before"] == answers["now"], "before ms": before_ms,
                         "now ms": now_ms, "x before": before_ms / now_ms})  # fmt: skip
    return pd.DataFrame(rows)


def found(wild: Path, run) -> pd.DataFrame:
    """Table 2: wild-dev faces pasted into large frames, and large photos without a face, before and now."""
    from skimage import data

    photos = sorted(wild.glob("*/*.jpg"))
    empty = [data.coffee(), data.rocket(), data.chelsea(), data.brick(), data.grass(), data.text()]
    rows = []
    for name, (h, w) in SIZES.items():
        rng = np.random.default_rng(0)
        tally = {c: {"with a face": 0, "right": 0, "false faces": 0, "seconds": 0.0} for c in ("before", "now")}
        for path in photos:
            face = np.asarray(Image.open(path).convert("RGB"))
            side = int(rng.uniform(0.12, 0.4) * h)
            y, x = rng.integers(0, h - side), rng.integers(0, w - side)
            canvas = cv2.resize(data.coffee(), (w, h), interpolation=cv2.INTER_LINEAR)
            canvas[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
            for config, count in tally.items():
                with before() if config == "before" else contextlib.nullcontext():
                    start = time.perf_counter()
                    answers = run(canvas, largest=True)
                    count["seconds"] += time.perf_counter() - start
                count["with a face"] += bool(answers)
                count["right"] += answers[:1] == [path.parent.name]
        for image in empty:
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC)
            for config, count in tally.items():
                with before() if config == "before" else contextlib.nullcontext():
                    count["false faces"] += len(run(image))
        for config, count in tally.items():
            rows.append({"frame": name, "path": config, "photos": len(photos), "with a face": count["with a face"],
                         "largest face right": count["right"], f"false faces ({len(empty)})": count["false faces"],
                         "ms per photo": 1000 * count["seconds"] / len(photos)})  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--wild", type=Path, default=REPO.parent / "shared" / "wild-dev")
    args = parser.parse_args()

    from fer.inference.options import PredictOptions
    from fer.inference.predict import photo_results

    options = PredictOptions.make(None)

    def run(image, largest: bool = False) -> list[str]:
        """The faces' top emotions (`largest`: the largest face's alone)."""
        faces = [p for r in photo_results([image], options) for p in r.faces]
        faces = sorted(faces, key=lambda p: -p.box[2])[:1] if largest else faces
        return [p.emotion for p in faces]

    print(f"1. median of {args.rounds} interleaved rounds, one photo_results call per image (decode, detect, classify)")
    print(speed(args.rounds, run).round(2).to_string(index=False))
    if args.wild.is_dir():
        print(f"\n2. {args.wild}'s photos pasted into large frames, and photos without a face enlarged to them")
        print(found(args.wild, run).round(1).to_string(index=False))


if __name__ == "__main__":
    main()
