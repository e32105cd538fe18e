"""The graph interpreter: turn concrete layers plus weights into a flat list of kernel calls.

A ``Plan`` is made once per input shape. Making it decides every tensor's shape, assigns the
activation tensors to a few pre-allocated, 64-byte-aligned buffers (a tensor's buffer is reused
once nothing reads it any more), and binds each kernel's arguments. Running it is then one
Python loop over ``(kernel, args)`` pairs with no allocation, apart from copying the result out.

Data flow for one inverted-residual block (N images, H x W, C -> E expanded -> C'):

    x     (N, H, W, C)     block input, kept alive for the residual
    e     (N, H, W, E)     = act(x @ W_expand + b)                   gemm_bias_act_f32
    d     (N, H', W', E)   = act(dwconv(e) + b)                      dwconv2d_nhwc_f32
                           (large e: both in one pass, e never stored: expand_dwconv2d_nhwc_f32)
    d     (N, H', W', E)   *= se_gate(d)          (V3 SE blocks)      squeeze_excite_nhwc_f32
    y     (N, H', W', C')  = d @ W_project + b (+ x)                 gemm_bias_act_f32

Weights are packed for the kernels here (kernels.pack_weights), once per model: plans for other input
shapes, thread counts or concurrent callers share the packed copies (``packed``).

Tensors are named after the layer that writes them ("13.expand", "16.project"): a plan may keep any of them
(``taps``) as well as its final output, for heads that read the backbone at several depths. A tapped tensor is
never fused away or reused for another tensor.
"""
import numba
import numpy as np

from tinynet import kernels
from tinynet.errors import TinynetError
from tinynet.kernels import activation_code, conv_output_size
from tinynet.kernels.fake_quant import fake_quantize_f32
from tinynet.kernels.gemm import NO_RESIDUAL
from tinynet.kernels.gemm_tile import LANES, TILE_ROWS

ALIGN_FLOATS = 16  # 64 bytes: numpy's default 16-byte alignment cost 10-50 % in the depthwise kernels
# Expanded tensors from 200k floats (0.8 MB) on are not stored: fusing V2's 112x112x96 and 56x56x144 and V3-Large's
# 112x112x64 saved 10-200 us each at 1 thread, and the 56x56x72 of V3-Small (block 02) and V3-Large (03, 04) 10-28 us
# per block (sum of step minimums, 300 forwards, load 5-6); 28x28x120-240 (100k-190k) were level or slower.
FUSE_MIN_FLOATS = 200_000
NO_FUSION = float("inf")  # as fuse_min_floats: every expanded tensor stored (the same values, bit for bit)
L2_TILE_FLOATS = 128 * 1024  # activations of one task: 512 KB, half the L2 per core of a Zen 4, a quarter of a Xeon's
TASK_TILES_PER_THREAD = 8


