"""The kernel registry: warm-up and checks see every kernel the plans and head node kinds call."""
from tinynet import warmup
from tinynet.graph import NODE_KINDS
from tinynet.kernel_registry import dispatchers, engine_kernels, plan_steps, tiny_plans


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
    groups = warmup.split(3)
    assert sorted(n for g in groups for n in g) == sorted(engine_kernels())
