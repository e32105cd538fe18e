"""tinynet.plan against a second, plan-free interpreter built from the float64 reference kernels."""
import numba
import numpy as np
import pytest

import tinynet
from reference_forward import reference_forward
from tinynet.plan import Plan


@pytest.mark.parametrize("arch,padding,shape", [
    ("mobilenet_v1", "tf_same", (2, 37, 45, 3)),
    ("mobilenet_v2", "symmetric", (1, 64, 33, 3)),
    ("mobilenet_v3_large", "tf_same", (2, 41, 41, 3)),
    ("mobilenet_v3_small_minimalistic", "symmetric", (1, 32, 70, 3)),
])
def test_plan_matches_reference_interpreter(arch, padding, shape):
    model = tinynet.create(arch, width=0.35, num_classes=11, padding=padding)
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    expected = reference_forward(model, x)
    got = model.forward(x)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs Numba's pool of 2 threads or more")
def test_one_thread_runs_the_tasks_that_two_share():
    """On one thread the squeeze-and-excite and pooling kernels run their tasks in plain loops
    (kernels.threading.one_thread), on two in parallel loops: the same task bodies, so the same logits bit for bit,
    and the reference's."""
    model = tinynet.create("mobilenet_v3_small", width=0.5, num_classes=9)
    x = np.random.default_rng(6).standard_normal((2, 40, 52, 3)).astype(np.float32)
    logits = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            plan = Plan(model.layers, model.weights, model.padding, x.shape, threads)
            logits.append(plan.run(x).copy())
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(logits[0], logits[1])
    expected = reference_forward(model, x)
    np.testing.assert_allclose(logits[0], expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_activation_grid_is_applied_after_each_listed_layer():
    model = tinynet.create("mobilenet_v3_small", width=0.5, num_classes=7)
    convs = [layer.name for layer in model.layers if layer.op in ("conv", "dw", "pw", "fc")][:-1]
    grid = {name: (-4.0, 1 / 32, 256) for name in convs}  # coarse: 32 levels per unit, clamps at -4 and +3.97
    model.meta["activation_grid"] = grid
    model.quantized_activations = True
    x = np.random.default_rng(5).standard_normal((2, 48, 48, 3)).astype(np.float32)
    snapped = model.forward(x)
    expected = reference_forward(model, x, grid)
    plain = reference_forward(model, x)
    scale = np.abs(expected).max()
    # float32 and float64 could round a value that sits on a grid boundary to neighbouring levels, so the
    # bound is looser than plain float parity; measured here: error 1e-7, grid left out 0.043, scale 0.15.
    err = np.abs(snapped - expected).max()
    assert err <= 1e-2 * scale, err
    assert np.abs(plain - expected).max() > 10 * err
    model.quantized_activations = False
    np.testing.assert_allclose(model.forward(x), plain, rtol=0, atol=1e-4 * np.abs(plain).max())


@pytest.mark.parametrize("arch,taps", [
    # 02.expand is 112x112x96 at 224: large enough that the plan would fuse it into 02.dw and never store it
    ("mobilenet_v2", ["02.expand", "13.expand", "17.project", "18.conv"]),
    # 13.expand is the C4 tap of torchvision's SSDLite; 04.se is an in-place layer
    ("mobilenet_v3_large", ["04.se", "13.expand", "16.conv"]),
])
def test_taps_read_tensors_inside_blocks_even_where_the_plan_fuses(arch, taps):
    model = tinynet.create(arch, width=1.0, num_classes=10)
    x = np.random.default_rng(4).standard_normal((1, 224, 224, 3)).astype(np.float32)
    logits = model.forward(x)
    got = model.tap(x, taps)
    expected = reference_forward(model, x, taps=taps)
    assert list(got) == taps
    for name in taps:
        scale = np.abs(expected[name]).max()
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-4 * scale, err_msg=name)
    np.testing.assert_array_equal(model.forward(x), logits)  # the classifier's own plan is untouched


def test_a_tap_that_does_not_exist_or_is_overwritten_in_place_is_refused():
    model = tinynet.create("mobilenet_v3_large", width=0.5, num_classes=10)
    x = np.zeros((1, 64, 64, 3), np.float32)
    with pytest.raises(tinynet.TinynetError, match="no layer named '13.nothing'"):
        model.tap(x, ["13.nothing"])
    with pytest.raises(tinynet.TinynetError, match="'04.se' overwrites it in place"):
        model.tap(x, ["04.dw", "05.expand"])
    alone = model.tap(x, ["04.dw"])["04.dw"]  # the plan then ends at 04.dw: nothing overwrites it
    assert alone.shape[-1] == next(layer.cout for layer in model.layers if layer.name == "04.dw")
