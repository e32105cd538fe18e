"""Segmentation kernels (bilinear resize, ...) against their float64 references and external oracles.

Oracles: kernels.reference (hypothesis-drawn shapes: 1x1 maps, odd sizes, scale up and down, channel
counts of 1 and off multiples of 16), and committed outputs of torch F.interpolate and LiteRT's
RESIZE_BILINEAR (tests/fixtures/make_resize_fixtures.py). Resize blends four values with weights in
[0, 1] summing to 1, so float32 error is a few ulps of max|x|.
"""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels import reference as ref
from tinynet.kernels.resize import resize_bilinear_nhwc_f32

FIXTURES = Path(__file__).parent / "fixtures"
CHANNELS = st.one_of(st.sampled_from([1, 7, 15, 16, 17, 33]), st.integers(1, 40))
SPATIAL = st.integers(1, 24)
SEEDS = st.integers(0, 2**32 - 1)
# (align_corners, half_pixel_centers): TF1 DeepLab, TF1 legacy default, torch/TF2 half-pixel
MODES = {"align_corners": (True, False), "legacy": (False, False), "half_pixel": (False, True)}


def resize(x, out_hw, mode):
    out = np.empty((x.shape[0], *out_hw, x.shape[3]), np.float32)
    return resize_bilinear_nhwc_f32(x, out, *MODES[mode])


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 2), h=SPATIAL, w=SPATIAL, ho=st.integers(1, 40), wo=st.integers(1, 40), c=CHANNELS,
       mode=st.sampled_from(sorted(MODES)), seed=SEEDS)
def test_resize_matches_reference(n, h, w, ho, wo, c, mode, seed):
    x = np.random.default_rng(seed).uniform(-4, 4, (n, h, w, c)).astype(np.float32)
    expected = ref.resize_bilinear_nhwc_ref(x, (ho, wo), *MODES[mode])
    np.testing.assert_allclose(resize(x, (ho, wo), mode), expected, rtol=0, atol=4e-6 * 4)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_resize_same_size_is_identity(mode):
    x = np.random.default_rng(1).standard_normal((1, 5, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(resize(x, (5, 7), mode), x, rtol=0, atol=1e-6)


def test_resize_matches_torch_interpolate():
    fixture = np.load(FIXTURES / "resize_torch.npz")
    cases = sorted(k for k in fixture.files if k.startswith("x"))
    for key in cases:
        x = fixture[key]
        for align, mode in ((0, "half_pixel"), (1, "align_corners")):
            expected = fixture[f"y{key[1:]}_align{align}"]
            np.testing.assert_allclose(resize(x, expected.shape[1:3], mode), expected, rtol=0, atol=2e-5,
                                       err_msg=f"{key} {mode}")


def test_resize_matches_litert():
    inputs, fixture = np.load(FIXTURES / "resize_torch.npz"), np.load(FIXTURES / "resize_litert.npz")
    for key in fixture.files:
        case, mode = key[1:].split("_", 1)
        expected = fixture[key]
        np.testing.assert_allclose(resize(inputs[f"x{case}"], expected.shape[1:3], mode), expected, rtol=0,
                                   atol=2e-5, err_msg=key)


def test_resize_rejects_both_flags():
    x = np.zeros((1, 2, 2, 1), np.float32)
    with pytest.raises(ValueError):
        resize_bilinear_nhwc_f32(x, np.empty((1, 3, 3, 1), np.float32), True, True)
