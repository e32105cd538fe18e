"""The GEMM micro-kernel: a tile of output rows x output channels that lives in vector registers.

This is XNNPACK's f32 "broadcast" GEMM (f32-gemm MRxNR): for every input channel k, load NR
packed weights as NR/16 vectors, broadcast one activation per row and FMA it into that row's
accumulators. The MR x NR accumulators stay in registers for the whole K loop and are written once,
with the bias (their initial value), the activation and the residual applied on the way out.

Numba cannot be asked for that code: written as scalar variables or loops, LLVM keeps the
accumulators in memory or fails to vectorise them (../shared/notes/numba-lab.md section 2, and
bench/README.md "What was tried": 85-140 GFLOP/s at best). So the tile is emitted directly as LLVM IR
with <16 x float> values through a Numba ``intrinsic``, and LLVM only has to allocate registers.
On this machine it runs at 150-190 GFLOP/s against OpenBLAS's 100-170 (bench/pointwise.py).

Activations are addressed as rows of equal stride (``lda``) made of ``nseg`` segments of ``kseg``
contiguous floats ``seg_stride`` apart, read in order against consecutive rows of the packed
weights. A 1x1 conv is one segment of K channels. A KHxKW conv over NHWC is KH segments (the kernel
rows) of KW*Cin floats, ``lda`` = stride*Cin apart: the patch of one kernel row is contiguous, so a
standard convolution needs no im2col copy.

Packed weights (``pack``): panel j holds output channels j*NR .. j*NR+NR-1 as (K, NR), zero padded
past the last channel; the bias likewise as (NR,). Output columns past the layer's channel count
are never stored (masked stores), so the padding costs FLOPs but no memory.
"""
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from .simd import F32, I64, LANES, MASK, VEC, activated, const, data, fma, lane_mask, load, splat, store

# Rows per tile for each panel width (in vectors): accumulators + weight vectors + one broadcast must fit the 32
# vector registers without spills; these won bench/pointwise.py-style sweeps of 4-16 rows on this machine.
TILE_ROWS = {1: 16, 2: 8, 3: 8, 4: 5}
PANEL_WIDTHS = tuple(nv * LANES for nv in TILE_ROWS)  # 16, 32, 48, 64 output channels


