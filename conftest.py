"""Runs the examples of README.md and docs/*.md (Sybil) on generated data, so a renamed option or a changed
return type fails the tests instead of the reader.

Python blocks run in one namespace per page, inside a workspace folder that holds what the examples name:
group.jpg, a.jpg, b.jpg, broken.jpg, face48.png, clip.mp4, photos/, a tiny synthetic FER-2013 (found through
$FER2013_DIR) with made-up FER+ votes in data/ferplus_votes.csv, and the checkout's models/ and sweeps/.
Shell blocks: every `python -m fer ...` line is parsed by the real CLI parser; most run for real (train for one
epoch on the tiny data, sweep with --list); `ship`, `run` and `demo` are only parsed (they rewrite models/, run every
notebook or serve until stopped: tests/test_release.py, tests/test_notebooks.py and tests/test_demo*.py cover them).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser
from sybil.parsers.markdown.codeblock import CodeBlockParser

REPO = Path(__file__).resolve().parent
PARSE_ONLY = {"ship", "run", "demo"}


@pytest.fixture(scope="session")
def docs_workspace(tmp_path_factory) -> Path:
    """A folder with every file the documentation's examples name."""
    import cv2
    from PIL import Image

    from fer.data.sample import make_sample, write_sample, write_sample_votes

    ws = tmp_path_factory.mktemp("docs")
    data = write_sample(ws / "data" / "fer2013", n_train=8, n_test=4)
    write_sample_votes(data, ws / "data" / "ferplus_votes.csv")
    for name in ("models", "sweeps"):
        (ws / name).symlink_to(REPO / name, target_is_directory=True)
    try:
        from skimage.data import astronaut

        photo = astronaut()
    except ImportError:  # scikit-image is a dev dependency; a blank photo still exercises the code paths
        photo = np.full((512, 512, 3), 128, np.uint8)
    Image.fromarray(photo).save(ws / "group.jpg")
    Image.fromarray(photo).save(ws / "a.jpg")
    Image.fromarray(photo[:, ::-1]).save(ws / "b.jpg")
    (ws / "broken.jpg").write_text("not an image")
    (ws / "photos").mkdir()
    Image.fromarray(photo).save(ws / "photos" / "portrait.jpg")
    Image.fromarray(photo[::2, ::2]).save(ws / "photos" / "small.png")
    faces = make_sample(2, seed=1).images
    Image.fromarray(faces[0]).save(ws / "face48.png")
    writer = cv2.VideoWriter(str(ws / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (256, 256))
    for shift in range(10):
        writer.write(cv2.cvtColor(np.roll(photo[::2, ::2], shift, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    return ws


@pytest.fixture
def docs_env(docs_workspace, monkeypatch) -> Path:
    """Every example runs in the workspace, with its data found as a user's would be."""
    monkeypatch.chdir(docs_workspace)
    monkeypatch.setenv("FER2013_DIR", str(docs_workspace / "data" / "fer2013"))
    monkeypatch.setenv("FERPLUS_VOTES", str(docs_workspace / "data" / "ferplus_votes.csv"))
    return docs_workspace


# Names the examples assume the reader has: a photo (RGB array), an OpenCV frame (BGR), a stack of 48x48 faces.
@pytest.fixture
def photo(docs_workspace) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(docs_workspace / "group.jpg"))


@pytest.fixture
def bgr_frame(photo) -> np.ndarray:
    return photo[..., ::-1].copy()


@pytest.fixture
def faces_Nx48x48() -> np.ndarray:  # noqa: N802  (the name the README uses)
    from fer.data.sample import make_sample

    return make_sample(2).images


def run_shell(example) -> None:
    """Each `python -m fer` line of a bash block: parsed by the CLI, and run unless it is in PARSE_ONLY."""
    from fer.cli import build_parser, main

    for line in example.parsed.splitlines():
        words = shlex.split(line, comments=True)
        if words[:3] != ["python", "-m", "fer"]:
            continue  # make targets are what CI itself runs
        argv = words[3:]
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"{example.path}:{example.line}: `{line}` is refused by the CLI parser") from exc
        if args.command in PARSE_ONLY:
            continue
        if args.command == "train":
            argv += ["--epochs", "1", "--set", "warmup_epochs=0"]  # the command as written, on the tiny data
        if args.command == "sweep" and not args.list:
            argv += ["--list"]
        code = main(argv)
        assert code == 0, f"{example.path}:{example.line}: `{line}` exited {code}"


pytest_collect_file = Sybil(
    parsers=[SkipParser(), PythonCodeBlockParser(), CodeBlockParser(language="bash", evaluator=run_shell)],
    patterns=["README.md", "docs/*.md"],
    fixtures=["docs_env", "photo", "bgr_frame", "faces_Nx48x48"],
).pytest()
