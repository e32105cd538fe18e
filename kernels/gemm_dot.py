"""Pointwise convolution for few output channels (the project layers to 16-48 channels) as dot products.

The broadcast GEMM (kernels.gemm) vectorises over output channels; with 24 of them its inner loop
is one and a half vectors long and the per-pass overhead dominates (25-45 GFLOP/s on this machine).
Here the vector runs over the input channels instead: each output is a dot product of an
activation row and a row of the transposed weights, both contiguous. A block of 4 pixels x 4
output channels keeps 16 vector accumulators and shares every load four ways; the reduction
needs reassociation, hence full fastmath. 90-120 GFLOP/s when K is a multiple of 16
(bench/pointwise.py; bench/README.md).
"""
import numpy as np
from numba import njit, prange

from kernels.gemm import epilogue_f32

ZERO = np.float32(0.0)


@njit(cache=True, fastmath=True, inline="always")
def dot_block4x4_f32(a, wt, out, p, n):
    """out[p:p+4, n:n+4] = a[p:p+4] . wt[n:n+4]^T.   a: (P, K)   wt: (M, K)   out: (P, M)"""
    a0, a1, a2, a3 = a[p], a[p + 1], a[p + 2], a[p + 3]
    w0, w1, w2, w3 = wt[n], wt[n + 1], wt[n + 2], wt[n + 3]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = ZERO
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = ZERO
    for k in range(a0.shape[0]):
        x0, x1, x2, x3 = a0[k], a1[k], a2[k], a3[k]
        y0, y1, y2, y3 = w0[k], w1[k], w2[k], w3[k]
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3  # noqa: E702
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3  # noqa: E702
        s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3  # noqa: E702
        s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3  # noqa: E702
    out[p, n], out[p, n + 1], out[p, n + 2], out[p, n + 3] = s00, s01, s02, s03
    out[p + 1, n], out[p + 1, n + 1], out[p + 1, n + 2], out[p + 1, n + 3] = s10, s11, s12, s13
    out[p + 2, n], out[p + 2, n + 1], out[p + 2, n + 2], out[p + 2, n + 3] = s20, s21, s22, s23
    out[p + 3, n], out[p + 3, n + 1], out[p + 3, n + 2], out[p + 3, n + 3] = s30, s31, s32, s33


@njit(cache=True, fastmath=True, inline="always")
def dot_f32(x, y):
    """x . y for two (K,) vectors: the tails of the 4x4 blocks."""
    s = ZERO
    for k in range(x.shape[0]):
        s += x[k] * y[k]
    return s


@njit(cache=True, fastmath=True)  # the inlined dot products take this function's flags: they need reassociation
def gemm_dot_panel_f32(a, wt, b, out, act, residual, p0, p1):
    """Rows p0:p1 of ``out = act(a @ wt.T + b) + residual``."""
    n_out = wt.shape[0]
    n4 = n_out - n_out % 4
    p = p0
    while p + 4 <= p1:
        for n in range(0, n4, 4):
            dot_block4x4_f32(a, wt, out, p, n)
        for r in range(p, p + 4):
            for n in range(n4, n_out):
                out[r, n] = dot_f32(a[r], wt[n])
        p += 4
    for r in range(p, p1):
        for n in range(n_out):
            out[r, n] = dot_f32(a[r], wt[n])
    for r in range(p0, p1):
        for j in range(n_out):
            out[r, j] += b[j]
    epilogue_f32(out[p0:p1], act, residual[p0:p1] if residual.shape[0] != 0 else residual, 0)


@njit(parallel=True, cache=True, fastmath={"contract"})
def gemm_dot_bias_act_f32(a, wt, b, out, act, residual, row_tile):
    """out = act(a @ wt.T + b) + residual with the weights pre-transposed; tasks of ``row_tile`` rows.

    a: (P, K)   wt: (M, K) transposed weights   b: (M,)   out: (P, M)
    residual: (P, M), or (0, 0) for none
    """
    n_pix = a.shape[0]
    for task in prange((n_pix + row_tile - 1) // row_tile):
        p0 = task * row_tile
        gemm_dot_panel_f32(a, wt, b, out, act, residual, p0, min(p0 + row_tile, n_pix))
