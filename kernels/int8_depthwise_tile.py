"""The integer depthwise micro-kernel: a run of output pixels whose taps are all in memory (in the image, or gathered
into a patch), 32 channels at a time, two taps per multiply-add instruction.

A depthwise sum has no reduction along the channels, only across taps, so the taps are paired: for 32 channels,
the input bytes of taps t and t+1 are widened to 16 bits and interleaved (``vpunpcklwd`` / ``vpunpckhwd``), and one
``vpdpwssd`` (AVX-512 VNNI; plain widening IR elsewhere, as kernels.int8_gemm_tile) adds x_t*w_t + x_t1*w_t1 into
each int32 lane: 32 products per instruction, against 16 for the vpmulld + vpaddd of a plain int32 loop (which
also takes two micro-ops). The unpacks work within 128-bit lanes, so the accumulators hold the channels in the
order {0-3, 8-11, 16-19, 24-27} and {4-7, 12-15, 20-23, 28-31}: the weights are packed in that order
(``pack_depthwise``, once at load) and the sums put back in channel order before the bias and the requantization
(kernels.int8_gemm_tile.requantizer). An odd tap count pairs the last tap with a zero weight.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .int8_gemm import aligned_empty
from .int8_gemm_tile import DOT_INSTRUCTIONS, REQUANT_TYPES, VI32, VOUT, requantizer
from .simd import I32, I64, LANES, MASK, const, data, declare

BLOCK = 2 * LANES  # channels per step
I8, I16 = ir.IntType(8), ir.IntType(16)
VBLOCK = ir.VectorType(I8, BLOCK)
VWORDS = ir.VectorType(I16, BLOCK)
# Channel of each accumulator lane after the lane-wise unpacks (128-bit lane L holds words 8L .. 8L+7)
LOW_CHANNELS = tuple(8 * (j // 4) + j % 4 for j in range(LANES))
HIGH_CHANNELS = tuple(c + 4 for c in LOW_CHANNELS)
UNPACK_LOW = [i for lane in range(4) for c in range(4) for i in (8 * lane + c, BLOCK + 8 * lane + c)]
UNPACK_HIGH = [i for lane in range(4) for c in range(4, 8) for i in (8 * lane + c, BLOCK + 8 * lane + c)]
# channel order from (low, high) concatenated: channel ch sits at lane LOW_CHANNELS.index(ch) or 16 + ...
TO_CHANNELS = [LOW_CHANNELS.index(ch) if ch in LOW_CHANNELS else LANES + HIGH_CHANNELS.index(ch) for ch in range(BLOCK)]


def pack_depthwise(w):
    """Depthwise weights (KH, KW, C) in [-255, 255] (int8 or q_w - zp_w) as int16 pairs of taps in the accumulators'
    lane order, flat, 64-byte aligned: (pairs, blocks, 2, 16, 2), zero past the last tap and channel, where
    [p, blk, 0, j] holds taps (2p, 2p+1) of channel blk*32 + LOW_CHANNELS[j] and [p, blk, 1, j] of HIGH_CHANNELS[j].
    """
    kh, kw, channels = np.shape(w)
    if np.abs(np.asarray(w, np.int64)).max(initial=0) > 255:
        raise ValueError("depthwise weights must lie in [-255, 255]")
    taps, pairs, blocks = kh * kw, (kh * kw + 1) // 2, -(-channels // BLOCK)
    padded = np.zeros((2 * pairs, blocks * BLOCK), np.int16)
    padded[:taps, :channels] = np.reshape(w, (taps, channels))
    lanes = padded.reshape(pairs, 2, blocks, BLOCK)[..., np.array([LOW_CHANNELS, HIGH_CHANNELS])]
    packed = aligned_empty((pairs * blocks * 2 * LANES * 2,), np.int16)
    packed[:] = lanes.transpose(0, 2, 3, 4, 1).reshape(-1)  # (pairs, 2 taps, blocks, half, 16) -> (.., half, 16, taps)
    return packed


def _dot_pairs(builder, acc, x_pairs, w_pairs):
    """acc + x_pairs . w_pairs per int32 lane (two int16 products)."""
    if DOT_INSTRUCTIONS:
        dot = declare(builder, "llvm.x86.avx512.vpdpwssd.512", VI32, [VI32, VI32, VI32])
        return builder.call(dot, [acc, builder.bitcast(x_pairs, VI32), builder.bitcast(w_pairs, VI32)])
    wide = ir.VectorType(I32, BLOCK)
    products = builder.mul(builder.sext(x_pairs, wide), builder.sext(w_pairs, wide))
    for i in range(2):
        acc = builder.add(acc, builder.shuffle_vector(products, products, ir.Constant(
            ir.VectorType(I32, LANES), [2 * lane + i for lane in range(LANES)])))
    return acc


UNROLLED_KERNELS = (1, 3, 5)  # square kernels whose pairs are emitted one after the other, their weights held
DW_TILE_ARGS = ("x", "x_off", "pixel_stride", "pixels", "kh", "kw", "row_stride", "tap_stride", "w", "b", "rq", "out",
                "o_off", "channels")


def _emit(context, builder, unrolled, args, array_types):
    """IR of dw_pixels_tile (``args``, ``array_types``: its arguments' LLVM values and Numba types), for a square
    kernel of size ``unrolled`` (in UNROLLED_KERNELS) or any kernel, its pairs in a runtime loop (None).

    Loops: channel blocks of 32 outside (their weights loaded once), pixels inside."""
    value, typ = dict(zip(DW_TILE_ARGS, args)), dict(zip(DW_TILE_ARGS, array_types))
    x_off, pixel_stride, pixels, kh, kw, row_stride, tap_stride, o_off, channels = (value[n] for n in (
        "x_off", "pixel_stride", "pixels", "kh", "kw", "row_stride", "tap_stride", "o_off", "channels"))
    px, pw, pb, po = (data(context, builder, typ[n], value[n]) for n in ("x", "w", "b", "out"))
    taps = builder.mul(kh, kw)
    pairs = builder.sdiv(builder.add(taps, const(1)), const(2))
    requantize = requantizer(context, builder, typ["rq"], value["rq"])
    blocks = builder.sdiv(builder.add(channels, const(BLOCK - 1)), const(BLOCK))
    byte_masked_load = declare(builder, f"llvm.masked.load.v{BLOCK}i8.p0", VBLOCK,
                               [I8.as_pointer(), I32, ir.VectorType(ir.IntType(1), BLOCK), VBLOCK])
    int_masked_load = declare(builder, f"llvm.masked.load.v{LANES}i32.p0", VI32,
                              [I32.as_pointer(), I32, MASK, VI32])
    store = declare(builder, f"llvm.masked.store.v{LANES}i8.p0", ir.VoidType(), [VOUT, I8.as_pointer(), I32, MASK])
    lanes32 = ir.Constant(ir.VectorType(I64, BLOCK), list(range(BLOCK)))
    lanes16 = ir.Constant(ir.VectorType(I64, LANES), list(range(LANES)))

    def splat_i64(v, n):
        vt = ir.VectorType(I64, n)
        one = builder.insert_element(ir.Constant(vt, ir.Undefined), v, ir.Constant(I32, 0))
        return builder.shuffle_vector(one, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(I32, n), [0] * n))

    def loop(end, body):
        """for i in range(end): body(i); end > 0."""
        entry = builder.block
        head = builder.append_basic_block("dwq.loop")
        after = builder.append_basic_block("dwq.loop.end")
        builder.branch(head)
        builder.position_at_end(head)
        i = builder.phi(I64)
        i.add_incoming(const(0), entry)
        body(i)
        i_next = builder.add(i, const(1))
        i.add_incoming(i_next, builder.block)
        builder.cbranch(builder.icmp_signed("<", i_next, end), head, after)
        builder.position_at_end(after)

    def tap_offset(t):
        """Offset of tap t (i64; taps past the last, paired with zero weights, read the last) from tap 0."""
        t = builder.select(builder.icmp_signed("<", t, taps), t, builder.sub(taps, const(1)))
        ky = builder.sdiv(t, kw)
        return builder.add(builder.mul(ky, row_stride), builder.mul(builder.sub(t, builder.mul(ky, kw)), tap_stride))

    taps_unrolled = (unrolled or 0) ** 2
    offsets = [builder.add(builder.mul(const(min(t, taps_unrolled - 1) // unrolled), row_stride),
                           builder.mul(const(min(t, taps_unrolled - 1) % unrolled), tap_stride))
               for t in range(2 * ((taps_unrolled + 1) // 2))]

    def channel_block(blk, partial):
        """Channels blk*32 .. blk*32+31 of every pixel; ``partial``: only those below ``channels`` (masked loads,
        which cost a fifth more than plain ones where every block is whole: 28x28x192 86 -> 68 us)."""
        c = builder.mul(blk, const(BLOCK))
        x_mask = builder.icmp_signed("<", lanes32, splat_i64(builder.sub(channels, c), BLOCK)) if partial else None
        left = [builder.sub(channels, builder.add(c, const(v * LANES))) for v in range(2)]
        out_masks = [builder.icmp_signed("<", lanes16, splat_i64(left[v], LANES)) for v in range(2)]
        biases = [builder.call(int_masked_load, [builder.gep(pb, [builder.add(c, const(v * LANES))]),
                                                 ir.Constant(I32, 4), out_masks[v], ir.Constant(VI32, None)])
                  for v in range(2)]

        def weights(p):  # pair p's two weight vectors (low, high lanes) of this block
            base = builder.mul(builder.add(builder.mul(p, blocks), blk), const(2 * BLOCK))  # int16 elements
            return [builder.load(builder.gep(pw, [builder.add(base, const(half * BLOCK))]), typ=VWORDS, align=2)
                    for half in range(2)]

        held = [weights(const(p)) for p in range(len(offsets) // 2)]

        def pixel(i):
            x_pixel = builder.add(builder.add(x_off, builder.mul(i, pixel_stride)), c)

            def tap_input(offset):
                ptr = builder.gep(px, [builder.add(x_pixel, offset)])
                if partial:
                    v = builder.call(byte_masked_load, [ptr, ir.Constant(I32, 1), x_mask, ir.Constant(VBLOCK, None)])
                else:
                    v = builder.load(ptr, typ=VBLOCK, align=1)
                return builder.zext(v, VWORDS)

            def add_pair(acc, first, second, w):
                out = []
                for half, mask in enumerate((UNPACK_LOW, UNPACK_HIGH)):
                    x_pairs = builder.shuffle_vector(first, second, ir.Constant(ir.VectorType(I32, BLOCK), mask))
                    out.append(_dot_pairs(builder, acc[half], x_pairs, w[half]))
                return out

            zero = [ir.Constant(VI32, None)] * 2
            if unrolled:
                acc = zero
                for p in range(len(offsets) // 2):
                    acc = add_pair(acc, tap_input(offsets[2 * p]), tap_input(offsets[2 * p + 1]), held[p])
            else:  # for p in range(pairs), the sums carried by phi nodes
                entry = builder.block
                head = builder.append_basic_block("dwq.pair")
                after = builder.append_basic_block("dwq.pair.end")
                builder.branch(head)
                builder.position_at_end(head)
                p = builder.phi(I64)
                sums = [builder.phi(VI32), builder.phi(VI32)]
                tap = builder.mul(p, const(2))
                first, second = (tap_input(tap_offset(builder.add(tap, const(j)))) for j in range(2))
                acc = add_pair(sums, first, second, weights(p))
                p_next = builder.add(p, const(1))
                p.add_incoming(const(0), entry)
                p.add_incoming(p_next, builder.block)
                for phi, start, new in zip(sums, zero, acc):
                    phi.add_incoming(start, entry)
                    phi.add_incoming(new, builder.block)
                builder.cbranch(builder.icmp_signed("<", p_next, pairs), head, after)
                builder.position_at_end(after)
            in_order = builder.shuffle_vector(acc[0], acc[1], ir.Constant(ir.VectorType(I32, BLOCK), TO_CHANNELS))
            o_pixel = builder.add(builder.add(o_off, builder.mul(i, channels)), c)
            for v in range(2):
                sums = builder.shuffle_vector(in_order, in_order, ir.Constant(ir.VectorType(I32, LANES),
                                                                              list(range(v * LANES, (v + 1) * LANES))))
                y = builder.trunc(requantize(builder.add(sums, biases[v]), builder.add(c, const(v * LANES))), VOUT)
                builder.call(store, [y, builder.gep(po, [builder.add(o_pixel, const(v * LANES))]), ir.Constant(I32, 1),
                                     out_masks[v]])

        loop(pixels, pixel)

    with builder.if_then(builder.and_(builder.icmp_signed(">", pixels, const(0)),
                                      builder.icmp_signed(">", pairs, const(0)))):
        whole = builder.sdiv(channels, const(BLOCK))
        with builder.if_then(builder.icmp_signed(">", whole, const(0))):
            loop(whole, lambda blk: channel_block(blk, False))
        with builder.if_then(builder.icmp_signed("<", whole, blocks)):
            channel_block(whole, True)


@intrinsic
def dw_pixels_tile(typingctx, x, x_off, pixel_stride, pixels, kh, kw, row_stride, tap_stride, w, b, rq, out, o_off,
                   channels):
    """``pixels`` consecutive output pixels whose taps all lie inside ``x``; offsets in elements:

    x, x_off, pixel_stride   flat uint8 input; the first pixel's tap 0 at x_off, the next pixels' pixel_stride apart
    kh, kw, row_stride, tap_stride   the kernel; tap (ky, kx) at tap 0 + ky*row_stride + kx*tap_stride
    w                        pack_depthwise(weights)
    b, rq                    int32 bias' (C,), requantization (kernels.int8_requant)
    out, o_off, channels     flat uint8 output, the first pixel's C outputs at o_off, the next ones following
    """
    if not isinstance(rq, types.BaseNamedTuple) or rq.instance_class not in REQUANT_TYPES:
        return None
    i = types.intp
    sig = types.void(x, i, i, i, i, i, i, i, w, b, rq, out, i, i)

    def codegen(context, builder, signature, args):
        named = dict(zip(DW_TILE_ARGS, args))
        after = builder.append_basic_block("dwq.end")
        square = builder.select(builder.icmp_signed("==", named["kh"], named["kw"]), named["kw"], const(0))
        switch = builder.switch(square, builder.append_basic_block("dwq.any"))  # a variant per unrolled kernel
        builder.position_at_end(switch.default)
        _emit(context, builder, None, args, signature.args)
        builder.branch(after)
        for size in UNROLLED_KERNELS:
            block = builder.append_basic_block(f"dwq.{size}x{size}")
            switch.add_case(const(size), block)
            builder.position_at_end(block)
            _emit(context, builder, size, args, signature.args)
            builder.branch(after)
        builder.position_at_end(after)
        return context.get_dummy_value()

    return sig, codegen
