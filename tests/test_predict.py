import numpy as np
import pytest
from PIL import Image

from fer.data.classes import EMOTIONS
from fer.errors import ModelError
from fer.inference.models import load_model
from fer.inference.predict import Prediction, predict_crop, predict_emotion
from fer.modeling.files import packaged_default


@pytest.fixture(scope="module")
def model_path(trained):
    return trained[0].run_dir / "best.keras"


def test_every_input_kind_gives_the_same_prediction(trained, model_path, tmp_path):
    _, _, test = trained
    face = test.images[3]
    Image.fromarray(face).save(tmp_path / "face.png")
    # A colour face whose channels differ, so reading it in the wrong channel order gives another gray.
    rgb = np.dstack([face, face // 2, 255 - face])  # 48x48: taken as a face crop, no detection
    results = [
        predict_crop(face, model=model_path),
        predict_crop(tmp_path / "face.png", model=model_path),
        predict_crop(str(tmp_path / "face.png"), model=model_path),
        predict_crop(Image.fromarray(face), model=model_path),
        *predict_emotion(face, model=model_path),  # a 48x48 image is a crop: a list of one face
    ]
    as_rgb = predict_crop(rgb, model=model_path)
    assert as_rgb.probabilities == pytest.approx(
        predict_crop(rgb[..., ::-1].copy(), model=model_path, channel_order="bgr").probabilities, abs=1e-6
    )
    assert as_rgb.probabilities != pytest.approx(predict_crop(rgb[..., ::-1].copy(), model=model_path).probabilities)
    for r in results:
        assert isinstance(r, Prediction)
        assert r.emotion == results[0].emotion
        assert r.probabilities == pytest.approx(results[0].probabilities, abs=1e-5)
    assert list(results[0].probabilities) == list(EMOTIONS)
    assert results[0].probability == max(results[0].probabilities.values())
    assert results[0].box is None


def test_larger_crops_are_resized_like_training_data(model_path, trained):
    _, _, test = trained
    face = test.images[0]
    big = np.asarray(Image.fromarray(face).resize((96, 96), Image.Resampling.NEAREST))
    a, (b,) = predict_crop(face, model=model_path), predict_emotion(big, model=model_path, face_crop=True)
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-4)


def test_predict_emotion_always_returns_a_list_and_old_code_is_told_what_to_write(model_path, trained):
    face = trained[2].images[0]
    faces = predict_emotion(face, model=model_path)
    assert isinstance(faces, list) and len(faces) == 1 and isinstance(faces[0], Prediction)
    for face_result in predict_emotion(face, model=model_path):  # the README's loop works on a crop too
        assert face_result.emotion in EMOTIONS
    with pytest.raises(AttributeError, match=r"predict_crop\(image\)\.emotion"):
        faces.emotion  # noqa: B018  (the pre-0.2 use of a crop's result)


def test_batch_form_matches_single_predictions(trained):
    result, _, test = trained
    batch = predict_crop(test.images[:10], model=result.model)
    as_list = predict_crop(list(test.images[:10]), model=result.model)
    singles = [predict_crop(im, model=result.model) for im in test.images[:10]]
    for b, li, s in zip(batch, as_list, singles):
        assert b.emotion == li.emotion == s.emotion
        assert b.probabilities == pytest.approx(s.probabilities, abs=1e-5)
    assert predict_crop([], model=result.model) == []


def test_missing_corrupt_and_wrong_model_files(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="nope.keras: model file not found"):
        load_model(tmp_path / "nope.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"this is no zip archive")
    with pytest.raises(ModelError, match="bad.keras: not a Keras 3 .keras model file"):
        load_model(bad)
    h5 = tmp_path / "old.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ModelError, match="legacy .h5"):
        load_model(h5)
    monkeypatch.setenv("FER_MODEL", str(tmp_path / "elsewhere.keras"))
    with pytest.raises(ModelError, match="elsewhere.keras: model file not found"):
        predict_emotion(np.zeros((48, 48), np.uint8))
    # Without the checkout's models/ (a plain install) the default predicts through its twin inside the package;
    # only the Keras engine needs the research store, and says so.
    monkeypatch.delenv("FER_MODEL")
    monkeypatch.setattr("fer.modeling.files.MODELS_DIR", tmp_path / "models")
    face = np.zeros((48, 48), np.uint8)
    assert predict_emotion(face, model=None)[0].probabilities == pytest.approx(
        predict_emotion(face, model=packaged_default())[0].probabilities
    )
    with pytest.raises(ModelError, match=r"engine='keras' runs the default model's Keras file.*engine='auto'"):
        load_model(None, engine="keras")
    # ... or only a member of a shipped ensemble is missing.
    models = tmp_path / "models"
    models.mkdir()
    (models / "fer_ensemble.json").write_text('{"members": ["fer_emotion.keras", "fer_ensemble/b.keras"]}')
    monkeypatch.setenv("FER_MODEL", str(models / "fer_ensemble.json"))
    with pytest.raises(ModelError, match=r"fer_emotion.keras: model file not found.*pip install -e '\.\[research\]'"):
        predict_emotion(np.zeros((48, 48), np.uint8))


def test_a_model_for_other_inputs_is_refused(tmp_path):
    import keras

    other = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(7, "softmax")])
    other.save(tmp_path / "other.keras")
    with pytest.raises(
        ModelError,
        match=r"expected a model from 48x48x1 faces to 7 \(FER-2013\) or 8 \(FER\+\) emotions.*got \(32, 32, 3\)",
    ):
        load_model(tmp_path / "other.keras")


