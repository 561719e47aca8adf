"""The class names of the two label sets: FER-2013's seven emotions and FER+'s eight (no pandas: prediction uses it)."""

from __future__ import annotations

# Alphabetical, the order Keras' directory loaders use, so folder-trained models agree.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
# FER+'s eight: FER-2013's seven and contempt, alphabetical as well.
FERPLUS_CLASSES: tuple[str, ...] = ("angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def classes_for_size(n_outputs: int) -> tuple[str, ...] | None:
    """The class list of a model with `n_outputs` outputs: FER-2013's 7 emotions, FER+'s 8, else None."""
    return {len(EMOTIONS): EMOTIONS, len(FERPLUS_CLASSES): FERPLUS_CLASSES}.get(int(n_outputs))
