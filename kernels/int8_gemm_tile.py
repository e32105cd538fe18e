"""The integer GEMM micro-kernel: rows x output channels of int32 accumulators in vector registers, requantized
to uint8 as they are stored.

kernels.gemm_tile's float tile with integer lanes: for each group of 4 input channels, NR/16 vectors of packed
weights (16 int32 lanes of 4 weight bytes each, kernels.int8_gemm's layout), one broadcast of each row's 4
activations, and one AVX-512 VNNI ``vpdpbusd`` per row and vector (u8 x s8 products, 4 summed into each int32
lane: 64 multiply-adds per instruction, four times an f32 FMA). Two kinds of packed weights:

- "s8" (int8 graphs): int8 weights against the uint8 activations, as they are.
- "u8" (uint8 graphs, weights q_w - zp_w): each output channel's weights w shifted to u = w + c in 0..255, the
  activations flipped to x - 128 (xor 0x80) so that they are the signed operand:
  sum x*w = sum (x - 128)*u + 128*sum u - c*sum x. The packing folds 128*sum u into the bias; the tile subtracts
  c times the row's activation sum (kernels.int8_gemm.offset_row_sums) as it stores. c = -min w is one number
  per tensor: a uint8 graph's weights have one zero point. int16 products (vpdpwssd) would take two
  instructions per 4 channels and a byte shuffle per row: this is one, like s8.

On a CPU without AVX-512 VNNI (``DOT_INSTRUCTIONS`` False, kernels.vector_width.target_has; or
TINYNET_INT8_DOT=widen) the same step is emitted as plain vector IR, widening to int32, multiplying and adding
the 4 products, which LLVM lowers for any target: the same integers, slower. Either way the sums wrap in int32.

The output step is the requantization of kernels.int8_requant in vector form, its type chosen when the kernel
is compiled: fp32 (convert, multiply, clamp, round half to even with ``llvm.rint``, convert), TFLite's fixed
point (64-bit products for the doubling high multiply, per-lane shifts for the rounding division), or the fixed
point of TFLite's optimized SIMD lanes (one 64-bit product, nudge and shift).
"""
import os

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .gemm_tile import TILE_ROWS
from .int8_requant import FixedRequant, FixedSimdRequant, Fp32Requant
from .simd import F32, I32, I64, LANES, MASK, const, data, declare, lane_mask, splat
from .vector_width import target_has

DOT_INSTRUCTIONS = (target_has("avx512vnni")
                    and os.environ.get("TINYNET_INT8_DOT", "") != "widen")

I8 = ir.IntType(8)
VI32 = ir.VectorType(I32, LANES)
VI64 = ir.VectorType(I64, LANES)
VF32 = ir.VectorType(F32, LANES)
VBYTES = ir.VectorType(I8, 4 * LANES)
VOUT = ir.VectorType(I8, LANES)
GROUP_BYTES = ir.VectorType(I8, 4)

# qgemm_tile's arguments after ``nr``, in order.
QGEMM_TILE_ARGS = ("x", "x_off", "ldx", "k", "w", "w_off", "b", "b_off", "sums", "s_off", "rq", "c_off", "out", "o_off",
                   "ldo", "rows", "cols")


def vi32(value):
    return ir.Constant(VI32, [value] * LANES)


def vi64(value):
    return ir.Constant(VI64, [value] * LANES)


def _dot_step(builder, kind, acc, xg, wv):
    """acc + the sums of each lane's 4 products of xg (16 lanes of a row's 4 activations: u8 for kind "s8", s8 for
    "u8") and wv (16 lanes of 4 weights: s8 for "s8", u8 for "u8")."""
    unsigned, signed = (xg, wv) if kind == "s8" else (wv, xg)
    if DOT_INSTRUCTIONS:
        dot = declare(builder, "llvm.x86.avx512.vpdpbusd.512", VI32, [VI32, VI32, VI32])
        return builder.call(dot, [acc, builder.bitcast(unsigned, VI32), builder.bitcast(signed, VI32)])
    wide = ir.VectorType(I32, 4 * LANES)
    products = builder.mul(builder.zext(builder.bitcast(unsigned, VBYTES), wide),
                           builder.sext(builder.bitcast(signed, VBYTES), wide))
    return _add_groups(builder, acc, products, 4)


