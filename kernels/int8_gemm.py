"""Integer GEMM with fused requantization: 1x1 convs and fully connected layers of quantized graphs.

acc[p, o] = bias'[o] + sum_k x[p, k] * w[k, o] in int32 (wrapping, as the hardware adds), then requantized to
uint8 (kernels.int8_requant). x is uint8 (int8 graphs store activations + 128); the caller folds the input zero
point into the bias, bias' = bias - zp_x * sum_k w[k, o], so that acc is TFLite's accumulator exactly. Weights
are "s8" (int8 graphs: int8, zero point 0) or "s16" (uint8 graphs: q_w - zp_w in [-255, 255], int16).

Packed weights (``pack_gemm_s8``, ``pack_gemm_s16``), done once at load: panel j holds output channels j*NR ..
j*NR+NR-1 as (G, NR, 4) bytes, G >= ceil(K/4): for each group of 4 consecutive input channels, NR output channels
of 4 weights each (what AVX-512 VNNI's vpdpbusd sums into one int32 lane, and a row of an AMX weight tile), zero
padded past K and M; and its int32 columns: the bias of the VNNI tiles (NR,), NR copies of the offset c, the bias
of the AMX tiles (NR,). s8 weights are stored as they are (c = 0); s16 weights as uint8 u = w + c with c = -min w,
exact because a uint8 graph's q_w - zp_w spans at most 255 (one zero point per tensor; the tiles subtract c times
each row's activation sum). NR is the float GEMM's panel width. The register tiles of kernels.int8_gemm_tile (or
the AMX tiles of kernels.int8_gemm_amx) sweep each panel down the rows, requantizing as they store.
"""
import numpy as np
from numba import config, get_thread_id, njit, prange, types
from numba.extending import overload

from .gemm_tile import panel_width
from .int8_gemm_amx import AMX_GROUPS, AMX_INSTRUCTIONS, AMX_ROWS, amx_configure, amx_release, amx_step
from .int8_gemm_tile import qgemm_tile, qtile_rows

S16_RANGE = 255  # uint8 graphs' q_w - zp_w
MAX_THREADS = config.NUMBA_NUM_THREADS  # the most threads a parallel region runs on
PACKED_COLUMNS = 3  # rows of bp per panel: VNNI bias, column offset, AMX bias
# Fewer rows per task, or input channels, go by the VNNI tiles: an AMX step computes 16 rows whatever it stores, and
# stores its sums and loads them back, which costs more than VNNI's few multiply-adds per row at K <= 32
# (bench/int8_kernels.py --cpu-time: 112x112x32 -> 16 63 us on AMX, 54 on VNNI; 14x14x576 -> 96 16 against 33).
AMX_MIN_ROWS = 4
AMX_MIN_DEPTH = 33


def pack_gemm_s8(w, bias, nr=None):
    """(wp, bp) of int8 weights ``w`` (K, M) and int32 bias' (M,).

    wp: (panels, G, NR, 4) int8, G = ceil(K/4) rounded up to a multiple of AMX_GROUPS (kernels.int8_gemm_amx)
    bp: (panels, 3, NR) int32, the bias', zeros (no column offsets), the bias'
    """
    w = np.asarray(w)
    if w.dtype != np.int8:
        raise ValueError(f"s8 weights must be int8, got {w.dtype}")
    bias = np.asarray(bias, np.int64)
    return _pack(w, (bias, np.zeros(w.shape[1], np.int64), bias), nr)


def pack_gemm_s16(w, bias, nr=None):
    """(wp, bp) of weights ``w`` (K, M) in [-255, 255] spanning at most 255 (q_w - zp_w of a uint8 graph, whose
    weights have one zero point), and int32 bias' (M,), as uint8 weights u = w + c (kernels.int8_gemm_tile, "u8").

    wp: (panels, G, NR, 4) uint8, G as pack_gemm_s8's
    bp: (panels, 3, NR) int32: bias' + 128 * sum_k u (the VNNI tiles flip the activations), c everywhere, bias'
    """
    w = np.asarray(w).astype(np.int64)
    if w.size and np.abs(w).max() > S16_RANGE:
        raise ValueError(f"s16 weights must lie in [-{S16_RANGE}, {S16_RANGE}]")
    c = -w.min() if w.size else 0
    u = w + c
    if u.size and u.max() > S16_RANGE:
        raise ValueError(f"s16 weights must span at most {S16_RANGE} (q_w - zp_w, one zero point per tensor)")
    bias = np.asarray(bias, np.int64)
    return _pack(u.astype(np.uint8), (bias + 128 * u.sum(axis=0), np.full(w.shape[1], c), bias), nr)


