"""Inference benchmarks: photos end to end against the previous release's path, batched face crops per backend, video.

    python benchmarks/bench_inference.py [--model models/fer_emotion.keras] [--repeats 20] [--no-export]
                                         [--wild ../shared/wild-dev] [--out reports/benchmarks/before_and_now.csv]
                                         [--peer-python /tmp/peervenv/bin/python] [--only-table0]

Prints tables:
0. today against before, in this same process (nothing else should run): median ms per photo of
   predict_emotion with the default model on JPEG portraits written for the run (256x256 and 256x320: the wild-dev
   photos shrunk onto a plain backdrop, and four colour crops of scikit-image's astronaut; decoding included), on
   the 512x512 astronaut, on photos without a face; photos/s of the wild-dev folder one call per photo and as one
   list; frames/s of analyze_video on a 640x480 clip with two faces, detection on every frame; photos/s of
   `python -m fer predict` on the portraits folder (start-up included). "before (0.4)" is the 0.4 path: files
   decoded in colour, BlazeFace's faces re-measured by the cascade (detector="blazeface-cascade"); "now" is the
   default, and "now, FER_ENGINE=int8" the same with the int8 twin. With --peer-python (the python of a SEPARATE
   venv holding PyPI's `fer` package, which is also imported as `fer`: never install it beside this project),
   the same portraits through that package (benchmarks/peer_fer.py) and our time as a share of its;
1. median latency of predict_emotion on one photo (the scikit-image astronaut, 512x512, one
   face), split into detection and the rest;
2. faces/s on 48x48 crops at batch 1 (one face per call, the latency case) and batch 256, for
   Keras/TensorFlow, the ONNX Runtime exports (float32, float16, int8) and the LiteRT export, each as a ratio to
   Keras at the same batch size in this process, with file size and PublicTest accuracy
   (full split and without the faces that copy training images) when FER-2013 is found;
3. frames/s of analyze_video end to end (decode, detect, classify) on a generated 640x480 clip
   with two faces: every frame, stride 3, detection every 5th frame (boxes re-used between),
   and that with detection on frames downscaled to 480 px; before (Keras, the 0.2 detector) and now (the
   ONNX twin, the default detector; and with the Haar cascade).
Without --model (or the shipped model) an untrained vgg_lite of the same shape is timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fer.inference.faces import detect_faces  # noqa: E402
from fer.inference.models import load_model, resolve_model  # noqa: E402
from fer.inference.predict import predict_crop, predict_emotion  # noqa: E402
from fer.modeling.architectures import build_model  # noqa: E402
from fer.modeling.files import default_model_path  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: graph tracing, detector loading
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .keras model (default: the shipped one, else an untrained vgg_lite)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--data", help="FER-2013 root for accuracy and int8 calibration (default: fer.data_dir())")
    parser.add_argument("--no-export", action="store_true", help="skip the ONNX backends and the video table")
    parser.add_argument("--wild", default=str(Path(__file__).resolve().parents[2] / "shared" / "wild-dev"))
    parser.add_argument("--out", help="also write the before/now table as CSV")
    parser.add_argument("--peer-python", help="the python of a SEPARATE venv with PyPI's `fer` (never install it here)")
    parser.add_argument("--only-table0", action="store_true", help="stop after the before/now table")
    args = parser.parse_args()
    if args.model is None:
        table = before_and_now(args.wild, args.repeats, args.peer_python)
        print(table.to_string(index=False))
        print()
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(args.out, index=False)
        if args.only_table0:
            return
    path = args.model or default_model_path()
    if os.path.isfile(path):
        model, name = load_model(path), str(path)
    else:
        model, name = build_model("vgg_lite"), "untrained vgg_lite"
    try:
        from skimage.data import astronaut

        photo = astronaut()
    except ImportError:
        raise SystemExit("this benchmark uses scikit-image's astronaut photo: pip install scikit-image") from None

    rows = []
    total = median_seconds(lambda: predict_emotion(photo, model=model), args.repeats)
    detect = median_seconds(lambda: detect_faces(photo), args.repeats)
    rows.append(
        {
            "benchmark": "one photo, detect + classify",
            "value": f"{total * 1000:.1f} ms",
            "detail": f"median of {args.repeats}; {len(detect_faces(photo))} face, 512x512",
        }
    )
    rows.append(
        {
            "benchmark": "  of which face detection (default detector)",
            "value": f"{detect * 1000:.1f} ms",
            "detail": f"{detect / total:.0%} of the total",
        }
    )

    faces = np.random.default_rng(0).integers(0, 256, (1024, 48, 48), dtype=np.uint8)
    base = None
    for batch in (1, 32, 256):
        seconds = median_seconds(
            lambda b=batch: predict_crop(faces[: max(b, 64)], model=model, batch_size=b), max(3, args.repeats // 4)
        )
        per_second = max(batch, 64) / seconds
        base = base or per_second
        rows.append(
            {
                "benchmark": f"face crops, batch {batch}",
                "value": f"{per_second:.0f} faces/s",
                "detail": f"{per_second / base:.1f}x batch 1",
            }
        )
    print(f"model: {name}")
    print(pd.DataFrame(rows).to_string(index=False))
    if args.no_export or not os.path.isfile(path):
        return
    variants = _backends(path, args.data)
    print()
    table = _backend_table(variants, faces, args.data)
    print(table.to_string(index=False))
    fastest = table.loc[table["faces/s batch 1"].idxmax(), "backend"]
    print()
    print(_video_table(variants, photo, ["keras (TensorFlow)", fastest]).to_string(index=False))


def portrait_set(wild: list, rng) -> list:
    """(photo, [box], label) per wild-dev photo shrunk to 130-200 px onto a plain 256x256 or 256x320 backdrop of its
    edge colour: real heads that do not fill the frame (the faces the cascade used to re-measure)."""
    import cv2

    items = []
    for k, (image, _, label) in enumerate(wild):
        height, width = (256, 256) if k % 2 == 0 else (320, 256)
        side = int(rng.integers(130, 201))
        small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
        edge = np.median(np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]]), axis=0)
        top, left = int(rng.integers(10, height - side - 10)), (width - side) // 2
        canvas = cv2.copyMakeBorder(
            small, top, height - side - top, left, width - side - left, cv2.BORDER_CONSTANT, value=edge.tolist()
        )
        items.append((canvas, [(left, top, side, side)], label))
    return items


def portrait_files(wild: Path | None, folder: Path) -> list[Path]:
    """JPEG portraits written to `folder` (a temporary one; never committed): the wild-dev portraits (gray) and
    four colour head-and-shoulder crops of scikit-image's astronaut, 256x256 or 256x320."""
    import cv2
    from skimage import data

    from fer.data.images import read_image

    photos = []
    if wild is not None and wild.is_dir():
        files = sorted(f for f in wild.glob("*/*") if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
        wild_photos = [(read_image(f), None, None) for f in files]
        photos += [p for p, _, _ in portrait_set(wild_photos, np.random.default_rng(1))]
    astronaut = data.astronaut()
    for top, left, side in ((0, 100, 300), (10, 120, 280), (30, 140, 240)):  # head and shoulders, tighter each time
        crop = astronaut[top : top + side, left : left + side]
        photos.append(cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA))
    photos.append(cv2.resize(astronaut[0:375, 100:400], (256, 320), interpolation=cv2.INTER_AREA))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, photo in enumerate(photos):
        paths.append(folder / f"portrait_{k:03d}.jpg")
        cv2.imwrite(str(paths[-1]), photo if photo.ndim == 2 else cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    return paths


def no_face_photos(rng=None) -> list[np.ndarray]:
    """Images without a face (any face found in them is false): blank, noise, gradient, and scikit-image's photos."""
    from skimage import data

    rng = rng if rng is not None else np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:400]
    return [
        np.full((300, 400), 128, np.uint8),
        np.full((100, 100), 30, np.uint8),
        rng.integers(0, 256, (300, 400), dtype=np.uint8),
        rng.integers(0, 256, (120, 120), dtype=np.uint8),
        (xx * 0.6).astype(np.uint8),
        data.brick(),
        data.text(),
        data.coffee(),
        data.rocket(),
        data.grass(),
    ]


