"""The face mesh: its points on a real face, head pose signs, the API, the table and CLI outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import fer
from fer.inference import mesh as mesh_module
from fer.inference.mesh import POINTS, FaceMesh, face_mesh

skdata = pytest.importorskip("skimage.data")

# The astronaut's eye corners (x, y), read by eye off a 6x enlargement of skimage's 512x512 photo.
EYE_CORNERS = {
    "image_left_eye_outer": (194, 101),
    "image_left_eye_inner": (214, 104),
    "image_right_eye_inner": (237, 105),
    "image_right_eye_outer": (257, 104),
}


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()


def _turned(image: np.ndarray, k: float) -> np.ndarray:
    """The photo with its image-right side receding (k > 0; a homography about the face's vertical axis): the face
    seen turned, its nose towards the image's right."""
    src = np.float32([[124, 40], [324, 40], [324, 200], [124, 200]])
    dst = np.float32([[124 + 10 * k, 40 - 8 * k], [324 - 10 * k, 40 + 8 * k], [324 - 10 * k, 200 - 8 * k],
                      [124 + 10 * k, 200 + 8 * k]])  # fmt: skip
    h, w = image.shape[:2]
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)


def _face(image: np.ndarray, **options):
    faces = fer.predict_emotion(image, landmarks=True, **options)
    return max(faces, key=lambda p: p.box[2])  # the subject (a mirrored scene may hold a false small face)


def test_the_mesh_sits_on_the_astronauts_eye_corners(astronaut):
    p = _face(astronaut)
    assert p.landmarks.shape == (468, 3) and p.landmarks.dtype == np.float32
    for name, corner in EYE_CORNERS.items():
        assert np.hypot(*(p.landmarks[POINTS[name], :2] - corner)) < 3, name
    x, y, w, h = p.box
    inside = (p.landmarks[:, 0] > x - w * 0.2) & (p.landmarks[:, 0] < x + w * 1.2) & (p.landmarks[:, 1] > y - h * 0.2)
    assert inside.all() and abs(p.pose.yaw) < 8 and abs(p.pose.roll) < 8


def test_points_are_in_the_photos_own_pixels_when_it_is_decoded_smaller(astronaut, tmp_path):
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), cv2.resize(astronaut[:, :, ::-1], (2048, 2048), interpolation=cv2.INTER_CUBIC))
    small, large = _face(astronaut), _face(str(big))  # the 2048 px file is decoded at most 1024 px on a side
    assert np.median(np.hypot(*(large.landmarks[:, :2] / 4 - small.landmarks[:, :2]).T)) < 1.5


def test_pose_signs_on_a_turned_face_and_its_mirror_image(astronaut):
    """yaw > 0: nose to the image's right; a mirror image negates yaw and roll and keeps pitch."""
    for k in (-3, 3):
        turned = _turned(astronaut, k)
        pose, mirrored = _face(turned).pose, _face(np.ascontiguousarray(turned[:, ::-1])).pose
        assert np.sign(pose.yaw) == np.sign(k) and abs(pose.yaw) > 4, (k, pose)
        assert mirrored.yaw == pytest.approx(-pose.yaw, abs=3) and mirrored.roll == pytest.approx(-pose.roll, abs=3)
        assert mirrored.pitch == pytest.approx(pose.pitch, abs=3)


def test_roll_follows_a_clockwise_turn_of_the_photo(astronaut):
    upright = _face(astronaut).pose
    turned = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((256, 256), -20, 1.0), (512, 512))  # clockwise
    assert _face(turned).pose.roll == pytest.approx(upright.roll + 20, abs=3)


def test_a_48x48_crop_gets_the_mesh_of_the_photo_it_came_from(astronaut):
    """The mesh reads a 48x48 face upscaled: its points, scaled back to the photo, sit where the photo's do."""
    whole = _face(astronaut)
    x0, y0, side = 160, 50, 130
    crop = cv2.resize(astronaut[y0 : y0 + side, x0 : x0 + side], (48, 48), interpolation=cv2.INTER_AREA)
    (from_crop,) = fer.predict_emotion(crop, landmarks=True)
    assert from_crop.box is None and from_crop.landmarks.max() < 48
    back = from_crop.landmarks[:, :2] * side / 48 + (x0, y0)
    gap = np.hypot(*(back - whole.landmarks[:, :2]).T)
    assert np.median(gap) < 0.05 * whole.box[2]  # within 5% of the face's width


