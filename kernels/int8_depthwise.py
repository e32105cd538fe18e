"""Integer depthwise convolution (one filter per channel), NHWC, with fused requantization.

acc[n, oy, ox, c] = bias'[c] + sum over taps of x[n, iy, ix, c] * w[ky, kx, c], in int32, where taps outside the
image read ``pad_value`` (the input zero point: with bias' = bias - zp_x * sum of the channel's weights, those taps
then add nothing, as TFLite's kernels skip them). Accumulation is vectorised over the contiguous channels; XNNPACK
does the same (VNNI's sums run along a reduction of 4 neighbours, which depthwise has only across taps).

Interior pixels (all taps inside the image, the bulk of every layer) go by the register kernel of
kernels.int8_depthwise_tile, two taps per VNNI instruction; border pixels accumulate tap by tap into a row of
int32, taps outside the image reading ``pad_value``. The weights are widened to int32 and paired once per call.
"""
import numpy as np
from numba import njit, prange

from .int8_depthwise_tile import dw_pixels_tile, pack_pairs
from .int8_requant import requantize
from .padding import interior_columns


@njit(cache=True)
def dw_pixel_taps(x, n, iy0, ix0, dilation, kw, w32, b, rq, pad, acc, dst):
    """dst = requant(b + the taps) for one output pixel, any kernel, taps outside the image reading ``pad``.

    x: (N, H, W, C)   (iy0, ix0): input position of tap 0   w32: (KH*KW, C) int32   acc: (C,) int32 scratch
    """
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    for c in range(channels):
        acc[c] = b[c]
    for t in range(w32.shape[0]):
        iy, ix = iy0 + t // kw * dilation, ix0 + t % kw * dilation
        wt = w32[t]
        if 0 <= iy < height and 0 <= ix < width:
            src = x[n, iy, ix]
            for c in range(channels):
                acc[c] += np.int32(src[c]) * wt[c]
        else:
            for c in range(channels):
                acc[c] += pad * wt[c]
    for c in range(channels):
        dst[c] = requantize(rq, acc[c], c)


@njit(parallel=True, cache=True)
def dwconv2d_nhwc_u8(x, w, b, rq, out, stride, dilation, pad_top, pad_left, pad_value):
    """out = requant(depthwise_conv(x, w) + bias'), any kernel size, stride and dilation; one task per output row.

    x:    (N, H, W, C) uint8           w: (KH, KW, C) int16 (int8 weights fit)   b: (C,) int32 bias'
    rq:   kernels.int8_requant.Fp32Requant or FixedRequant for C channels
    out:  (N, Ho, Wo, C) uint8, written; the bottom and right padding are what Ho and Wo imply
    pad_top, pad_left: leading padding; pad_value: what taps outside the image read (0..255)
    """
    n_img, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    kh, kw = w.shape[0], w.shape[1]
    w32 = np.empty((kh * kw, channels), np.int32)
    for t in range(kh * kw):
        for c in range(channels):
            w32[t, c] = w[t // kw, t % kw, c]
    taps, pairs = kh * kw, (kh * kw + 1) // 2
    tap_offsets = np.empty(2 * pairs, np.int64)  # from tap 0, in the flat input; an odd count repeats the last
    for i in range(2 * pairs):
        tap = min(i, taps - 1)
        tap_offsets[i] = ((tap // kw) * width + tap % kw) * dilation * channels
    w_pairs = pack_pairs(w32, pairs).reshape(-1)
    xf, of = x.reshape(x.size), out.reshape(out.size)
    lo, hi = interior_columns(width, out_w, (kw - 1) * dilation + 1, stride, pad_left)
    pad = np.int32(pad_value)
    for task in prange(n_img * out_h):
        t = np.int64(task)
        n = t // out_h
        oy = t - n * out_h
        iy0 = oy * stride - pad_top
        interior = iy0 >= 0 and iy0 + (kh - 1) * dilation < height and hi > lo
        if interior:
            dw_pixels_tile(xf, ((n * height + iy0) * width + lo * stride - pad_left) * channels, stride * channels,
                           hi - lo, tap_offsets, pairs, w_pairs, b, rq, of, (t * out_w + lo) * channels, channels)
        acc = np.empty(channels, np.int32)
        for ox in range(out_w):
            if not (interior and lo <= ox < hi):
                dw_pixel_taps(x, n, iy0, ox * stride - pad_left, dilation, kw, w32, b, rq, pad, acc, out[n, oy, ox])
