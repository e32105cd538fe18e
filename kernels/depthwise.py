"""Depthwise convolution (one filter per channel), NHWC.

Each output row (or a group of its channels) is one task, computed by ``dw_tile`` (3x3 and 5x5, stride 1 and 2, 16 channels or
more; other shapes take a plain loop). The tile is XNNPACK's f32-dwconv "up16" kernel turned
around: for one vector of 16 channels it keeps the weights and the bias in registers and walks along
the row, so that they are loaded once per row rather than once per pixel. Interior pixels (every
tap inside the row) go in blocks of BLOCK_PIXELS, which load each input vector once for all the
taps that share it; border pixels skip the taps outside the row with masked loads. Kernel rows
that fall outside the image at the top or bottom read a row of zeros. The input rows are passed as
offsets into any array, so that the fused expand + depthwise pass (kernels.inverted_residual) can
run the same row over its ring of expanded rows.

The tile is LLVM IR emitted through a Numba intrinsic (kernels.simd): written as Numba loops, the tap
sums were reloaded from memory and ran at 20-36 GFLOP/s; the tile reaches 30-55 at 1 thread
(bench/dw_vs_conv.py, bench/README.md).
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from .activation import activate_row
from .padding import interior_columns
from .simd import I64, LANES, MASK, activated, const, data, fma, load, splat, store, vconst

MAX_K = 7  # kernel rows the kernels take (row_offsets has this many entries)
TILE_KERNELS = (3, 5)  # square kernel sizes with a register tile; others take the generic path
TILE_STRIDES = (1, 2)
# Output pixels per step, by (kernel size, stride): they share input vectors, and each adds K independent FMA
# chains (one per kernel row). 3x3 keeps its 9 weights in registers; 5x5 reads its 25 from L1 as it goes (held
# in registers with the activation's constants they spilled). Stride 2 shares fewer inputs between pixels, and
# small blocks waste less on the short rows of stride-2 layers (28x28x192 s2: 17 -> 16 us, 7x7x960 s2: 12 -> 10.5).
BLOCK_PIXELS = {(3, 1): 4, (3, 2): 2, (5, 1): 2, (5, 2): 2}
WEIGHTS_IN_REGISTERS = {3: True, 5: False}
# Output pixels per pass over the channels: the inputs of a pass (KxK taps of CHUNK_PIXELS pixels) stay in L1
# while every channel vector sweeps them.
CHUNK_PIXELS = 16
# Channels per pass along the row: their weights (KxK x 128 floats, 12.5 KB at 5x5) stay in L1 for the whole row
# (7x7x960 5x5: 76 -> 67 us).
CHANNEL_TILE = 128


# dw_tile's arguments after ``k``, in order: the codegen receives them as a bare list of LLVM values.
DW_TILE_ARGS = ("src", "row_offsets", "zero", "w", "b", "out", "lo", "hi", "out_w", "width", "stride", "pad_left", "act",
                "o_row", "c_begin", "c_end")


def _emit_row(context, builder, k, stride, args, array_types):
    """IR of dw_tile for a KxK kernel at a fixed stride (``args``: LLVM values of dw_tile's arguments after ``k``,
    ``array_types`` their Numba types; both in DW_TILE_ARGS order)."""
    value, typ = dict(zip(DW_TILE_ARGS, args)), dict(zip(DW_TILE_ARGS, array_types))
    row_offsets, w, lo, hi, out_w, width, pad_left, act, o_row, c_begin, c_end = (value[name] for name in (
        "row_offsets", "w", "lo", "hi", "out_w", "width", "pad_left", "act", "o_row", "c_begin", "c_end"))
    # Arrays arrive as Numba array structs: their data pointers are what the loads and stores index.
    psrc, pzero, pw, pb, po = (data(context, builder, typ[name], value[name]) for name in ("src", "zero", "w", "b", "out"))
    channels = builder.extract_value(context.make_array(typ["w"])(context, builder, w).shape, 2)
    block = BLOCK_PIXELS[k, stride]

    # The K input rows: at their offsets in ``src``, or the zero row where the offset is -1.
    rows = []
    for ky in range(k):
        offset = builder.extract_value(row_offsets, ky)
        rows.append(builder.select(builder.icmp_signed(">=", offset, const(0)), builder.gep(psrc, [offset]), pzero))

    def loop(first, end, step, body, whole=False):
        """for i in range(first, end, step): body(i). ``whole``: the last step is moved back to end-step (it overlaps
        the one before: those outputs are computed twice, identically) so that every step is whole; then end-first
        must be >= step."""
        entry = builder.block
        head = builder.append_basic_block("dw.loop")
        done = builder.append_basic_block("dw.loop.done")
        builder.cbranch(builder.icmp_signed("<", first, end), head, done)
        builder.position_at_end(head)
        # SSA form: the loop counter is a phi node at the loop head, taking ``first`` when entered from ``entry``
        # and ``i_next`` when reached again from the loop's last block (the back edge, added once it exists).
        i = builder.phi(I64)
        i.add_incoming(first, entry)
        if whole:
            last = builder.sub(end, step)
            body(builder.select(builder.icmp_signed("<", i, last), i, last))
        else:
            body(i)
        i_next = builder.add(i, step)
        i.add_incoming(i_next, builder.block)  # builder.block: body may have added blocks; the edge leaves the last
        builder.cbranch(builder.icmp_signed("<", i_next, end), head, done)
        builder.position_at_end(done)

    # One accumulator per kernel row: a pixel's K*K taps as one chain of dependent FMAs ran at a quarter of the FMA
    # units' rate (4 cycles each, and only BLOCK_PIXELS chains at a time); K chains of K taps keep them busy.
    def row_sums(bias):
        return [bias] + [vconst(0.0)] * (k - 1)

    def total(sums):
        while len(sums) > 1:
            sums = [builder.fadd(a, b) for a, b in zip(sums[::2], sums[1::2])] + sums[len(sums) // 2 * 2:]
        return sums[0]

    def output_at(ox, c):
        return builder.add(builder.add(o_row, builder.mul(ox, channels)), c)

    def block_at(ox, c, weight, bias, size):
        """Outputs ox .. ox+size-1, channels c .. c+15, all taps inside the row: each input vector loaded once for
        all the taps that use it (at stride 1, pixel p's tap kx is pixel p+1's tap kx-1)."""
        column = builder.sub(builder.mul(ox, const(stride)), pad_left)  # input column of tap 0
        acc = [row_sums(bias) for _ in range(size)]
        inputs = {}
        for ky in range(k):
            for kx in range(k):
                wt = weight(ky * k + kx)
                for p in range(size):
                    col = p * stride + kx
                    if (ky, col) not in inputs:
                        offset = builder.add(builder.mul(builder.add(column, const(col)), channels), c)
                        inputs[ky, col] = load(builder, rows[ky], offset)
                    acc[p][ky] = fma(builder, inputs[ky, col], wt, acc[p][ky])
        sums = [total(acc[p]) for p in range(size)]
        activated(builder, act, lambda activate: [
            store(builder, activate(sums[p]), po, output_at(builder.add(ox, const(p)), c)) for p in range(size)])

    def interior_run(first, end, body):
        """body(ox, size) over the outputs [first, end): whole blocks of ``block`` pixels, then the 1 .. block-1
        left over in blocks of 2 and 1, so that every output is computed once (7x7x960: 23 -> 19 us; overlapping
        the last block with the one before computed 8 outputs for 5)."""
        whole_end = builder.add(first, builder.and_(builder.sub(end, first), const(-block)))
        loop(first, whole_end, const(block), lambda ox: body(ox, block))
        at = whole_end
        for size in (2, 1):
            if size < block:
                fits = builder.icmp_signed(">=", builder.sub(end, at), const(size))
                with builder.if_then(fits):
                    body(at, size)
                at = builder.select(fits, builder.add(at, const(size)), at)

    def vectors(body, c0, c1):
        """body(c, weight, bias) for every vector of 16 channels in [c0, c1) (the last one overlapping the one before
        when the range is not a multiple of 16; c1 - 16 >= 0): weight(t) gives tap t's weights, bias the bias."""
        def vector(c):
            def weight(t):
                return load(builder, pw, builder.add(builder.mul(const(t), channels), c))

            if WEIGHTS_IN_REGISTERS[k]:
                held = [weight(t) for t in range(k * k)]
                body(c, held.__getitem__, load(builder, pb, c))
            else:
                body(c, weight, load(builder, pb, c))

        short = builder.icmp_signed("<", builder.sub(c1, c0), const(LANES))
        loop(builder.select(short, builder.sub(c1, const(LANES)), c0), c1, const(LANES), vector, whole=True)

    def interior_chunk(first, c0, c1):
        """CHUNK_PIXELS interior outputs (fewer in the last chunk) from ``first``, channels [c0, c1), in blocks."""
        left = builder.sub(hi, first)
        end = builder.add(first, builder.select(builder.icmp_signed("<", left, const(CHUNK_PIXELS)), left,
                                                const(CHUNK_PIXELS)))
        if stride == 1:
            def blocks_of_vector(c, weight, bias):
                interior_run(first, end, lambda ox, size: block_at(ox, c, weight, bias, size))

            vectors(blocks_of_vector, c0, c1)
        else:  # every vector of a block before the next block: 112x112x96 s2 260 -> 208 us, 28x28x192 s2 22 -> 16 us
            def vectors_of_block(ox, size):
                vectors(lambda c, weight, bias: block_at(ox, c, weight, bias, size), c0, c1)

            interior_run(first, end, vectors_of_block)

    def pixel(ox, c, weight, bias):
        """Output ox, channels c .. c+15, taps outside the row skipped (masked loads that touch no memory): the
        border columns."""
        column = builder.sub(builder.mul(ox, const(stride)), pad_left)
        acc = row_sums(bias)
        for kx in range(k):
            col = builder.add(column, const(kx))
            inside = builder.and_(builder.icmp_signed(">=", col, const(0)), builder.icmp_signed("<", col, width))
            inside = splat(builder, inside, MASK)
            offset = builder.add(builder.mul(col, channels), c)
            for ky in range(k):
                acc[ky] = fma(builder, load(builder, rows[ky], offset, inside), weight(ky * k + kx), acc[ky])
        pixel_sum = total(acc)
        activated(builder, act, lambda activate: store(builder, activate(pixel_sum), po, output_at(ox, c)))

    def pixels(first, end, c0, c1):
        """Outputs first .. end-1 one at a time, channels [c0, c1)."""
        with builder.if_then(builder.icmp_signed("<", first, end)):
            vectors(lambda c, weight, bias: loop(first, end, const(1), lambda ox: pixel(ox, c, weight, bias)), c0, c1)

    def channel_tile(c0):
        """The whole row for channels [c0, c0 + CHANNEL_TILE): their weights stay in L1 while the row passes."""
        c1 = builder.add(c0, const(CHANNEL_TILE))
        c1 = builder.select(builder.icmp_signed("<", c_end, c1), c_end, c1)
        # Columns [lo, hi) have every tap inside the row and go in blocks; the border columns one by one.
        pixels(const(0), lo, c0, c1)
        loop(lo, hi, const(CHUNK_PIXELS), lambda first: interior_chunk(first, c0, c1))
        pixels(hi, out_w, c0, c1)

    loop(c_begin, c_end, const(CHANNEL_TILE), channel_tile)


