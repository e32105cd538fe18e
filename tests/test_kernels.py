"""Every fast kernel against its float64 reference (kernels.reference), over hypothesis-drawn shapes.

The drawn cases cover the edges that break vectorised kernels: channel counts of 1, odd, and around
multiples of 16 (the AVX-512 float32 vector width), spatial sizes down to 1x1, inputs smaller than the
kernel, stride 2 on odd and even sizes with TensorFlow SAME padding, and values around the activation
knees (-3, 0, 3, 6).

Tolerance: float32 accumulation against float64, |fast - ref| <= 1e-5 * (1 + sum of |products|) per
output, bounded here by 1e-5 * (1 + taps * max|x| * max|w| + |b|). XNNPACK tests its f32 depthwise
kernels with a relative 1e-5.
"""
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet import kernels
from tinynet.kernels import reference as ref
from tinynet.kernels.activation import ACTIVATIONS, RELU6, activate_row
from tinynet.kernels.gemm import NO_RESIDUAL
from tinynet.kernels.gemm_tile import PANEL_WIDTHS

CHANNELS = st.one_of(st.sampled_from([1, 7, 8, 9, 15, 16, 17, 31, 33]), st.integers(1, 48))
SPATIAL = st.integers(1, 20)
ACT = st.sampled_from(sorted(set(ACTIVATIONS.values())))
PADDING = st.sampled_from(["symmetric", "tf_same"])
SEEDS = st.integers(0, 2**32 - 1)
FAST = settings(max_examples=60, deadline=None)


def values(rng, shape, scale=4.0):
    """Uniform values in [-scale, scale], with exact activation knees sprinkled in."""
    x = rng.uniform(-scale, scale, shape).astype(np.float32)
    knees = np.array([-3.0, 0.0, 3.0, 6.0], np.float32)
    mask = rng.random(shape) < 0.05
    x[mask] = rng.choice(knees, mask.sum())
    return x


def assert_close(fast, expected, taps, x, w, b):
    bound = 1e-5 * (1.0 + taps * np.abs(x).max() * np.abs(w).max() + np.abs(b).max())
    np.testing.assert_allclose(fast, expected, rtol=0, atol=bound)


def run_depthwise(x, wt, b, stride, padding, act, groups):
    n, h, w, c = x.shape
    k = wt.shape[0]
    ho, pad_top = kernels.conv_output_size(h, k, stride, padding)
    wo, pad_left = kernels.conv_output_size(w, k, stride, padding)
    out = np.full((n, ho, wo, c), np.nan, np.float32)
    kernels.dwconv2d_nhwc_f32(x, wt, b, out, stride, 1, pad_top, pad_left, act, groups, np.zeros(w * c, np.float32))
    expected = ref.dwconv2d_nhwc_ref(x, wt, b, (ho, wo), stride, pad_top, pad_left, act)
    assert_close(out, expected, k * k, x, wt, b)


@given(n=st.integers(1, 2), h=SPATIAL, w=SPATIAL, c=CHANNELS, k=st.sampled_from([3, 5, 7]), stride=st.sampled_from([1, 2]),
       padding=PADDING, act=ACT, groups=st.integers(1, 3), seed=SEEDS)
@FAST
def test_depthwise_matches_reference(n, h, w, c, k, stride, padding, act, groups, seed):
    rng = np.random.default_rng(seed)
    x, wt, b = values(rng, (n, h, w, c)), values(rng, (k, k, c), 1.0), values(rng, (c,))
    run_depthwise(x, wt, b, stride, padding, act, groups)


@given(h=st.integers(1, 9), w=st.integers(1, 12), c=st.sampled_from([127, 128, 129, 257, 300, 520]),
       k=st.sampled_from([3, 5]), stride=st.sampled_from([1, 2]), padding=PADDING, groups=st.integers(1, 5), seed=SEEDS)
