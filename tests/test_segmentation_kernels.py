"""Segmentation kernels against their float64 references and external oracles.

Kernels: bilinear resize, argmax, concatenation, image pooling, sigmoid gating, dilated convs.

Oracles: kernels.reference (hypothesis-drawn shapes: 1x1 maps, odd sizes, scale up and down, channel
counts of 1 and off multiples of 16), and committed outputs of torch F.interpolate and LiteRT's
RESIZE_BILINEAR (tests/fixtures/make_resize_fixtures.py) and torch Conv2d with dilation
(make_dilated_fixtures.py). Resize blends four values with weights in
[0, 1] summing to 1, so float32 error is a few ulps of max|x|.
"""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet import kernels
from tinynet.kernels import reference as ref
from tinynet.kernels.activation import ACTIVATIONS
from tinynet.kernels.argmax import argmax_channels_nhwc
from tinynet.kernels.conv import DILATED_ROW_BLOCK, dilated_row_block
from tinynet.kernels.channel_ops import (concat_channels_nhwc, image_pool_nhwc_f32, scale_channels_nhwc_f32,
                                        sigmoid_gate_nhwc_f32)
from tinynet.kernels.gemm_tile import PANEL_WIDTHS
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


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 2), h=SPATIAL, w=SPATIAL, c=st.one_of(CHANNELS, st.integers(200, 300)),
       levels=st.integers(1, 5), dtype=st.sampled_from([np.uint8, np.int32]), seed=SEEDS)
def test_argmax_matches_reference_with_ties(n, h, w, c, levels, dtype, seed):
    """Few distinct values (``levels``) force ties, which must go to the lowest channel."""
    if dtype is np.uint8 and c > 256:
        dtype = np.int32
    x = np.random.default_rng(seed).integers(0, levels, (n, h, w, c)).astype(np.float32)
    out = argmax_channels_nhwc(x, np.empty((n, h, w), dtype))
    np.testing.assert_array_equal(out, ref.argmax_channels_ref(x))


def test_argmax_refuses_too_many_classes_for_uint8():
    with pytest.raises(ValueError):
        argmax_channels_nhwc(np.zeros((1, 1, 1, 257), np.float32), np.empty((1, 1, 1), np.uint8))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2), h=SPATIAL, w=SPATIAL, cs=st.lists(CHANNELS, min_size=1, max_size=5), seed=SEEDS)
def test_concat_matches_reference(n, h, w, cs, seed):
    rng = np.random.default_rng(seed)
    parts = [rng.standard_normal((n, h, w, c)).astype(np.float32) for c in cs]
    out = concat_channels_nhwc(parts, np.empty((n, h, w, sum(cs)), np.float32))
    np.testing.assert_array_equal(out, ref.concat_channels_ref(parts))


def test_concat_rejects_mismatched_parts():
    with pytest.raises(ValueError):
        concat_channels_nhwc([np.zeros((1, 2, 2, 3), np.float32)], np.empty((1, 2, 2, 4), np.float32))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 2), h=SPATIAL, w=SPATIAL, ho=SPATIAL, wo=SPATIAL, c=CHANNELS, seed=SEEDS)
def test_image_pool_matches_reference(n, h, w, ho, wo, c, seed):
    x = np.random.default_rng(seed).uniform(-4, 4, (n, h, w, c)).astype(np.float32)
    out = image_pool_nhwc_f32(x, np.empty((n, ho, wo, c), np.float32))
    np.testing.assert_allclose(out, ref.image_pool_nhwc_ref(x, (ho, wo)), rtol=0, atol=1e-5 * 4)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 2), h=SPATIAL, w=SPATIAL, c=CHANNELS, in_place=st.booleans(), seed=SEEDS)
def test_sigmoid_gate_matches_reference(n, h, w, c, in_place, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-6, 6, (n, h, w, c)).astype(np.float32)
    g = rng.uniform(-12, 12, (n, c)).astype(np.float32)
    g[0, 0] = -200.0  # exp overflow: gate must be exactly 0, without a warning
    expected = ref.sigmoid_gate_nhwc_ref(x, g)
    out = sigmoid_gate_nhwc_f32(x, g, x if in_place else np.empty_like(x))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 3), h=SPATIAL, w=SPATIAL, c=CHANNELS, in_place=st.booleans(), seed=SEEDS)
