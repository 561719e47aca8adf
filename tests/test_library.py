"""The package as a library other code depends on: threads, the API's shape, priors, label heads, manners."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fer
from fer.analysis.probabilities import adjust, prior_weights
from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.data.images import to_face
from fer.inference import models as models_module
from fer.inference import predict as predict_module
from fer.inference.models import model_classes
from fer.inference.predict import predict_crop, predict_emotion

skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def scenes():
    """A close-up, a three-face scene, a photo without a face and 48x48 crops: what a server sees."""
    astronaut = skdata.astronaut()
    face = astronaut[20:330, 110:340]
    group = np.concatenate([face, face[:, ::-1], face], axis=1)
    close_up = astronaut[40:220, 150:310]
    crops = [np.asarray(to_face(astronaut[60 + 8 * k : 170 + 8 * k, 170:280])) for k in range(3)]
    return {"astronaut": astronaut, "group": group, "close_up": close_up, "coffee": skdata.coffee(), "crops": crops}


def _answers(faces) -> list[tuple]:
    """What a call answered, the face mesh's points and pose included where asked for (landmarks=True)."""
    return [(p.box, p.emotion, round(p.probability, 6), p.source, _mesh(p)) for p in faces]


def _mesh(p) -> tuple | None:
    return None if p.landmarks is None else (p.pose, p.landmarks.round(3).tobytes())


def test_concurrent_calls_give_exactly_the_single_threaded_answers(scenes):
    jobs = [
        ("group", {}),
        ("astronaut", {}),
        ("close_up", {}),
        ("coffee", {}),
        ("group", {"detector": "haar"}),
        ("astronaut", {"detector": "haar"}),
        ("close_up", {"detector": "haar"}),
        ("group", {"landmarks": True}),  # the face mesh's one session serves every thread
        ("close_up", {"landmarks": True}),
    ]

    def run(job):
        name, options = job
        if name == "crops":
            return _answers(predict_crop(scenes["crops"]))
        return _answers(predict_emotion(scenes[name], **options))

    jobs.append(("crops", {}))
    with warnings.catch_warnings():  # the photo without a face warns; warnings' filters are not per thread
        warnings.simplefilter("ignore")
        expected = [run(job) for job in jobs]
        work = jobs * 6  # 60 calls over 8 threads, every kind of input at once
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(run, work))
    assert len(expected[0]) == 3 and expected[3] == [] and all(expected[i] for i in (1, 2, 4, 5, 6, 7, 8, 9))
    assert expected[7][0][4] is not None and len({face[4] for face in expected[7]}) == 3  # three meshes
    wrong = [i for i, answer in enumerate(got) if answer != expected[i % len(jobs)]]
    assert not wrong, f"{len(wrong)} of {len(work)} concurrent calls differ, e.g. {work[wrong[0]]}"


def test_a_cold_start_loads_the_model_once_however_many_threads_ask(monkeypatch):
    loads = []
    real = models_module.load_model

    def slow_load(path=None, engine="keras"):
        loads.append(path)
        time.sleep(0.2)  # a window in which every other thread arrives
        return real(path, engine=engine)

    monkeypatch.setattr(models_module, "_cache", {})
    monkeypatch.setattr(models_module, "load_model", slow_load)
    start = threading.Barrier(8)

    def first_call(_):
        start.wait()
        return predict_crop(np.zeros((48, 48), np.uint8)).emotion

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(first_call, range(8)))
    assert len(loads) == 1 and len(set(answers)) == 1


def test_the_prediction_functions_show_their_options():
    for function in (fer.predict_emotion, fer.predict_crop):
        parameters = inspect.signature(function).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values()), function.__name__
        for option in ("model", "labels", "prior", "tta", "channel_order", "batch_size"):
            assert option in parameters and option in function.__doc__, (function.__name__, option)
    emotion = inspect.signature(fer.predict_emotion).parameters
    for option in ("face_crop", "boxes", "detector", "margin", "align", "close_ups"):
        assert option in emotion and option in fer.predict_emotion.__doc__
    assert set(fer.__all__) <= set(dir(fer)) and {"predict_emotion", "model_classes", "Faces"} <= set(dir(fer))


