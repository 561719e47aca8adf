"""fer: train, evaluate and use facial-emotion CNNs on 48x48 gray faces (FER-2013's 7 classes, FER+'s 8).

    from fer import predict_crop, predict_emotion
    [p.emotion for p in predict_emotion("group.jpg")]     # every face in a photo
    predict_crop("face48.png").emotion                    # one face crop
    fer.model_classes()                                   # what the default model answers in

Every name is imported when first used, so `import fer` is fast and changes nothing in the process;
prediction needs only the core install (ONNX Runtime), training and evaluation the research extra.
"""

import os as _os
from importlib import import_module

__version__ = "0.5.0"

if _os.environ.get("FER_QUIET_KERNEL") == "1":  # a notebook kernel fer.pipeline started: TensorFlow's lines kept off
    from fer import quiet as _quiet

    _quiet.install()

_LAZY = {
    # Prediction (the core install)
    "predict_emotion": "fer.inference.predict",
    "predict_crop": "fer.inference.predict",
    "model_classes": "fer.inference.models",
    "load_model": "fer.inference.models",
    "Prediction": "fer.inference.predict",
    "Faces": "fer.inference.predict",
    "explain": "fer.inference.explain",
    "Explanation": "fer.inference.explain",
    "annotate": "fer.inference.drawing",
    "analyze_video": "fer.inference.video",
    "predict_dataset": "fer.pipeline.ray_predict",
    "EMOTIONS": "fer.data.classes",
    "FERPLUS_CLASSES": "fer.data.classes",
    "DataError": "fer.errors",
    "ImageError": "fer.errors",
    "ModelError": "fer.errors",
    "MissingPackageError": "fer.errors",
    # Data
    "FaceSet": "fer.data.loading",
    "class_distribution": "fer.data.loading",
    "class_weights": "fer.data.loading",
    "data_dir": "fer.data.loading",
    "load_fer2013": "fer.data.loading",
    "load_split": "fer.data.loading",
    "load_ferplus_split": "fer.data.ferplus",
    # Research (the research extra: Keras, scikit-learn, ...)
    "build_model": "fer.modeling.architectures",
    "train": "fer.modeling.training",
    "TrainConfig": "fer.modeling.config",
    "evaluate": "fer.analysis.evaluation",
    "ensemble": "fer.modeling.ensembling",
    "export": "fer.release.exporting",
    "Augmentation": "fer.data.augment",
}
# Deprecated in 0.4 (a DeprecationWarning for one release), removed in 0.5: asking for one says what to call.
_REMOVED = {
    "predict_emotions": "fer.predict_crop(images) (a list or an (N, 48, 48) array)",
    "predict_faces": "fer.predict_emotion(image)",
    "predict_photos": "fer.predict_emotion(list_of_photos) (an unreadable item gets `.error`, the rest go on)",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        try:
            module = import_module(_LAZY[name])
        except ModuleNotFoundError as exc:  # a research name in a core install: say what to install, in one line
            from fer.errors import research_extra_error

            raise (research_extra_error(f"fer.{name}", exc) or exc) from None
        value = getattr(module, name)
        globals()[name] = value  # looked up once
        return value
    if name in _REMOVED:
        raise AttributeError(f"fer.{name} was removed in 0.5 (deprecated since 0.4): use {_REMOVED[name]}")
    raise AttributeError(f"module 'fer' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})
