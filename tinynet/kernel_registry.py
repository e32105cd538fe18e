"""The one registry of the engine's Numba kernels, found rather than kept by hand.

The kernels are whatever the plans bind: ``tiny_plans()`` makes one tiny plan per classifier family (every backbone
kernel path, expand + depthwise fused) and one tiny graph with a node of every kind in tinynet.graph.NODE_KINDS.
``engine_kernels()`` collects the Numba dispatchers their steps call, directly or through a plain Python wrapper
(resize_bilinear_nhwc_f32 calls _blend_rows_f32). A new node kind or plan path is therefore registered by being
used; tinynet.warmup compiles and checks exactly these, and tests/test_kernel_registry.py holds NODE_KINDS to it.
The integer kernels (kernels.int8_*) are called by ``IntegerKernelCalls`` until a tiny integer plan binds them.
"""
import functools

import numpy as np
from numba.core.registry import CPUDispatcher

# Classifier families, one per backbone kernel path: V1 (depthwise-separable), V2 (residuals, fused expand +
# depthwise), V3-Large (5x5 depthwise, squeeze-excite, h-swish, hidden FC), V3-Small.
FAMILIES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")
# CPU-seconds to compile one signature on the project machine (tinynet.warmup splits a cold compile between
# processes by them; others count as 1 s): a cold `tinynet classify` compiling in one process, load average 5-8.
COMPILE_SECONDS = {"expand_dwconv2d_nhwc_f32": 8.4, "conv2d_nhwc_f32": 3.0, "squeeze_excite_nhwc_f32": 2.9,
                   "dwconv2d_nhwc_f32": 3.4, "gemm_bias_act_f32": 1.8, "global_avg_pool_nhwc_f32": 0.6,
                   "scale_channels_nhwc_f32": 0.5, "fake_quantize_f32": 0.5, "conv2d_nhwc_u8": 3.0,
                   "dwconv2d_nhwc_u8": 2.0, "gemm_bias_requant_u8": 1.9, "average_pool_u8": 1.0, "add_u8": 0.5}
TINY_INPUT = (1, 32, 32, 3)


def dispatchers(function):
    """The Numba dispatchers ``function`` is, or calls by global name (one level: the kernels' wrappers)."""
    if isinstance(function, CPUDispatcher):
        return [function]
    code, names = getattr(function, "__code__", None), getattr(function, "__globals__", {})
    if code is None:
        return []  # a NumPy ufunc or builtin: nothing to compile
    return [names[n] for n in code.co_names if isinstance(names.get(n), CPUDispatcher)]


