"""Depthwise convolution (one filter per channel), NHWC.

Each output row is one task. Within a row, the pixels whose taps all fall inside the image (the
interior) run through a kernel written out tap by tap for 3x3 and 5x5, so the sum over taps stays
in registers and the loop over channels is the only loop LLVM has to vectorise; the input rows are
addressed as flat (W*C,) arrays with unsigned offsets, so no negative-index wraparound test gets
into that loop (../shared/notes/numba-lab.md, rule 1). Rows whose taps leave the image at the top or
bottom read a zero row instead, so only the few border columns take the generic path.

At stride 1 the outputs of ``PIXELS`` neighbouring pixels are one contiguous run of PIXELS*C floats,
and so are the inputs of every tap: one loop over that run, with the weights and bias repeated
PIXELS times, replaces PIXELS short loops. Longer loops mean fewer loop entries, each of which
pays for LLVM's runtime alias checks between the 19 streams (bench/README.md, "What was tried").
Wide layers go along the row in channel tiles of at most CHANNEL_TILE, so that the inputs a pixel
shares with its neighbour are still in L1 (14x14x576: 123 -> 60 us). The row function is inlined
into the parallel loop, whose arrays Numba marks as not aliasing each other.
"""
import numpy as np
from numba import njit, prange

from kernels.activation import activate_rows

PIXELS = 4  # stride-1 output pixels per flat run when channels are few
LONG_RUN = 128  # channels from which one pixel is run enough
CHANNEL_TILE = 256  # channels per pass along a row (L1: 9 input and 9 weight vectors of this length)


@njit(cache=True, fastmath={"contract"}, inline="always")
def taps3_f32(r0, r1, r2, w, b, o, in0, out0, c0, step, n, count, in_step, out_step):
    """``count`` runs of a 3x3 depthwise conv over flat rows, the tap sum held in registers.

    Run j writes o[out0 + j*out_step + i] = b[c0+i] + sum over taps (dy, dx) of
    r_dy[in0 + j*in_step + dx*step + i] * w[dy, dx, c0+i], for i in range(n).
    r0..r2: (W*C,) input rows   w: (3, 3, Cw)   b: (Cw,)   o: (Wo*C,) output row
    in0, out0, c0, step, in_step, out_step: np.uint64 (unsigned: no wraparound test in the loop)
    """
    for j in range(count):
        a0 = in0 + np.uint64(j) * in_step
        a1 = a0 + step
        a2 = a1 + step
        oj = out0 + np.uint64(j) * out_step
        for i in range(n):
            u = np.uint64(i)
            c = c0 + u
            v = b[c]
            v += r0[a0 + u] * w[0, 0, c]
            v += r0[a1 + u] * w[0, 1, c]
            v += r0[a2 + u] * w[0, 2, c]
            v += r1[a0 + u] * w[1, 0, c]
            v += r1[a1 + u] * w[1, 1, c]
            v += r1[a2 + u] * w[1, 2, c]
            v += r2[a0 + u] * w[2, 0, c]
            v += r2[a1 + u] * w[2, 1, c]
            v += r2[a2 + u] * w[2, 2, c]
            o[oj + u] = v


@njit(cache=True, fastmath={"contract"}, inline="always")
def taps5_f32(r0, r1, r2, r3, r4, w, b, o, in0, out0, c0, step, n, count, in_step, out_step):
    """``taps3_f32`` for a 5x5 kernel: rows r0..r4, weights (5, 5, Cw)."""
    for j in range(count):
        a0 = in0 + np.uint64(j) * in_step
        a1 = a0 + step
        a2 = a1 + step
        a3 = a2 + step
        a4 = a3 + step
        oj = out0 + np.uint64(j) * out_step
        for i in range(n):
            u = np.uint64(i)
            c = c0 + u
            v = b[c]
            v += r0[a0 + u] * w[0, 0, c]
            v += r0[a1 + u] * w[0, 1, c]
            v += r0[a2 + u] * w[0, 2, c]
            v += r0[a3 + u] * w[0, 3, c]
            v += r0[a4 + u] * w[0, 4, c]
            v += r1[a0 + u] * w[1, 0, c]
            v += r1[a1 + u] * w[1, 1, c]
            v += r1[a2 + u] * w[1, 2, c]
            v += r1[a3 + u] * w[1, 3, c]
            v += r1[a4 + u] * w[1, 4, c]
            v += r2[a0 + u] * w[2, 0, c]
            v += r2[a1 + u] * w[2, 1, c]
            v += r2[a2 + u] * w[2, 2, c]
            v += r2[a3 + u] * w[2, 3, c]
            v += r2[a4 + u] * w[2, 4, c]
            v += r3[a0 + u] * w[3, 0, c]
            v += r3[a1 + u] * w[3, 1, c]
            v += r3[a2 + u] * w[3, 2, c]
            v += r3[a3 + u] * w[3, 3, c]
            v += r3[a4 + u] * w[3, 4, c]
            v += r4[a0 + u] * w[4, 0, c]
            v += r4[a1 + u] * w[4, 1, c]
            v += r4[a2 + u] * w[4, 2, c]
            v += r4[a3 + u] * w[4, 3, c]
            v += r4[a4 + u] * w[4, 4, c]
            o[oj + u] = v


