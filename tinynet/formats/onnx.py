"""Import MobileNets from ONNX files, read with tinynet's own protobuf decoder (protobuf.py).

    model = tinynet.load("mobilenet_v3_small.onnx")

The graph is not run: it is recognised. Its nodes are walked in order and folded into a chain of
tinynet layers (a convolution with the BatchNormalization, activation, squeeze-excite and residual
Add that follow it), and the chain must then match one of tinynet's architecture tables exactly:
kernel sizes, strides, activations, squeeze-excite and residuals. A graph that computes anything
else is refused, naming the first node that does not fit.

Operators: Conv (float32, ``group`` 1 or depthwise; ``pads``, ``auto_pad``, or a Pad before it),
BatchNormalization, Relu, Clip(0, 6) (min/max as attributes before opset 11, as inputs from 11),
HardSwish, x * HardSigmoid(x), HardSigmoid(alpha 1/6) as the squeeze-excite gate, Add, Mul,
GlobalAveragePool, ReduceMean over H and W (axes as an attribute before opset 18, as an input from
18), Gemm, Flatten, Reshape, Squeeze, Identity, Dropout, Constant; opsets 7 to 18. Initializers in
``raw_data``, ``float_data`` or external data files; an external file must lie in the model's folder.

ONNX models from PyTorch take NCHW input; tinynet's runtime takes NHWC and reorders the weights.
Padding: symmetric ``k // 2`` is PyTorch's ("symmetric"); SAME_UPPER, or the explicit (0, 1) / (1, 2)
pads tf2onnx writes for stride-2 convs at even input sizes, is TensorFlow's ("tf_same").
"""
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinynet.architectures import ARCHITECTURES, rows
from tinynet.errors import UnsupportedModelError, WeightsError
from tinynet.formats.fold import fold_batchnorm, to_runtime_layout
from tinynet.formats.protobuf import Message
from tinynet.model import Model
from tinynet.spec import check_weights, layers_for_weights

MODEL_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72}  # ModelProto fields 2..8 and 14, length or varint keys
OPSETS = range(7, 19)
FLOAT, INT64, INT32, DOUBLE = 1, 7, 6, 11
NUMPY = {FLOAT: "<f4", INT64: "<i8", INT32: "<i4", DOUBLE: "<f8"}
MAX_DIMS, MAX_ELEMENTS = 8, 1 << 28
MAX_FILE_BYTES = 2 << 30  # protobuf's own limit for one message
MAX_EXTERNAL_BYTES = 1 << 30
SIXTH = 1 / 6
ARITY = {"Conv": (2, 3), "Gemm": (2, 3), "BatchNormalization": (5, 5), "Add": (2, 2), "Mul": (2, 2), "Reshape": (2, 2),
         "Constant": (0, 0), "Pad": (1, 3), "Clip": (1, 3), "ReduceMean": (1, 2), "Dropout": (1, 3), "Squeeze": (1, 2)}
# (fewest, most) inputs of each operator; the first ``fewest`` must be given. Others take exactly one.


def looks_like_onnx(head):
    """Whether the first bytes look like an ONNX ModelProto: field 1 (ir_version, a small varint) first,
    then another ModelProto field."""
    return len(head) >= 3 and head[0] == 0x08 and 3 <= head[1] <= 20 and head[2] in MODEL_TAGS


@dataclass
class Op:
    """One tinynet layer as recognised in the graph (weights in ONNX layout until ``runtime``)."""
    kind: str  # "conv" | "dw" | "pw" | "pool" | "fc"
    node: str  # the ONNX node it starts at, for messages
    w: np.ndarray = None
    b: np.ndarray = None
    k: int = 1
    stride: int = 1
    padding: str = "any"  # "symmetric", "tf_same", or "any" (1x1, or stride 1 with symmetric pads)
    act: str = None
    bn: tuple = None  # (gamma, beta, mean, var, eps)
    se: tuple = None  # (reduce w, reduce b, expand w, expand b), ONNX layout
    residual_from: int = None  # index of the op whose output the residual Add adds
    transposed: bool = False  # fc from Gemm with transB=0: w is already (in, out)


