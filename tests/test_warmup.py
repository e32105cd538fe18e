"""First-run compilation: a plan without the fused expand + depthwise kernel computes the same logits, so a process
that finds that kernel missing from the cache can plan without it (tinynet.warmup.fusion_ready)."""
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import tinynet
from conftest import shared_path
from tinynet import model as model_module
from tinynet import warmup
from tinynet.kernel_registry import engine_kernels
from tinynet.quantized import ops
from tinynet.kernels import expand_dwconv2d_nhwc_f32, squeeze_excite_nhwc_f32
from tinynet.plan import NO_FUSION, Plan


def fused_steps(plan):
    return sum(kernel in (expand_dwconv2d_nhwc_f32, squeeze_excite_nhwc_f32) for kernel, _ in plan.steps)


def test_an_unfused_plan_gives_the_fused_plans_logits_bit_for_bit():
    model = tinynet.create("mobilenet_v2", width=0.5, num_classes=10)  # 02.expand: 112x112x48, fused by default
    x = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
    fused = Plan(model.layers, model.weights, model.padding, x.shape, 2)
    unfused = Plan(model.layers, model.weights, model.padding, x.shape, 2, fuse_min_floats=NO_FUSION)
    assert fused_steps(fused) > 0 and fused_steps(unfused) == 0
    np.testing.assert_array_equal(unfused.run(x), fused.run(x))


@pytest.mark.parametrize("arch, batch", [("mobilenet_v3_large", 1), ("mobilenet_v3_small", 3)])
def test_squeeze_excite_as_separate_kernels_gives_the_fused_kernels_logits_bit_for_bit(arch, batch):
    model = tinynet.create(arch, width=0.75, num_classes=10)
    x = np.random.default_rng(1).standard_normal((batch, 160, 160, 3)).astype(np.float32)
    fused = Plan(model.layers, model.weights, model.padding, x.shape, 2)
    unfused = Plan(model.layers, model.weights, model.padding, x.shape, 2, fuse_squeeze_excite=False)
    assert sum(kernel is squeeze_excite_nhwc_f32 for kernel, _ in fused.steps) > 0
    assert sum(kernel is squeeze_excite_nhwc_f32 for kernel, _ in unfused.steps) == 0
    np.testing.assert_array_equal(unfused.run(x), fused.run(x))


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v3_small"])
def test_a_model_plans_without_the_fused_kernels_while_they_are_not_ready(arch, monkeypatch):
    monkeypatch.setattr(model_module, "fusion_ready", lambda: False)
    model = tinynet.create(arch, width=0.5, num_classes=10)
    model.forward(np.zeros((1, 224, 224, 3), np.float32))
    (plan,), = model._idle_plans.values()
    assert fused_steps(plan) == 0


@pytest.mark.parametrize("name, profile", [("coral_test_data/mobilenet_v1_0.25_128_quant.tflite", "litert"),
                                           ("coral_test_data/tf2_mobilenet_v2_1.0_224_ptq.tflite", "litert"),
                                           ("atu_model_zoo/v3-small_224_1.0_uint8.tflite", "reference"),
                                           ("atu_model_zoo/Mobilenet_v3_small_quant.tflite", "litert")])
def test_a_quantized_files_steps_are_the_signatures_its_forward_calls(name, profile, monkeypatch):
    """A cold cache compiles the signatures of Program.steps and no others: they must be the forward's."""
    model = tinynet.load(shared_path("weights", name), profile=profile)
    predicted = set(warmup.plan_calls(model.program))
    called = set()
    for attribute, kernel in vars(ops).copy().items():
        if isinstance(kernel, CPUDispatcher):
            def record(*args, kernel=kernel):
                called.add((kernel.__name__, tuple(numba.typeof(a) for a in args)))
                return kernel(*args)
            monkeypatch.setattr(ops, attribute, record)
    tensor = model.program.input_tensors[0]
    model.program.run([np.full(tensor.shape, 100, tensor.dtype)])
    assert called and called == predicted
    assert len({signature[3] for _, signature in called if len(signature) > 3 and "Requant" in str(signature[3])}) == 1


def test_workers_start_ahead_only_on_a_fresh_cache_and_exit_when_released(tmp_path):
    code = ("from tinynet import warmup; warmup.start_workers(2); workers = list(warmup._waiting_workers); "
            "warmup._release_workers(); print(len(workers), [w.wait(timeout=120) for w in workers])")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert fresh.stdout.split() == ["1", "[0]"]
    warmup.warmup()  # this process's cache: every kernel in it
    assert warmup.uncached([(name, None) for name in engine_kernels()]) == []
    warmup.start_workers(2)
    assert warmup._waiting_workers == []
