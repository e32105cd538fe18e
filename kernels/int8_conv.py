"""Integer standard convolution (groups=1), NHWC, with fused requantization: the stem and general KxK convs.

Each output row is a small GEMM: its patches are gathered into a (Wo, KH*KW*Cin) uint8 matrix (im2col, one row
at a time, so it stays in L1/L2), taps outside the image reading ``pad_value`` (the input zero point, folded into
the bias as in kernels.int8_gemm), and multiplied by the packed weights with kernels.int8_gemm's register tiles.
The stem's patches are 27 bytes; the gather costs little beside the GEMM.
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .int8_gemm import gemm_rows, offset_row_sums
from .padding import interior_columns


@intrinsic
def copy_bytes(typingctx, dst, d, src, s, n):
    """dst[d:d+n] = src[s:s+n] for n >= 8 (uint8 arrays), 8 bytes per move, the last move overlapping the one before:
    the stem copies runs of 9 bytes, which byte moves made cost more than its GEMM."""
    def codegen(context, builder, signature, args):
        dst_array, d, src_array, s, n = args
        pd = builder.gep(context.make_array(signature.args[0])(context, builder, dst_array).data, [d])
        ps = builder.gep(context.make_array(signature.args[2])(context, builder, src_array).data, [s])
        i64 = ir.IntType(64)

        def move(at):
            word = builder.load(builder.gep(ps, [at]), typ=i64, align=1)
            builder.store(word, builder.bitcast(builder.gep(pd, [at]), i64.as_pointer()), align=1)

        last = builder.sub(n, ir.Constant(i64, 8))
        entry = builder.block
        loop = builder.append_basic_block("copy.loop")
        done = builder.append_basic_block("copy.done")
        builder.cbranch(builder.icmp_signed(">", last, ir.Constant(i64, 0)), loop, done)
        builder.position_at_end(loop)
        at = builder.phi(i64)
        at.add_incoming(ir.Constant(i64, 0), entry)
        move(at)
        at_next = builder.add(at, ir.Constant(i64, 8))
        at.add_incoming(at_next, loop)
        builder.cbranch(builder.icmp_signed("<", at_next, last), loop, done)
        builder.position_at_end(done)
        move(last)
        return context.get_dummy_value()

    return types.void(dst, types.uint64, src, types.uint64, types.uint64), codegen


@intrinsic
def copy_16_bytes(typingctx, dst, d, src, s):
    """dst[d:d+16] = src[s:s+16] (uint8 arrays, or raw memory the caller knows to be there), one unaligned move."""
    def codegen(context, builder, signature, args):
        dst_array, d, src_array, s = args
        pd = builder.gep(context.make_array(signature.args[0])(context, builder, dst_array).data, [d])
        ps = builder.gep(context.make_array(signature.args[2])(context, builder, src_array).data, [s])
        v16 = ir.VectorType(ir.IntType(8), 16)
        builder.store(builder.load(builder.bitcast(ps, v16.as_pointer()), align=1), builder.bitcast(pd, v16.as_pointer()),
                      align=1)
        return context.get_dummy_value()

    return types.void(dst, types.uint64, src, types.uint64), codegen


PATCH_SLACK = 16  # bytes past the last patch that patch_row_u8 may overwrite


@njit(cache=True)
def patch_row_u8(x, n, oy, kh, kw, stride, dilation, pad_top, pad_left, pad_value, patches):
    """patches[ox*K:(ox+1)*K] = the KHxKWxCin taps of output (oy, ox) of image n, in (ky, kx, ci) order (K =
    KH*KW*Cin), for every output column ox.

    x: (N, H, W, Cin) uint8   patches: (Wo*K + PATCH_SLACK,) uint8, written (the slack too, with garbage)
    """
    height, width, cin = x.shape[1], x.shape[2], x.shape[3]
    k_total = kh * kw * cin
    out_w = (patches.size - PATCH_SLACK) // k_total
    xf = x.reshape(x.size)
    lo, hi = interior_columns(width, out_w, (kw - 1) * dilation + 1, stride, pad_left)
    run = np.uint64(kw * cin)
    if dilation == 1:
        # interior columns: each kernel row's taps are KW*Cin contiguous bytes of the input row (unsigned indices:
        # no negative-index wraparound; element copies of slices cost more than the stem's GEMM). Runs of 8-16
        # bytes (the stem's 9) go by one 16-byte move whose spill past the run, at most the run's length, lands on
        # the next run of the pixel or the next pixel's first, written after it (the pixels at hi and past Wo
        # come later or are the slack).
        row_start = np.empty(kh, np.int64)  # where kernel row ky's taps of output column 0 start (may be < 0)
        row_inside = np.empty(kh, np.bool_)
        spill_ok = 8 <= run <= 16
        for ky in range(kh):
            iy = oy * stride - pad_top + ky
            row_inside[ky] = 0 <= iy < height
            row_start[ky] = ((n * height + iy) * width - pad_left) * cin
            if row_inside[ky] and row_start[ky] + (hi - 1) * stride * cin + 16 > xf.size:
                spill_ok = False  # the last run is too near the end of x for a 16-byte read
        for ox in range(lo, hi):
            for ky in range(kh):
                dst = np.uint64(ox * k_total) + np.uint64(ky) * run
                if row_inside[ky]:
                    src = np.uint64(row_start[ky] + ox * stride * cin)
                    if spill_ok:
                        copy_16_bytes(patches, dst, xf, src)
                    elif run >= 8:
                        copy_bytes(patches, dst, xf, src, run)
                    else:
                        for i in range(run):
                            patches[dst + i] = xf[src + i]
                else:
                    for i in range(run):
                        patches[dst + i] = pad_value
    for ox in range(out_w):
        if dilation == 1 and lo <= ox < hi:
            continue
        for ky in range(kh):
            iy = oy * stride - pad_top + ky * dilation
            for kx in range(kw):
                ix = ox * stride - pad_left + kx * dilation
                first = ox * k_total + (ky * kw + kx) * cin
                inside = 0 <= iy < height and 0 <= ix < width
                for ci in range(cin):
                    patches[first + ci] = x[n, iy, ix, ci] if inside else pad_value


@njit(parallel=True, cache=True)
def conv2d_nhwc_u8(x, wp, bp, rq, out, kh, kw, stride, dilation, pad_top, pad_left, pad_value):
    """out = requant(conv(x, w) + bias'), any KHxKW kernel, stride and dilation; one task per output row.

    x:      (N, H, W, Cin) uint8
    wp, bp: kernels.int8_gemm.pack_gemm_s8 / pack_gemm_s16 of w.reshape(KH*KW*Cin, Cout) and bias' (Cout,)
    rq:     kernels.int8_requant.Fp32Requant or FixedRequant for Cout channels
    out:    (N, Ho, Wo, Cout) uint8, written; the bottom and right padding are what Ho and Wo imply
    kh, kw: the kernel size (the packed weights' K is padded); pad_value as kernels.int8_depthwise's
    """
    n_img, cin = x.shape[0], x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    panels = bp.shape[0]
    for task in prange(n_img * out_h):
        t = np.int64(task)
        n = t // out_h
        oy = t - n * out_h
        buffer = np.empty(out_w * kh * kw * cin + PATCH_SLACK, np.uint8)
        patch_row_u8(x, n, oy, kh, kw, stride, dilation, pad_top, pad_left, pad_value, buffer)
        patches = buffer[:out_w * kh * kw * cin].reshape(out_w, kh * kw * cin)
        sums = np.empty(out_w, np.int32)
        offset_row_sums(patches, 0, out_w, wp, bp, sums)
        for j in range(panels):
            gemm_rows(patches, 0, out_w, wp, bp, j, rq, out[n, oy], sums, 0)
