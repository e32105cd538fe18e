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

ALIGN_FLOATS = 16  # 64 bytes: numpy's default 16-byte alignment cost 10-50 % in the depthwise kernels
NO_RESIDUAL = np.empty((0, 0), np.float32)


def aligned_empty(n_floats):
    """A float32 array of ``n_floats`` whose data starts on a 64-byte boundary."""
    raw = np.empty(n_floats + ALIGN_FLOATS, np.float32)
    offset = (-raw.ctypes.data // 4) % ALIGN_FLOATS
    return raw[offset:offset + n_floats]


def gemm_col_tile(n_pixels, n_out, threads):
    """Output channels per GEMM task: all of them when there are enough pixel blocks to share out,
    otherwise split the columns so that each thread gets about two tasks (the classifier at batch 1)."""
    row_blocks = -(-n_pixels // kernels.gemm.ROWS)
    if row_blocks >= 4 * threads:
        return n_out
    tile = -(-n_out // (2 * threads))
    return max(16, -(-tile // 16) * 16)


class Plan:
    """Kernel calls and buffers for one input shape ``(N, H, W, 3)``."""

    def __init__(self, layers, weights, padding, input_shape, threads):
        self.input_shape = tuple(input_shape)
        symbolic, shapes, output = self._trace(layers, padding)
        views = self._allocate(symbolic, shapes)
        self.steps = [self._bind(step, views, weights, threads) for step in symbolic]
        # The step that reads the network input (tensor 0) gets it per call, viewed in this shape.
        self.input_view = {i: (-1, self.input_shape[-1]) if args[3].ndim == 2 else self.input_shape
                           for i, (step, (_, args)) in enumerate(zip(symbolic, self.steps)) if step["src"] == 0}
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
        w, b = weights.get(layer.name + ".w"), weights.get(layer.name + ".b")
        if layer.op in ("conv", "dw"):
            kernel = kernels.conv2d_nhwc_f32 if layer.op == "conv" else kernels.dwconv2d_nhwc_f32
            return kernel, [src, w, b, dst, layer.stride, *step["pads"], act]
        if layer.op in ("pw", "fc"):
            pixels = int(np.prod(dst.shape[:-1]))
            residual = NO_RESIDUAL if step["residual"] is None else views[step["residual"]].reshape(pixels, -1)
            src2d = None if src is None else src.reshape(pixels, -1)
            tile = gemm_col_tile(pixels, layer.cout, threads)
            return kernels.gemm_bias_act_f32, [src2d, w, b, dst.reshape(pixels, -1), act, residual, tile]
        if layer.op == "se":
            n = dst.shape[0]
            scratch = (np.empty((n, layer.cin), np.float32), np.empty((n, layer.squeeze), np.float32),
                       np.empty((n, layer.cin), np.float32))
            names = [f"{layer.name}.{part}.{wb}" for part in ("reduce", "expand") for wb in "wb"]
            return kernels.squeeze_excite_nhwc_f32, [dst, *(weights[n_] for n_ in names), *scratch]
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
