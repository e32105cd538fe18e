"""Requantization of int32 accumulators to uint8 outputs: the output step of every integer kernel.

Three arithmetics, one per oracle, chosen by the type of the parameters a kernel is given (each kernel is
compiled once per type, so the choice costs nothing at run time; the tiles emit it in vector form,
kernels.int8_gemm_tile.requantizer):

- ``Fp32Requant`` (XNNPACK, LiteRT's default delegate, "fp32" in its kernel names):
  y = lrintf(min(max(float32(acc) * scale[c], lo - zp), hi - zp)) + zp, every operation in float32, rounding
  half to even.
- ``FixedRequant`` (TFLite's reference kernels): y = clamp(MultiplyByQuantizedMultiplier(acc, m[c], s[c]) + zp,
  lo, hi), where MultiplyByQuantizedMultiplier(x, m, s) = RoundingDivideByPOT(
  SaturatingRoundingDoublingHighMul(x * 2**max(s, 0), m), max(-s, 0)): the high half of the doubled 64-bit
  product, nudged by 2**30 (1 - 2**30 when negative) and truncated toward zero, then a division by 2**-s rounding
  half away from zero. x * 2**s and the + zp wrap in int32, as the compiled C does; conv accumulators never get
  near that.
- ``FixedSimdRequant`` (the SIMD lanes of TFLite's optimized x86 kernels, what LiteRT runs where XNNPACK refuses a
  graph; tinynet.quantized.arithmetic.multiply_by_quantized_multiplier_simd): y = clamp(floor((floor((x * 2**max(s, 0)
  * m + 2**30) / 2**31) + h) / 2**r) + zp, lo, hi), r = max(-s, 0), h = 2**(r - 1) (0 if r = 0): the high multiply
  nudged by 2**30 whatever the sign and floored, then a right shift rounding halves up; exact integer arithmetic
  (no int32 wrap of x * 2**s: the product saturates at int32, which changes nothing once clamped, for the
  multipliers QuantizeMultiplier makes, 0 or in [2**30, 2**31)).

Activations are uint8 in memory for uint8 and int8 graphs alike (int8 stored + 128), so ``zp``, ``lo`` and ``hi``
are in uint8 units: lo, hi the output range with the fused activation (0..255), zp the output zero point.

Per-channel arrays are padded to a multiple of PAD_CHANNELS, so that a kernel may load a whole vector of them
past its last channel (values there are never stored).
"""
from collections import namedtuple

import numpy as np

PAD_CHANNELS = 64

#   scale:                      (C',) float32   input_scale * weight_scale[c] / output_scale, computed in float32
#   out_zp:                     int             output zero point
#   out_min_less_zp, ..max..:   float32         lo - zp, hi - zp
Fp32Requant = namedtuple("Fp32Requant", ("scale", "out_zp", "out_min_less_zp", "out_max_less_zp"))
#   multiplier, shift:          (C',) int32     QuantizeMultiplier's (q in [2**30, 2**31), exponent) per channel
#   out_zp, out_min, out_max:   int             zp, lo, hi
FixedRequant = namedtuple("FixedRequant", ("multiplier", "shift", "out_zp", "out_min", "out_max"))
#   as FixedRequant; multiplier 0 or in [2**30, 2**31)
FixedSimdRequant = namedtuple("FixedSimdRequant", FixedRequant._fields)



def _per_channel(values, channels, dtype):
    """``values`` (a scalar or (channels,)) as a (C',) array of ``dtype``, C' = channels rounded up to PAD_CHANNELS."""
    padded = np.zeros(-(-channels // PAD_CHANNELS) * PAD_CHANNELS, dtype)
    padded[:channels] = np.broadcast_to(np.asarray(values).astype(dtype), (channels,))
    return padded


def _check_bounds(out_zp, out_min, out_max):
    if not 0 <= out_min <= out_max <= 255 or not 0 <= out_zp <= 255:
        raise ValueError(f"output bounds {out_min}..{out_max} and zero point {out_zp} must lie in 0..255")


def fp32_requant(scale, out_zp, out_min, out_max, channels):
    """Fp32Requant for ``channels`` outputs; ``scale`` float32, per tensor (scalar) or per channel."""
    _check_bounds(out_zp, out_min, out_max)
    return Fp32Requant(_per_channel(np.asarray(scale, np.float32), channels, np.float32), int(out_zp),
                       np.float32(out_min - out_zp), np.float32(out_max - out_zp))


def fixed_requant(multiplier, shift, out_zp, out_min, out_max, channels):
    """FixedRequant for ``channels`` outputs; multiplier and shift int32, per tensor (scalars) or per channel, shift
    in [-31, 31] (TFLite's RoundingDivideByPOT takes exponents up to 31; shifts of 32 bits are undefined in IR)."""
    return FixedRequant(*_fixed_fields(multiplier, shift, out_zp, out_min, out_max, channels))


def fixed_simd_requant(multiplier, shift, out_zp, out_min, out_max, channels):
    """FixedSimdRequant for ``channels`` outputs: as fixed_requant, multipliers 0 or in [2**30, 2**31)."""
    m = np.asarray(multiplier, np.int64)
    if np.any((m != 0) & (m < 2**30)):
        raise ValueError("multipliers must be 0 or lie in [2**30, 2**31)")
    return FixedSimdRequant(*_fixed_fields(multiplier, shift, out_zp, out_min, out_max, channels))


def _fixed_fields(multiplier, shift, out_zp, out_min, out_max, channels):
    _check_bounds(out_zp, out_min, out_max)
    if np.any(np.abs(np.asarray(shift)) > 31):
        raise ValueError("shifts must lie in [-31, 31]")
    return (_per_channel(multiplier, channels, np.int32), _per_channel(shift, channels, np.int32), int(out_zp),
            int(out_min), int(out_max))
