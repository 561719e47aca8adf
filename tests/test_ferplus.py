"""FER+ crowd labels: the votes tables (folder layout and fer2013.csv + fer2013new.csv), the label protocols,
scoring against the crowd, and 8-class models through training, prediction, export and shipping."""

import json

import numpy as np
import pandas as pd
import pytest
from helpers import require

from fer.analysis.evaluation import Evaluation
from fer.data import ferplus
from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.data.ferplus import VOTE_COLUMNS
from fer.data.loading import load_split
from fer.data.sample import make_sample, write_sample, write_sample_votes
from fer.errors import DataError


def votes(**counts) -> list[int]:
    return [counts.get(c, 0) for c in VOTE_COLUMNS]


# A hand-made table: every rule of the FER+ protocol, with the answer it must give.
TABLE = [
    (votes(neutral=8, happiness=2), "neutral"),  # a plain majority
    (votes(happiness=6, sadness=1, anger=1, fear=1, surprise=1), "happy"),  # single votes dropped first: 6 of 6
    (votes(neutral=5, happiness=5), None),  # a tie is no majority
    (votes(unknown=6, neutral=4), None),  # "unknown" on top
    (votes(NF=10), None),  # not a face
    (votes(contempt=7, anger=3), "contempt"),  # the eighth class
    (votes(neutral=4, sadness=3, anger=3), None),  # 4 of 10 is not more than half
]


def test_the_majority_protocol_on_a_hand_made_votes_table():
    table = np.array([v for v, _ in TABLE])
    labels = ferplus.majority_labels(table)
    assert [FERPLUS_CLASSES[i] if i >= 0 else None for i in labels] == [want for _, want in TABLE]
    assert ferplus.not_a_face(table).tolist() == [False, False, False, False, True, False, False]
    # The votes mode keeps every face with an emotion on top: the tie and the 4-3-3 split too, as soft targets.
    assert ferplus.usable_for_votes(table).tolist() == [True, True, True, False, False, True, True]
    dist = ferplus.vote_distribution(table)
    assert dist[2, FERPLUS_CLASSES.index("neutral")] == pytest.approx(0.5)
    assert dist[1, FERPLUS_CLASSES.index("happy")] == pytest.approx(1.0)  # the single votes are gone
    assert dist[6].sum() == pytest.approx(1.0) and dist[4].sum() == 0  # NF: no emotion vote left
    assert ferplus.vote_entropy(table)[0] == pytest.approx(-(0.8 * np.log2(0.8) + 0.2 * np.log2(0.2)))


def test_relabel_keeps_what_each_mode_keeps():
    table = np.array([v for v, _ in TABLE])
    faces = make_sample(1).subset(np.arange(len(TABLE)))
    majority = ferplus.relabel(faces, table, "majority")
    assert [FERPLUS_CLASSES[i] for i in majority.labels] == ["neutral", "happy", "contempt"]
    assert majority.classes == FERPLUS_CLASSES and majority.votes.shape == (3, 10)
    assert len(ferplus.relabel(faces, table, "votes")) == 5
    with pytest.raises(ValueError, match="label mode"):
        ferplus.relabel(faces, table, "plurality")


def test_crowd_agreement_and_the_other_label_set():
    table = np.array([votes(neutral=8, happiness=2), votes(contempt=7, anger=3)])
    probs = np.zeros((2, 8), np.float32)
    probs[0, FERPLUS_CLASSES.index("happy")] = 1.0  # wrong, but 2 of 10 annotators said happy
    probs[1, FERPLUS_CLASSES.index("contempt")] = 1.0  # right: 7 of 10
    result = Evaluation(np.array([5, 1]), probs, classes=FERPLUS_CLASSES, votes=table)
    assert result.accuracy == 0.5 and result.crowd_agreement == pytest.approx((0.2 + 0.7) / 2)
    assert result.to_dict()["crowd_agreement"] == pytest.approx(0.45)
    # A FER-2013 model never predicts contempt; a FER+ model on FER-2013 labels loses it, renormalised.
    seven = ferplus.convert_probabilities(np.full((1, 7), 1 / 7), EMOTIONS, FERPLUS_CLASSES)
    assert seven[0, 1] == 0 and seven.sum() == pytest.approx(1.0)
    eight = ferplus.convert_probabilities(probs[1:], FERPLUS_CLASSES, EMOTIONS)
    assert eight.shape == (1, 7) and eight.sum() == pytest.approx(1.0)  # contempt only: spread evenly


def test_macro_f1_averages_only_the_classes_in_the_set():
    labels = np.array([3, 3, 4, 4])  # two of seven classes
    probs = np.eye(7, dtype=np.float32)[[3, 3, 4, 3]]
    result = Evaluation(labels, probs)
    assert result.accuracy == 0.75 and result.macro_f1 == pytest.approx((0.8 + 2 / 3) / 2)


