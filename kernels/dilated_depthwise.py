"""Dilated (atrous) depthwise convolution at stride 1 through the depthwise register tile (kernels.depthwise).

At stride 1, output column ox of a KxK filter with dilation d reads input columns ox - pad_left + kx*d, all of
one phase ox mod d. Read the first d*(W//d) pixels of a row as W//d "wide pixels" of d*C channels (phase p's C
channels at p*C): the dilated convolution is then an undilated one over wide pixels, with the filter repeated d
times along the channels (``widened_filter``) and padding pad_left/d, which dw_tile computes at its usual speed;
the input rows under the kernel rows are d rows apart (its row offsets). The wide view leaves out the last
W mod d columns (not a whole wide pixel): the output columns from d*(W//d) on, and those with a tap there, are
patched by a plain loop afterwards (33x33 at dilation 2, LR-ASPP's and DeepLab's rows 13-15: 3 columns of 33).

The general path (stride 2, other kernel sizes, few channels) is kernels.depthwise.dwconv2d_dilated_nhwc_f32;
``wide_path_applies`` says which one a layer takes.
"""
import numpy as np
from numba import njit, prange

from .activation import activate_row
from .depthwise import channel_group, dw_row_f32, row_offset, tiled
from .simd import LANES


def wide_path_applies(k, stride, dilation, channels, width, out_w, pad_left):
    """Whether dwconv2d_dilated_wide_nhwc_f32 takes this layer (KxK filter, input ``width``, output ``out_w``)."""
    return (dilation > 1 and stride == 1 and out_w == width and pad_left % dilation == 0 and pad_left >= 0
            and tiled(k, k, 1, dilation * channels))


def widened_filter(w, b, dilation):
    """(w_wide, b_wide): the (KH, KW, C) filter and (C,) bias repeated ``dilation`` times along the channels."""
    return (np.ascontiguousarray(np.tile(w, (1, 1, dilation)), np.float32),
            np.ascontiguousarray(np.tile(b, dilation), np.float32))


@njit(cache=True)
def dilated_rows(n, iy0, dilation, height, row_floats):
    """row_offsets (MAX_K of them) for input rows iy0, iy0 + dilation, ... of image n (-1 outside the image)."""
    return (row_offset(n, iy0, height, row_floats), row_offset(n, iy0 + dilation, height, row_floats),
            row_offset(n, iy0 + 2 * dilation, height, row_floats), row_offset(n, iy0 + 3 * dilation, height, row_floats),
            row_offset(n, iy0 + 4 * dilation, height, row_floats), row_offset(n, iy0 + 5 * dilation, height, row_floats),
            row_offset(n, iy0 + 6 * dilation, height, row_floats))


@njit(cache=True, fastmath={"contract"})
def _dilated_pixel_f32(src, rows, w, b, dst, o_off, ix0, dilation, width, c0, c1, act):
    """dst[o_off + c] for c in [c0, c1): one output pixel from its taps inside the image (the first at column ix0)."""
    kh, kw, channels = w.shape
    px = dst[o_off + c0:o_off + c1]
    for c in range(c1 - c0):
        px[c] = b[c0 + c]
    for ky in range(kh):
        if rows[ky] < 0:
            continue
        for kx in range(kw):
            ix = ix0 + kx * dilation
            if 0 <= ix < width:
                tap = src[rows[ky] + ix * channels + c0:]
                for c in range(c1 - c0):
                    px[c] += tap[c] * w[ky, kx, c0 + c]
    activate_row(px, act)


@njit(parallel=True, cache=True)
def dwconv2d_dilated_wide_nhwc_f32(x, w_wide, b_wide, w, b, out, dilation, pad_top, pad_left, act, groups, zeros):
    """out = act(depthwise_conv(x, w, dilation) + b) at stride 1, where ``wide_path_applies``.

    x: (N, H, W, C)   w: (KH, KW, C)   b: (C,)   w_wide, b_wide: widened_filter(w, b, dilation)
    out: (N, Ho, W, C), Ho and the pads from kernels.padding.conv_output_size(..., dilation)
    groups: tasks per output row, each a group of whole vectors of the d*C wide channels
            (tinynet.plan.depthwise_groups)
    zeros:  (>= W*C,) float32 zeros, read for kernel rows outside the image
    """
    n_img, height, width, channels = x.shape
    out_h = out.shape[1]
    wide = width // dilation
    wide_channels = dilation * channels
    src, dst = x.reshape(x.size), out.reshape(out.size)
    row_floats = width * channels
    split = groups if wide_channels >= groups * LANES else 1
    kw = w.shape[1]
    for task in prange(n_img * out_h * split):
        t = np.int64(task) // split
        n = t // out_h
        wc0, wc1 = channel_group(np.int64(task) - t * split, split, wide_channels)
        rows = dilated_rows(n, t - n * out_h - pad_top, dilation, height, row_floats)
        o_row = t * row_floats
        if wide > 0:
            dw_row_f32(src, rows, zeros, w_wide, b_wide, dst, o_row, wide, wide, 1, pad_left // dilation, act, wc0, wc1)
        for ox in range(width):  # the patch: columns past the wide pixels, and those with a tap there
            ix0 = ox - pad_left
            patched = ox >= wide * dilation
            for kx in range(kw):
                patched = patched or wide * dilation <= ix0 + kx * dilation < width
            p = ox % dilation  # this pixel's channels are the wide channels [p*C, p*C + C) of the groups
            c0, c1 = max(wc0, p * channels) - p * channels, min(wc1, p * channels + channels) - p * channels
            if patched and c1 > c0:
                _dilated_pixel_f32(src, rows, w, b, dst, o_row + ox * channels, ix0, dilation, width, c0, c1, act)