@intrinsic
def dw_tile(typingctx, k, src, row_offsets, zero, w, b, out, lo, hi, out_w, width, stride, pad_left, act, o_row,
            c_begin, c_end):
    """One output row, channels [c_begin, c_end); k in TILE_KERNELS, stride in TILE_STRIDES, C >= LANES (``tiled`` says
    when), and c_end - c_begin >= LANES.

    src:          any C-contiguous float32 array holding the input rows, each (W, C) contiguous
    row_offsets:  MAX_K ints: flat offset in ``src`` of the input row under kernel row ky, or -1 for none (zeros)
    zero:         (>= W*C,) zeros
    w: (k, k, C)  b: (C,)   out: any C-contiguous float32 array
    lo, hi:       the output columns whose taps are all inside the row (interior_columns)
    out_w, width: output and input row lengths (pixels)
    stride, pad_left, act
    o_row:        flat offset in ``out`` of the row (column 0, channel 0); column ox follows at o_row + ox*C
    """
    i = types.intp
    sig = types.void(i, src, row_offsets, zero, w, b, out, i, i, i, i, i, i, i, i, i, i)

    def codegen(context, builder, signature, args):
        after = builder.append_basic_block("dw.end")
        named = dict(zip(("k", *DW_TILE_ARGS), args))
        case = builder.add(builder.mul(named["k"], const(16)), named["stride"])  # one IR variant per (k, stride)
        switch = builder.switch(case, after)
        for size in TILE_KERNELS:
            for step in TILE_STRIDES:
                block = builder.append_basic_block(f"dw.{size}x{size}.s{step}")
                switch.add_case(const(16 * size + step), block)
                builder.position_at_end(block)
                _emit_row(context, builder, size, step, args[1:], signature.args[1:])
                builder.branch(after)
        builder.position_at_end(after)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def row_offset(n, iy, height, row_floats):
    """Flat offset of row iy of image n in an (N, H, W, C) tensor with W*C = row_floats, or -1 outside the image."""
    return (n * height + iy) * row_floats if 0 <= iy < height else -1


