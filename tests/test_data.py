import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer.data.classes import EMOTIONS
from fer.data.loading import (
    DataError,
    class_distribution,
    class_weights,
    label_of,
    load_csv,
    load_folder,
    load_split,
    train_val_split,
)
from fer.data.sample import make_sample


def _write(folder, name, array):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(folder / name)


def test_class_order_is_canonical_and_alphabetical():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert list(EMOTIONS) == sorted(EMOTIONS)


@pytest.mark.parametrize(
    "name,emotion",
    [
        ("Angry", "angry"),
        ("anger", "angry"),
        ("Happiness", "happy"),
        ("SADNESS", "sad"),
        ("surprised", "surprise"),
        ("Fearful", "fear"),
        ("disgusted", "disgust"),
        ("Neutral", "neutral"),
    ],
)
def test_label_aliases(name, emotion):
    assert EMOTIONS[label_of(name)] == emotion


def test_unknown_label_lists_accepted_names():
    with pytest.raises(DataError, match="Unknown emotion label 'contempt'.*happy: happy, happiness"):
        label_of("contempt")


def test_load_folder_with_aliases_and_conversion(tmp_path):
    gray = np.full((48, 48), 10, np.uint8)
    _write(tmp_path / "Happiness", "a.jpg", gray)
    _write(tmp_path / "Happiness", "b.png", np.full((96, 96, 3), 200, np.uint8))  # colour, 96x96
    _write(tmp_path / "anger", "c.png", gray)
    (tmp_path / ".ipynb_checkpoints").mkdir()  # hidden folders are ignored
    faces = load_folder(tmp_path)
    assert faces.images.shape == (3, 48, 48) and faces.images.dtype == np.uint8
    assert [EMOTIONS[i] for i in faces.labels] == ["angry", "happy", "happy"]
    assert faces.n_converted == 1
    assert "converted=1" in repr(faces)


