"""Export to ONNX (float32, float16, int8) and running .onnx files wherever a model path is accepted."""

import json

import numpy as np
import pytest
from helpers import require

from fer.analysis.probabilities import predict_proba
from fer.cli import main
from fer.errors import ModelError
from fer.inference.models import load_model
from fer.inference.predict import predict_crop

require("onnxruntime")
require("tf2onnx")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    from fer.release.exporting import export

    out = tmp_path_factory.mktemp("exported")
    source = trained[0].run_dir / "best.keras"
    return source, export(source, "onnx", out)


def test_onnx_export_predicts_like_keras_and_says_how_to_use_it(exported, trained):
    source, onnx_path = exported
    faces = np.concatenate([trained[1].images, trained[2].images])
    keras_probs = predict_proba(load_model(source), faces)
    onnx_probs = predict_proba(load_model(onnx_path), faces)
    assert np.abs(onnx_probs - keras_probs).max() < 1e-4
    assert (onnx_probs.argmax(1) == keras_probs.argmax(1)).mean() >= 0.999
    info = json.loads(onnx_path.with_suffix(".json").read_text())
    assert info["input"]["name"] == "face" and info["input"]["shape"] == [None, 48, 48, 1]
    assert info["output"]["classes"] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert "luma" in info["preprocessing"] and info["quantization"] == "float32" and info["file"] == onnx_path.name
    # An .onnx path works wherever a model path is accepted.
    face = trained[2].images[5]
    assert predict_crop(face, model=onnx_path).probabilities == pytest.approx(
        predict_crop(face, model=source).probabilities, abs=1e-4
    )


def test_onnx_path_in_the_cli(exported, sample_root, capsys):
    _, onnx_path = exported
    assert main(["evaluate", "--model", str(onnx_path), "--data", str(sample_root), "--json"]) == 0
    via_onnx = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--model", str(exported[0]), "--data", str(sample_root), "--json"]) == 0
    assert via_onnx["confusion"] == json.loads(capsys.readouterr().out)["confusion"]


@pytest.mark.parametrize("quantize", ["float16", "int8"])
def test_quantized_onnx_variants_agree_with_float32(exported, trained, tmp_path, quantize, sample_root):
    from fer.release.exporting import export

    source, plain = exported
    path = export(source, "onnx", tmp_path, quantize=quantize, data=sample_root)
    assert path.name == f"best_{quantize}.onnx" and path.stat().st_size < plain.stat().st_size
    faces = np.concatenate([trained[1].images, trained[2].images])
    reference, probs = predict_proba(load_model(plain), faces), predict_proba(load_model(path), faces)
    assert np.abs(probs - reference).max() < (1e-2 if quantize == "float16" else 0.1)
    if quantize == "float16":  # the tiny model's near-uniform outputs make int8's top class a coin toss here;
        assert (probs.argmax(1) == reference.argmax(1)).mean() >= 0.99  # int8's is checked on real faces below
    assert json.loads(path.with_suffix(".json").read_text())["quantization"] == quantize


def test_export_refuses_bad_inputs_and_a_corrupt_onnx_is_a_clear_error(tmp_path, capsys, exported):
    from fer.release.exporting import export

    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelError, match="notes.txt: export takes a .keras model file or a .json ensemble"):
        export(tmp_path / "notes.txt", "onnx", tmp_path)
    with pytest.raises(ValueError, match="Unknown export format 'pb'"):
        export(exported[0], "pb", tmp_path)
    with pytest.raises(ValueError, match="for ONNX exports"):
        export(exported[0], "litert", tmp_path, quantize="int8")
    assert main(["export", "--model", str(tmp_path / "missing.keras"), "--out", str(tmp_path)]) == 2
    assert "missing.keras: model file not found" in capsys.readouterr().err
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelError, match="broken.onnx: not a loadable ONNX model"):
        load_model(bad)
    assert main(["evaluate", "--model", str(bad), "--data", str(tmp_path)]) == 2


@pytest.mark.realdata
def test_shipped_model_onnx_parity_on_publictest(real_data, tmp_path):
    from fer.data.loading import load_split
    from fer.release.exporting import export

    test = load_split(real_data, "test")
    faces = test.images[np.random.default_rng(0).choice(len(test), 400, replace=False)]
    onnx_path = export(None, "onnx", tmp_path)
    keras_probs, onnx_probs = predict_proba(load_model(), faces), predict_proba(load_model(onnx_path), faces)
    assert np.abs(onnx_probs - keras_probs).max() < 1e-4
    assert (onnx_probs.argmax(1) == keras_probs.argmax(1)).mean() >= 0.999
    int8 = predict_proba(load_model(export(None, "onnx", tmp_path, quantize="int8", data=real_data)), faces)
    assert (int8.argmax(1) == keras_probs.argmax(1)).mean() >= 0.95
