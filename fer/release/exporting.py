"""Exporting a model for use outside Keras: ONNX (float32, float16, int8), LiteRT, SavedModel.

    python -m fer export --format onnx --out exported/           # the shipped model
    fer.export("models/fer_emotion.keras", "onnx", "exported/", quantize="int8")

Each export writes the model file and, beside it, `<name>.json`: what a user of the file needs
without this package (input name, shape, dtype and value range, class names in output order,
the preprocessing that turns a photo's face into the input, the source model and its PublicTest
accuracy). Keras 3 does the conversion itself (`model.export`); the training-only augmentation
layers are stripped first, since converters cannot express their random ops and they are the
identity at inference anyway.

Running an exported model: `fer.inference.onnx_model.OnnxModel` (ONNX Runtime); a path ending in `.onnx`
works wherever a model path is accepted. (The module is not called `export` so that it cannot
shadow the function `fer.export`.)
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import keras
import numpy as np

from fer.analysis.probabilities import classes_of, heads_of
from fer.data.classes import EMOTIONS
from fer.data.images import FACE_SIZE
from fer.errors import ModelError, optional_import
from fer.inference.cropping import DEFAULT_MARGIN
from fer.modeling.files import model_metadata

FORMATS = ("onnx", "litert", "saved_model")
QUANTIZATIONS = (None, "float16", "int8")
SUFFIX = {"onnx": ".onnx", "litert": ".tflite", "saved_model": ""}


def inference_model(model: keras.Model) -> keras.Model:
    """A copy of `model` without its training-only augmentation block, same weights and outputs.

    Nested models (ensemble members) are stripped too.
    """

    def clone(layer):
        if isinstance(layer, keras.Sequential) and layer.name == "augmentation":
            # A Sequential, like the block it replaces, so the graph can call it the same way.
            return keras.Sequential([keras.layers.Identity()], name=layer.name)
        if isinstance(layer, keras.Model):
            return inference_model(layer)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())  # augmentation layers hold no weights: the order matches
    return copy


def metadata(
    source: str | Path, accuracy: float | None = None, classes: tuple[str, ...] = EMOTIONS, heads=None, **extra
) -> dict:
    """What a user of an exported file needs to feed it and read its output (`classes`: the output order;
    `heads`: {label set: classes} of a dual-head model's outputs, in order)."""
    if heads and len(heads) > 1:
        extra["outputs"] = [
            {"name": name, "shape": [None, len(c)], "meaning": "softmax probabilities", "classes": list(c)}
            for name, c in heads.items()
        ]
    return {
        "source_model": str(source),
        "input": {
            "name": "face",
            "shape": [None, FACE_SIZE, FACE_SIZE, 1],
            "dtype": "float32",
            "range": "0..255 gray levels (no scaling: the model rescales inside)",
        },
        "output": {"shape": [None, len(classes)], "meaning": "softmax probabilities", "classes": list(classes)},
        "preprocessing": (
            f"face box from a detector grown by {DEFAULT_MARGIN:.0%} of its size on each side (square, "
            "edge-padded at the image border), gray by ITU-R 601 luma "
            f"(0.299 R + 0.587 G + 0.114 B), resized to {FACE_SIZE}x{FACE_SIZE} with area averaging "
            "(cv2.INTER_AREA), as float32 of shape (N, 48, 48, 1)"
        ),
        "publictest_accuracy_of_source": accuracy,
        "publictest_labels": "FER+ crowd majority" if len(classes) == 8 else "FER-2013",
        **extra,
    }


def _source_accuracy(path: Path) -> float | None:
    """PublicTest accuracy from the model's metrics file beside it (shipped models have one): against FER-2013's
    labels for a FER-2013 model, against the FER+ majority for a FER+ model (its card's headline)."""
    metrics = path.with_name(f"{path.stem}.metrics.json")
    if metrics.is_file():
        card = json.loads(metrics.read_text())
        return card.get("accuracy", card.get("ferplus", {}).get("accuracy"))
    return None


def _write_onnx(model: keras.Model, out: Path) -> None:
    model.predict(np.zeros((1, FACE_SIZE, FACE_SIZE, 1), np.float32), verbose=0)  # export needs a called model
    with warnings.catch_warnings():  # tf2onnx's own NumPy deprecation notices
        warnings.simplefilter("ignore", FutureWarning)
        model.export(str(out), format="onnx", verbose=False)
    # Name the input "face" and make the batch dimension dynamic, whatever the converter chose.
    import onnx

    proto = onnx.load(str(out))
    old = proto.graph.input[0].name
    if old != "face":
        proto.graph.input[0].name = "face"
        for node in proto.graph.node:
            node.input[:] = ["face" if name == old else name for name in node.input]
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(proto, str(out))


def calibration_faces(data: str | Path | None = None, n: int = 512, seed: int = 0) -> np.ndarray:
    """Training faces for int8 calibration (FER-2013 train if found, else the synthetic sample)."""
    from fer.data.loading import data_dir, load_split
    from fer.data.sample import make_sample
    from fer.errors import DataError

    try:
        faces = load_split(data_dir(data), "train")
    except DataError:
        faces = make_sample(max(n // len(EMOTIONS), 1), seed=seed)
    index = np.random.default_rng(seed).choice(len(faces), min(n, len(faces)), replace=False)
    return faces.images[np.sort(index)]


def _quantize_onnx(src: Path, dst: Path, how: str, calibration: np.ndarray | None) -> None:
    if how == "float16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        # keep_io_types: the file still takes and returns float32, so callers need not change.
        onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))
        return
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Faces(CalibrationDataReader):
        def __init__(self, faces: np.ndarray, batch: int = 64):
            x = faces[..., None].astype(np.float32)
            self.batches = iter([{"face": x[i : i + batch]} for i in range(0, len(x), batch)])

        def get_next(self):
            return next(self.batches, None)

    prepared = dst.with_name(f"{dst.stem}.prep.onnx")
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)  # static 48x48 shapes: not needed
    try:
        quantize_static(
            str(prepared),
            str(dst),
            Faces(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    finally:
        prepared.unlink(missing_ok=True)


def export(
    model: str | Path | None = None,
    format: str = "onnx",
    out_dir: str | Path = "exported",
    quantize: str | None = None,
    data: str | Path | None = None,
    name: str | None = None,
) -> Path:
    """Export a .keras emotion model (default: the shipped one); return the written file's path.

    format: "onnx", "litert" (.tflite) or "saved_model" (a folder). quantize (ONNX only):
    None (float32), "float16" (weights in float16, float32 in and out) or "int8" (static,
    calibrated on 512 training faces from `data`, else the synthetic sample).
    """
    from fer.inference.models import load_model
    from fer.modeling.files import default_model_path

    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; choose from {FORMATS}")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantization {quantize!r}; choose from {QUANTIZATIONS[1:]} or none")
    if quantize and format != "onnx":
        raise ValueError(f"quantize={quantize!r} is for ONNX exports; format {format!r} exports float32")
    if format == "onnx":  # Keras' ONNX export goes through tf2onnx and onnx; quantizing through ONNX Runtime
        how = "pip install -e '.[onnx]'"
        for package in ("tf2onnx", "onnx", *(("onnxruntime",) if quantize else ())):
            optional_import(package, "ONNX export" + (f" ({quantize})" if quantize else ""), how)
    source = Path(model) if model is not None else default_model_path()
    if source.suffix not in (".keras", ".json"):
        raise ModelError(
            f"{source}: export takes a .keras model file or a .json ensemble (got {source.suffix or 'no suffix'!r})"
        )
    keras_model = inference_model(load_model(source))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name or source.stem + (f"_{quantize}" if quantize else "")
    out = out_dir / f"{stem}{SUFFIX[format]}"
    if format == "onnx":
        if quantize:
            plain = out_dir / f".{stem}.float32.onnx"
            _write_onnx(keras_model, plain)
            try:
                _quantize_onnx(plain, out, quantize, calibration_faces(data) if quantize == "int8" else None)
            finally:
                plain.unlink(missing_ok=True)
        else:
            _write_onnx(keras_model, out)
    else:
        keras_model.predict(np.zeros((1, FACE_SIZE, FACE_SIZE, 1), np.float32), verbose=0)
        keras_model.export(str(out), format="litert" if format == "litert" else "tf_saved_model", verbose=False)
    info = metadata(
        source,
        _source_accuracy(source),
        classes=classes_of(keras_model),
        heads=heads_of(keras_model),
        format=format,
        quantization=quantize or "float32",
    )
    info["file"] = out.name
    info["size_mb"] = round(_size(out) / 2**20, 2)
    (out_dir / f"{stem}.json").write_text(json.dumps(info, indent=2))
    return out


def write_twin(
    model: str | Path | None = None,
    precision: str = "float32",
    data: str | Path | None = None,
    training_prior: dict | None = None,
) -> Path:
    """Write the ONNX twin of a `.keras` or `.json` model file (default: the shipped default) that inference runs
    instead of Keras: `onnx/<name>.onnx` beside it, with `onnx/<name>.json` recording the source's SHA-256 and its
    training prior (`training_prior`, else the one recorded beside the source: fer.modeling.files.model_metadata).
    precision="int8": its int8 twin `onnx/<name>.int8.onnx` (static, calibrated on 512 training faces of `data`)."""
    from fer.inference.onnx_model import source_digest, twin_path
    from fer.modeling.files import default_model_path

    if precision not in ("float32", "int8"):
        raise ValueError(f"precision must be 'float32' or 'int8', got {precision!r}")
    source = Path(model) if model is not None else default_model_path()
    twin = twin_path(source, precision)
    quantize = None if precision == "float32" else precision
    out = export(source, "onnx", twin.parent, name=twin.name[: -len(".onnx")], quantize=quantize, data=data)
    info_path = out.with_suffix(".json")
    info = json.loads(info_path.read_text())
    info["source_model"] = source.name
    info["source_sha256"] = source_digest(source)
    info["training_prior"] = training_prior or model_metadata(source).get("training_prior")  # what prior= re-weights
    engine = "'auto'" if precision == "float32" else "'int8'"
    info["twin_of"] = f"../{source.name}: run by ONNX Runtime wherever the package predicts with it (engine {engine})"
    info_path.write_text(json.dumps(info, indent=2))
    return out


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