def test_unreadable_files_are_skipped_with_a_warning_or_fail_in_strict_mode(tmp_path):
    _write(tmp_path / "sad", "ok.png", np.zeros((48, 48), np.uint8))
    (tmp_path / "sad" / "notes.txt").write_text("not an image")
    (tmp_path / "sad" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.warns(UserWarning, match=r"Skipped 2 unreadable file\(s\)[\s\S]*broken.jpg[\s\S]*notes.txt"):
        faces = load_folder(tmp_path)
    assert len(faces) == 1 and len(faces.skipped) == 2
    with pytest.raises(DataError, match=r"2 unreadable file\(s\)[\s\S]*broken.jpg"):
        load_folder(tmp_path, strict=True)


def test_layout_errors_are_specific(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_folder(tmp_path / "missing")
    with pytest.raises(DataError, match="no class folders"):
        load_folder(tmp_path)
    _write(tmp_path / "happy", "a.png", np.zeros((48, 48), np.uint8))
    _write(tmp_path / "bored", "a.png", np.zeros((48, 48), np.uint8))
    with pytest.raises(DataError, match=r"unknown class folder\(s\) \['bored'\]"):
        load_folder(tmp_path)


def test_empty_split_is_an_error(tmp_path):
    (tmp_path / "happy").mkdir()
    (tmp_path / "sad").mkdir()
    with pytest.raises(DataError, match="no readable images.*empty"):
        load_folder(tmp_path)


def test_load_split_finds_roots_split_folders_and_emotion_folders(sample_root):
    test = load_split(sample_root, "test")
    assert len(test) == 8 * 7
    direct = load_split(sample_root / "test")  # a folder of <emotion>/ folders
    assert np.array_equal(direct.images, test.images)
    with pytest.raises(DataError, match="not found.*data/README.md"):
        load_split(sample_root / "nothing-here")
    with pytest.raises(DataError, match="found neither private/"):
        load_split(sample_root, "private")


def _csv(path, rows):
    pd.DataFrame(rows, columns=["emotion", "pixels", "Usage"]).to_csv(path, index=False)


def test_load_csv_remaps_kaggle_class_numbers_and_usage(tmp_path):
    px = " ".join(["7"] * 2304)
    # Kaggle numbering: 0 Angry, 3 Happy, 4 Sad, 6 Neutral.
    _csv(
        tmp_path / "fer2013.csv",
        [(0, px, "Training"), (3, px, "Training"), (4, px, "PublicTest"), (6, px, "PrivateTest")],
    )
    splits = load_csv(tmp_path / "fer2013.csv")
    assert sorted(splits) == ["private", "test", "train"]
    assert [EMOTIONS[i] for i in splits["train"].labels] == ["angry", "happy"]
    assert EMOTIONS[splits["test"].labels[0]] == "sad"
    assert EMOTIONS[splits["private"].labels[0]] == "neutral"
    assert splits["train"].images.shape == (2, 48, 48) and splits["train"].images[0, 0, 0] == 7
    # A root holding only the CSV works through load_split too.
    assert len(load_split(tmp_path, "train")) == 2


def test_csv_with_wrong_pixel_count_names_the_lines(tmp_path):
    _csv(tmp_path / "f.csv", [(0, " ".join(["1"] * 2304), "Training"), (1, "1 2 3", "Training")])
    with pytest.raises(DataError, match=r"1 row\(s\) do not have 2304 pixel values.*lines \[3\] with \[3\]"):
        load_csv(tmp_path / "f.csv")


def test_csv_with_bad_label_or_missing_column(tmp_path):
    _csv(tmp_path / "f.csv", [(9, " ".join(["1"] * 2304), "Training")])
    with pytest.raises(DataError, match="emotion must be 0-6"):
        load_csv(tmp_path / "f.csv")
    pd.DataFrame({"label": [1]}).to_csv(tmp_path / "g.csv", index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) \['emotion', 'pixels'\]"):
        load_csv(tmp_path / "g.csv")


def test_stratified_split_is_seeded_and_keeps_every_class():
    faces = make_sample(10, seed=3)
    a_train, a_val = train_val_split(faces, 0.2, seed=1)
    b_train, b_val = train_val_split(faces, 0.2, seed=1)
    assert np.array_equal(a_val.labels, b_val.labels) and np.array_equal(a_val.images, b_val.images)
    assert len(a_train) + len(a_val) == len(faces)
    assert np.all(a_val.counts() == 2)  # 20% of 10 per class, in every class
    _, c_val = train_val_split(faces, 0.2, seed=2)
    assert not np.array_equal(a_val.images, c_val.images)


def test_class_weights_are_sklearn_balanced():
    labels = np.array([3] * 70 + [1] * 10 + [0] * 20)
    weights = class_weights(labels)
    assert weights[3] == pytest.approx(100 / (3 * 70))
    assert weights[1] == pytest.approx(100 / (3 * 10))
    assert weights[5] == 1.0  # absent class
    assert set(weights) == set(range(7))
    with pytest.raises(DataError):
        class_weights(np.array([], dtype=int))


def test_class_weight_power_softens_and_keeps_mean_weight_one():
    labels = np.array([3] * 70 + [1] * 10 + [0] * 20)
    half, none = class_weights(labels, 0.5), class_weights(labels, 0.0)
    assert half[1] / half[3] == pytest.approx((70 / 10) ** 0.5)  # sqrt of the balanced ratio
    assert np.mean([half[y] for y in labels]) == pytest.approx(1.0)
    assert [none[c] for c in (0, 1, 3)] == pytest.approx([1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="power"):
        class_weights(labels, -1)


def test_per_class_subset():
    faces = make_sample(5, seed=0)
    sub = faces.per_class(2, seed=1)
    assert sub.counts().tolist() == [2] * 7 and np.all(np.diff(sub.labels) >= 0)
    assert np.array_equal(sub.images, faces.per_class(2, seed=1).images)
    assert len(faces.per_class(10)) == len(faces)


def test_class_distribution_table():
    faces = make_sample(3, seed=0)
    table = class_distribution(train=faces, test=faces.subset(np.arange(7)))
    assert list(table.index) == list(EMOTIONS)
    assert table["train"].sum() == 21 and table["test"].sum() == 7
    assert table["train_%"].sum() == pytest.approx(100, abs=0.1)


@pytest.mark.realdata
def test_real_fer2013_counts_and_order(real_data):
    from fer.data.loading import load_fer2013

    splits = load_fer2013(real_data)
    assert len(splits["train"]) == 28709 and len(splits["test"]) == 3589
    assert splits["train"].images.shape[1:] == (48, 48)
    assert splits["train"].counts().tolist() == [3995, 436, 4097, 7215, 4965, 4830, 3171]
    assert splits["test"].counts().tolist() == [467, 56, 496, 895, 607, 653, 415]
    assert "/happy/" in splits["train"].sources[int(np.flatnonzero(splits["train"].labels == 3)[0])]


def test_a_contempt_folder_makes_the_set_ferplus_labelled(tmp_path):
    """posed-dev's CK+ crops have contempt/ beside FER-2013's names: the labels index FER+'s eight classes."""
    from PIL import Image

    from fer.data.classes import FERPLUS_CLASSES
    from fer.data.loading import load_split

    for name, n in (("Anger", 2), ("contempt", 3), ("happy", 1)):
        (tmp_path / name).mkdir()
        for i in range(n):
            Image.fromarray(np.full((48, 48), 10 * i, np.uint8)).save(tmp_path / name / f"{i}.png")
    faces = load_split(tmp_path)
    assert faces.classes == FERPLUS_CLASSES
    assert [FERPLUS_CLASSES[k] for k in faces.labels] == ["angry"] * 2 + ["contempt"] * 3 + ["happy"]
    assert list(faces.counts()) == [2, 3, 0, 0, 1, 0, 0, 0]