def _add_groups(builder, acc, products, group):
    """acc + the sums of each lane's ``group`` consecutive elements of ``products`` (16 * group int32)."""
    for i in range(group):
        every = ir.Constant(ir.VectorType(I32, LANES), [lane * group + i for lane in range(LANES)])
        part = builder.shuffle_vector(products, products, every)
        acc = builder.add(acc, part)
    return acc


def _field(context, builder, rq_type, rq, name):
    """Field ``name`` of the requantization namedtuple: an LLVM scalar, or the data pointer of an array field."""
    index = rq_type.instance_class._fields.index(name)
    value, typ = builder.extract_value(rq, index), rq_type.types[index]
    return data(context, builder, typ, value) if isinstance(typ, types.Array) else value


REQUANT_TYPES = (Fp32Requant, FixedRequant, FixedSimdRequant)


def requantizer(context, builder, rq_type, rq):
    """A function (acc <16 x i32>, channel offset i64) -> <16 x i32> outputs in 0..255, for ``rq``'s type."""
    field = lambda name: _field(context, builder, rq_type, rq, name)  # noqa: E731

    def load(pointer, channel, vector_type):
        return builder.load(builder.gep(pointer, [channel]), typ=vector_type, align=4)

    zero_point = splat(builder, builder.trunc(field("out_zp"), I32), VI32)
    if rq_type.instance_class is Fp32Requant:
        scale = field("scale")
        lo, hi = (splat(builder, field(name), VF32) for name in ("out_min_less_zp", "out_max_less_zp"))
        rint = declare(builder, f"llvm.rint.v{LANES}f32", VF32, [VF32])

        def fp32(acc, channel):
            v = builder.fmul(builder.sitofp(acc, VF32), load(scale, channel, VF32))
            v = builder.select(builder.fcmp_ordered(">", v, lo), v, lo)
            v = builder.select(builder.fcmp_ordered("<", v, hi), v, hi)
            return builder.add(builder.fptosi(builder.call(rint, [v]), VI32), zero_point)
        return fp32

    multiplier, shift = field("multiplier"), field("shift")
    if rq_type.instance_class is FixedSimdRequant:
        return _fixed_simd(builder, multiplier, shift, *(splat(builder, field(name), VI64)
                                                          for name in ("out_zp", "out_min", "out_max")))
    lo, hi = (splat(builder, builder.trunc(field(name), I32), VI32) for name in ("out_min", "out_max"))

    def fixed(acc, channel):
        s = load(shift, channel, VI32)
        m = load(multiplier, channel, VI32)
        positive = builder.icmp_signed(">", s, vi32(0))
        x = builder.shl(acc, builder.select(positive, s, vi32(0)))  # wraps in int32
        # SaturatingRoundingDoublingHighMul(x, m) = (x*m + nudge) / 2**31 toward zero, nudge 2**30 or 1 - 2**30 by
        # the sign: both cases are floor((x*m + 2**30) / 2**31), one shift (for p < 0, truncating p + 1 - 2**30 is
        # flooring p + 1 - 2**30 + 2**31 - 1). MIN*MIN saturates.
        t = builder.add(builder.mul(builder.sext(x, VI64), builder.sext(m, VI64)), vi64(2**30))
        high = builder.trunc(builder.ashr(t, vi64(31)), VI32)
        both_min = builder.and_(builder.icmp_signed("==", x, vi32(-2**31)), builder.icmp_signed("==", m, vi32(-2**31)))
        high = builder.select(both_min, vi32(2**31 - 1), high)
        # RoundingDivideByPOT(high, -s): shift right, + 1 where the remainder exceeds half (half, ties, if negative)
        right = builder.select(positive, vi32(0), builder.sub(vi32(0), s))
        mask = builder.sub(builder.shl(vi32(1), right), vi32(1))
        negative = builder.zext(builder.icmp_signed("<", high, vi32(0)), VI32)
        threshold = builder.add(builder.ashr(mask, vi32(1)), negative)
        up = builder.zext(builder.icmp_signed(">", builder.and_(high, mask), threshold), VI32)
        y = builder.add(builder.add(builder.ashr(high, right), up), zero_point)
        y = builder.select(builder.icmp_signed(">", y, lo), y, lo)
        return builder.select(builder.icmp_signed("<", y, hi), y, hi)
    return fixed


