"""fer: train, evaluate and use facial-emotion CNNs on 48x48 gray faces (FER-2013's 7 classes, FER+'s 8).

    from fer import predict_crop, predict_emotion
    [p.emotion for p in predict_emotion("group.jpg")]     # every face in a photo
    predict_crop("face48.png").emotion                    # one face crop

Keras (and TensorFlow or JAX behind it) is imported only when a name that needs it is
first used, so `import fer` and the data utilities stay fast.
"""

from importlib import import_module

from fer import quiet
from fer.data.ferplus import FERPLUS_CLASSES, load_ferplus_split
from fer.data.loading import EMOTIONS, FaceSet, class_distribution, class_weights, data_dir, load_fer2013, load_split
from fer.errors import DataError, ImageError, ModelError

quiet.install()  # before anything imports TensorFlow (nothing above does): no absl/oneDNN lines on stderr

__version__ = "0.3.0"

_LAZY = {
    "predict_emotion": "fer.inference.predict",
    "predict_crop": "fer.inference.predict",
    "predict_emotions": "fer.inference.predict",
    "predict_faces": "fer.inference.predict",
    "predict_photos": "fer.inference.predict",
    "annotate": "fer.inference.drawing",
    "analyze_video": "fer.inference.video",
    "load_model": "fer.inference.predict",
    "Prediction": "fer.inference.predict",
    "build_model": "fer.modeling.architectures",
    "train": "fer.modeling.training",
    "TrainConfig": "fer.modeling.training",
    "evaluate": "fer.analysis.evaluation",
    "ensemble": "fer.modeling.ensembling",
    "export": "fer.inference.exporting",
    "Augmentation": "fer.data.augment",
}

__all__ = [
    "EMOTIONS",
    "FERPLUS_CLASSES",
    "load_ferplus_split",
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
