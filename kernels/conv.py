"""Standard convolution (groups=1): the MobileNet stem, and the 3x3 baseline of bench/dw_vs_conv.py.

One task per output row. The stem's shape (3x3 over 3 input channels) has a kernel of its own,
``stem_conv_f32``:
per output pixel the 27 input values are scalars and the loop over output channels sums all 27
taps in registers. Every other shape
gathers the row's input patches into a (Wo, KH*KW*Cin) matrix (im2col of one row, zeros where a
tap falls in the padding) and runs the pointwise GEMM kernel on it with the weights viewed as
(KH*KW*Cin, Cout).
"""
import numpy as np
from numba import njit, prange

from kernels.activation import activate_rows
from kernels.gemm import NO_RESIDUAL, gemm_panel_f32, l2_k_tile

ZERO = np.float32(0.0)


@njit(cache=True)
def im2col_row_f32(x, n, oy, ox0, stride, pad_top, pad_left, kh, kw, cols):
    """cols[j] = the KHxKWxCin patch of output pixel (oy, ox0 + j) of image n, flattened (ky, kx, ci).

    x: (N, H, W, Cin)   cols: (pixels, KH*KW*Cin)
    """
    height, width, cin = x.shape[1], x.shape[2], x.shape[3]
    for j in range(cols.shape[0]):
        ix0 = (ox0 + j) * stride - pad_left
        t = 0
        for ky in range(kh):
            iy = oy * stride - pad_top + ky
            for kx in range(kw):
                ix = ix0 + kx
                if 0 <= iy < height and 0 <= ix < width:
                    for ci in range(cin):
                        cols[j, t + ci] = x[n, iy, ix, ci]
                else:
                    for ci in range(cin):
                        cols[j, t + ci] = ZERO
                t += cin


@njit(cache=True, fastmath={"contract"})
def conv_row_f32(x, w2, b, out, stride, pad_top, pad_left, act, kh, kw, task):
    """Output row ``task`` (image task // Ho, row task % Ho) of the convolution."""
    out_h, out_w = out.shape[1], out.shape[2]
    n = task // out_h
    oy = task - n * out_h
    cols = np.empty((out_w, w2.shape[0]), np.float32)
    im2col_row_f32(x, n, oy, 0, stride, pad_top, pad_left, kh, kw, cols)
    gemm_panel_f32(cols, w2, b, out[n, oy], act, NO_RESIDUAL, l2_k_tile(w2.shape[0], w2.shape[1]))


@njit(cache=True, fastmath={"contract"}, inline="always")
def stem_pixels_f32(r0, r1, r2, i0, i1, w2, b, o0, o1):
    """o0 and o1 (two output pixels, (Cout,) each) = b + the 27 taps of a 3x3 conv over 3 channels.

    r0..r2: flat (W*3,) input rows of the three kernel rows; the pixels' inputs start at i0 and i1.
    w2: (27, Cout). Every index inside is a literal or a loop counter: a signed runtime index (its
    negative-index wraparound) kept LLVM from vectorising the loop over output channels (3x slower).
    The 54 inputs are loaded before that loop, and two pixels with one sum per kernel row give six
    independent FMA chains per output vector (one pixel's 27-FMA chain was latency-bound).
    """
    a, bb, c = r0[i0:i0 + 9], r1[i0:i0 + 9], r2[i0:i0 + 9]
    d, e, f = r0[i1:i1 + 9], r1[i1:i1 + 9], r2[i1:i1 + 9]
    a0, a1, a2, a3, a4, a5, a6, a7, a8 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
    b0, b1, b2, b3, b4, b5, b6, b7, b8 = bb[0], bb[1], bb[2], bb[3], bb[4], bb[5], bb[6], bb[7], bb[8]
    c0, c1, c2, c3, c4, c5, c6, c7, c8 = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
    d0, d1, d2, d3, d4, d5, d6, d7, d8 = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8]
    e0, e1, e2, e3, e4, e5, e6, e7, e8 = e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8]
    f0, f1, f2, f3, f4, f5, f6, f7, f8 = f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]
    for co in range(o0.shape[0]):
        w0, w1, w2_, w3, w4, w5, w6, w7, w8 = w2[0, co], w2[1, co], w2[2, co], w2[3, co], w2[4, co], w2[5, co], w2[6, co], w2[7, co], w2[8, co]  # noqa: E501
        u0, u1, u2, u3, u4, u5, u6, u7, u8 = w2[9, co], w2[10, co], w2[11, co], w2[12, co], w2[13, co], w2[14, co], w2[15, co], w2[16, co], w2[17, co]  # noqa: E501
        v0, v1, v2, v3, v4, v5, v6, v7, v8 = w2[18, co], w2[19, co], w2[20, co], w2[21, co], w2[22, co], w2[23, co], w2[24, co], w2[25, co], w2[26, co]  # noqa: E501
        p = b[co] + a0 * w0 + a1 * w1 + a2 * w2_ + a3 * w3 + a4 * w4 + a5 * w5 + a6 * w6 + a7 * w7 + a8 * w8
        q = b0 * u0 + b1 * u1 + b2 * u2 + b3 * u3 + b4 * u4 + b5 * u5 + b6 * u6 + b7 * u7 + b8 * u8
        s = c0 * v0 + c1 * v1 + c2 * v2 + c3 * v3 + c4 * v4 + c5 * v5 + c6 * v6 + c7 * v7 + c8 * v8
        o0[co] = p + q + s
        p = b[co] + d0 * w0 + d1 * w1 + d2 * w2_ + d3 * w3 + d4 * w4 + d5 * w5 + d6 * w6 + d7 * w7 + d8 * w8
        q = e0 * u0 + e1 * u1 + e2 * u2 + e3 * u3 + e4 * u4 + e5 * u5 + e6 * u6 + e7 * u7 + e8 * u8
        s = f0 * v0 + f1 * v1 + f2 * v2 + f3 * v3 + f4 * v4 + f5 * v5 + f6 * v6 + f7 * v7 + f8 * v8
        o1[co] = p + q + s


