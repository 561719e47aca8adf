"""The browser demo through its HTTP API (gradio_client), as a page or a script uses it, and its parts alone."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import require, start_demo, write_clip

from fer.data.classes import FERPLUS_CLASSES

require("gradio")
gradio_client = require("gradio_client")
from fer.demo import handlers  # noqa: E402  (after the skip: it needs the demo extra's packages)
from fer.demo.app import exposure, label_sets  # noqa: E402
from fer.demo.limits import LimitError, Limits  # noqa: E402

OPTIONS = ("", "training", "off", "blazeface")  # label set (one head: none to pick), prior, TTA, detector


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("demo-media")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.jpg")
    Image.fromarray(data.astronaut()).save(folder / "copy.jpg")
    (folder / "broken.jpg").write_text("not a photo")
    Image.new("RGB", (1200, 1000), "gray").save(folder / "huge.png")  # 1.2 MP: over the server's 1 MP limit
    noise = np.random.default_rng(0).integers(0, 256, (800, 800, 3), np.uint8)
    Image.fromarray(noise).save(folder / "heavy.png")  # ~1.9 MB of noise: over the 1 MB upload limit
    write_clip(folder / "clip.mp4", seconds=2.0)
    write_clip(folder / "long.mp4", seconds=4.0)
    (folder / "empty.mp4").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def client():
    """One demo server for the module, started by its command with small limits so each can be crossed."""
    limits = ("--max-pixels", "1000000", "--clip-seconds", "3", "--max-upload-mb", "1")
    process, url = start_demo(*limits)
    assert process.printed_before_url == []  # the command's own lines come first: no library start-up noise
    said = [process.stdout.readline() for _ in range(2)]
    folder = Path(said[1].split("uploads and outputs: ")[1].split(" (removed")[0])
    try:
        yield gradio_client.Client(url, verbose=False)
    finally:
        assert any(folder.rglob("astronaut.jpg"))  # the uploads went to the demo's own folder...
        process.terminate()  # SIGTERM, as a service manager stops it
        assert process.wait(timeout=30) == 0
        said = process.stdout.read().splitlines()  # a refused request (a server path) in one line, then the end
        assert said[-1] == "fer demo: stopped" and "Traceback" not in "\n".join(said)
        assert any(line.startswith("request failed: ") and "not uploaded by a user" in line for line in said)
        assert not folder.exists()  # ...which is gone when it stops


def photo(client, first, more=(), explain=False, mesh=False):
    files = [gradio_client.handle_file(str(p)) for p in more]
    first = gradio_client.handle_file(str(first)) if first else None
    return client.predict(first, files, explain, mesh, *OPTIONS, api_name="/photo")


def test_a_photo_in_gives_its_face_drawn_and_a_row_of_bars(client, media):
    gallery, summary, bars, overlays = photo(client, media / "astronaut.jpg")
    assert summary.startswith("1 photo(s), 1 face(s)")
    assert len(gallery) == 1 and overlays == {"__type__": "update", "value": [], "visible": False}
    assert bars.count("<tr>") == 2  # the header and her face
    shown = [c for c in FERPLUS_CLASSES if f"<b>{c}</b>" in bars]
    assert shown == ["happy"]  # she smiles, and the top class is the one written bold


def test_bad_photos_in_a_batch_are_named_and_the_rest_analysed(client, media):
    more = [media / "copy.jpg", media / "broken.jpg", media / "huge.png"]
    gallery, summary, bars, _ = photo(client, media / "astronaut.jpg", more)
    assert len(gallery) == 2 and bars.count("<tr>") == 3
    assert "2 photo(s), 2 face(s)" in summary
    assert "broken.jpg: not an image this demo can read" in summary
    assert "huge.png is 1200x1000 (1 MP); this demo takes photos up to 1 MP" in summary


def test_explain_adds_a_saliency_overlay_per_face(client, media):
    *_, overlays = photo(client, media / "astronaut.jpg", explain=True)
    assert overlays["visible"] and [o["caption"] for o in overlays["value"]] == ["astronaut.jpg face 1: happy"]


def test_the_face_mesh_is_drawn_and_the_head_pose_shown(client, media):
    import re

    from PIL import Image

    plain, *_ = photo(client, media / "astronaut.jpg")
    meshed, _, bars, _ = photo(client, media / "astronaut.jpg", mesh=True)
    yaw, pitch, roll = (int(v) for v in re.search(r"yaw (-?\d+)° pitch (-?\d+)° roll (-?\d+)°", bars).groups())
    assert max(abs(yaw), abs(roll)) < 10  # she faces the camera
    before, after = (np.asarray(Image.open(g[0]["image"])) for g in (plain, meshed))
    assert before.shape == after.shape and (before != after).any(axis=2).mean() > 0.005  # the points drawn


def test_a_clip_in_gives_the_table_the_annotated_clip_and_a_chart(client, media):
    video, summary, csv, chart, *hidden = client.predict(
        gradio_client.handle_file(str(media / "clip.mp4")), 2, *OPTIONS, api_name="/clip"
    )
    table = pd.read_csv(csv)
    assert len(table) == 10 and set(table["face"]) == {0}  # 20 frames, every second one, her face in each
    assert set(FERPLUS_CLASSES) <= set(table.columns) and (table["emotion"] == "happy").all()
    assert summary.startswith("10 frames analysed, 10 face rows")
    import cv2

    annotated = cv2.VideoCapture(str(video))  # the WebM the page plays: VP8, one frame per analysed frame
    codec = int(annotated.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    assert str(video).endswith(".webm") and codec == "VP80" and annotated.get(cv2.CAP_PROP_FRAME_COUNT) == 10
    assert chart["visible"] and len(chart["value"]["data"]) == 10 * len(FERPLUS_CLASSES)  # time x emotion
    assert [h["visible"] for h in hidden] == [False] * 3  # one face: one chart, the others hidden


@pytest.mark.parametrize(
    ("name", "message"),
    [("long.mp4", "long.mp4 is 4 s long; this demo takes clips up to 3 s"), ("empty.mp4", "is empty (0 bytes)")],
)
def test_clips_over_the_limits_are_refused_with_the_reason(client, media, name, message):
    with pytest.raises(gradio_client.exceptions.AppError, match=re.escape(message)):
        client.predict(gradio_client.handle_file(str(media / name)), 2, *OPTIONS, api_name="/clip")


def test_an_upload_over_the_size_limit_is_refused(client, media):
    with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):
        photo(client, media / "heavy.png")


def test_the_browser_cannot_name_a_server_file(client):
    """A request that names a path on the server instead of uploading gets Gradio's refusal, not the file."""
    import httpx

    body = {"data": [{"path": __file__, "meta": {"_type": "gradio.FileData"}}, [], False, False, *OPTIONS]}
    event = httpx.post(client.src + "gradio_api/call/photo", json=body).json()["event_id"]
    answer = httpx.get(client.src + f"gradio_api/call/photo/{event}").text
    assert "event: error" in answer and "not uploaded by a user" in answer


