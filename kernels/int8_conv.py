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


@njit(cache=True)
def patch_row_u8(x, n, oy, kh, kw, stride, dilation, pad_top, pad_left, pad_value, patches):
    """patches[ox] = the KHxKWxCin taps of output (oy, ox) of image n, in (ky, kx, ci) order.

    x: (N, H, W, Cin) uint8   patches: (Wo, KH*KW*Cin) uint8, written
    """
    height, width, cin = x.shape[1], x.shape[2], x.shape[3]
    out_w, k_total = patches.shape
    xf, pf = x.reshape(x.size), patches.reshape(patches.size)
    lo, hi = interior_columns(width, out_w, (kw - 1) * dilation + 1, stride, pad_left)
    run = np.uint64(kw * cin)
    for ky in range(kh):
        iy = oy * stride - pad_top + ky * dilation
        contiguous = 0 <= iy < height and dilation == 1
        if contiguous:
            # interior pixels: the kernel row's taps are KW*Cin contiguous bytes of the input row (unsigned indices:
            # no negative-index wraparound; element copies of slices cost more than the stem's GEMM)
            for ox in range(lo, hi):
                src = np.uint64(((n * height + iy) * width + ox * stride - pad_left) * cin)
                dst = np.uint64(ox * k_total + ky * kw * cin)
                if run >= 8:
                    copy_bytes(pf, dst, xf, src, run)
                else:
                    for i in range(run):
                        pf[dst + i] = xf[src + i]
        for ox in range(out_w):
            if contiguous and lo <= ox < hi:
                continue
            for kx in range(kw):
                ix = ox * stride - pad_left + kx * dilation
                first = (ky * kw + kx) * cin
                inside = 0 <= iy < height and 0 <= ix < width
                for ci in range(cin):
                    patches[ox, first + ci] = x[n, iy, ix, ci] if inside else pad_value


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
        patches = np.empty((out_w, kh * kw * cin), np.uint8)
        sums = np.empty(out_w, np.int32)
        patch_row_u8(x, n, oy, kh, kw, stride, dilation, pad_top, pad_left, pad_value, patches)
        offset_row_sums(patches, 0, out_w, wp, bp, sums)
        for j in range(panels):
            gemm_rows(patches, 0, out_w, wp, bp, j, rq, out[n, oy], sums, 0)