@njit(cache=True)
def image_rows(n, iy0, height, row_floats):
    """row_offsets (MAX_K of them) for kernel rows iy0, iy0+1, ... of image n."""
    return (row_offset(n, iy0, height, row_floats), row_offset(n, iy0 + 1, height, row_floats),
            row_offset(n, iy0 + 2, height, row_floats), row_offset(n, iy0 + 3, height, row_floats),
            row_offset(n, iy0 + 4, height, row_floats), row_offset(n, iy0 + 5, height, row_floats),
            row_offset(n, iy0 + 6, height, row_floats))


@njit(cache=True, fastmath={"contract"})
def depthwise_border_pixel_f32(src, row_offsets, w, b, out, o_off, ix0, width, act):
    """One output pixel by the generic path (shapes dw_tile does not take): taps outside the input are skipped.

    src, row_offsets as dw_tile's (src flat)   w: (KH, KW, C)   out: flat, the pixel's C outputs at o_off
    ix0: input column of tap 0 (may be outside [0, width))
    """
    kh, kw, channels = w.shape
    px = out[o_off:o_off + channels]
    for c in range(channels):
        px[c] = b[c]
    for ky in range(kh):
        if row_offsets[ky] >= 0:
            for kx in range(max(0, -ix0), min(kw, width - ix0)):
                tap = src[row_offsets[ky] + (ix0 + kx) * channels:]
                for c in range(channels):
                    px[c] += tap[c] * w[ky, kx, c]
    activate_row(px, act)


