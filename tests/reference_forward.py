"""A second interpreter for tinynet models, independent of the code it checks: the oracle for tinynet.plan's wiring
(buffer reuse, residuals, SE, the QAT activation grid, taps).

It walks the architecture's table rows itself (not the model's ``layers``, made by tinynet.spec), decides residuals
from the tensors' own shapes (stride 1, same channels), computes the padding from the two conventions' definitions
(not kernels.padding), and runs float64 reference ops (kernels.reference: plain NumPy, no plan, no buffers).
"""
import math

import numpy as np

from tinynet.architectures import rows
from tinynet.kernels import activation_code
from tinynet.kernels import reference as ref


def output_and_leading_pad(size, k, stride, padding):
    """PyTorch: k // 2 on both sides. TensorFlow SAME: ceil(size / stride) outputs, the odd pixel padded at the end."""
    if padding == "symmetric":
        return (size + 2 * (k // 2) - k) // stride + 1, k // 2
    out = math.ceil(size / stride)
    return out, max((out - 1) * stride + k - size, 0) // 2


def reference_forward(model, x, activation_grid=None, taps=()):
    """Logits of ``model`` for ``x`` (N, H, W, 3), float64; ``activation_grid`` as in tinynet.plan.Plan.
    With ``taps`` (layer names): {name: that layer's output} instead."""
    weights, tapped = model.weights, {}

    def step(name, t):
        if activation_grid and name in activation_grid:
            t = ref.fake_quantize_ref(t, *activation_grid[name])
        tapped[name] = t
        return t

    def spatial(name, t, k, stride, act, depthwise):
        (ho, pad_top), (wo, pad_left) = (output_and_leading_pad(n, k, stride, model.padding) for n in t.shape[1:3])
        conv = ref.dwconv2d_nhwc_ref if depthwise else ref.conv2d_nhwc_ref
        return step(name, conv(t, weights[f"{name}.w"], weights[f"{name}.b"], (ho, wo), stride, pad_top, pad_left,
                               activation_code(act)))

    def pointwise(name, t, act, residual=None):
        w = weights[f"{name}.w"]
        flat = residual.reshape(-1, w.shape[1]) if residual is not None else None
        y = ref.gemm_bias_act_ref(t.reshape(-1, w.shape[0]), w, weights[f"{name}.b"], activation_code(act), flat)
        return step(name, y.reshape(*t.shape[:-1], w.shape[1]))

    t = np.asarray(x, np.float64)
    for i, row in enumerate(rows(model.arch)):
        p = f"{i:02d}"
        if row.kind == "conv":
            t = spatial(f"{p}.conv", t, row.k, row.s, row.act, False) if row.k > 1 else pointwise(f"{p}.conv", t, row.act)
        elif row.kind == "ds":
            t = pointwise(f"{p}.pw", spatial(f"{p}.dw", t, row.k, row.s, row.act, True), row.act)
        elif row.kind == "ir":
            block_input = t
            if f"{p}.expand.w" in weights:
                t = pointwise(f"{p}.expand", t, row.act)
            t = spatial(f"{p}.dw", t, row.k, row.s, row.act, True)
            if row.se:
                parts = [weights[f"{p}.se.{part}.{wb}"] for part in ("reduce", "expand") for wb in "wb"]
                t = step(f"{p}.se", ref.squeeze_excite_nhwc_ref(t, *parts))
            same_shape = row.s == 1 and block_input.shape[-1] == weights[f"{p}.project.w"].shape[1]
            t = pointwise(f"{p}.project", t, None, block_input if same_shape else None)
        elif row.kind == "pool":
            t = step(f"{p}.pool", ref.global_avg_pool_nhwc_ref(t))
        elif row.kind == "fc":
            t = pointwise(f"{p}.fc", t, row.act)
    return {name: tapped[name] for name in taps} if taps else t
