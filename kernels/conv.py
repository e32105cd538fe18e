"""Standard convolution (groups=1): the MobileNet stem."""
from numba import njit, prange

from kernels.activation import activate_row


@njit(parallel=True, cache=True, fastmath={"contract"})
def conv2d_nhwc_f32(x, w, b, out, stride, pad_top, pad_left, act):
    """out = act(conv(x, w) + b), any kernel size, NHWC.

    x:   (N, H, W, Cin)        input
    w:   (KH, KW, Cin, Cout)   weights, BatchNorm folded
    b:   (Cout,)               bias
    out: (N, Ho, Wo, Cout)     written; Ho, Wo, pad_top, pad_left from kernels.padding.conv_output_size

    One task per output row. Taps falling in the padding are skipped by clipping the tap range
    once per pixel, so there is no bounds test in the channel loops. The innermost loop runs over
    Cout, contiguous in both ``w`` and ``out``, so it vectorises.
    """
    n_img, height, width, cin = x.shape
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
            acc = out[n, oy, ox]  # (Cout,)
            acc[:] = b
            for ky in range(ky_lo, ky_hi):
                for kx in range(kx_lo, kx_hi):
                    pixel = x[n, iy0 + ky, ix0 + kx]  # (Cin,)
                    for ci in range(cin):
                        a = pixel[ci]
                        wv = w[ky, kx, ci]  # (Cout,)
                        for co in range(acc.shape[0]):
                            acc[co] += a * wv[co]
            activate_row(acc, act)
