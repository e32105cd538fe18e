"""Every backward pass of tinynet.backprop against central finite differences, in float64, of the
independent forward references in kernels.reference (hypothesis picks shapes, strides, padding, values)."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from tinynet import backprop
from tinynet.kernels import reference
from tinynet.kernels.activation import ACTIVATIONS

KINKS = {None: [], "relu": [0.0], "relu6": [0.0, 6.0], "hswish": [-3.0, 3.0], "hsigmoid": [-3.0, 3.0]}
STEP = 1e-6


def numeric_grad(loss, array):
    """d loss / d array by central differences, one element at a time (``array`` is changed in place and restored)."""
    grad = np.zeros_like(array)
    for i in np.ndindex(array.shape):
        keep = array[i]
        array[i] = keep + STEP
        up = loss()
        array[i] = keep - STEP
        down = loss()
        array[i] = keep
        grad[i] = (up - down) / (2 * STEP)
    return grad


def close(analytic, numeric):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=40, deadline=None)
@given(act=st.sampled_from(list(KINKS)), seed=seeds, scale=st.sampled_from([0.5, 3.0, 8.0]))
def test_activations(act, seed, scale):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((3, 7)) * scale
    assume(all(np.abs(v - k).min() > 1e-3 for k in KINKS[act]))  # finite differences are wrong across a kink
    r = rng.standard_normal(v.shape)
    numeric = numeric_grad(lambda: (reference.activation_ref(v, ACTIVATIONS[act]) * r).sum(), v)
    close(backprop.act_backward(v, act, r), numeric)
    np.testing.assert_allclose(backprop.act_forward(v, act)[0], reference.activation_ref(v, ACTIVATIONS[act]))


@settings(max_examples=20, deadline=None)
@given(seed=seeds, n=st.integers(1, 3), hw=st.integers(1, 3), cin=st.integers(1, 5), cout=st.integers(1, 5))
def test_pointwise(seed, n, hw, cin, cout):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((n, hw, hw, cin)), rng.standard_normal((cin, cout)), rng.standard_normal(cout)
    r = rng.standard_normal((n, hw, hw, cout))
    loss = lambda: (reference.gemm_bias_act_ref(x.reshape(-1, cin), w, b, 0).reshape(r.shape) * r).sum()  # noqa: E731
    dx, dw, db = backprop.pointwise_backward(x, w, r)
    close(dx, numeric_grad(loss, x))
    close(dw, numeric_grad(loss, w))
    close(db, numeric_grad(loss, b))


@settings(max_examples=20, deadline=None)
@given(seed=seeds, shape=st.sampled_from([(2, 5), (1, 3, 3, 4)]))
def test_folded_batchnorm_affine(seed, shape):
    rng = np.random.default_rng(seed)
    x, scale, shift = rng.standard_normal(shape), rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    r = rng.standard_normal(shape)
    loss = lambda: ((x * scale + shift) * r).sum()  # noqa: E731  (the affine is its own obvious reference)
    dx, dscale, dshift = backprop.affine_backward(x, scale, r)
    close(dx, numeric_grad(loss, x))
    close(dscale, numeric_grad(loss, scale))
    close(dshift, numeric_grad(loss, shift))


@settings(max_examples=25, deadline=None)
@given(seed=seeds, n=st.integers(1, 2), h=st.integers(1, 6), w_=st.integers(1, 6), c=st.integers(1, 3),
       k=st.sampled_from([1, 3, 5]), stride=st.sampled_from([1, 2]), pad=st.integers(0, 2))
def test_depthwise(seed, n, h, w_, c, k, stride, pad):
    rng = np.random.default_rng(seed)
    out_hw = ((h + 2 * pad - k) // stride + 1, (w_ + 2 * pad - k) // stride + 1)
    assume(min(out_hw) >= 1)
    x, w, b = rng.standard_normal((n, h, w_, c)), rng.standard_normal((k, k, c)), rng.standard_normal(c)
    r = rng.standard_normal((n, *out_hw, c))
    loss = lambda: (reference.dwconv2d_nhwc_ref(x, w, b, out_hw, stride, pad, pad, 0) * r).sum()  # noqa: E731
    y, cache = backprop.depthwise_forward(x, w, b, stride, pad, pad, out_hw)
    np.testing.assert_allclose(y, reference.dwconv2d_nhwc_ref(x, w, b, out_hw, stride, pad, pad, 0), atol=1e-12)
    dx, dw, db = backprop.depthwise_backward(cache, w, r)
    close(dx, numeric_grad(loss, x))
    close(dw, numeric_grad(loss, w))
    close(db, numeric_grad(loss, b))


@settings(max_examples=20, deadline=None)
@given(seed=seeds, n=st.integers(1, 2), hw=st.integers(1, 3), c=st.integers(1, 4), hidden=st.integers(1, 3))
def test_global_pool_and_squeeze_excite(seed, n, hw, c, hidden):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, hw, hw, c)) * 2
    w1, b1 = rng.standard_normal((c, hidden)), rng.standard_normal(hidden)
    w2, b2 = rng.standard_normal((hidden, c)) * 2, rng.standard_normal(c)
    _, (_, _, z1, _, z2, _) = backprop.se_forward(x, w1, b1, w2, b2)
    assume(np.abs(z1).min() > 1e-3 and np.abs(np.abs(z2) - 3).min() > 1e-3)  # away from the kinks
    r = rng.standard_normal(x.shape)
    loss = lambda: (reference.squeeze_excite_nhwc_ref(x, w1, b1, w2, b2) * r).sum()  # noqa: E731
    _, cache = backprop.se_forward(x, w1, b1, w2, b2)
    for analytic, param in zip(backprop.se_backward(cache, w1, w2, r), (x, w1, b1, w2, b2)):
        close(analytic, numeric_grad(loss, param))
    rp = rng.standard_normal((n, c))
    close(backprop.pool_backward(x.shape, rp), numeric_grad(lambda: (reference.global_avg_pool_nhwc_ref(x) * rp).sum(), x))


def test_a_wrong_backward_is_caught():
    """The check can fail: a relu backward that passes the gradient through everywhere is not the relu's."""
    v = np.array([[-1.0, 2.0]])
    r = np.ones_like(v)
    with pytest.raises(AssertionError):
        close(r, numeric_grad(lambda: (reference.activation_ref(v, ACTIVATIONS["relu"]) * r).sum(), v))
