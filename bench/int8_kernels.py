"""The integer kernels on MobileNet shapes at 224x224: checked against kernels.int8_reference, then timed beside
the float32 kernel of the same shape, at 1 and 2 threads.

    python bench/int8_kernels.py [--calls 30] [--threads 1 2]

Columns: the float32 kernel (bias + ReLU6), the integer kernel with s8 weights (int8 graphs) and fp32
requantization (LiteRT's default), s8 with TFLite's fixed-point requantization (the reference profile), and s16
weights (uint8 graphs) with fp32 requantization. Medians of --calls calls after 50 ms of untimed calls; every
variant of a row is timed in one process, interleaved call by call. --cpu-time (with --threads 1) times by the
thread's CPU time instead of the wall clock, for a machine busy with other work.
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from tinynet import kernels  # noqa: E402  (threading layer first)
from tinynet.kernels import int8_reference as ref  # noqa: E402
from tinynet.kernels.int8_conv import conv2d_nhwc_u8  # noqa: E402
from tinynet.kernels.int8_depthwise import dwconv2d_nhwc_u8  # noqa: E402
from tinynet.kernels.int8_depthwise_tile import pack_depthwise  # noqa: E402
from tinynet.kernels.int8_gemm import aligned_empty, gemm_bias_requant_u8, pack_gemm_s8, pack_gemm_s16  # noqa: E402
from tinynet.kernels.int8_requant import fixed_requant, fp32_requant  # noqa: E402
from tinynet.kernels.padding import conv_output_size  # noqa: E402
from tinynet.plan import aligned_zeros, depthwise_groups, gemm_row_tile  # noqa: E402

RELU6 = 2
# (kind, H, W, Cin, Cout or k, stride): MobileNet V2 (and V3-Large's 7x7x960 -> 1280) at 224
CASES = [("pw", 112, 112, 16, 96, 1), ("pw", 112, 112, 32, 16, 1), ("pw", 56, 56, 24, 144, 1),
         ("pw", 56, 56, 144, 24, 1), ("pw", 28, 28, 192, 32, 1), ("pw", 14, 14, 64, 384, 1),
         ("pw", 14, 14, 576, 96, 1), ("pw", 7, 7, 160, 960, 1), ("pw", 7, 7, 960, 1280, 1), ("pw", 1, 1, 1280, 1001, 1),
         ("dw", 112, 112, 32, 3, 1), ("dw", 112, 112, 96, 3, 2), ("dw", 56, 56, 144, 3, 1), ("dw", 56, 56, 144, 3, 2),
         ("dw", 28, 28, 192, 3, 1), ("dw", 14, 14, 576, 3, 1), ("dw", 7, 7, 960, 3, 1), ("dw", 14, 14, 480, 5, 1),
         ("conv", 224, 224, 3, 32, 2)]


def requant(rng, mode, channels, typical):
    real = rng.uniform(0.5, 2.0, channels) * 100 / typical
    if mode == "fp32":
        scale = real.astype(np.float32)
        return fp32_requant(scale, 0, 0, 255, channels), ("fp32", scale, 0, 0, 255)
    mantissa, exponent = np.frexp(real)
    multiplier = np.minimum(np.round(mantissa * 2**31), 2**31 - 1).astype(np.int32)
    return (fixed_requant(multiplier, exponent, 0, 0, 255, channels),
            ("fixed", multiplier, exponent.astype(np.int32), 0, 0, 255))


def integer_weights(rng, kind, shape):
    """int8 weights (s8), or q_w - zp_w of a uint8 graph (s16)."""
    if kind == "s8":
        return rng.integers(-127, 128, shape).astype(np.int8)
    return (rng.integers(0, 256, shape) - 120).astype(np.int16)


VARIANTS = (("s8 fp32", "s8", "fp32"), ("s8 fixed", "s8", "fixed"), ("s16 fp32", "s16", "fp32"))


def same_padding(h, w, k, stride):
    """(out_h, out_w, (top, bottom, left, right)) of TensorFlow SAME padding."""
    out_h, top = conv_output_size(h, k, stride, "tf_same")
    out_w, left = conv_output_size(w, k, stride, "tf_same")
    return out_h, out_w, (top, (out_h - 1) * stride + k - h - top, left, (out_w - 1) * stride + k - w - left)


def build(case, threads, rng):
    """{variant: (kernel, args)} for one case, each integer variant checked against the reference first."""
    op, h, w, cin, arg, stride = case
    x_f = rng.standard_normal((1, h, w, cin)).astype(np.float32)
    x_u = rng.integers(0, 256, (1, h, w, cin)).astype(np.uint8)
    if op == "pw":
        m = arg
        wp, bp = kernels.pack_weights((rng.standard_normal((cin, m)) / np.sqrt(cin)).astype(np.float32),
                                      np.zeros(m, np.float32))
        row_tile = gemm_row_tile(h * w, cin, m, bp.shape[1], threads)
        out = aligned_zeros(h * w * m).reshape(-1, m)
        calls = {"f32": (kernels.gemm_bias_act_f32, [x_f.reshape(-1, cin), wp, bp, out, RELU6, kernels.gemm.NO_RESIDUAL,
                                                     row_tile])}
        weight_shape, out_shape, taps = (cin, m), (h * w, m), cin

        def integer(wi, bias, rq, out):
            wp, bp = (pack_gemm_s8 if wi.dtype == np.int8 else pack_gemm_s16)(wi, bias)
            return gemm_bias_requant_u8, [x_u.reshape(-1, cin), wp, bp, rq, out, row_tile]

        def expected(wi, bias, params):
            return ref.gemm_bias_requant_u8_ref(x_u.reshape(-1, cin), wi, bias, params)
    elif op == "dw":
        k = arg
        out_h, out_w, pads = same_padding(h, w, k, stride)
        out = aligned_zeros(out_h * out_w * cin).reshape(1, out_h, out_w, cin)
        calls = {"f32": (kernels.dwconv2d_nhwc_f32, [x_f, rng.standard_normal((k, k, cin)).astype(np.float32),
                                                     np.zeros(cin, np.float32), out, stride, 1, pads[0], pads[2], RELU6,
                                                     depthwise_groups(out_h, cin, threads, k * w * cin), aligned_zeros(w * cin)])}
        weight_shape, out_shape, taps, m = (k, k, cin), (1, out_h, out_w, cin), k * k, cin

        def integer(wi, bias, rq, out):
            return dwconv2d_nhwc_u8, [x_u, pack_depthwise(wi), bias, rq, out, k, k, stride, 1, pads[0], pads[2], 128]

        def expected(wi, bias, params):
            return ref.dwconv2d_nhwc_u8_ref(x_u, wi.astype(np.int16), bias, params, stride, 1, pads, 128)
    else:
        m, k = arg, 3
        out_h, out_w, pads = same_padding(h, w, k, stride)
        wp, bp = kernels.pack_weights(rng.standard_normal((k * k * cin, m)).astype(np.float32), np.zeros(m, np.float32))
        out = aligned_zeros(out_h * out_w * m).reshape(1, out_h, out_w, m)
        calls = {"f32": (kernels.conv2d_nhwc_f32, [x_f, wp, bp, out, k, stride, pads[0], pads[2], RELU6])}
        weight_shape, out_shape, taps = (k, k, cin, m), (1, out_h, out_w, m), k * k * cin

        def integer(wi, bias, rq, out):
            wp, bp = (pack_gemm_s8 if wi.dtype == np.int8 else pack_gemm_s16)(wi.reshape(-1, m), bias)
            return conv2d_nhwc_u8, [x_u, wp, bp, rq, out, k, k, stride, 1, pads[0], pads[2], 128]

        def expected(wi, bias, params):
            return ref.conv2d_nhwc_u8_ref(x_u, wi, bias, params, stride, 1, pads, 128)
    for name, kind, mode in VARIANTS:
        wi = integer_weights(rng, kind, weight_shape)
        bias = rng.integers(-5000, 5000, m).astype(np.int32)
        rq, params = requant(rng, mode, m, 128 * 100 * np.sqrt(taps))
        kernel, args = integer(wi, bias, rq, aligned_empty(out_shape, np.uint8))
        kernel(*args)
        assert np.array_equal(args[4], expected(wi, bias, params)), (case, name)
        calls[name] = (kernel, args)
    return calls


def median_us(calls, n, clock=time.perf_counter):
    """{variant: median microseconds}, the variants interleaved call by call after 50 ms of warm-up."""
    end = time.perf_counter() + 0.05
    while time.perf_counter() < end:
        for kernel, args in calls.values():
            kernel(*args)
    times = {name: [] for name in calls}
    for _ in range(n):
        for name, (kernel, args) in calls.items():
            start = clock()
            kernel(*args)
            times[name].append(clock() - start)
    return {name: 1e6 * float(np.median(t)) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=30, help="timed calls per variant (default 30)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the calling thread's CPU time (1 thread only): on a busy machine, what the "
                             "kernel costs rather than how long it waited for a core")
    options = parser.parse_args()
    if options.cpu_time and options.threads != [1]:
        parser.error("--cpu-time measures one thread: use it with --threads 1")
    clock = time.thread_time if options.cpu_time else time.perf_counter
    rng = np.random.default_rng(0)
    print(f"# {' '.join(sys.argv)}   (load average {os.getloadavg()[0]:.1f})")
    print("| layer | threads | f32 us | s8 fp32 us | s8 fixed us | s16 fp32 us | f32 / s8 fp32 | f32 / s16 fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    for case in CASES:
        op, h, w, cin, arg, stride = case
        label = {"pw": f"pw {h}x{w}x{cin} -> {arg}", "dw": f"dw {arg}x{arg} s{stride} {h}x{w}x{cin}",
                 "conv": f"conv 3x3 s{stride} {h}x{w}x{cin} -> {arg}"}[op]
        for threads in options.threads:
            numba.set_num_threads(threads)
            t = median_us(build(case, threads, rng), options.calls, clock)
            print(f"| {label} | {threads} | {t['f32']:.1f} | {t['s8 fp32']:.1f} | {t['s8 fixed']:.1f} | "
                  f"{t['s16 fp32']:.1f} | {t['f32'] / t['s8 fp32']:.2f} | {t['f32'] / t['s16 fp32']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
