"""kernels.int8_elementwise against the rules they implement, written out here in Python integers/NumPy float32."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels.int8_elementwise import add_u8, mul_fp32_u8

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
