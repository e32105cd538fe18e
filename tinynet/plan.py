"""The graph interpreter: turn concrete layers plus weights into a flat list of kernel calls.

A ``Plan`` is made once per input shape. Making it decides every tensor's shape, assigns the
activation tensors to a few pre-allocated, 64-byte-aligned buffers (a tensor's buffer is reused
once nothing reads it any more), and binds each kernel's arguments. Running it is then one
Python loop over ``(kernel, args)`` pairs with no allocation, apart from copying the result out.

Data flow for one inverted-residual block (N images, H x W, C -> E expanded -> C'):

    x     (N, H, W, C)     block input, kept alive for the residual
    e     (N, H, W, E)     = act(x @ W_expand + b)                   gemm_bias_act_f32
    d     (N, H', W', E)   = act(dwconv(e) + b)                      dwconv2d_nhwc_f32
    d     (N, H', W', E)   *= se_gate(d)          (V3 SE blocks)      squeeze_excite_nhwc_f32
    y     (N, H', W', C')  = d @ W_project + b (+ x)                 gemm_bias_act_f32
"""
import numpy as np

import kernels
from kernels import activation_code, conv_output_size
from kernels.depthwise import pack_runs
from kernels.fake_quant import fake_quantize_f32
from kernels.gemm import L2_PANEL_FLOATS, NO_RESIDUAL, l2_k_tile
from kernels.gemm_dot import gemm_dot_bias_act_f32

ALIGN_FLOATS = 16  # 64 bytes: numpy's default 16-byte alignment cost 10-50 % in the depthwise kernels
GEMM_ROW_TILE = 32  # pixel rows per GEMM task: the output panel stays in L1 for the epilogue