def _fixed_simd(builder, multiplier, shift, zero_point, lo, hi):
    """FixedSimdRequant's requantizer (zero_point, lo, hi: <16 x i64> splats), in 64-bit lanes throughout.

    floor((floor((x*m + 2**30) / 2**31) + h) / 2**r) = floor((x*m + 2**30 + 2**(30+r)) / 2**(31+r)) (h = 2**(r-1),
    r > 0: an integer added inside a floor), so the two roundings are one add and one shift."""
    def fixed_simd(acc, channel):
        s = builder.sext(builder.load(builder.gep(shift, [channel]), typ=VI32, align=4), VI64)
        m = builder.sext(builder.load(builder.gep(multiplier, [channel]), typ=VI32, align=4), VI64)
        positive = builder.icmp_signed(">", s, vi64(0))
        x = builder.shl(builder.sext(acc, VI64), builder.select(positive, s, vi64(0)))  # < 2**62: exact
        x = builder.select(builder.icmp_signed(">", x, vi64(2**31 - 1)), vi64(2**31 - 1), x)  # saturate: the same
        x = builder.select(builder.icmp_signed("<", x, vi64(-2**31)), vi64(-2**31), x)  # once clamped
        right = builder.select(positive, vi64(0), builder.sub(vi64(0), s))
        half = builder.select(builder.icmp_signed(">", right, vi64(0)), builder.shl(vi64(2**30), right), vi64(0))
        t = builder.add(builder.mul(x, m), builder.add(half, vi64(2**30)))
        y = builder.add(builder.ashr(t, builder.add(right, vi64(31))), zero_point)
        y = builder.select(builder.icmp_signed(">", y, lo), y, lo)
        return builder.trunc(builder.select(builder.icmp_signed("<", y, hi), y, hi), VI32)
    return fixed_simd


