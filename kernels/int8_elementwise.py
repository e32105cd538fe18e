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
