"""The integer kernels against their NumPy references (kernels.int8_reference), over hypothesis-drawn cases.

Integer kernels must agree exactly: every comparison is equality of uint8 outputs. The drawn cases cover both
requantization modes with rounding ties (accumulators landing on x.5 after scaling), saturation at both output
bounds, negative accumulators, shifts on both sides of zero, K = 1 and sizes that are not multiples of the tiles
(4 or 2 input channels per group, 16-64 output channels per panel, 16 rows and 64 input channels per AMX step),
padding with stride 2, and dilation 2.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels import int8_reference as ref
from tinynet.kernels.gemm_tile import PANEL_WIDTHS
from tinynet.kernels.int8_conv import conv2d_nhwc_u8
from tinynet.kernels.int8_depthwise import dwconv2d_nhwc_u8
from tinynet.kernels.int8_depthwise_tile import pack_depthwise
from tinynet.kernels.int8_gemm import gemm_bias_requant_u8, pack_gemm_s8, pack_gemm_s16
from tinynet.kernels.int8_requant import fixed_requant, fixed_simd_requant, fp32_requant
from tinynet.quantized import arithmetic as qa

CHANNELS = st.one_of(st.sampled_from([1, 3, 7, 15, 16, 17, 31, 33, 63, 65]), st.integers(1, 48))
SEEDS = st.integers(0, 2**32 - 1)
MODES = st.sampled_from(["fp32", "fixed", "fixed_simd"])
FIXED = {"fixed": fixed_requant, "fixed_simd": fixed_simd_requant}
WEIGHTS = st.sampled_from(["s8", "s16"])
FAST = settings(max_examples=40, deadline=None)
PACK = {"s8": pack_gemm_s8, "s16": pack_gemm_s16}


def weights(rng, kind, shape):
    """Uniform weights of kind s8 (int8) or s16 (q_w - zp_w of a uint8 graph, int16), the extremes sprinkled in."""
    if kind == "s8":
        w = rng.integers(-128, 128, shape)
        edges = rng.random(shape) < 0.05
        w[edges] = rng.choice([-128, 127], edges.sum())
        return w.astype(np.int8)
    q = rng.integers(0, 256, shape)
    edges = rng.random(shape) < 0.05
    q[edges] = rng.choice([0, 255], edges.sum())
    zero_point = rng.choice([0, 255, int(rng.integers(0, 256))])  # 0 and 255: all weights of one sign, up to 255
    return (q - zero_point).astype(np.int16)


def activations(rng, shape):
    x = rng.integers(0, 256, shape)
    edges = rng.random(shape) < 0.05
    x[edges] = rng.choice([0, 255], edges.sum())
    return x.astype(np.uint8)


def requant_params(rng, mode, channels, typical_acc):
    """(kernel parameters, reference parameters) mapping accumulators of size ~typical_acc over most of 0..255 (and
    past both bounds), with random bounds, zero point and per-channel scales."""
    out_min, out_max = sorted(int(v) for v in rng.integers(0, 256, 2))
    out_zp = int(rng.integers(0, 256))
    real = rng.uniform(0.2, 3.0, channels) * 128 / max(typical_acc, 1)
    if mode == "fp32":
        scale = real.astype(np.float32)
        if rng.random() < 0.3:  # exact ties: odd accumulators times 0.5 land on x.5
            scale[:] = np.float32(0.5)
        return fp32_requant(scale, out_zp, out_min, out_max, channels), ("fp32", scale, out_zp, out_min, out_max)
    mantissa, exponent = np.frexp(real)
    multiplier = np.minimum(np.round(mantissa * 2**31), 2**31 - 1).astype(np.int32)
    shift = exponent.astype(np.int32)
    if rng.random() < 0.3:  # exactly 1/2 or 1/4: ties in both roundings of the double rounding
        multiplier[:], shift[:] = 2**30, rng.choice([0, -1])
    return (FIXED[mode](multiplier, shift, out_zp, out_min, out_max, channels),
            (mode, multiplier, shift, out_zp, out_min, out_max))


def requantize_through_gemm(acc, rq):
    """The kernels' requantization of the int32 values ``acc`` (rows, C): a GEMM with K = 1, x = 0, bias' = acc."""
    rows, channels = acc.shape
    out = np.zeros((rows, channels), np.uint8)
    for r in range(rows):  # one row per bias
        wp, bp = pack_gemm_s8(np.ones((1, channels), np.int8), acc[r])
        gemm_bias_requant_u8(np.zeros((1, 1), np.uint8), wp, bp, rq, out[r:r + 1], 1)
    return out


INT32 = st.integers(-2**31, 2**31 - 1)
ACCUMULATORS = st.lists(st.one_of(st.integers(-600, 600), INT32), min_size=1, max_size=40)


@given(acc=ACCUMULATORS, scale=st.one_of(st.sampled_from([0.5, 0.25, 1.0, 1.5]), st.floats(1e-6, 4.0)),
       bounds=st.tuples(st.integers(0, 255), st.integers(0, 255)), zp=st.integers(0, 255))
@settings(max_examples=60, deadline=None)
def test_fp32_requantization_matches_reference(acc, scale, bounds, zp):
    lo, hi = sorted(bounds)
    acc = np.array([acc], np.int32)
    scale = np.full(acc.shape[1], scale, np.float32)
    got = requantize_through_gemm(acc, fp32_requant(scale, zp, lo, hi, acc.shape[1]))
    np.testing.assert_array_equal(got, ref.requant_fp32_ref(acc, scale, zp, lo, hi))


@given(acc=ACCUMULATORS, multiplier=st.one_of(st.just(2**30), st.integers(2**30, 2**31 - 1), st.just(2**31 - 1)),
       shift=st.integers(-31, 8), bounds=st.tuples(st.integers(0, 255), st.integers(0, 255)), zp=st.integers(0, 255))
@settings(max_examples=80, deadline=None)
def test_fixed_requantization_matches_reference(acc, multiplier, shift, bounds, zp):
    lo, hi = sorted(bounds)
    acc = np.array([acc], np.int32)
    n = acc.shape[1]
    got = requantize_through_gemm(acc, fixed_requant(multiplier, shift, zp, lo, hi, n))
    expected = ref.requant_fixed_ref(acc, np.full(n, multiplier), np.full(n, shift), zp, lo, hi)
    np.testing.assert_array_equal(got, expected)


@given(acc=ACCUMULATORS, multiplier=st.one_of(st.just(0), st.just(2**30), st.integers(2**30, 2**31 - 1)),
       shift=st.integers(-31, 31), bounds=st.tuples(st.integers(0, 255), st.integers(0, 255)), zp=st.integers(0, 255))
@settings(max_examples=100, deadline=None)
def test_fixed_simd_requantization_matches_reference(acc, multiplier, shift, bounds, zp):
    """Every shift, left shifts that take acc * 2**s far past int32 included."""
    lo, hi = sorted(bounds)
    acc = np.array([acc], np.int32)
    n = acc.shape[1]
    got = requantize_through_gemm(acc, fixed_simd_requant(multiplier, shift, zp, lo, hi, n))
    expected = ref.requant_fixed_simd_ref(acc, np.full(n, multiplier), np.full(n, shift), zp, lo, hi)
    np.testing.assert_array_equal(got, expected)


@given(acc=st.lists(st.integers(-2**31, 2**31 - 1), min_size=1, max_size=40),
       multiplier=st.one_of(st.just(0), st.just(2**30), st.integers(2**30, 2**31 - 1)), shift=st.integers(-31, 31),
       bounds=st.tuples(st.integers(0, 255), st.integers(0, 255)), zp=st.integers(0, 255))
@settings(max_examples=100, deadline=None)
def test_fixed_simd_reference_is_tinynet_quantized_arithmetic(acc, multiplier, shift, bounds, zp):
    """The reference against the definition the LiteRT conformance tests established
    (tinynet.quantized.arithmetic, int64), wherever that definition's int64 products do not overflow."""
    lo, hi = sorted(bounds)
    acc = np.array([a for a in acc if abs(a) * 2 ** max(shift, 0) * multiplier < 2**62] or [0], np.int64)
    expected = qa.requantize_fixed(acc, multiplier, shift, zp, lo, hi, simd=True).astype(np.uint8)
    np.testing.assert_array_equal(ref.requant_fixed_simd_ref(acc, multiplier, shift, zp, lo, hi), expected)