def _pack(w, columns_of, nr):
    k, m = w.shape
    nr = nr or panel_width(m)
    panels, groups = -(-m // nr), -(-k // (4 * AMX_GROUPS)) * AMX_GROUPS
    padded = np.zeros((groups * 4, panels * nr), w.dtype)
    padded[:k, :m] = w
    # (K', M') -> (groups, 4, panels, NR) -> (panels, groups, NR, 4)
    wp = aligned_empty((panels, groups, nr, 4), w.dtype)
    wp[...] = padded.reshape(groups, 4, panels, nr).transpose(2, 0, 3, 1)
    columns = np.zeros((PACKED_COLUMNS, panels * nr), np.int64)
    columns[:, :m] = columns_of
    bp = aligned_empty((panels, PACKED_COLUMNS, nr), np.int32)
    bp[...] = columns.reshape(PACKED_COLUMNS, panels, nr).transpose(1, 0, 2).astype(np.uint32).view(np.int32)  # wraps
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


def runs_on_amx():
    """Whether rows go by kernels.int8_gemm_amx's tiles on this CPU."""
    return AMX_INSTRUCTIONS


@overload(runs_on_amx)
def _runs_on_amx():
    return lambda: AMX_INSTRUCTIONS


@njit(cache=True)
def gemm_rows(x, r0, rows, wp, bp, j, rq, out, sums, s0):
    """out[r, j*NR + n] for rows r0 .. r0+rows-1 and the columns of panel j, tile by tile (kernels.int8_gemm_tile,
    or kernels.int8_gemm_amx's for AMX_MIN_ROWS rows and AMX_MIN_DEPTH input channels or more where the CPU has AMX).

    x: (R, K) uint8   wp, bp: packed   rq: requantization   out: (R, M) uint8
    sums: offset_row_sums of the rows, row r0's at s0 (read for "u8" weights only)
    """
    if runs_on_amx() and rows >= AMX_MIN_ROWS and x.shape[1] >= AMX_MIN_DEPTH:
        amx_rows(x, r0, rows, wp, bp, j, rq, out, sums, s0)
        return
    k = x.shape[1]
    n_out = out.shape[1]
    nr = bp.shape[2]
    mr = qtile_rows(nr)
    panel = wp.shape[1] * wp.shape[2] * wp.shape[3]
    cols = min(nr, n_out - j * nr)
    for t in range((rows + mr - 1) // mr):
        p = r0 + t * mr
        qgemm_tile(nr, x, p * k, k, k, wp, j * panel, bp, j * PACKED_COLUMNS * nr, sums, s0 + p - r0, rq, j * nr, out,
                   p * n_out + j * nr, n_out, min(mr, r0 + rows - p), cols)


@njit(cache=True)
def amx_rows(x, r0, rows, wp, bp, j, rq, out, sums, s0):
    """gemm_rows on AMX tiles, 16 rows per step; a step whose tile would read past the end of ``x`` (the last rows,
    read steps*64 bytes each) takes its rows from a zero-padded copy."""
    k = x.shape[1]
    n_out = out.shape[1]
    nr = bp.shape[2]
    steps = wp.shape[1] // AMX_GROUPS
    panel = wp.shape[1] * wp.shape[2] * wp.shape[3]
    cols = min(nr, n_out - j * nr)
    b_off = (j * PACKED_COLUMNS + 2) * nr  # the AMX bias
    amx_configure()
    for p in range(r0, r0 + rows, AMX_ROWS):
        n = min(AMX_ROWS, r0 + rows - p)
        if (p + AMX_ROWS - 1) * k + steps * 64 <= x.size:
            amx_step(nr, x, p * k, k, steps, wp, j * panel, bp, b_off, sums, s0 + p - r0, rq, j * nr, out,
                     p * n_out + j * nr, n_out, n, cols)
        else:
            padded = np.zeros((AMX_ROWS, steps * 64), np.uint8)
            padded[:n, :k] = x[p:p + n]
            amx_step(nr, padded, 0, steps * 64, steps, wp, j * panel, bp, b_off, sums, s0 + p - r0, rq, j * nr,
                     out, p * n_out + j * nr, n_out, n, cols)
    amx_release()


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


@njit(cache=True)
def amx_row_tile(n_pix, row_tile):
    """Rows per task on the AMX tiles: as many tasks as ``row_tile`` (the VNNI tiles' split, from the caller) rounded
    up to whole 16-row steps gives, of equal size (49 rows in tasks of 5: 4 tasks of 13 rows, where 16-row tasks
    would leave one thread 32 rows and the other 17 at 2 threads)."""
    tasks = (n_pix + AMX_ROWS - 1) // AMX_ROWS if row_tile < AMX_ROWS else (n_pix + row_tile - 1) // row_tile
    return (n_pix + tasks - 1) // max(tasks, 1)


@njit(parallel=True, cache=True)
def gemm_bias_requant_u8(x, wp, bp, rq, out, row_tile):
    """out = requant(x @ w + bias'), threaded over tasks of ``row_tile`` rows x one panel (the float GEMM's split; on
    the AMX tiles, amx_row_tile's).

    x:      (P, K) uint8       P pixels (N*H*W of an NHWC tensor) by K input channels
    wp, bp: pack_gemm_s8 / pack_gemm_s16 of w (K, M) and bias' (M,)
    rq:     kernels.int8_requant.Fp32Requant or FixedRequant for M channels
    out:    (P, M) uint8       written

    The tasks go row block by row block, panels inside; the static split gives each thread a run of them. For "u8"
    weights each thread computes the activation sums of a row block as it enters it, into a buffer of its own, in
    the same parallel region (a region of their own cost a second fork and join per layer).
    """
    n_pix = x.shape[0]
    panels = bp.shape[0]
    if runs_on_amx() and x.shape[1] >= AMX_MIN_DEPTH:
        row_tile = amx_row_tile(n_pix, row_tile)
    u8 = needs_row_sums(wp)
    sums = np.empty((MAX_THREADS, row_tile if u8 else 0), np.int32)
    block_of_thread = np.full(MAX_THREADS, -1)
    for task in prange((n_pix + row_tile - 1) // row_tile * panels):
        t = np.int64(task)
        block = t // panels
        p0 = block * row_tile
        rows = min(row_tile, n_pix - p0)
        thread = get_thread_id()
        if u8 and block_of_thread[thread] != block:
            offset_row_sums(x, p0, rows, wp, bp, sums[thread])
            block_of_thread[thread] = block
        gemm_rows(x, p0, rows, wp, bp, t % panels, rq, out, sums[thread], 0)
