"""Running an exported `.onnx` emotion model with ONNX Runtime, behind the part of the Keras
model interface that the package uses (`predict_on_batch`, `predict`, shapes, `count_params`),
so `predict_emotion`, `evaluate`, the CLI and video analysis take an `.onnx` path unchanged.

ONNX Runtime is an optional extra: `pip install -e ".[onnx]"`. `ExportedModel` is the part
every runner of an exported file shares (fer.inference.litert_model.LiteRTModel too).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fer.errors import ModelError


class ExportedModel:
    """What every exported-model runner shares: Keras-style batched `predict` over `predict_on_batch`."""

    path: Path
    output_shape: tuple

    def predict_on_batch(self, x) -> np.ndarray:
        raise NotImplementedError

    def predict(self, x, batch_size: int = 256, verbose=0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        parts = [self.predict_on_batch(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.output_shape[-1]), np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path})"


class OnnxModel(ExportedModel):
    """An ONNX Runtime session that predicts like a Keras emotion model: (N, 48, 48, 1) 0..255 -> (N, 7)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError(
                f"{path}: running .onnx models needs ONNX Runtime: pip install -e '.[onnx]' (or onnxruntime)"
            ) from exc
        self.path = Path(path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
        options.intra_op_num_threads = threads or os.cpu_count() or 1
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
        self.output_shape = tuple(None if not isinstance(d, int) else d for d in outputs[0].shape)
        self.name = self.path.stem

    def predict_on_batch(self, x) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def count_params(self) -> int:
        import onnx

        return int(sum(np.prod(t.dims) for t in onnx.load(str(self.path)).graph.initializer))
