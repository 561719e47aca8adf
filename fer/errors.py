"""The package's exception types: each message says what is wrong, where, and what to do."""


class DataError(ValueError):
    """The data on disk is not what the loaders expect (layout, labels, CSV rows, empty split)."""


class ImageError(ValueError):
    """An image could not be read or has a shape we cannot interpret."""


class ModelError(RuntimeError):
    """The model file is missing, corrupt or not a FER emotion model."""