@njit(cache=True)
def tiled(kh, kw, stride, channels):
    """Whether dw_tile takes this shape (others take the generic path)."""
    return kh == kw and (kh == 3 or kh == 5) and (stride == 1 or stride == 2) and channels >= LANES



@njit(cache=True, inline="always")
def dw_row_f32(src, row_offsets, zero, w, b, out, o_row, width, out_w, stride, pad_left, act, c_begin=0, c_end=-1):
    """One output row: out[o_row + ox*C + c] for all ox and c in [c_begin, c_end) (c_end -1: C). src and out flat;
    row_offsets as dw_tile's. Only where ``tiled``: otherwise all channels."""
    kh, kw, channels = w.shape
    if tiled(kh, kw, stride, channels):
        lo, hi = interior_columns(width, out_w, kw, stride, pad_left)
        dw_tile(kh, src, row_offsets, zero, w, b, out, lo, hi, out_w, width, stride, pad_left, act, o_row, c_begin,
                channels if c_end < 0 else c_end)
    else:
        for ox in range(out_w):
            depthwise_border_pixel_f32(src, row_offsets, w, b, out, o_row + ox * channels, ox * stride - pad_left, width, act)


@njit(cache=True)
def channel_group(g, groups, channels):
    """Channels [begin, end) of group g of ``groups``: whole vectors, the remainder in the last group."""
    begin = g * channels // groups // LANES * LANES
    end = channels if g == groups - 1 else (g + 1) * channels // groups // LANES * LANES
    return begin, end