def test_scale_channels_matches_reference(n, h, w, c, in_place, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-6, 6, (n, h, w, c)).astype(np.float32)
    g = rng.uniform(0, 1, (n, c)).astype(np.float32)
    expected = ref.scale_channels_ref(x, g)
    out = x if in_place else np.empty_like(x)
    scale_channels_nhwc_f32(x, g, out)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=0)


DILATION = st.integers(1, 4)
PADDING = st.sampled_from(["symmetric", "tf_same"])
ACT = st.sampled_from(sorted(set(ACTIVATIONS.values())))


def values(rng, shape):
    return rng.uniform(-2, 2, shape).astype(np.float32)


def dilated_geometry(h, w, k, stride, dilation, padding):
    (ho, pad_top), (wo, pad_left) = (kernels.conv_output_size(n, k, stride, padding, dilation) for n in (h, w))
    return ho, wo, pad_top, pad_left


@pytest.mark.parametrize("size, k, stride, dilation, padding, expected", [
    (33, 3, 1, 2, "symmetric", (33, 2)), (33, 3, 1, 12, "symmetric", (33, 12)), (17, 3, 2, 2, "symmetric", (9, 2)),
    (5, 3, 1, 4, "tf_same", (5, 4)), (6, 3, 2, 2, "tf_same", (3, 1)), (1, 3, 1, 36, "tf_same", (1, 36)),
    (10, 3, 1, 1, "tf_same", (10, 1)),
])
def test_conv_output_size_with_dilation(size, k, stride, dilation, padding, expected):
    """Symmetric: torch Conv2d(padding=(k-1)//2*d); TF SAME: output ceil(n/s), padding from the span (k-1)*d+1."""
    assert kernels.conv_output_size(size, k, stride, padding, dilation) == expected


def test_conv_output_size_rejects_dilation_0():
    with pytest.raises(ValueError):
        kernels.conv_output_size(5, 3, 1, "symmetric", 0)


def run_dilated_depthwise(x, wt, b, stride, dilation, padding, act, groups):
    n, h, w, c = x.shape
    k = wt.shape[0]
    ho, wo, pad_top, pad_left = dilated_geometry(h, w, k, stride, dilation, padding)
    out = np.full((n, ho, wo, c), np.nan, np.float32)
    kernels.dwconv2d_nhwc_f32(x, wt, b, out, stride, dilation, pad_top, pad_left, act, groups,
                              np.zeros(w * c, np.float32))
    expected = ref.dwconv2d_nhwc_ref(x, wt, b, (ho, wo), stride, pad_top, pad_left, act, dilation)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5 * (1 + k * k * 4 + 2))  # |x|, |w|, |b| <= 2


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(1, 20), w=st.integers(1, 24), c=CHANNELS, k=st.sampled_from([1, 3, 5, 7]),
       stride=st.sampled_from([1, 2]), dilation=DILATION, padding=PADDING, act=ACT, groups=st.integers(1, 3),
       seed=SEEDS)
def test_dilated_depthwise_matches_reference(n, h, w, c, k, stride, dilation, padding, act, groups, seed):
    """Maps down to 1x1, smaller than the dilated kernel (up to 25 pixels wide); rows shorter than one span of
    d interleaved blocks, and interiors that leave columns over; channel groups."""
    rng = np.random.default_rng(seed)
    x, wt, b = values(rng, (n, h, w, c)), values(rng, (k, k, c)), values(rng, (c,))
    run_dilated_depthwise(x, wt, b, stride, dilation, padding, act, groups)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 40), c=st.sampled_from([127, 128, 129, 300]), k=st.sampled_from([3, 5]),
       stride=st.sampled_from([1, 2]), dilation=st.integers(2, 4), padding=PADDING, groups=st.integers(1, 5),
       seed=SEEDS)
