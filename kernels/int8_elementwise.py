"""Elementwise integer kernels of quantized graphs, on uint8 activations (int8 graphs store theirs + 128).

    add_u8(a, b, out, bias, a_multiplier, b_multiplier, shift, out_zp, lo, hi)
        XNNPACK's integer ADD: out = clamp(((bias + a * am + b * bm) >> shift) + zp, lo, hi), the shift arithmetic
        (floor); ``bias`` carries the rounding half and the zero points (tinynet.quantized.arithmetic).
    mul_fp32_u8(a, b, out, a_zp, b_zp, scale, out_zp, lo, hi)
        XNNPACK's fp32 MUL: out = lrintf(clamp(float32((a - a_zp) * (b - b_zp)) * scale, lo - zp, hi - zp)) + zp.

a and out are (rows, C); b is (rows, C) or (1, C), one row broadcast to every row (a squeeze-excite gate).
"""
import numpy as np
from numba import njit, prange


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