def test_requantization_by_hand():
    acc = np.array([[1, 3, -1, -3, 5, 6, 10, 400, -400]], np.int32)
    half = fp32_requant(0.5, 128, 0, 255, 9)  # x.5 -> even: 0.5 -> 0, 1.5 -> 2, -0.5 -> 0, -1.5 -> -2, 2.5 -> 2 ...
    np.testing.assert_array_equal(requantize_through_gemm(acc, half) - 128.0, [[0, 2, 0, -2, 2, 3, 5, 127, -128]])
    # multiplier 2**30 (1/2), shift -1: /4 by double rounding. 5: high-mul round(5/2) = 3, then round(3/2) = 2 (a
    # single rounding gives 1); 6: 3.5 -> 3 (truncated after the nudge), then 1.5 -> 2; -3: -1.5 + nudge -> -1,
    # then -0.5 -> -1 (half away from zero)
    quarter = fixed_requant(2**30, -1, 128, 0, 255, 9)
    np.testing.assert_array_equal(requantize_through_gemm(acc, quarter) - 128.0, [[1, 1, 0, -1, 2, 2, 3, 100, -100]])
    clamped = fixed_requant(2**30, 1, 100, 90, 110, 9)  # x * 2 / 2 = x, clamped to 90..110 after + 100
    np.testing.assert_array_equal(requantize_through_gemm(acc, clamped), [[101, 103, 99, 97, 105, 106, 110, 110, 90]])
    # the SIMD lanes: /4 as floor(floor(x/2 + 1/2)/2 + 1/2). 3: 2 then 1; 5: 3 then 2; -1: 0 then 0; -3: -1 then 0
    # (ties up, where the scalar rule gives -1); 10: 5 then 3; -400: -200 then -100
    simd_quarter = fixed_simd_requant(2**30, -1, 128, 0, 255, 9)
    np.testing.assert_array_equal(requantize_through_gemm(acc, simd_quarter) - 128.0,
                                  [[1, 1, 0, 0, 2, 2, 3, 100, -100]])


