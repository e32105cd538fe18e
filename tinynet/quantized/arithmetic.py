"""The integer arithmetic of LiteRT's quantized kernels, written from their sources (learned from, not copied).

Two requantization rules turn an int32 accumulator into an 8-bit output:

  "fp32"   XNNPACK (LiteRT's default delegate on x86; src/xnnpack/requantization.h): the accumulator converted
           to float32, times a float32 scale computed in float32, clamped to the output range minus the zero
           point, rounded half to even (lrintf), plus the zero point.
  "fixed"  TFLite's builtin kernels (kernels/internal/common.h, quantization_util.cc): the real multiplier as a
           Q31 fixed-point number and a power-of-two exponent (QuantizeMultiplier, in double), applied with
           SaturatingRoundingDoublingHighMul and RoundingDivideByPOT (two roundings, both half away from zero).

Everything here is NumPy on int64 (exact for every intermediate these kernels form) or float32 where the
source computes in float: the plain definition the fast kernels (tinynet.kernels.qgemm...) are checked against.
"""
import math

import numpy as np

f32 = np.float32
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1


def round_half_away(x):
    """std::round / TfLiteRound of float values: halves go away from zero."""
    return np.trunc(x + np.copysign(np.asarray(0.5, x.dtype if hasattr(x, "dtype") else float), x))


# --- XNNPACK ("fp32") ------------------------------------------------------------------------------------

def xnnpack_scale(input_scale, kernel_scale, output_scale):
    """input_scale * kernel_scale / output_scale, each step in float32 as XNNPACK forms it (per channel)."""
    return (f32(input_scale) * np.asarray(kernel_scale, f32)) / f32(output_scale)


def requantize_fp32(acc, scale, zero_point, lo, hi):
    """XNNPACK's fp32 requantization: lrintf(clamp(float32(acc) * scale, lo - zp, hi - zp)) + zp, as int32."""
    v = np.asarray(acc).astype(f32) * scale
    v = np.minimum(np.maximum(v, f32(lo - zero_point)), f32(hi - zero_point))
    return np.rint(v).astype(np.int32) + np.int32(zero_point)


def quantize_bound(value, scale, zero_point, qmin, qmax):
    """An activation bound (a float, possibly infinite) in quantized units as XNNPACK sets it:
    lrintf(clamp(value / scale + zp, qmin, qmax)) (xnn_qu8_quantize), computed in float32."""
    v = f32(value) / f32(scale) + f32(zero_point) if np.isfinite(value) else f32(value)
    return int(np.rint(min(max(v, f32(qmin)), f32(qmax))))


def xnnpack_add_params(a_scale, b_scale, output_scale):
    """(a_multiplier, b_multiplier, shift) of XNNPACK's integer ADD (xnn_init_qu8_add_minmax_scalar_params):
    21-bit multipliers of the input/output scale ratios, made by adding ``shift`` to the float32 exponent."""
    a = f32(a_scale) / f32(output_scale)
    b = f32(b_scale) / f32(output_scale)
    largest = max(abs(a), abs(b))
    exponent = int((np.array(largest, f32).view(np.uint32) >> 23)) - 127
    shift = 20 - exponent
    if not 12 <= shift <= 30:
        raise ValueError(f"ADD scale ratio {float(largest):.3g} is outside XNNPACK's range")
    multiply = lambda r: int(np.rint((np.array(abs(r), f32).view(np.uint32) + np.uint32(shift << 23)).view(f32)))
    return int(math.copysign(multiply(a), a)), int(math.copysign(multiply(b), b)), shift


# --- TFLite builtin ("fixed") ----------------------------------------------------------------------------

def quantize_multiplier(real):
    """TFLite's QuantizeMultiplier: (multiplier, shift) with real = multiplier * 2**(shift - 31), multiplier a
    Q31 value in [2**30, 2**31) (0 for 0), shift > 0 meaning a left shift."""
    if real == 0:
        return 0, 0
    fraction, shift = math.frexp(float(real))
    multiplier = int(round_half_away(np.float64(fraction * (1 << 31))))
    if multiplier == 1 << 31:
        multiplier //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return multiplier, shift


def saturating_rounding_doubling_high_mul(a, b, bits=32):
    """gemmlowp's SaturatingRoundingDoublingHighMul on ``bits``-bit integers: (a * b * 2) / 2**bits, the product
    nudged by +half (>= 0) or by 1 - half (< 0) and the division truncating: nearest, ties toward +inf."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    low = -(1 << (bits - 1))
    ab = a * b
    half = 1 << (bits - 2)
    nudged = ab + np.where(ab >= 0, half, 1 - half)
    quotient = np.where(nudged >= 0, nudged >> (bits - 1), -((-nudged) >> (bits - 1)))
    return np.where((a == low) & (b == low), -low - 1, quotient)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp's RoundingDivideByPOT: x / 2**exponent rounded half away from zero."""
    x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite's MultiplyByQuantizedMultiplier (double rounding): x * multiplier * 2**(shift - 31)."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    shifted = np.asarray(x, np.int64) * (np.int64(1) << left)
    wrapped = (shifted + (1 << 31)) % (1 << 32) - (1 << 31)  # int32 arithmetic, as in C
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(wrapped, multiplier), np.maximum(-shift, 0))


