"""Depthwise convolution (one filter per channel), NHWC."""
from numba import njit, prange

from kernels.activation import activate_row


@njit(parallel=True, cache=True, fastmath={"contract"})
def dwconv2d_nhwc_f32(x, w, b, out, stride, pad_top, pad_left, act):
    """out = act(depthwise_conv(x, w) + b), any kernel size and stride.

    x:   (N, H, W, C)      input
    w:   (KH, KW, C)       one KHxKW filter per channel, BatchNorm folded ("HWC", XNNPACK's hwg)
    b:   (C,)              bias
    out: (N, Ho, Wo, C)    written; Ho, Wo, pad_top, pad_left from kernels.padding.conv_output_size

    One task per output row. The channel loop is innermost and contiguous in x, w and out, so it
    vectorises without fastmath (no reduction across iterations). Out-of-image taps are skipped
    by clipping the tap range once per pixel.
    """
    n_img, height, width, channels = x.shape
    kh, kw = w.shape[0], w.shape[1]
    out_h, out_w = out.shape[1], out.shape[2]
    for task in prange(n_img * out_h):
        n = task // out_h
        oy = task - n * out_h
        iy0 = oy * stride - pad_top
        ky_lo, ky_hi = max(0, -iy0), min(kh, height - iy0)
        for ox in range(out_w):
            ix0 = ox * stride - pad_left
            kx_lo, kx_hi = max(0, -ix0), min(kw, width - ix0)
            acc = out[n, oy, ox]  # (C,)
            acc[:] = b
            for ky in range(ky_lo, ky_hi):
                x_row = x[n, iy0 + ky]  # (W, C)
                w_row = w[ky]  # (KW, C)
                for kx in range(kx_lo, kx_hi):
                    xv = x_row[ix0 + kx]
                    wv = w_row[kx]
                    for c in range(channels):
                        acc[c] += xv[c] * wv[c]
            activate_row(acc, act)