_OLD = []


def _before(photo):
    """The 0.4 path: a file decoded in colour, BlazeFace's faces re-measured by the cascade, small faces in tiles
    (benchmarks/old_detectors.py: the package's detector="blazeface-cascade" reads strips since issue 42)."""
    from fer.data.images import read_image

    if not _OLD:
        from old_detectors import BlazeFace04  # benchmarks/ is the script's folder

        _OLD.append(BlazeFace04())
    return predict_emotion(read_image(photo) if isinstance(photo, Path) else photo, detector=_OLD[0])


def before_and_now(wild: str | None, repeats: int, peer_python: str | None = None) -> pd.DataFrame:
    """Table 0: ms per photo (or photos/s, frames/s) of the 0.4 path and today's default, measured here, the
    speed-up, and the PyPI `fer` package on the same portraits where --peer-python names its venv's python."""
    import tempfile

    from skimage.data import astronaut

    int8 = resolve_model(None, engine="int8")
    paths = {
        "before (0.4)": _before,
        "now": predict_emotion,
        "now, FER_ENGINE=int8": lambda photo: predict_emotion(photo, model=int8),
    }
    wild_dir = Path(wild) if wild else None
    folder = Path(tempfile.mkdtemp(prefix="fer-bench-"))
    files = portrait_files(wild_dir, folder / "portraits")
    sets = {
        "256x256/256x320 JPEG portrait, one face (file, decoding included)": files,
        "512x512 astronaut (array)": [astronaut()],
        "photo without a face (array)": no_face_photos(),
    }
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No face found" on the no-face photos
        for name, photos in sets.items():
            row = {"case": name, "photos": len(photos), "unit": "ms per photo (median)"}
            times = 3 if len(photos) > 10 else repeats
            for label, run in paths.items():
                per_photo = [median_seconds(lambda p=p, r=run: r(p), times) for p in photos]
                row[label] = round(1000 * statistics.median(per_photo), 2)
            row["speed-up"] = round(row["before (0.4)"] / row["now"], 2)
            rows.append(row)
        rows += _folder_rows(wild_dir, int8)
        rows.append(_video_row(folder))
        rows.append(_cli_row(folder / "portraits", len(files)))
    if peer_python:
        peer = _peer_ms(peer_python, folder / "portraits")
        now = rows[0]["now"]
        rows.append(
            {
                "case": "PyPI `fer` (Haar + mini-Xception) on the same portraits, its own venv",
                "photos": len(files),
                "unit": "ms per photo (median)",
                "now": peer,
                "speed-up": round(now / peer, 2) if peer else None,
            }
        )
    return pd.DataFrame(rows)


