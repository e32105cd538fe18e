"""Plain float64 reference implementations of every kernel: the test oracle.

Written for obviousness, not speed: the loop nest of TFLite's reference depthwise conv
(output pixel -> tap -> in-bounds test), vectorised only over batch and channels. Each function
returns a new float64 array instead of writing into ``out``; names match the fast kernels plus ``_ref``.
The fast GEMM and conv kernels take their weights packed (kernels.pack_weights); the references take
them as they are stored, (Cin, Cout) and (KH, KW, Cin, Cout).
"""
import numpy as np

from .activation import HSIGMOID, HSWISH, NONE, RELU, RELU6


def activation_ref(v, act):
    """Apply activation code ``act`` to a float64 array."""
    v = np.asarray(v, dtype=np.float64)
    if act == NONE:
        return v
    if act == RELU:
        return np.maximum(v, 0.0)
    if act == RELU6:
        return np.clip(v, 0.0, 6.0)
    if act == HSWISH:
        return v * np.clip(v + 3.0, 0.0, 6.0) / 6.0
    if act == HSIGMOID:
        return np.clip(v + 3.0, 0.0, 6.0) / 6.0
    raise ValueError(f"unknown activation code {act}")


def _conv_loops(x, w, out_hw, stride, pad_top, pad_left, tap, dilation=1):
    """Shared loop nest: for each output pixel and in-bounds tap, ``acc += tap(x_pixel, ky, kx)``.

    Taps sit ``dilation`` pixels apart. If no tap of any output lands in the image, the result is 0 (bias only)."""
    x = np.asarray(x, dtype=np.float64)
    n_img, height, width = x.shape[:3]
    out_h, out_w = out_hw
    kh, kw = w.shape[:2]
    acc = None
    for oy in range(out_h):
        for ox in range(out_w):
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * stride - pad_top + ky * dilation, ox * stride - pad_left + kx * dilation
                    if 0 <= iy < height and 0 <= ix < width:
                        contribution = tap(x[:, iy, ix, :], ky, kx)  # (N, Cout)
                        if acc is None:
                            acc = np.zeros((n_img, out_h, out_w, contribution.shape[1]))
                        acc[:, oy, ox, :] += contribution
    if acc is None:
        acc = np.zeros((n_img, out_h, out_w, tap(x[:, 0, 0, :], 0, 0).shape[1]))
    return acc


def conv2d_nhwc_ref(x, w, b, out_hw, stride, pad_top, pad_left, act, dilation=1):
    """Standard conv.  x: (N, H, W, Cin)  w: (KH, KW, Cin, Cout)  ->  (N, Ho, Wo, Cout)"""
    w64 = np.asarray(w, dtype=np.float64)
    acc = _conv_loops(x, w64, out_hw, stride, pad_top, pad_left, lambda px, ky, kx: px @ w64[ky, kx], dilation)
    return activation_ref(acc + np.asarray(b, dtype=np.float64), act)


def dwconv2d_nhwc_ref(x, w, b, out_hw, stride, pad_top, pad_left, act, dilation=1):
    """Depthwise conv.  x: (N, H, W, C)  w: (KH, KW, C)  ->  (N, Ho, Wo, C)"""
    w64 = np.asarray(w, dtype=np.float64)
    acc = _conv_loops(x, w64, out_hw, stride, pad_top, pad_left, lambda px, ky, kx: px * w64[ky, kx], dilation)
    return activation_ref(acc + np.asarray(b, dtype=np.float64), act)


def gemm_bias_act_ref(a, w, b, act, residual=None):
    """act(a @ w + b) (+ residual).  a: (P, K)  w: (K, M)  ->  (P, M)"""
    a64, w64 = np.asarray(a, dtype=np.float64), np.asarray(w, dtype=np.float64)
    out = np.zeros((a64.shape[0], w64.shape[1]))
    for k in range(a64.shape[1]):
        out += np.outer(a64[:, k], w64[k])
    out = activation_ref(out + np.asarray(b, dtype=np.float64), act)
    return out if residual is None else out + np.asarray(residual, dtype=np.float64)


def global_avg_pool_nhwc_ref(x):
    """(N, H, W, C) -> (N, C)"""
    return np.asarray(x, dtype=np.float64).mean(axis=(1, 2))


def scale_channels_ref(x, gate):
    """x * gate per image and channel.  x: (N, H, W, C)  gate: (N, C)"""
    return np.asarray(x, dtype=np.float64) * np.asarray(gate, dtype=np.float64)[:, None, None, :]