@njit(cache=True, fastmath={"contract"})
def border_pixel_f32(x, w2, b, out_row, n, iy0, ix0, ox):
    """One output pixel with some taps outside the image (skipped): a plain loop, for the few border columns.

    w2: (KH*KW*Cin, Cout) with KH = KW = 3   (iy0, ix0): input position of tap (0, 0)
    """
    height, width, cin = x.shape[1], x.shape[2], x.shape[3]
    for co in range(out_row.shape[1]):
        out_row[ox, co] = b[co]
    for ky in range(3):
        for kx in range(3):
            iy, ix = iy0 + ky, ix0 + kx
            if 0 <= iy < height and 0 <= ix < width:
                for ci in range(cin):
                    a = x[n, iy, ix, ci]
                    t = (ky * 3 + kx) * cin + ci
                    for co in range(out_row.shape[1]):
                        out_row[ox, co] += a * w2[t, co]


@njit(cache=True)
def input_row(x, n, iy, zero_row):
    """Row iy of image n as a flat (W*C,) array, or ``zero_row`` when iy is outside the image (padding)."""
    if 0 <= iy < x.shape[1]:
        return x[n, iy].reshape(x.shape[2] * x.shape[3])
    return zero_row


@njit(cache=True, fastmath={"contract"})
def stem_row_f32(x, w2, b, zero_row, out, stride, pad_top, pad_left, act, task):
    """Output row ``task`` of a 3x3 conv over 3 input channels: interior pixels by stem_pixel_f32, the
    columns whose taps leave the image through the im2col path. Kernel rows outside the image read
    ``zero_row``."""
    width = x.shape[2]
    out_h, out_w = out.shape[1], out.shape[2]
    n = task // out_h
    oy = task - n * out_h
    out_row = out[n, oy]
    lo = min((pad_left + stride - 1) // stride, out_w)
    hi = max(min((width - 3 + pad_left) // stride + 1, out_w), lo)
    # Views starting at the first interior pixel, so that the offsets below grow from 0 with a loop
    # counter (LLVM vectorised nothing when they were signed expressions: 1.6x slower).
    base = (lo * stride - pad_left) * 3
    r0 = input_row(x, n, oy * stride - pad_top, zero_row)[base:]
    r1 = input_row(x, n, oy * stride - pad_top + 1, zero_row)[base:]
    r2 = input_row(x, n, oy * stride - pad_top + 2, zero_row)[base:]
    interior = out_row[lo:hi]
    step = stride * 3
    for j in range((hi - lo) // 2):
        stem_pixels_f32(r0, r1, r2, 2 * j * step, (2 * j + 1) * step, w2, b, interior[2 * j], interior[2 * j + 1])
    if (hi - lo) % 2:  # the last interior pixel, computed twice
        j = hi - lo - 1
        stem_pixels_f32(r0, r1, r2, j * step, j * step, w2, b, interior[j], interior[j])
    for ox in range(out_w):
        if ox < lo or ox >= hi:
            border_pixel_f32(x, w2, b, out_row, n, oy * stride - pad_top, ox * stride - pad_left, ox)
    activate_rows(out_row, act)


@njit(parallel=True, cache=True, fastmath={"contract"})
def conv2d_nhwc_f32(x, w, b, out, stride, pad_top, pad_left, act):
    """out = act(conv(x, w) + b), any kernel size, NHWC (im2col of one output row + GEMM per task).

    x:   (N, H, W, Cin)        input
    w:   (KH, KW, Cin, Cout)   weights, BatchNorm folded
    b:   (Cout,)               bias
    out: (N, Ho, Wo, Cout)     written; Ho, Wo, pad_top, pad_left from kernels.padding.conv_output_size
    """
    kh, kw, cin, cout = w.shape
    w2 = w.reshape(kh * kw * cin, cout)
    for task in prange(out.shape[0] * out.shape[1]):
        conv_row_f32(x, w2, b, out, stride, pad_top, pad_left, act, kh, kw, task)


@njit(parallel=True, cache=True, fastmath={"contract"})
def stem_conv_f32(x, w, b, out, stride, pad_top, pad_left, act):
    """``conv2d_nhwc_f32`` for the MobileNet stem's shape, 3x3 over 3 input channels: w (3, 3, 3, Cout).

    A separate kernel rather than a branch: Numba re-optimises every callee inside each kernel that
    calls it, so a kernel holding both paths took 15 s to compile instead of 5.
    """
    w2 = w.reshape(27, w.shape[3])
    zero_row = np.zeros(x.shape[2] * 3, np.float32)
    for task in prange(out.shape[0] * out.shape[1]):
        stem_row_f32(x, w2, b, zero_row, out, stride, pad_top, pad_left, act, task)
