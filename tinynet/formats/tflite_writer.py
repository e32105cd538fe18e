"""A Model as a float32 .tflite file (NHWC, as TFLite runs it), written with tinynet.formats.tflite_builder.

Layouts: CONV_2D filters (Cout, KH, KW, Cin), DEPTHWISE_CONV_2D (1, KH, KW, C), FULLY_CONNECTED (Cout, Cin).
Padding: "tf_same" is TFLite's SAME. "symmetric" (PyTorch) pads k // 2 on each side, which SAME also does at
stride 1 (odd kernels) but not at stride 2 on an even input (SAME pads 0 before, 1 after): there the graph gets
an explicit PAD and a VALID conv, as a converter from PyTorch writes it. h-swish is HARD_SWISH; the SE gate's
h-sigmoid is ADD 3 (fused RELU6) then MUL 1/6, exactly tinynet's relu6(x + 3) / 6.
"""
import numpy as np

from tinynet.formats.graph_walk import uint8_grid, walk
from tinynet.formats.tflite_builder import Graph
from tinynet.kernels.padding import conv_output_size

FUSED = {"relu": "RELU", "relu6": "RELU6"}  # activations TFLite applies inside the op


def to_tflite(model, resolution, description="tinynet export", activation_grid=None):
    """The .tflite bytes of ``model`` for one (1, resolution, resolution, 3) float32 input named "input";
    the output (1, num_classes) is named "logits". ``activation_grid`` ({layer name: (lo, step, levels)}, as
    Model.meta has it): each listed layer's output is snapped to its grid by a QUANTIZE (uint8) + DEQUANTIZE."""
    g = Graph()
    outputs, shapes = {-1: g.input((1, resolution, resolution, 3))}, {-1: (1, resolution, resolution, 3)}
    constants = {}

    def scalar(value):  # one tensor per distinct constant
        if value not in constants:
            constants[value] = g.const(np.full((1,), value, np.float32))
        return constants[value]

    def activation(t, shape, act):
        if act == "hswish":
            return g.op("HARD_SWISH", [t], shape)
        if act == "hsigmoid":
            t = g.op("ADD", [t, scalar(3.0)], shape, act="RELU6")
            return g.op("MUL", [t, scalar(1.0 / 6.0)], shape)
        return t

    steps = walk(model)
    for i, step in enumerate(steps):
        layer, w = step.layer, step.weights
        x, shape = outputs[step.source], shapes[step.source]
        fused = FUSED.get(layer.act)
        if layer.op in ("conv", "dw", "pw"):
            x, shape, padding = _padded(g, x, shape, layer, model.padding)
            _, h, wd, _ = shapes[step.source]
            out_shape = (1, conv_output_size(h, layer.k, layer.stride, model.padding)[0],
                         conv_output_size(wd, layer.k, layer.stride, model.padding)[0], layer.cout)
            if layer.op == "dw":
                op, filters = "DEPTHWISE_CONV_2D", w["w"][None]
            elif layer.op == "conv":
                op, filters = "CONV_2D", w["w"].transpose(3, 0, 1, 2)
            else:
                op, filters = "CONV_2D", w["w"].T[:, None, None, :]
            y = g.op(op, [x, _const(g, filters), _const(g, w["b"])], out_shape, stride=layer.stride, padding=padding,
                     act=fused)
        elif layer.op == "se":
            out_shape, c = shape, shape[-1]
            pooled = g.op("MEAN", [x, g.const(np.array([1, 2], np.int32))], (1, 1, 1, c), keep_dims=True)
            hidden = g.op("CONV_2D", [pooled, _const(g, w["reduce.w"].T[:, None, None, :]), _const(g, w["reduce.b"])],
                          (1, 1, 1, layer.squeeze), act="RELU")
            gate = g.op("CONV_2D", [hidden, _const(g, w["expand.w"].T[:, None, None, :]), _const(g, w["expand.b"])],
                        (1, 1, 1, c))
            y = g.op("MUL", [x, activation(gate, (1, 1, 1, c), "hsigmoid")], out_shape)
        elif layer.op == "pool":
            out_shape = (1, layer.cout)
            y = g.op("MEAN", [x, g.const(np.array([1, 2], np.int32))], out_shape, keep_dims=False)
        else:  # fc
            out_shape = (1, layer.cout)
            y = g.op("FULLY_CONNECTED", [x, _const(g, w["w"].T), _const(g, w["b"])], out_shape, act=fused)
        if layer.act == "hswish":
            y = activation(y, out_shape, "hswish")
        if step.residual is not None:
            y = g.op("ADD", [y, outputs[step.residual]], out_shape)
        if layer.name in (activation_grid or {}):
            scale, zero_point = uint8_grid(layer.name, activation_grid[layer.name])
            q = g.op("QUANTIZE", [y], out_shape, out_dtype=np.uint8, out_quant=(scale, zero_point))
            y = g.op("DEQUANTIZE", [q], out_shape)
        g.tensors[y]["name"] = "logits" if i == len(steps) - 1 else layer.name  # a layer's output: tinynet's name
        outputs[i], shapes[i] = y, out_shape
    return g.finish(outputs[len(steps) - 1], description)


def _const(g, array):
    return g.const(np.ascontiguousarray(array, np.float32))


def _padded(g, x, shape, layer, padding):
    """(input, its shape, the conv's padding): an explicit PAD where symmetric padding is not SAME's."""
    if padding == "tf_same" or layer.stride == 1 or layer.k == 1:
        return x, shape, "SAME"
    p = layer.k // 2
    n, h, w, c = shape
    pads = g.const(np.array([[0, 0], [p, p], [p, p], [0, 0]], np.int32))
    return g.op("PAD", [x, pads], (n, h + 2 * p, w + 2 * p, c)), (n, h + 2 * p, w + 2 * p, c), "VALID"