@given(pixels=st.integers(1, 41), k=st.one_of(st.integers(1, 9), st.integers(1, 70), st.integers(120, 200)),
       m=st.one_of(CHANNELS, st.integers(49, 140)), row_tile=st.integers(1, 20), nr=st.sampled_from(PANEL_WIDTHS),
       kind=WEIGHTS, mode=MODES, seed=SEEDS)
@FAST
def test_gemm_matches_reference(pixels, k, m, row_tile, nr, kind, mode, seed):
    rng = np.random.default_rng(seed)
    x, w = activations(rng, (pixels, k)), weights(rng, kind, (k, m))
    typical = 128 * 100 * np.sqrt(k)
    bias = rng.integers(-4 * typical, 4 * typical + 1, m).astype(np.int32)
    rq, params = requant_params(rng, mode, m, typical)
    wp, bp = PACK[kind](w, bias, nr)
    out = np.zeros((pixels, m), np.uint8)
    gemm_bias_requant_u8(x, wp, bp, rq, out, row_tile)
    np.testing.assert_array_equal(out, ref.gemm_bias_requant_u8_ref(x, w, bias, params))


def pads_and_output(rng, h, w, kh, kw, stride, dilation):
    """Random explicit pads (each up to the kernel span - 1) and the output size they give, or None if empty."""
    span_h, span_w = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    pads = tuple(int(v) for v in (rng.integers(0, span_h), rng.integers(0, span_h), rng.integers(0, span_w),
                                  rng.integers(0, span_w)))
    out_hw = ref.conv_output_hw(h, w, kh, kw, stride, dilation, pads)
    return (pads, out_hw) if min(out_hw) >= 1 else (None, None)


