"""Elementwise integer kernels of quantized graphs, on uint8 activations (int8 graphs store theirs + 128).

    add_u8(a, b, out, bias, a_multiplier, b_multiplier, shift, out_zp, lo, hi)
        XNNPACK's integer ADD: out = clamp(((bias + a * am + b * bm) >> shift) + zp, lo, hi), the shift arithmetic
        (floor); ``bias`` carries the rounding half and the zero points (tinynet.quantized.arithmetic).
    mul_fp32_u8(a, b, out, a_zp, b_zp, scale, out_zp, lo, hi)
        XNNPACK's fp32 MUL: out = lrintf(clamp(float32((a - a_zp) * (b - b_zp)) * scale, lo - zp, hi - zp)) + zp.

    add_fixed_u8(a, b, out, a_zp, b_zp, a_mult, b_mult, out_mult, out_zp, lo, hi)
        TFLite's 8-bit ADD (SUB: b's multiplier negated): each input's (q - zp) * 2**20 rescaled by its multiplier,
        the sum by the output's, + zp, clamped; mul_fixed_u8(a, b, out, a_zp, b_zp, mult, out_zp, lo, hi) TFLite's
        MUL: (a - a_zp) * (b - b_zp) rescaled, + zp, clamped. A multiplier is (m, s) of QuantizeMultiplier, applied
        as MultiplyByQuantizedMultiplier (``multiply_by_quantized_multiplier``, tinynet.quantized.arithmetic's rule).

a and out are (rows, C); b is (rows, C) or (1, C), one row broadcast to every row (a squeeze-excite gate).
"""
import numpy as np
from numba import njit, prange

ADD_LEFT_SHIFT = 20  # TFLite's 8-bit ADD: inputs scaled by 2**20 before their rescaling


@njit(parallel=True, cache=True)
def add_u8(a, b, out, bias, a_multiplier, b_multiplier, shift, out_zp, lo, hi):
    rows, channels = a.shape
    broadcast = b.shape[0] == 1
    for r in prange(rows):
        rb = np.int64(0) if broadcast else np.int64(r)
        for c in range(channels):
            acc = np.int64(bias) + np.int64(a[r, c]) * a_multiplier + np.int64(b[rb, c]) * b_multiplier
            y = (acc >> shift) + out_zp
            out[r, c] = np.uint8(min(max(y, lo), hi))


@njit(parallel=True, cache=True)
def mul_fp32_u8(a, b, out, a_zp, b_zp, scale, out_zp, lo, hi):
    rows, channels = a.shape
    broadcast = b.shape[0] == 1
    low, high = np.float32(lo - out_zp), np.float32(hi - out_zp)
    for r in prange(rows):
        rb = np.int64(0) if broadcast else np.int64(r)
        for c in range(channels):
            product = np.float32((np.int32(a[r, c]) - a_zp) * (np.int32(b[rb, c]) - b_zp)) * scale
            out[r, c] = np.uint8(np.int32(np.rint(min(max(product, low), high))) + out_zp)


@njit(cache=True, inline="always")
def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite's MultiplyByQuantizedMultiplier of an int64 x in int32 range: x * 2**max(s, 0) wrapping in int32, the
    doubling high multiply by m (nudged, truncated toward zero; MIN * MIN saturates), then a division by
    2**max(-s, 0) rounding half away from zero."""
    left, right = max(shift, 0), max(-shift, 0)
    x = ((x << left) + (1 << 31) & 0xFFFFFFFF) - (1 << 31)
    if x == -(1 << 31) and multiplier == -(1 << 31):
        high = np.int64((1 << 31) - 1)
    else:
        product = x * multiplier + ((1 << 30) if x * multiplier >= 0 else 1 - (1 << 30))
        high = product >> 31 if product >= 0 else -((-product) >> 31)
    mask = (np.int64(1) << right) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if (high & mask) > threshold else 0)


@njit(parallel=True, cache=True)
def add_fixed_u8(a, b, out, a_zp, b_zp, a_mult, b_mult, out_mult, out_zp, lo, hi):
    rows, channels = a.shape
    broadcast = b.shape[0] == 1
    for r in prange(rows):
        rb = np.int64(0) if broadcast else np.int64(r)
        for c in range(channels):
            sa = multiply_by_quantized_multiplier((np.int64(a[r, c]) - a_zp) << ADD_LEFT_SHIFT, a_mult[0], a_mult[1])
            sb = multiply_by_quantized_multiplier((np.int64(b[rb, c]) - b_zp) << ADD_LEFT_SHIFT, b_mult[0], b_mult[1])
            y = multiply_by_quantized_multiplier(sa + sb, out_mult[0], out_mult[1]) + out_zp
            out[r, c] = np.uint8(min(max(y, lo), hi))


@njit(parallel=True, cache=True)
def mul_fixed_u8(a, b, out, a_zp, b_zp, mult, out_zp, lo, hi):
    rows, channels = a.shape
    broadcast = b.shape[0] == 1
    for r in prange(rows):
        rb = np.int64(0) if broadcast else np.int64(r)
        for c in range(channels):
            product = (np.int64(a[r, c]) - a_zp) * (np.int64(b[rb, c]) - b_zp)
            y = multiply_by_quantized_multiplier(product, mult[0], mult[1]) + out_zp
            out[r, c] = np.uint8(min(max(y, lo), hi))


@njit(parallel=True, cache=True)
def lookup_u8(x, table, out):
    """out = table[x] for uint8 x (flat) and a 256-entry uint8 table: an 8-bit activation (HARD_SWISH, LOGISTIC)
    tabulated once at load."""
    for i in prange(x.shape[0]):
        out[i] = table[x[i]]


@njit(parallel=True, cache=True)
def average_pool_u8(x, out, kh, kw, stride_h, stride_w, pad_top, pad_left, offset, lo, hi):
    """TFLite's 8-bit AVERAGE_POOL_2D over the in-image taps of each window: the sum s of the file's values
    (stored - ``offset``: 128 for int8 tensors, else 0) over n taps, rounded as the reference kernels do:
    (s + n/2) / n for s >= 0, -((-s + n/2) / n) below (integer division), then + offset, clamped to lo..hi."""
    n_img, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for task in prange(n_img * out_h):
        n, r = task // out_h, task % out_h
        r0, r1 = max(r * stride_h - pad_top, 0), min(r * stride_h - pad_top + kh, height)
        acc = np.empty(channels, np.int64)
        for c in range(out_w):
            c0, c1 = max(c * stride_w - pad_left, 0), min(c * stride_w - pad_left + kw, width)
            taps = (r1 - r0) * (c1 - c0)
            acc[:] = 0
            for i in range(r0, r1):
                for j in range(c0, c1):
                    for k in range(channels):
                        acc[k] += x[n, i, j, k]
            for k in range(channels):
                s = acc[k] - offset * taps
                q = (s + taps // 2) // taps if s >= 0 else -((-s + taps // 2) // taps)
                out[n, r, c, k] = np.uint8(min(max(q + offset, lo), hi))


@njit(cache=True)
def spatial_sums_u8(x, out):
    """out[n, c] = the sum of x[n, :, :, c] (MEAN over H and W; the rescaling, on C values, is the caller's).
    x: (N, H, W, C) uint8   out: (N, C) int64, written"""
    n_img, height, width, channels = x.shape
    for n in range(n_img):
        out[n, :] = 0
        for i in range(height):
            for j in range(width):
                for c in range(channels):
                    out[n, c] += x[n, i, j, c]
