"""Pointwise (1x1) convolution and fully connected layers as one GEMM with a fused epilogue.

An NHWC tensor viewed as (pixels, channels) times a (Cin, Cout) weight matrix is a 1x1 conv with
no im2col and no transpose. The loop order is the "k-blocked broadcast" form of
../shared/notes/numba-lab.md section 2: for a block of ROWS pixels and KBLOCK input channels, the
ROWS*KBLOCK activations are loop-invariant scalars, and the innermost loop runs over output
channels, contiguous in both the weights and the output, which LLVM's loop vectoriser turns into
FMAs. Each output element is loaded and stored once per KBLOCK FMAs.

Measured on this machine (bench/README.md, "What was tried"): 4 rows x 8 channels, with each
output accumulated in sequence (``v += a * w`` eight times, which LLVM emits as eight FMAs), beat
4x4, 6x4 and 8x2; writing the update as one sum ``o += a0*w0 + a1*w1 + ...`` costs an extra
multiply and add per output vector (1.3x slower).

No BLAS is called: numpy's OpenBLAS threads fight Numba's OpenMP pool (numba-lab section 4).
"""
import numpy as np
from numba import njit, prange

from kernels.activation import activate_rows

ROWS = 4  # pixels per register block
KBLOCK = 8  # input channels per pass over the output rows
L2_PANEL_FLOATS = 256 * 1024  # 1 MB of weights per pass over a panel: half of this machine's 2 MB L2 per core


