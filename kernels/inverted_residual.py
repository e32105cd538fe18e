"""The expand (1x1) and depthwise convolutions of an inverted-residual block as one pass.

The expanded tensor is the largest activation of MobileNet V2/V3 (112x112x96 = 4.8 MB in V2's first
block, more than this machine's 2 MB L2 per core): written by the expand GEMM and read back by the
depthwise conv, it goes through L3 at DRAM speed twice. Here it never leaves the core: each task
walks a band of depthwise output rows and keeps only the KH expanded rows that the next output row
needs, in a ring of KH rows (slot iy % KH holds expanded row iy), computing each expanded row once
as it enters (oneDNN's 1x1 + depthwise fusion, jit_avx2_1x1_convolution's row buffer). Bands of
different tasks overlap by the KH - stride rows that both need, which are computed by both.
"""
import numba
import numpy as np
from numba import njit, prange

from .depthwise import dw_row_f32
from .gemm import NO_RESIDUAL, panel_rows_f32


@njit(cache=True)
def ring_offset(iy, height, k, row_floats):
    """Flat offset in the ring of expanded row iy, or -1 outside the image."""
    return (iy % k) * row_floats if 0 <= iy < height else -1


@njit(cache=True)
def ring_rows(iy0, height, k, row_floats):
    """kernels.depthwise row_offsets (MAX_K of them) in the ring for kernel rows iy0, iy0+1, ..."""
    return (ring_offset(iy0, height, k, row_floats), ring_offset(iy0 + 1, height, k, row_floats),
            ring_offset(iy0 + 2, height, k, row_floats), ring_offset(iy0 + 3, height, k, row_floats),
            ring_offset(iy0 + 4, height, k, row_floats), ring_offset(iy0 + 5, height, k, row_floats),
            ring_offset(iy0 + 6, height, k, row_floats))


@njit(parallel=True, cache=True)
def expand_dwconv2d_nhwc_f32(x, we, be, act_e, wd, bd, out, stride, pad_top, pad_left, act_d, bands, ring, zeros):
    """out = act_d(depthwise_conv(act_e(x @ W_expand + b_expand), wd) + bd), without storing the expanded tensor.

    x:       (N, H, W, Cin)                    block input
    we, be:  kernels.pack_weights(W_expand (Cin, E), b_expand)
    wd, bd:  (KH, KW, E), (E,)                 depthwise weights and bias
    out:     (N, Ho, Wo, E)                    written; Ho, Wo, pad_top, pad_left as for kernels.dwconv2d_nhwc_f32
    bands:   tasks per image (bands of output rows)
    ring:    (threads, KH, W*E) scratch, one ring per thread of Numba's pool
    zeros:   (>= W*E,) float32 zeros (the expanded rows above and below the image)
    """
    n_img, height, width, cin = x.shape
    out_h, out_w, e = out.shape[1], out.shape[2], out.shape[3]
    k = wd.shape[0]
    panels, nr = be.shape
    row_floats = width * e
    dst = out.reshape(out.size)
    for task in prange(n_img * bands):
        t = np.int64(task)
        n = t // bands
        band = t - n * bands
        ring_flat = ring[numba.get_thread_id()].reshape(ring.shape[1] * ring.shape[2])
        ready = -k  # expanded rows below this one are in the ring (or were dropped from it)
        for oy in range(band * out_h // bands, (band + 1) * out_h // bands):
            iy0 = oy * stride - pad_top
            for iy in range(max(ready, iy0, 0), min(iy0 + k, height)):
                for j in range(panels):
                    slot = (iy % k) * row_floats + j * nr
                    panel_rows_f32(x, (n * height + iy) * width * cin, cin, 0, 1, cin, we, be, j, 0, ring_flat,
                                   slot, e, width, min(nr, e - j * nr), act_e, NO_RESIDUAL, 0, 0)
            ready = max(ready, iy0 + k)
            dw_row_f32(ring_flat, ring_rows(iy0, height, k, row_floats), zeros, wd, bd, dst,
                       (n * out_h + oy) * out_w * e, width, out_w, stride, 1, pad_left, act_d)