def aligned_empty(n_floats):
    """A float32 array of ``n_floats`` whose data starts on a 64-byte boundary."""
    raw = np.empty(n_floats + ALIGN_FLOATS, np.float32)
    offset = (-raw.ctypes.data // 4) % ALIGN_FLOATS
    return raw[offset:offset + n_floats]


def aligned_zeros(n_floats):
    """Zeros on a 64-byte boundary: the row the depthwise kernels read outside the image."""
    zeros = aligned_empty(n_floats)
    zeros[:] = 0
    return zeros


def kernel_array(array):
    """``array`` as the kernels' argument type: C-contiguous, aligned, writeable, native float32.

    Numba compiles one specialisation per array type (a read-only or unaligned weight from a
    memory-mapped file is another type); keeping one type means warm-up covers every run.
    """
    return np.require(array, np.float32, ["C", "A", "W"])


def gemm_row_tile(n_pixels, k, m, nr, threads):
    """Pixel rows per GEMM task, in whole register tiles.

    - One run of rows per thread: the tasks go row by row (kernels.gemm), so a static split gives each thread
      the rows that the previous layer, split by rows too, wrote on its own core (on this VM data that moves
      between cores goes through L3 at DRAM speed). Few tasks also mean few passes over the weights, which
      matters when they do not fit L2 (V1's 1024x1024: 4 MB, streamed once per task).
    - At most L2_TILE_FLOATS of activations per task, so that they stay in L2 while the weight panels pass; and
      then as many runs of rows as make tasks of equal size, a multiple of ``threads`` of them. (SSDLite's class
      predictor, 400 x 672 -> 546 at 2 threads, was 3 runs of 195, 195 and 10 rows: one thread did three times
      the other's work; 4 runs of 100 rows took it from 1.60 to 1.04 ms.)
    - With more than one thread and weights that fit L2, TASK_TILES_PER_THREAD tasks per thread or more, so that
      the static split is even (49 rows are 7 tiles of 8: 4 + 3 tiles per thread, but 18 + 17 tasks of one tile).
    """
    mr = TILE_ROWS[nr // LANES]
    tiles = -(-n_pixels // mr)
    runs = threads * -(-tiles // (threads * max(1, L2_TILE_FLOATS // (k * mr))))
    per_task = -(-tiles // runs)
    if threads > 1 and k * m <= L2_TILE_FLOATS:
        per_task = max(1, min(per_task, tiles // (threads * TASK_TILES_PER_THREAD)))
    return per_task * mr


def depthwise_groups(rows, channels, threads, window_floats=0):
    """Tasks per output row for kernels.dwconv2d_nhwc_f32 (groups of channels, each swept over all rows before the
    next): the fewest that split ``rows`` output rows (N*Ho) evenly between ``threads``, and whose share of
    ``window_floats`` (the input one output row reads: ((K-1)*dilation+1) rows of W*C) fits L2_TILE_FLOATS, keeping 4
    vectors of channels or more per task. 7 rows on 2 threads are 4 + 3 rows, but 7 + 7 half rows (7x7x960 3x3 at 2
    threads: 24 -> 17 us); LR-ASPP's 33x33x960 5x5 at dilation 2 reads 9 rows, 1.1 MB, and 3 groups of them stay in
    a 1 MB L2 (1 thread: 1.20 -> 1.05 ms)."""
    def cost(g):
        return (window_floats > g * L2_TILE_FLOATS, -(-rows * g // threads) / (rows * g / threads), g)

    return min(range(1, max(1, channels // 64) + 1), key=cost)


def packed(weights, name, cache):
    """(wp, bp): the weights ``name``.w and .b of a GEMM-based layer, packed by kernels.pack_weights, made once per
    ``cache`` (a model's). A KxK conv's (KH, KW, Cin, Cout) weights are packed as (KH*KW*Cin, Cout) rows."""
    if name not in cache:
        w = kernel_array(weights[name + ".w"])
        cache[name] = kernels.pack_weights(w.reshape(-1, w.shape[-1]), kernel_array(weights[name + ".b"]))
    return cache[name]


def pointwise_call(src2d, wp, bp, dst2d, act, residual, threads):
    """The kernel call of a 1x1 conv or fully connected layer with packed weights: (kernel, args)."""
    k = wp.shape[1]
    row_tile = gemm_row_tile(dst2d.shape[0], k, dst2d.shape[1], bp.shape[1], threads)
    return kernels.gemm_bias_act_f32, [src2d, wp, bp, dst2d, act, residual, row_tile]


def depthwise_call(src, w, b, dst, stride, dilation, pads, act, threads):
    """The kernel call of a depthwise conv (pads: top, left): (kernel, args)."""
    window = ((w.shape[0] - 1) * dilation + 1) * src.shape[2] * src.shape[3]
    groups = depthwise_groups(dst.shape[0] * dst.shape[1], dst.shape[3], threads, window)
    zeros = aligned_zeros(src.shape[2] * src.shape[3])
    return kernels.dwconv2d_nhwc_f32, [src, w, b, dst, stride, dilation, *pads, act, groups, zeros]


def fuse_expand_depthwise(steps, shapes, activation_grid, min_floats, kept=frozenset()):
    """Steps with each expand conv whose output feeds only the next depthwise conv, and has at least
    ``min_floats`` elements, merged into it (kernels.expand_dwconv2d_nhwc_f32): the expanded tensor is then
    never stored. Not when the expand's output is snapped to an activation grid or is in ``kept`` (tapped tensor
    ids): it must be stored for those."""
    readers = {t: 1 for t in kept}
    for step in steps:
        for t in {step["src"], step["residual"]} - {None}:
            readers[t] = readers.get(t, 0) + 1
    fused = []
    for step in steps:
        previous = fused[-1] if fused else None
        if (step["layer"].op == "dw" and step["layer"].dilation == 1 and previous is not None and previous["layer"].op == "pw"
                and previous["dst"] == step["src"] and readers[step["src"]] == 1
                and previous["layer"].name not in activation_grid and int(np.prod(shapes[step["src"]])) >= min_floats):
            fused[-1] = {**step, "src": previous["src"], "expand": previous["layer"]}
        else:
            fused.append(step)
    return fused


class Plan:
    """Kernel calls and buffers for one input shape ``(N, H, W, 3)``."""

    def __init__(self, layers, weights, padding, input_shape, threads, activation_grid=None,
                 fuse_min_floats=FUSE_MIN_FLOATS, packed_weights=None, taps=(), fuse_squeeze_excite=True):
        """``activation_grid``: {layer name: (lo, step, levels)} for quantization-aware-trained weights;
        each listed layer's output is snapped to its grid right after the layer (kernels.fake_quant).
        ``fuse_min_floats``: expanded tensors from this size on are not stored (fuse_expand_depthwise); 0 fuses
        every one (tinynet.warmup compiles the fused kernel on tiny models that way).
        ``fuse_squeeze_excite``: squeeze-and-excite layers as one kernel; False: as the global pool, two GEMMs and a
        channel scaling, the kernels a V3 calls anyway but the last (the same values, bit for bit: the fused kernel
        runs the same loops), which a cold kernel cache compiles in a fraction of the fused kernel's time.
        ``packed_weights``: the cache of packed weights to use and fill (``packed``); a model passes its own.
        ``taps``: names of layers whose outputs ``run`` also keeps, readable afterwards with ``tapped``."""
        self.input_shape = tuple(input_shape)
        self.fuse_squeeze_excite = fuse_squeeze_excite
        self._packed = {} if packed_weights is None else packed_weights
        symbolic, shapes, output, tensor_of = self._trace(layers, padding)
        self.taps = {name: self._tap_tensor(name, tensor_of, symbolic) for name in taps}
        kept = frozenset(self.taps.values())
        symbolic = fuse_expand_depthwise(symbolic, shapes, activation_grid or {}, fuse_min_floats, kept)
        views = self._allocate(symbolic, shapes, kept)
        self.steps = []
        self.step_layers = []  # per step, the layer it computes ("02.expand+02.dw" for a fused pair): for profiles
        self.input_view = {}  # step index -> shape of the network input (tensor 0) the step reads, bound per call
        for step in symbolic:
            if step["src"] == 0:
                pointwise = step["layer"].op in ("pw", "fc")
                self.input_view[len(self.steps)] = (-1, self.input_shape[-1]) if pointwise else self.input_shape
            self.steps.extend(self._bind(step, views, weights, threads))
            grid = (activation_grid or {}).get(step["layer"].name)
            if grid is not None:
                lo, q, levels = grid
                dst = views[step["dst"]]
                self.steps.append((fake_quantize_f32, [dst.reshape(-1, dst.shape[-1]), np.float32(lo), np.float32(q), int(levels)]))
            name = step["layer"].name if "expand" not in step else f"{step['expand'].name}+{step['layer'].name}"
            self.step_layers += [name] * (len(self.steps) - len(self.step_layers))
        self.tensors = views  # tensor id -> array view
        self.output = output

    @staticmethod
    def _tap_tensor(name, tensor_of, steps):
        """The tensor id a tap on layer ``name`` reads; refused when a later layer overwrites it in place."""
        if name not in tensor_of:
            raise TinynetError(f"cannot tap {name!r}: no such layer in this plan (layers are named like "
                               f"{next(iter(tensor_of))!r}; `tinynet info MODEL` lists them)")
        tensor = tensor_of[name]
        writers = [step["layer"].name for step in steps if step["dst"] == tensor]
        if writers[-1] != name:
            raise TinynetError(f"cannot tap {name!r}: {writers[-1]!r} overwrites it in place; tap {writers[-1]!r}")
        return tensor

    def _trace(self, layers, padding):
        """Symbolic pass: one step per layer with the ids of the tensors it reads and writes, and
        {layer name: id of the tensor it writes}."""
        n, h, w, _ = self.input_shape
        shapes = {0: self.input_shape}
        tensor_of = {}
        steps, cur, block_input, block = [], 0, 0, None
        for layer in layers:
            if layer.block != block:
                block, block_input = layer.block, cur
            step = {"layer": layer, "src": cur, "dst": len(shapes), "residual": None}
            if layer.op in ("conv", "dw"):
                h, pad_top = conv_output_size(h, layer.k, layer.stride, padding, layer.dilation)
                w, pad_left = conv_output_size(w, layer.k, layer.stride, padding, layer.dilation)
                step["pads"] = (pad_top, pad_left)
                shapes[step["dst"]] = (n, h, w, layer.cout)
            elif layer.op == "pw":
                shapes[step["dst"]] = (n, h, w, layer.cout)
                if layer.residual:
                    step["residual"] = block_input
            elif layer.op == "se":
                step["dst"] = cur  # in place
            elif layer.op in ("pool", "fc"):
                shapes[step["dst"]] = (n, layer.cout)
            steps.append(step)
            cur = tensor_of[layer.name] = step["dst"]
        return steps, shapes, cur, tensor_of

    def _allocate(self, steps, shapes, kept=frozenset()):
        """Give each activation tensor a buffer that no live tensor is using (greedy, in order); the tensors in
        ``kept`` live to the end."""
        last_use = {t: len(steps) for t in kept}
        for i, step in enumerate(steps):
            for t in (step["src"], step["dst"], step["residual"]):
                if t is not None and last_use.get(t, -1) < len(steps):
                    last_use[t] = i
        free, owner, sizes = [], {}, []
        for i, step in enumerate(steps):
            dst = step["dst"]
            if dst not in owner and dst != 0:
                size = int(np.prod(shapes[dst]))
                slot = free.pop() if free else len(sizes)
                if slot == len(sizes):
                    sizes.append(0)
                owner[dst] = slot
                sizes[slot] = max(sizes[slot], size)
            for t in {step["src"], step["residual"]} - {None, dst, 0}:
                if last_use[t] == i:
                    free.append(owner[t])
        buffers = [aligned_empty(s) for s in sizes]
        return {t: buffers[slot][: int(np.prod(shapes[t]))].reshape(shapes[t]) for t, slot in owner.items()}

    def _bind(self, step, views, weights, threads):
        """The kernel calls of one step: [(kernel, args), ...]."""
        layer = step["layer"]
        src = views.get(step["src"])  # None for the input tensor, bound at run time
        dst = views[step["dst"]]
        act = activation_code(layer.act)
        if layer.op == "conv":
            wp, bp = packed(weights, layer.name, self._packed)
            return [(kernels.conv2d_nhwc_f32, [src, wp, bp, dst, layer.k, layer.stride, *step["pads"], act])]
        if layer.op == "dw":
            w, b = (kernel_array(weights[f"{layer.name}.{wb}"]) for wb in "wb")
        if layer.op == "dw" and "expand" in step:
            return [self._expand_depthwise(step, src, dst, w, b, weights, threads)]
        if layer.op == "dw":
            return [depthwise_call(src, w, b, dst, layer.stride, layer.dilation, step["pads"], act, threads)]
        if layer.op in ("pw", "fc"):
            pixels = int(np.prod(dst.shape[:-1]))
            residual = NO_RESIDUAL if step["residual"] is None else views[step["residual"]].reshape(pixels, -1)
            src2d = None if src is None else src.reshape(pixels, -1)
            wp, bp = packed(weights, layer.name, self._packed)
            return [pointwise_call(src2d, wp, bp, dst.reshape(pixels, -1), act, residual, threads)]
        if layer.op == "se":
            return self._squeeze_excite(layer, dst, weights, threads)
        if layer.op == "pool":
            n, height, _, channels = src.shape
            row_sums = aligned_empty(n * height * channels).reshape(n * height, channels)
            return [(kernels.global_avg_pool_nhwc_f32, [src, row_sums, dst])]
        raise ValueError(f"unknown op {layer.op!r}")

    def _expand_depthwise(self, step, x, out, w, b, weights, threads):
        """The call of a fused expand + depthwise step: one band of output rows per thread and image, and a ring of
        KH expanded rows for each of Numba's threads."""
        layer, expand = step["layer"], step["expand"]
        we, be = packed(weights, expand.name, self._packed)
        pool = numba.config.NUMBA_NUM_THREADS
        ring = aligned_empty(pool * layer.k * x.shape[2] * layer.cin).reshape(pool, layer.k, -1)
        bands = -(-threads // out.shape[0])
        return kernels.expand_dwconv2d_nhwc_f32, [x, we, be, activation_code(expand.act), w, b, out, layer.stride,
                                                  *step["pads"], activation_code(layer.act), bands, ring,
                                                  aligned_zeros(x.shape[2] * layer.cin)]

    def _squeeze_excite(self, layer, x, weights, threads):
        """The call of a squeeze-and-excite layer on ``x`` (N, H, W, C), in place, with its scratch buffers."""
        n, height = x.shape[:2]
        row_sums, pooled, hidden, gate = (aligned_empty(rows * c).reshape(rows, c) for rows, c in
                                          ((n * height, layer.cin), (n, layer.cin), (n, layer.squeeze), (n, layer.cin)))
        fcs = [array for part in ("reduce", "expand") for array in packed(weights, f"{layer.name}.{part}", self._packed)]
        if self.fuse_squeeze_excite:
            return [(kernels.squeeze_excite_nhwc_f32, [x, *fcs, row_sums, pooled, hidden, gate])]
        return [(kernels.global_avg_pool_nhwc_f32, [x, row_sums, pooled]),  # kernels.squeeze_excite's steps
                pointwise_call(pooled, *fcs[:2], hidden, activation_code("relu"), NO_RESIDUAL, threads),
                pointwise_call(hidden, *fcs[2:], gate, activation_code("hsigmoid"), NO_RESIDUAL, threads),
                (kernels.scale_channels_nhwc_f32, [x, gate, x])]

    def run(self, x):
        """Run every step on ``x`` (N, H, W, 3) float32 C-contiguous; returns a view of the output."""
        for i, (kernel, args) in enumerate(self.steps):
            if i in self.input_view:
                args = [x.reshape(self.input_view[i]), *args[1:]]
            kernel(*args)
        return self.tensors[self.output]

    def tapped(self, name):
        """The output of tapped layer ``name`` from the last ``run`` (a view, overwritten by the next run)."""
        return self.tensors[self.taps[name]]