def test_names_removed_in_0_5_say_what_to_call():
    # Deprecated in 0.4 (a DeprecationWarning for one release), gone in 0.5: the error names the replacement.
    for old, new in (
        ("predict_emotions", r"fer\.predict_crop"),
        ("predict_faces", r"fer\.predict_emotion\(image\)"),
        ("predict_photos", r"fer\.predict_emotion\(list_of_photos\)"),
    ):
        with pytest.raises(AttributeError, match=rf"fer\.{old} was removed in 0\.5.*use {new}"):
            getattr(fer, old)
        assert old not in dir(fer) and not hasattr(predict_module, old)


def test_single_and_list_inputs_behave_alike(scenes, tmp_path):
    crop = scenes["crops"][1]
    one, many = predict_crop(crop), predict_crop([crop, crop])
    assert one.box is None and [p.probabilities for p in many] == [one.probabilities] * 2
    # A 48x48 crop has no box in a photo, in any form.
    assert predict_emotion(crop)[0].box is None and predict_emotion([crop])[0][0].box is None
    bad = tmp_path / "bad.png"
    bad.write_text("no image")
    with pytest.raises(fer.ImageError, match="bad.png"):
        predict_crop(bad)
    with pytest.warns(UserWarning, match="bad.png"):
        listed = predict_crop([crop, bad])
    assert listed[0].probabilities == one.probabilities and listed[1].emotion is None and "bad.png" in listed[1].error
    with pytest.warns(UserWarning, match="No face found"):
        assert predict_emotion(scenes["coffee"]) == []
    with pytest.warns(UserWarning, match="No face found"):
        assert predict_emotion([scenes["coffee"]]) == [[]]


def test_the_class_names_of_a_model_are_one_call_away(trained):
    assert model_classes() == FERPLUS_CLASSES == fer.model_classes(None)
    assert model_classes(trained[0].model) == EMOTIONS
    probabilities = predict_crop(np.zeros((48, 48), np.uint8)).probabilities
    assert tuple(probabilities) == model_classes()


