"""First-run compilation: a plan without the fused expand + depthwise kernel computes the same logits, so a process
that finds that kernel missing from the cache can plan without it (tinynet.warmup.fusion_ready)."""
import numpy as np

import tinynet
from tinynet import model as model_module
from tinynet.kernels import expand_dwconv2d_nhwc_f32
from tinynet.plan import NO_FUSION, Plan


def fused_steps(plan):
    return sum(kernel is expand_dwconv2d_nhwc_f32 for kernel, _ in plan.steps)


def test_an_unfused_plan_gives_the_fused_plans_logits_bit_for_bit():
    model = tinynet.create("mobilenet_v2", width=0.5, num_classes=10)  # 02.expand: 112x112x48, fused by default
    x = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
    fused = Plan(model.layers, model.weights, model.padding, x.shape, 2)
    unfused = Plan(model.layers, model.weights, model.padding, x.shape, 2, fuse_min_floats=NO_FUSION)
    assert fused_steps(fused) > 0 and fused_steps(unfused) == 0
    np.testing.assert_array_equal(unfused.run(x), fused.run(x))


def test_a_model_plans_without_the_fused_kernel_while_it_is_not_ready(monkeypatch):
    monkeypatch.setattr(model_module, "fusion_ready", lambda: False)
    model = tinynet.create("mobilenet_v2", width=0.5, num_classes=10)
    model.forward(np.zeros((1, 224, 224, 3), np.float32))
    (plan,), = model._idle_plans.values()
    assert fused_steps(plan) == 0