def check_depthwise(n, h, w, c, k, stride, dilation, kind, mode, seed):
    rng = np.random.default_rng(seed)
    pads, out_hw = pads_and_output(rng, h, w, k, k, stride, dilation)
    if pads is None:
        return
    x, wt = activations(rng, (n, h, w, c)), weights(rng, kind, (k, k, c)).astype(np.int16)
    typical = 128 * 100 * k
    bias = rng.integers(-4 * typical, 4 * typical + 1, c).astype(np.int32)
    rq, params = requant_params(rng, mode, c, typical)
    pad_value = int(rng.integers(0, 256))
    out = np.zeros((n, *out_hw, c), np.uint8)
    dwconv2d_nhwc_u8(x, pack_depthwise(wt), bias, rq, out, k, k, stride, dilation, pads[0], pads[2], pad_value)
    np.testing.assert_array_equal(out, ref.dwconv2d_nhwc_u8_ref(x, wt, bias, params, stride, dilation, pads, pad_value))


@given(n=st.integers(1, 2), h=st.integers(1, 12), w=st.integers(1, 12), c=CHANNELS, k=st.sampled_from([1, 3, 5]),
       stride=st.sampled_from([1, 2]), dilation=st.sampled_from([1, 2]), kind=WEIGHTS, mode=MODES, seed=SEEDS)
@FAST
def test_depthwise_matches_reference(n, h, w, c, k, stride, dilation, kind, mode, seed):
    check_depthwise(n, h, w, c, k, stride, dilation, kind, mode, seed)


@given(h=st.integers(1, 9), w=st.integers(1, 12), c=st.sampled_from([32, 64, 96, 127, 129, 300]),
       k=st.sampled_from([3, 5, 7]), stride=st.sampled_from([1, 2]), kind=WEIGHTS, mode=MODES, seed=SEEDS)
@settings(max_examples=20, deadline=None)
def test_depthwise_wide_channels_match_reference(h, w, c, k, stride, kind, mode, seed):
    """Several 32-channel blocks of the depthwise tile, whole and partial, and the 7x7 kernels of its generic loop."""
    check_depthwise(1, h, w, c, k, stride, 1, kind, mode, seed)


@given(n=st.integers(1, 2), h=st.integers(1, 10), w=st.integers(1, 10),
       cin=st.one_of(st.integers(1, 5), st.integers(6, 24)), cout=CHANNELS, k=st.sampled_from([1, 2, 3]), stride=st.sampled_from([1, 2]), dilation=st.sampled_from([1, 2]),
       nr=st.sampled_from(PANEL_WIDTHS), kind=WEIGHTS, mode=MODES, seed=SEEDS)
@FAST
def test_conv_matches_reference(n, h, w, cin, cout, k, stride, dilation, nr, kind, mode, seed):
    rng = np.random.default_rng(seed)
    kw = max(1, k - int(rng.integers(0, 2)))  # some non-square kernels
    pads, out_hw = pads_and_output(rng, h, w, k, kw, stride, dilation)
    if pads is None:
        return
    x, wt = activations(rng, (n, h, w, cin)), weights(rng, kind, (k, kw, cin, cout))
    typical = 128 * 100 * np.sqrt(k * kw * cin)
    bias = rng.integers(-4 * typical, 4 * typical + 1, cout).astype(np.int32)
    rq, params = requant_params(rng, mode, cout, typical)
    pad_value = int(rng.integers(0, 256))
    wp, bp = PACK[kind](wt.reshape(-1, cout), bias, nr)
    out = np.zeros((n, *out_hw, cout), np.uint8)
    conv2d_nhwc_u8(x, wp, bp, rq, out, k, kw, stride, dilation, pads[0], pads[2], pad_value)
    np.testing.assert_array_equal(out, ref.conv2d_nhwc_u8_ref(x, wt, bias, params, stride, dilation, pads, pad_value))


