"""Integer GEMM with fused requantization: 1x1 convs and fully connected layers of quantized graphs.

acc[p, o] = bias'[o] + sum_k x[p, k] * w[k, o] in int32 (wrapping, as the hardware adds), then requantized to
uint8 (kernels.int8_requant). x is uint8 (int8 graphs store activations + 128); the caller folds the input zero
point into the bias, bias' = bias - zp_x * sum_k w[k, o], so that acc is TFLite's accumulator exactly. Weights
are "s8" (int8 graphs: int8, zero point 0) or "s16" (uint8 graphs: q_w - zp_w in [-255, 255], int16).

Packed weights (``pack_gemm_s8``, ``pack_gemm_s16``), done once at load: panel j holds output channels j*NR ..
j*NR+NR-1 as (ceil(K/4), NR, 4) bytes: for each group of 4 consecutive input channels, NR output channels of 4
weights each (what AVX-512 VNNI's vpdpbusd sums into one int32 lane), zero padded past K and M; and its int32
bias (NR,) followed by NR copies of the offset c. s8 weights are stored as they are (c = 0); s16 weights as uint8
u = w + c with c = -min w, exact because a uint8 graph's q_w - zp_w spans at most 255 (one zero point per tensor;
the tile subtracts c times each row's activation sum). NR is the float GEMM's panel width. The register tiles of
kernels.int8_gemm_tile sweep each panel down the rows, requantizing as they store.
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .gemm_tile import panel_width
from .int8_gemm_tile import qgemm_tile, qtile_rows

S16_RANGE = 255  # uint8 graphs' q_w - zp_w


def pack_gemm_s8(w, bias, nr=None):
    """(wp, bp) of int8 weights ``w`` (K, M) and int32 bias' (M,).

    wp: (panels, ceil(K/4), NR, 4) int8   bp: (panels, 2, NR) int32, the bias' then zeros (no column offsets)
    """
    w = np.asarray(w)
    if w.dtype != np.int8:
        raise ValueError(f"s8 weights must be int8, got {w.dtype}")
    return _pack(w, np.asarray(bias, np.int64), np.zeros(w.shape[1], np.int64), nr)


def pack_gemm_s16(w, bias, nr=None):
    """(wp, bp) of weights ``w`` (K, M) in [-255, 255] spanning at most 255 (q_w - zp_w of a uint8 graph, whose
    weights have one zero point), and int32 bias' (M,), as uint8 weights u = w + c (kernels.int8_gemm_tile, "u8").

    wp: (panels, ceil(K/4), NR, 4) uint8   bp: (panels, 2, NR) int32, bias' + 128 * sum_k u, then c everywhere
    """
    w = np.asarray(w).astype(np.int64)
    if w.size and np.abs(w).max() > S16_RANGE:
        raise ValueError(f"s16 weights must lie in [-{S16_RANGE}, {S16_RANGE}]")
    c = -w.min() if w.size else 0
    u = w + c
    if u.size and u.max() > S16_RANGE:
        raise ValueError(f"s16 weights must span at most {S16_RANGE} (q_w - zp_w, one zero point per tensor)")
    return _pack(u.astype(np.uint8), np.asarray(bias, np.int64) + 128 * u.sum(axis=0), np.full(w.shape[1], c), nr)


def _pack(w, bias, offsets, nr):
    k, m = w.shape
    nr = nr or panel_width(m)
    panels, groups = -(-m // nr), -(-k // 4)
    padded = np.zeros((groups * 4, panels * nr), w.dtype)
    padded[:k, :m] = w
    # (K', M') -> (groups, 4, panels, NR) -> (panels, groups, NR, 4)
    wp = aligned_empty((panels, groups, nr, 4), w.dtype)
    wp[...] = padded.reshape(groups, 4, panels, nr).transpose(2, 0, 3, 1)
    columns = np.zeros((2, panels * nr), np.int64)
    columns[0, :m], columns[1, :m] = bias, offsets
    bp = aligned_empty((panels, 2, nr), np.int32)
    bp[...] = columns.reshape(2, panels, nr).transpose(1, 0, 2).astype(np.uint32).view(np.int32)  # int32 sums wrap
    return wp, bp


def aligned_empty(shape, dtype, align=64):
    """An uninitialised C-contiguous array whose data starts on an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.empty(n * dtype.itemsize + align, np.uint8)
    offset = -raw.ctypes.data % align
    return raw[offset:offset + n * dtype.itemsize].view(dtype).reshape(shape)


