"""Integer GEMM with fused requantization: 1x1 convs and fully connected layers of quantized graphs.

acc[p, o] = bias'[o] + sum_k x[p, k] * w[k, o] in int32 (wrapping, as the hardware adds), then requantized to
uint8 (kernels.int8_requant). x is uint8 (int8 graphs store activations + 128); the caller folds the input zero
point into the bias, bias' = bias - zp_x * sum_k w[k, o], so that acc is TFLite's accumulator exactly. Weights
are "s8" (int8 graphs: int8, zero point 0) or "s16" (uint8 graphs: q_w - zp_w in [-255, 255], int16).

Packed weights (``pack_gemm_s8``, ``pack_gemm_s16``), done once at load: panel j holds output channels j*NR ..
j*NR+NR-1 as (ceil(K/G), NR, G): for each group of G consecutive input channels, NR output channels of G weights
each, zero padded past K and M. G is what one multiply-add instruction sums into an int32 lane: 4 int8 products
for AVX-512 VNNI's vpdpbusd, 2 int16 products for vpdpwssd. NR is the float GEMM's panel width.
"""
import numpy as np
from numba import njit, prange

from .gemm_tile import panel_width
from .int8_gemm_tile import qgemm_tile, qtile_rows

GROUP = {np.dtype(np.int8): 4, np.dtype(np.int16): 2}
S16_RANGE = 255  # uint8 graphs' q_w - zp_w


def pack_gemm_s8(w, bias, nr=None):
    """(wp, bp) of int8 weights ``w`` (K, M) and int32 bias' (M,).   wp: (panels, ceil(K/4), NR, 4)   bp: (panels, NR)"""
    w = np.asarray(w)
    if w.dtype != np.int8:
        raise ValueError(f"s8 weights must be int8, got {w.dtype}")
    return _pack(w, bias, nr)


def pack_gemm_s16(w, bias, nr=None):
    """(wp, bp) of weights ``w`` (K, M) in [-255, 255] and int32 bias' (M,).   wp: (panels, ceil(K/2), NR, 2) int16"""
    w = np.asarray(w)
    if w.size and np.abs(w.astype(np.int64)).max() > S16_RANGE:
        raise ValueError(f"s16 weights must lie in [-{S16_RANGE}, {S16_RANGE}]")
    return _pack(w.astype(np.int16), bias, nr)


def _pack(w, bias, nr):
    k, m = w.shape
    group = GROUP[w.dtype]
    nr = nr or panel_width(m)
    panels, groups = -(-m // nr), -(-k // group)
    padded = np.zeros((groups * group, panels * nr), w.dtype)
    padded[:k, :m] = w
    # (K', M') -> (groups, G, panels, NR) -> (panels, groups, NR, G)
    wp = aligned_empty((panels, groups, nr, group), w.dtype)
    wp[...] = padded.reshape(groups, group, panels, nr).transpose(2, 0, 3, 1)
    bp = aligned_empty((panels, nr), np.int32)
    bp.reshape(-1)[:] = 0
    bp.reshape(-1)[:m] = np.asarray(bias, np.int32)
    return wp, bp


def aligned_empty(shape, dtype, align=64):
    """An uninitialised C-contiguous array whose data starts on an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.empty(n * dtype.itemsize + align, np.uint8)
    offset = -raw.ctypes.data % align
    return raw[offset:offset + n * dtype.itemsize].view(dtype).reshape(shape)


@njit(cache=True)
def gemm_rows(x, r0, rows, wp, bp, j, rq, out):
    """out[r, j*NR + n] for rows r0 .. r0+rows-1 and the columns of panel j, tile by tile (kernels.int8_gemm_tile).

    x: (R, K) uint8   wp, bp: packed   rq: requantization   out: (R, M) uint8
    """
    k = x.shape[1]
    n_out = out.shape[1]
    nr = bp.shape[1]
    mr = qtile_rows(nr)
    panel = wp.shape[1] * wp.shape[2] * wp.shape[3]
    cols = min(nr, n_out - j * nr)
    for t in range((rows + mr - 1) // mr):
        p = r0 + t * mr
        qgemm_tile(nr, x, p * k, k, k, wp, j * panel, bp, j * nr, rq, j * nr, out, p * n_out + j * nr, n_out,
                   min(mr, r0 + rows - p), cols)


@njit(parallel=True, cache=True)
def gemm_bias_requant_u8(x, wp, bp, rq, out, row_tile):
    """out = requant(x @ w + bias'), threaded over tasks of ``row_tile`` rows x one panel (the float GEMM's split).

    x:      (P, K) uint8       P pixels (N*H*W of an NHWC tensor) by K input channels
    wp, bp: pack_gemm_s8 / pack_gemm_s16 of w (K, M) and bias' (M,)
    rq:     kernels.int8_requant.Fp32Requant or FixedRequant for M channels
    out:    (P, M) uint8       written
    """
    n_pix = x.shape[0]
    panels, nr = bp.shape
    row_tasks = (n_pix + row_tile - 1) // row_tile
    for task in prange(row_tasks * panels):
        t = np.int64(task)
        p0 = t // panels * row_tile
        gemm_rows(x, p0, min(row_tile, n_pix - p0), wp, bp, t % panels, rq, out)
