"""The demo in a real browser (Debian's Chromium, driven by Playwright): a photo, the webcam (a fake camera playing
a generated face clip) and a clip, each showing a box and an emotion. FER_DEMO_SHOTS=DIR keeps the screenshots
(docs/images/ holds the ones the docs show) and the timings (demo-timings.json)."""

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import require, skip_or_fail, start_demo, write_clip, write_y4m

require("gradio")
playwright = require("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    skip_or_fail("Debian's chromium is not installed: apt-get install chromium (.ci/run does)")

# What the environment notes say a root, offline, headless Chromium needs, then the fake camera.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream"]  # fmt: skip
HAPPY = (255, 215, 0)  # fer.inference.drawing.COLORS["happy"]: the astronaut smiles


def drawn_pixels(png: bytes, color=HAPPY) -> int:
    """How many pixels of a screenshot have the box-and-label colour of `color` (JPEG/WebP-tolerant)."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.int16)
    return int((np.abs(pixels - np.array(color)).max(axis=-1) < 40).sum())


def shows_a_box(locator, seconds: float = 20.0) -> bool:
    """Whether the image in `locator` shows the box colour, once it has loaded (an <img> appears before its pixels)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if drawn_pixels(locator.screenshot()) > 200:
            return True
        time.sleep(0.25)
    return False


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("FER_DEMO_SHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    media = tmp_path_factory.mktemp("browser-media")
    write_y4m(media / "face.y4m", seconds=2.0, fps=15)
    process, url = start_demo()
    try:
        with playwright.sync_playwright() as p:
            camera = f"--use-file-for-fake-video-capture={media / 'face.y4m'}"
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*FLAGS, camera])
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            page = context.new_page()
            page.goto(url)
            page.get_by_text("Emotions in faces").wait_for(timeout=30_000)
            page.media = media
            yield page
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_photo_upload_shows_a_box_and_an_emotion(page, shots):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(page.media / "astronaut.jpg")
    page.locator("#photo-in input[type=file]").set_input_files(str(page.media / "astronaut.jpg"))
    page.locator("#photo-in img").wait_for(timeout=30_000)  # the upload is shown
    start = time.perf_counter()
    page.get_by_role("button", name="Analyze", exact=True).click()
    page.wait_for_function(
        "document.querySelector('#photo-summary textarea').value.startsWith('1 photo(s)')", timeout=60_000
    )
    round_trip = time.perf_counter() - start
    # The outputs arrive together but render one by one: wait for the table too before reading it.
    page.locator("#photo-bars table").wait_for(timeout=30_000)
    assert "<b>happy</b>" in page.locator("#photo-bars").inner_html()
    annotated = page.locator("#photo-annotated img").first
    annotated.wait_for(timeout=30_000)
    assert shows_a_box(annotated)  # her box and its "happy" label
    page.screenshot(path=shots / "demo-photo.png", full_page=True)
    _record(shots, photo_round_trip_s=round(round_trip, 3))


def test_the_webcam_tab_shows_a_box_and_a_label_live(page, shots):
    page.get_by_role("tab", name="Webcam").click()
    page.get_by_text("Click to Access Webcam").click()
    page.locator("#webcam-in button", has_text="Record").click()
    page.wait_for_function("Number(document.querySelector('#webcam-fps textarea').value) > 0", timeout=60_000)
    time.sleep(8)  # a few seconds of stream for a steady rate
    fps = float(page.locator("#webcam-fps textarea").input_value())
    assert shows_a_box(page.locator("#webcam-out img"))
    page.screenshot(path=shots / "demo-webcam.png", full_page=True)
    page.locator("#webcam-in button", has_text="Stop").click()
    _record(shots, webcam_frames_per_second=fps)
    assert fps > 1  # the rate itself is reported (closing notes); on 2 busy cores it varies


def test_a_clip_shows_the_annotated_clip_and_its_chart(page, shots):
    write_clip(page.media / "clip.webm", seconds=2.0)  # a codec Chromium plays, as a phone's clip would be
    page.get_by_role("tab", name="Clip").click()
    page.locator("#clip-in input[type=file]").set_input_files(str(page.media / "clip.webm"))
    page.get_by_role("button", name="Analyze clip").click()
    page.wait_for_function(
        "document.querySelector('#clip-summary textarea').value.includes('frames analysed')", timeout=60_000
    )
    assert page.locator("#clip-annotated video").count() == 1
    page.screenshot(path=shots / "demo-clip.png", full_page=True)


def _record(folder: Path, **timings) -> None:
    path = folder / "demo-timings.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**known, **timings}, indent=1) + "\n")
