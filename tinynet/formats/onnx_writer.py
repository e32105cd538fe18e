"""A Model as a float32 ONNX file (opset 17, NCHW), encoded with tinynet.formats.protobuf_writer.

Input "input" (N, 3, H, W) float32, the preprocessed image as tinynet's forward takes it but channels first;
N, H and W are free (symbolic). Output "logits" (N, num_classes). Weights are stored in ONNX's layouts:
Conv (Cout, Cin / group, KH, KW), depthwise convs as Conv with group = C, the classifier as Gemm B (Cin, Cout).
Padding: "symmetric" is pads = k // 2 on every side, "tf_same" is auto_pad SAME_UPPER (the extra pixel at the
end, as TensorFlow and tinynet put it). The SE gate is HardSigmoid(alpha=1/6, beta=0.5) = relu6(x + 3) / 6.

Field numbers are onnx.proto's (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto).
Labels and the preprocessing go into the model's metadata_props as JSON ("labels", "preprocess").
"""
import json
from dataclasses import asdict

import numpy as np

import tinynet
from tinynet.formats.graph_walk import uint8_grid, walk
from tinynet.formats.protobuf_writer import data, float32, integer, repeated

OPSET, IR_VERSION = 17, 8  # IR version 8 is the one that goes with opset 17
FLOAT, UINT8 = 1, 2  # TensorProto.DataType
DATA_TYPES = {np.dtype("<f4"): FLOAT, np.dtype("u1"): UINT8}
ATTRIBUTE_TYPES = {float: 1, int: 2, str: 3, list: 7}  # AttributeProto.AttributeType: FLOAT, INT, STRING, INTS
ACTIVATIONS = {"relu": "Relu", "relu6": "Clip", "hswish": "HardSwish", "hsigmoid": "HardSigmoid"}


def tensor(name, array):
    """TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian). float32 unless ``array`` is uint8."""
    array = np.asarray(array)
    array = np.ascontiguousarray(array, np.dtype("u1") if array.dtype == np.uint8 else np.dtype("<f4"))
    return repeated(integer, 1, array.shape) + integer(2, DATA_TYPES[array.dtype]) + data(8, name) + data(9, array.tobytes())


def attribute(name, value):
    """AttributeProto: name 1, f 2, i 3, s 4, ints 8, type 20."""
    kind = ATTRIBUTE_TYPES[type(value)]
    body = {1: lambda: float32(2, value), 2: lambda: integer(3, value), 3: lambda: data(4, value),
            7: lambda: repeated(integer, 8, value)}[kind]()
    return data(1, name) + body + integer(20, kind)


def node(op_type, inputs, outputs, **attributes):
    """NodeProto: input 1, output 2, name 3, op_type 4, attribute 5."""
    return (repeated(data, 1, inputs) + repeated(data, 2, outputs) + data(3, outputs[0]) + data(4, op_type)
            + b"".join(data(5, attribute(k, v)) for k, v in attributes.items()))


def value_info(name, dims):
    """ValueInfoProto name 1, type 2 -> TypeProto tensor_type 1 -> elem_type 1, shape 2 -> dim 1 -> dim_value 1 or
    dim_param 2 (a str dim is symbolic)."""
    shape = b"".join(data(1, data(2, d) if isinstance(d, str) else integer(1, d)) for d in dims)
    return data(1, name) + data(2, data(1, integer(1, FLOAT) + data(2, shape)))


