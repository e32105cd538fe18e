"""Depthwise convolution (one filter per channel), NHWC.

Each output row (or a group of its channels) is one task, computed by ``dw_tile`` (3x3 and 5x5, stride 1 and 2,
any dilation at stride 1, 16 channels or more; other shapes take a plain loop). A dilated row is ``dilation``
undilated rows interleaved: its blocks are pixels ``dilation`` apart, which share taps as adjacent pixels do. The tile is XNNPACK's f32-dwconv "up16" kernel turned
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
# (kernel size, stride, dilated) of the tile's IR variants. Dilated convs run at stride 1 in every model here
# (torchvision's and DeepLab's dilated backbones trade the stride for the dilation): dilated stride 2 takes the
# generic path rather than two more variants to compile.
TILE_VARIANTS = tuple((k, s, d) for k in TILE_KERNELS for s, d in ((1, False), (2, False), (1, True)))
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
DW_TILE_ARGS = ("src", "row_offsets", "zero", "w", "b", "out", "lo", "hi", "out_w", "width", "stride", "dilation",
                "pad_left", "act", "o_row", "c_begin", "c_end")


def _emit_row(context, builder, k, stride, dilated, args, array_types):
    """IR of dw_tile for a KxK kernel at a fixed stride, ``dilated`` or not (``args``: LLVM values of dw_tile's
    arguments after ``k``, ``array_types`` their Numba types; both in DW_TILE_ARGS order). Undilated, the dilation
    is the constant 1: its offsets fold into the addressing (a runtime 1 cost 80x80x64 3x3 95 -> 134 us)."""
    value, typ = dict(zip(DW_TILE_ARGS, args)), dict(zip(DW_TILE_ARGS, array_types))
    row_offsets, w, lo, hi, out_w, width, pad_left, act, o_row, c_begin, c_end = (value[name] for name in (
        "row_offsets", "w", "lo", "hi", "out_w", "width", "pad_left", "act", "o_row", "c_begin", "c_end"))
    dilation = value["dilation"] if dilated else const(1)
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

    # Taps and the pixels of a block are ``dilation`` columns apart: output pixel ox + p*d reads input columns
    # (ox + p*d)*stride - pad_left + kx*d = column + (p*stride + kx)*d, so that pixel p's tap kx is, at stride 1,
    # pixel p+1's tap kx-1 at any dilation (a dilated row is d undilated ones, interleaved).
    tap_step = builder.mul(dilation, channels)  # floats between two taps of a kernel row

    def block_at(ox, c, weight, bias, size):
        """Outputs ox, ox+d, .., ox+(size-1)*d, channels c .. c+15, all taps inside the row: each input vector
        loaded once for all the taps that use it."""
        column = builder.sub(builder.mul(ox, const(stride)), pad_left)  # input column of tap 0
        base = builder.add(builder.mul(column, channels), c)
        acc = [row_sums(bias) for _ in range(size)]
        inputs = {}
        for ky in range(k):
            for kx in range(k):
                wt = weight(ky * k + kx)
                for p in range(size):
                    col = p * stride + kx
                    if (ky, col) not in inputs:
                        offset = builder.add(base, builder.mul(const(col), tap_step))
                        inputs[ky, col] = load(builder, rows[ky], offset)
                    acc[p][ky] = fma(builder, inputs[ky, col], wt, acc[p][ky])
        sums = [total(acc[p]) for p in range(size)]
        activated(builder, act, lambda activate: [
            store(builder, activate(sums[p]), po, output_at(builder.add(ox, builder.mul(const(p), dilation)), c))
            for p in range(size)])

    span = builder.mul(const(block), dilation)  # output columns of d interleaved blocks

    def interior_run(first, end, body):
        """body(ox, size) over the outputs [first, end), so that every output is computed once (7x7x960: 23 -> 19
        us; overlapping the last block with the one before computed 8 outputs for 5). Undilated: whole blocks, then
        the 1 .. block-1 left over in blocks of 2 and 1. Dilated: spans of d blocks d apart (one starting at each of
        the span's first d columns), then the columns left over one by one."""
        whole_end = builder.sub(end, builder.srem(builder.sub(end, first), span))
        if dilated:
            loop(first, whole_end, span, lambda start: loop(start, builder.add(start, dilation), const(1),
                                                            lambda ox: body(ox, block)))
            loop(whole_end, end, const(1), lambda ox: body(ox, 1))
            return
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

    # Interior outputs per chunk: CHUNK_PIXELS, or whole spans when a span is longer.
    spans = builder.sdiv(const(CHUNK_PIXELS), span)
    chunk = builder.mul(span, builder.select(builder.icmp_signed(">", spans, const(1)), spans, const(1)))

    def interior_chunk(first, c0, c1):
        """``chunk`` interior outputs (fewer in the last chunk) from ``first``, channels [c0, c1), in blocks."""
        left = builder.sub(hi, first)
        end = builder.add(first, builder.select(builder.icmp_signed("<", left, chunk), left, chunk))
        if stride == 1 and not dilated:
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
            col = builder.add(column, builder.mul(const(kx), dilation))
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
        loop(lo, hi, chunk, lambda first: interior_chunk(first, c0, c1))
        pixels(hi, out_w, c0, c1)

    loop(c_begin, c_end, const(CHANNEL_TILE), channel_tile)


@intrinsic
def dw_tile(typingctx, k, src, row_offsets, zero, w, b, out, lo, hi, out_w, width, stride, dilation, pad_left, act,
            o_row, c_begin, c_end):
    """One output row, channels [c_begin, c_end); (k, stride, dilation > 1) in TILE_VARIANTS, C >= LANES (``tiled`` says
    when), and c_end - c_begin >= LANES.

    src:          any C-contiguous float32 array holding the input rows, each (W, C) contiguous
    row_offsets:  MAX_K ints: flat offset in ``src`` of the input row under kernel row ky, or -1 for none (zeros)
    zero:         (>= W*C,) zeros
    w: (k, k, C)  b: (C,)   out: any C-contiguous float32 array
    lo, hi:       the output columns whose taps are all inside the row (interior_columns)
    out_w, width: output and input row lengths (pixels)
    stride, dilation, pad_left, act    taps ``dilation`` columns apart (1: adjacent)
    o_row:        flat offset in ``out`` of the row (column 0, channel 0); column ox follows at o_row + ox*C
    """
    i = types.intp
    sig = types.void(i, src, row_offsets, zero, w, b, out, i, i, i, i, i, i, i, i, i, i, i)

    def codegen(context, builder, signature, args):
        after = builder.append_basic_block("dw.end")
        named = dict(zip(("k", *DW_TILE_ARGS), args))
        # One IR variant per (k, stride, dilated): case 16*k + stride, + 4 where dilated.
        dilated = builder.zext(builder.icmp_signed(">", named["dilation"], const(1)), I64)
        case = builder.add(builder.add(builder.mul(named["k"], const(16)), named["stride"]),
                           builder.mul(dilated, const(4)))
        switch = builder.switch(case, after)
        for size, step, dilated in TILE_VARIANTS:
            block = builder.append_basic_block(f"dw.{size}x{size}.s{step}{'.dilated' if dilated else ''}")
            switch.add_case(const(16 * size + step + 4 * dilated), block)
            builder.position_at_end(block)
            _emit_row(context, builder, size, step, dilated, args[1:], signature.args[1:])
            builder.branch(after)
        builder.position_at_end(after)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def row_offset(n, iy, height, row_floats):
    """Flat offset of row iy of image n in an (N, H, W, C) tensor with W*C = row_floats, or -1 outside the image."""
    return (n * height + iy) * row_floats if 0 <= iy < height else -1


@njit(cache=True)
def image_rows(n, iy0, height, row_floats, dilation=1):
    """row_offsets (MAX_K of them) for kernel rows iy0, iy0 + dilation, iy0 + 2*dilation, ... of image n."""
    return (row_offset(n, iy0, height, row_floats), row_offset(n, iy0 + dilation, height, row_floats),
            row_offset(n, iy0 + 2 * dilation, height, row_floats), row_offset(n, iy0 + 3 * dilation, height, row_floats),
            row_offset(n, iy0 + 4 * dilation, height, row_floats), row_offset(n, iy0 + 5 * dilation, height, row_floats),
            row_offset(n, iy0 + 6 * dilation, height, row_floats))


@njit(cache=True, fastmath={"contract"})
def depthwise_border_pixel_f32(src, row_offsets, w, b, out, o_off, ix0, width, dilation, act):
    """One output pixel by the generic path (shapes dw_tile does not take): taps outside the input are skipped.

    src, row_offsets as dw_tile's (src flat)   w: (KH, KW, C)   out: flat, the pixel's C outputs at o_off
    ix0: input column of tap 0 (may be outside [0, width)); tap kx at ix0 + kx*dilation
    """
    kh, kw, channels = w.shape
    px = out[o_off:o_off + channels]
    for c in range(channels):
        px[c] = b[c]
    for ky in range(kh):
        if row_offsets[ky] >= 0:
            for kx in range(kw):
                ix = ix0 + kx * dilation
                if ix < 0 or ix >= width:
                    continue
                tap = src[row_offsets[ky] + ix * channels:]
                for c in range(channels):
                    px[c] += tap[c] * w[ky, kx, c]
    activate_row(px, act)


@njit(cache=True)
def tiled(kh, kw, stride, dilation, channels):
    """Whether dw_tile takes this shape (others take the generic path): TILE_VARIANTS."""
    return (kh == kw and (kh == 3 or kh == 5) and (stride == 1 or (stride == 2 and dilation == 1))
            and channels >= LANES)



@njit(cache=True, inline="always")
def dw_row_f32(src, row_offsets, zero, w, b, out, o_row, width, out_w, stride, dilation, pad_left, act, c_begin=0,
               c_end=-1):
    """One output row: out[o_row + ox*C + c] for all ox and c in [c_begin, c_end) (c_end -1: C). src and out flat;
    row_offsets as dw_tile's. Only where ``tiled``: otherwise all channels."""
    kh, kw, channels = w.shape
    if tiled(kh, kw, stride, dilation, channels):
        lo, hi = interior_columns(width, out_w, (kw - 1) * dilation + 1, stride, pad_left)
        dw_tile(kh, src, row_offsets, zero, w, b, out, lo, hi, out_w, width, stride, dilation, pad_left, act, o_row,
                c_begin, channels if c_end < 0 else c_end)
    else:
        for ox in range(out_w):
            depthwise_border_pixel_f32(src, row_offsets, w, b, out, o_row + ox * channels, ox * stride - pad_left,
                                       width, dilation, act)


@njit(cache=True)
def channel_group(g, groups, channels):
    """Channels [begin, end) of group g of ``groups``: whole vectors, the remainder in the last group."""
    begin = g * channels // groups // LANES * LANES
    end = channels if g == groups - 1 else (g + 1) * channels // groups // LANES * LANES
    return begin, end


@njit(parallel=True, cache=True)
def dwconv2d_nhwc_f32(x, w, b, out, stride, dilation, pad_top, pad_left, act, groups, zeros):
    """out = act(depthwise_conv(x, w) + b), any kernel size (up to MAX_K), stride and dilation (atrous: taps
    ``dilation`` pixels apart; 1 for adjacent taps).

    x:      (N, H, W, C)      input
    w:      (KH, KW, C)       one KHxKW filter per channel, BatchNorm folded ("HWC", XNNPACK's hwg)
    b:      (C,)              bias
    out:    (N, Ho, Wo, C)    written; Ho, Wo, pad_top, pad_left from kernels.padding.conv_output_size
    groups: tasks per output row, each a group of whole channel vectors (tinynet.plan.depthwise_groups), so that
            images of few rows split evenly between threads and the rows a task reads stay in L2 (a group is swept
            down all the rows before the next). Only where ``tiled`` and C >= groups * LANES; otherwise one task per
            row.
    zeros:  (>= W*C,) float32 zeros, read for kernel rows outside the image (allocated once, by the plan)
    """
    n_img, height, width, channels = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    src, dst = x.reshape(x.size), out.reshape(out.size)
    split = groups if tiled(w.shape[0], w.shape[1], stride, dilation, channels) and channels >= groups * LANES else 1
    for task in prange(n_img * out_h * split):
        g = np.int64(task) // (n_img * out_h)
        t = np.int64(task) - g * (n_img * out_h)
        n = t // out_h
        c_begin, c_end = channel_group(g, split, channels)
        rows = image_rows(n, (t - n * out_h) * stride - pad_top, height, width * channels, dilation)
        dw_row_f32(src, rows, zeros, w, b, dst, t * out_w * channels, width, out_w, stride, dilation, pad_left, act,
                   c_begin, c_end)
