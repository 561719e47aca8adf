"""Face detection on close-ups, small crops and photos without faces (fer.inference.faces.detect_faces)."""

from contextlib import nullcontext

import cv2
import numpy as np
import pytest
from helpers import require

from fer.inference.detectors.base import Face, iou
from fer.inference.detectors.haar import HaarDetector
from fer.inference.detectors.registry import get_detector
from fer.inference.faces import _mapped, detect_faces
from fer.inference.predict import predict_emotion

skdata = require("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()


@pytest.fixture(scope="module")
def face_box(astronaut):
    """The cascade's box, i.e. FER-2013's framing of this face."""
    (face,) = detect_faces(astronaut, "haar")
    return face.box


@pytest.fixture(scope="module")
def tight(astronaut, face_box):
    """The face cut 10% inside the detector's box on each side: it fills the frame, no background."""
    x, y, w, h = face_box
    d = w // 10
    return astronaut[y + d : y + h - d, x + d : x + w - d]


DETECTORS = ["blazeface", "haar"]


@pytest.mark.parametrize("detector", DETECTORS)
def test_a_close_up_whose_face_fills_the_frame_is_found(tight, detector):
    close_up = cv2.resize(tight, (300, 300), interpolation=cv2.INTER_CUBIC)
    assert detect_faces(close_up, detector, close_ups=False, whole_image=False) == []  # the first pass misses it
    (face,) = detect_faces(close_up, detector, whole_image=False)
    assert face.source in ("padded", "close-up") and face.score is not None
    bx, by, bw, bh = face.box
    assert bx >= 0 and by >= 0 and bx + bw <= 300 and by + bh <= 300  # mapped back into the image
    assert iou(face.box, (0, 0, 300, 300)) > 0.4  # and it is the face that fills it


@pytest.mark.parametrize("detector", DETECTORS)
@pytest.mark.parametrize("side", [64, 96, 128])
def test_small_tight_crops_are_found(tight, side, detector):
    crop = cv2.resize(tight, (side, side), interpolation=cv2.INTER_AREA)
    if detector == "haar":  # the cascade alone misses them; BlazeFace may or may not
        assert detect_faces(crop, detector, close_ups=False, whole_image=False) == []
    faces = detect_faces(crop, detector, whole_image=False)
    assert len(faces) == 1 and iou(faces[0].box, (0, 0, side, side)) > 0.4  # the face that fills the crop


def test_a_face_that_fills_the_frame_gets_fer_framing_in_one_pass(astronaut, face_box):
    # A FER-2013-style crop (the image IS the detector's box) upscaled to 300 px. BlazeFace's box is mapped
    # straight to FER-2013's framing (CLOSE_UP_FRAMING): the box is the image, with or without close-up retries.
    from fer.inference.detectors.blazeface import BlazeFaceDetector

    x, y, w, h = face_box
    crop = cv2.resize(astronaut[y : y + h, x : x + w], (300, 300), interpolation=cv2.INTER_CUBIC)
    (face,) = detect_faces(crop)
    assert face.source == "detector" and iou(face.box, (0, 0, 300, 300)) > 0.9
    assert detect_faces(crop, close_ups=False) == [face]

    # The 0.2 path: the cascade, without background around the face, boxes it too tight; detect_faces then
    # re-measured it on a bordered copy of the photo (the second search the close-up framing saves).
    class WithoutCloseUpFraming(BlazeFaceDetector):  # the 0.2 path (benchmarks/old_detectors.py)
        frames_close_ups = False

    before = WithoutCloseUpFraming(cascade=True)
    (plain,) = detect_faces(crop, before, close_ups=False)
    assert plain.source == "detector" and plain.box[2] < 0.9 * 300
    (refit,) = detect_faces(crop, before)
    assert refit.source == "padded" and iou(refit.box, (0, 0, 300, 300)) > 0.9
    # A face with background around it (here a quarter of the photo's area) is left as the first pass found it.
    photo = astronaut[max(0, y - h // 2) : y + h + h // 2, max(0, x - w // 2) : x + w + w // 2]
    (found,) = detect_faces(photo)
    assert found.source == "detector" and found == detect_faces(photo, close_ups=False)[0]


def test_small_boxes_beside_a_face_that_fills_the_frame_are_dropped():
    image = np.full((300, 300), 128, np.uint8)

    def fake(gray):  # the first pass: one face filling the frame and a small box at the edge
        if gray.shape == (300, 300):
            return [Face((40, 40, 220, 220), 5.0), Face((0, 250, 60, 60), 2.0)]
        return []  # (nothing on the bordered copy: the first pass's face is kept as it is)

    (face,) = detect_faces(image, detector=fake)
    assert face.box == (40, 40, 220, 220)
    assert len(detect_faces(image, detector=fake, close_ups=False)) == 2  # only with close-up handling on

    def group(gray):  # no face covers 40% of the image: a group photo keeps its small faces
        return [Face((40, 40, 150, 150), 5.0), Face((220, 220, 40, 40), 2.0)] if gray.shape == (300, 300) else []

    assert len(detect_faces(image, detector=group)) == 2


def test_the_bordered_retry_only_looks_for_faces_that_fill_much_of_the_frame():
    # A photo with no face (600x400): the retry runs on a copy with a 150 px border.
    image = np.full((400, 600), 128, np.uint8)
    asked = []

    class Spy:  # a detector that can skip small scales, as ours can
        takes_min_side = True

        def __call__(self, gray, min_side=0):
            asked.append((gray.shape, min_side))
            return []

    assert detect_faces(image, detector=Spy(), whole_image=False) == []
    assert asked == [((400, 600), 0), ((700, 900), 100)]  # the first pass searches all; the retry 400 / 4 up

    def plain(gray):  # any other callable: searched as usual, its small retry faces dropped
        return [] if gray.shape == (400, 600) else [Face((200, 200, 60, 60), 5.0), Face((300, 150, 300, 300), 5.0)]

    (face,) = detect_faces(image, detector=plain)
    assert face.box == (150, 0, 300, 300) and face.source == "padded"  # mapped back to the photo


def test_boxes_from_a_bordered_upscaled_copy_map_back_to_the_original():
    # Found at (120, 80, 200, 200) in a copy upscaled 2x with a 50 px border: (35, 15, 100, 100) here.
    face = _mapped(Face((120, 80, 200, 200), 0.9, (170.0, 130.0), None), 2.0, 50, (200, 300), "padded")
    assert face.box == (35, 15, 100, 100) and face.left_eye == (60.0, 40.0) and face.source == "padded"
    # A box reaching into the border is clipped to the image.
    assert _mapped(Face((10, 10, 100, 100)), 1.0, 20, (60, 60), "padded").box == (0, 0, 60, 60)


def test_a_small_face_shaped_image_becomes_one_whole_image_face_with_a_marker(astronaut, face_box, monkeypatch):
    import fer.inference.faces

    # Nothing detects.
    monkeypatch.setattr(fer.inference.faces, "borrowed_detector", lambda detector: nullcontext(lambda gray: []))
    monkeypatch.setattr(fer.inference.faces, "_close_up_detectors", lambda haar: iter(()))
    x, y, w, h = face_box
    crop = cv2.resize(astronaut[y : y + h, x : x + w], (120, 120), interpolation=cv2.INTER_AREA)
    (face,) = detect_faces(crop)
    assert face.source == "whole image" and face.score is None and face.box == (0, 0, 120, 120)
    assert detect_faces(crop, whole_image=False) == []
    assert detect_faces(cv2.resize(crop, (240, 120))) == []  # not face-shaped: too wide


def test_whole_image_predictions_say_so_and_warn(trained, monkeypatch):
    import fer.inference.faces

    monkeypatch.setattr(fer.inference.faces, "borrowed_detector", lambda detector: nullcontext(lambda gray: []))
    monkeypatch.setattr(fer.inference.faces, "_close_up_detectors", lambda haar: iter(()))
    face = cv2.resize(trained[2].images[3], (100, 100), interpolation=cv2.INTER_CUBIC)
    with pytest.warns(UserWarning, match="whole image was taken as one face crop"):
        (p,) = predict_emotion(face, model=trained[0].model)
    assert p.source == "whole image" and p.face_score is None and p.to_dict()["source"] == "whole image"


@pytest.mark.parametrize("detector", DETECTORS)
def test_no_false_faces_on_images_without_a_face(detector):
    rng = np.random.default_rng(0)
    images = {
        "blank": np.full((300, 300), 128, np.uint8),
        "small blank": np.full((100, 100), 40, np.uint8),
        "noise": rng.integers(0, 256, (300, 300), dtype=np.uint8),
        "small noise": rng.integers(0, 256, (100, 100), dtype=np.uint8),
        "coffee (a photo)": skdata.coffee(),
        "text": skdata.text(),
        "bricks": skdata.brick(),
    }
    for name, image in images.items():
        assert detect_faces(image, detector) == [], name


@pytest.mark.parametrize("detector", DETECTORS)
def test_group_photo_keeps_one_box_per_face(astronaut, face_box, detector):
    x, y, w, h = face_box
    face = astronaut[max(0, y - 40) : y + h + 40, max(0, x - 40) : x + w + 40]
    group = np.concatenate([face, face[:, ::-1], face], axis=1)
    faces = detect_faces(group, detector)
    assert len(faces) == 3 and all(f.source == "detector" for f in faces)
    xs = [f.box[0] for f in faces]
    assert xs == sorted(xs) and min(np.diff(xs)) > face.shape[1] // 2  # three distinct faces


def test_the_close_up_second_opinions_go_on_without_mtcnn(monkeypatch):
    """MTCNN missing (it is in the research extra) raises MissingPackageError, an ImportError: the cascade's relaxed
    retry is then the only second opinion, with no error (a RuntimeError catch let it through once)."""
    import sys

    import fer.inference.faces as faces

    monkeypatch.setitem(sys.modules, "mtcnn", None)
    monkeypatch.setattr("fer.inference.detectors.registry._idle", {})  # no MTCNN made earlier in this session
    haar = HaarDetector()
    seconds = list(faces._close_up_detectors(haar, mtcnn=True))
    assert len(seconds) == 1 and seconds[0] is haar.relaxed and seconds[0].min_neighbors == 2
    assert list(faces._close_up_detectors(haar, mtcnn=False)) == [haar.relaxed]  # made once, kept on the detector


def test_every_detector_declares_what_it_can_do():
    from fer.inference.detectors.base import Detector, FunctionDetector, as_detector
    from fer.inference.detectors.blazeface import BlazeFaceDetector
    from fer.inference.detectors.haar import HaarDetector

    for detector in (HaarDetector(), BlazeFaceDetector()):
        assert isinstance(detector, Detector) and detector.takes_min_side
    assert HaarDetector().haar is not None and BlazeFaceDetector(cascade=True).haar is not None
    assert BlazeFaceDetector().haar is None  # no cascade asked about photos it finds nothing in (issue 42)
    assert BlazeFaceDetector().frames_close_ups and not HaarDetector().frames_close_ups

    def mine(gray):
        return [Face((1, 2, 3, 4))]

    wrapped = as_detector(mine)
    assert isinstance(wrapped, FunctionDetector) and isinstance(wrapped, Detector)
    assert not wrapped.takes_min_side and wrapped.haar is None and wrapped(np.zeros((9, 9), np.uint8), min_side=5)
    assert detect_faces(np.zeros((300, 300), np.uint8), detector=mine)[0].box == (1, 2, 3, 4)


def test_the_default_never_asks_the_cascade_about_faces_blazeface_is_sure_of(astronaut, monkeypatch):
    """Issue 34: BlazeFace's mapped box is the crop; the cascade is neither run nor loaded for a portrait or a
    scene (it costs ~4.4 ms a face), and detector="blazeface-cascade" is the 0.4 path that re-measures."""
    from fer.inference.detectors.blazeface import TO_FER_FRAMING, BlazeFaceDetector, _framed

    def no_cascade(*args, **kwargs):
        raise AssertionError("the cascade ran")

    monkeypatch.setattr(HaarDetector, "remeasure", no_cascade)
    monkeypatch.setattr(HaarDetector, "__call__", no_cascade)
    detector = BlazeFaceDetector()
    scene = np.full((700, 1100, 3), 90, np.uint8)
    scene[100:612, 0:512] = astronaut
    scene[188:700, 588:1100] = astronaut[:, ::-1]
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)  # what detect_faces reads
    _, raw, _ = max(detector.proposals(gray), key=lambda proposal: proposal[0])
    (face,) = detect_faces(astronaut, detector)
    assert face.box == _framed(raw, TO_FER_FRAMING) and len(detect_faces(scene, detector)) == 2
    assert detector._haar is None  # never even loaded
    monkeypatch.undo()
    old = get_detector("blazeface-cascade")
    assert old.cascade and detect_faces(astronaut, old)[0].box != face.box  # re-measured: a box of its own