def test_unreadable_image_names_the_file(model_path, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(ValueError, match="broken.jpg: not a readable image"):
        predict_emotion(bad, model=model_path)


def test_a_list_of_photos_skips_unreadable_files(model_path, trained, tmp_path):
    from fer.errors import ImageError

    good = tmp_path / "good.png"
    Image.fromarray(trained[2].images[0]).save(good)
    (tmp_path / "bad.jpg").write_text("not an image")
    inputs = [good, tmp_path / "bad.jpg", good]
    with pytest.raises(ImageError, match="bad.jpg"):
        predict_emotion(inputs[1], model=model_path)  # one photo: its error
    with pytest.warns(UserWarning, match="Skipped .*bad.jpg"):
        results = predict_emotion(inputs, model=model_path)
    assert [len(r) for r in results] == [1, 0, 1]  # the good ones are predicted, in their places
    assert "bad.jpg" in results[1].error and results[0].error is None
    assert results[0][0].probabilities == pytest.approx(results[2][0].probabilities)


def test_a_list_of_photos_is_one_batched_call_that_matches_one_at_a_time(model_path, trained, tmp_path):
    from fer.inference.predict import iter_photos

    skimage = pytest.importorskip("skimage.data")
    photo = skimage.astronaut()
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    (tmp_path / "bad.jpg").write_text("not an image")
    blank = np.full((200, 300, 3), 128, np.uint8)
    inputs = [tmp_path / "astronaut.png", tmp_path / "bad.jpg", blank, photo[::-1], trained[2].images[0]]
    with pytest.warns(UserWarning, match="No face found"):  # the blank photo has no face
        one_by_one = [predict_emotion(x, model=model_path) if i != 1 else None for i, x in enumerate(inputs)]
    # The list form warns alike (and names what it skipped); batches smaller than the faces: several.
    with pytest.warns(UserWarning) as caught:
        many = predict_emotion(inputs, model=model_path, batch_size=2)
    said = [str(w.message) for w in caught]
    assert any("No face found in the ndarray image at index 2" in m for m in said), said
    assert any(m.startswith("Skipped") and "bad.jpg" in m for m in said), said
    assert len(many) == len(inputs)
    assert "bad.jpg" in many[1].error and not many[1]
    assert many[0].error is None and len(many[2]) == 0 and len(many[4]) == 1
    for i in (0, 2, 3, 4):
        assert [(p.box, p.emotion) for p in many[i]] == [(p.box, p.emotion) for p in one_by_one[i]]
        for p, q in zip(many[i], one_by_one[i]):
            assert p.probabilities == pytest.approx(q.probabilities, abs=1e-5)
    # Chunks (detection of the next overlapping classification of this one) change nothing, in order.
    chunked = list(iter_photos(inputs, model_path, chunk=2))
    assert [r.index for r in chunked] == list(range(len(inputs)))
    assert [[p.emotion for p in r.faces] for r in chunked] == [[p.emotion for p in f] for f in many]
    assert chunked[0].faces[0].box == many[0][0].box and chunked[4].faces[0].box is None  # a crop: no box
    crops = predict_emotion([trained[2].images[1], tmp_path / "bad.jpg"], model=model_path, face_crop=True)
    assert crops[0][0].emotion == predict_crop(trained[2].images[1], model=model_path).emotion and crops[1].error
    with pytest.raises(ValueError, match="one list of boxes per image"):
        predict_emotion(inputs, model=model_path, boxes=[[(0, 0, 10, 10)]])
