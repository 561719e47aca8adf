"""Running an `.onnx` emotion model with ONNX Runtime, behind the part of the Keras model interface
that the package uses (`predict_on_batch`, `predict`, shapes, `count_params`), and finding a
model's ONNX twin: the same network exported beside it, which inference runs instead of Keras.

A twin of `models/x.keras` (or of an ensemble `models/x.json`) is `models/onnx/x.onnx`, with
`models/onnx/x.json` saying which file it was made from (its SHA-256): a twin whose source has
changed since is stale and never used; `x.int8.onnx` is its statically quantized int8 twin (engine
"int8"). `python -m fer ship` writes twins; `python -m fer export --twin --model M [--quantize int8]`
writes one for any model. ONNX Runtime is a core dependency; writing twins needs the `onnx` extra
(tf2onnx). `ExportedModel` is the part every runner of an exported file shares
(fer.inference.litert_model.LiteRTModel too).
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from fer.errors import ModelError

TWIN_FOLDER = "onnx"


def twin_path(source: str | Path, precision: str = "float32") -> Path:
    """Where the ONNX twin of a `.keras` or `.json` model file lives: `onnx/<stem>.onnx` beside it (float32),
    `onnx/<stem>.int8.onnx` for its int8 twin."""
    source = Path(source)
    return source.parent / TWIN_FOLDER / f"{source.stem}{'' if precision == 'float32' else '.' + precision}.onnx"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _cached_digest(path: str, mtime: float, size: int) -> str:
    return _file_digest(Path(path))


def source_digest(source: str | Path) -> str:
    """SHA-256 of a model file; of an ensemble `.json`, of the spec and every member file it lists."""
    source = Path(source)
    stat = source.stat()
    digest = _cached_digest(str(source.resolve()), stat.st_mtime, stat.st_size)
    if source.suffix != ".json":
        return digest
    try:
        members = json.loads(source.read_text())["members"]
    except (ValueError, KeyError, TypeError):
        return digest  # not an ensemble spec: load_network says what is wrong
    parts = [digest]
    for member in members:
        member_path = source.parent / member
        parts.append(source_digest(member_path) if member_path.is_file() else "missing")
    return hashlib.sha256(" ".join(parts).encode()).hexdigest()


def _made_from(twin: Path, source: Path) -> bool:
    """Whether `twin`'s JSON records exactly `source`'s SHA-256."""
    info = twin.with_suffix(".json")
    if not (twin.is_file() and info.is_file()):
        return False
    try:
        recorded = json.loads(info.read_text()).get("source_sha256")
    except ValueError:
        return False
    return recorded == source_digest(source)


def fresh_twin(source: str | Path, precision: str = "float32") -> Path | None:
    """The ONNX twin of `source` if there is one made from exactly this file (else None: stale or missing):
    `onnx/<stem>.onnx` beside it, or the package's own default twin when `source` is the default's Keras file."""
    from fer.modeling.files import packaged_default

    source = Path(source)
    if not source.is_file():
        return None
    for twin in (twin_path(source, precision), packaged_default(precision)):
        if _made_from(twin, source):
            return twin
    return None


class ExportedModel:
    """What every exported-model runner shares: Keras-style batched `predict` over `predict_on_batch`."""

    path: Path
    output_shape: tuple

    def predict_on_batch(self, x) -> np.ndarray:
        raise NotImplementedError

    def predict(self, x, batch_size: int = 256, verbose=0):
        x = np.asarray(x, dtype=np.float32)
        parts = [self.predict_on_batch(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        if isinstance(self.output_shape, list):  # several outputs: each concatenated over the batches
            return [
                np.concatenate([p[k] for p in parts]) if parts else np.zeros((0, s[-1]), np.float32)
                for k, s in enumerate(self.output_shape)
            ]
        return np.concatenate(parts) if parts else np.zeros((0, self.output_shape[-1]), np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path})"


# Threads per ONNX Runtime session where no `threads` is given (default: every core). A worker that shares the
# machine with others sets it to its own share (fer.pipeline.ray_predict's actors: their CPUs).
THREADS_ENV = "FER_THREADS"


class OnnxModel(ExportedModel):
    """An ONNX Runtime session that predicts like a Keras emotion model: (N, 48, 48, 1) 0..255 -> (N, 7 or 8)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError(
                f"{path}: running .onnx models needs ONNX Runtime: pip install onnxruntime (a core dependency: "
                "reinstall the project with `make setup`)"
            ) from exc
        self.path = Path(path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
        options.intra_op_num_threads = threads or int(os.environ.get(THREADS_ENV, 0)) or os.cpu_count() or 1
        # No busy-waiting between runs: it would take the cores from face detection running between them.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own types for corrupt or invalid graphs
            raise ModelError(
                f"{self.path}: not a loadable ONNX model ({type(exc).__name__}: {str(exc)[:200]}). "
                "Re-export it with `python -m fer export`."
            ) from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_name = inputs[0].name
        self.input_shape = tuple(None if not isinstance(d, int) else d for d in inputs[0].shape)
        shapes = [tuple(None if not isinstance(d, int) else d for d in out.shape) for out in outputs]
        # A dual-head model has two outputs (FER+, FER-2013), as its Keras model does: a list of shapes then.
        self.output_shape = shapes[0] if len(shapes) == 1 else shapes
        self.name = self.path.stem
        from fer.modeling.files import model_metadata

        self.training_prior = model_metadata(self.path).get("training_prior")  # what prior= re-weights against

    def predict_on_batch(self, x):
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return out[0] if len(out) == 1 else out

    def count_params(self) -> int:
        from fer.errors import optional_import

        onnx = optional_import("onnx", "counting an ONNX model's parameters", "pip install -e '.[onnx]'")

        return int(sum(np.prod(t.dims) for t in onnx.load(str(self.path)).graph.initializer))
