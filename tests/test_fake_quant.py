"""The activation fake-quantization kernel against its float64 reference."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels.fake_quant import fake_quantize_f32
from tinynet.kernels.reference import fake_quantize_ref


@given(rows=st.integers(1, 9), c=st.integers(1, 40), lo=st.floats(-10, 0), step=st.floats(1e-3, 2.0),
       levels=st.sampled_from([2, 16, 256]), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_fake_quantize_matches_reference(rows, c, lo, step, levels, seed):
    lo, step = np.float32(lo), np.float32(step)
    hi = float(lo) + float(step) * (levels - 1)
    x = np.random.default_rng(seed).uniform(float(lo) - 3 * float(step), hi + 3 * float(step), (rows, c)).astype(np.float32)
    expected = fake_quantize_ref(x, float(lo), float(step), levels)
    out = x.copy()
    fake_quantize_f32(out, lo, step, levels)
    levels_out = (out.astype(np.float64) - float(lo)) / float(step)
    np.testing.assert_allclose(levels_out, np.rint(levels_out), atol=1e-3)  # every output sits on the grid
    assert levels_out.min() > -1e-3 and levels_out.max() < levels - 1 + 1e-3  # clamped to the range
    # float32 and float64 may pick different neighbours only for inputs on a rounding boundary
    differ = np.abs(out - expected) > 1e-4 * (1 + abs(hi))
    fraction = ((x.astype(np.float64) - float(lo)) / float(step)) % 1.0
    assert np.all(np.abs(fraction[differ] - 0.5) < 1e-3)


def test_fake_quantize_by_hand():
    x = np.array([[-1.0, 0.0, 0.24, 0.26, 1.1, 9.0]], np.float32)
    fake_quantize_f32(x, np.float32(0.0), np.float32(0.5), 4)  # levels 0, 0.5, 1.0, 1.5
    np.testing.assert_array_equal(x, [[0.0, 0.0, 0.0, 0.5, 1.0, 1.5]])
