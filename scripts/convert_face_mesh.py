"""Convert MediaPipe's face landmark network (.tflite) to the ONNX file the package ships, batch dimension dynamic.

    pip download --no-deps mediapipe==0.10.21 && unzip -j mediapipe-0.10.21-*.whl \
        mediapipe/modules/face_landmark/face_landmark.tflite -d fer/assets
    python -m tf2onnx.convert --tflite fer/assets/face_landmark.tflite --output /tmp/face_landmark.onnx --opset 17
    python scripts/convert_face_mesh.py /tmp/face_landmark.onnx fer/assets/face_landmark.onnx

tf2onnx fixes the batch size at the .tflite's 1; the faces of a photo or a chunk of video frames are meshed in one
call, so the inputs' and outputs' first dimension is made symbolic and the two Reshape targets' leading 1 becomes -1.
The outputs are checked equal to the fixed-batch file's, face by face.
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
import onnxruntime as ort


def dynamic_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with a symbolic batch dimension (inputs, outputs, Reshape targets)."""
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    del model.graph.value_info[:]  # shapes inferred with batch 1: ONNX Runtime infers them again
    targets = {node.input[1] for node in model.graph.node if node.op_type == "Reshape"}
    for tensor in model.graph.initializer:
        if tensor.name in targets:
            shape = onnx.numpy_helper.to_array(tensor).copy()
            if shape[0] == 1:
                shape[0] = 0 if -1 in shape else -1  # 0: copy the batch dimension (one -1 per shape at most)
            tensor.CopyFrom(onnx.numpy_helper.from_array(shape, tensor.name))
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="tf2onnx's conversion (batch 1)")
    parser.add_argument("target", help="where to write the dynamic-batch model")
    args = parser.parse_args()
    onnx.save(dynamic_batch(onnx.load(args.source)), args.target)
    fixed, dynamic = ort.InferenceSession(args.source), ort.InferenceSession(args.target)
    name = fixed.get_inputs()[0].name
    x = np.random.default_rng(0).random((5, *fixed.get_inputs()[0].shape[1:]), dtype=np.float32)
    one_by_one = [np.concatenate(parts) for parts in zip(*(fixed.run(None, {name: x[i : i + 1]}) for i in range(5)))]
    together = dynamic.run(None, {dynamic.get_inputs()[0].name: x})
    error = max(float(np.abs(a - b).max()) for a, b in zip(one_by_one, together))
    print(f"{args.target}: batch of 5 vs one by one, largest difference {error:.2g}")


if __name__ == "__main__":
    main()
