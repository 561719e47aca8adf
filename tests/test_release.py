import json

import keras
import numpy as np
import pytest

from fer.inference.models import load_model
from fer.release import ship


def test_ship_exports_evaluates_and_writes_the_card(trained, sample_root, tmp_path):
    result, _, test = trained
    models = tmp_path / "models"
    ship(result.run_dir, sample_root, models_dir=models, hardware="test machine", throughput_faces=256)
    shipped = models / "fer_emotion.keras"
    assert shipped.stat().st_size < (result.run_dir / "best.keras").stat().st_size  # no optimizer state
    model = load_model(shipped)
    best = keras.models.load_model(result.run_dir / "best.keras")
    x = test.images[:8, ..., None].astype("float32")
    assert np.allclose(model.predict(x, verbose=0), best.predict(x, verbose=0), atol=1e-5)

    metrics = json.loads((models / "fer_emotion.metrics.json").read_text())
    assert metrics["architecture"] == "seed" and metrics["epochs"] == 1 and metrics["hardware"] == "test machine"
    from fer.analysis.evaluation import evaluate
    from fer.data.loading import load_split

    faces = load_split(sample_root, "test")
    assert metrics["accuracy"] == round(evaluate(best, faces.images, faces.labels).accuracy, 4)
    assert metrics["accuracy_tta"] == round(evaluate(best, faces.images, faces.labels, tta=True).accuracy, 4)
    assert metrics["cpu_faces_per_second"] > 0 and metrics["checkpoint"] == "best.keras"
    # Both ONNX twins are (re)written with the model, so neither engine is left running a stale one.
    from fer.inference.onnx_model import fresh_twin

    assert metrics["onnx_twin"] == "onnx/fer_emotion.onnx" and fresh_twin(shipped) == models / metrics["onnx_twin"]
    assert fresh_twin(shipped, "int8") == models / "onnx" / "fer_emotion.int8.onnx"
    # The run's training prior is recorded with the model and both twins (prior= re-weights from it).
    prior = result.summary["training_prior"]
    assert prior and metrics["training_prior"] == prior
    for twin in ("fer_emotion.json", "fer_emotion.int8.json"):
        assert json.loads((models / "onnx" / twin).read_text())["training_prior"] == prior
    assert load_model(shipped, engine="auto").training_prior == prior
    assert "best of 1 epochs" in metrics["selection"] and "nothing was selected on PublicTest" in metrics["selection"]
    assert set(metrics["per_class"]) == {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
    card = (models / "MODEL_CARD.md").read_text()
    assert "PrivateTest" not in card and metrics["selection"] in card
    assert "without the 0 faces that copy training images" in card  # the sample has no train/test copies
    assert f"{metrics['accuracy']:.2%}" in card and "## Limitations" in card and "587,847 parameters" in card
    assert 'class weights "balanced",' in " ".join(card.split())  # the run's class_weighting: true
    cells = _row(card, "happy")
    # precision, recall, f1 to three decimals; support a whole count
    assert all(len(c.split(".")[1]) == 3 for c in cells[1:4])
    assert cells[4] == str(metrics["per_class"]["happy"]["support"])
    assert (models / "fer_emotion_confusion.png").is_file()

    # A run started from another network's weights says so, and that its hours are its own.
    from fer.release import model_card

    plain, tta = evaluate(best, faces.images, faces.labels), evaluate(best, faces.images, faces.labels, tta=True)
    warm = {**metrics, "config": {**metrics["config"], "init_weights": "../models/fer_emotion.keras"}}
    warm_card = " ".join(model_card(warm, plain, tta).split())
    assert "started from the weights of the previous `fer_emotion.keras`" in warm_card  # the file it overwrites
    assert "(this run only)" in warm_card
    other = {**metrics, "config": {**metrics["config"], "init_weights": "models/other.keras"}}
    assert "started from the weights of `other.keras`" in " ".join(model_card(other, plain, tta).split())
    # A run folder's checkpoint is named by its run: every run's file is final.keras or best.keras.
    run = {**metrics, "config": {**metrics["config"], "init_weights": "runs/sweep/a-seed4/train/final.keras"}}
    assert "started from the weights of run `a-seed4`" in " ".join(model_card(run, plain, tta).split())
    assert "no pretrained weights:" in " ".join(card.split()) and "started from" not in card


def test_ship_needs_a_finished_run(tmp_path):
    with pytest.raises(FileNotFoundError):
        ship(tmp_path, tmp_path, models_dir=tmp_path / "m")


def test_ship_ensemble_writes_members_a_json_ensemble_and_its_card(trained, sample_root, tmp_path, capsys):
    import shutil

    from fer.analysis.evaluation import evaluate
    from fer.cli import main
    from fer.data.loading import load_split
    from fer.modeling.architectures import build_model

    result = trained[0]
    other = tmp_path / "sweep" / "other-run" / "train"  # a sweep's layout: <sweep>/<run-id>/train
    shutil.copytree(result.run_dir, other)
    build_model("seed", seed=7).save(other / "best.keras")  # a different network in the same run layout
    models = tmp_path / "models"
    args = ["ship", "--run", str(result.run_dir), str(other), "--data", str(sample_root), "--models-dir", str(models)]
    assert main([*args, "--selection", "both, on a validation split"]) == 0
    assert "Shipped the ensemble of 2 runs as fer_ensemble.json" in capsys.readouterr().out
    metrics = json.loads((models / "fer_ensemble.metrics.json").read_text())
    files = [models / m["file"] for m in metrics["members"]]
    assert [f.name for f in files] == [f"{result.run_dir.name}.keras", "other-run.keras"]
    assert all(f.is_file() for f in files)
    assert files[0].stat().st_size < (result.run_dir / "best.keras").stat().st_size  # no optimizer state
    test = load_split(sample_root, "test")
    for member, f in zip(metrics["members"], files):
        assert member["accuracy"] == round(evaluate(load_model(f), test.images, test.labels).accuracy, 4)
    ensemble = load_model(models / "fer_ensemble.json")
    # Both members ran the same recipe (a copied run folder): the ensemble's prior is theirs.
    assert metrics["training_prior"] == ensemble.training_prior == result.summary["training_prior"]
    assert metrics["accuracy"] == round(evaluate(ensemble, test.images, test.labels).accuracy, 4)
    assert metrics["accuracy_tta"] == round(evaluate(ensemble, test.images, test.labels, tta=True).accuracy, 4)
    assert metrics["train_hours"] == pytest.approx(sum(m["train_hours"] for m in metrics["members"]), abs=0.011)
    card = (models / "fer_ensemble_CARD.md").read_text()
    assert "both, on a validation split" in card and f"{metrics['accuracy']:.2%}" in card
    row = _row(card, "fer_ensemble/other-run.keras")
    assert row[1] == "seed" and '"balanced"' in row  # each member's class weights: the recipes may differ there
    assert "random init" in row
    # A member that is already shipped (here: the default model) is referenced, not committed twice.
    shipped = tmp_path / "models2"
    shipped.mkdir()
    shutil.copy(files[0], shipped / "fer_emotion.keras")
    assert main([*args[:-2], "--models-dir", str(shipped)]) == 0
    again = json.loads((shipped / "fer_ensemble.metrics.json").read_text())
    assert [m["file"] for m in again["members"]] == ["fer_emotion.keras", "fer_ensemble/other-run.keras"]
    assert not (shipped / "fer_ensemble" / f"{result.run_dir.name}.keras").exists()
    assert json.loads((shipped / "fer_ensemble.json").read_text())["members"][0] == "fer_emotion.keras"
    assert load_model(shipped / "fer_ensemble.json").predict(test.images[:8]) == pytest.approx(
        ensemble.predict(test.images[:8]), abs=1e-6
    )


def _row(card: str, first: str) -> list[str]:
    """The cells of the Markdown table row of `card` whose first cell is `first`."""
    for line in card.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first:
            return cells
    raise AssertionError(f"no table row starting with {first!r}")
