"""--fine-tune: the float64 tail against the model's own forward, its gradients against finite differences
(hypothesis picks how many blocks, so residuals, depthwise, SE and hardswish are crossed), and a real run."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynet
from tinynet import fine_tune, train as training
from tinynet.errors import TinynetError

from test_train import SMALL_BASE, small_folder  # noqa: F401  (the store fixture comes with it)
from test_train import store  # noqa: F401
from conftest import shared_path

MODEL = tinynet.create("mobilenet_v3_small", width=0.5, num_classes=4, seed=3)
IMAGE = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)


def tail_input(n_blocks):
    tap, layers = fine_tune.tail_of(MODEL, n_blocks)
    return MODEL.tap(IMAGE, [tap])[tap].astype(np.float64), fine_tune.Tail(layers, MODEL.weights, MODEL.padding)


@pytest.mark.parametrize("n_blocks", [1, 3, 4, 6])
def test_tail_forward_is_the_models_own(n_blocks):
    x, tail = tail_input(n_blocks)
    np.testing.assert_allclose(tail.forward(x)[0], MODEL.classifier_input(IMAGE), rtol=1e-3, atol=1e-3)


@settings(max_examples=6, deadline=None)
@given(n_blocks=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_tail_gradients_match_finite_differences(n_blocks, seed):
    x, tail = tail_input(n_blocks)
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(tail.forward(x)[0].shape)
    features, tape = tail.forward(x)
    grads = tail.backward(tape, r)
    assert set(grads) == set(tail.params)
    for name, param in tail.params.items():
        for _ in range(2):  # two entries of each parameter
            i = tuple(rng.integers(0, s) for s in param.shape)
            keep = param[i]
            param[i] = keep + 1e-6
            up = (tail.forward(x)[0] * r).sum()
            param[i] = keep - 1e-6
            down = (tail.forward(x)[0] * r).sum()
            param[i] = keep
            assert grads[name][i] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-6), name


def test_fine_tune_bounds_are_one_line_errors():
    with pytest.raises(TinynetError, match="fine_tune must be between 1 and"):
        fine_tune.tail_of(MODEL, 99)


def test_fine_tuned_weights_are_stored_and_lower_the_loss(tmp_path):
    data = small_folder(tmp_path / "data", per_class=3)
    base = tinynet.load(shared_path("weights", *SMALL_BASE))
    result = training.train(data, base, out="tuned", fine_tune=1, augment=False, l2=0.1, progress=False)
    info = result.report["fit"]["fine_tune"]
    assert info["loss_after"] < info["loss_before"]
    stored = tinynet.load("tuned")
    assert info["layers"] == ["13.dw", "13.pw", "14.pool"]  # V1's last block with weights, and the pooling
    tuned = [n for n in info["layers"][:2] if not np.array_equal(stored.weights[f"{n}.w"], base.weights[f"{n}.w"])]
    assert tuned == ["13.dw", "13.pw"] and stored.meta["training"]["fine_tune"] == 1