@dataclass
class Value:
    """What a graph tensor is, symbolically."""
    kind: str  # "image" | "op" | "pooled" | "const" | "hsig" | "padded" | "gap" | "se1" | "se1r" | "se2" | "gate"
    op: int = None
    array: np.ndarray = None
    extra: tuple = None


def load(path, arch=None):
    """A tinynet Model from the ONNX file at ``path``; ``arch`` must agree with the graph if given."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise WeightsError(f"{size} bytes is more than an ONNX file can hold")
    proto = Message(path.read_bytes(), what="ONNX model")
    graph = proto.message(7, "ONNX graph")
    if graph is None:
        raise WeightsError("the ONNX model has no graph")
    reader = _Graph(graph, _opset(proto), path.parent)
    ops = reader.walk()
    padding = reader.padding(ops)
    for candidate in [arch] if arch is not None else ARCHITECTURES:
        model = _match(candidate, ops, padding)
        if model is not None:
            model.meta.update({"source": f"onnx:{path.name}", **reader.meta(model)})
            return model
    raise UnsupportedModelError(f"the ONNX graph ({_describe(ops)}) matches no MobileNet tinynet runs"
                                + (f" as {arch}" if arch else ""))


def _opset(proto):
    versions = [m.int(2) for m in proto.messages(8, "opset_import") if m.string(1) in ("", "ai.onnx")]
    if not versions:
        raise WeightsError("the ONNX model declares no opset of the default domain")
    if versions[0] not in OPSETS:
        raise UnsupportedModelError(f"ONNX opset {versions[0]}: tinynet reads opsets {OPSETS.start} to {OPSETS.stop - 1}")
    return versions[0]


class _Graph:
    def __init__(self, graph, opset, folder):
        self.graph, self.opset, self.folder = graph, opset, folder.resolve()
        self.external_bytes = 0
        self.values = {}
        for tensor in graph.messages(5, "initializer"):
            name = tensor.string(8)
            self.values[name] = Value("const", array=self.tensor(tensor, name))
        inputs = [v for v in graph.messages(11, "graph input") if v.string(1) not in self.values]
        if len(inputs) != 1:
            raise UnsupportedModelError(f"the ONNX graph has {len(inputs)} inputs besides its weights; a classifier has 1")
        self.input_name, self.input_shape = inputs[0].string(1), _shape(inputs[0])
        self.values[self.input_name] = Value("image")
        self.nodes = graph.messages(1, "node")
        self.ops = []

    # ---- tensors -------------------------------------------------------------------------------------

    def tensor(self, t, name):
        dims = t.ints(1)
        if len(dims) > MAX_DIMS or any(d < 0 for d in dims) or math.prod(dims) > MAX_ELEMENTS:
            raise WeightsError(f"tensor {name[:80]!r} has dimensions {dims[:MAX_DIMS + 1]}")
        dtype = t.int(2)
        if dtype not in NUMPY:
            raise UnsupportedModelError(f"tensor {name[:80]!r} has ONNX data type {dtype}; tinynet reads float32 models")
        count, itemsize = math.prod(dims), np.dtype(NUMPY[dtype]).itemsize
        if t.int(14) == 1:  # data_location EXTERNAL
            data = self.external(t, name, count * itemsize)
        elif t.fields.get(9):
            data = t.bytes(9)
        elif dtype == FLOAT:
            array = t.floats(4)
            if array.size != count:
                raise WeightsError(f"tensor {name[:80]!r} holds {array.size} float_data values for shape {dims}")
            return array.reshape(dims)
        elif dtype in (INT64, INT32):
            values = t.ints(7 if dtype == INT64 else 5)
            if len(values) != count:
                raise WeightsError(f"tensor {name[:80]!r} holds {len(values)} values for shape {dims}")
            return np.array(values, np.int64).reshape(dims)
        else:
            data = b""
        if len(data) != count * itemsize:
            raise WeightsError(f"tensor {name[:80]!r} holds {len(data)} bytes; shape {dims} needs {count * itemsize}")
        return np.frombuffer(data, NUMPY[dtype], count).reshape(dims)

    def external(self, t, name, nbytes):
        entries = {e.string(1): e.string(2) for e in t.messages(13, "external_data")}
        location = entries.get("location", "")
        try:
            offset, length = int(entries.get("offset", 0)), int(entries.get("length", nbytes))
        except ValueError:
            raise WeightsError(f"tensor {name[:80]!r}: external offset or length is not a number") from None
        try:
            target = (self.folder / location).resolve()  # symlinks followed, so a link out of the folder is refused too
        except (OSError, ValueError):  # a NUL byte, a name too long
            target = None
        if not location or Path(location).is_absolute() or target is None or not target.is_relative_to(self.folder):
            raise WeightsError(f"tensor {name[:80]!r} keeps its data in {location[:200]!r}, outside the model's folder")
        if length != nbytes or offset < 0:
            raise WeightsError(f"tensor {name[:80]!r}: external data of {length} bytes at offset {offset}; "
                               f"its shape needs {nbytes}")
        self.external_bytes += nbytes
        if self.external_bytes > MAX_EXTERNAL_BYTES:
            raise WeightsError("external data larger than a MobileNet's weights")
        if not target.is_file() or target.stat().st_size < offset + nbytes:
            raise WeightsError(f"tensor {name[:80]!r}: external file {location[:200]!r} is missing or shorter than "
                               f"{offset + nbytes} bytes")
        with open(target, "rb") as f:
            f.seek(offset)
            return f.read(nbytes)

    # ---- nodes -----------------------------------------------------------------------------------------

    def walk(self):
        for self.index, node in enumerate(self.nodes):
            op_type, inputs, outputs = node.string(4), node.strings(1), node.strings(2)
            label = f"{op_type} node {node.string(3)[:60]!r}"
            if node.string(7) not in ("", "ai.onnx"):
                raise UnsupportedModelError(f"{label} is in domain {node.string(7)[:40]!r}, not standard ONNX")
            handler = getattr(self, f"_{op_type}", None)
            if handler is None:
                raise UnsupportedModelError(f"ONNX operator {op_type[:40]!r} ({label}) is not one tinynet runs")
            if not outputs:
                raise WeightsError(f"{label} has no output")
            fewest, most = ARITY.get(op_type, (1, 1))
            if not fewest <= len(inputs) <= most or not all(inputs[:fewest]):
                raise UnsupportedModelError(f"{label} has {len(inputs)} inputs; tinynet reads {fewest} to {most}")
            attrs = {a.string(1): a for a in node.messages(5, "attribute")}
            args = [self.values.get(n) if n else None for n in inputs]
            if any(a is None for n, a in zip(inputs, args) if n):
                missing = next(n for n, a in zip(inputs, args) if n and a is None)
                raise WeightsError(f"{label} reads {missing[:80]!r}, which no earlier node produces")
            self.label, self.node_inputs = label, inputs
            result = handler(args, attrs)
            if result is None:
                raise UnsupportedModelError(f"{label} does not fit a MobileNet at this point of the graph")
            self.values[outputs[0]] = result
        outputs = self.graph.messages(12, "graph output")
        final = self.values.get(outputs[0].string(1)) if len(outputs) == 1 else None
        if final is None or final.kind != "op" or final.op != len(self.ops) - 1 or self.ops[-1].kind != "fc":
            raise UnsupportedModelError("the ONNX graph does not end in one classifier output")
        return self.ops

    def fail(self, why):
        raise UnsupportedModelError(f"{self.label}: {why}")

    def last(self, v):
        """Whether ``v`` is the output of the newest op (the chain is linear apart from residuals and SE)."""
        return v is not None and v.kind == "op" and v.op == len(self.ops) - 1

    def const(self, v, what):
        if v is None or v.kind != "const":
            self.fail(f"{what} must be a constant")
        return v.array

    def scalar(self, v, what):
        array = self.const(v, what)
        if array.size != 1:
            self.fail(f"{what} must be a single number, not shape {array.shape}")
        return float(array.ravel()[0])

    def _Identity(self, args, attrs):
        return args[0]

    def _Dropout(self, args, attrs):
        return args[0]  # inference: the identity

    def _Constant(self, args, attrs):
        if "value" in attrs and attrs["value"].message(5) is not None:
            return Value("const", array=self.tensor(attrs["value"].message(5, "Constant value"), "Constant"))
        if "value_float" in attrs:
            return Value("const", array=np.array(attrs["value_float"].float(2), np.float32))
        if "value_ints" in attrs:
            return Value("const", array=np.array(attrs["value_ints"].ints(8), np.int64))
        self.fail("only value, value_float and value_ints constants are read")

    def _Conv(self, args, attrs):
        x, w = args[0], self.const(args[1], "the weight")
        b = self.const(args[2], "the bias") if len(args) > 2 and args[2] is not None else None
        if w.ndim != 4 or w.shape[2] != w.shape[3]:
            self.fail(f"weight of shape {w.shape} is not a square 2-D kernel")
        k, group = w.shape[2], _int(attrs, "group", 1)
        strides = _ints(attrs, "strides", [1, 1])
        if _ints(attrs, "dilations", [1, 1]) != [1, 1] or len(set(strides)) != 1:
            self.fail("dilated or non-square-strided convolutions are not supported")
        pads = _ints(attrs, "pads", [0, 0, 0, 0])
        if x is not None and x.kind == "padded":
            pads = [p + q for p, q in zip(pads, x.extra)]
            x = Value("op", op=x.op) if x.op is not None else Value("image")
        auto_pad = attrs["auto_pad"].string(4) if "auto_pad" in attrs else "NOTSET"
        padding = _padding(k, strides[0], pads, auto_pad)
        if padding is None:
            self.fail(f"padding {auto_pad} {pads} is neither PyTorch's symmetric k//2 nor TensorFlow's SAME")
        if x is not None and x.kind in ("gap", "se1r"):  # squeeze-excite convs
            kind = "se1" if x.kind == "gap" else "se2"
            if k != 1 or b is None:
                self.fail("a squeeze-excite convolution is 1x1 with a bias")
            return Value(kind, op=x.op, extra=(x.extra or ()) + (w, b))
        if x is not None and x.kind == "pooled" or (self.last(x) and self.ops[x.op].kind == "fc"):
            if k != 1 or group != 1:
                self.fail("after the pool only 1x1 convolutions (a classifier) are supported")
            return self._add(Op("fc", self.label, w[:, :, 0, 0], b))
        if not (x is not None and (x.kind == "image" and not self.ops or self.last(x))):
            self.fail("its input is not the output of the previous layer")
        cout, cin_per_group = w.shape[0], w.shape[1]
        if group == 1:
            kind = "conv" if k > 1 else "pw"
        elif cin_per_group == 1 and group == cout:
            kind = "dw"
        else:
            self.fail(f"group {group} is neither 1 nor depthwise")
        return self._add(Op(kind, self.label, w, b, k, strides[0], padding))

    def _add(self, op):
        self.ops.append(op)
        return Value("op", op=len(self.ops) - 1)

    def _Pad(self, args, attrs):
        if self.opset >= 11:
            if len(args) < 2:
                self.fail("from opset 11 the pads are an input")
            pads = [int(p) for p in self.const(args[1], "pads").ravel()]
            value = self.scalar(args[2], "the pad value") if len(args) > 2 and args[2] else 0.0
        else:
            pads, value = _ints(attrs, "pads", []), attrs["value"].float(2) if "value" in attrs else 0.0
        mode = attrs["mode"].string(4) if "mode" in attrs else "constant"
        if mode != "constant" or value != 0 or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
            self.fail("only zero padding of height and width is supported")
        x = args[0]
        if not (x.kind == "image" and not self.ops or self.last(x)):
            self.fail("its input is not the output of the previous layer")
        return Value("padded", op=x.op, extra=(pads[2], pads[3], pads[6], pads[7]))

    def _BatchNormalization(self, args, attrs):
        x = args[0]
        if not self.last(x) or self.ops[x.op].bn is not None or self.ops[x.op].act or self.ops[x.op].kind == "pool":
            self.fail("a BatchNormalization must follow a convolution directly")
        gamma, beta, mean, var = (self.const(a, "BatchNormalization parameters") for a in args[1:5])
        eps = attrs["epsilon"].float(2) if "epsilon" in attrs else 1e-5
        self.ops[x.op].bn = (gamma, beta, mean, var, eps)
        return x

    def _activate(self, x, act):
        if not self.last(x):
            if x is not None and x.kind == "se1" and act == "relu":
                return Value("se1r", op=x.op, extra=x.extra)
            self.fail("an activation must follow a layer directly")
        op = self.ops[x.op]
        if op.act or op.se or op.residual_from is not None or op.kind == "pool":
            self.fail("the layer already has an activation, squeeze-excite or residual")
        op.act = act
        return x

    def _Relu(self, args, attrs):
        return self._activate(args[0], "relu")

    def _HardSwish(self, args, attrs):
        return self._activate(args[0], "hswish")

    def _Clip(self, args, attrs):
        if self.opset >= 11:
            bounds = [self.scalar(a, "Clip bounds") if a is not None else None for a in args[1:3]]
            bounds += [None] * (2 - len(bounds))
        else:
            bounds = [attrs["min"].float(2) if "min" in attrs else None, attrs["max"].float(2) if "max" in attrs else None]
        if bounds == [0.0, 6.0]:
            return self._activate(args[0], "relu6")
        if bounds in ([0.0, None], [0.0, float("inf")]):
            return self._activate(args[0], "relu")
        self.fail(f"Clip to {bounds} is neither relu6 nor relu")

    def _HardSigmoid(self, args, attrs):
        alpha = attrs["alpha"].float(2) if "alpha" in attrs else 0.2
        beta = attrs["beta"].float(2) if "beta" in attrs else 0.5
        if abs(alpha - SIXTH) > 1e-6 or abs(beta - 0.5) > 1e-6:
            self.fail(f"HardSigmoid(alpha={alpha}, beta={beta}) is not relu6(x + 3) / 6")
        x = args[0]
        if x.kind == "se2":
            return Value("gate", op=x.op, extra=x.extra)
        if self.last(x):
            return Value("hsig", op=x.op)
        self.fail("its input is neither a layer nor a squeeze-excite")

    def _Mul(self, args, attrs):
        a, b = args
        for x, y in ((a, b), (b, a)):
            if self.last(x) and y.kind == "hsig" and y.op == x.op:
                return self._activate(x, "hswish")
            if self.last(x) and y.kind == "gate" and y.op == x.op:
                op = self.ops[x.op]
                if op.kind != "dw" or op.se is not None:
                    self.fail("squeeze-excite applies to a depthwise convolution's output")
                op.se = y.extra
                return x
        self.fail("it is neither x * HardSigmoid(x) nor a squeeze-excite gate")

    def _Add(self, args, attrs):
        a, b = args
        for x, y in ((a, b), (b, a)):
            if self.last(x) and y is not None and y.kind == "op" and y.op < x.op:
                op = self.ops[x.op]
                if op.kind != "pw" or op.act or op.residual_from is not None:
                    self.fail("a residual adds to a linear 1x1 projection")
                op.residual_from = y.op
                return x
        self.fail("it is not a residual connection")

    def _pool(self, x, keepdims):
        if not self.last(x):
            self.fail("its input is not the output of the previous layer")
        if self._is_squeeze_excite():
            return Value("gap", op=x.op, extra=())
        self._add(Op("pool", self.label))
        return Value("pooled", op=len(self.ops) - 1)

    def _is_squeeze_excite(self):
        """Whether the pooled tensor's input is multiplied, a few nodes on, by a gate computed from the pool."""
        pooled_input, start = self.node_inputs[0], self.index
        reachable = set(self.nodes[start].strings(2))
        for node in self.nodes[start + 1:start + 12]:
            if set(node.strings(1)) & reachable:
                if node.string(4) == "Mul" and pooled_input in node.strings(1):
                    return True
                reachable.update(node.strings(2))
        return False

    def _GlobalAveragePool(self, args, attrs):
        return self._pool(args[0], True)

    def _ReduceMean(self, args, attrs):
        if self.opset >= 18:
            axes = [int(a) for a in self.const(args[1], "axes").ravel()] if len(args) > 1 and args[1] else None
        else:
            axes = _ints(attrs, "axes", None)
        if axes is None or sorted(a % 4 for a in axes) != [2, 3]:
            self.fail(f"ReduceMean over axes {axes} is not a global average pool")
        return self._pool(args[0], _int(attrs, "keepdims", 1))

    def _flatten(self, x):
        if x is not None and (x.kind == "pooled" or (self.last(x) and self.ops[x.op].kind == "fc")):
            return x
        self.fail("only the pooled features or the classifier's output may be flattened")

    def _Flatten(self, args, attrs):
        if _int(attrs, "axis", 1) != 1:
            self.fail("Flatten must keep the batch axis")
        return self._flatten(args[0])

    def _Reshape(self, args, attrs):
        shape = self.const(args[1], "the shape")
        if shape.size != 2:
            self.fail(f"reshape to {shape.tolist()} is not (batch, features)")
        return self._flatten(args[0])

    def _Squeeze(self, args, attrs):
        return self._flatten(args[0])

    def _Gemm(self, args, attrs):
        x, w = args[0], self.const(args[1], "the weight")
        b = self.const(args[2], "the bias") if len(args) > 2 and args[2] is not None else None
        if not (x.kind == "pooled" or (self.last(x) and self.ops[x.op].kind == "fc")):
            self.fail("a Gemm must follow the pool or another classifier layer")
        if attrs.get("alpha") and attrs["alpha"].float(2) != 1 or attrs.get("beta") and attrs["beta"].float(2) != 1:
            self.fail("Gemm with alpha or beta other than 1")
        if _int(attrs, "transA", 0) or w.ndim != 2:
            self.fail("Gemm must multiply the features by a 2-D weight")
        transposed = not _int(attrs, "transB", 0)
        return self._add(Op("fc", self.label, w, b, transposed=transposed))

    # ---- conventions -------------------------------------------------------------------------------

    def padding(self, ops):
        conventions = {op.padding for op in ops} - {"any"}
        if len(conventions) > 1:
            raise UnsupportedModelError("the ONNX graph mixes PyTorch's and TensorFlow's padding")
        return conventions.pop() if conventions else "symmetric"

    def meta(self, model):
        meta = {}
        if len(self.input_shape) == 4 and isinstance(self.input_shape[2], int) and self.input_shape[2] > 0:
            meta["preprocess"] = {"preset": "torchvision", "size": self.input_shape[2]}
        if model.num_classes in (1000, 1001):
            meta["labels"] = "imagenet1k"
        return meta


