"""A second interpreter for tinynet models, built only from kernels.reference (float64, no plan, no
buffers): the oracle for tinynet.plan's wiring (buffer reuse, residuals, SE, the QAT activation grid)."""
import numpy as np

from tinynet.kernels import activation_code, conv_output_size
from tinynet.kernels import reference as ref


def reference_forward(model, x, activation_grid=None, taps=()):
    """Logits of ``model`` for ``x`` (N, H, W, 3), float64; ``activation_grid`` as in tinynet.plan.Plan.
    With ``taps`` (layer names): {name: that layer's output} instead."""
    t = np.asarray(x, np.float64)
    tapped = {}
    block, block_input = None, None
    for layer in model.layers:
        if layer.block != block:
            block, block_input = layer.block, t
        w, b = model.weights.get(f"{layer.name}.w"), model.weights.get(f"{layer.name}.b")
        act = activation_code(layer.act)
        if layer.op in ("conv", "dw"):
            (ho, pt), (wo, pl) = (conv_output_size(n, layer.k, layer.stride, model.padding) for n in t.shape[1:3])
            conv = ref.conv2d_nhwc_ref if layer.op == "conv" else ref.dwconv2d_nhwc_ref
            t = conv(t, w, b, (ho, wo), layer.stride, pt, pl, act)
        elif layer.op in ("pw", "fc"):
            shape = t.shape[:-1]
            residual = block_input.reshape(-1, layer.cout) if layer.residual else None
            t = ref.gemm_bias_act_ref(t.reshape(-1, layer.cin), w, b, act, residual).reshape(*shape, layer.cout)
        elif layer.op == "se":
            parts = [model.weights[f"{layer.name}.{p}.{wb}"] for p in ("reduce", "expand") for wb in "wb"]
            t = ref.squeeze_excite_nhwc_ref(t, *parts)
        elif layer.op == "pool":
            t = ref.global_avg_pool_nhwc_ref(t)
        if activation_grid and layer.name in activation_grid:
            t = ref.fake_quantize_ref(t, *activation_grid[layer.name])
        if layer.name in taps:
            tapped[layer.name] = t
    return {name: tapped[name] for name in taps} if taps else t