def test_mobilenet_stem_matches_reference():
    """The stem: 3x3 stride 2 from 3 channels, TF SAME padding of an even image (0 before, 1 after)."""
    rng = np.random.default_rng(0)
    x, wt = activations(rng, (1, 32, 32, 3)), weights(rng, "s8", (3, 3, 3, 32))
    bias = rng.integers(-20000, 20000, 32).astype(np.int32)
    rq, params = requant_params(rng, "fp32", 32, 128 * 100 * 5)
    wp, bp = pack_gemm_s8(wt.reshape(-1, 32), bias)
    out = np.zeros((1, 16, 16, 32), np.uint8)
    conv2d_nhwc_u8(x, wp, bp, rq, out, 3, 3, 2, 1, 0, 0, 128)
    np.testing.assert_array_equal(out, ref.conv2d_nhwc_u8_ref(x, wt, bias, params, 2, 1, (0, 1, 0, 1), 128))


def test_packing_and_parameters_refuse_what_the_kernels_cannot_take():
    with pytest.raises(ValueError, match="int8"):
        pack_gemm_s8(np.zeros((3, 4), np.int16), np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="255"):
        pack_gemm_s16(np.full((3, 4), 256), np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="255"):
        pack_depthwise(np.full((3, 3, 4), -256))
    with pytest.raises(ValueError, match="span"):  # no uint8 graph has -200 and 200 in one output channel
        pack_gemm_s16(np.array([[-200], [200]]), np.zeros(1, np.int32))
    with pytest.raises(ValueError, match="0..255"):
        fp32_requant(0.1, 0, 10, 300, 4)
    with pytest.raises(ValueError, match="0..255"):
        fixed_requant(2**30, 0, -1, 0, 255, 4)
    with pytest.raises(ValueError, match="31"):
        fixed_requant(2**30, -32, 0, 0, 255, 4)
    with pytest.raises(ValueError, match="2\\*\\*30"):  # the SIMD rule's saturation is exact for these only
        fixed_simd_requant(2**29, 0, 0, 0, 255, 4)


def _target_without(*prefixes):
    """The host's LLVM feature string with every feature starting with one of ``prefixes`` turned off."""
    from numba.core.codegen import get_host_cpu_features
    return ",".join("-" + f[1:] if f[1:].startswith(prefixes) else f for f in get_host_cpu_features().split(","))


@pytest.mark.slow
@pytest.mark.parametrize("removed, check", [
    (("avx512vnni", "amx"), "assert not int8_gemm_tile.DOT_INSTRUCTIONS and not int8_gemm_amx.AMX_INSTRUCTIONS"),
    (("amx",), "assert not int8_gemm_amx.AMX_INSTRUCTIONS")])
def test_fallback_tiles_match_reference(tmp_path, removed, check):
    """The tiles as compiled for a CPU without AVX-512 VNNI (plain widening vector IR) or without AMX (every GEMM row
    on the VNNI tiles): this file's kernel tests in a fresh process whose Numba target lacks those features
    (NUMBA_CPU_FEATURES), with an empty kernel cache. On a target without AMX no tile instruction may be emitted at
    all, or LLVM aborts the process."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_int8_kernels as t; "
            f"from tinynet.kernels import int8_gemm_amx, int8_gemm_tile; {check}; "
            "t.test_requantization_by_hand(); t.test_gemm_matches_reference(); t.test_depthwise_matches_reference(); "
            "t.test_depthwise_wide_channels_match_reference(); t.test_conv_matches_reference(); "
            "t.test_mobilenet_stem_matches_reference()")
    env = {**os.environ, "NUMBA_CPU_FEATURES": _target_without(*removed), "NUMBA_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
