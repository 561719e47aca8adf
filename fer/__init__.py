"""fer: train, evaluate and use seven-class facial-emotion CNNs on 48x48 gray faces.

    from fer import predict_emotion
    predict_emotion("face48.png").emotion                 # a face crop
    [p.emotion for p in predict_emotion("group.jpg")]     # every face in a photo

Keras (and TensorFlow or JAX behind it) is imported only when a name that needs it is
first used, so `import fer` and the data utilities stay fast.
"""

from importlib import import_module

from fer import quiet
from fer.data import EMOTIONS, FaceSet, class_distribution, class_weights, data_dir, load_fer2013, load_split
from fer.errors import DataError, ImageError, ModelError

quiet.install()  # before anything imports TensorFlow (nothing above does): no absl/oneDNN lines on stderr

__version__ = "0.1.0"

_LAZY = {
    "predict_emotion": "fer.predict",
    "predict_emotions": "fer.predict",
    "predict_faces": "fer.predict",
    "predict_photos": "fer.predict",
    "annotate": "fer.drawing",
    "analyze_video": "fer.video",
    "load_model": "fer.predict",
    "Prediction": "fer.predict",
    "build_model": "fer.models",
    "train": "fer.training",
    "TrainConfig": "fer.training",
    "evaluate": "fer.evaluation",
    "ensemble": "fer.ensembling",
    "export": "fer.exporting",
    "Augmentation": "fer.augment",
}

__all__ = [
    "EMOTIONS",
    "DataError",
    "ImageError",
    "ModelError",
    "FaceSet",
    "class_distribution",
    "class_weights",
    "data_dir",
    "load_fer2013",
    "load_split",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fer' has no attribute {name!r}")
