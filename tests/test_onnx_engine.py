"""ONNX Runtime as the inference engine: the shipped ONNX twins, their parity with Keras, and engine selection."""

import json
import shutil

import keras
import numpy as np
import pytest
from helpers import require

from fer.analysis.evaluation import evaluate
from fer.analysis.probabilities import predict_proba
from fer.cli import main
from fer.data.classes import FERPLUS_CLASSES
from fer.errors import ModelError
from fer.inference.models import load_model, model_classes, resolve_model
from fer.inference.onnx_model import OnnxModel, fresh_twin, source_digest, twin_path
from fer.inference.predict import predict_emotion
from fer.modeling.files import (
    DEFAULT_MODEL_NAME,
    MODELS_DIR,
    SINGLE_MODEL_NAME,
    default_model_path,
    packaged_default,
)

require("onnxruntime")

# The models predict_emotion runs by default and the fast single network: each ships with its twin.
TWINNED = sorted({default_model_path().name, SINGLE_MODEL_NAME})


@pytest.mark.parametrize("name", TWINNED)
def test_shipped_models_have_an_up_to_date_twin_under_16_mb(name):
    source = MODELS_DIR / name
    # The default's twins travel inside the package (a plain install predicts with them); the others sit beside.
    twin = packaged_default() if name == DEFAULT_MODEL_NAME else twin_path(source)
    assert fresh_twin(source) == twin, f"{twin} is missing or stale: python -m fer export --twin --model {source}"
    assert twin.stat().st_size < 16 * 2**20
    info = json.loads(twin.with_suffix(".json").read_text())
    assert info["source_sha256"] == source_digest(source)
    assert info["output"]["classes"] == list(model_classes(load_model(source)))


def test_predict_emotion_runs_the_twin_by_default_and_keras_when_asked(monkeypatch):
    monkeypatch.delenv("FER_ENGINE", raising=False)
    monkeypatch.delenv("FER_MODEL", raising=False)
    assert isinstance(resolve_model(None), OnnxModel)
    assert isinstance(resolve_model(None, engine="keras"), keras.Model)
    assert isinstance(load_model(), keras.Model)  # load_model stays the Keras model (training, export, notebooks)
    monkeypatch.setenv("FER_ENGINE", "keras")
    assert isinstance(resolve_model(None), keras.Model)
    monkeypatch.setenv("FER_ENGINE", "tpu")
    with pytest.raises(ValueError, match="FER_ENGINE='tpu'"):
        resolve_model(None)


def test_a_stale_twin_is_never_used(tmp_path, monkeypatch):
    monkeypatch.delenv("FER_ENGINE", raising=False)
    source = tmp_path / SINGLE_MODEL_NAME
    shutil.copy(MODELS_DIR / SINGLE_MODEL_NAME, source)
    twin = twin_path(source)
    twin.parent.mkdir()
    shipped = twin_path(MODELS_DIR / SINGLE_MODEL_NAME)
    shutil.copy(shipped, twin)
    shutil.copy(shipped.with_suffix(".json"), twin.with_suffix(".json"))
    assert isinstance(load_model(source, engine="auto"), OnnxModel)
    with source.open("ab") as f:  # the source changes (retrained, replaced): its old twin no longer matches
        f.write(b"\0")
    assert fresh_twin(source) is None
    with pytest.raises(ModelError, match="no up-to-date ONNX float32 twin.*export --twin --model"):
        load_model(source, engine="onnx")
    with pytest.raises(ValueError, match="engine must be one of"):
        load_model(source, engine="fast")


def test_twin_agrees_with_keras_on_generated_faces_and_photos(rng):
    faces = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    for name in TWINNED:
        keras_model, onnx_model = load_model(MODELS_DIR / name), load_model(MODELS_DIR / name, engine="onnx")
        assert np.abs(predict_proba(onnx_model, faces) - predict_proba(keras_model, faces)).max() < 1e-4
        with_tta = predict_proba(onnx_model, faces, tta=True), predict_proba(keras_model, faces, tta=True)
        assert np.abs(with_tta[0] - with_tta[1]).max() < 1e-4
    skimage = require("skimage.data")
    photo = skimage.astronaut()
    keras_faces = predict_emotion(photo, model=resolve_model(None, engine="keras"))
    onnx_faces = predict_emotion(photo)
    assert [f.box for f in onnx_faces] == [f.box for f in keras_faces]
    assert [f.emotion for f in onnx_faces] == [f.emotion for f in keras_faces]


