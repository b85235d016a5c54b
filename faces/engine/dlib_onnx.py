"""Convert dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`) to ONNX.

The network is the one of dlib's `dnn_face_recognition_ex.cpp` (`anet_type`): a 7x7/2 stem,
max-pool 3x3/2, then residual levels of 32, 64, 128, 256 and 256 filters, a global average and a
128-d fully connected layer without bias. The `.dat` holds it layer by layer from the input up;
we read only what carries weights, in file order:

- `con_4`: a tensor (version, four packed ints, raw little-endian float32: filters OIHW then biases),
  then num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x as packed ints;
- `affine_`: a tensor of gamma then beta (one per channel), folded into the convolution before it;
- `fc_2`: num_outputs, num_inputs, then a tensor of weights laid out (num_inputs, num_outputs).

Each convolution's header is checked against the architecture below, so a different file fails
loudly instead of producing a wrong graph. dlib's `add_prev` sums tensors of different shapes by
padding the smaller with zeros after its end (channels, rows and columns); the graph does the same
with static `Pad`s where a downsampling block's shortcut and main path differ (e.g. 3x3 vs 4x4).

The graph takes (n, 150, 150, 3) uint8 BGR chips, dlib's `get_face_chip` output at padding 0.25, and
returns the raw (unnormalised) 128-d descriptors, equal to `dlib.compute_face_descriptor`'s.

`python -m faces.engine.dlib_onnx [WEIGHTS_DIR]` writes the graph (idempotent; the install path
and the Docker build run it, and the embedder runs it lazily on first use).
"""

from __future__ import annotations

import functools
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faces.engine.converted import converted_once

SOURCE_NAME = "dlib_face_recognition_resnet_model_v1.dat"
INPUT_SIZE = 150
# dlib's input_rgb_image_sized: (pixel - mean) / 256, per channel, means in R, G, B order.
RGB_MEAN = (122.782, 117.001, 104.298)
INPUT_SCALE = 1.0 / 256.0  # exact in float32: same result as dlib's division
# Bump when the graph built from the same .dat changes, so old files are not reused.
CONVERTER_VERSION = 1
OPSET = 17


# ---- dlib's serialisation ------------------------------------------------------------------------

class DatFormatError(ValueError):
    pass


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def packed_int(self) -> int:
        """dlib's integer: a control byte (low 4 bits: byte count, 0x80: negative), little endian bytes."""
        control = self.data[self.pos]
        size = control & 0x0F
        if size > 8:
            raise DatFormatError(f"bad packed integer at byte {self.pos}")
        raw = self.data[self.pos + 1 : self.pos + 1 + size]
        self.pos += 1 + size
        value = int.from_bytes(raw, "little")
        return -value if control & 0x80 else value

    def tensor(self) -> np.ndarray:
        version = self.packed_int()
        if version != 2:
            raise DatFormatError(f"tensor version {version} at byte {self.pos}, expected 2")
        shape = tuple(self.packed_int() for _ in range(4))
        count = int(np.prod(shape))
        end = self.pos + 4 * count
        if count <= 0 or end > len(self.data):
            raise DatFormatError(f"bad tensor shape {shape} at byte {self.pos}")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos = end
        return values.reshape(shape)

    def seek_tag(self, tags: tuple[bytes, ...]) -> bytes | None:
        """Move past the next length-prefixed layer name among `tags`; None at the end of the file."""
        best, best_at = None, -1
        for tag in tags:
            at = self.data.find(bytes([len(tag)]) + tag, self.pos)
            if at >= 0 and (best_at < 0 or at < best_at):
                best, best_at = tag, at
        if best is None:
            return None
        self.pos = best_at + 1 + len(best)
        return best


@dataclass
class Conv:
    weight: np.ndarray  # (out, in, kh, kw)
    bias: np.ndarray  # (out,)
    stride: int
    padding: int


@dataclass
class DlibResNet:
    convs: list[Conv]  # affine layers already folded in
    fc: np.ndarray  # (inputs, outputs)


