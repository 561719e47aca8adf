"""BlazeFace, the default face detector (fer.inference.blazeface): the network, tiles, FER-2013 framing, errors."""

import cv2
import numpy as np
import pytest
from helpers import require

import fer.inference.blazeface as bf
from fer.inference.faces import HaarDetector, detect_faces, get_detector, iou

skdata = require("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()


@pytest.fixture(scope="module")
def detector():
    return get_detector("blazeface")


def test_anchors_follow_mediapipes_short_range_layout():
    a = bf.anchors()
    assert a.shape == (896, 2) and (a > 0).all() and (a < 1).all()
    # 16x16 cells with 2 anchors each (stride 8), then 8x8 cells with 6 each (stride 16).
    assert (
        np.allclose(a[0], a[1]) and np.allclose(a[0], [0.5 / 16, 0.5 / 16]) and np.allclose(a[2], [1.5 / 16, 0.5 / 16])
    )
    assert np.allclose(a[512:518], [0.5 / 8, 0.5 / 8])


def test_finds_the_astronaut_in_fer_framing_with_eye_landmarks(astronaut, detector):
    (face,) = detector(astronaut)
    (haar,) = HaarDetector()(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY))
    assert iou(face.box, haar.box) > 0.75  # the cascade's framing, which FER-2013's faces have
    assert 0.5 < face.score <= 1.0
    x, y, w, h = face.box
    for ex, ey in (face.left_eye, face.right_eye):
        assert x < ex < x + w and y < ey < y + h / 2 + h / 4  # eyes in the box, in its upper part
    assert face.right_eye[0] < face.left_eye[0]  # the subject's right eye is on the image's left
    (default,) = detect_faces(astronaut)  # the default detector (it sees the photo in gray)
    assert iou(default.box, face.box) > 0.9 and default.left_eye is not None


def test_raw_network_boxes_are_mapped_to_fer_framing(astronaut, detector, monkeypatch):
    # Without the cascade's confirmation the mapped box is kept only when BlazeFace is confident.
    monkeypatch.setattr(detector.haar, "remeasure", lambda equalized, box: None)
    monkeypatch.setattr(detector, "haar_fallback", False)
    ((score, raw, _),) = detector.proposals(astronaut)
    (face,) = detector(astronaut)
    dx, dy, scale = bf.TO_FER_FRAMING
    x, y, w, h = raw
    assert face.box[2] == pytest.approx(w * scale, abs=1)  # wider than BlazeFace's box ...
    assert face.box[1] + face.box[3] / 2 == pytest.approx(y + h / 2 + dy * h, abs=1)  # ... centred higher
    monkeypatch.setattr(detector, "min_unconfirmed_score", score + 0.01)
    assert detector(astronaut) == []


def test_tiles_find_faces_too_small_for_one_pass(astronaut, detector):
    # Two copies of the photo in a wider scene: each face is under a tenth of the scene's width,
    # too small for one 128x128 pass over the whole scene, a fifth of a half-size tile.
    scene = np.full((800, 1100, 3), 90, np.uint8)
    scene[0:512, 0:512] = astronaut
    scene[288:800, 588:1100] = astronaut
    assert bf.BlazeFaceDetector(tiles=False, haar_fallback=False)(scene) == []
    (alone,) = detector(astronaut)
    found = sorted(detector(scene), key=lambda f: f.box[0])
    assert len(found) == 2  # one box per face: the tiles overlap, the duplicates are merged
    x, y, w, h = alone.box
    assert iou(found[0].box, alone.box) > 0.7 and iou(found[1].box, (x + 588, y + 288, w, h)) > 0.7


def test_the_cascade_searches_where_blazeface_finds_nothing(astronaut, detector, monkeypatch):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    monkeypatch.setattr(detector, "net", lambda image: [])  # e.g. a crowd of faces too small for BlazeFace
    assert detector(astronaut) == HaarDetector()(gray) != []
    monkeypatch.setattr(detector, "haar_fallback", False)
    assert detector(astronaut) == []


def test_a_missing_or_corrupt_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="BlazeFace model file is missing.*detector='haar'"):
        bf.BlazeFace(tmp_path / "nope.tflite")
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(bf.MODEL_PATH.read_bytes()[:5000])
    with pytest.raises(RuntimeError, match="corrupt.tflite is not a loadable LiteRT model.*detector='haar'"):
        bf.BlazeFace(corrupt)


def test_tensorflows_interpreter_gives_the_same_faces(astronaut, detector, monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(bf, "_interpreter_class", lambda: tf.lite.Interpreter)
    ((score, box, points),) = bf.BlazeFace()(astronaut)
    ((score2, box2, points2),) = detector.net(astronaut)
    assert score == pytest.approx(score2, abs=1e-4) and np.allclose(box, box2, atol=0.05)
    assert np.allclose(points, points2, atol=0.05)


def test_boxes_are_mapped_to_the_framing_of_fer_faces(real_data, monkeypatch):
    """FER-2013 faces placed in larger images: crops from the mapped boxes look like the originals.

    (The astronaut alone cannot check TO_FER_FRAMING: it is a median over many faces.) Pixel for
    pixel, so at margin 0 (the default margin adds room the network prefers; see fer.inference.faces).
    """
    from fer.data.loading import load_split
    from fer.inference.faces import roundtrip_crops

    test = load_split(real_data, "test")
    faces = test.images[np.random.default_rng(0).choice(len(test), 120, replace=False)]
    unconfirmed = bf.BlazeFaceDetector(min_unconfirmed_score=0.0, haar_fallback=False)
    monkeypatch.setattr(unconfirmed.haar, "remeasure", lambda equalized, box: None)
    _, _, mapped = roundtrip_crops(faces, 0.0, detector=unconfirmed, close_ups=False, whole_image=False)
    monkeypatch.setattr(bf, "TO_FER_FRAMING", (0.0, 0.0, 1.0))
    _, _, raw = roundtrip_crops(faces, 0.0, detector=unconfirmed, close_ups=False, whole_image=False)
    assert mapped.mean() > raw.mean() + 0.08  # measured: 0.55 against 0.42
    monkeypatch.undo()
    # With the cascade's re-measure (the default detector): nearly all found, framed closer still.
    index, _, measured = roundtrip_crops(faces, 0.0, close_ups=False, whole_image=False)
    assert len(index) >= 0.9 * len(faces) and measured.mean() > mapped.mean()  # measured: 111/120, 0.61