@settings(max_examples=25, deadline=None)
def test_depthwise_wide_channels_match_reference(h, w, c, k, stride, padding, groups, seed):
    """Many 16-channel vectors per pixel, with and without a partial last one, and split into channel groups."""
    rng = np.random.default_rng(seed)
    x, wt, b = values(rng, (1, h, w, c)), values(rng, (k, k, c), 1.0), values(rng, (c,))
    run_depthwise(x, wt, b, stride, padding, RELU6, groups)


@given(n=st.integers(1, 2), h=SPATIAL, w=SPATIAL, cin=st.integers(1, 5), cout=CHANNELS, k=st.sampled_from([1, 3, 5]),
       stride=st.sampled_from([1, 2]), padding=PADDING, act=ACT, nr=st.sampled_from(PANEL_WIDTHS), seed=SEEDS)
@FAST
def test_conv_matches_reference(n, h, w, cin, cout, k, stride, padding, act, nr, seed):
    rng = np.random.default_rng(seed)
    x, wt, b = values(rng, (n, h, w, cin)), values(rng, (k, k, cin, cout), 1.0), values(rng, (cout,))
    ho, pad_top = kernels.conv_output_size(h, k, stride, padding)
    wo, pad_left = kernels.conv_output_size(w, k, stride, padding)
    out = np.full((n, ho, wo, cout), np.nan, np.float32)
    packed = kernels.pack_weights(wt.reshape(-1, cout), b, nr)
    kernels.conv2d_nhwc_f32(x, *packed, out, k, stride, pad_top, pad_left, act)
    expected = ref.conv2d_nhwc_ref(x, wt, b, (ho, wo), stride, pad_top, pad_left, act)
    assert_close(out, expected, k * k * cin, x, wt, b)


@given(pixels=st.integers(1, 41), k=st.integers(1, 70), m=st.one_of(CHANNELS, st.integers(49, 140)),
       row_tile=st.integers(1, 40), nr=st.sampled_from(PANEL_WIDTHS), residual=st.booleans(), act=ACT, seed=SEEDS)
@FAST
def test_gemm_matches_reference(pixels, k, m, row_tile, nr, residual, act, seed):
    """Every panel width (register tile) with partial tiles in rows and columns, and any task size."""
    rng = np.random.default_rng(seed)
    a, wt, b = values(rng, (pixels, k)), values(rng, (k, m), 1.0), values(rng, (m,))
    res = values(rng, (pixels, m)) if residual else None
    out = np.full((pixels, m), np.nan, np.float32)
    kernels.gemm_bias_act_f32(a, *kernels.pack_weights(wt, b, nr), out, act, res if residual else NO_RESIDUAL, row_tile)
    expected = ref.gemm_bias_act_ref(a, wt, b, act, res)
    assert_close(out, expected, k, a, wt, np.abs(b).max() + (np.abs(res).max() if residual else 0))


@given(n=st.integers(1, 2), h=SPATIAL, w=SPATIAL, cin=st.integers(1, 20), e=CHANNELS, k=st.sampled_from([3, 5]),
       stride=st.sampled_from([1, 2]), padding=PADDING, act_e=ACT, act_d=ACT, bands=st.integers(1, 5), seed=SEEDS)
