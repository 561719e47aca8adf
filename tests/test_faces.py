"""Faces in photos: detection, cropping, per-face predictions, annotation, video, CLI."""

import json
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import require  # noqa: E402
from PIL import Image

import fer.inference.options as options_module
from fer.errors import ImageError
from fer.inference.cropping import crop_face
from fer.inference.detectors.base import Face
from fer.inference.detectors.registry import get_detector
from fer.inference.drawing import annotate
from fer.inference.faces import detect_faces, roundtrip_crops
from fer.inference.predict import predict_emotion
from fer.inference.video import analyze_video

skdata = require("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()  # a real photo (NASA) with one frontal face


@pytest.fixture(scope="module")
def coffee():
    return skdata.coffee()  # a real photo with no face


@pytest.fixture(scope="module")
def group(astronaut):
    """A composite 'group photo': three copies of the astronaut's face region side by side."""
    face = astronaut[20:330, 110:340]
    return np.concatenate([face, face[:, ::-1], face], axis=1)


@pytest.fixture(scope="module")
def model(trained):
    return trained[0].model


def test_haar_finds_the_face_in_a_real_photo_and_none_in_a_photo_without(astronaut, coffee):
    faces = detect_faces(astronaut)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 150 < x + w / 2 < 300 and 60 < y + h / 2 < 200 and w > 60  # around her face
    assert faces[0].score > 0
    assert detect_faces(coffee) == []


def test_group_photo_gives_one_result_per_face_left_to_right(group, model):
    results = predict_emotion(group, model=model)
    assert isinstance(results, list) and len(results) == 3
    xs = [p.box[0] for p in results]
    assert xs == sorted(xs) and xs[1] > 150 and xs[2] > 400
    assert all(sum(p.probabilities.values()) == pytest.approx(1, abs=1e-4) for p in results)


def test_no_face_returns_an_empty_list_and_says_so(coffee, model, tmp_path):
    Image.fromarray(coffee).save(tmp_path / "coffee.png")
    with pytest.warns(UserWarning, match="No face found in .*coffee.png"):
        assert predict_emotion(tmp_path / "coffee.png", model=model) == []


def test_own_boxes_skip_detection(astronaut, model, monkeypatch):
    def no_detection(*args, **kwargs):
        raise AssertionError("detector must not run when boxes are given")

    monkeypatch.setattr(options_module, "detect_faces", no_detection)
    results = predict_emotion(astronaut, model=model, boxes=[(170, 60, 110, 110), (0, 0, 60, 60)])
    assert [p.box for p in results] == [(170, 60, 110, 110), (0, 0, 60, 60)]
    (crop,) = predict_emotion(astronaut[60:170, 170:280], model=model, face_crop=True)
    assert crop.box is None and crop.emotion in crop.probabilities


def test_every_input_kind_of_photo_agrees(astronaut, model, tmp_path):
    reference = predict_emotion(astronaut, model=model)
    Image.fromarray(astronaut).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(astronaut).save(tmp_path / "a.webp", lossless=True)
    Image.fromarray(astronaut).save(tmp_path / "a.bmp")
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    variants = {
        "bgr": predict_emotion(astronaut[..., ::-1].copy(), model=model, channel_order="bgr"),
        "pil": predict_emotion(Image.fromarray(astronaut), model=model),
        "rgba": predict_emotion(rgba, model=model),
        "16-bit": predict_emotion(astronaut.astype(np.uint16) * 257, model=model),
        "webp": predict_emotion(tmp_path / "a.webp", model=model),
        "bmp": predict_emotion(tmp_path / "a.bmp", model=model),
    }
    for name, result in variants.items():
        assert len(result) == 1, name
        assert result[0].box == reference[0].box, name
        assert result[0].probabilities == pytest.approx(reference[0].probabilities, abs=1e-3), name
    jpeg = predict_emotion(tmp_path / "a.jpg", model=model)  # lossy: same face, nearly the same box
    assert len(jpeg) == 1 and np.allclose(jpeg[0].box, reference[0].box, atol=6)


def test_exif_rotated_photo_is_turned_upright_before_detection(astronaut, model, tmp_path):
    sideways = Image.fromarray(np.rot90(astronaut, k=1))  # stored rotated, EXIF says how to display
    exif = sideways.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    sideways.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    assert len(predict_emotion(tmp_path / "phone.jpg", model=model)) == 1


def test_very_large_photo_is_downscaled_for_detection_and_cropped_at_full_size(astronaut):
    big = cv2.resize(astronaut, None, fx=6, fy=6, interpolation=cv2.INTER_CUBIC)  # 3072 x 3072
    small_box = np.array(detect_faces(astronaut)[0].box)
    big_faces = detect_faces(big, max_side=512)  # detection runs on a 512 x 512 copy
    assert len(big_faces) == 1
    assert np.allclose(np.array(big_faces[0].box) / 6, small_box, atol=8)


def test_large_images_are_searched_shrunk_by_a_whole_factor_where_that_stays_near_max_side(astronaut):
    from fer.inference.faces import _detection_copy

    def copy(h, w):
        small, scale = _detection_copy(np.zeros((h, w), np.uint8), 1024)
        return small.shape, scale

    assert copy(1080, 1920) == ((540, 960), 0.5)  # a 1080p frame: a 2x2 block mean
    assert copy(3024, 4032) == ((756, 1008), 0.25)  # a 12 MP photo
    assert copy(700, 1100) == ((652, 1024), 1024 / 1100)  # 550 px would be too coarse: area averaging to max_side
    assert copy(600, 800) == ((600, 800), 1.0)
    # On a 1080p frame the face found on the half-size copy is mapped back to the frame's pixels: where the frame
    # searched whole finds it.
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[300:1000, 1100:1800] = cv2.resize(astronaut, (700, 700))
    (face,) = detect_faces(frame)
    (whole,) = detect_faces(frame, max_side=1920)
    assert 1100 < face.box[0] < 1800 and np.allclose(face.box, whole.box, atol=8)


def test_faces_at_the_border_are_padded_not_dropped(astronaut):
    crop = crop_face(astronaut, (-30, -20, 100, 100))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    with pytest.raises(ValueError, match="positive width"):
        crop_face(astronaut, (0, 0, 0, 10))


def test_eye_alignment_levels_a_tilted_face(astronaut):
    face = detect_faces(astronaut)[0]
    x, y, w, h = face.box
    centre = (x + w / 2, y + h / 2)
    tilted = cv2.warpAffine(
        astronaut, cv2.getRotationMatrix2D(centre, 20, 1.0), astronaut.shape[1::-1], borderMode=cv2.BORDER_REPLICATE
    )
    # Eye points of the tilted face: level eyes rotated by the same 20 degrees.
    rot = cv2.getRotationMatrix2D(centre, 20, 1.0)
    eyes = [rot @ np.array([x + w * fx, y + h * 0.4, 1.0]) for fx in (0.3, 0.7)]
    tilted_face = Face(face.box, left_eye=tuple(eyes[1]), right_eye=tuple(eyes[0]))
    upright = crop_face(astronaut, face.box).astype(float)
    plain = crop_face(tilted, face.box).astype(float)
    aligned = crop_face(tilted, face.box, align=tilted_face).astype(float)
    assert np.abs(aligned - upright).mean() < 0.5 * np.abs(plain - upright).mean()


def test_mtcnn_finds_the_face_with_eye_landmarks(astronaut, model):
    require("mtcnn")
    faces = detect_faces(astronaut, detector="mtcnn")
    assert len(faces) == 1 and faces[0].score > 0.9
    (x, y, w, h), eyes = faces[0].box, (faces[0].left_eye, faces[0].right_eye)
    assert all(x < ex < x + w and y < ey < y + h * 0.6 for ex, ey in eyes)  # both eyes in the upper face
    aligned = predict_emotion(astronaut, model=model, detector="mtcnn", align=True)
    assert len(aligned) == 1 and aligned[0].box == faces[0].box


def test_align_really_rotates_the_crop_and_is_refused_where_it_cannot(astronaut, model, monkeypatch):
    require("mtcnn")
    crops = []
    real_crop = options_module.crop_face
    monkeypatch.setattr(options_module, "crop_face", lambda *a, **k: crops.append(real_crop(*a, **k)) or crops[-1])
    centre = (256, 256)
    tilted = cv2.warpAffine(
        astronaut, cv2.getRotationMatrix2D(centre, 20, 1.0), (512, 512), borderMode=cv2.BORDER_REPLICATE
    )
    predict_emotion(tilted, model=model, detector="mtcnn", align=False)
    predict_emotion(tilted, model=model, detector="mtcnn", align=True)
    assert len(crops) == 2 and np.abs(crops[0].astype(float) - crops[1]).mean() > 5  # the aligned crop is turned
    with pytest.raises(ValueError, match="detector='haar' has none"):
        predict_emotion(astronaut, model=model, detector="haar", align=True)  # Haar has no landmarks
    crops.clear()
    predict_emotion(tilted, model=model, align=False)  # the default detector (BlazeFace) has eye landmarks
    predict_emotion(tilted, model=model, align=True)
    assert len(crops) == 2 and np.abs(crops[0].astype(float) - crops[1]).mean() > 5
    with pytest.raises(ValueError, match="your own boxes"):
        predict_emotion(astronaut, model=model, boxes=[(170, 60, 110, 110)], align=True, detector="mtcnn")


def test_unknown_or_inapplicable_options_are_refused(astronaut, model):
    face = astronaut[60:170, 170:280]
    with pytest.raises(TypeError, match="detectr"):
        predict_emotion(face, model=model, face_crop=True, detectr="mtcnn")
    with pytest.raises(TypeError, match="detectr"):
        predict_emotion(astronaut, model=model, detectr="mtcnn")
    with pytest.raises(ValueError, match="face_crop=False"):
        predict_emotion(face, model=model, face_crop=True, detector="mtcnn")


def test_photos_are_batched_through_the_network(astronaut, coffee, group, model, monkeypatch):
    calls = []
    original = options_module.predict_proba

    def counting(model, faces, **kwargs):
        calls.append(len(faces))
        return original(model, faces, **kwargs)

    monkeypatch.setattr(options_module, "predict_proba", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = predict_emotion([astronaut, coffee, group], model=model)
    assert [len(r) for r in results] == [1, 0, 3]
    assert calls == [4]  # all four faces in one network call


def test_unknown_detector_and_unreadable_photo(tmp_path, model):
    with pytest.raises(ValueError, match="Unknown face detector 'yolo'"):
        get_detector("yolo")
    (tmp_path / "x.png").write_bytes(b"oops")
    with pytest.raises(ImageError, match="x.png: not a readable image"):
        predict_emotion(tmp_path / "x.png", model=model)


def test_annotate_draws_boxes_and_saves(group, model, tmp_path):
    results = predict_emotion(group, model=model)
    out = annotate(group, results, tmp_path / "out" / "group.png")
    assert out.shape == group.shape and (tmp_path / "out" / "group.png").is_file()
    x, y, w, h = results[1].box
    assert not np.array_equal(out[y + h // 2, x], group[y + h // 2, x])  # the box's left edge is drawn
    assert np.array_equal(out[y + h // 2, x + w // 2], group[y + h // 2, x + w // 2])  # the face itself is not


@pytest.fixture(scope="module")
def video(astronaut, coffee, tmp_path_factory):
    """12 frames: 8 of the astronaut, then 4 of coffee (no face)."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 4, (512, 512))
    coffee_sq = cv2.resize(coffee, (512, 512))
    for i in range(12):
        writer.write(cv2.cvtColor(astronaut if i < 8 else coffee_sq, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_gives_a_per_frame_table_and_an_annotated_copy(video, model, tmp_path):
    from fer.analysis import plots

    frames = analyze_video(video, model=model, stride=2, out_video=tmp_path / "annotated.mp4", chunk=3, progress=False)
    assert list(frames["frame"]) == [0, 2, 4, 6, 8, 10]
    assert list(frames["face"]) == [0, 0, 0, 0, -1, -1]
    assert frames["time_s"].tolist() == pytest.approx([0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert frames.loc[0, ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]].sum() == pytest.approx(1)
    copy = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert int(copy.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    plots.save(plots.emotions_over_time(frames), tmp_path, "timeline")
    assert (tmp_path / "timeline.png").is_file()
    assert len(plots.emotions_over_time(frames).axes[0].lines) == 7  # this model's seven classes
    ferplus = frames.assign(contempt=0.0)  # the default (FER+) model's table has contempt too: drawn as well
    assert len(plots.emotions_over_time(ferplus).axes[0].lines) == 8


def test_a_webm_path_gets_a_clip_browsers_play(video, model, tmp_path):
    analyze_video(video, model=model, stride=4, out_video=tmp_path / "annotated.webm", progress=False)
    copy = cv2.VideoCapture(str(tmp_path / "annotated.webm"))
    assert int(copy.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"VP80" and copy.read()[0]


def test_video_detects_every_nth_frame_and_reuses_the_boxes_between(video, model, monkeypatch):
    calls = []

    def counting(image, *args, **kwargs):
        calls.append(kwargs)
        return detect_faces(image, *args, **kwargs)

    monkeypatch.setattr(options_module, "detect_faces", counting)
    every = analyze_video(video, model=model, detect_every=4, chunk=5, progress=False)
    assert len(calls) == 3  # frames 0, 4 and 8 (chunks of 5 do not reset the count)
    assert all(c["max_side"] == 1024 and c["close_ups"] is False for c in calls)
    assert every["detected"].tolist() == [True, False, False, False] * 3
    faces = every[every["face"] >= 0]
    assert faces["frame"].tolist() == list(range(8))  # frame 8 (coffee) finds nothing: 9-11 keep no box
    box = ["x", "y", "w", "h"]
    for first in (0, 4):  # frames 1-3 re-use frame 0's box, 5-7 frame 4's
        assert (faces.loc[first : first + 3, box] == faces.loc[first, box]).all().all()
    calls.clear()
    plain = analyze_video(video, model=model, progress=False)
    assert len(calls) == 12 and plain["detected"].all()
    # Where both detected, the same boxes and emotions (the encoder makes frames differ slightly, so
    # detecting every frame can move a box by a few pixels in between).
    columns = ["frame", "face", *box, "emotion"]
    detected = every["detected"].to_numpy()
    assert every.loc[detected, columns].equals(plain.loc[detected, columns])
    with pytest.raises(ValueError, match="detect_every must be at least 1"):
        analyze_video(video, model=model, detect_every=0)


def test_unreadable_video_is_a_clear_error(tmp_path, model, capfd):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(ImageError, match="broken.mp4"):
        analyze_video(bad, model=model, progress=False)
    assert "moov atom" not in capfd.readouterr().err  # ffmpeg's own line is kept off the terminal
    with pytest.raises(ImageError, match="no such video"):
        analyze_video(tmp_path / "missing.mp4", model=model)


def test_cli_predict_on_photos_folder_and_video(astronaut, coffee, group, video, trained, tmp_path, capsys):
    from fer.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(astronaut).save(folder / "astronaut.png")
    Image.fromarray(coffee).save(folder / "coffee.jpg")
    Image.fromarray(group).save(folder / "group.webp", lossless=True)
    out = tmp_path / "out"
    model_path = str(trained[0].run_dir / "best.keras")
    assert main(["predict", str(folder), str(video), "--model", model_path, "--out", str(out), "--stride", "3"]) == 0
    printed = capsys.readouterr().out
    assert "no face" in printed and "astronaut.png" in printed
    table = pd.read_csv(out / "predictions.csv")
    assert table.groupby("path").size().to_dict() == {
        str(folder / "astronaut.png"): 1,
        str(folder / "coffee.jpg"): 1,
        str(folder / "group.webp"): 3,
        str(video): 1,
    }
    assert {"p_happy", "box", "emotion", "status"} <= set(table.columns)
    assert table.set_index("path").loc[str(folder / "coffee.jpg"), "status"] == "no face"
    assert (out / "group_annotated.png").is_file() and not (out / "coffee_annotated.png").exists()
    assert len(pd.read_csv(out / "clip_frames.csv")) == 4 and (out / "clip_emotions.png").is_file()
    records = json.loads((out / "predictions.json").read_text())
    assert len(records) == 6


@pytest.mark.realdata
def test_crops_of_fer_faces_match_the_originals(real_data):
    """Place FER-2013 faces in a larger image, find them again, crop: the crops should look like the originals.

    This checks that detection + crop + resize reproduces what the network was trained on:
    margin 0 best, pixel for pixel; the default margin (chosen on validation accuracy) close to it.
    """
    from fer.data.loading import load_split
    from fer.inference.cropping import DEFAULT_MARGIN

    test = load_split(real_data, "test")
    faces = test.images[np.random.default_rng(0).choice(len(test), 120, replace=False)]
    margins = sorted({0.0, 0.1, 0.2, DEFAULT_MARGIN})
    # The default detector's framing (its first pass: no close-up retries).
    results = {m: roundtrip_crops(faces, margin=m, close_ups=False, whole_image=False) for m in margins}
    assert len(results[0.0][0]) >= 40  # most upscaled FER faces are found
    means = {m: float(r[2].mean()) for m, r in results.items()}
    # Measured: 0.57 at margin 0 (0.52 at 0.04, 0.41 at 0.1); the cascade's re-measure (0.4) reproduced the pixels
    # closer (0.61) and its crops scored no better (benchmarks/fit_framing.py: accuracy is what the margin is for).
    assert means[0.0] == max(means.values()) and means[0.0] > 0.55
    assert 0 < DEFAULT_MARGIN < 0.1 and means[DEFAULT_MARGIN] > means[0.1] + 0.1
    # The close-up retries find nearly all of them (the faces fill 3/5 of the canvas at most).
    assert len(roundtrip_crops(faces)[0]) >= 0.95 * len(faces)


def test_video_tta_is_applied_and_the_cli_passes_it_on(video, model, trained, monkeypatch, tmp_path):
    import fer.inference.video
    from fer.cli import main
    from fer.data.classes import EMOTIONS

    plain = analyze_video(video, model=model, max_frames=1, progress=False)
    tta = analyze_video(video, model=model, max_frames=1, progress=False, tta=True)
    first = cv2.cvtColor(cv2.VideoCapture(str(video)).read()[1], cv2.COLOR_BGR2RGB)
    expected = predict_emotion(first, model=model, tta=True)[0].probabilities
    assert tta.loc[0, list(EMOTIONS)].tolist() == pytest.approx([expected[e] for e in EMOTIONS], abs=1e-5)
    assert not np.allclose(plain.loc[0, list(EMOTIONS)], tta.loc[0, list(EMOTIONS)])

    calls = []
    real = fer.inference.video.analyze_video
    monkeypatch.setattr(fer.inference.video, "analyze_video", lambda *a, **k: calls.append(k) or real(*a, **k))
    model_path = str(trained[0].run_dir / "best.keras")
    options = ["--tta", "--stride", "6", "--detect-every", "2", "--max-side", "400"]
    assert main(["predict", str(video), "--model", model_path, *options]) == 0
    assert calls and calls[0]["tta"] is True and calls[0]["detect_every"] == 2 and calls[0]["max_side"] == 400


def test_consecutive_frame_ranges_give_the_rows_of_one_pass(video, model):
    whole = analyze_video(video, model=model, stride=2, progress=False)
    parts = [
        analyze_video(video, model=model, stride=2, start_frame=s, max_frames=4, progress=False) for s in (0, 4, 8)
    ]
    joined = pd.concat(parts, ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole, check_dtype=False)  # absolute frame numbers, times and stride
    with pytest.raises(ValueError, match="start_frame 0 or more"):
        analyze_video(video, model=model, start_frame=-1)
