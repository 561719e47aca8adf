import importlib
import inspect
import pkgutil

import pytest

import fer


def test_top_level_names_stay_functions_after_submodule_imports():
    # Importing a submodule binds it as an attribute of the package; a submodule named like a
    # top-level function (fer/annotate.py once did) would silently replace that function.
    for module in pkgutil.iter_modules(fer.__path__):
        if module.name != "__main__":  # that one runs the CLI
            importlib.import_module(f"fer.{module.name}")

    for name in (
        "train",
        "evaluate",
        "predict_emotion",
        "predict_crop",
        "explain",
        "load_model",
        "build_model",
        "annotate",
        "analyze_video",
        "ensemble",
        "export",
    ):
        assert inspect.isfunction(getattr(fer, name)), name
    assert fer.EMOTIONS[3] == "happy"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fer.nope  # noqa: B018
    assert set(fer.__all__) <= set(dir(fer)) | set(fer._LAZY)