def test_prior_adjustment_is_logit_adjustment():
    probs = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]], np.float32)
    classes = ("a", "b", "c")
    uniform = {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    # A model that learned under a uniform prior: a uniform prior changes nothing.
    assert np.allclose(adjust(probs, prior_weights("uniform", uniform, classes)), probs)
    assert prior_weights("training", {"a": 0.9, "b": 0.05, "c": 0.05}, classes) is None
    # Learned where "a" was common: a uniform prior moves decisions away from it, toward the rarer classes.
    skewed = {"a": 0.6, "b": 0.2, "c": 0.2}
    moved = adjust(probs, prior_weights("uniform", skewed, classes))
    assert moved[0].argmax() == 1 and np.allclose(moved.sum(axis=1), 1)
    assert moved[0, 0] < probs[0, 0] and moved[1, 2] > probs[1, 2]
    # A mapping of shares (normalised; unlisted classes 0).
    only_ab = adjust(probs, prior_weights({"a": 2, "b": 2}, uniform, classes))
    assert only_ab[:, 2].max() == 0 and np.allclose(only_ab[0], [0.625, 0.375, 0])


@pytest.mark.parametrize(
    "prior, message",
    [
        ({"angry": -1, "happy": 1}, "finite, >= 0"),
        ({"joy": 1}, r"does not have: \['joy'\]"),
        ({"angry": 0}, "not all 0"),
        ("flat", "must be 'training', 'uniform' or a mapping"),
        ([0.5, 0.5], "not list"),
    ],
)
def test_bad_priors_are_one_line_usage_errors(prior, message):
    with pytest.raises(ValueError, match=message) as caught:
        predict_crop(np.zeros((48, 48), np.uint8), prior=prior)
    assert "\n" not in str(caught.value)


def test_a_uniform_prior_on_the_default_moves_neutral_answers_to_other_emotions():
    from fer.data.loading import load_split

    try:
        faces = load_split(fer.data_dir(), "test").images[:400]
    except Exception:
        pytest.skip("needs ../shared/fer2013")
    plain = [p.emotion for p in predict_crop(faces)]
    uniform = [p.emotion for p in predict_crop(faces, prior="uniform")]
    assert uniform.count("neutral") < plain.count("neutral")  # the default learned a 30% neutral prior
    assert uniform.count("disgust") + uniform.count("contempt") >= plain.count("disgust") + plain.count("contempt")


def test_labels_pick_a_dual_models_head_and_a_single_model_refuses_another(tmp_path):
    import keras

    from fer.cli import main
    from fer.modeling.architectures import build_model
    from fer.modeling.dual_head import add_heads

    dual = add_heads(build_model("seed", n_classes=8))
    dual.save(tmp_path / "dual.keras")
    face = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    plus = predict_crop(face, model=tmp_path / "dual.keras", labels="ferplus")
    f2013 = predict_crop(face, model=tmp_path / "dual.keras", labels="fer2013")
    assert tuple(plus.probabilities) == FERPLUS_CLASSES and tuple(f2013.probabilities) == EMOTIONS
    expected = dual.predict_on_batch(np.asarray(face, np.float32)[None, ..., None])
    assert f2013.probabilities["sad"] == pytest.approx(float(expected[1][0, EMOTIONS.index("sad")]), abs=1e-5)
    assert predict_crop(face, model=tmp_path / "dual.keras").probabilities == plus.probabilities  # first head
    assert model_classes(tmp_path / "dual.keras", labels="fer2013") == EMOTIONS
    with pytest.raises(ValueError, match=r"labels='fer2013': this model answers in \['ferplus'\] only"):
        predict_crop(face, labels="fer2013")
    image = tmp_path / "face.png"
    keras.utils.save_img(image, face[..., None])
    assert main(["predict", str(image), "--crop", "--labels", "fer2013", "--json"]) == 2


def test_importing_fer_changes_nothing_process_wide():
    code = (
        "import os, sys; env = dict(os.environ); finders = list(sys.meta_path); fd = os.fstat(2).st_ino\n"
        "import fer\n"
        "assert dict(os.environ) == env and sys.meta_path == finders and os.fstat(2).st_ino == fd\n"
        "heavy = {'keras', 'tensorflow', 'pandas', 'sklearn', 'matplotlib', 'cv2', 'onnxruntime'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_stderr_silencing_is_safe_when_blocks_overlap_in_threads():
    import os

    from fer.quiet import stderr_silenced

    before = os.fstat(2).st_ino
    start = threading.Barrier(6)

    def overlap(k):
        start.wait()
        with stderr_silenced():
            time.sleep(0.01 * (k % 3))

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(overlap, range(6)))
    assert os.fstat(2).st_ino == before  # fd 2 is the real stderr again, not /dev/null


def test_the_packaged_default_twin_records_its_source_and_prior():
    from fer.modeling.files import DEFAULT_MODEL_NAME, packaged_default

    for precision in ("float32", "int8"):
        info = json.loads(packaged_default(precision).with_suffix(".json").read_text())
        assert info["source_model"] == DEFAULT_MODEL_NAME
        prior = info["training_prior"][next(iter(info["training_prior"]))]
        assert sum(prior.values()) == pytest.approx(1, abs=1e-3) and min(prior.values()) > 0
        assert packaged_default(precision).stat().st_size < 16 * 2**20


def test_the_cli_takes_a_prior_and_refuses_a_bad_one_in_one_line(tmp_path, capsys):
    from PIL import Image

    from fer.cli import main
    from fer.cli.common import parse_prior

    assert parse_prior("uniform") == "uniform" and parse_prior("angry=1,happy=2.5") == {"angry": 1.0, "happy": 2.5}
    photo = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48), 128, np.uint8)).save(photo)
    assert main(["predict", str(photo), "--crop", "--prior", "uniform", "--json"]) == 0
    uniform = json.loads(capsys.readouterr().out)[0]["probabilities"]
    assert main(["predict", str(photo), "--crop", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["probabilities"] != uniform
    assert main(["predict", str(photo), "--crop", "--prior", "joy=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: prior names classes this model does not have: ['joy']")


def test_one_photo_runs_without_a_thread_and_many_read_ahead_in_order(scenes, monkeypatch, tmp_path):
    """A single photo is decoded, detected and classified in the caller's thread (a thread per call cost ~0.3 ms
    of a ~2 ms portrait); more photos than a chunk are read ahead in a second thread, in order, same answers."""
    import concurrent.futures

    from PIL import Image

    files = []
    for k, name in enumerate(["astronaut", "group", "close_up", "coffee", "astronaut"]):
        files.append(tmp_path / f"{k}_{name}.jpg")
        Image.fromarray(scenes[name]).save(files[-1], quality=92)
    alone = [_answers(predict_emotion(f)) for f in files]  # warms the model before threads are forbidden

    class NoThreads:
        def __init__(self, *args, **kwargs):
            raise AssertionError("a single photo started a thread")

    with monkeypatch.context() as patch:
        patch.setattr(concurrent.futures, "ThreadPoolExecutor", NoThreads)
        assert _answers(predict_emotion(files[0])) == alone[0]
        assert [_answers(r) for r in predict_emotion(files[:2])] == alone[:2]  # one chunk: no thread either
    # Three chunks; iter_photos decodes in colour (its callers draw on the photo): OpenCV's gray and PIL's differ by a
    # grey level here and there, so boxes agree to a pixel and probabilities to 1e-3.
    ahead = [_answers(r.faces) for r in predict_module.iter_photos(files, chunk=2)]
    assert [[a[1:2] + a[3:] for a in faces] for faces in ahead] == [[a[1:2] + a[3:] for a in faces] for faces in alone]
    assert alone[3] == [] and len(alone[1]) == 3
    boxes = np.array([a[0] for faces in ahead for a in faces])
    assert np.abs(boxes - [a[0] for faces in alone for a in faces]).max() <= 1
    probabilities = [a[2] for faces in ahead for a in faces]
    assert probabilities == pytest.approx([a[2] for faces in alone for a in faces], abs=1e-3)


def test_bytes_and_file_objects_are_inputs_like_paths(scenes, tmp_path):
    """What a server receives (an upload, an HTTP body): the same answers as the file, and the same errors."""
    import io

    from PIL import Image

    path = tmp_path / "group.png"
    Image.fromarray(scenes["group"]).save(path)
    data = path.read_bytes()
    faces = predict_emotion(path)
    expected = _answers(faces)
    with open(path, "rb") as handle:
        from_file = predict_emotion(handle)
    assert _answers(predict_emotion(data)) == _answers(from_file) == _answers(predict_emotion(io.BytesIO(data)))
    assert _answers(predict_emotion(bytearray(data))) == expected
    crop = tmp_path / "crop.png"
    Image.fromarray(scenes["crops"][0]).save(crop)
    assert predict_crop(crop.read_bytes()).probabilities == predict_crop(crop).probabilities
    assert [e.prediction.emotion for e in fer.explain(data)] == [p.emotion for p in faces]
    with pytest.raises(fer.ImageError, match="the 12 bytes: not a readable image"):
        predict_emotion(b"not an image")
    with pytest.raises(fer.ImageError, match="empty"):
        predict_emotion(b"")
    with pytest.raises(fer.ImageError, match="binary mode"), open(tmp_path / "t.txt", "w+") as text:
        text.write("x")
        text.seek(0)
        predict_emotion(text)
    with pytest.warns(UserWarning, match="Skipped the bytes image at index 1"):
        good, bad = predict_emotion([data, b"junk"])
    assert _answers(good) == expected and bad == [] and "not a readable image" in bad.error