@njit(cache=True)
def l2_k_tile(k, m):
    """Input channels per pass so that a (k_tile, m) slice of the weights fits L2_PANEL_FLOATS (all of K if it fits)."""
    return k if k * m <= L2_PANEL_FLOATS else max(KBLOCK, L2_PANEL_FLOATS // m // KBLOCK * KBLOCK)
NO_RESIDUAL = np.empty((0, 0), np.float32)


@njit(cache=True, fastmath={"contract"})
def gemm_block4_f32(a, w, o):
    """o += a @ w for a block of four pixel rows.

    a: (4, K)   w: (K, M)   o: (4, M) already holding the bias

    Blocks are views indexed from 0 by loop counters: signed offsets into the whole arrays cost
    negative-index handling that kept LLVM from vectorising well (bench/README.md, "What was tried").
    """
    k_total = a.shape[1]
    n = o.shape[1]
    k = 0
    while k + KBLOCK <= k_total:
        a00, a01, a02, a03, a04, a05, a06, a07 = a[0, k], a[0, k + 1], a[0, k + 2], a[0, k + 3], a[0, k + 4], a[0, k + 5], a[0, k + 6], a[0, k + 7]  # noqa: E501
        a10, a11, a12, a13, a14, a15, a16, a17 = a[1, k], a[1, k + 1], a[1, k + 2], a[1, k + 3], a[1, k + 4], a[1, k + 5], a[1, k + 6], a[1, k + 7]  # noqa: E501
        a20, a21, a22, a23, a24, a25, a26, a27 = a[2, k], a[2, k + 1], a[2, k + 2], a[2, k + 3], a[2, k + 4], a[2, k + 5], a[2, k + 6], a[2, k + 7]  # noqa: E501
        a30, a31, a32, a33, a34, a35, a36, a37 = a[3, k], a[3, k + 1], a[3, k + 2], a[3, k + 3], a[3, k + 4], a[3, k + 5], a[3, k + 6], a[3, k + 7]  # noqa: E501
        wk = w[k:k + KBLOCK]
        for j in range(n):
            x0, x1, x2, x3 = wk[0, j], wk[1, j], wk[2, j], wk[3, j]
            x4, x5, x6, x7 = wk[4, j], wk[5, j], wk[6, j], wk[7, j]
            v0, v1, v2, v3 = o[0, j], o[1, j], o[2, j], o[3, j]
            v0 += a00 * x0; v1 += a10 * x0; v2 += a20 * x0; v3 += a30 * x0  # noqa: E702
            v0 += a01 * x1; v1 += a11 * x1; v2 += a21 * x1; v3 += a31 * x1  # noqa: E702
            v0 += a02 * x2; v1 += a12 * x2; v2 += a22 * x2; v3 += a32 * x2  # noqa: E702
            v0 += a03 * x3; v1 += a13 * x3; v2 += a23 * x3; v3 += a33 * x3  # noqa: E702
            v0 += a04 * x4; v1 += a14 * x4; v2 += a24 * x4; v3 += a34 * x4  # noqa: E702
            v0 += a05 * x5; v1 += a15 * x5; v2 += a25 * x5; v3 += a35 * x5  # noqa: E702
            v0 += a06 * x6; v1 += a16 * x6; v2 += a26 * x6; v3 += a36 * x6  # noqa: E702
            v0 += a07 * x7; v1 += a17 * x7; v2 += a27 * x7; v3 += a37 * x7  # noqa: E702
            o[0, j], o[1, j], o[2, j], o[3, j] = v0, v1, v2, v3
        k += KBLOCK
    while k < k_total:
        a00, a10, a20, a30 = a[0, k], a[1, k], a[2, k], a[3, k]
        wk = w[k]
        for j in range(n):
            x0 = wk[j]
            o[0, j] += a00 * x0
            o[1, j] += a10 * x0
            o[2, j] += a20 * x0
            o[3, j] += a30 * x0
        k += 1


@njit(cache=True, fastmath={"contract"})
def gemm_row_f32(a, w, o):
    """o += a @ w for one pixel row.   a: (K,)   w: (K, M)   o: (M,) already holding the bias"""
    k_total = a.shape[0]
    n = o.shape[0]
    k = 0
    while k + KBLOCK <= k_total:
        a0, a1, a2, a3, a4, a5, a6, a7 = a[k], a[k + 1], a[k + 2], a[k + 3], a[k + 4], a[k + 5], a[k + 6], a[k + 7]
        wk = w[k:k + KBLOCK]
        for j in range(n):
            v = o[j]
            v += a0 * wk[0, j]
            v += a1 * wk[1, j]
            v += a2 * wk[2, j]
            v += a3 * wk[3, j]
            v += a4 * wk[4, j]
            v += a5 * wk[5, j]
            v += a6 * wk[6, j]
            v += a7 * wk[7, j]
            o[j] = v
        k += KBLOCK
    while k < k_total:
        a0 = a[k]
        wk = w[k]
        for j in range(n):
            o[j] += a0 * wk[j]
        k += 1


@njit(cache=True, fastmath={"contract"})
def epilogue_f32(out, act, residual, m0):
    """out = act(out) + residual[:, m0:m0+M], over a panel of rows while it is still in L1/L2.

    out: (P, M)   residual: (P, >= m0+M), or (0, 0) for none
    """
    activate_rows(out, act)
    if residual.shape[0] != 0:
        for p in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[p, j] += residual[p, m0 + j]


@njit(cache=True, fastmath={"contract"})
def gemm_panel_f32(a, w, b, out, act, residual, k_tile):
    """out = act(a @ w + b) + residual for a panel of whole pixel rows, in register blocks of ROWS.

    a: (P, K)   w: (K, M)   b: (M,)   out: (P, M)   residual: (P, M), or (0, 0) for none
    k_tile: input channels per pass over the panel, so that w[k0:k0+k_tile] stays in L2 while
            every row block uses it (the 1024x1024 layer's 4 MB of weights do not fit).
    """
    n_pix, n_out = out.shape
    k_total = a.shape[1]
    for p in range(n_pix):
        for j in range(n_out):  # an explicit loop: numba's slice assignment costs ~0.1 us per call
            out[p, j] = b[j]
    for k0 in range(0, k_total, k_tile):
        k1 = min(k0 + k_tile, k_total)
        wk = w[k0:k1]
        p = 0
        while p + ROWS <= n_pix:
            gemm_block4_f32(a[p:p + ROWS, k0:k1], wk, out[p:p + ROWS])
            p += ROWS
        while p < n_pix:
            gemm_row_f32(a[p, k0:k1], wk, out[p])
            p += 1
    epilogue_f32(out, act, residual, 0)


@njit(cache=True, fastmath={"contract"})
def gemv_cols_f32(a, w, b, out, act, residual, m0, m1):
    """Output channels m0:m1 of ``out = act(a @ w + b) + residual`` for a few pixel rows (the classifier).

    Row views ``w[k, m0:m1]`` stay C-contiguous, which a 2-D column slice would not.
    """
    k_total = a.shape[1]
    for p in range(a.shape[0]):
        o = out[p, m0:m1]
        for j in range(m1 - m0):
            o[j] = b[m0 + j]
        k = 0
        while k + 4 <= k_total:
            a0, a1, a2, a3 = a[p, k], a[p, k + 1], a[p, k + 2], a[p, k + 3]
            w0, w1, w2, w3 = w[k, m0:m1], w[k + 1, m0:m1], w[k + 2, m0:m1], w[k + 3, m0:m1]
            for j in range(m1 - m0):
                v = o[j]
                v += a0 * w0[j]
                v += a1 * w1[j]
                v += a2 * w2[j]
                v += a3 * w3[j]
                o[j] = v
            k += 4
        while k < k_total:
            a0 = a[p, k]
            w0 = w[k, m0:m1]
            for j in range(m1 - m0):
                o[j] += a0 * w0[j]
            k += 1
        epilogue_f32(out[p:p + 1, m0:m1], act, residual[p:p + 1] if residual.shape[0] != 0 else residual, m0)


@njit(cache=True, fastmath={"contract"})
def gemm_task_f32(a, w, b, out, act, residual, row_tile, col_tile, k_tile, task):
    """One task of the GEMM: ``row_tile`` pixel rows by ``col_tile`` output channels.

    Tasks run column tile by column tile, so that consecutive tasks (one thread's static share)
    reuse the same weight columns from cache.
    """
    n_pix, n_out = a.shape[0], w.shape[1]
    row_tasks = (n_pix + row_tile - 1) // row_tile
    col = task // row_tasks
    p0 = (task - col * row_tasks) * row_tile
    p1 = min(p0 + row_tile, n_pix)
    m0 = col * col_tile
    m1 = min(m0 + col_tile, n_out)
    res = residual[p0:p1] if residual.shape[0] != 0 else residual
    if m0 == 0 and m1 == n_out:
        gemm_panel_f32(a[p0:p1], w, b, out[p0:p1], act, res, k_tile)
    else:
        gemv_cols_f32(a[p0:p1], w, b, out[p0:p1], act, res, m0, m1)


@njit(cache=True)
def gemm_task_count(n_pix, n_out, row_tile, col_tile):
    """Number of tasks ``gemm_task_f32`` splits a (n_pix x n_out) output into."""
    return ((n_pix + row_tile - 1) // row_tile) * ((n_out + col_tile - 1) // col_tile)


@njit(parallel=True, cache=True, fastmath={"contract"})
def gemm_bias_act_f32(a, w, b, out, act, residual, row_tile, col_tile, k_tile):
    """out = act(a @ w + b) + residual, the output step fused into the GEMM; tasks shared across threads.

    a:        (P, K)   P pixels (N*H*W of an NHWC tensor) by K input channels
    w:        (K, M)   weights, BatchNorm folded
    b:        (M,)     bias
    out:      (P, M)   written
    residual: (P, M)   added after the activation; pass shape (0, 0) for none
    row_tile, col_tile, k_tile: the blocking (tinynet.plan.gemm_tiles chooses it per layer). A
              col_tile below M takes the matrix-vector path (the classifier at batch 1), so that it
              still splits across threads.
    """
    for task in prange(gemm_task_count(a.shape[0], w.shape[1], row_tile, col_tile)):
        gemm_task_f32(a, w, b, out, act, residual, row_tile, col_tile, k_tile, task)