def test_landmarks_are_off_by_default_and_the_mesh_is_never_loaded_then(astronaut):
    (p,) = fer.predict_emotion(astronaut)
    assert p.landmarks is None and p.pose is None and p.to_dict()["landmarks"] is None
    code = (
        "import fer, fer.inference.mesh as m; from skimage import data; fer.predict_emotion(data.astronaut()); "
        "print(m._mesh is None, 'onnxruntime' in __import__('sys').modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True"


def test_to_dict_and_the_annotated_image_carry_the_mesh(astronaut):
    p = _face(astronaut)
    d = json.loads(json.dumps(p.to_dict()))
    assert d["pose"] == dict(zip(("yaw", "pitch", "roll"), p.pose)) and len(d["landmarks"]) == 468
    plain = fer.annotate(astronaut, [p])
    drawn = fer.annotate(astronaut, [p], landmarks=True)
    x, y = np.round(p.landmarks[POINTS["nose_tip"], :2]).astype(int)
    assert (plain[y, x] == astronaut[y, x]).all() and not (drawn[y, x] == astronaut[y, x]).all()


def test_the_onnx_conversion_matches_mediapipes_tflite(astronaut):
    interpreter_class = pytest.importorskip("fer.inference.litert_model").interpreter_class
    try:
        interpreter = interpreter_class()(model_path=str(mesh_module.TFLITE_PATH), num_threads=1)
    except ImportError:
        pytest.skip("no LiteRT runtime")
    interpreter.allocate_tensors()
    square = mesh_module.roi((165, 57, 118, 118))
    x = (mesh_module._sampled(astronaut, square).astype(np.float32) / 255.0)[None]
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    outputs = {int(np.prod(o["shape"])): interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()}
    onnx_points, _ = face_mesh().session.run(None, {face_mesh().input_name: x})
    assert np.abs(outputs[1404].reshape(-1) - onnx_points.reshape(-1)).max() < 0.05  # 192 px input


def test_the_reference_is_left_right_symmetric_and_pairs_every_point():
    mesh = face_mesh()
    assert np.array_equal(mesh.mirror[mesh.mirror], np.arange(468))
    mirrored = mesh.reference[mesh.mirror] * (-1, 1, 1)
    assert np.abs(mirrored - mesh.reference).max() < 1e-4
    assert mesh.mirror[POINTS["image_left_eye_outer"]] == POINTS["image_right_eye_outer"]


def test_a_missing_mesh_file_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="face mesh model file is missing.*leave landmarks off"):
        FaceMesh(tmp_path / "nope.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(mesh_module.MODEL_PATH.read_bytes()[:4000])
    with pytest.raises(RuntimeError, match="corrupt.onnx is not a loadable ONNX model"):
        FaceMesh(corrupt)


def test_the_video_table_has_pose_and_mesh_columns(tmp_path):
    from helpers import write_clip

    clip = tmp_path / "clip.mp4"
    write_clip(clip, seconds=0.5)
    table = fer.analyze_video(clip, landmarks=True, progress=False)
    faces = table[table["face"] >= 0]
    assert len(faces) and {"yaw", "pitch", "roll", "x_0", "y_467", "z_467"} <= set(table.columns)
    first = faces.iloc[0]
    assert first["x"] < first["x_33"] < first["x"] + first["w"] and faces["yaw"].notna().all()
    assert "yaw" not in fer.analyze_video(clip, progress=False, max_frames=1).columns


def test_the_cli_writes_the_mesh_to_every_output_and_keeps_datasets_apart(astronaut, tmp_path):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut[:, :, ::-1])
    out = tmp_path / "out"
    run = [sys.executable, "-m", "fer", "predict", str(photo), "--out", str(out)]
    subprocess.run([*run, "--landmarks"], check=True, capture_output=True, text=True)
    import pandas as pd

    rows = pd.read_parquet(out / "predictions.parquet")
    csv = pd.read_csv(out / "predictions.csv")
    (face,) = json.loads((out / "predictions.json").read_text())
    points = np.asarray(rows["landmarks"][0]).reshape(468, 3)
    expected = _face(astronaut)
    assert np.median(np.hypot(*(points[:, :2] - expected.landmarks[:, :2]).T)) < 1.5
    assert csv.loc[0, "x_33"] == pytest.approx(points[33, 0], abs=0.01) and csv.loc[0, "yaw"] == rows["yaw"][0]
    assert face["pose"]["roll"] == rows["roll"][0]
    assert face["landmarks"][33][:2] == pytest.approx(points[33, :2], abs=0.01)
    refused = subprocess.run(run, capture_output=True, text=True)  # the same folder, without the mesh
    assert refused.returncode != 0 and "other settings" in refused.stderr


def test_blazeface_mesh_frames_each_face_from_its_mesh(astronaut):
    """detector="blazeface-mesh": BlazeFace finds the face, its mesh (read in BlazeFace's box) gives the box."""
    from fer.inference.detectors.blazeface import BlazeFaceDetector
    from fer.inference.mesh import MESH_FRAMING, framed_box

    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)  # what detection reads
    (found,) = BlazeFaceDetector()(gray)
    (points,), _ = face_mesh().points(gray, [found.box], [(found.left_eye, found.right_eye)])
    expected = framed_box(points)
    (p,) = fer.predict_emotion(gray, detector="blazeface-mesh")
    assert p.box == expected != found.box
    x, y, w, h = expected  # square, the eyes MESH_FRAMING[1] eye distances above its centre
    eyes_y = (points[POINTS["image_left_eye_outer"], 1] + points[POINTS["image_right_eye_outer"], 1]) / 2
    eye_distance = np.hypot(*(points[POINTS["image_right_eye_outer"], :2] - points[POINTS["image_left_eye_outer"], :2]))
    assert w == h == round(MESH_FRAMING[2] * eye_distance) and y + h / 2 > eyes_y