@njit(parallel=True, cache=True)
def dwconv2d_nhwc_f32(x, w, b, out, stride, pad_top, pad_left, act, groups, zeros):
    """out = act(depthwise_conv(x, w) + b), any kernel size (up to MAX_K) and stride.

    x:      (N, H, W, C)      input
    w:      (KH, KW, C)       one KHxKW filter per channel, BatchNorm folded ("HWC", XNNPACK's hwg)
    b:      (C,)              bias
    out:    (N, Ho, Wo, C)    written; Ho, Wo, pad_top, pad_left from kernels.padding.conv_output_size
    groups: tasks per output row, each a group of whole channel vectors (tinynet.plan.depthwise_groups), so that
            images of few rows split evenly between threads. Only where ``tiled`` and C >= groups * LANES;
            otherwise one task per row.
    zeros:  (>= W*C,) float32 zeros, read for kernel rows outside the image (allocated once, by the plan)
    """
    n_img, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    src, dst = x.reshape(x.size), out.reshape(out.size)
    split = groups if tiled(w.shape[0], w.shape[1], stride, channels) and channels >= groups * LANES else 1
    for task in prange(n_img * out_h * split):
        t = np.int64(task) // split
        n = t // out_h
        c_begin, c_end = channel_group(np.int64(task) - t * split, split, channels)
        rows = image_rows(n, (t - n * out_h) * stride - pad_top, height, width * channels)
        dw_row_f32(src, rows, zeros, w, b, dst, t * out_w * channels, width, out_w, stride, pad_left, act, c_begin,
                   c_end)


@njit(parallel=True, cache=True, fastmath={"contract"})
def dwconv2d_dilated_nhwc_f32(x, w, b, out, stride, dilation, pad_top, pad_left, act):
    """dwconv2d_nhwc_f32 with taps ``dilation`` pixels apart (atrous), the general path: a plain loop per output row.

    Dilation 1 keeps dwconv2d_nhwc_f32 (its register tile assumes adjacent taps).
    x: (N, H, W, C)   w: (KH, KW, C)   b: (C,)   out: (N, Ho, Wo, C), Ho, Wo, pads from
    kernels.padding.conv_output_size(..., dilation)
    """
    n_img, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    kh, kw = w.shape[0], w.shape[1]
    for task in prange(n_img * out_h):
        t = np.int64(task)
        n = t // out_h
        oy = t - n * out_h
        iy0 = oy * stride - pad_top
        out_row = out[n, oy]
        for ox in range(out_w):
            pixel = out_row[ox]
            pixel[:] = b
            ix0 = ox * stride - pad_left
            for ky in range(kh):
                iy = iy0 + ky * dilation
                if iy < 0 or iy >= height:
                    continue
                for kx in range(kw):
                    ix = ix0 + kx * dilation
                    if 0 <= ix < width:
                        src, wk = x[n, iy, ix], w[ky, kx]
                        for c in range(channels):
                            pixel[c] += src[c] * wk[c]
            activate_row(pixel, act)
