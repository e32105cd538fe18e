"""First-run compilation: a plan without the fused expand + depthwise kernel computes the same logits, so a process
that finds that kernel missing from the cache can plan without it (tinynet.warmup.fusion_ready)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import tinynet
from conftest import shared_path
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


def test_an_integer_program_names_the_requantizations_its_kernels_take():
    """A cold cache compiles, of each integer kernel, the signatures of the file's requantization arithmetic only."""
    from tinynet.warmup import plan_kernels

    xnnpack = tinynet.load(shared_path("weights", "coral_test_data", "mobilenet_v1_0.25_128_quant.tflite")).program
    optimized = tinynet.load(shared_path("weights", "atu_model_zoo", "Mobilenet_v3_small_quant.tflite")).program
    assert (xnnpack.kernels, xnnpack.requantizations) == ("xnnpack", {"Fp32Requant"})
    assert (optimized.kernels, optimized.requantizations) == ("optimized", {"FixedSimdRequant"})
    assert {"gemm_bias_requant_u8", "dwconv2d_nhwc_u8", "add_fixed_u8", "mul_fixed_u8"} <= plan_kernels(optimized)


@pytest.mark.slow
def test_a_cold_compile_of_one_requantization_compiles_its_signatures_only(tmp_path):
    code = ("from tinynet.warmup import compile_kernels; "
            "from tinynet.kernels.int8_gemm import gemm_bias_requant_u8 as k; "
            "compile_kernels({'gemm_bias_requant_u8'}, {'FixedSimdRequant'}); "
            "print(sorted(str(s[3]).split('(')[0] for s in k.signatures))")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "['FixedSimdRequant', 'FixedSimdRequant']"  # s8 and s16 weights