def _int(attrs, name, default):
    return attrs[name].int(3) if name in attrs else default


def _ints(attrs, name, default):
    return attrs[name].ints(8) if name in attrs else default


def _shape(value_info):
    tensor = value_info.message(2, "input type")
    tensor = tensor.message(1, "input tensor type") if tensor is not None else None
    shape = tensor.message(2, "input shape") if tensor is not None else None
    if shape is None:
        return []
    return [d.int(1) if d.fields.get(1) else None for d in shape.messages(1, "dimension")]


def _padding(k, stride, pads, auto_pad):
    """The padding convention of one conv: "symmetric", "tf_same", "any" (both agree), or None (neither)."""
    if auto_pad in ("SAME_UPPER",):
        return "any" if k == 1 else ("tf_same" if stride > 1 else "any")
    if auto_pad == "VALID" or auto_pad not in ("NOTSET", ""):
        return "any" if k == 1 else None
    if len(pads) != 4 or pads[0] != pads[1] or pads[2] != pads[3]:
        return None
    before, after = pads[0], pads[2]
    if k == 1:
        return "any" if before == after == 0 else None
    if before == after == k // 2:
        return "any" if stride == 1 else "symmetric"
    if stride == 2 and (before, after) == ((k - 2) // 2, k - 2 - (k - 2) // 2):  # TF SAME at an even input size
        return "tf_same"
    return None


def _describe(ops):
    return " ".join(f"{op.kind}{op.k}/{op.stride}" if op.kind in ("conv", "dw") else op.kind for op in ops)[:300]


def _match(arch, ops, padding):
    """A Model when ``ops`` are exactly ``arch``'s layers, else None."""
    named, position = [], 0

    def take(kind):
        nonlocal position
        if position < len(ops) and ops[position].kind == kind:
            position += 1
            return ops[position - 1]
        return None

    block_start = {}
    for i, row in enumerate(rows(arch)):
        n = f"{i:02d}"
        block_start[n] = position
        if row.kind == "conv":
            parts = [(f"{n}.conv", take("conv" if row.k > 1 else "pw"))]
        elif row.kind == "ds":
            parts = [(f"{n}.dw", take("dw")), (f"{n}.pw", take("pw"))]
        elif row.kind == "ir":
            expand = take("pw")
            parts = ([(f"{n}.expand", expand)] if expand else []) + [(f"{n}.dw", take("dw")), (f"{n}.project", take("pw"))]
        elif row.kind == "pool":
            parts = [(f"{n}.pool", take("pool"))]
        else:
            parts = [(f"{n}.fc", take("fc"))]
        if any(op is None for _, op in parts):
            return None
        named += parts
    if position != len(ops):
        return None
    weights = {}
    for name, op in named:
        if op.kind == "pool":
            continue
        w, b = _runtime(op, name)
        weights[f"{name}.w"], weights[f"{name}.b"] = w, b
        if op.se is not None:
            block = name.split(".")[0]
            rw, rb, ew, eb = op.se
            for part, (sw, sb) in (("reduce", (rw, rb)), ("expand", (ew, eb))):
                if sw.ndim != 4 or sw.shape[2:] != (1, 1):
                    return None
                weights[f"{block}.se.{part}.w"] = np.ascontiguousarray(sw[:, :, 0, 0].T, np.float32)
                weights[f"{block}.se.{part}.b"] = np.asarray(sb, np.float32)
    try:
        layers = layers_for_weights(arch, {n: a.shape for n, a in weights.items()})
        check_weights(layers, weights)
    except WeightsError:
        return None
    ops_by_name = dict(named)
    for layer in layers:
        if layer.op == "se":
            continue
        op = ops_by_name[layer.name]
        if layer.op in ("conv", "dw") and (op.k, op.stride) != (layer.k, layer.stride):
            return None
        if layer.op != "pool" and op.act != layer.act:
            return None
        if layer.op == "dw" and (op.se is not None) != any(x.op == "se" and x.block == layer.block for x in layers):
            return None
        expected_from = block_start[layer.name.split(".")[0]] - 1 if layer.residual else None
        if op.residual_from != expected_from:
            return None
    return Model(arch, layers, weights, padding, {})


def _runtime(op, name):
    """(w, b) of one op in tinynet's runtime layout, float32, BatchNorm folded."""
    w = np.asarray(op.w, np.float64)
    if op.kind == "fc":
        w = w if op.transposed else w.T
    else:
        w = to_runtime_layout(op.kind, w)
    cout = w.shape[-1]
    b = np.zeros(cout) if op.b is None else np.asarray(op.b, np.float64)
    if b.shape != (cout,):
        raise WeightsError(f"{op.node}: bias of shape {b.shape} for {cout} outputs")
    if op.bn is not None:
        gamma, beta, mean, var, eps = op.bn
        params = [np.asarray(p, np.float64) for p in (gamma, beta, mean, var)]
        if any(p.shape != (cout,) for p in params):
            raise WeightsError(f"{op.node}: BatchNormalization parameters do not have {cout} channels")
        w, b = fold_batchnorm(w, b, *params, eps, f"{op.node} BatchNormalization variance")
    return np.ascontiguousarray(w, np.float32), b.astype(np.float32)
