"""BlazeFace, the default face detector (fer.inference.detectors.blazeface): network, tiles, framing, errors."""

import cv2
import numpy as np
import pytest
from helpers import require

import fer.inference.detectors.blazeface as bf
from fer.inference.detectors.base import iou
from fer.inference.detectors.haar import HaarDetector
from fer.inference.detectors.registry import get_detector
from fer.inference.faces import detect_faces

skdata = require("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()


@pytest.fixture(scope="module")
def detector():
    return get_detector("blazeface")


def test_anchors_follow_mediapipes_short_range_layout():
    a = bf.anchors()
    assert a.shape == (896, 2) and (a > 0).all() and (a < 128).all()
    # 16x16 cells with 2 anchors each (stride 8), then 8x8 cells with 6 each (stride 16), centres in input px.
    assert np.allclose(a[0], a[1]) and np.allclose(a[0], [4, 4]) and np.allclose(a[2], [12, 4])
    assert np.allclose(a[512:518], [8, 8])
    # Any input size (the small-face strips): 20 x 32 cells x 2, then 10 x 16 x 6, row by row.
    wide = bf.anchors(160, 256)
    assert wide.shape == (20 * 32 * 2 + 10 * 16 * 6, 2) and np.allclose(wide[2 * 32], [4, 12])
    assert np.allclose(wide[-1], [248, 152])


def test_finds_the_astronaut_in_fer_framing_with_eye_landmarks(astronaut, detector):
    (face,) = detector(astronaut)
    # The framing the cascade's re-measure gave before 0.5 (FER-2013's faces are the cascade's boxes): BlazeFace's
    # box mapped alone lands near it (measured IoU 0.86).
    (measured,) = bf.BlazeFaceDetector(cascade=True)(astronaut)
    assert iou(face.box, measured.box) > 0.75 and detector._haar is None  # a sure face: the cascade never loaded
    assert 0.5 < face.score <= 1.0
    x, y, w, h = face.box
    for ex, ey in (face.left_eye, face.right_eye):
        assert x < ex < x + w and y < ey < y + h / 2 + h / 4  # eyes in the box, in its upper part
    assert face.right_eye[0] < face.left_eye[0]  # the subject's right eye is on the image's left
    (default,) = detect_faces(astronaut)  # the default detector (it sees the photo in gray)
    assert iou(default.box, face.box) > 0.9 and default.left_eye is not None


def test_raw_network_boxes_are_mapped_to_fer_framing(astronaut, detector, monkeypatch):
    ((score, raw, _),) = detector.proposals(astronaut)
    (face,) = detector(astronaut)
    dx, dy, scale = bf.TO_FER_FRAMING
    x, y, w, h = raw
    assert face.box[2] == pytest.approx(w * scale, abs=1)  # wider than BlazeFace's box ...
    assert face.box[1] + face.box[3] / 2 == pytest.approx(y + h / 2 + dy * h, abs=1)  # ... centred higher


def test_a_face_blazeface_is_unsure_of_is_kept_only_if_a_closer_look_is_sure(astronaut, monkeypatch):
    detector = bf.BlazeFaceDetector()
    ((score, box, _),) = detector.proposals(astronaut)
    looked = []
    monkeypatch.setattr(detector, "min_unconfirmed_score", score + 0.01)  # the astronaut is now "unsure"
    closer = detector.second_look
    monkeypatch.setattr(detector, "second_look", lambda image, b: looked.append(b) or 0.99)
    (face,) = detector(astronaut)  # sure at a closer look: kept, framed as any face
    assert len(looked) == 1 and np.allclose(looked[0], box) and face.box == bf._framed(box, bf.TO_FER_FRAMING)
    assert closer(astronaut, box) > 0.85  # what the closer look really says of her face
    monkeypatch.setattr(detector, "second_look", lambda image, b: 0.6)
    assert detector(astronaut) == []  # unsure twice: not a face
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    blank = np.full_like(gray, 128)
    assert closer(blank, box) == 0.0  # nothing there to be sure of
    # Near the photo's edge the square looked at is completed by replicated edges (no error, the face still seen).
    shifted = np.ascontiguousarray(gray[:, 150:])
    assert closer(shifted, (box[0] - 150, box[1], box[2], box[3])) > 0.5


def test_the_cascade_path_is_kept_as_an_option(astronaut, monkeypatch):
    """cascade=True: each face re-measured by the cascade; an unsure face kept only where it confirms it."""
    detector = bf.BlazeFaceDetector(cascade=True)
    ((score, raw, _),) = detector.proposals(astronaut)
    (face,) = detector(astronaut)
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    measured = detector.haar.remeasure(cv2.equalizeHist(gray), bf._framed(raw, bf.TO_FER_FRAMING))
    assert face.box == measured[0] != bf._framed(raw, bf.TO_FER_FRAMING)
    monkeypatch.setattr(detector.haar, "remeasure", lambda equalized, box: None)
    assert detector(astronaut)[0].box == bf._framed(raw, bf.TO_FER_FRAMING)  # not re-measured, confident: mapped
    monkeypatch.setattr(detector, "min_unconfirmed_score", score + 0.01)
    assert detector(astronaut) == []  # unsure, and the cascade does not confirm it


def test_the_small_face_pass_finds_faces_too_small_for_the_whole_image_pass(astronaut, detector):
    # Two copies of the photo in a wider scene: each face is under a tenth of the scene's width,
    # too small for one 128x128 pass over the whole scene, a fifth of the small-face pass's side.
    scene = np.full((800, 1100, 3), 90, np.uint8)
    scene[0:512, 0:512] = astronaut
    scene[288:800, 588:1100] = astronaut

    class WholeImageOnly(bf.BlazeFaceDetector):  # the one pass alone
        def small_faces(self, image, beside=None, lopsided=False):
            return []

    assert WholeImageOnly()(scene) == []
    (alone,) = detector(astronaut)
    found = sorted(detector(scene), key=lambda f: f.box[0])
    assert len(found) == 2  # one box per face: the strips overlap, the duplicates are merged
    x, y, w, h = alone.box
    assert iou(found[0].box, alone.box) > 0.7 and iou(found[1].box, (x + 588, y + 288, w, h)) > 0.7
    # Wherever it stands, the strips' overlap included, the face is found once.
    for x in range(0, 589, 49):
        scene = np.full((800, 1100, 3), 90, np.uint8)
        scene[200:712, x : x + 512] = astronaut
        (face,) = detect_faces(scene, detector)
        assert iou(face.box, (x + alone.box[0], 200 + alone.box[1], w, h)) > 0.7


def test_the_cascade_never_searches_a_photo_blazeface_finds_nothing_in(astronaut, monkeypatch):
    """0.2's whole-photo cascade search cost every photo without a face 50-250 ms (docs/detection.md); a crowd of
    faces too small for BlazeFace is detector="haar"'s."""
    detector = bf.BlazeFaceDetector()

    class Blind:  # e.g. a crowd of faces too small for BlazeFace
        def __call__(self, image):
            return []

        def whole(self, image):
            return [], 0.0

        def scan(self, image, scale, offset=(0, 0)):
            return []

    monkeypatch.setattr(detector, "net", Blind())
    assert detector(astronaut) == [] and detector._haar is None  # the cascade was not even loaded
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    assert HaarDetector()(gray) != []  # where it would have found the face


def test_a_missing_or_corrupt_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="BlazeFace model file is missing.*detector='haar'"):
        bf.BlazeFace(tmp_path / "nope.tflite")
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(bf.TFLITE_PATH.read_bytes()[:5000])
    with pytest.raises(RuntimeError, match="corrupt.tflite is not a loadable LiteRT model.*detector='haar'"):
        bf.BlazeFace(corrupt)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(bf.MODEL_PATH.read_bytes()[:5000])
    with pytest.raises(RuntimeError, match="corrupt.onnx is not a loadable ONNX model.*detector='haar'"):
        bf.BlazeFace(corrupt)