def needs_row_sums(wp):
    """Whether packed weights ``wp`` are "u8" (pack_gemm_s16), whose tile needs each row's activation sum."""
    return wp.dtype == np.uint8


@overload(needs_row_sums)
def _needs_row_sums(wp):
    answer = wp.dtype == types.uint8
    return lambda wp: answer


@njit(cache=True)
def gemm_rows(x, r0, rows, wp, bp, j, rq, out, sums, s0):
    """out[r, j*NR + n] for rows r0 .. r0+rows-1 and the columns of panel j, tile by tile (kernels.int8_gemm_tile).

    x: (R, K) uint8   wp, bp: packed   rq: requantization   out: (R, M) uint8
    sums: offset_row_sums of the rows, row r0's at s0 (read for "u8" weights only)
    """
    k = x.shape[1]
    n_out = out.shape[1]
    nr = bp.shape[2]
    mr = qtile_rows(nr)
    panel = wp.shape[1] * wp.shape[2] * wp.shape[3]
    cols = min(nr, n_out - j * nr)
    for t in range((rows + mr - 1) // mr):
        p = r0 + t * mr
        qgemm_tile(nr, x, p * k, k, k, wp, j * panel, bp, j * 2 * nr, sums, s0 + p - r0, rq, j * nr, out,
                   p * n_out + j * nr, n_out, min(mr, r0 + rows - p), cols)


@njit(cache=True)
def offset_row_sums(x, r0, rows, wp, bp, sums):
    """sums[r] = c * (sum of row r0 + r of x) for "u8" weights (pack_gemm_s16; c = bp[0, 1, 0]), in int32; nothing
    for s8 weights.   x: (R, K) uint8   sums: (>= rows,) int32, written"""
    if needs_row_sums(wp):
        c = bp[0, 1, 0]
        for r in range(rows):
            total = np.int32(0)
            for i in range(x.shape[1]):  # indexed in place: a view per row costs more than its sum
                total += x[r0 + r, i]
            sums[r] = np.int32(total * c)


@njit(parallel=True, cache=True)
def gemm_bias_requant_u8(x, wp, bp, rq, out, row_tile):
    """out = requant(x @ w + bias'), threaded over tasks of ``row_tile`` rows x one panel (the float GEMM's split).

    x:      (P, K) uint8       P pixels (N*H*W of an NHWC tensor) by K input channels
    wp, bp: pack_gemm_s8 / pack_gemm_s16 of w (K, M) and bias' (M,)
    rq:     kernels.int8_requant.Fp32Requant or FixedRequant for M channels
    out:    (P, M) uint8       written
    """
    n_pix = x.shape[0]
    panels = bp.shape[0]
    row_tasks = (n_pix + row_tile - 1) // row_tile
    sums = np.empty(n_pix if needs_row_sums(wp) else 0, np.int32)
    for task in prange(row_tasks if needs_row_sums(wp) else 0):
        p0 = np.int64(task) * row_tile
        offset_row_sums(x, p0, min(row_tile, n_pix - p0), wp, bp, sums[p0:])
    for task in prange(row_tasks * panels):
        t = np.int64(task)
        p0 = t // panels * row_tile
        gemm_rows(x, p0, min(row_tile, n_pix - p0), wp, bp, t % panels, rq, out, sums, p0)
