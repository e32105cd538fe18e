"""tinynet.quantized.arithmetic against definitions written here with Python's exact integers and fractions.

Each oracle restates the rule in the words of its source (TFLite's common.h, gemmlowp, XNNPACK's
requantization.h) with arbitrary-precision arithmetic, so it shares nothing with the vectorised int64 code."""
import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.quantized import arithmetic as qa

INT32 = st.integers(-2 ** 31, 2 ** 31 - 1)
MULTIPLIERS = st.integers(2 ** 30, 2 ** 31 - 1)
ACCUMULATORS = st.integers(-2 ** 24, 2 ** 24)


def round_half_away(q):
    """A Fraction rounded to the nearest integer, halves away from zero."""
    floor = math.floor(q)
    if q - floor == Fraction(1, 2):
        return floor + 1 if q > 0 else floor
    return round(q)  # not a tie: nearest


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul: (2ab) / 2**32 to the nearest, halves up (its nudge of 1 - 2**30 below
    zero makes negative ties truncate toward zero); INT_MIN * INT_MIN saturates."""
    if a == b == -2 ** 31:
        return 2 ** 31 - 1
    return math.floor(Fraction(a * b, 2 ** 31) + Fraction(1, 2))


@given(INT32, INT32)
def test_saturating_rounding_doubling_high_mul(a, b):
    assert int(qa.saturating_rounding_doubling_high_mul(a, b)) == srdhm(a, b)


@given(INT32, st.integers(0, 31))
def test_rounding_divide_by_pot(x, exponent):
    assert int(qa.rounding_divide_by_pot(x, exponent)) == round_half_away(Fraction(x, 2 ** exponent))


@given(st.floats(1e-9, 1e3, allow_nan=False))
def test_quantize_multiplier_represents_the_real_multiplier(real):
    m, shift = qa.quantize_multiplier(real)
    assert 2 ** 30 <= m < 2 ** 31
    assert abs(Fraction(m) * Fraction(2) ** (shift - 31) - Fraction(real)) <= Fraction(real) * Fraction(1, 2 ** 30)


def test_quantize_multiplier_of_zero_and_of_powers_of_two():
    assert qa.quantize_multiplier(0.0) == (0, 0)
    assert qa.quantize_multiplier(0.5) == (2 ** 30, 0)
    assert qa.quantize_multiplier(1.0) == (2 ** 30, 1)
    assert qa.quantize_multiplier(1 - 2 ** -40) == (2 ** 30, 1)  # rounds up to 2**31: renormalised


@given(ACCUMULATORS, MULTIPLIERS, st.integers(-20, 4))
@settings(max_examples=120, deadline=None)
def test_multiply_by_quantized_multiplier_rounds_twice(x, m, shift):
    left, right = max(shift, 0), max(-shift, 0)
    shifted = x * 2 ** left
    wrapped = (shifted + 2 ** 31) % 2 ** 32 - 2 ** 31
    expected = round_half_away(Fraction(srdhm(wrapped, m), 2 ** right))
    assert int(qa.multiply_by_quantized_multiplier(x, m, shift)) == expected


@given(ACCUMULATORS, MULTIPLIERS, st.integers(-20, 0))
@settings(max_examples=120, deadline=None)
def test_simd_multiply_floors_the_high_half_and_rounds_the_shift_up(x, m, shift):
    high = math.floor(Fraction(x * m + 2 ** 30, 2 ** 31))
    expected = math.floor(Fraction(high, 2 ** -shift) + Fraction(1, 2)) if shift < 0 else high
    assert int(qa.multiply_by_quantized_multiplier_simd(x, m, shift)) == expected


@given(ACCUMULATORS, st.floats(2 ** -20, 10.0, width=32), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
@settings(max_examples=120, deadline=None)
def test_requantize_fp32_is_float32_multiply_clamp_round_half_even(acc, scale, zero_point, a, b):
    lo, hi = min(a, b), max(a, b)
    product = float(np.float32(np.float32(acc) * np.float32(scale)))  # one float32 rounding, as in C
    clamped = min(max(product, lo - zero_point), hi - zero_point)
    assert int(qa.requantize_fp32(np.array([acc]), np.float32(scale), zero_point, lo, hi)[0]) == round(clamped) + zero_point


def test_requantize_fp32_rounds_ties_to_even():
    acc = np.array([1, 3, 5, -1, -3])  # times 0.5: 0.5, 1.5, 2.5, -0.5, -1.5
    assert qa.requantize_fp32(acc, np.float32(0.5), 100, 0, 255).tolist() == [100, 102, 102, 100, 98]


@given(st.floats(2 ** -9, 2 ** 7, width=32), st.floats(2 ** -9, 2 ** 7, width=32))
def test_xnnpack_add_multipliers_keep_the_scale_ratios(a_ratio, b_ratio):
    am, bm, shift = qa.xnnpack_add_params(a_ratio, b_ratio, 1.0)
    assert 12 <= shift <= 30 and max(am, bm) < 2 ** 21 + 1
    for ratio, multiplier in ((a_ratio, am), (b_ratio, bm)):
        assert abs(Fraction(multiplier, 2 ** shift) - Fraction(ratio)) <= Fraction(1, 2 ** (shift + 1))


@given(st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False))
def test_round_half_away(x):
    assert float(qa.round_half_away(np.float64(x))) == round_half_away(Fraction(x))


@given(st.integers(-(32 << 26), 0))
@settings(max_examples=200, deadline=None)
def test_fixed_point_exp_is_exp(a):
    """gemmlowp's exp_on_negative_values in Q5.26 -> Q0.31 is exp within a few units of the last place."""
    got = int(qa.exp_on_negative_values(a, 5)) / 2 ** 31
    assert abs(got - math.exp(a / 2 ** 26)) <= 2e-8 + 1e-6 * math.exp(a / 2 ** 26)


@given(st.integers(1 << 19, 1001 << 19))
@settings(max_examples=200, deadline=None)
def test_reciprocal_of_a_sum_of_exps(x):
    """GetReciprocal of a Q12.19 sum: 1/x = raw / 2**31 / 2**bits_over_unit, within 16 units of the raw's last place
    (three Newton-Raphson steps in Q2.29)."""
    raw, bits_over_unit = qa.reciprocal(x, 12)
    exact_raw = Fraction(2 ** 19, x) * 2 ** 31 * 2 ** bits_over_unit
    assert Fraction(1, 2) * 2 ** 31 <= exact_raw <= 2 ** 31
    assert abs(raw - exact_raw) <= 16