@njit(cache=True, fastmath={"contract"})
def taps_f32(rows, w, b, o, in0, out0, c0, step, n, count, in_step, out_step):
    """Dispatch to the 3x3 or 5x5 body (``rows`` holds KH flat input rows)."""
    u = np.uint64
    if len(rows) == 3:
        taps3_f32(rows[0], rows[1], rows[2], w, b, o, u(in0), u(out0), u(c0), u(step), n, count, u(in_step), u(out_step))
    else:
        taps5_f32(rows[0], rows[1], rows[2], rows[3], rows[4], w, b, o, u(in0), u(out0), u(c0), u(step), n, count,
                  u(in_step), u(out_step))


@njit(cache=True, fastmath={"contract"})
def border_pixel_f32(x, w, b, out_row, n, iy0, ix0, ox):
    """One output pixel by the generic path: taps outside the image are skipped.

    x: (N, H, W, C)   w: (KH, KW, C)   out_row: (Wo, C)   (iy0, ix0): input position of tap (0, 0)
    """
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    kh, kw = w.shape[0], w.shape[1]
    for c in range(channels):
        out_row[ox, c] = b[c]
    for ky in range(max(0, -iy0), min(kh, height - iy0)):
        for kx in range(max(0, -ix0), min(kw, width - ix0)):
            for c in range(channels):
                out_row[ox, c] += x[n, iy0 + ky, ix0 + kx, c] * w[ky, kx, c]


@njit(cache=True, fastmath={"contract"})
def interior_columns(width, out_w, kw, stride, pad_left):
    """Output columns [lo, hi) whose kw taps all fall inside the input row."""
    lo = min((pad_left + stride - 1) // stride, out_w)
    hi = max(min((width - kw + pad_left) // stride + 1, out_w), lo)
    return lo, hi


@njit(cache=True)
def channel_tile(channels):
    """Channels per pass along a row: whole pixels up to CHANNEL_TILE, else equal multiples of 16,
    so that the inputs of neighbouring pixels are still in L1 when the next pixel reuses them."""
    if channels <= CHANNEL_TILE:
        return channels
    tiles = (channels + CHANNEL_TILE - 1) // CHANNEL_TILE
    return ((channels + tiles - 1) // tiles + 15) // 16 * 16


@njit(cache=True, fastmath={"contract"}, inline="always")
def dw_row_f32(x, w, b, w_run, b_run, zero_row, out, act, stride, pad_top, pad_left, task):
    """Output row ``task`` (image n = task // Ho, row oy = task % Ho) of the depthwise conv."""
    n_img, height, width, channels = x.shape
    kh, kw = w.shape[0], w.shape[1]
    out_h, out_w = out.shape[1], out.shape[2]
    n = task // out_h
    oy = task - n * out_h
    iy0 = oy * stride - pad_top
    out_row = out[n, oy]  # (Wo, C)
    lo, hi = interior_columns(width, out_w, kw, stride, pad_left)
    if kh == kw and (kh == 3 or kh == 5) and hi > lo:
        flat_out = out_row.reshape(out_w * channels)
        rows = [zero_row] * kh  # (W*C,) each: the input row of each kernel row, or zeros outside the image
        for ky in range(kh):
            iy = iy0 + ky
            if 0 <= iy < height:
                rows[ky] = x[n, iy].reshape(width * channels)
        run = w_run.shape[2] // channels  # pixels per contiguous run at stride 1
        rest = lo  # first column not covered by runs
        if stride == 1 and run > 1:
            count = (hi - lo) // run
            taps_f32(rows, w_run, b_run, flat_out, (lo - pad_left) * channels, lo * channels, 0, channels,
                     run * channels, count, run * channels, run * channels)
            rest += count * run
        tile = channel_tile(channels)
        for c0 in range(0, channels, tile):
            taps_f32(rows, w, b, flat_out, (rest * stride - pad_left) * channels + c0, rest * channels + c0, c0, channels,
                     min(tile, channels - c0), hi - rest, stride * channels, channels)
    else:
        lo, hi = 0, 0
    for ox in range(out_w):
        if ox < lo or ox >= hi:
            border_pixel_f32(x, w, b, out_row, n, iy0, ox * stride - pad_left, ox)
    activate_rows(out_row, act)


def pack_runs(w, b):
    """The weights and bias of one stride-1 run: ``(w_run (KH, KW, pixels*C), b_run (pixels*C,))``.

    Made once per layer (tinynet.plan does it at load time); ``pixels`` is PIXELS for fewer than
    LONG_RUN channels and 1 otherwise.
    """
    pixels = PIXELS if w.shape[2] < LONG_RUN else 1
    return np.ascontiguousarray(np.tile(w, pixels), np.float32), np.ascontiguousarray(np.tile(b, pixels), np.float32)


@njit(parallel=True, cache=True, fastmath={"contract"})
def dwconv2d_nhwc_f32(x, w, b, w_run, b_run, out, stride, pad_top, pad_left, act):
    """out = act(depthwise_conv(x, w) + b), any kernel size and stride; one task per output row.

    x:     (N, H, W, C)      input
    w:     (KH, KW, C)       one KHxKW filter per channel, BatchNorm folded ("HWC", XNNPACK's hwg)
    b:     (C,)              bias
    w_run, b_run             pack_runs(w, b)
    out:   (N, Ho, Wo, C)    written; Ho, Wo, pad_top, pad_left from kernels.padding.conv_output_size
    """
    zero_row = np.zeros(x.shape[2] * x.shape[3], np.float32)
    for task in prange(out.shape[0] * out.shape[1]):
        dw_row_f32(x, w, b, w_run, b_run, zero_row, out, act, stride, pad_top, pad_left, task)