def panel_width(m):
    """Output channels per panel for a layer of ``m`` output channels.

    The fewest padded columns, weighted by the measured speed of each tile (16-wide tiles reload
    their activations four times as often as 64-wide ones); ties go to the wider panel.
    """
    slowdown = {16: 1.3, 32: 1.0, 48: 1.0, 64: 0.97}
    return min(PANEL_WIDTHS, key=lambda nr: (-(-m // nr) * nr * slowdown[nr], -nr))


def pack(w, b, nr=None):
    """(wp, bp): ``w`` (K, M) and ``b`` (M,) as panels of ``nr`` output channels (default: panel_width(M)), 64-byte
    aligned.   wp: (ceil(M/nr), K, nr)   bp: (ceil(M/nr), nr)   zeros past column M
    """
    k, m = w.shape
    nr = nr or panel_width(m)
    panels = -(-m // nr)
    wp = _aligned_zeros((panels, k, nr))
    bp = _aligned_zeros((panels, nr))
    for j in range(panels):
        cols = min(nr, m - j * nr)
        wp[j, :, :cols] = w[:, j * nr:j * nr + cols]
        bp[j, :cols] = b[j * nr:j * nr + cols]
    return wp, bp


def _aligned_zeros(shape):
    n = int(np.prod(shape))
    raw = np.zeros(n + LANES, np.float32)
    offset = (-raw.ctypes.data // 4) % LANES
    return raw[offset:offset + n].reshape(shape)


# gemm_tile's arguments after ``nr``, in order: the codegen receives them as a bare list of LLVM values.
GEMM_TILE_ARGS = ("a", "a_off", "lda", "seg_stride", "nseg", "kseg", "w", "w_off", "b", "b_off", "out", "o_off", "ldo",
                  "rows", "cols", "act", "res", "r_off", "ldr")


def _emit_tile(context, builder, mr, nv, args, array_types):
    """IR for one mr x (nv*LANES) tile; ``args`` (LLVM values) and ``array_types`` as gemm_tile's, without nr."""
    nr = nv * LANES
    (_, a_off, lda, seg_stride, nseg, kseg, _, w_off, _, b_off, _, o_off, ldo, rows, cols, act, _, r_off, ldr) = args
    value, typ = dict(zip(GEMM_TILE_ARGS, args)), dict(zip(GEMM_TILE_ARGS, array_types))
    # Arrays arrive as Numba array structs: their data pointers are what the loads and stores index.
    pa, pw, pb, po, pr = (data(context, builder, typ[name], value[name]) for name in ("a", "w", "b", "out", "res"))

    # Row pointers; rows past ``rows`` read the last valid row (results discarded), as XNNPACK does.
    last = builder.sub(rows, const(1))
    a_rows = []
    for r in range(mr):
        row = builder.select(builder.icmp_signed("<", const(r), rows), const(r), last)
        a_rows.append(builder.gep(pa, [builder.add(a_off, builder.mul(row, lda))]))
    acc_init = [load(builder, pb, builder.add(b_off, const(v * LANES))) for v in range(nv)]

    entry = builder.block
    seg_head = builder.append_basic_block("tile.segment")
    k_loop = builder.append_basic_block("tile.k")
    seg_next = builder.append_basic_block("tile.next_segment")
    done = builder.append_basic_block("tile.done")
    work = builder.and_(builder.icmp_signed(">", nseg, const(0)), builder.icmp_signed(">", kseg, const(0)))
    builder.cbranch(work, seg_head, done)

    # for s in range(nseg): for k in range(kseg): acc[r][v] += a[r, s, k] * w[s*kseg + k, v]
    builder.position_at_end(seg_head)
    s = builder.phi(I64)
    acc_s = [[builder.phi(VEC) for _ in range(nv)] for _ in range(mr)]
    seg_off = builder.mul(s, seg_stride)
    seg_w = builder.add(w_off, builder.mul(builder.mul(s, kseg), const(nr)))
    builder.branch(k_loop)

    builder.position_at_end(k_loop)
    k = builder.phi(I64)
    acc_k = [[builder.phi(VEC) for _ in range(nv)] for _ in range(mr)]
    w_row = builder.add(seg_w, builder.mul(k, const(nr)))
    wv = [load(builder, pw, builder.add(w_row, const(v * LANES))) for v in range(nv)]
    a_k = builder.add(seg_off, k)
    acc_new = []
    for r in range(mr):
        x = splat(builder, builder.load(builder.gep(a_rows[r], [a_k]), typ=F32, align=4))
        acc_new.append([fma(builder, x, wv[v], acc_k[r][v]) for v in range(nv)])
    k_next = builder.add(k, const(1))
    builder.cbranch(builder.icmp_signed("<", k_next, kseg), k_loop, seg_next)

    builder.position_at_end(seg_next)
    s_next = builder.add(s, const(1))
    builder.cbranch(builder.icmp_signed("<", s_next, nseg), seg_head, done)

    # The phi nodes (SSA form: a value that changes around a loop is chosen at the loop head by the block control
    # came from), wired once every block exists, since the back-edge values are made inside the loops:
    #   segment head   s, acc_s: 0 and the bias from ``entry``; s + 1 and the sums so far from ``seg_next``
    #   k loop head    k, acc_k: 0 and acc_s at a segment's start (from ``seg_head``); k + 1 and the new sums
    #                  from the k loop itself
    #   done           acc: the bias alone when there was no work (from ``entry``), else the last sums
    s.add_incoming(const(0), entry)
    s.add_incoming(s_next, seg_next)
    k.add_incoming(const(0), seg_head)
    k.add_incoming(k_next, k_loop)
    for r in range(mr):
        for v in range(nv):
            acc_s[r][v].add_incoming(acc_init[v], entry)
            acc_s[r][v].add_incoming(acc_new[r][v], seg_next)
            acc_k[r][v].add_incoming(acc_s[r][v], seg_head)
            acc_k[r][v].add_incoming(acc_new[r][v], k_loop)

    builder.position_at_end(done)
    acc = [[builder.phi(VEC) for _ in range(nv)] for _ in range(mr)]
    for r in range(mr):
        for v in range(nv):
            acc[r][v].add_incoming(acc_init[v], entry)
            acc[r][v].add_incoming(acc_new[r][v], seg_next)
    masks = [lane_mask(builder, builder.sub(cols, const(v * LANES))) for v in range(nv)]

    # Store (masked past ``cols``) with the activation and the residual. Without a residual (ldr = 0) its loads are
    # masked off entirely: they touch no memory and add zeros.
    with_residual = splat(builder, builder.icmp_signed(">", ldr, const(0)), MASK)

    def output_step(activate):
        for r in range(mr):
            with builder.if_then(builder.icmp_signed("<", const(r), rows)):
                o_row = builder.add(o_off, builder.mul(const(r), ldo))
                r_row = builder.add(r_off, builder.mul(const(r), ldr))
                for v in range(nv):
                    residual_mask = builder.and_(masks[v], with_residual)
                    residual = load(builder, pr, builder.add(r_row, const(v * LANES)), residual_mask)
                    y = builder.fadd(activate(acc[r][v]), residual)
                    store(builder, y, po, builder.add(o_row, const(v * LANES)), masks[v])

    activated(builder, act, output_step)


@intrinsic
def gemm_tile(typingctx, nr, a, a_off, lda, seg_stride, nseg, kseg, w, w_off, b, b_off, out, o_off, ldo, rows, cols,
              act, res, r_off, ldr):
    """One tile of ``tile_rows(nr)`` rows x ``nr`` output channels (nr in PANEL_WIDTHS). Arguments, offsets in floats:

    a, a_off, lda, seg_stride, nseg, kseg   activations: row r, segment s, element k at
                                            a_off + r*lda + s*seg_stride + k (any C-contiguous float32 array)
    w, w_off                                packed weight panel (nseg*kseg, nr) starting at w_off
    b, b_off                                packed bias (nr,) at b_off
    out, o_off, ldo                         output row r at o_off + r*ldo
    rows, cols                              valid rows (<= tile_rows(nr); the missing ones repeat the last row and
                                            are not stored) and valid columns (<= nr; the rest are not stored)
    act                                     activation code (kernels.activation)
    res, r_off, ldr                         residual row r at r_off + r*ldr, added after the activation; ldr = 0: none
    """
    i = types.intp
    sig = types.void(i, a, i, i, i, i, i, w, i, b, i, out, i, i, i, i, i, res, i, i)

    def codegen(context, builder, signature, args):
        after = builder.append_basic_block("tile.end")
        named = dict(zip(("nr", *GEMM_TILE_ARGS), args))
        single_row = builder.icmp_signed("==", named["rows"], const(1))
        switch = builder.switch(named["nr"], after)  # one IR variant per panel width
        for nv, mr in TILE_ROWS.items():
            block = builder.append_basic_block(f"tile.{nv * LANES}")
            switch.add_case(const(nv * LANES), block)
            builder.position_at_end(block)
            # One row alone (the classifier at batch 1) gets a tile of its own: the full tile would repeat it mr times.
            with builder.if_else(single_row) as (one, full):
                with one:
                    _emit_tile(context, builder, 1, nv, args[1:], signature.args[1:])
                with full:
                    _emit_tile(context, builder, mr, nv, args[1:], signature.args[1:])
            builder.branch(after)
        builder.position_at_end(after)
        return context.get_dummy_value()

    return sig, codegen


ROWS_BY_VECTORS = (0, *TILE_ROWS.values())


@njit(cache=True, inline="always")
def tile_rows(nr):
    """Rows per tile of a panel ``nr`` channels wide."""
    return ROWS_BY_VECTORS[nr // LANES]
