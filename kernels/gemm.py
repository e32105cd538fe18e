"""Pointwise (1x1) convolution and fully connected layers as one GEMM with a fused epilogue.

An NHWC tensor viewed as (pixels, channels) times a (Cin, Cout) weight matrix is a 1x1 conv with
no im2col and no transpose. The work is XNNPACK's: the weights are packed once into panels of
16-64 output channels (kernels.gemm_tile.pack, done by tinynet.plan at load time), and each panel
is swept down the pixel rows by the register-tiled micro-kernel of kernels.gemm_tile, which applies
bias, activation and residual as it stores. One task is a run of rows (kept in L2) of one panel.

No BLAS is called: numpy's OpenBLAS threads fight Numba's OpenMP pool (numba-lab section 4), and
the micro-kernel matches or beats OpenBLAS on every MobileNet layer (bench/pointwise.py).
"""
import numpy as np
from numba import njit, prange

from .gemm_tile import gemm_tile, tile_rows

NO_RESIDUAL = np.empty((0, 0), np.float32)


@njit(cache=True, inline="always")
def panel_rows_f32(a, a_off, lda, seg_stride, nseg, kseg, wp, bp, j, k0, out, o_off, ldo, rows, cols, act,
                   res, r_off, ldr):
    """``rows`` output rows of panel j of the packed weights ``wp`` (panels, K, NR), from its weight row k0 on, tile by
    tile (the other arguments as kernels.gemm_tile.gemm_tile's)."""
    nr = bp.shape[1]
    mr = tile_rows(nr)
    for t in range((rows + mr - 1) // mr):
        p = t * mr
        gemm_tile(nr, a, a_off + p * lda, lda, seg_stride, nseg, kseg, wp, (j * wp.shape[1] + k0) * nr, bp, j * nr,
                  out, o_off + p * ldo, ldo, min(mr, rows - p), cols, act, res, r_off + p * ldr, ldr)


@njit(parallel=True, cache=True)
def gemm_bias_act_f32(a, wp, bp, out, act, residual, row_tile):
    """out = act(a @ w + b) + residual, with w and b packed by kernels.gemm_tile.pack; tasks shared across threads.

    a:        (P, K)            P pixels (N*H*W of an NHWC tensor) by K input channels
    wp, bp:   (panels, K, NR), (panels, NR)   packed weights (BatchNorm folded) and bias
    out:      (P, M)            written
    residual: (P, M)            added after the activation; pass shape (0, 0) for none
    row_tile: rows per task (tinynet.plan.gemm_row_tile chooses it)

    Tasks go row tile by row tile, all panels of one before the next: a static split between threads then
    gives each thread whole row tiles, the rows that the previous layer (split the same way) wrote on its core.
    """
    n_pix, k = a.shape
    n_out = out.shape[1]
    panels, nr = bp.shape
    ldr = residual.shape[1]
    row_tasks = (n_pix + row_tile - 1) // row_tile
    for task in prange(row_tasks * panels):
        t = np.int64(task)
        p0 = t // panels * row_tile
        j = t % panels
        panel_rows_f32(a, p0 * k, k, 0, 1, k, wp, bp, j, 0, out, p0 * n_out + j * nr, n_out, min(row_tile, n_pix - p0),
                       min(nr, n_out - j * nr), act, residual, p0 * ldr + j * nr, ldr)
