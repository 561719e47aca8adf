"""Test helpers that test modules import: skipping (or, in CI, failing) on what is missing."""

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip on a developer's machine; in CI (CI=true) a missing dependency or dataset fails the run."""
    if IN_CI:
        pytest.fail(f"CI must run this test: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str):
    """`pytest.importorskip`, except that in CI a missing optional test dependency is a failure."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        skip_or_fail(f"{module} not importable ({error}); install the dev extra: pip install -e '.[dev]'")
