"""The kernel registry: warm-up and checks see every kernel the plans and head node kinds call."""
from tinynet import warmup
from tinynet.graph import NODE_KINDS
from tinynet.kernel_registry import dispatchers, engine_kernels, plan_steps, tiny_plans
from tinynet.model import create
from tinynet.plan import Plan


def test_every_node_kinds_kernels_are_registered():
    registered = set(engine_kernels().values())
    for name, kind in NODE_KINDS.items():
        for kernel in kind.kernels:
            assert set(dispatchers(kernel)) <= registered, name


def test_tiny_plans_call_every_registered_kernel_and_kind():
    called = {kernel for plan, _ in tiny_plans() for kernel, _ in plan_steps(plan)}
    assert {d for kernel in called for d in dispatchers(kernel)} == set(engine_kernels().values())
    for name, kind in NODE_KINDS.items():
        assert kind.alias is not None or set(kind.kernels) & called, f"no tiny plan binds node kind {name}"


def test_backbone_and_head_kernels_are_both_found():
    names = set(engine_kernels())
    assert {"gemm_bias_act_f32", "expand_dwconv2d_nhwc_f32", "squeeze_excite_nhwc_f32", "fake_quantize_f32"} <= names
    assert {"_blend_rows_f32", "_argmax_rows"} <= names  # found through their Python wrappers


def test_warmup_split_covers_the_registry():
    groups = warmup.split(3, [(name, None) for name in engine_kernels()])
    assert len(groups) == 3 and sorted(name for g in groups for name, _ in g) == sorted(engine_kernels())


def test_a_plan_names_the_kernels_it_calls_and_the_split_keeps_to_them():
    model = create("mobilenet_v1", width=0.25, num_classes=8)
    plan = Plan(model.layers, model.weights, model.padding, (1, 32, 32, 3), 2)  # too small to fuse; no SE in V1
    names = warmup.plan_kernels(plan)
    assert {"conv2d_nhwc_f32", "dwconv2d_nhwc_f32", "gemm_bias_act_f32"} <= names
    assert not names & {"expand_dwconv2d_nhwc_f32", "squeeze_excite_nhwc_f32", "_blend_rows_f32"}
    calls = warmup.plan_calls(plan)
    assert {name for name, _ in calls} == names
    assert all(signature is not None for _, signature in calls)  # every kernel called directly, one signature each
    groups = warmup.split(2, calls)
    assert sorted(map(str, (call for g in groups for call in g))) == sorted(map(str, calls))
