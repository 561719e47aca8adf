import inspect

import pytest


def test_top_level_names_stay_functions_after_submodule_imports():
    import fer.evaluation  # noqa: F401  importing a submodule must not shadow fer.evaluate / fer.train
    import fer.training  # noqa: F401

    for name in (
        "train",
        "evaluate",
        "predict_emotion",
        "predict_emotions",
        "predict_faces",
        "predict_photos",
        "load_model",
        "build_model",
        "annotate",
        "analyze_video",
    ):
        assert inspect.isfunction(getattr(fer, name)), name
    assert fer.EMOTIONS[3] == "happy"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fer.nope  # noqa: B018
    assert set(fer.__all__) <= set(dir(fer)) | set(fer._LAZY)