def _folder_rows(wild: Path | None, int8) -> list[dict]:
    """photos/s on the wild-dev folder (350x350 gray JPEG close-ups), one call per photo and as one list."""
    files = sorted(f for f in wild.glob("*/*") if f.is_file()) if wild and wild.is_dir() else []
    if not files:
        return []
    paths = {
        "before (0.4)": {"detector": "blazeface-cascade"},
        "now": {},
        "now, FER_ENGINE=int8": {"model": int8},
    }
    rows = []
    for how, run in (
        ("one call per photo", lambda options: [predict_emotion(f, **options) for f in files]),
        ("one call, a list", lambda options: predict_emotion(files, **options)),
    ):
        row = {"case": f"wild-dev folder ({len(files)} close-ups), {how}", "photos": len(files), "unit": "photos/s"}
        for label, options in paths.items():
            run(options)  # warm-up: the file cache
            start = time.perf_counter()
            run(options)
            row[label] = round(len(files) / (time.perf_counter() - start), 1)
        row["speed-up"] = round(row["now"] / row["before (0.4)"], 2)
        rows.append(row)
    return rows


def _video_row(folder: Path) -> dict:
    """analyze_video on the generated 640x480 clip with two faces, detection on every frame: frames/s."""
    from fer.inference.video import analyze_video

    path = two_face_clip(folder)
    row = {"case": "video 640x480, two faces, every frame", "photos": 120, "unit": "frames/s"}
    for label, detector in (("before (0.4)", "blazeface-cascade"), ("now", "blazeface")):
        analyze_video(path, max_frames=10, progress=False, detector=detector)  # warm-up
        start = time.perf_counter()
        analyze_video(path, progress=False, detector=detector)
        row[label] = round(120 / (time.perf_counter() - start), 1)
    row["speed-up"] = round(row["now"] / row["before (0.4)"], 2)
    return row


def _cli_row(folder: Path, n: int) -> dict:
    """`python -m fer predict FOLDER` as a user runs it (start-up and imports included): photos/s."""
    import subprocess
    import sys

    row = {"case": f"CLI: python -m fer predict on the {n} portraits", "photos": n, "unit": "photos/s"}
    for label, detector in (("before (0.4)", "blazeface-cascade"), ("now", "blazeface")):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "fer", "predict", str(folder), "--detector", detector],
            check=True,
            capture_output=True,
        )
        row[label] = round(n / (time.perf_counter() - start), 1)
    row["speed-up"] = round(row["now"] / row["before (0.4)"], 2)
    return row


