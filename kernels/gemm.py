"""Pointwise (1x1) convolution and fully connected layers as one GEMM with a fused epilogue.

An NHWC tensor viewed as (pixels, channels) times a (Cin, Cout) weight matrix is a 1x1 conv with
no im2col and no transpose. The loop order is the "k-blocked broadcast" form that matched
OpenBLAS sgemm in ../shared/notes/numba-lab.md section 2: for a block of ROWS pixels and KBLOCK
input channels, the ROWS*KBLOCK activations are loop-invariant scalars, and the innermost loop
runs over output channels, contiguous in both the weights and the output, which LLVM's loop
vectoriser turns into FMAs. Each output element is loaded and stored once per KBLOCK FMAs.
No BLAS is called: numpy's OpenBLAS threads fight Numba's OpenMP pool (numba-lab section 4).
"""
from numba import njit, prange

from kernels.activation import activate_row

ROWS = 4  # pixels per register block (4x4 was best at almost every MobileNet shape)


@njit(cache=True, fastmath={"contract"})
def gemm_row_f32(a, w, b, out, p, m0, mt):
    """out[p, m0:m0+mt] = a[p] @ w[:, m0:m0+mt] + b[m0:m0+mt], one pixel, 4 input channels per pass."""
    k_total = a.shape[1]
    o = out[p, m0:m0 + mt]
    o[:] = b[m0:m0 + mt]
    k = 0
    while k + 4 <= k_total:
        a0, a1, a2, a3 = a[p, k], a[p, k + 1], a[p, k + 2], a[p, k + 3]
        w0, w1, w2, w3 = w[k, m0:m0 + mt], w[k + 1, m0:m0 + mt], w[k + 2, m0:m0 + mt], w[k + 3, m0:m0 + mt]
        for j in range(mt):
            o[j] += a0 * w0[j] + a1 * w1[j] + a2 * w2[j] + a3 * w3[j]
        k += 4
    while k < k_total:
        a0 = a[p, k]
        w0 = w[k, m0:m0 + mt]
        for j in range(mt):
            o[j] += a0 * w0[j]
        k += 1


@njit(cache=True, fastmath={"contract"})
def gemm_4rows_f32(a, w, b, out, p, m0, mt):
    """out[p:p+4, m0:m0+mt] = a[p:p+4] @ w[:, m0:m0+mt] + b: four pixels share every weight load."""
    k_total = a.shape[1]
    o0, o1, o2, o3 = out[p, m0:m0 + mt], out[p + 1, m0:m0 + mt], out[p + 2, m0:m0 + mt], out[p + 3, m0:m0 + mt]
    bias = b[m0:m0 + mt]
    for j in range(mt):
        o0[j] = bias[j]
        o1[j] = bias[j]
        o2[j] = bias[j]
        o3[j] = bias[j]
    k = 0
    while k + 4 <= k_total:
        a00, a01, a02, a03 = a[p, k], a[p, k + 1], a[p, k + 2], a[p, k + 3]
        a10, a11, a12, a13 = a[p + 1, k], a[p + 1, k + 1], a[p + 1, k + 2], a[p + 1, k + 3]
        a20, a21, a22, a23 = a[p + 2, k], a[p + 2, k + 1], a[p + 2, k + 2], a[p + 2, k + 3]
        a30, a31, a32, a33 = a[p + 3, k], a[p + 3, k + 1], a[p + 3, k + 2], a[p + 3, k + 3]
        w0, w1, w2, w3 = w[k, m0:m0 + mt], w[k + 1, m0:m0 + mt], w[k + 2, m0:m0 + mt], w[k + 3, m0:m0 + mt]
        for j in range(mt):
            x0, x1, x2, x3 = w0[j], w1[j], w2[j], w3[j]
            o0[j] += a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3
            o1[j] += a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3
            o2[j] += a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3
            o3[j] += a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3
        k += 4
    while k < k_total:
        a0, a1, a2, a3 = a[p, k], a[p + 1, k], a[p + 2, k], a[p + 3, k]
        w0 = w[k, m0:m0 + mt]
        for j in range(mt):
            x0 = w0[j]
            o0[j] += a0 * x0
            o1[j] += a1 * x0
            o2[j] += a2 * x0
            o3[j] += a3 * x0
        k += 1


@njit(parallel=True, cache=True, fastmath={"contract"})
def gemm_bias_act_f32(a, w, b, out, act, residual, col_tile):
    """out = act(a @ w + b) + residual, the output step fused into the GEMM.

    a:        (P, K)   P pixels (N*H*W of an NHWC tensor) by K input channels
    w:        (K, M)   weights, BatchNorm folded
    b:        (M,)     bias
    out:      (P, M)   written
    residual: (P, M)   added after the activation; pass shape (0, 0) for none
    col_tile: output channels per task. M when there are many pixels; smaller for a
              matrix-vector product (the classifier at batch 1) so that it still splits across threads.
    """
    n_pix = a.shape[0]
    n_out = w.shape[1]
    has_residual = residual.shape[0] != 0
    row_blocks = (n_pix + ROWS - 1) // ROWS
    col_blocks = (n_out + col_tile - 1) // col_tile
    for task in prange(row_blocks * col_blocks):
        rb = task // col_blocks
        p0 = rb * ROWS
        m0 = (task - rb * col_blocks) * col_tile
        mt = min(col_tile, n_out - m0)
        p1 = min(p0 + ROWS, n_pix)
        if p1 - p0 == ROWS:
            gemm_4rows_f32(a, w, b, out, p0, m0, mt)
        else:
            for p in range(p0, p1):
                gemm_row_f32(a, w, b, out, p, m0, mt)
        for p in range(p0, p1):
            o = out[p, m0:m0 + mt]
            activate_row(o, act)
            if has_residual:
                r = residual[p, m0:m0 + mt]
                for j in range(mt):
                    o[j] += r[j]