@pytest.mark.realdata
@pytest.mark.parametrize("name", TWINNED)
def test_twin_parity_on_publictest(real_data, name):
    """The issue's bar: top-1 agreement >= 99.9% on PublicTest, accuracy the same to 0.1 pt."""
    from fer.data.ferplus import votes_if_ferplus
    from fer.data.loading import load_split

    test = load_split(real_data, "test")
    keras_model, onnx_model = load_model(MODELS_DIR / name), load_model(MODELS_DIR / name, engine="onnx")
    keras_probs, onnx_probs = predict_proba(keras_model, test.images), predict_proba(onnx_model, test.images)
    assert (keras_probs.argmax(1) == onnx_probs.argmax(1)).mean() >= 0.999
    votes = votes_if_ferplus(keras_model, real_data, "test")
    on_keras = evaluate(keras_model, test.images, test.labels, votes=votes)
    on_onnx = evaluate(onnx_model, test.images, test.labels, votes=votes)
    assert abs(on_keras.accuracy - on_onnx.accuracy) <= 0.001


@pytest.mark.slow
def test_export_twin_cli_writes_a_twin_that_predict_then_runs(trained, tmp_path, capsys, monkeypatch):
    require("tf2onnx")
    monkeypatch.delenv("FER_ENGINE", raising=False)
    source = tmp_path / "mine.keras"
    shutil.copy(trained[0].run_dir / "best.keras", source)
    assert main(["export", "--twin", "--model", str(source)]) == 0
    assert "the ONNX twin" in capsys.readouterr().out
    assert fresh_twin(source) == tmp_path / "onnx" / "mine.onnx"
    faces = trained[2].images[:32]
    by_twin = predict_proba(load_model(source, engine="onnx"), faces)
    by_keras = predict_proba(load_model(source), faces)
    assert np.abs(by_twin - by_keras).max() < 1e-4
    assert main(["export", "--twin", "--format", "litert", "--model", str(source)]) == 2


def test_cli_predict_engines_agree_and_a_folder_is_one_batched_pass(tmp_path, capsys, monkeypatch):
    skimage = require("skimage.data")
    from PIL import Image

    monkeypatch.delenv("FER_ENGINE", raising=False)
    photo = skimage.astronaut()
    for i, image in enumerate((photo, photo[:, ::-1], np.full((120, 160, 3), 128, np.uint8))):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.jpg").write_text("not an image")
    tables = {}
    for engine in ("auto", "keras"):
        code = main(["predict", str(tmp_path), "--engine", engine, "--json", "--chunk", "2"])
        tables[engine] = json.loads(capsys.readouterr().out)
        assert code == 1  # the broken file fails; the others are predicted
    assert [(r["path"], r["status"], r["emotion"], r["box"]) for r in tables["auto"]] == [
        (r["path"], r["status"], r["emotion"], r["box"]) for r in tables["keras"]
    ]
    assert [r["status"] for r in tables["auto"]] == ["ok", "ok", "no face", "error"]
    for a, b in zip(tables["auto"][:2], tables["keras"][:2]):
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-4)


def test_the_int8_engine_runs_the_int8_twin_within_a_point_of_keras(rng, monkeypatch):
    """The int8 twin (engine "int8"): 2.5x the float32 twin's faces/s; its top emotion differs on under 1% of faces."""
    source = MODELS_DIR / default_model_path().name
    monkeypatch.setenv("FER_ENGINE", "int8")
    model = resolve_model(source)
    assert isinstance(model, OnnxModel) and model.path == packaged_default("int8") == fresh_twin(source, "int8")
    faces = rng.integers(0, 256, (256, 48, 48), dtype=np.uint8)
    by_int8, by_keras = predict_proba(model, faces), predict_proba(load_model(source), faces)
    assert np.abs(by_int8 - by_keras).max() < 0.2 and not np.allclose(by_int8, by_keras, atol=1e-4)  # quantized


@pytest.mark.realdata
def test_int8_twin_loses_at_most_a_third_of_a_point_on_validation(real_data):
    """The issue's bar for int8: at most 0.3 points below Keras on the validation split (PublicTest is not used)."""
    from fer.modeling.config import TrainConfig
    from fer.modeling.run_data import split_data

    source = MODELS_DIR / default_model_path().name
    keras_model = load_model(source)
    labels = "ferplus_votes" if model_classes(keras_model) == FERPLUS_CLASSES else "fer2013"
    _, val = split_data(TrainConfig(data=str(real_data), labels=labels))
    accuracy = {
        engine: float((predict_proba(load_model(source, engine=engine), val.images).argmax(1) == val.labels).mean())
        for engine in ("keras", "int8")
    }
    assert accuracy["int8"] >= accuracy["keras"] - 0.003