class _Graph:
    def __init__(self, padding):
        self.padding, self.nodes, self.initializers, self.constants = padding, [], [], {}

    def const(self, name, array):
        self.initializers.append(tensor(name, array))
        return name

    def add(self, op_type, inputs, output, **attributes):
        self.nodes.append(node(op_type, inputs, [output], **attributes))
        return output

    def conv(self, x, weight, bias, stride, group, out):
        k = weight.shape[-1]
        pads = {"auto_pad": "SAME_UPPER"} if self.padding == "tf_same" else {"pads": [k // 2] * 4}
        return self.add("Conv", [x, self.const(out + ".w", weight), self.const(out + ".b", bias)], out,
                        kernel_shape=[k, k], strides=[stride, stride], group=group, **pads)

    def activation(self, x, act, out):
        if act is None:
            return x
        if act == "relu6":
            if "relu6.min" not in self.constants:
                self.constants.update({"relu6.min": self.const("relu6.min", np.float32(0)),
                                       "relu6.max": self.const("relu6.max", np.float32(6))})
            return self.add("Clip", [x, "relu6.min", "relu6.max"], out)
        extra = {"alpha": 1 / 6, "beta": 0.5} if act == "hsigmoid" else {}
        return self.add(ACTIVATIONS[act], [x], out, **extra)


def to_onnx(model, activation_grid=None):
    """The ONNX bytes of ``model``. ``activation_grid`` ({layer name: (lo, step, levels)}, as Model.meta has it):
    each listed layer's output is snapped to its grid by a QuantizeLinear (uint8) + DequantizeLinear pair."""
    g = _Graph(model.padding)
    outputs = {-1: "input"}
    steps = walk(model)
    for i, step in enumerate(steps):
        layer, w, x = step.layer, step.weights, outputs[step.source]
        final = "logits" if i == len(steps) - 1 else layer.name
        snapped = layer.name in (activation_grid or {})
        name = final + ".float" if snapped else final
        linear = name + ".linear" if layer.act or step.residual is not None else name
        if layer.op == "conv":
            y = g.conv(x, w["w"].transpose(3, 2, 0, 1), w["b"], layer.stride, 1, linear)
        elif layer.op == "dw":
            y = g.conv(x, w["w"].transpose(2, 0, 1)[:, None], w["b"], layer.stride, layer.cout, linear)
        elif layer.op == "pw":
            y = g.conv(x, w["w"].T[:, :, None, None], w["b"], 1, 1, linear)
        elif layer.op == "se":
            pooled = g.add("GlobalAveragePool", [x], name + ".pool")
            hidden = g.activation(g.conv(pooled, w["reduce.w"].T[:, :, None, None], w["reduce.b"], 1, 1, name + ".reduce"),
                                  "relu", name + ".relu")
            gate = g.activation(g.conv(hidden, w["expand.w"].T[:, :, None, None], w["expand.b"], 1, 1, name + ".expand"),
                                "hsigmoid", name + ".gate")
            y = g.add("Mul", [x, gate], linear)
        elif layer.op == "pool":
            y = g.add("Flatten", [g.add("GlobalAveragePool", [x], name + ".gap")], linear, axis=1)
        else:  # fc
            y = g.add("Gemm", [x, g.const(name + ".w", w["w"]), g.const(name + ".b", w["b"])], linear)
        y = g.activation(y, layer.act, name if step.residual is None else name + ".act")
        if step.residual is not None:
            y = g.add("Add", [y, outputs[step.residual]], name)
        if snapped:
            scale, zero_point = uint8_grid(layer.name, activation_grid[layer.name])
            grid = [g.const(final + ".scale", np.float32(scale)), g.const(final + ".zero_point", np.uint8(zero_point))]
            y = g.add("DequantizeLinear", [g.add("QuantizeLinear", [y, *grid], final + ".q"), *grid], final)
        outputs[i] = y
    graph = (b"".join(data(1, n) for n in g.nodes) + data(2, model.arch)
             + b"".join(data(5, t) for t in g.initializers)
             + data(11, value_info("input", ["N", 3, "H", "W"])) + data(12, value_info("logits", ["N", model.num_classes])))
    return (integer(1, IR_VERSION) + data(2, "tinynet") + data(3, tinynet.__version__) + data(7, graph)
            + data(8, data(1, "") + integer(2, OPSET)) + b"".join(data(14, data(1, k) + data(2, v))
                                                                 for k, v in _metadata(model).items()))


def _metadata(model):
    """metadata_props: what an app needs besides the graph to use the logits (StringStringEntryProto key 1, value 2)."""
    from tinynet import preprocess
    from tinynet.labels import labels_for

    return {"labels": json.dumps(list(labels_for(model))), "preprocess": json.dumps(asdict(preprocess.for_model(model))),
            "source": str(model.meta.get("source", model.arch))}
