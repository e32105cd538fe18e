"""The integer node kinds (tinynet.detection.tflite_integer) against plain per-element references written from the
rules TFLite and XNNPACK document (C-style float32 arithmetic, their rounding modes), edge cases included."""
import math
import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.detection.tflite_integer import _dequantize, _lut, _rescale, exact, lut_node, rescale_node
from tinynet.graph import NODE_KINDS
from tinynet.kernels.fake_quant import requantize_f32
from tinynet.kernels.reference import requantize_ref


def _requant(x, out, scale, lo, hi):
    requantize_f32(x.reshape(1, -1), out.reshape(1, -1), np.float32(scale), np.float32(lo), np.float32(hi))


def fl(x):
    """Round a Python float to float32, as C float arithmetic does after each operation."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def round_half_even(x):
    return float(round(x))  # Python's round is half to even, like lrintf in the default rounding mode


def round_half_away(x):
    return float(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


accumulators = st.integers(-(2 ** 24) + 1, 2 ** 24 - 1)
scales = st.floats(1e-6, 1.0).map(fl)


@settings(max_examples=300, deadline=None)
@given(st.lists(accumulators, min_size=1, max_size=40), scales, st.integers(-255, 0), st.integers(0, 255))
def test_requant_is_xnnpack_fp32(accs, scale, lo, hi):
    x = np.array(accs, np.float32)
    out = np.empty_like(x)
    _requant(x, out, scale, lo, hi)
    want = [round_half_even(min(max(fl(float(a) * scale), lo), hi)) for a in accs]
    assert out.tolist() == want


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 50), st.integers(1, 9), scales, st.data())
def test_requantize_kernel_matches_its_reference(rows, cols, scale, data):
    x = np.array(data.draw(st.lists(accumulators, min_size=rows * cols, max_size=rows * cols)), np.float32)
    x = x.reshape(rows, cols)
    out = np.empty_like(x)
    requantize_f32(x, out, np.float32(scale), np.float32(-128), np.float32(127))
    np.testing.assert_array_equal(out, requantize_ref(x, scale, -128, 127))
    requantize_f32(x, x, np.float32(scale), np.float32(-128), np.float32(127))  # in place
    np.testing.assert_array_equal(x, out)


def test_requant_ties_round_to_even():
    x = np.array([5, 7, -5, -7, 1], np.float32)
    out = np.empty_like(x)
    _requant(x, out, 0.5, -255, 255)  # 2.5, 3.5, -2.5, -3.5, 0.5
    assert out.tolist() == [2, 4, -2, -4, 0]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=1, max_size=40), st.tuples(scales, st.integers(0, 255)),
       st.tuples(scales, st.integers(0, 255)))
def test_rescale_is_tflite_concatenation_with_scaling(qs, quant_in, quant_out):
    node = rescale_node("r", "x", quant_in, quant_out)
    n_in = np.array(qs, np.float32) - quant_in[1]
    if node is None:
        assert quant_in == quant_out
        return
    out = np.empty_like(n_in)
    _rescale(n_in, out, *(node.option(k) for k in ("zp_in", "scale", "bias", "zp_out")))
    scale = fl(quant_in[0] * fl(1 / quant_out[0]))
    bias = fl(-quant_in[1] * scale)
    want = [min(255, max(0, round_half_away(fl(fl(q * scale) + bias)) + quant_out[1])) - quant_out[1] for q in qs]
    assert out.tolist() == want


def test_rescale_of_equal_quantization_is_no_node():
    assert rescale_node("r", "x", (0.1, 3), (0.1, 3)) is None


@settings(max_examples=100, deadline=None)
@given(st.tuples(st.floats(1e-3, 0.2).map(fl), st.integers(0, 255)), st.integers(0, 255))
def test_lut_is_tflite_logistic(quant_in, zp_out):
    node = lut_node("s", "x", quant_in, (1 / 256, zp_out))
    table = node.option("table")
    for q in (0, 1, quant_in[1], 200, 255):
        real = fl(quant_in[0] * (q - quant_in[1]))
        sigmoid = 1 / (1 + math.exp(-real))  # float32 exp may differ from this by an ulp; only exact ties could tell
        want = min(255, max(0, math.floor(sigmoid * 256 + 0.5) + zp_out)) - zp_out
        assert abs(table[q] - want) <= 1e-9 or abs(sigmoid * 256 % 1 - 0.5) < 1e-4
    x = np.array([0, 255, quant_in[1]], np.float32) - quant_in[1]
    out = np.empty_like(x)
    _lut(x, out, table, quant_in[1])
    assert out.tolist() == [table[0], table[255], table[quant_in[1]]]


def test_dequantize_and_registry():
    x = np.array([-3, 0, 7], np.float32)
    out = np.empty_like(x)
    _dequantize(x, out, 0.5)
    assert out.tolist() == [-1.5, 0.0, 3.5]
    assert {"requant", "rescale", "lut", "dequantize"} <= set(NODE_KINDS)


def test_exact_refuses_sums_float32_cannot_hold():
    from types import SimpleNamespace
    node = SimpleNamespace(kind="pw", name="c", inputs=("in",), quant=(0.1, 0),
                           integer={"w": np.full((600, 1), 255.0), "b": np.zeros(1)})
    d = SimpleNamespace(input="in", input_quant=(1 / 128, 128), nodes=[node])
    assert not exact(d)  # 600 * 255 * 128 (largest |q - 128|) > 2**24
    node.integer["w"] = np.full((100, 1), 255.0)
    assert exact(d)
    node.quant = None
    assert not exact(d)