def _emit_tile(context, builder, mr, nv, kind, args, array_types):
    """IR of one mr x (nv*16) tile for weights of ``kind`` ("s8" or "u8"); args, types as qgemm_tile's after nr."""
    nr = nv * LANES
    value, typ = dict(zip(QGEMM_TILE_ARGS, args)), dict(zip(QGEMM_TILE_ARGS, array_types))
    x_off, ldx, k, w_off, b_off, s_off, c_off, o_off, ldo, rows, cols = (value[n] for n in (
        "x_off", "ldx", "k", "w_off", "b_off", "s_off", "c_off", "o_off", "ldo", "rows", "cols"))
    px, pw, pb, psums, po = (data(context, builder, typ[n], value[n]) for n in ("x", "w", "b", "sums", "out"))
    # "u8": the activations become the signed operand, x - 128 (the tail's missing bytes load as 0x80, i.e. 0)
    flip, missing = (0, 0) if kind == "s8" else (0x80808080, 0x80)

    # Row pointers; rows past ``rows`` read the last valid row (results discarded).
    last = builder.sub(rows, const(1))
    x_rows = []
    for r in range(mr):
        row = builder.select(builder.icmp_signed("<", const(r), rows), const(r), last)
        x_rows.append(builder.gep(px, [builder.add(x_off, builder.mul(row, ldx))]))
    acc_init = [builder.load(builder.gep(pb, [builder.add(b_off, const(v * LANES))]), typ=VI32, align=4)
                for v in range(nv)]

    def step(acc, group, x_group):
        """acc plus input channels 4*group .. 4*group+3; x_group(row): i32 of the row's 4 activations."""
        w_group = builder.add(w_off, builder.mul(group, const(nr * 4)))  # (NR, 4) bytes per group
        weights = [builder.load(builder.gep(pw, [builder.add(w_group, const(v * LANES * 4))]), typ=VBYTES, align=1)
                   for v in range(nv)]
        new = []
        for r in range(mr):
            xg = builder.bitcast(splat(builder, builder.xor(x_group(r), ir.Constant(I32, flip)), VI32), VBYTES)
            new.append([_dot_step(builder, kind, acc[r][v], xg, weights[v]) for v in range(nv)])
        return new

    full = builder.sdiv(k, const(4))
    entry = builder.block
    loop = builder.append_basic_block("qtile.k")
    tail = builder.append_basic_block("qtile.tail")
    done = builder.append_basic_block("qtile.done")
    builder.cbranch(builder.icmp_signed(">", full, const(0)), loop, tail)

    builder.position_at_end(loop)
    g = builder.phi(I64)
    acc_loop = [[builder.phi(VI32) for _ in range(nv)] for _ in range(mr)]
    acc_new = step(acc_loop, g, lambda r: builder.load(builder.gep(x_rows[r], [builder.mul(g, const(4))]), typ=I32,
                                                       align=1))
    g_next = builder.add(g, const(1))
    loop_end = builder.block
    builder.cbranch(builder.icmp_signed("<", g_next, full), loop, tail)
    # SSA: the loop counter and sums are phi nodes taking their first value from ``entry``, the next from the back
    # edge (see kernels.gemm_tile)
    g.add_incoming(const(0), entry)
    g.add_incoming(g_next, loop_end)
    for r in range(mr):
        for v in range(nv):
            acc_loop[r][v].add_incoming(acc_init[v], entry)
            acc_loop[r][v].add_incoming(acc_new[r][v], loop_end)

    # The last 1-3 input channels: masked byte loads (the missing bytes touch no memory and weigh 0).
    builder.position_at_end(tail)
    acc_after = [[builder.phi(VI32) for _ in range(nv)] for _ in range(mr)]
    for r in range(mr):
        for v in range(nv):
            acc_after[r][v].add_incoming(acc_init[v], entry)
            acc_after[r][v].add_incoming(acc_new[r][v], loop_end)
    left = builder.sub(k, builder.mul(full, const(4)))
    with_tail = builder.block
    finish = builder.append_basic_block("qtile.tail.step")
    builder.cbranch(builder.icmp_signed(">", left, const(0)), finish, done)
    builder.position_at_end(finish)
    byte_mask = ir.Constant(ir.VectorType(ir.IntType(1), 4), None)
    for lane in range(4):
        inside = builder.icmp_signed("<", const(lane), left)
        byte_mask = builder.insert_element(byte_mask, inside, ir.Constant(I32, lane))
    masked_load = declare(builder, "llvm.masked.load.v4i8.p0", GROUP_BYTES,
                          [I8.as_pointer(), I32, ir.VectorType(ir.IntType(1), 4), GROUP_BYTES])

    def x_tail(r):
        ptr = builder.gep(x_rows[r], [builder.mul(full, const(4))])
        missing_bytes = ir.Constant(GROUP_BYTES, [missing] * 4)
        group = builder.call(masked_load, [ptr, ir.Constant(I32, 1), byte_mask, missing_bytes])
        return builder.bitcast(group, I32)

    acc_tail = step(acc_after, full, x_tail)
    tail_end = builder.block
    builder.branch(done)

    builder.position_at_end(done)
    acc = [[builder.phi(VI32) for _ in range(nv)] for _ in range(mr)]
    for r in range(mr):
        for v in range(nv):
            acc[r][v].add_incoming(acc_after[r][v], with_tail)
            acc[r][v].add_incoming(acc_tail[r][v], tail_end)

    if kind == "u8":  # acc -= c * (the row's activation sum), computed beside the tile
        for r in range(mr):
            row_sum = splat(builder, builder.load(builder.gep(psums, [builder.add(s_off, const(r))]), typ=I32), VI32)
            acc[r] = [builder.sub(acc[r][v], row_sum) for v in range(nv)]

    requantize = requantizer(context, builder, typ["rq"], value["rq"])
    masks = [lane_mask(builder, builder.sub(cols, const(v * LANES))) for v in range(nv)]
    store = declare(builder, f"llvm.masked.store.v{LANES}i8.p0", ir.VoidType(), [VOUT, I8.as_pointer(), I32, MASK])
    for r in range(mr):
        with builder.if_then(builder.icmp_signed("<", const(r), rows)):
            o_row = builder.add(o_off, builder.mul(const(r), ldo))
            for v in range(nv):
                y = builder.trunc(requantize(acc[r][v], builder.add(c_off, const(v * LANES))), VOUT)
                ptr = builder.gep(po, [builder.add(o_row, const(v * LANES))])
                builder.call(store, [y, ptr, ir.Constant(I32, 1), masks[v]])