def expand_dwconv2d_nhwc_ref(x, we, be, act_e, wd, bd, out_hw, stride, pad_top, pad_left, act_d):
    """dwconv2d_nhwc_ref of gemm_bias_act_ref (a 1x1 conv): an inverted residual's expand and depthwise convs."""
    n, h, w, cin = np.shape(x)
    expanded = gemm_bias_act_ref(np.reshape(x, (-1, cin)), we, be, act_e).reshape(n, h, w, -1)
    return dwconv2d_nhwc_ref(expanded, wd, bd, out_hw, stride, pad_top, pad_left, act_d)


def squeeze_excite_nhwc_ref(x, w_reduce, b_reduce, w_expand, b_expand):
    """x * hsigmoid(relu(mean_hw(x) @ w_reduce + b_reduce) @ w_expand + b_expand)"""
    x64 = np.asarray(x, dtype=np.float64)
    hidden = gemm_bias_act_ref(global_avg_pool_nhwc_ref(x64), w_reduce, b_reduce, RELU)
    gate = gemm_bias_act_ref(hidden, w_expand, b_expand, HSIGMOID)
    return scale_channels_ref(x64, gate)


def fake_quantize_ref(x, lo, step, levels):
    """lo + step * round(clip((x - lo) / step, 0, levels - 1)), float64, rounding half to even."""
    q = np.rint(np.clip((np.asarray(x, np.float64) - lo) / step, 0, levels - 1))
    return lo + q * step


def _source_coordinate_ref(d, n_in, n_out, align_corners, half_pixel_centers):
    """Where output index d samples the input axis (see kernels.resize for the three conventions)."""
    if align_corners:
        return 0.0 if n_out == 1 else d * (n_in - 1) / (n_out - 1)
    if half_pixel_centers:
        return max((d + 0.5) * n_in / n_out - 0.5, 0.0)
    return d * n_in / n_out


def resize_bilinear_nhwc_ref(x, out_hw, align_corners=False, half_pixel_centers=False):
    """(N, H, W, C) -> (N, Ho, Wo, C): each output pixel a weighted sum of its four nearest input pixels."""
    x = np.asarray(x, dtype=np.float64)
    n_img, height, width, channels = x.shape
    out = np.zeros((n_img, out_hw[0], out_hw[1], channels))
    for oy in range(out_hw[0]):
        sy = _source_coordinate_ref(oy, height, out_hw[0], align_corners, half_pixel_centers)
        y0 = min(int(np.floor(sy)), height - 1)
        for ox in range(out_hw[1]):
            sx = _source_coordinate_ref(ox, width, out_hw[1], align_corners, half_pixel_centers)
            x0 = min(int(np.floor(sx)), width - 1)
            for y, wy in ((y0, 1 - (sy - y0)), (min(y0 + 1, height - 1), sy - y0)):
                for xx, wx in ((x0, 1 - (sx - x0)), (min(x0 + 1, width - 1), sx - x0)):
                    out[:, oy, ox, :] += wy * wx * x[:, y, xx, :]
    return out


def argmax_channels_ref(x):
    """(N, H, W, C) -> (N, H, W) int64: the first channel holding the maximum, found by an explicit scan."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(x.shape[:3], dtype=np.int64)
    for c in range(1, x.shape[3]):
        best = np.take_along_axis(x, out[..., None], axis=3)[..., 0]
        out = np.where(x[..., c] > best, c, out)
    return out


def concat_channels_ref(parts):
    """Channels of the parts in order: out[..., offset + i] = part[..., i]."""
    parts = [np.asarray(p, dtype=np.float64) for p in parts]
    out = np.zeros((*parts[0].shape[:3], sum(p.shape[3] for p in parts)))
    offset = 0
    for p in parts:
        for i in range(p.shape[3]):
            out[..., offset + i] = p[..., i]
        offset += p.shape[3]
    return out


def image_pool_nhwc_ref(x, out_hw):
    """(N, H, W, C) -> (N, Ho, Wo, C), every pixel the channel mean of its image."""
    x = np.asarray(x, dtype=np.float64)
    mean = np.einsum("nhwc->nc", x) / (x.shape[1] * x.shape[2])
    return np.repeat(np.repeat(mean[:, None, None, :], out_hw[0], axis=1), out_hw[1], axis=2)


def sigmoid_gate_nhwc_ref(x, gate_logits):
    """x * 1 / (1 + exp(-g)) per image and channel.   x: (N, H, W, C)   gate_logits: (N, C)"""
    g = np.asarray(gate_logits, dtype=np.float64)
    return scale_channels_ref(x, 1.0 / (1.0 + np.exp(-g)))


def requantize_ref(x, scale, lo, hi):
    """rint(clip(x * scale, lo, hi)) with every operation rounded to float32, as XNNPACK's fp32 requantization."""
    y = np.asarray(x, np.float32) * np.float32(scale)  # one float32 product per element
    return np.rint(np.clip(y, np.float32(lo), np.float32(hi)))
