"""The package's exception types: each message says what is wrong, where, and what to do."""


class DataError(ValueError):
    """The data on disk is not what the loaders expect (layout, labels, CSV rows, empty split)."""


class ImageError(ValueError):
    """An image could not be read or has a shape we cannot interpret."""


class ModelError(RuntimeError):
    """The model file is missing, corrupt or not a FER emotion model."""


class CheckoutError(FileNotFoundError):
    """A research command needs the repository checkout (its notebooks, sweeps), which a plain install lacks."""


class MissingPackageError(ImportError):
    """An optional feature's package is not installed; the message is the one line that says what to install."""


def optional_import(module: str, feature: str, install: str):
    """`import module`, or MissingPackageError: "<feature> needs <module>: <install>" (one line, no traceback)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingPackageError(f"{feature} needs the {module.split('.')[0]} package: {install}") from exc


# The research stack (pyproject's `research` extra): what a core install lacks.
RESEARCH_MODULES = frozenset(
    {"keras", "tensorflow", "sklearn", "matplotlib", "seaborn", "mtcnn", "yaml", "papermill", "nbformat", "jax"}
)
RESEARCH_INSTALL = "pip install 'fer2013-emotion-cnn[research]' (in a clone: pip install -e '.[research]')"


def research_extra_error(feature: str, exc: ModuleNotFoundError) -> MissingPackageError | None:
    """The one-line MissingPackageError for `feature` when `exc` is a research-stack module missing, else None."""
    missing = (exc.name or "").split(".")[0]
    if missing not in RESEARCH_MODULES:
        return None
    return MissingPackageError(f"{feature} needs the research extra ({missing} is not installed): {RESEARCH_INSTALL}")
