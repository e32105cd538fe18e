"""kernels.int8_elementwise against the rules they implement, written out here in Python integers/NumPy float32, or
(TFLite's fixed-point ADD and MUL) against tinynet.quantized.arithmetic, the definition checked against LiteRT."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels.int8_elementwise import add_fixed_u8, add_u8, mul_fixed_u8, mul_fp32_u8
from tinynet.quantized import arithmetic as qa

SHAPES = st.tuples(st.integers(1, 9), st.integers(1, 17))


def inputs(draw, broadcast):
    rows, channels = draw(SHAPES)
    seed = draw(st.integers(0, 2 ** 31))
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (rows, channels), dtype=np.uint8)
    b = rng.integers(0, 256, (1 if broadcast else rows, channels), dtype=np.uint8)
    a[0, 0], b[0, 0] = 0, 255  # the range ends
    return a, b


@st.composite
def add_cases(draw):
    a, b = inputs(draw, draw(st.booleans()))
    shift = draw(st.integers(12, 30))
    am, bm = (draw(st.integers(-(1 << 21), 1 << 21)) for _ in range(2))
    zero_points = [draw(st.integers(0, 255)) for _ in range(3)]
    lo = draw(st.integers(0, 255))
    return a, b, am, bm, shift, zero_points, lo, draw(st.integers(lo, 255))


@given(add_cases())
@settings(max_examples=60, deadline=None)
def test_add_is_xnnpacks_integer_add(case):
    a, b, am, bm, shift, (a_zp, b_zp, out_zp), lo, hi = case
    bias = (1 << (shift - 1)) - am * a_zp - bm * b_zp
    out = np.empty_like(a)
    add_u8(a, b, out, bias, am, bm, shift, out_zp, lo, hi)
    for (r, c), got in np.ndenumerate(out):
        acc = bias + int(a[r, c]) * am + int(b[r if b.shape[0] > 1 else 0, c]) * bm
        assert got == min(max((acc >> shift) + out_zp, lo), hi)  # Python's >> floors, as an arithmetic shift


@st.composite
def mul_cases(draw):
    a, b = inputs(draw, draw(st.booleans()))
    zero_points = [draw(st.integers(0, 255)) for _ in range(3)]
    scale = np.float32(draw(st.floats(2 ** -16, 2.0, width=32)))
    lo = draw(st.integers(0, 255))
    return a, b, zero_points, scale, lo, draw(st.integers(lo, 255))


@given(mul_cases())
@settings(max_examples=60, deadline=None)
def test_mul_is_xnnpacks_fp32_multiply(case):
    a, b, (a_zp, b_zp, out_zp), scale, lo, hi = case
    out = np.empty_like(a)
    mul_fp32_u8(a, b, out, a_zp, b_zp, scale, out_zp, lo, hi)
    for (r, c), got in np.ndenumerate(out):
        product = float(np.float32((int(a[r, c]) - a_zp) * (int(b[r if b.shape[0] > 1 else 0, c]) - b_zp)) * scale)
        assert got == round(min(max(product, lo - out_zp), hi - out_zp)) + out_zp  # round(): half to even


MULTIPLIERS = st.tuples(st.one_of(st.just(0), st.just(1 << 30), st.integers(1 << 30, (1 << 31) - 1)),
                        st.integers(-31, 8))


def tflite_multiply(x, multiplier):
    return qa.multiply_by_quantized_multiplier(np.asarray(x, np.int64), *multiplier)


@st.composite
def fixed_add_cases(draw):
    a, b = inputs(draw, draw(st.booleans()))
    a_mult, out_mult = draw(MULTIPLIERS), draw(MULTIPLIERS)
    m, shift = draw(MULTIPLIERS)
    b_mult = (-m if draw(st.booleans()) else m, shift)  # SUB: b's multiplier negated
    zero_points = [draw(st.integers(0, 255)) for _ in range(3)]
    lo = draw(st.integers(0, 255))
    return a, b, (a_mult, b_mult, out_mult), zero_points, lo, draw(st.integers(lo, 255))


@given(fixed_add_cases())
@settings(max_examples=80, deadline=None)
def test_fixed_add_is_tflites_add(case):
    a, b, (a_mult, b_mult, out_mult), (a_zp, b_zp, out_zp), lo, hi = case
    out = np.empty_like(a)
    add_fixed_u8(a, b, out, a_zp, b_zp, a_mult, b_mult, out_mult, out_zp, lo, hi)
    bb = np.broadcast_to(b, a.shape).astype(np.int64)
    total = (tflite_multiply((a.astype(np.int64) - a_zp) << 20, a_mult) + tflite_multiply((bb - b_zp) << 20, b_mult))
    np.testing.assert_array_equal(out, np.clip(tflite_multiply(total, out_mult) + out_zp, lo, hi))


@given(st.data())
@settings(max_examples=80, deadline=None)
def test_fixed_mul_is_tflites_mul(data):
    a, b = inputs(data.draw, data.draw(st.booleans()))
    mult = data.draw(MULTIPLIERS)
    a_zp, b_zp, out_zp = (data.draw(st.integers(0, 255)) for _ in range(3))
    lo = data.draw(st.integers(0, 255))
    hi = data.draw(st.integers(lo, 255))
    out = np.empty_like(a)
    mul_fixed_u8(a, b, out, a_zp, b_zp, mult, out_zp, lo, hi)
    product = (a.astype(np.int64) - a_zp) * (np.broadcast_to(b, a.shape).astype(np.int64) - b_zp)
    np.testing.assert_array_equal(out, qa.requantize_fixed(product, *mult, out_zp, lo, hi))


def test_fixed_multiply_rounds_half_away_from_zero():
    """m = 2**30, s = -1 (x / 4): 6 -> 3 (high multiply) -> 2 (1.5 away from zero); -6 -> -3 -> -2; -2 -> -1 -> -1."""
    a = np.array([[134, 122, 126, 128]], np.uint8)  # a - 128: 6, -6, -2, 0
    out = np.empty_like(a)
    mul_fixed_u8(a, np.full((1, 4), 129, np.uint8), out, 128, 128, (1 << 30, -1), 100, 0, 255)
    assert out.tolist() == [[102, 98, 99, 100]]


def test_mul_rounds_ties_to_even():
    a = np.array([[1, 3, 5]], np.uint8)
    out = np.empty_like(a)
    mul_fp32_u8(a, np.ones((1, 3), np.uint8), out, 0, 0, np.float32(0.5), 10, 0, 255)
    assert out.tolist() == [[10, 12, 12]]


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 9), st.integers(1, 9), st.integers(1, 4),
       st.integers(0, 2 ** 31))
@settings(max_examples=40, deadline=None)
def test_resize_is_xnnpacks_two_lerps(h, w, out_h, out_w, channels, seed):
    """resize_bilinear_q11_u8 against the u8-ibilinear rule in Python integers, on random positions and weights."""
    from tinynet.kernels.int8_resize import resize_bilinear_q11_u8

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (1, h, w, channels), dtype=np.uint8)
    top, left = rng.integers(0, h, out_h), rng.integers(0, w, out_w)
    bottom, right = np.minimum(top + 1, h - 1), np.minimum(left + 1, w - 1)
    ay, ax = rng.integers(0, 2049, out_h).astype(np.int32), rng.integers(0, 2049, out_w).astype(np.int32)
    out = np.empty((1, out_h, out_w, channels), np.uint8)
    resize_bilinear_q11_u8(x, top, bottom, ay, left, right, ax, out)
    for (_, r, c, k), got in np.ndenumerate(out):
        tl, tr = int(x[0, top[r], left[c], k]), int(x[0, top[r], right[c], k])
        bl, br = int(x[0, bottom[r], left[c], k]), int(x[0, bottom[r], right[c], k])
        t, b = tl * 2048 + (tr - tl) * int(ax[c]), bl * 2048 + (br - bl) * int(ax[c])
        assert got == (t * 2048 + (b - t) * int(ay[r]) + 2 ** 21) >> 22


def test_lookup_is_indexing():
    from tinynet.kernels.int8_elementwise import lookup_u8

    x = np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8)
    table = np.random.default_rng(1).integers(0, 256, 256, dtype=np.uint8)
    out = np.empty_like(x)
    lookup_u8(x, table, out)
    assert np.array_equal(out, np.array([table[v] for v in x]))


@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 4), st.integers(1, 3), st.integers(1, 2),
       st.booleans(), st.integers(0, 2 ** 31))
@settings(max_examples=60, deadline=None)
def test_average_pool_rounds_as_tflite(h, w, k, channels, stride, signed, seed):
    """Windows clipped to the image (SAME padding at the borders), n taps each; the file's values averaged with
    TFLite's rounding, computed here with Fractions."""
    import math
    from fractions import Fraction

    from tinynet.kernels.int8_elementwise import average_pool_u8

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (1, h, w, channels), dtype=np.uint8)
    out_h, out_w = -(-h // stride), -(-w // stride)
    top, left = max((out_h - 1) * stride + k - h, 0) // 2, max((out_w - 1) * stride + k - w, 0) // 2
    offset = 128 if signed else 0
    out = np.empty((1, out_h, out_w, channels), np.uint8)
    average_pool_u8(x, out, k, k, stride, stride, top, left, offset, 0, 255)
    for (_, r, c, ch), got in np.ndenumerate(out):
        rows = range(max(r * stride - top, 0), min(r * stride - top + k, h))
        cols = range(max(c * stride - left, 0), min(c * stride - left + k, w))
        values = [int(x[0, i, j, ch]) - offset for i in rows for j in cols]
        mean = Fraction(sum(values), len(values))
        rounded = math.floor(mean + Fraction(1, 2)) if mean >= 0 else -math.floor(-mean + Fraction(1, 2))
        assert got == rounded + offset


@given(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9), st.integers(1, 40), st.integers(0, 2 ** 31))
@settings(max_examples=40, deadline=None)
def test_spatial_sums_are_sums(n, h, w, c, seed):
    from tinynet.kernels.int8_elementwise import spatial_sums_u8

    x = np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)
    x[0, 0, 0, 0] = 255
    out = np.full((n, c), -1, np.int64)
    spatial_sums_u8(x, out)
    assert out.tolist() == [[sum(int(v) for v in x[i, :, :, k].ravel()) for k in range(c)] for i in range(n)]


@given(st.integers(1, 3), st.integers(1, 1001), st.floats(2 ** -8, 0.5, width=32), st.sampled_from([0, 128]),
       st.integers(0, 2 ** 31))
@settings(max_examples=40, deadline=None)
def test_softmax_table_is_the_sequential_float32_rule(rows, classes, input_scale, offset, seed):
    """Against the rule in NumPy float32: a cumulative (sequential) sum, the reciprocal, + 0.5 truncated."""
    from tinynet.kernels.int8_softmax import softmax_table_u8

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (rows, classes), dtype=np.uint8)
    table = np.exp(-np.float32(input_scale) * np.arange(256, dtype=np.float32))[::-1].astype(np.float32).copy()
    output_scale = np.float32(1 / 256)
    out = np.empty_like(x)
    softmax_table_u8(x, table, output_scale, offset, out)
    for r in range(rows):
        e = table[255 - int(x[r].max()):][x[r]]
        total = np.cumsum(e, dtype=np.float32)[-1]
        p = e * (np.float32(1) / np.float32(total * output_scale))
        assert out[r].tolist() == np.clip((p + np.float32(0.5)).astype(np.int64) + offset, 0, 255).tolist()