def test_votes_match_the_folder_layout(tmp_path):
    root = write_sample(tmp_path / "fer", n_train=4, n_test=2)
    table_path = write_sample_votes(root)
    test = ferplus.load_ferplus_split(root, "test", table_path)
    assert test.classes == FERPLUS_CLASSES and len(test) > 0 and test.votes.shape == (len(test), 10)
    # The table's `file` is relative to the dataset root; a split folder given as the data works too.
    split = load_split(root / "test", "test")
    assert ferplus.votes_for(split, root / "test", ferplus.read_votes(table_path)).shape == (len(split), 10)
    # A face the table lacks is an error that names it, not a silent drop.
    short = tmp_path / "short.csv"
    pd.read_csv(table_path).iloc[:-1].to_csv(short, index=False)
    with pytest.raises(DataError, match="no votes for 1 of"):
        ferplus.load_ferplus_split(root, "test", short)
    bad = tmp_path / "bad.csv"
    bad.write_text("file,neutral\nx.png,3\n")
    with pytest.raises(DataError, match="missing vote column"):
        ferplus.read_votes(bad)


def test_votes_match_fer2013_csv_by_row(tmp_path):
    """fer2013.csv with Microsoft's fer2013new.csv beside it: the two files align row for row."""
    faces = make_sample(2, seed=4)
    csv_classes = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    usage = ["Training"] * 10 + ["PublicTest"] * 4
    pd.DataFrame(
        {
            "emotion": [csv_classes.index(EMOTIONS[i]) for i in faces.labels],
            "pixels": [" ".join(map(str, im.ravel())) for im in faces.images],
            "Usage": usage,
        }
    ).to_csv(tmp_path / "fer2013.csv", index=False)
    new = pd.DataFrame([votes(neutral=10)] * 14, columns=list(VOTE_COLUMNS))
    new.loc[12] = votes(happiness=9, sadness=1)  # the third-last row: PublicTest's third face
    new.insert(0, "Image name", [f"fer{i:07d}.png" for i in range(14)])
    new.insert(0, "Usage", usage)
    new.to_csv(tmp_path / "fer2013new.csv", index=False)
    test = ferplus.load_ferplus_split(tmp_path / "fer2013.csv", "test", tmp_path / "fer2013new.csv")
    assert [FERPLUS_CLASSES[i] for i in test.labels] == ["neutral", "neutral", "happy", "neutral"]


def test_a_ferplus_run_holds_out_the_fer2013_runs_validation_faces(tmp_path):
    from fer.modeling.config import TrainConfig
    from fer.modeling.run_data import split_data

    root = write_sample(tmp_path / "fer", n_train=10, n_test=2)
    table = write_sample_votes(root)
    base = {"data": str(root), "votes": str(table), "split_seed": 7}
    _, val_fer2013 = split_data(TrainConfig(**base))
    train, val = split_data(TrainConfig(**base, labels="ferplus_votes"))
    assert set(val.sources) <= set(val_fer2013.sources)  # the same faces, minus those without a majority
    assert not set(train.sources) & set(val_fer2013.sources)
    assert not ferplus.not_a_face(train.votes).any() and train.classes == FERPLUS_CLASSES
    kept, _ = split_data(TrainConfig(**base, drop_not_faces=True))
    everything, _ = split_data(TrainConfig(**base))
    assert len(kept) < len(everything) and kept.classes == EMOTIONS


@pytest.mark.slow
def test_an_8_class_model_trains_predicts_exports_and_ships(tmp_path):
    from fer.inference.drawing import annotate
    from fer.inference.predict import predict_crop, predict_emotion
    from fer.modeling.training import train
    from fer.release import ship_ferplus

    root = write_sample(tmp_path / "fer", n_train=12, n_test=4)
    table = write_sample_votes(root)
    result = train(
        model="vgg_lite",
        data=str(root),
        votes=str(table),
        labels="ferplus_votes",
        epochs=1,
        batch_size=16,
        out_dir=tmp_path / "run",
        verbose=0,
    )
    assert result.model.output_shape[-1] == 8 and result.summary["classes"] == list(FERPLUS_CLASSES)
    face = make_sample(1).images[0]
    p = predict_crop(face, model=result.model)
    assert list(p.probabilities) == list(FERPLUS_CLASSES) and sum(p.probabilities.values()) == pytest.approx(1)
    (found,) = predict_emotion(np.kron(face, np.ones((4, 4), np.uint8)), model=result.model, face_crop=True)
    annotate(np.zeros((60, 60, 3), np.uint8), [found], tmp_path / "drawn.png")  # any of the 8 has a colour

    require("onnxruntime")
    from fer.release.exporting import export

    onnx = export(result.run_dir / "best.keras", "onnx", tmp_path / "exported", data=root)
    info = json.loads(onnx.with_suffix(".json").read_text())
    assert info["output"]["classes"] == list(FERPLUS_CLASSES)
    assert predict_crop(face, model=onnx).probabilities == pytest.approx(p.probabilities, abs=1e-4)

    metrics = ship_ferplus([result.run_dir], root, models_dir=tmp_path / "models", selection="test")
    card = (tmp_path / "models" / "ferplus_CARD.md").read_text()
    assert (tmp_path / "models" / "ferplus.keras").is_file() and "crowd agreement" in card
    assert 0 <= metrics["ferplus"]["accuracy"] <= 1 and metrics["fer2013"]["n"] == 28
    assert metrics["training_prior"] == result.summary["training_prior"] and "ferplus" in metrics["training_prior"]
    twin_info = json.loads((tmp_path / "models" / "onnx" / "ferplus.json").read_text())
    assert twin_info["training_prior"] == metrics["training_prior"]
