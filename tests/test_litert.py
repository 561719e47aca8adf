"""Export to LiteRT (.tflite) and running .tflite files wherever a model path is accepted."""

import json
import sys

import numpy as np
import pytest
from helpers import require

from fer.analysis.probabilities import predict_proba
from fer.cli import main
from fer.errors import ModelError
from fer.inference.models import load_model
from fer.inference.predict import predict_crop

require("ai_edge_litert")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    from fer.release.exporting import export

    source = trained[0].run_dir / "best.keras"
    return source, export(source, "litert", tmp_path_factory.mktemp("litert"))


def test_litert_export_predicts_like_keras(exported, trained):
    source, path = exported
    assert path.suffix == ".tflite"
    faces = trained[2].images[:64]
    keras_probs = predict_proba(load_model(source), faces)
    model = load_model(path)
    assert type(model).__name__ == "LiteRTModel" and model.input_shape == (None, 48, 48, 1)
    probs = predict_proba(model, faces)
    assert np.abs(probs - keras_probs).max() < 1e-4
    assert (probs.argmax(1) == keras_probs.argmax(1)).mean() >= 0.999
    # Batches of other sizes resize the interpreter's tensors and give the same rows.
    assert np.allclose(model.predict(faces[:, :, :, None], batch_size=5), probs, atol=1e-6)
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["format"] == "litert" and info["file"] == path.name
    assert predict_crop(faces[0], model=path).probabilities == pytest.approx(
        predict_crop(faces[0], model=source).probabilities, abs=1e-4
    )


def test_tflite_path_in_the_cli_and_the_tensorflow_fallback(exported, sample_root, capsys, monkeypatch):
    source, path = exported
    assert main(["evaluate", "--model", str(path), "--data", str(sample_root), "--json"]) == 0
    via_litert = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--model", str(source), "--data", str(sample_root), "--json"]) == 0
    assert via_litert["confusion"] == json.loads(capsys.readouterr().out)["confusion"]
    # Without ai-edge-litert, TensorFlow's own interpreter runs the file with the same results.
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    from fer.inference.litert_model import LiteRTModel

    faces = np.random.default_rng(0).integers(0, 256, (8, 48, 48, 1)).astype(np.float32)
    fallback = LiteRTModel(path)
    assert "tensorflow" in type(fallback.interpreter).__module__
    assert np.allclose(fallback.predict(faces), load_model(path).predict(faces), atol=1e-6)


def test_corrupt_tflite_is_a_clear_error(tmp_path, sample_root, capsys):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"TFL3 not really a flatbuffer")
    with pytest.raises(ModelError, match="broken.tflite: not a loadable LiteRT model"):
        load_model(bad)
    assert main(["evaluate", "--model", str(bad), "--data", str(sample_root)]) == 2
    assert "not a loadable LiteRT model" in capsys.readouterr().err


@pytest.mark.realdata
def test_shipped_model_litert_parity_on_publictest(real_data, tmp_path):
    from fer.data.loading import load_split
    from fer.release.exporting import export

    test = load_split(real_data, "test")
    faces = test.images[np.random.default_rng(0).choice(len(test), 400, replace=False)]
    keras_probs = predict_proba(load_model(), faces)
    probs = predict_proba(load_model(export(None, "litert", tmp_path)), faces)
    assert np.abs(probs - keras_probs).max() < 1e-4
    assert (probs.argmax(1) == keras_probs.argmax(1)).mean() >= 0.999