def tiny_head(backbone_layers):
    """One node of every kind over a tiny backbone's middle 1x1 conv and its last layer (tinynet.graph)."""
    from tinynet.graph import NODE_KINDS, Node

    pointwise = [layer.name for layer in backbone_layers if layer.op == "pw"]
    deep, last = pointwise[len(pointwise) // 2], backbone_layers[-1].name
    nodes = (Node("t.dw", "dw", (deep,), k=3, stride=2, act="relu6"), Node("t.pw", "pw", ("t.dw",), 8),
             Node("t.conv", "conv", (last,), 8, k=3), Node("t.anchors", "per_anchor", ("t.pw",), options=(("columns", 4),)),
             Node("t.concat", "concat", ("t.anchors", "t.anchors"), options=(("axis", 1),)),
             Node("t.sigmoid", "sigmoid", ("t.concat",)), Node("t.mul", "mul", ("t.concat", "t.sigmoid")),
             Node("t.add", "add", ("t.mul", "t.concat")),
             Node("t.resize", "resize", ("t.conv",), options=(("size", (4, 6)), ("half_pixel_centers", True))),
             Node("t.argmax", "argmax", ("t.resize",)),
             # uint8 TFLite files on the float path (tinynet.detection.tflite_ssd, segmentation.tflite_deeplab)
             Node("t.quantize", "quantize", ("t.pw",), options=(("grid", (0.0, 0.1, 256)),)),
             Node("t.dw2", "dw", (deep,), k=3, options=(("dilation", 2),)),  # the dilated tile variants
             Node("t.dw3", "dw", (deep,), k=3, stride=2, options=(("dilation", 2),)),  # the general loop
             Node("t.conv2", "conv", (last,), 8, k=3, options=(("dilation", 3),)),
             Node("t.pool", "image_pool", ("t.conv2",)))
    missing = set(NODE_KINDS) - {node.kind for node in nodes}
    assert not missing, f"tiny_head has no node of kind {missing}: add one, so that warm-up compiles it"
    return nodes, ("t.add", "t.argmax", "t.dw2", "t.pool")


def tiny_plans():
    """(plan, input) pairs whose steps are every kernel call the engine makes, with its argument types."""
    from tinynet.graph import GraphPlan, backbone_shapes, head_weight_shapes
    from tinynet.model import create
    from tinynet.plan import Plan

    x = np.zeros(TINY_INPUT, np.float32)
    for arch in FAMILIES:
        model = create(arch, width=0.25, num_classes=8)
        grid = {"00.conv": (0.0, 0.1, 256)} if arch == FAMILIES[0] else None  # quantization-aware-trained files
        yield Plan(model.layers, model.weights, model.padding, x.shape, 2, grid, fuse_min_floats=0), x
    layers = model.layers[:-3]  # V3-Small to its head conv
    nodes, outputs = tiny_head(layers)
    shapes = head_weight_shapes(nodes, backbone_shapes(layers, x.shape))
    weights = {**model.weights, **{name: np.full(shape, 0.01, np.float32) for name, shape in shapes.items()}}
    yield GraphPlan(layers, nodes, outputs, weights, model.padding, x.shape, 2), x
    yield IntegerKernelCalls(), None


class IntegerKernelCalls:
    """A stand-in plan whose steps call every integer kernel once per weight kind (s8, s16) and requantization
    arithmetic (fp32, fixed, fixed_simd) on tiny arrays: the signatures the integer path compiles."""

    input_view = {}

    def __init__(self):
        from tinynet.kernels.int8_conv import conv2d_nhwc_u8
        from tinynet.kernels.int8_depthwise import dwconv2d_nhwc_u8
        from tinynet.kernels.int8_depthwise_tile import pack_depthwise
        from tinynet.kernels.int8_elementwise import (add_fixed_u8, add_u8, average_pool_u8, lookup_u8, mul_fixed_u8,
                                                       mul_fp32_u8, spatial_sums_u8)
        from tinynet.kernels.int8_gemm import gemm_bias_requant_u8, pack_gemm_s8, pack_gemm_s16
        from tinynet.kernels.int8_requant import fixed_requant, fixed_simd_requant, fp32_requant
        from tinynet.kernels.int8_resize import resize_bilinear_q11_u8
        from tinynet.kernels.int8_softmax import softmax_table_u8

        x = np.zeros((1, 4, 4, 8), np.uint8)
        self.steps = []
        for rq in (fp32_requant(0.01, 128, 0, 255, 8), fixed_requant(2**30, -7, 128, 0, 255, 8),
                   fixed_simd_requant(2**30, -7, 128, 0, 255, 8)):
            for pack, dtype in ((pack_gemm_s8, np.int8), (pack_gemm_s16, np.int16)):
                wp, bp = pack(np.ones((8, 8), dtype), np.zeros(8, np.int32))
                self.steps.append((gemm_bias_requant_u8, [x.reshape(16, 8), wp, bp, rq, np.empty((16, 8), np.uint8),
                                                          8]))
                wp, bp = pack(np.ones((72, 8), dtype), np.zeros(8, np.int32))
                self.steps.append((conv2d_nhwc_u8, [x, wp, bp, rq, np.empty((1, 2, 2, 8), np.uint8), 3, 3, 2, 1, 0, 0,
                                                    128]))
            self.steps.append((dwconv2d_nhwc_u8, [x, pack_depthwise(np.ones((3, 3, 8))), np.zeros(8, np.int32), rq,
                                                  np.empty((1, 4, 4, 8), np.uint8), 3, 3, 1, 1, 1, 1, 128]))

        rows, gate = x.reshape(16, 8), x.reshape(16, 8)[:1]
        self.steps.append((add_u8, [rows, gate, np.empty((16, 8), np.uint8), 1 << 19, 1 << 20, 1 << 20, 20, 0, 0, 255]))
        self.steps.append((mul_fp32_u8, [rows, rows, np.empty((16, 8), np.uint8), 128, 0, np.float32(0.01), 0, 0, 255]))
        multiplier = (1 << 30, -3)
        self.steps.append((add_fixed_u8, [rows, gate, np.empty((16, 8), np.uint8), 128, 0, multiplier, multiplier,
                                          multiplier, 0, 0, 255]))
        self.steps.append((mul_fixed_u8, [rows, rows, np.empty((16, 8), np.uint8), 128, 0, multiplier, 0, 0, 255]))
        self.steps.append((spatial_sums_u8, [x, np.empty((1, 8), np.int64)]))
        self.steps.append((softmax_table_u8, [rows, np.ones(256, np.float32), np.float32(1 / 256), 0,
                                              np.empty((16, 8), np.uint8)]))
        self.steps.append((lookup_u8, [x.reshape(-1), np.zeros(256, np.uint8), np.empty(128, np.uint8)]))
        self.steps.append((average_pool_u8, [x, np.empty((1, 2, 2, 8), np.uint8), 3, 3, 2, 2, 1, 1, 128, 0, 255]))
        rows_at, weights = np.arange(4), np.zeros(4, np.int32)
        self.steps.append((resize_bilinear_q11_u8, [x, rows_at, rows_at, weights, rows_at, rows_at, weights,
                                                    np.empty((1, 4, 4, 8), np.uint8)]))

    def run(self, x=None):
        for kernel, args in self.steps:
            kernel(*args)


def plan_steps(plan):
    """(kernel, args) of a Plan or GraphPlan, backbone first; the input slot of a Plan's first steps is None."""
    backbone = getattr(plan, "backbone", plan)
    return list(backbone.steps) + (list(plan.steps) if backbone is not plan else [])


@functools.cache
def engine_kernels():
    """{name: Numba dispatcher} of every kernel the tiny plans call."""
    found = {}
    for plan, _ in tiny_plans():
        for kernel, _ in plan_steps(plan):
            for dispatcher in dispatchers(kernel):
                found[dispatcher.__name__] = dispatcher
    return found
