"""Standard convolution (groups=1), NHWC: the MobileNet stem, and the 3x3 baseline of bench/dw_vs_conv.py.

The interior of an output row is a GEMM that needs no im2col: the taps of one kernel row of one
output pixel are KW*Cin contiguous floats of the input row, and neighbouring output pixels start
stride*Cin floats apart. kernels.gemm_tile's micro-kernel reads such rows directly, one segment
per kernel row (the segments of the kernel rows that fall outside the image are skipped, so the
top and bottom output rows need no padding either). The few border columns whose taps leave the
image on the left or right take a plain loop.
"""
import numpy as np
from numba import njit, prange

from .activation import NONE, activate_row
from .gemm import NO_RESIDUAL, panel_rows_f32
from .padding import interior_columns



@njit(cache=True, fastmath={"contract"})
def conv_border_pixel_f32(x, wp, bp, j, out_px, n, iy0, ix0, kh, kw, act):
    """out_px = act(b + the taps inside the image) for the channels of panel j.

    x: (N, H, W, Cin)   wp: (panels, KH*KW*Cin, NR)   out_px: (cols,)   (iy0, ix0): input position of tap (0, 0)
    """
    height, width, cin = x.shape[1], x.shape[2], x.shape[3]
    cols = out_px.shape[0]
    for c in range(cols):
        out_px[c] = bp[j, c]
    for ky in range(max(0, -iy0), min(kh, height - iy0)):
        for kx in range(max(0, -ix0), min(kw, width - ix0)):
            for ci in range(cin):
                v = x[n, iy0 + ky, ix0 + kx, ci]
                w_row = wp[j, (ky * kw + kx) * cin + ci]
                for c in range(cols):
                    out_px[c] += v * w_row[c]
    activate_row(out_px, act)


@njit(parallel=True, cache=True)
def conv2d_nhwc_f32(x, wp, bp, out, kh, stride, pad_top, pad_left, act):
    """out = act(conv(x, w) + b), any KHxKW kernel, NHWC; one task per output row and weight panel.

    x:      (N, H, W, Cin)           input
    wp, bp: kernels.gemm_tile.pack(w.reshape(KH*KW*Cin, Cout), b, nr): weights (KH, KW, Cin, Cout), BatchNorm folded
    kh:     KH (KW follows from the packed weights)
    out:    (N, Ho, Wo, Cout)        written; Ho, Wo, pad_top, pad_left from kernels.padding.conv_output_size
    """
    n_img, height, width, cin = x.shape
    out_h, out_w, n_out = out.shape[1], out.shape[2], out.shape[3]
    panels, k_total, nr = wp.shape
    kw = k_total // (kh * cin)
    lo, hi = interior_columns(width, out_w, kw, stride, pad_left)
    rows = n_img * out_h
    for task in prange(rows * panels):  # row by row (all panels of one before the next), as the other kernels split
        t = np.int64(task)
        row = t // panels
        j = t % panels
        n = row // out_h
        oy = row - n * out_h
        iy0 = oy * stride - pad_top
        ky0, ky1 = max(0, -iy0), min(kh, height - iy0)
        cols = min(nr, n_out - j * nr)
        out_row = out[n, oy]  # (Wo, Cout)
        if hi > lo:
            a_off = ((n * height + iy0 + ky0) * width + lo * stride - pad_left) * cin
            o_off = ((n * out_h + oy) * out_w + lo) * n_out + j * nr
            panel_rows_f32(x, a_off, stride * cin, width * cin, ky1 - ky0, kw * cin, wp, bp, j, ky0 * kw * cin, out,
                           o_off, n_out, hi - lo, cols, act, NO_RESIDUAL, 0, 0)
        for ox in range(out_w):
            if ox < lo or ox >= hi:
                pixel = out_row[ox, j * nr:j * nr + cols]
                conv_border_pixel_f32(x, wp, bp, j, pixel, n, iy0, ox * stride - pad_left, kh, kw, act)


