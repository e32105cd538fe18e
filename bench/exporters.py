"""The same MobileNet, from tinynet's weights, for each peer engine: ONNX bytes, a PyTorch function,
TFLite bytes. Every exporter walks ``model.layers`` the way tinynet.plan does, so the graphs compute
exactly what tinynet computes (bench/models.py checks the logits before timing anything).

Weight layouts: tinynet conv (KH, KW, Cin, Cout), depthwise (KH, KW, C), pointwise/fc (Cin, Cout).
Padding: "symmetric" (PyTorch) pads k//2 on every side; "tf_same" is ONNX SAME_UPPER / TFLite SAME.
At stride 2, symmetric padding differs from SAME, so the TFLite graph gets an explicit PAD there
(as a model converted from PyTorch would).
"""
import numpy as np

from tinynet.kernels.padding import conv_output_size


def walk(model):
    """(layer, weights, residual_source) in execution order; residual_source is the tensor name of the
    block input for layers that add it (names are "t<index>" of each layer's output, "input" first)."""
    block, block_input, current = None, "input", "input"
    for i, layer in enumerate(model.layers):
        if layer.block != block:
            block, block_input = layer.block, current
        parts = ("w", "b", "reduce.w", "reduce.b", "expand.w", "expand.b")
        weights = {p: model.weights[f"{layer.name}.{p}"] for p in parts if f"{layer.name}.{p}" in model.weights}
        yield i, layer, weights, (block_input if layer.residual else None), current
        current = f"t{i}"


# ---------------------------------------------------------------- ONNX (NCHW)
def to_onnx(model, batch):
    """ONNX bytes (opset 17) of ``model`` for input (batch, 3, 224, 224) named "input"; output "logits"."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def activation(x, act, out):
        if act is None:
            return x
        op = {"relu": "Relu", "relu6": "Clip", "hswish": "HardSwish", "hsigmoid": "HardSigmoid"}[act]
        inputs = [x, const(f"{out}.lo", np.float32(0)), const(f"{out}.hi", np.float32(6))] if op == "Clip" else [x]
        extra = {"alpha": 1 / 6, "beta": 0.5} if op == "HardSigmoid" else {}
        nodes.append(helper.make_node(op, inputs, [out + ".act"], **extra))
        return out + ".act"

    def conv(x, w_oihw, b, stride, group, out):
        k = w_oihw.shape[-1]
        pad = {"auto_pad": "SAME_UPPER"} if model.padding == "tf_same" else {"pads": [k // 2] * 4}
        nodes.append(helper.make_node("Conv", [x, const(out + ".w", w_oihw), const(out + ".b", b)], [out],
                                      strides=[stride, stride], group=group, kernel_shape=[k, k], **pad))
        return out

    for i, layer, w, residual, x in walk(model):
        out = f"t{i}"
        if layer.op == "conv":
            y = conv(x, w["w"].transpose(3, 2, 0, 1), w["b"], layer.stride, 1, out + ".conv")
        elif layer.op == "dw":
            y = conv(x, w["w"].transpose(2, 0, 1)[:, None], w["b"], layer.stride, layer.cout, out + ".conv")
        elif layer.op == "pw":
            y = conv(x, w["w"].T[:, :, None, None], w["b"], 1, 1, out + ".conv")
        elif layer.op == "se":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [out + ".pool"]))
            h = activation(conv(out + ".pool", w["reduce.w"].T[:, :, None, None], w["reduce.b"], 1, 1, out + ".fc1"),
                           "relu", out + ".fc1")
            g = activation(conv(h, w["expand.w"].T[:, :, None, None], w["expand.b"], 1, 1, out + ".fc2"), "hsigmoid",
                           out + ".fc2")
            nodes.append(helper.make_node("Mul", [x, g], [out]))
            continue
        elif layer.op == "pool":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [out + ".gap"]))
            nodes.append(helper.make_node("Flatten", [out + ".gap"], [out]))
            continue
        elif layer.op == "fc":
            nodes.append(helper.make_node("Gemm", [x, const(out + ".w", w["w"].T), const(out + ".b", w["b"])], [out + ".fc"],
                                          transB=1))
            y = out + ".fc"
        y = activation(y, layer.act, out)
        if residual is not None:
            nodes.append(helper.make_node("Add", [y, residual], [out + ".res"]))
            y = out + ".res"
        nodes.append(helper.make_node("Identity", [y], [out]))
    nodes.append(helper.make_node("Identity", [f"t{len(model.layers) - 1}"], ["logits"]))
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 224, 224])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, model.arch, inputs, outputs, initializer=inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx_model.SerializeToString()


# ---------------------------------------------------------------- PyTorch (NCHW, channels_last memory)
def to_torch(model):
    """A function (N, 3, H, W) channels_last tensor -> logits, built with torch.nn.functional from tinynet's weights."""
    import torch
    import torch.nn.functional as F

    def tensor(a, *transpose):
        t = torch.from_numpy(np.ascontiguousarray(a.transpose(*transpose) if transpose else a))
        return t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t

    acts = {None: lambda v: v, "relu": F.relu, "relu6": F.relu6, "hswish": F.hardswish, "hsigmoid": F.hardsigmoid}
    steps = []
    for i, layer, w, residual, x in walk(model):
        pad = layer.k // 2 if model.padding == "symmetric" else "same"
        if layer.op in ("conv", "dw", "pw"):
            weight = {"conv": lambda: tensor(w["w"], 3, 2, 0, 1), "dw": lambda: tensor(w["w"].transpose(2, 0, 1)[:, None]),
                      "pw": lambda: tensor(w["w"].T[:, :, None, None])}[layer.op]()
            groups = layer.cout if layer.op == "dw" else 1
            steps.append((layer, residual, x, lambda v, W=weight, B=torch.from_numpy(w["b"]), s=layer.stride, g=groups, p=pad:
                          F.conv2d(v, W, B, s, p, 1, g)))
        elif layer.op == "se":
            w1, b1 = tensor(w["reduce.w"].T[:, :, None, None]), torch.from_numpy(w["reduce.b"])
            w2, b2 = tensor(w["expand.w"].T[:, :, None, None]), torch.from_numpy(w["expand.b"])
            steps.append((layer, None, x, lambda v, w1=w1, b1=b1, w2=w2, b2=b2:
                          v * F.hardsigmoid(F.conv2d(F.relu(F.conv2d(v.mean((2, 3), keepdim=True), w1, b1)), w2, b2))))
        elif layer.op == "pool":
            steps.append((layer, None, x, lambda v: v.mean((2, 3))))
        elif layer.op == "fc":
            steps.append((layer, None, x, lambda v, W=torch.from_numpy(w["w"].T.copy()), B=torch.from_numpy(w["b"]):
                          F.linear(v, W, B)))

    def forward(x):
        values = {"input": x}
        for i, (layer, residual, src, fn) in enumerate(steps):
            y = fn(values[src])
            if layer.op not in ("se", "pool"):
                y = acts[layer.act](y)
            if residual is not None:
                y = y + values[residual]
            values[f"t{i}"] = y
        return values[f"t{len(steps) - 1}"]

    return forward