def _peer_ms(python: str, folder: Path) -> float | None:
    """The PyPI `fer` package's median ms per photo on `folder`, run by benchmarks/peer_fer.py in its own venv."""
    import subprocess

    script = Path(__file__).with_name("peer_fer.py")
    done = subprocess.run(  # run from the folder, so this checkout's `fer` cannot shadow the peer's
        [python, str(script), str(folder)], capture_output=True, text=True, cwd=folder, env={"PATH": "/usr/bin:/bin"}
    )
    if done.returncode != 0:
        print(f"PyPI fer did not run: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return float(done.stdout.split()[0])


def _backends(path, data) -> dict:
    """{label: (model, file)}: the Keras model, its ONNX exports (skipped without onnxruntime)
    and its LiteRT export."""
    import tempfile
    from pathlib import Path

    variants = {"keras (TensorFlow)": (load_model(path), Path(path))}
    try:
        from fer.release.exporting import export
    except ImportError:
        return variants
    folder = Path(tempfile.mkdtemp(prefix="fer-bench-"))
    for quantize in (None, "float16", "int8"):
        try:
            onnx_path = export(path, "onnx", folder, quantize=quantize, data=data)
        except Exception as exc:  # noqa: BLE001 - report and go on: the other variants still count
            print(f"ONNX {quantize or 'float32'} export failed: {exc}")
            continue
        variants[f"onnx {quantize or 'float32'}"] = (load_model(onnx_path), onnx_path)
    try:
        tflite_path = export(path, "litert", folder)
        variants["litert float32"] = (load_model(tflite_path), tflite_path)
    except Exception as exc:  # noqa: BLE001
        print(f"LiteRT export failed: {exc}")
    return variants


def _backend_table(variants: dict, faces: np.ndarray, data) -> pd.DataFrame:
    from fer.analysis.evaluation import evaluate
    from fer.analysis.probabilities import predict_proba
    from fer.data.loading import data_dir, has_split, load_split, train_images_beside

    root = data_dir(data)
    test = load_split(root, "test") if has_split(root, "test") else None
    train = train_images_beside(root, "test") if test is not None else None
    rows, keras_speed = [], {}
    for label, (model, file) in variants.items():
        row = {"backend": label, "file MB": round(file.stat().st_size / 2**20, 2)}
        for batch in (1, 256):
            if batch == 1:
                sample = faces[:128]
                seconds = median_seconds(lambda m=model, s=sample: [predict_proba(m, f[None]) for f in s], 5)
                speed = len(sample) / seconds
            else:
                seconds = median_seconds(lambda m=model: predict_proba(m, faces, batch_size=256), 5)
                speed = len(faces) / seconds
            keras_speed.setdefault(batch, speed)
            row[f"faces/s batch {batch}"] = round(speed)
            row[f"x keras b{batch}"] = round(speed / keras_speed[batch], 2)
        if test is not None:
            result = evaluate(model, test.images, test.labels, train_images=train)
            row["PublicTest acc"] = round(result.accuracy, 4)
            if result.deduplicated is not None:
                row["acc w/o dups"] = round(result.deduplicated.accuracy, 4)
        rows.append(row)
    return pd.DataFrame(rows)


VIDEO_SETTINGS = [  # (stride, detect_every, max_side): every frame, then the three speed levers
    (1, 1, 1024),
    (3, 1, 1024),
    (1, 5, 1024),
    (1, 5, 480),
]


def two_face_clip(folder: Path, frames: int = 120) -> Path:
    """A 640x480 MJPG clip of `frames` frames: the astronaut's head twice (~230 px faces), moving a little."""
    import cv2
    from skimage.data import astronaut

    face = cv2.resize(astronaut()[20:330, 110:340], (210, 280))
    path = folder / "two_faces_640x480.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 480))
    for i in range(frames):
        frame = np.full((480, 640, 3), 90, np.uint8)
        dx = int(20 * np.sin(i / 10))
        frame[100:380, 60 + dx : 270 + dx] = face
        frame[120:400, 370 - dx : 580 - dx] = face[:, ::-1]
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _video_table(variants: dict, photo: np.ndarray, labels: list[str], frames: int = 120) -> pd.DataFrame:
    """analyze_video end to end on a generated 640x480 clip with two faces (~100 px) that move a little."""
    import tempfile
    from pathlib import Path

    from fer.inference.video import analyze_video

    path = two_face_clip(Path(tempfile.mkdtemp(prefix="fer-bench-")), frames)
    from old_detectors import BlazeFace02  # benchmarks/ is the script's folder

    before = BlazeFace02()  # the 0.2 default detector
    runs = [  # (label, model, detector label, detector)
        ("before: Keras", variants["keras (TensorFlow)"][0], "blazeface 0.2", before),
        ("now: ONNX float32 (the twin)", variants["onnx float32"][0], "blazeface", "blazeface"),
        ("now: ONNX float32 (the twin)", variants["onnx float32"][0], "haar", "haar"),
    ]
    rows = []
    for label, model, detector_name, detector in runs:
        analyze_video(path, model=model, max_frames=10, progress=False, detector=detector)  # warm-up
        for stride, every, side in VIDEO_SETTINGS:
            start = time.perf_counter()
            table = analyze_video(
                path, model=model, stride=stride, detect_every=every, max_side=side, progress=False, detector=detector
            )
            seconds = time.perf_counter() - start
            found = int((table["face"] >= 0).sum())
            rows.append(
                {
                    "video (640x480, 2 faces)": label,
                    "detector": detector_name,
                    "stride": stride,
                    "detect every": every,
                    "max side": side,
                    "frames/s of video": round(frames / seconds, 1),
                    "analysed frames/s": round(table["frame"].nunique() / seconds, 1),
                    "faces found": f"{found}/{2 * table['frame'].nunique()}",
                }
            )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