def test_the_onnx_conversion_finds_what_the_original_tflite_finds(astronaut, detector):
    """The default runs the ONNX conversion on ONNX Runtime; MediaPipe's own .tflite on LiteRT gives the same."""
    ((score, box, points),) = bf.BlazeFace(bf.TFLITE_PATH)(astronaut)
    ((score2, box2, points2),) = detector.net(astronaut)
    assert score == pytest.approx(score2, abs=1e-4) and np.allclose(box, box2, atol=0.05)
    assert np.allclose(points, points2, atol=0.05)


def test_tensorflows_interpreter_gives_the_same_faces(astronaut, detector, monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(bf, "interpreter_class", lambda: tf.lite.Interpreter)
    ((score, box, points),) = bf.BlazeFace(bf.TFLITE_PATH)(astronaut)
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
    unconfirmed = bf.BlazeFaceDetector(min_unconfirmed_score=0.0)
    index, _, mapped = roundtrip_crops(faces, 0.0, detector=unconfirmed, close_ups=False, whole_image=False)
    monkeypatch.setattr(bf, "TO_FER_FRAMING", (0.0, 0.0, 1.0))
    _, _, raw = roundtrip_crops(faces, 0.0, detector=unconfirmed, close_ups=False, whole_image=False)
    assert mapped.mean() > raw.mean() + 0.08  # measured: 0.55 against 0.42
    monkeypatch.undo()
    # The default (unsure faces looked at again) finds nearly all; the cascade's re-measure (cascade=True)
    # reproduces the pixels more closely, which scores no better (docs/experiments.md, "Framing without the cascade").
    found, _, default = roundtrip_crops(faces, 0.0, close_ups=False, whole_image=False)
    assert len(found) >= 0.9 * len(faces) and default.mean() == pytest.approx(mapped.mean(), abs=0.02)
    cascade = bf.BlazeFaceDetector(cascade=True)
    _, _, measured = roundtrip_crops(faces, 0.0, detector=cascade, close_ups=False, whole_image=False)
    assert measured.mean() > default.mean()  # measured: 0.61 against 0.55


@pytest.mark.parametrize("width", [64, 192, 256])
@pytest.mark.parametrize("lopsided", [False, True])
@pytest.mark.parametrize("length", [256, 240, 160, 100])
def test_strips_cover_the_axis_and_overlap_by_the_largest_face_a_strip_keeps(length, width, lopsided):
    strips = bf._strips(length, width, lopsided)
    assert strips[0][0] == 0 and sum(strips[-1]) == length  # the whole axis, no strip past its end
    assert all(size % 16 == 0 or size == length for _, size in strips) and len(strips) <= 2
    if len(strips) == 2:
        (_, first), (start, second) = strips
        # Any face the pass keeps (up to TILE_MAX_FACE of 128 px) lies wholly inside some strip.
        assert first - start >= bf.TILE_MAX_FACE * bf.INPUT_SIZE
        assert first + second <= length + bf.STRIP_OVERLAP + 32 + (bf.BESIDE_PIXELS // width if lopsided else 0)
        assert (first - second > 16) == lopsided  # the helper's strip is longer where work runs beside the other


class CountingNet:
    """BlazeFace's network, recording what it is asked to read: ("whole", image shape) or ("strip", input shape)."""

    def __init__(self, net, calls):
        self.net, self.calls = net, calls

    def __call__(self, image):
        return self.whole(image)[0]

    def whole(self, image):
        self.calls.append(("whole", image.shape[:2]))
        return self.net.whole(image)

    def scan(self, image, scale, offset=(0, 0)):
        self.calls.append(("strip", image.shape[:2]))
        return self.net.scan(image, scale, offset)


def test_a_portrait_costs_one_network_pass_and_a_scene_its_strips(astronaut, monkeypatch):
    detector = bf.BlazeFaceDetector()
    calls = []
    monkeypatch.setattr(detector, "net", CountingNet(detector.net, calls))
    portrait = cv2.resize(astronaut[30:270, 140:380], (256, 256), interpolation=cv2.INTER_AREA)  # head and shoulders
    (face,) = detector(portrait)
    assert calls == [("whole", (256, 256))]  # a portrait's subject (half the photo's side): no small-face pass
    close_up = cv2.resize(astronaut[40:200, 140:300], (256, 256), interpolation=cv2.INTER_AREA)  # fills the frame
    calls.clear()
    (face,) = detector(close_up)
    assert calls == [("whole", (256, 256))]  # and its box is BlazeFace's, framed: no cascade search either
    assert face.box == bf._framed(bf.BlazeFace()(close_up)[0][1], bf.CLOSE_UP_FRAMING)
    calls.clear()
    (face,) = detector(astronaut)  # a face of a fifth of the photo: the small-face pass looks for smaller ones
    # The photo at 256 px in two strips overlapping by 64 px: 320 px of strip for 256 (0.5's nine 128 px tiles: 576).
    assert calls[0] == ("whole", (512, 512)) and sorted(calls[1:]) == [("strip", (256, 160))] * 2


@pytest.fixture
def counted_retry(monkeypatch):
    """detect_faces' close-up retry, counted: (calls, whether the detector's own call was still running at each)."""
    import fer.inference.faces as faces_module

    calls, retry = [], faces_module._close_up_retry
    inside = []

    def counted(found, small, scale, shape):
        calls.append(bool(inside))
        return retry(found, small, scale, shape)

    class Watched(bf.BlazeFaceDetector):
        def __call__(self, image, min_side=0, beside=None):
            inside.append(1)
            try:
                return super().__call__(image, min_side, beside)
            finally:
                inside.pop()

    monkeypatch.setattr(faces_module, "_close_up_retry", counted)
    return calls, Watched()


def scene_of_small_faces(astronaut):
    scene = np.full((800, 1100, 3), 90, np.uint8)
    scene[0:512, 0:512] = astronaut
    scene[288:800, 588:1100] = astronaut
    return scene


def tight_close_up(astronaut):
    """A face cropped so tight that BlazeFace misses it in the whole image and finds it on the bordered copy."""
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray[20:130, 170:280], (300, 300), interpolation=cv2.INTER_AREA)


def test_the_close_up_retry_runs_beside_the_small_face_pass_or_not_at_all(astronaut, counted_retry, monkeypatch):
    """Issue 42: a photo without a face cost the small-face pass and then the retry. The retry now runs only where
    something in the whole image looked like a face filling it, in the caller's thread while the helper reads the
    longer strip, once, and detect_faces uses its result."""
    calls, detector = counted_retry
    (face,) = detect_faces(tight_close_up(astronaut), detector)
    assert face.source == "padded" and calls == [True]  # found by the retry, run during the detector's call, once
    calls.clear()
    no_face = np.random.default_rng(0).integers(0, 256, (480, 640), dtype=np.uint8)
    assert detect_faces(no_face, detector) == [] and calls == []  # nothing face-like: no retry at all
    assert detector.net.whole(no_face)[1] < bf.CLOSE_UP_EVIDENCE <= detector.net.whole(tight_close_up(astronaut))[1]
    assert len(detect_faces(astronaut, detector)) == 1 and calls == []  # a face at once: no retry either
    assert len(detect_faces(scene_of_small_faces(astronaut), detector)) == 2 and len(calls) <= 1
    calls.clear()
    monkeypatch.setattr(bf, "_helper", [None])  # one CPU (FER_THREADS=1): nothing beside, the retry after
    (face,) = detect_faces(tight_close_up(astronaut), detector)
    assert face.source == "padded" and calls == [False]


def test_the_close_up_evidence_looks_at_the_faces_the_retry_looks_for():
    from fer.inference.faces import RETRY_MIN_FACE

    assert bf.EVIDENCE_SIDE == RETRY_MIN_FACE


def test_faces_do_not_depend_on_the_helper_thread_or_on_the_retry_running_beside(astronaut, monkeypatch):
    scene = scene_of_small_faces(astronaut)
    close_up = cv2.resize(astronaut[60:190, 170:290], (300, 300), interpolation=cv2.INTER_AREA)
    photos = [scene, close_up, astronaut, np.zeros((300, 400), np.uint8), tight_close_up(astronaut)]
    detector = bf.BlazeFaceDetector()
    together = [detect_faces(p, detector) for p in photos]
    monkeypatch.setattr(detector, "runs_beside", False)
    assert [detect_faces(p, detector) for p in photos] == together
    monkeypatch.setattr(bf, "_helper", [None])
    monkeypatch.setattr(detector, "runs_beside", True)
    assert [detect_faces(p, detector) for p in photos] == together
    assert [len(f) for f in together] == [2, 1, 1, 0, 1] and together[4][0].source == "padded"


def test_the_litert_interpreter_reads_strips_too(astronaut, detector):
    """A .tflite network is re-allocated for each new input size; its faces in a strip are ONNX Runtime's."""
    litert = bf.BlazeFace(bf.TFLITE_PATH)
    strip = cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA)[:, :96]
    for image in (strip, astronaut, strip):
        ((score, box, _),) = litert.scan(image, 1.0) if image is strip else litert(image)
        ((score2, box2, _),) = detector.net.scan(image, 1.0) if image is strip else detector.net(image)
        assert score == pytest.approx(score2, abs=1e-4) and np.allclose(box, box2, atol=0.05)