# ---------------------------------------------------------------- TFLite (NHWC)
def to_tflite(model, batch):
    """TFLite flatbuffer bytes of ``model`` for input (batch, 224, 224, 3); float32 throughout."""
    from tinynet.formats.tflite_builder import Graph

    g = Graph()
    h = w_ = 224
    shapes = {"input": (batch, h, w_, 3)}
    tensors = {"input": g.input(shapes["input"])}
    fused = {"relu": "RELU", "relu6": "RELU6"}

    def act_op(t, shape, act):
        if act == "hswish":
            return g.op("HARD_SWISH", [t], shape)
        if act == "hsigmoid":  # relu6(x + 3) / 6
            t = g.op("ADD", [t, g.const(np.full((1,), 3, np.float32))], shape, act="RELU6")
            return g.op("MUL", [t, g.const(np.full((1,), 1 / 6, np.float32))], shape)
        return t

    for i, layer, w, residual, x in walk(model):
        src, n, act = tensors[x], shapes[x][0], layer.act
        if len(shapes[x]) == 4:
            hh, ww, c = shapes[x][1:]
        if layer.op in ("conv", "dw", "pw"):
            k, s = layer.k, layer.stride
            ho, _ = conv_output_size(hh, k, s, model.padding)
            wo, _ = conv_output_size(ww, k, s, model.padding)
            padding = "SAME"
            if model.padding == "symmetric" and s == 2 and k > 1:
                p = k // 2
                pads = g.const(np.array([[0, 0], [p, p], [p, p], [0, 0]], np.int32))
                src = g.op("PAD", [src, pads], (n, hh + 2 * p, ww + 2 * p, c))
                padding = "VALID"
            out_shape = (n, ho, wo, layer.cout)
            if layer.op == "conv":
                filt = w["w"].transpose(3, 0, 1, 2)
            elif layer.op == "pw":
                filt = w["w"].T[:, None, None, :]
            else:
                filt = w["w"][None]
            name = "DEPTHWISE_CONV_2D" if layer.op == "dw" else "CONV_2D"
            y = g.op(name, [src, g.const(np.ascontiguousarray(filt, np.float32)), g.const(w["b"])], out_shape, stride=s,
                     padding=padding, act=fused.get(act))
            y = act_op(y, out_shape, act)
        elif layer.op == "se":
            out_shape = shapes[x]
            pooled = g.op("MEAN", [src, g.const(np.array([1, 2], np.int32))], (n, 1, 1, c), keep_dims=True)
            hidden = g.op("CONV_2D", [pooled, g.const(np.ascontiguousarray(w["reduce.w"].T[:, None, None, :])),
                                      g.const(w["reduce.b"])], (n, 1, 1, layer.squeeze), act="RELU")
            gate = g.op("CONV_2D", [hidden, g.const(np.ascontiguousarray(w["expand.w"].T[:, None, None, :])),
                                    g.const(w["expand.b"])], (n, 1, 1, c))
            gate = act_op(gate, (n, 1, 1, c), "hsigmoid")
            y = g.op("MUL", [src, gate], out_shape)
        elif layer.op == "pool":
            out_shape = (n, c)
            y = g.op("MEAN", [src, g.const(np.array([1, 2], np.int32))], out_shape, keep_dims=False)
        elif layer.op == "fc":
            out_shape = (n, layer.cout)
            y = g.op("FULLY_CONNECTED", [src, g.const(np.ascontiguousarray(w["w"].T)), g.const(w["b"])], out_shape,
                     act=fused.get(act))
            y = act_op(y, out_shape, act)
        if residual is not None:
            y = g.op("ADD", [y, tensors[residual]], out_shape)
        tensors[f"t{i}"], shapes[f"t{i}"] = y, out_shape
    return g.finish(tensors[f"t{len(model.layers) - 1}"])
