"""Integer depthwise convolution (one filter per channel), NHWC, with fused requantization.

acc[n, oy, ox, c] = bias'[c] + sum over taps of x[n, iy, ix, c] * w[ky, kx, c], in int32, where taps outside the
image read ``pad_value`` (the input zero point: with bias' = bias - zp_x * sum of the channel's weights, those taps
then add nothing, as TFLite's kernels skip them). Accumulation is vectorised over the contiguous channels; XNNPACK
does the same (int8 depthwise gains nothing from VNNI, whose sums run along the reduction, here only the taps).
"""
import numpy as np
from numba import njit, prange

from .int8_requant import requantize


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
    pad = np.int32(pad_value)
    for task in prange(n_img * out_h):
        t = np.int64(task)
        n = t // out_h
        oy = t - n * out_h
        acc = np.empty(channels, np.int32)
        for ox in range(out_w):
            for c in range(channels):
                acc[c] = b[c]
            for ky in range(kh):
                iy = oy * stride - pad_top + ky * dilation
                for kx in range(kw):
                    ix = ox * stride - pad_left + kx * dilation
                    wk = w[ky, kx]
                    if 0 <= iy < height and 0 <= ix < width:
                        src = x[n, iy, ix]
                        for c in range(channels):
                            acc[c] += np.int32(src[c]) * np.int32(wk[c])
                    else:
                        for c in range(channels):
                            acc[c] += pad * np.int32(wk[c])
            dst = out[n, oy, ox]
            for c in range(channels):
                dst[c] = requantize(rq, acc[c], c)