@njit(cache=True, inline="always")
def _valid_taps(ix0, dilation, kw, width):
    """[kx0, kx1): the kernel columns of a pixel whose first tap is at input column ``ix0`` that fall in the image."""
    kx0 = 0 if ix0 >= 0 else (-ix0 + dilation - 1) // dilation
    kx1 = 0 if ix0 > width - 1 else min(kw, (width - 1 - ix0) // dilation + 1)
    return kx0, max(kx0, kx1)


DILATED_ROW_BLOCK = 8  # output rows per task at most: each tap's weights are read once for them all


def dilated_row_block(rows, panels, threads):
    """Output rows per task of conv2d_dilated_nhwc_f32 (N*Ho = ``rows``): DILATED_ROW_BLOCK, or fewer so that the
    blocks are a multiple of ``threads`` in number when the panels do not divide between the threads."""
    blocks = -(-rows // DILATED_ROW_BLOCK)
    if panels % threads:
        blocks = min(rows, -(-blocks // threads) * threads)
    return -(-rows // blocks)


@njit(parallel=True, cache=True)
def conv2d_dilated_nhwc_f32(x, wp, bp, out, kh, stride, dilation, pad_top, pad_left, act, block):
    """conv2d_nhwc_f32 with taps ``dilation`` pixels apart (atrous, DeepLab's ASPP); same packed weights.

    One task per weight panel and block of ``block`` output rows (dilated_row_block), panel by panel: the static split
    gives each of T threads panels/T panels over all the rows, the same work whatever the rows' share of taps
    inside the image (split block by block, 5 blocks of a 33-row map made halves of 0.81-0.88 of each other's
    work at 2 threads: ASPP's rates 12, 24, 36). When the panels do not divide between the threads, the blocks
    are a multiple of the threads in number, so that the rows do (1 panel, 33 rows, 2 threads: 6 blocks of 6
    rows or fewer, not 5 of 8, which split 24 + 9 rows). The pixels of a row are cut into runs
    whose taps inside the image are the same kernel columns [kx0, kx1); for each run, each kernel row and each row
    of the block where that kernel row is inside the image, one sweep of kernels.gemm_tile's micro-kernel: the
    run's pixels start ``stride * Cin`` floats apart and a pixel's taps are kx1 - kx0 segments of Cin floats
    ``dilation * Cin`` apart. The first sweep of a row writes bias + taps, the others add their taps to what is
    stored (the output as the residual, zero bias); the activation comes last. Only taps inside the image are
    computed (at 33x33 with dilation 24 or 36, most taps of most pixels leave it), and a kernel row's weights
    serve the whole block of rows while they are in cache. That reuse also makes it the faster kernel at
    dilation 1 when the weights are large (tinynet.graph's "conv" nodes, ROW_BLOCK_MIN_CIN).
    """
    n_img, height, width, cin = x.shape
    out_h, out_w, n_out = out.shape[1], out.shape[2], out.shape[3]
    panels, k_total, nr = wp.shape
    kw = k_total // (kh * cin)
    zero_bias = np.zeros_like(bp)
    flat = out.reshape(-1, n_out)  # the output as a residual: row r of a sweep at o_off + r * n_out
    rows = n_img * out_h
    blocks = (rows + block - 1) // block
    for task in prange(blocks * panels):
        t = np.int64(task)
        j = t // blocks
        r0 = (t - j * blocks) * block
        r1 = min(r0 + block, rows)
        cols = min(nr, n_out - j * nr)
        written = np.zeros(DILATED_ROW_BLOCK, np.bool_)
        ox = 0
        while ox < out_w:
            ix0 = ox * stride - pad_left
            kx0, kx1 = _valid_taps(ix0, dilation, kw, width)
            end = ox + 1
            while end < out_w and _valid_taps(end * stride - pad_left, dilation, kw, width) == (kx0, kx1):
                end += 1
            written[:] = False
            for ky in range(kh if kx1 > kx0 else 0):
                k0 = (ky * kw + kx0) * cin
                for r in range(r0, r1):
                    n = r // out_h
                    oy = r - n * out_h
                    iy = oy * stride - pad_top + ky * dilation
                    if iy < 0 or iy >= height:
                        continue
                    a_off = ((n * height + iy) * width + ix0 + kx0 * dilation) * cin
                    o_off = (r * out_w + ox) * n_out + j * nr
                    if written[r - r0]:
                        panel_rows_f32(x, a_off, stride * cin, dilation * cin, kx1 - kx0, cin, wp, zero_bias, j, k0,
                                       out, o_off, n_out, end - ox, cols, NONE, flat, o_off, n_out)
                    else:
                        panel_rows_f32(x, a_off, stride * cin, dilation * cin, kx1 - kx0, cin, wp, bp, j, k0, out,
                                       o_off, n_out, end - ox, cols, NONE, NO_RESIDUAL, 0, 0)
                        written[r - r0] = True
            for r in range(r0, r1):
                n = r // out_h
                oy = r - n * out_h
                for px in range(ox, end):
                    pixel = out[n, oy, px, j * nr:j * nr + cols]
                    if not written[r - r0]:  # no tap inside the image
                        for c in range(cols):
                            pixel[c] = bp[j, c]
                    activate_row(pixel, act)
            ox = end