def aligned_empty(n_floats):
    """A float32 array of ``n_floats`` whose data starts on a 64-byte boundary."""
    raw = np.empty(n_floats + ALIGN_FLOATS, np.float32)
    offset = (-raw.ctypes.data // 4) % ALIGN_FLOATS
    return raw[offset:offset + n_floats]


def aligned_copy(array):
    """``array`` as a C-contiguous float32 copy on a 64-byte boundary (packed weights)."""
    out = aligned_empty(array.size).reshape(array.shape)
    out[...] = array
    return out


def kernel_array(array):
    """``array`` as the kernels' argument type: C-contiguous, aligned, writeable, native float32.

    Numba compiles one specialisation per array type (a read-only or unaligned weight from a
    memory-mapped file is another type); keeping one type means warm-up covers every run.
    """
    return np.require(array, np.float32, ["C", "A", "W"])


def use_dot_gemm(k, m):
    """Few output channels from many inputs (the project layers): reductions over K beat the broadcast
    GEMM, whose vector loop over M is then too short (bench/pointwise.py; bench/README.md)."""
    return m <= 256 and (k >= 3 * m or (k % 16 == 0 and k >= 2 * m))


def gemm_tiles(n_pixels, k, m, threads):
    """(row_tile, col_tile, k_tile) for kernels.gemm_bias_act_f32.

    - Few pixels (the classifier at batch 1): split the output columns so that every thread gets work.
    - Weights larger than L2_PANEL_FLOATS: one row panel per thread, and K in passes whose weights fit L2.
    - Otherwise GEMM_ROW_TILE rows per task and all of K at once.
    """
    if n_pixels < 4 * threads:
        col_tile = -(-m // (2 * threads))
        return n_pixels, max(16, -(-col_tile // 16) * 16), k
    if k * m > L2_PANEL_FLOATS:
        row_tile = -(-n_pixels // threads)
        return -(-row_tile // 4) * 4, m, l2_k_tile(k, m)
    return GEMM_ROW_TILE, m, k


def pointwise_call(src2d, w, b, dst2d, act, residual, threads):
    """The kernel call of a 1x1 conv or fully connected layer: (kernel, args)."""
    pixels, (k, m) = dst2d.shape[0], w.shape
    if use_dot_gemm(k, m) and pixels >= 4:
        return gemm_dot_bias_act_f32, [src2d, aligned_copy(w.T), b, dst2d, act, residual, GEMM_ROW_TILE]
    return kernels.gemm_bias_act_f32, [src2d, w, b, dst2d, act, residual, *gemm_tiles(pixels, k, m, threads)]


class Plan:
    """Kernel calls and buffers for one input shape ``(N, H, W, 3)``."""

    def __init__(self, layers, weights, padding, input_shape, threads, activation_grid=None):
        """``activation_grid``: {layer name: (lo, step, levels)} for quantization-aware-trained weights;
        each listed layer's output is snapped to its grid right after the layer (kernels.fake_quant)."""
        self.input_shape = tuple(input_shape)
        symbolic, shapes, output = self._trace(layers, padding)
        views = self._allocate(symbolic, shapes)
        self.steps = []
        self.input_view = {}  # step index -> shape of the network input (tensor 0) the step reads, bound per call
        for step in symbolic:
            if step["src"] == 0:
                pointwise = step["layer"].op in ("pw", "fc")
                self.input_view[len(self.steps)] = (-1, self.input_shape[-1]) if pointwise else self.input_shape
            self.steps.append(self._bind(step, views, weights, threads))
            grid = (activation_grid or {}).get(step["layer"].name)
            if grid is not None:
                lo, q, levels = grid
                dst = views[step["dst"]]
                self.steps.append((fake_quantize_f32, [dst.reshape(-1, dst.shape[-1]), np.float32(lo), np.float32(q), int(levels)]))
        self.tensors = views  # tensor id -> array view
        self.output = output

    def _trace(self, layers, padding):
        """Symbolic pass: one step per layer with the ids of the tensors it reads and writes."""
        n, h, w, _ = self.input_shape
        shapes = {0: self.input_shape}
        steps, cur, block_input, block = [], 0, 0, None
        for layer in layers:
            if layer.block != block:
                block, block_input = layer.block, cur
            step = {"layer": layer, "src": cur, "dst": len(shapes), "residual": None}
            if layer.op in ("conv", "dw"):
                h, pad_top = conv_output_size(h, layer.k, layer.stride, padding)
                w, pad_left = conv_output_size(w, layer.k, layer.stride, padding)
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
            cur = step["dst"]
        return steps, shapes, cur

    def _allocate(self, steps, shapes):
        """Give each activation tensor a buffer that no live tensor is using (greedy, in order)."""
        last_use = {}
        for i, step in enumerate(steps):
            for t in (step["src"], step["dst"], step["residual"]):
                if t is not None:
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
        layer = step["layer"]
        src = views.get(step["src"])  # None for the input tensor, bound at run time
        dst = views[step["dst"]]
        act = activation_code(layer.act)
        w, b = (kernel_array(weights[name]) if name in weights else None for name in (layer.name + ".w", layer.name + ".b"))
        if layer.op == "conv":
            kernel = kernels.stem_conv_f32 if w.shape[:3] == (3, 3, 3) else kernels.conv2d_nhwc_f32
            return kernel, [src, w, b, dst, layer.stride, *step["pads"], act]
        if layer.op == "dw":
            return kernels.dwconv2d_nhwc_f32, [src, w, b, *pack_runs(w, b), dst, layer.stride, *step["pads"], act]
        if layer.op in ("pw", "fc"):
            pixels = int(np.prod(dst.shape[:-1]))
            residual = NO_RESIDUAL if step["residual"] is None else views[step["residual"]].reshape(pixels, -1)
            src2d = None if src is None else src.reshape(pixels, -1)
            return pointwise_call(src2d, w, b, dst.reshape(pixels, -1), act, residual, threads)
        if layer.op == "se":
            n = dst.shape[0]
            scratch = (np.empty((n, layer.cin), np.float32), np.empty((n, layer.squeeze), np.float32),
                       np.empty((n, layer.cin), np.float32))
            names = [f"{layer.name}.{part}.{wb}" for part in ("reduce", "expand") for wb in "wb"]
            return kernels.squeeze_excite_nhwc_f32, [dst, *(kernel_array(weights[n_]) for n_ in names), *scratch]
        if layer.op == "pool":
            return kernels.global_avg_pool_nhwc_f32, [src, dst]
        raise ValueError(f"unknown op {layer.op!r}")

    def run(self, x):
        """Run every step on ``x`` (N, H, W, 3) float32 C-contiguous; returns a view of the output."""
        for i, (kernel, args) in enumerate(self.steps):
            if i in self.input_view:
                args = [x.reshape(self.input_view[i]), *args[1:]]
            kernel(*args)
        return self.tensors[self.output]
