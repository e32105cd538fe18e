"""Integer depthwise convolution (one filter per channel), NHWC, with fused requantization.

acc[n, oy, ox, c] = bias'[c] + sum over taps of x[n, iy, ix, c] * w[ky, kx, c], in int32, where taps outside the
image read ``pad_value`` (the input zero point: with bias' = bias - zp_x * sum of the channel's weights, those taps
then add nothing, as TFLite's kernels skip them). Vectors run along the contiguous channels; the only reduction
is across taps, which the tile pairs for VNNI (XNNPACK's int8 depthwise multiplies in 32 bits instead, vpmulld).

Every output pixel goes by the register kernel of kernels.int8_depthwise_tile (two taps per VNNI instruction):
interior pixels (all taps inside the image, the bulk of every layer) read the input in place; border pixels
first gather their taps into a small patch, ``pad_value`` where they leave the image. The weights are paired once,
at load (kernels.int8_depthwise_tile.pack_depthwise).
"""
import numpy as np
from numba import njit, prange

from .int8_depthwise_tile import dw_pixels_tile
from .padding import interior_columns


@njit(cache=True)
def gather_taps(x, n, iy0, ix0, kh, kw, dilation, pad_value, patch):
    """patch[t*C:(t+1)*C] = the input under tap t of the output pixel whose tap 0 is at (iy0, ix0), ``pad_value``
    outside the image.   x: (N, H, W, C) uint8   patch: (KH*KW*C,) uint8"""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    xf = x.reshape(x.size)
    size = np.uint64(channels)
    for t in range(kh * kw):
        iy, ix = iy0 + t // kw * dilation, ix0 + t % kw * dilation
        dst = np.uint64(t * channels)
        if 0 <= iy < height and 0 <= ix < width:
            src = np.uint64(((n * height + iy) * width + ix) * channels)
            for c in range(size):  # unsigned indices: no negative-index wraparound, which stops vectorising
                patch[dst + c] = xf[src + c]
        else:
            for c in range(size):
                patch[dst + c] = pad_value


@njit(parallel=True, cache=True)
def dwconv2d_nhwc_u8(x, wp, b, rq, out, kh, kw, stride, dilation, pad_top, pad_left, pad_value):
    """out = requant(depthwise_conv(x, w) + bias'), any kernel size, stride and dilation; one task per output row.

    x:    (N, H, W, C) uint8   wp: kernels.int8_depthwise_tile.pack_depthwise(w), w (KH, KW, C)   b: (C,) int32 bias'
    kh, kw: the kernel size
    rq:   kernels.int8_requant.Fp32Requant or FixedRequant for C channels
    out:  (N, Ho, Wo, C) uint8, written; the bottom and right padding are what Ho and Wo imply
    pad_top, pad_left: leading padding; pad_value: what taps outside the image read (0..255)
    """
    n_img, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    xf, of = x.reshape(x.size), out.reshape(out.size)
    lo, hi = interior_columns(width, out_w, (kw - 1) * dilation + 1, stride, pad_left)
    for task in prange(n_img * out_h):
        t = np.int64(task)
        n = t // out_h
        oy = t - n * out_h
        iy0 = oy * stride - pad_top
        interior = iy0 >= 0 and iy0 + (kh - 1) * dilation < height and hi > lo
        if interior:
            dw_pixels_tile(xf, ((n * height + iy0) * width + lo * stride - pad_left) * channels, stride * channels,
                           hi - lo, kh, kw, dilation * width * channels, dilation * channels, wp, b, rq, of,
                           (t * out_w + lo) * channels, channels)
        patch = np.empty(kh * kw * channels, np.uint8)
        for ox in range(out_w):
            if not (interior and lo <= ox < hi):
                gather_taps(x, n, iy0, ox * stride - pad_left, kh, kw, dilation, pad_value, patch)
                dw_pixels_tile(patch, 0, 0, 1, kh, kw, kw * channels, channels, wp, b, rq, of,
                               (t * out_w + ox) * channels, channels)