def _block_specs() -> list[tuple[int, int]]:
    """(filters, stride) of the first convolution of each residual block, input side first."""
    specs = [(32, 1)] * 3
    specs += [(64, 2)] + [(64, 1)] * 3
    specs += [(128, 2)] + [(128, 1)] * 2
    specs += [(256, 2)] + [(256, 1)] * 2
    specs += [(256, 2)]
    return specs


def _expected_convs() -> list[tuple[int, int, int]]:
    """(filters, kernel, stride) of every convolution in file order."""
    expected = [(32, 7, 2)]
    for filters, stride in _block_specs():
        expected += [(filters, 3, stride), (filters, 3, 1)]
    return expected


def parse_dat(data: bytes) -> DlibResNet:
    reader = _Reader(data)
    convs: list[Conv] = []
    pending: Conv | None = None
    fc = None
    while True:
        tag = reader.seek_tag((b"con_4", b"affine_", b"fc_2"))
        if tag is None:
            break
        if tag == b"con_4":
            params = reader.tensor().reshape(-1)
            filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (reader.packed_int() for _ in range(7))
            if nr != nc or stride_y != stride_x or pad_y != pad_x:
                raise DatFormatError("only square kernels, strides and paddings are expected")
            inputs, rest = divmod(params.size - filters, filters * nr * nc)
            if rest:
                raise DatFormatError(f"con_4 with {params.size} parameters does not fit {filters} filters")
            weight = params[: filters * inputs * nr * nc].reshape(filters, inputs, nr, nc)
            pending = Conv(weight=weight, bias=params[filters * inputs * nr * nc :].copy(), stride=stride_y,
                           padding=pad_y)
        elif tag == b"affine_":
            params = reader.tensor().reshape(-1)
            if pending is None or params.size != 2 * pending.weight.shape[0]:
                raise DatFormatError("an affine layer that does not follow a convolution of its width")
            gamma, beta = params[: params.size // 2], params[params.size // 2 :]
            # affine(conv(x)) = gamma * (W x + b) + beta, per output channel.
            pending.weight = (pending.weight * gamma[:, None, None, None]).astype(np.float32)
            pending.bias = (pending.bias * gamma + beta).astype(np.float32)
            convs.append(pending)
            pending = None
        else:
            outputs, inputs = reader.packed_int(), reader.packed_int()
            fc = reader.tensor().reshape(-1)
            if fc.size != inputs * outputs:
                raise DatFormatError(f"fc_2 with {fc.size} weights for {inputs}x{outputs}")
            fc = fc.reshape(inputs, outputs)
            break
    if pending is not None or fc is None:
        raise DatFormatError("the file ends before the fully connected layer")
    got = [(conv.weight.shape[0], conv.weight.shape[2], conv.stride) for conv in convs]
    if got != _expected_convs():
        raise DatFormatError("the convolutions do not match dlib's face-recognition ResNet")
    for conv in convs:
        expected_padding = 0 if conv.stride != 1 else conv.weight.shape[2] // 2
        if conv.padding != expected_padding:
            raise DatFormatError(f"unexpected convolution padding {conv.padding}")
    return DlibResNet(convs=convs, fc=fc)


# ---- ONNX graph ----------------------------------------------------------------------------------

def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return 1 + (size + 2 * padding - kernel) // stride


class _GraphBuilder:
    def __init__(self):
        self.nodes = []
        self.initializers = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, prefix: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name=name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        from onnx import helper

        output = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def conv(self, x: str, conv: Conv, *, relu: bool) -> str:
        kernel = conv.weight.shape[2]
        y = self.node(
            "Conv", [x, self.const("w", conv.weight), self.const("b", conv.bias)],
            kernel_shape=[kernel, kernel], strides=[conv.stride] * 2, pads=[conv.padding] * 4,
        )
        return self.node("Relu", [y]) if relu else y

    def pad_to(self, x: str, shape: tuple[int, int, int], target: tuple[int, int, int]) -> str:
        """Zeros after the end of each of (channels, rows, columns): dlib's add_prev rule."""
        extra = [t - s for s, t in zip(shape, target, strict=True)]
        if not any(extra):
            return x
        pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
        return self.node("Pad", [x, self.const("pads", pads)], mode="constant")


def build_onnx(net: DlibResNet):
    """The ONNX model for a parsed network (uint8 BGR NHWC in, raw 128-d descriptors out)."""
    from onnx import TensorProto, checker, helper

    g = _GraphBuilder()
    x = g.node("Cast", ["chips_bgr"], to=TensorProto.FLOAT)
    x = g.node("Transpose", [x], perm=[0, 3, 1, 2])
    bgr_mean = np.array(RGB_MEAN[::-1], dtype=np.float32).reshape(1, 3, 1, 1)
    x = g.node("Sub", [x, g.const("mean", bgr_mean)])
    x = g.node("Mul", [x, g.const("scale", np.array(INPUT_SCALE, dtype=np.float32))])

    convs = list(net.convs)
    stem = convs.pop(0)
    # The graph sees BGR; dlib's stem filters take RGB, so reverse their input channels (exact).
    stem = Conv(weight=np.ascontiguousarray(stem.weight[:, ::-1]), bias=stem.bias, stride=stem.stride,
                padding=stem.padding)
    x = g.conv(x, stem, relu=True)
    size = _out_size(INPUT_SIZE, 7, 2, 0)
    x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    size = _out_size(size, 3, 2, 0)
    channels = stem.weight.shape[0]

    for filters, stride in _block_specs():
        first, second = convs.pop(0), convs.pop(0)
        y = g.conv(x, first, relu=True)
        y = g.conv(y, second, relu=False)
        if stride == 1:
            block_shape = shortcut_shape = (filters, size, size)
            shortcut = x
        else:
            block_size = _out_size(size, 3, stride, 0)
            pooled_size = _out_size(size, 2, 2, 0)
            shortcut = g.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
            block_shape = (filters, block_size, block_size)
            shortcut_shape = (channels, pooled_size, pooled_size)
        target = tuple(max(a, b) for a, b in zip(block_shape, shortcut_shape, strict=True))
        y = g.pad_to(y, block_shape, target)
        shortcut = g.pad_to(shortcut, shortcut_shape, target)
        x = g.node("Relu", [g.node("Add", [y, shortcut])])
        channels, size = target[0], target[1]

    x = g.node("GlobalAveragePool", [x])
    x = g.node("Flatten", [x], axis=1)
    out = g.node("MatMul", [x, g.const("fc", net.fc.astype(np.float32))])
    g.nodes.append(helper.make_node("Identity", [out], ["descriptors"], name="descriptors"))

    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips_bgr", TensorProto.UINT8, ["n", INPUT_SIZE, INPUT_SIZE, 3])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["n", net.fc.shape[1]])],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="faceportal.dlib_onnx")
    model.ir_version = 8  # readable by onnxruntime >= 1.15
    checker.check_model(model)
    return model


# ---- files ---------------------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    """Hashed once per file version per process: every engine thread's session asks for it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()




def onnx_name(source_sha256: str) -> str:
    return f"dlib_resnet_v1.{source_sha256[:16]}.c{CONVERTER_VERSION}.onnx"


def source_path() -> Path:
    from faces.engine.weights import packaged_dlib_file

    return packaged_dlib_file(SOURCE_NAME)


def ensure_onnx(weights_dir: Path, *, source: Path | None = None) -> Path:
    """The converted graph in `weights_dir`, converting once per source file (by its SHA-256)."""
    source = Path(source or source_path())
    return converted_once(source=source, target=Path(weights_dir) / onnx_name(file_sha256(source)),
                          build=lambda path: build_onnx(parse_dat(path.read_bytes())))


def main(argv: list[str]) -> int:
    from faces.engine.config import deepface_home, weights_dir

    directory = weights_dir(argv[0] if argv else deepface_home())
    source = source_path()
    target = directory / onnx_name(file_sha256(source))
    if not target.exists():
        ensure_onnx(directory, source=source)
        print(f"converted {source.name} to {target}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    raise SystemExit(main(sys.argv[1:]))
