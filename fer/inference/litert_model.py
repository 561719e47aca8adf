"""Running an exported `.tflite` (LiteRT) emotion model behind the part of the Keras model
interface that the package uses (`predict_on_batch`, `predict`, shapes), so `predict_emotion`,
`evaluate`, the CLI and video analysis take a `.tflite` path unchanged: the check that the file
a phone app will run gives the Keras model's answers.

The runtime is Google's `ai-edge-litert` package (`pip install -e ".[litert]"`); without it,
TensorFlow's own `tf.lite.Interpreter` (deprecated, but still in TensorFlow 2.21) runs the file.
"""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from fer.errors import ModelError
from fer.inference.onnx_model import ExportedModel
from fer.quiet import stderr_silenced, verbose


def interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        except (ImportError, AttributeError) as exc:
            raise ModelError(
                "running .tflite models needs the LiteRT runtime: pip install -e '.[litert]' (or ai-edge-litert)"
            ) from exc
    return Interpreter


class LiteRTModel(ExportedModel):
    """A LiteRT interpreter that predicts like a Keras emotion model: (N, 48, 48, 1) 0..255 -> (N, 7)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        Interpreter = interpreter_class()
        try:
            # The runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate" from C++ on first use.
            with nullcontext() if verbose() else stderr_silenced(), warnings.catch_warnings():
                # tf.lite.Interpreter (the fallback) warns that it is deprecated on every construction.
                warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
                self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads or os.cpu_count() or 1)
                self.interpreter.allocate_tensors()
        except Exception as exc:  # the runtime raises ValueError/RuntimeError for corrupt flatbuffers
            raise ModelError(
                f"{self.path}: not a loadable LiteRT model ({type(exc).__name__}: {str(exc)[:200]}). "
                "Re-export it with `python -m fer export --format litert`."
            ) from exc
        inp, out = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        self._input, self._output = inp["index"], out["index"]
        # shape_signature has -1 for the batch axis of a Keras export: report it as None like Keras.
        self.input_shape = tuple(None if d < 0 else int(d) for d in inp.get("shape_signature", inp["shape"]))
        self.output_shape = tuple(None if d < 0 else int(d) for d in out.get("shape_signature", out["shape"]))
        self._batch = int(inp["shape"][0])
        self.name = self.path.stem

    def predict_on_batch(self, x) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if len(x) != self._batch:  # the interpreter's tensors have a fixed size: resize for a new batch size
            self.interpreter.resize_tensor_input(self._input, list(x.shape))
            self.interpreter.allocate_tensors()
            self._batch = len(x)
        self.interpreter.set_tensor(self._input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output).copy()