@FAST
def test_expand_depthwise_matches_reference(n, h, w, cin, e, k, stride, padding, act_e, act_d, bands, seed):
    """The fused expand + depthwise pass, against the two references one after the other; bands of output rows
    from one per image to more than there are rows."""
    rng = np.random.default_rng(seed)
    x, we, be = values(rng, (n, h, w, cin)), values(rng, (cin, e), 1.0), values(rng, (e,))
    wd, bd = values(rng, (k, k, e), 1.0), values(rng, (e,))
    ho, pad_top = kernels.conv_output_size(h, k, stride, padding)
    wo, pad_left = kernels.conv_output_size(w, k, stride, padding)
    out = np.full((n, ho, wo, e), np.nan, np.float32)
    ring = np.empty((numba.config.NUMBA_NUM_THREADS, k, w * e), np.float32)
    expand = kernels.pack_weights(we, be)
    kernels.expand_dwconv2d_nhwc_f32(x, *expand, act_e, wd, bd, out, stride, pad_top, pad_left, act_d, bands, ring,
                                     np.zeros(w * e, np.float32))
    expected = ref.expand_dwconv2d_nhwc_ref(x, we, be, act_e, wd, bd, (ho, wo), stride, pad_top, pad_left, act_d)
    # Error bound: the expanded values carry cin-term float32 sums (|e| <= 1 + cin*max|x|*max|we| + max|be|), and
    # k*k of them are summed again: as assert_close's bound with the expanded tensor's bound as its input.
    expanded_max = np.abs(ref.gemm_bias_act_ref(x.reshape(-1, cin), we, be, act_e)).max()
    assert_close(out, expected, k * k * (1 + cin), np.float32(expanded_max + 1), wd, bd)


@given(n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=CHANNELS, squeeze=st.integers(1, 24), seed=SEEDS)
@FAST
def test_squeeze_excite_matches_reference(n, h, w, c, squeeze, seed):
    rng = np.random.default_rng(seed)
    x = values(rng, (n, h, w, c))
    w_reduce, w_expand = values(rng, (c, squeeze), 0.5), values(rng, (squeeze, c), 0.5)
    b_reduce, b_expand = values(rng, (squeeze,)), values(rng, (c,))
    expected = ref.squeeze_excite_nhwc_ref(x, w_reduce, b_reduce, w_expand, b_expand)
    scratch = [np.full(shape, np.nan, np.float32) for shape in ((n * h, c), (n, c), (n, squeeze), (n, c))]
    got = x.copy()
    kernels.squeeze_excite_nhwc_f32(got, *kernels.pack_weights(w_reduce, b_reduce),
                                    *kernels.pack_weights(w_expand, b_expand), *scratch)
    # Error bound: the FCs' float32 sums as in assert_close, the reduce FC's error carried through the expand FC,
    # both through h-sigmoid (slope 1/6), times |x|.
    pooled = np.abs(ref.global_avg_pool_nhwc_ref(x)).max()
    hidden = np.abs(ref.gemm_bias_act_ref(ref.global_avg_pool_nhwc_ref(x), w_reduce, b_reduce, kernels.activation_code("relu")))
    hidden_error = 1e-5 * (1 + c * pooled * np.abs(w_reduce).max() + np.abs(b_reduce).max())
    gate_error = (hidden_error * squeeze * np.abs(w_expand).max()
                  + 1e-5 * (1 + squeeze * hidden.max() * np.abs(w_expand).max() + np.abs(b_expand).max())) / 6
    np.testing.assert_allclose(got, expected, rtol=0, atol=np.abs(x).max() * (gate_error + 1e-6))


@given(n=st.integers(1, 3), h=SPATIAL, w=SPATIAL, c=CHANNELS, seed=SEEDS)
@FAST
def test_global_avg_pool_matches_reference(n, h, w, c, seed):
    x = values(np.random.default_rng(seed), (n, h, w, c))
    out = np.full((n, c), np.nan, np.float32)
    kernels.global_avg_pool_nhwc_f32(x, np.full((n * h, c), np.nan, np.float32), out)
    np.testing.assert_allclose(out, ref.global_avg_pool_nhwc_ref(x), rtol=0, atol=1e-6 * 4 * (1 + h * w) ** 0.5)


@given(n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 13), c=st.sampled_from([63, 64, 65, 127, 576]),
       squeeze=st.integers(1, 64), seed=SEEDS)
