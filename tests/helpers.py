"""Test helpers that test modules import: skipping (or, in CI, failing) on what is missing."""

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip on a developer's machine; in CI (CI=true) a missing dependency or dataset fails the run."""
    if IN_CI:
        pytest.fail(f"CI must run this test: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str):
    """`pytest.importorskip`, except that in CI a missing optional test dependency is a failure."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        skip_or_fail(f"{module} not importable ({error}); install the dev extra: pip install -e '.[dev]'")


def start_demo(*args: str, timeout: float = 90.0):
    """`python -m fer demo` on a free port in a subprocess, as a person starts it: (process, url), once it prints
    its URL. The caller stops it (process.terminate())."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "fer", "demo", "--port", str(port), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, lines = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if line.startswith("fer demo: "):
            process.printed_before_url = lines[:-1]
            return process, line.split()[2]
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError("the demo did not start:\n" + "".join(lines))


def face_frames(n: int, size=(640, 480)):
    """`n` RGB frames of the astronaut's photo (one face) on a gray canvas, moving a few pixels a frame."""
    import numpy as np
    from skimage import data

    face = data.astronaut()[:300, 100:400]  # her head and shoulders, 300x300
    width, height = size
    for i in range(n):
        canvas = np.full((height, width, 3), 128, np.uint8)
        x, y = (width - 300) // 2 + (i % 10) * 2, (height - 300) // 2
        canvas[y : y + 300, x : x + 300] = face
        yield canvas


def write_clip(path, seconds: float, fps: int = 10, size=(320, 240)) -> None:
    """A clip of `seconds` of face_frames: VP8 for a .webm path (browsers play it), else mp4v."""
    import cv2

    codec = "VP80" if str(path).endswith(".webm") else "mp4v"
    video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
    for frame in face_frames(round(seconds * fps), size=(size[0] * 2, size[1] * 2)):
        video.write(cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR))
    video.release()


def write_y4m(path, seconds: float = 2.0, fps: int = 10, size=(640, 480)) -> None:
    """A .y4m clip of face_frames (raw YUV 4:2:0), what Chromium's fake camera plays in a loop."""
    import cv2

    width, height = size
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in face_frames(round(seconds * fps), size=size):
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