def test_webcam_session_smooths_each_face_over_its_last_frames(monkeypatch):
    from fer.inference.predict import Faces, Prediction

    answers = iter([0.9, 0.1, 0.2])  # happy's probability in three frames of one face

    def one_face(frame, model=None, **options):
        happy = next(answers)
        probabilities = {"happy": happy, "sad": 1 - happy}
        top = max(probabilities, key=probabilities.get)
        return Faces([Prediction(top, probabilities[top], probabilities, box=(1, 1, 4, 4), source="detector")])

    monkeypatch.setattr(handlers, "predict_emotion", one_face)
    drawn = []
    monkeypatch.setattr(handlers, "annotate", lambda frame, faces: drawn.append(faces) or frame)
    session = handlers.WebcamSession(smooth=2)
    for _ in range(3):
        session.step(np.zeros((8, 8, 3), np.uint8), handlers.Settings())
    shown = [faces[0] for faces in drawn]
    assert [p.emotion for p in shown] == ["happy", "happy", "sad"]  # means: 0.9, (0.9+0.1)/2, (0.1+0.2)/2
    assert shown[1].probability == pytest.approx(0.5) and shown[2].probabilities["happy"] == pytest.approx(0.15)
    chart = session.chart()
    assert list(chart.columns) == ["time_s", "emotion", "probability"] and len(chart) == 6
    assert session.frames_per_second > 0


def test_the_default_model_has_no_label_set_to_pick_and_a_limit_names_the_file(tmp_path):
    assert label_sets() == []  # one head (FER+): the label-set menu stays hidden
    (tmp_path / "notes.jpg").write_text("text")
    with pytest.raises(LimitError, match="notes.jpg: not an image"):
        Limits().check_photo(tmp_path / "notes.jpg")


def test_the_command_listens_on_this_machine_only_unless_told():
    from fer.cli import build_parser

    args = build_parser().parse_args(["demo"])
    assert (args.host, args.share, args.max_upload_mb, args.clip_seconds, args.jobs) == ("127.0.0.1", False, 25, 60, 2)
    assert Limits() == Limits(upload_mb=25, max_pixels=40_000_000, clip_seconds=60.0, jobs=2)  # the same defaults


def test_listening_beyond_this_machine_or_sharing_is_said():
    assert exposure("127.0.0.1", False) == []
    assert "anyone who can reach this machine" in exposure("0.0.0.0", False)[0]
    assert len(exposure("localhost", True)) == 1


def test_without_gradio_the_demo_says_what_to_install_in_one_line(monkeypatch):
    import sys

    from fer.demo import app
    from fer.errors import MissingPackageError

    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(MissingPackageError, match=r"^The demo needs the gradio package: pip install .*\[demo\]"):
        app.build_app()


def test_the_servers_tracebacks_become_one_line_each():
    import io

    from fer.cli.demo import OneLineTracebacks

    out = io.StringIO()
    stream = OneLineTracebacks(out)
    stream.write("starting\nTraceback (most recent call last):\n  File 'x.py', line 1, in f\n    g()\n")
    stream.write("ValueError: File too big\nafter\n")
    assert out.getvalue() == "starting\nrequest failed: ValueError: File too big\nafter\n"
