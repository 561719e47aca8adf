import json

import keras
import numpy as np
import pytest

from fer.predict import load_model
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
    from fer.data import load_split
    from fer.evaluation import evaluate

    faces = load_split(sample_root, "test")
    assert metrics["accuracy"] == round(evaluate(best, faces.images, faces.labels).accuracy, 4)
    assert metrics["accuracy_tta"] == round(evaluate(best, faces.images, faces.labels, tta=True).accuracy, 4)
    assert metrics["cpu_faces_per_second"] > 0 and metrics["checkpoint"] == "best.keras"
    assert "best of 1 epochs" in metrics["selection"] and "nothing was selected on PublicTest" in metrics["selection"]
    assert set(metrics["per_class"]) == {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
    card = (models / "MODEL_CARD.md").read_text()
    assert "PrivateTest" not in card and metrics["selection"] in card
    assert "without the 0 faces that copy training images" in card  # the sample has no train/test copies
    assert f"{metrics['accuracy']:.2%}" in card and "## Limitations" in card and "587,847 parameters" in card
    happy = next(line for line in card.splitlines() if line.startswith("| happy |"))
    cells = happy.strip("| ").split(" | ")
    # precision, recall, f1 to three decimals; support a whole count
    assert all(len(c.split(".")[1]) == 3 for c in cells[1:4])
    assert cells[4] == str(metrics["per_class"]["happy"]["support"])
    assert (models / "fer_emotion_confusion.png").is_file()


def test_ship_needs_a_finished_run(tmp_path):
    with pytest.raises(FileNotFoundError):
        ship(tmp_path, tmp_path, models_dir=tmp_path / "m")
