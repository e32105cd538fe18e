"""Plain NumPy references of the integer kernels: the test oracle.

Written from the definitions, not from the kernels: whole-array int64 arithmetic, explicit padding with
np.pad, weights as stored ((K, M), (KH, KW, C), (KH, KW, Cin, Cout)) rather than packed. Each returns a new
uint8 array; names are the kernels' plus ``_ref``. Requantization parameters are plain per-channel arrays.
"""
import numpy as np


def requant_fp32_ref(acc, scale, out_zp, out_min, out_max):
    """XNNPACK fp32: float32(acc) * scale, clamped to [lo - zp, hi - zp], rounded half to even, + zp.
    acc: (..., C) integers   scale: (C,) float32"""
    y = np.asarray(acc).astype(np.float32) * np.asarray(scale, np.float32)  # float32 product, one rounding
    y = np.clip(y, np.float32(out_min - out_zp), np.float32(out_max - out_zp))
    return (np.rint(y).astype(np.int64) + out_zp).astype(np.uint8)


def _int32_wrap(v):
    return ((np.asarray(v, np.int64) + 2**31) % 2**32) - 2**31


def multiply_by_quantized_multiplier_ref(acc, multiplier, shift):
    """TFLite's double-rounding fixed-point multiply, from its definition.  acc: (..., C)   multiplier, shift: (C,)"""
    shift = np.asarray(shift, np.int64)
    m = np.asarray(multiplier, np.int64)
    x = _int32_wrap(np.asarray(acc, np.int64) * 2 ** np.maximum(shift, 0))
    # SaturatingRoundingDoublingHighMul: (2*x*m + rounding) / 2**32, i.e. (x*m + nudge) / 2**31 toward zero
    t = x * m
    t = t + np.where(t >= 0, 2**30, 1 - 2**30)
    high = np.where(t >= 0, t // 2**31, -((-t) // 2**31))
    high = np.where((x == -2**31) & (m == -2**31), 2**31 - 1, high)
    # RoundingDivideByPOT: x / 2**e rounded to nearest, ties away from zero
    e = np.maximum(-shift, 0)
    half = np.where(e > 0, 2 ** np.maximum(e - 1, 0), 0)
    magnitude = (np.abs(high) + half) // 2**e
    return np.sign(high) * magnitude


def requant_fixed_ref(acc, multiplier, shift, out_zp, out_min, out_max):
    """TFLite reference: clamp(MultiplyByQuantizedMultiplier(acc, m, s) + zp, lo, hi), the + zp in int32 as TFLite
    adds it (wrapping, as x86 does, for the results within zp of 2**31 that no conv reaches)."""
    y = _int32_wrap(multiply_by_quantized_multiplier_ref(acc, multiplier, shift) + out_zp)
    return np.clip(y, out_min, out_max).astype(np.uint8)


def requant_fixed_simd_ref(acc, multiplier, shift, out_zp, out_min, out_max):
    """TFLite's optimized SIMD lanes, in Python integers (exact): h = floor(acc * 2**max(s, 0) * m / 2**31 + 1/2),
    then h / 2**max(-s, 0) rounded to nearest with ties up, + zp, clamped.  acc: (..., C)   multiplier, shift: (C,)"""
    acc = np.asarray(acc, np.int64)
    m = np.broadcast_to(np.asarray(multiplier, np.int64), acc.shape)
    s = np.broadcast_to(np.asarray(shift, np.int64), acc.shape)
    out = np.empty(acc.shape, np.int64)
    for i in np.ndindex(acc.shape):
        a, mi, si = int(acc[i]), int(m[i]), int(s[i])
        high = (a * 2 ** max(si, 0) * mi + 2**30) // 2**31  # Python's // floors
        e = max(-si, 0)
        rounded = (high + (2 ** (e - 1) if e else 0)) // 2**e
        out[i] = min(max(rounded + out_zp, out_min), out_max)
    return out.astype(np.uint8)


REQUANT_REFS = {"fp32": requant_fp32_ref, "fixed": requant_fixed_ref, "fixed_simd": requant_fixed_simd_ref}


def requant_ref(acc, params):
    """Dispatch on ``params``: ("fp32", scale, zp, lo, hi), ("fixed", multiplier, shift, zp, lo, hi) or
    ("fixed_simd", multiplier, shift, zp, lo, hi)."""
    mode, *args = params
    return REQUANT_REFS[mode](acc, *args)


def gemm_accumulators_ref(x, w, bias):
    """bias' + x @ w in int64.  x: (P, K) uint8   w: (K, M)   bias: (M,)"""
    return np.asarray(x, np.int64) @ np.asarray(w, np.int64) + np.asarray(bias, np.int64)


def _padded(x, pads, pad_value):
    top, bottom, left, right = pads
    return np.pad(np.asarray(x, np.int64), ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=pad_value)


def _taps(xp, kh, kw, stride, dilation, out_h, out_w):
    """(ky, kx, view (N, Ho, Wo, C)) of the padded input under each tap."""
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dilation, kx * dilation
            yield ky, kx, xp[:, y0:y0 + (out_h - 1) * stride + 1:stride, x0:x0 + (out_w - 1) * stride + 1:stride]


def conv_output_hw(h, w, kh, kw, stride, dilation, pads):
    """(Ho, Wo) of a conv with explicit pads (top, bottom, left, right)."""
    top, bottom, left, right = pads
    return ((h + top + bottom - (kh - 1) * dilation - 1) // stride + 1,
            (w + left + right - (kw - 1) * dilation - 1) // stride + 1)


def dwconv_accumulators_ref(x, w, bias, stride, dilation, pads, pad_value):
    """(N, Ho, Wo, C) int64 depthwise accumulators.  x: (N, H, W, C)   w: (KH, KW, C)"""
    kh, kw = w.shape[:2]
    out_h, out_w = conv_output_hw(x.shape[1], x.shape[2], kh, kw, stride, dilation, pads)
    acc = np.zeros((x.shape[0], out_h, out_w, x.shape[3]), np.int64) + np.asarray(bias, np.int64)
    for ky, kx, tap in _taps(_padded(x, pads, pad_value), kh, kw, stride, dilation, out_h, out_w):
        acc += tap * np.asarray(w[ky, kx], np.int64)
    return acc


def conv_accumulators_ref(x, w, bias, stride, dilation, pads, pad_value):
    """(N, Ho, Wo, Cout) int64 conv accumulators.  x: (N, H, W, Cin)   w: (KH, KW, Cin, Cout)"""
    kh, kw = w.shape[:2]
    out_h, out_w = conv_output_hw(x.shape[1], x.shape[2], kh, kw, stride, dilation, pads)
    acc = np.zeros((x.shape[0], out_h, out_w, w.shape[3]), np.int64) + np.asarray(bias, np.int64)
    for ky, kx, tap in _taps(_padded(x, pads, pad_value), kh, kw, stride, dilation, out_h, out_w):
        acc += np.einsum("nhwi,io->nhwo", tap, np.asarray(w[ky, kx], np.int64))
    return acc


def gemm_bias_requant_u8_ref(x, w, bias, params):
    return requant_ref(gemm_accumulators_ref(x, w, bias), params)


def dwconv2d_nhwc_u8_ref(x, w, bias, params, stride, dilation, pads, pad_value):
    return requant_ref(dwconv_accumulators_ref(x, w, bias, stride, dilation, pads, pad_value), params)


def conv2d_nhwc_u8_ref(x, w, bias, params, stride, dilation, pads, pad_value):
    return requant_ref(conv_accumulators_ref(x, w, bias, stride, dilation, pads, pad_value), params)