@settings(max_examples=25, deadline=None)
def test_pool_and_squeeze_excite_wide_channels_match_reference(n, h, w, c, squeeze, seed):
    """Many 16-channel vectors per pixel (kernels.channel_rows), with and without a partial last one, and rows of
    1 to 13 pixels: whole and partial groups of its partial sums; FCs on one core and split (SERIAL_FC_FLOATS)."""
    rng = np.random.default_rng(seed)
    x = values(rng, (n, h, w, c))
    out = np.full((n, c), np.nan, np.float32)
    kernels.global_avg_pool_nhwc_f32(x, np.full((n * h, c), np.nan, np.float32), out)
    np.testing.assert_allclose(out, ref.global_avg_pool_nhwc_ref(x), rtol=0, atol=1e-6 * 4 * (1 + h * w) ** 0.5)
    w_reduce, w_expand = values(rng, (c, squeeze), 0.05), values(rng, (squeeze, c), 0.5)
    b_reduce, b_expand = values(rng, (squeeze,)), values(rng, (c,))
    expected = ref.squeeze_excite_nhwc_ref(x, w_reduce, b_reduce, w_expand, b_expand)
    scratch = [np.full(shape, np.nan, np.float32) for shape in ((n * h, c), (n, c), (n, squeeze), (n, c))]
    got = x.copy()
    kernels.squeeze_excite_nhwc_f32(got, *kernels.pack_weights(w_reduce, b_reduce),
                                    *kernels.pack_weights(w_expand, b_expand), *scratch)
    # Relative to the gate's inputs: float32 sums of c and squeeze terms (test_squeeze_excite_matches_reference's
    # bound, rounded up), times |x|.
    hidden = np.abs(ref.gemm_bias_act_ref(ref.global_avg_pool_nhwc_ref(x), w_reduce, b_reduce, kernels.activation_code("relu")))
    gate_error = 1e-5 * (c * 4 * 0.05 * squeeze * 0.5 + squeeze * (1 + hidden.max()) * 0.5 + 8)
    np.testing.assert_allclose(got, expected, rtol=0, atol=np.abs(x).max() * (gate_error + 1e-6))


@given(rows=st.integers(1, 9), c=CHANNELS, act=ACT, seed=SEEDS)
@FAST
def test_activation_matches_reference(rows, c, act, seed):
    x = values(np.random.default_rng(seed), (rows, c), 8.0)
    expected = ref.activation_ref(x, act)
    for row in x:
        activate_row(row, act)  # the activation every kernel applies in its output step
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)


def test_activation_knees_are_exact():
    """The piecewise definitions at their knees, written out by hand (torch.nn.functional's definitions)."""
    x = np.array([[-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 6.0, 7.0]], np.float32)
    expected = {
        "relu": [0, 0, 0, 0, 1.5, 3, 6, 7],
        "relu6": [0, 0, 0, 0, 1.5, 3, 6, 6],
        "hswish": [0, 0, -1.5 * 1.5 / 6, 0, 1.5 * 4.5 / 6, 3, 6, 7],
        "hsigmoid": [0, 0, 1.5 / 6, 0.5, 4.5 / 6, 1, 1, 1],
    }
    for name, want in expected.items():
        y = x.copy()
        activate_row(y[0], kernels.activation_code(name))
        np.testing.assert_allclose(y[0], want, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("size,k,stride,padding,expected", [
    (224, 3, 2, "tf_same", (112, 0)),  # TF SAME: the odd total padding (1) goes at the end
    (7, 3, 2, "tf_same", (4, 1)),      # total padding 2: one each side
    (14, 5, 2, "tf_same", (7, 1)),     # total 3: 1 before, 2 after
    (224, 3, 2, "symmetric", (112, 1)),
    (7, 5, 2, "symmetric", (4, 2)),
    (1, 3, 1, "tf_same", (1, 1)),
    (1, 5, 2, "symmetric", (1, 2)),
])
def test_conv_output_size(size, k, stride, padding, expected):
    assert kernels.conv_output_size(size, k, stride, padding) == expected


def test_unknown_activation_and_padding_are_rejected():
    with pytest.raises(ValueError, match="unknown activation"):
        kernels.activation_code("gelu")
    with pytest.raises(ValueError, match="unknown padding"):
        kernels.conv_output_size(10, 3, 1, "valid")
