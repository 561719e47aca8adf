"""Make the shipped BlazeFace ONNX file take any input height and width (its small-face pass reads larger inputs).

    python -m tf2onnx.convert --tflite fer/assets/blazeface_short_range.tflite --output /tmp/bf.onnx --opset 17
    python scripts/convert_blazeface.py /tmp/bf.onnx fer/assets/blazeface_short_range.onnx

The network is fully convolutional and its Reshape targets are already (1, -1, 16) and (1, -1, 1), so only the
input's height and width and the outputs' anchor count become symbolic. Checked here: at 128x128 the outputs equal
the fixed-size file's; a 160x256 input gives an anchor per cell of its own grid.
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
import onnxruntime as ort


def dynamic_size(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with a symbolic input height and width and a symbolic anchor count in its outputs."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_param, dims[2].dim_param = "H", "W"
    for value in model.graph.output:
        value.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del model.graph.value_info[:]  # shapes inferred for 128x128: ONNX Runtime infers them again
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="tf2onnx's conversion (128x128 input)")
    parser.add_argument("target", help="where to write the any-size model")
    args = parser.parse_args()
    onnx.save(dynamic_size(onnx.load(args.source)), args.target)
    fixed, dynamic = ort.InferenceSession(args.source), ort.InferenceSession(args.target)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    error = max(
        float(np.abs(a - b).max()) for a, b in zip(fixed.run(None, {"input": x}), dynamic.run(None, {"input": x}))
    )
    print(f"{args.target}: 128x128 outputs vs the fixed-size file's, largest difference {error:.2g}")
    wide = np.random.default_rng(1).uniform(-1, 1, (1, 160, 256, 3)).astype(np.float32)
    shapes = [o.shape for o in dynamic.run(None, {"input": wide})]
    print(f"a 160x256 input gives outputs {shapes} (20x32 cells x 2 + 10x16 cells x 6 anchors)")


if __name__ == "__main__":
    main()