def multiply_by_quantized_multiplier_simd(x, multiplier, shift):
    """What TFLite's optimized x86 kernels compute in their SIMD lanes instead (gemmlowp's SSE fixed point): the
    high multiply nudged by 2**30 whatever the sign and floored, then a right shift that rounds halves up.
    Established against LiteRT without its delegate: 0 differing outputs on every convolution and, in the
    16-lane body of MEAN, on Mobilenet_v3_small_quant.tflite (the scalar rule differs on 18 of 200,704)."""
    shift = np.asarray(shift, np.int64)
    high = (np.asarray(x, np.int64) * (np.int64(1) << np.maximum(shift, 0)) * multiplier + (1 << 30)) >> 31
    right = np.maximum(-shift, 0)
    return (high + np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)) >> right


def requantize_fixed(acc, multiplier, shift, zero_point, lo, hi, simd=False):
    """TFLite's requantization: clamp(MultiplyByQuantizedMultiplier(acc) + zp, lo, hi), as int32; ``simd``:
    as the optimized kernels' SIMD lanes round (multiply_by_quantized_multiplier_simd)."""
    multiply = multiply_by_quantized_multiplier_simd if simd else multiply_by_quantized_multiplier
    return np.clip(multiply(acc, multiplier, shift) + zero_point, lo, hi).astype(np.int32)


# --- gemmlowp fixed point (TFLite's reference SOFTMAX) ---------------------------------------------------
# A FixedPoint<int32, I> holds raw / 2**(31 - I). Products of such numbers are SaturatingRoundingDoublingHighMul
# of their raws (integer bits adding up); Rescale moves a raw to other integer bits with a saturating left shift
# or a rounding right shift. Constants are round(value * 2**(31 - I)), as gemmlowp's checked constants are.

def _saturate32(x):
    return np.clip(x, INT32_MIN, INT32_MAX)


def rescale(raw, bits_from, bits_to):
    """gemmlowp's Rescale<bits_to> of a FixedPoint<int32, bits_from>."""
    exponent = bits_from - bits_to
    if exponent > 0:
        return _saturate32(np.asarray(raw, np.int64) << exponent)
    return rounding_divide_by_pot(raw, -exponent) if exponent < 0 else np.asarray(raw, np.int64)


def _constant(value, integer_bits=0):
    return int(round(value * 2 ** (31 - integer_bits)))


def exp_on_negative_values(a, integer_bits):
    """gemmlowp's exp_on_negative_values: exp(a) as FixedPoint<int32, 0> raw for a FixedPoint<int32, integer_bits>
    raw a <= 0: a Taylor polynomial around -1/8 on a's remainder in (-1/4, 0], times exp(-2**k) for each set bit k
    of the rest (a barrel shifter), 0 below -32 when the format reaches that far, 1 at 0."""
    a = np.asarray(a, np.int64)
    fractional_bits = 31 - integer_bits
    quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    x = rescale(a_mod_quarter_minus_quarter, integer_bits, 0) + (1 << 28)  # + 1/8 in Q0.31
    mul = saturating_rounding_doubling_high_mul
    x2 = mul(x, x)
    x3 = mul(x2, x)
    x4 = mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    polynomial = rounding_divide_by_pot(mul(x4_over_4 + x3, _constant(1 / 3)) + x2, 1)
    exp_minus_eighth = _constant(np.exp(-1 / 8))
    result = exp_minus_eighth + mul(exp_minus_eighth, x + polynomial)
    remainder = a_mod_quarter_minus_quarter - a
    for exponent in range(-2, 5):
        if integer_bits > exponent:
            bit = (remainder >> (fractional_bits + exponent)) & 1
            result = np.where(bit == 1, mul(result, _constant(np.exp(-2.0 ** exponent))), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)  # below -32
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp's 1 / (1 + a) for a FixedPoint<int32, 0> a in [0, 1): three Newton-Raphson steps in Q2.29."""
    a = np.asarray(a, np.int64)
    half_denominator = (a + INT32_MAX + 1) >> 1  # RoundingHalfSum(a, One): (a + b + 1) / 2, both >= 0 here
    mul = saturating_rounding_doubling_high_mul
    x = _constant(48 / 17, 2) + mul(half_denominator, _constant(-32 / 17, 2))
    for _ in range(3):
        one_minus = (1 << 29) - mul(half_denominator, x)
        x = x + rescale(mul(x, one_minus), 4, 2)
    return rescale(x >> 1, 2, 0)


def reciprocal(x, integer_bits):
    """TFLite's GetReciprocal of a positive FixedPoint<int32, integer_bits> raw: (1 / x scaled to [0.5, 1) as a
    Q0.31 raw, the number of bits x has above 1.0)."""
    x = int(x)
    headroom_plus_one = 32 - x.bit_length()  # CountLeadingZeros of the uint32
    shifted_minus_one = ((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    return int(one_over_one_plus_x_for_x_in_0_1(shifted_minus_one)), integer_bits - headroom_plus_one
