"""Squeeze-and-excite as one kernel: channel means, two small fully connected layers, channel scale.

    x *= hsigmoid(relu(mean_hw(x) @ W_reduce + b_reduce) @ W_expand + b_expand)     per image and channel

One call, up to four parallel loops. As four separate kernels (pool, FC, FC, scale) the block cost 12-30 us
at 2 threads in V3-Small, more than at 1 thread: a pool with one task per image ran on one core and
pulled every row the other core had written. Here the pool and the scale split by image rows, as
the depthwise conv before them does, so each thread touches the rows it wrote. The FCs are GEMMs with
one row per image, split by weight panels: their weights (up to 0.9 MB per block in V3-Large)
stream from memory at batch 1, and two threads stream faster than one; small ones run on one core
(SERIAL_FC_FLOATS).
"""
import numpy as np
from numba import njit, prange

from .activation import HSIGMOID, RELU
from .channel_rows import scale_channels
from .gemm import NO_RESIDUAL, panel_rows_f32
from .pool import pooled_rows_f32
from .threading import one_thread

# FCs with up to this many weights (128 KB) run on one core: at batch 1 that is 1-3 us, and entering a parallel region
# costs ~1 us on one thread and ~2 us on two (kernels.threading; the 2-thread figure from numba-lab, not re-measured)
SERIAL_FC_FLOATS = 32 * 1024


@njit(cache=True)
def fc_panel_f32(a, wp, bp, out, act, j):
    """Panel j of out = act(a @ w + b) (fully_connected_f32's task)."""
    n_rows, k = a.shape
    n_out = out.shape[1]
    nr = bp.shape[1]
    panel_rows_f32(a, 0, k, 0, 1, k, wp, bp, j, 0, out, j * nr, n_out, n_rows, min(nr, n_out - j * nr), act,
                   NO_RESIDUAL, 0, 0)


@njit(cache=True, inline="always")
def fully_connected_f32(a, wp, bp, out, act):
    """out = act(a @ w + b) for a few rows, one task per weight panel.   a: (N, K)   wp, bp: packed (K, M)   out: (N, M)

    A plain loop on one thread (kernels.threading.one_thread), and for weights up to SERIAL_FC_FLOATS: those take
    less time on one core than a parallel region costs."""
    panels = bp.shape[0]
    if one_thread() or wp.size <= SERIAL_FC_FLOATS:
        for j in range(panels):
            fc_panel_f32(a, wp, bp, out, act, j)
    else:
        for j in prange(panels):
            fc_panel_f32(a, wp, bp, out, act, j)


@njit(parallel=True, cache=True)
def squeeze_excite_nhwc_f32(x, w_reduce, b_reduce, w_expand, b_expand, row_sums, pooled, hidden, gate):
    """x *= the squeeze-and-excite gate, in place.

    x:                    (N, H, W, C)
    w_reduce, b_reduce:   kernels.pack_weights(W (C, S), b (S,))
    w_expand, b_expand:   kernels.pack_weights(W (S, C), b (C,))
    row_sums: (N*H, C)  pooled: (N, C)  hidden: (N, S)  gate: (N, C)   scratch
    """
    n_img, height, width, channels = x.shape
    pooled_rows_f32(x, row_sums, pooled)
    fully_connected_f32(pooled, w_reduce, b_reduce, hidden, RELU)
    fully_connected_f32(hidden, w_expand, b_expand, gate, HSIGMOID)
    if one_thread():
        for t in range(n_img * height):
            scale_channels(x, t * width * channels, width, channels, gate, t // height * channels)
    else:
        for task in prange(n_img * height):
            t = np.int64(task)
            scale_channels(x, t * width * channels, width, channels, gate, t // height * channels)