def test_dilated_depthwise_wide_channels_and_rows_match_reference(h, w, c, k, stride, dilation, padding, groups, seed):
    """Several channel tiles and vectors per pixel, interiors of several spans and chunks (LR-ASPP's 33x33x960
    5x5 at dilation 2 in small)."""
    rng = np.random.default_rng(seed)
    x, wt, b = values(rng, (1, h, w, c)), values(rng, (k, k, c)), values(rng, (c,))
    run_dilated_depthwise(x, wt, b, stride, dilation, padding, 1, groups)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(1, 14), w=st.integers(1, 14), cin=st.integers(1, 5), cout=CHANNELS,
       k=st.sampled_from([1, 3]), stride=st.sampled_from([1, 2]), dilation=DILATION, padding=PADDING, act=ACT,
       nr=st.sampled_from(PANEL_WIDTHS), block=st.integers(1, 8), seed=SEEDS)
def test_dilated_conv_matches_reference(n, h, w, cin, cout, k, stride, dilation, padding, act, nr, block, seed):
    rng = np.random.default_rng(seed)
    x, wt, b = values(rng, (n, h, w, cin)), values(rng, (k, k, cin, cout)), values(rng, (cout,))
    ho, wo, pad_top, pad_left = dilated_geometry(h, w, k, stride, dilation, padding)
    out = np.full((n, ho, wo, cout), np.nan, np.float32)
    kernels.conv2d_dilated_nhwc_f32(x, *kernels.pack_weights(wt.reshape(-1, cout), b, nr), out, k, stride, dilation,
                                    pad_top, pad_left, act, block)
    expected = ref.conv2d_nhwc_ref(x, wt, b, (ho, wo), stride, pad_top, pad_left, act, dilation)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5 * (1 + k * k * cin * 4 + 2))


@pytest.mark.parametrize("rows, panels, threads, expected", [
    (33, 4, 2, 7), (33, 1, 2, 6), (33, 3, 2, 6), (33, 1, 1, 7), (1, 1, 2, 1), (7, 1, 2, 4), (16, 2, 2, 8)])
def test_dilated_row_block_splits_rows_between_threads_when_panels_do_not(rows, panels, threads, expected):
    assert dilated_row_block(rows, panels, threads) == expected


def test_dilated_convs_match_torch():
    """torch Conv2d(dilation=d, padding=(k-1)//2*d), standard and depthwise: fixes the symmetric convention."""
    fixture = np.load(FIXTURES / "dilated_torch.npz")
    for i in range(sum(key.startswith("geometry") for key in fixture.files)):
        x, weight, b, expected = fixture[f"x{i}"], fixture[f"w{i}"], fixture[f"b{i}"], fixture[f"y{i}"]
        k, stride, dilation, depthwise = (int(v) for v in fixture[f"geometry{i}"])
        ho, wo, pad_top, pad_left = dilated_geometry(x.shape[1], x.shape[2], k, stride, dilation, "symmetric")
        out = np.full(expected.shape, np.nan, np.float32)
        assert (ho, wo) == expected.shape[1:3]
        if depthwise:  # torch (C, 1, KH, KW) -> (KH, KW, C)
            kernels.dwconv2d_nhwc_f32(x, np.ascontiguousarray(weight[:, 0].transpose(1, 2, 0)), b, out, stride,
                                      dilation, pad_top, pad_left, 0, 1, np.zeros(x.shape[2] * x.shape[3], np.float32))
        else:  # torch (Cout, Cin, KH, KW) -> (KH, KW, Cin, Cout)
            hwio = np.ascontiguousarray(weight.transpose(2, 3, 1, 0)).reshape(-1, weight.shape[0])
            kernels.conv2d_dilated_nhwc_f32(x, *kernels.pack_weights(hwio, b, PANEL_WIDTHS[0]), out, k, stride,
                                            dilation, pad_top, pad_left, 0, DILATED_ROW_BLOCK)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4, err_msg=f"case {i}")