@intrinsic
def qgemm_tile(typingctx, nr, x, x_off, ldx, k, w, w_off, b, b_off, sums, s_off, rq, c_off, out, o_off, ldo, rows,
               cols):
    """One tile of ``qtile_rows(nr)`` rows x ``nr`` output channels (nr in PANEL_WIDTHS); offsets in elements:

    x, x_off, ldx, k    uint8 activations: row r, input channel i at x_off + r*ldx + i (any C-contiguous array)
    w, w_off            the panel's packed weights (kernels.int8_gemm: int8 "s8" or uint8 "u8") from element w_off
    b, b_off            the panel's packed int32 bias (nr values), then its nr column offsets c ("u8"), from b_off
    sums, s_off         c times row r's activation sum at s_off + r (read for "u8" weights only)
    rq, c_off           requantization (kernels.int8_requant), the panel's first channel c_off
    out, o_off, ldo     uint8 output row r at o_off + r*ldo
    rows, cols          valid rows (<= qtile_rows(nr)) and columns (<= nr); the others are not stored
    """
    kind = {types.int8: "s8", types.uint8: "u8"}.get(w.dtype)
    if kind is None or not isinstance(rq, types.BaseNamedTuple) or rq.instance_class not in REQUANT_TYPES:
        return None
    i = types.intp
    sig = types.void(i, x, i, i, i, w, i, b, i, sums, i, rq, i, out, i, i, i, i)

    def codegen(context, builder, signature, args):
        after = builder.append_basic_block("qtile.end")
        named = dict(zip(("nr", *QGEMM_TILE_ARGS), args))
        single_row = builder.icmp_signed("==", named["rows"], const(1))
        switch = builder.switch(named["nr"], after)  # one IR variant per panel width
        for nv, mr in TILE_ROWS.items():
            block = builder.append_basic_block(f"qtile.{nv * LANES}")
            switch.add_case(const(nv * LANES), block)
            builder.position_at_end(block)
            # One row alone (the classifier at batch 1) gets a tile of its own: the full tile would repeat it mr times.
            with builder.if_else(single_row) as (one, full):
                with one:
                    _emit_tile(context, builder, 1, nv, kind, args[1:], signature.args[1:])
                with full:
                    _emit_tile(context, builder, mr, nv, kind, args[1:], signature.args[1:])
            builder.branch(after)
        builder.position_at_end(after)
        return context.get_dummy_value()

    return sig, codegen


ROWS_BY_VECTORS = (0, *TILE_ROWS.values())


@njit(cache=True, inline="always")
def qtile_rows(nr):
    """Rows per tile of a panel ``nr`` channels wide."""
    return ROWS_BY_VECTORS[nr // LANES]
