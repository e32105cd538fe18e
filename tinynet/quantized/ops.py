"""One class per TFLite operator of the integer path: prepared once at load, called once per forward.

    op = OPERATORS[name](tflite_operator, tensors, kernels)   # constants folded, requantization precomputed
    op(values)                                                  # values: tensor index -> array, output added
    step = op.bind(workspace); step(values)                     # the same, its buffers and arguments bound once

Storage: every quantized activation is a uint8 array. An int8 tensor is stored plus 128 (what XNNPACK does with
an xor of 0x80) with its zero point moved by 128 too, so q - zero_point, the only thing arithmetic reads, is the
file's; one set of kernels serves uint8 and int8 graphs. ``Quant`` describes a stored tensor.

Which arithmetic an operator uses is its kernel set, one of KERNEL_SETS, named after what LiteRT runs:
"xnnpack"    LiteRT's default on x86 (../shared/notes, section 1): XNNPACK for CONV_2D, DEPTHWISE_CONV_2D,
             FULLY_CONNECTED, ADD, SUB, MUL, MEAN, PAD, QUANTIZE, DEQUANTIZE; TFLite's builtin kernels for
             HARD_SWISH, AVERAGE_POOL_2D, SOFTMAX, LOGISTIC, CONCATENATION with rescaling, RESIZE_BILINEAR, ARG_MAX.
"optimized"  TFLite's optimized builtin kernels, what LiteRT runs without its delegate (and so for a file the
             delegate refuses: ``refusal`` says why XNNPACK would).
"reference"  TFLite's builtin reference kernels (OpResolverType.BUILTIN_REF).
"""
import ctypes
import ctypes.util
from dataclasses import dataclass

import numba
import numpy as np

from tinynet.errors import UnsupportedModelError
from tinynet.kernels import conv_output_size
from tinynet.kernels.int8_conv import conv2d_nhwc_u8
from tinynet.kernels.int8_depthwise import dwconv2d_nhwc_u8
from tinynet.kernels.int8_depthwise_tile import pack_depthwise
from tinynet.kernels.int8_elementwise import (add_fixed_u8, add_u8, average_pool_u8, lookup_u8, mul_fixed_u8,
                                               mul_fp32_u8, spatial_sums_u8)
from tinynet.kernels.int8_gemm import aligned_empty, gemm_bias_requant_u8, pack_gemm_s8, pack_gemm_s16
from tinynet.kernels.int8_requant import fixed_requant, fixed_simd_requant, fp32_requant
from tinynet.kernels.int8_resize import resize_bilinear_q11_u8
from tinynet.kernels.int8_softmax import softmax_table_u8
from tinynet.plan import gemm_row_tile
from tinynet.quantized import arithmetic as qa

f32 = np.float32
KERNEL_SETS = ("xnnpack", "optimized", "reference")
XNNPACK_MAX_REQUANTIZATION_SCALE = 256.0
# Elements the optimized x86 kernels handle per SIMD step, found by testing against LiteRT without its delegate
# (10 photos: 0 differing outputs with these, 51 with 16 for DEQUANTIZE): the remainder runs scalar code,
# which rounds differently.
MEAN_SIMD_LANES = 16
DEQUANTIZE_SIMD_LANES = 8  # convolution-nhwc.c refuses scales at or above it
ACTIVATION_RANGES = {0: (-np.inf, np.inf), 1: (0.0, np.inf), 2: (-1.0, 1.0), 3: (0.0, 6.0)}  # fused activation
STORED_RANGE = (0, 255)
_LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
_LIBM.expf.restype, _LIBM.expf.argtypes = ctypes.c_float, [ctypes.c_float]


@dataclass(frozen=True)
class Quant:
    """A quantized activation as stored: real = scale * (stored - zero_point); ``signed`` for the file's int8."""
    scale: np.float32
    zero_point: int  # stored zero point: the file's, plus 128 for int8 tensors
    signed: bool

    @classmethod
    def of(cls, tensor):
        if tensor.dtype not in (np.uint8, np.int8) or tensor.scale.size != 1:
            return None
        signed = tensor.dtype == np.int8
        zero_point = int(tensor.zero_point[0]) if tensor.zero_point.size else 0
        return cls(f32(tensor.scale[0]), zero_point + (128 if signed else 0), signed)

    @property
    def file_zero_point(self):
        return self.zero_point - (128 if self.signed else 0)


def _activations(ndim):
    """An empty uint8 array of ``ndim`` dimensions: of the type of the activations the kernels take."""
    return np.empty((0,) * ndim, np.uint8)


def to_stored(q, signed):
    """The file's uint8/int8 values as stored (uint8): int8 + 128 is its two's complement bits with the top one
    flipped."""
    return np.asarray(q, np.int8).view(np.uint8) ^ np.uint8(0x80) if signed else np.asarray(q, np.uint8)


def from_stored(v, signed):
    return (v ^ np.uint8(0x80)).view(np.int8) if signed else v


class Operator:
    """Base: reads tensors' quantization, names inputs/outputs; subclasses prepare in ``setup`` and run in ``run``."""

    refusal = None  # why XNNPACK would refuse this operator (kernel set "xnnpack" only), or None

    def kernel_calls(self):
        """(kernel, arguments) per Numba kernel this operator calls, the arguments of the types its step passes
        (empty arrays where it passes activations): tinynet.warmup compiles just these signatures on a cold cache."""
        return ()

    def __init__(self, op, tensors, kernels):
        self.op, self.tensors, self.kernels = op, tensors, kernels
        self.inputs, self.output = op.inputs, op.outputs[0]
        # what ``run`` takes: the computed inputs (not the constants setup folded in, nor absent optional ones)
        self.computed_inputs = tuple(i for i in op.inputs if i >= 0 and tensors[i].data is None)
        self.setup()

    def tensor(self, slot):
        return self.tensors[self.inputs[slot]]

    def quant(self, index):
        q = Quant.of(self.tensors[index])
        if q is None:
            raise UnsupportedModelError(f"{self.op.describe()}: tensor {index} '{self.tensors[index].name}' is not "
                                        "a per-tensor uint8/int8 activation")
        return q

    def fail(self, message):
        raise UnsupportedModelError(f"{self.op.describe()}: {message}")

    def activation_bounds(self, out):
        """(lo, hi) stored bounds of the fused activation, as the kernel set computes them."""
        lo, hi = ACTIVATION_RANGES.get(self.op.options.get("activation", 0), (None, None))
        if lo is None:
            self.fail(f"fused activation {self.op.options['activation']} is not one tinynet runs")
        if self.kernels == "xnnpack":
            return (qa.quantize_bound(lo, out.scale, out.zero_point, *STORED_RANGE),
                    qa.quantize_bound(hi, out.scale, out.zero_point, *STORED_RANGE))
        # TFLite's CalculateActivationRangeQuantized: zp + TfLiteRound(f / scale), within the type's range.
        q = lambda f: out.zero_point + int(qa.round_half_away(f32(f) / out.scale))
        return max(STORED_RANGE[0], q(lo) if np.isfinite(lo) else -1 << 30), \
            min(STORED_RANGE[1], q(hi) if np.isfinite(hi) else 1 << 30)

    def __call__(self, values, workspace=None):
        self.bind(workspace)(values)

    def bind(self, workspace):
        """A function of ``values`` that runs the operator, taking its output arrays from ``workspace`` (see
        ``buffer``): what Program.run calls, made once per workspace and thread count. Operators that call a kernel
        bind its arguments here; the others call ``run`` on their inputs."""
        def step(values):
            self.workspace = workspace
            values[self.output] = self.run(*[values[i] for i in self.computed_inputs])
        return step

    def buffer(self, shape):
        """The uint8 output array of ``shape``: from the caller's workspace (a dict one forward at a time uses,
        reused by the next forward of the same input size), else a new one."""
        if self.workspace is None:
            return aligned_empty(shape, np.uint8)
        key = (id(self), shape)
        if key not in self.workspace:
            self.workspace[key] = aligned_empty(shape, np.uint8)
        return self.workspace[key]


# --- convolutions: XNNPACK (litert) or TFLite reference, the same int32 accumulator ------------------------

class _Convolution(Operator):
    """acc = bias + sum (x - zp_x) * (w - zp_w); requantized per output channel.

    Every kernel set runs the integer kernels of tinynet.kernels.int8_* (VNNI where the CPU has it), requantizing as
    they store, in its arithmetic: fp32 ("xnnpack"), TFLite's fixed point ("reference") or the fixed point of the
    optimized kernels' SIMD lanes, which every output channel takes ("optimized"). Strides that differ along H and
    W, which those kernels do not take, accumulate in NumPy (float64 matrix products, exact below 2**53) and
    requantize in tinynet.quantized.arithmetic."""

    def setup(self):
        x_q, out_q = self.quant(self.inputs[0]), self.quant(self.output)
        w_t = self.tensor(1)
        if w_t.data is None or w_t.dtype not in (np.uint8, np.int8):
            self.fail("its weights are not a uint8/int8 constant")
        w = w_t.data.astype(np.int32) - (w_t.zero_point.reshape(self._channel_shape(w_t)) if w_t.zero_point.size > 1
                                         else (int(w_t.zero_point[0]) if w_t.zero_point.size else 0))
        w_scale = w_t.scale.astype(f32)
        self.weights = self.runtime_weights(w.astype(np.int16))  # layout the accumulation wants
        cout = self.cout
        bias = self.tensor(2).data.astype(np.int64) if len(self.inputs) > 2 and self.inputs[2] >= 0 else np.zeros(cout, np.int64)
        self.bias = bias
        self.x_zero_point = x_q.zero_point
        self.lo, self.hi = self.activation_bounds(out_q)
        self.out_zero_point = out_q.zero_point
        scale = np.broadcast_to(w_scale, (cout,))
        self.signed_weights = w_t.dtype == np.int8
        if self.kernels == "xnnpack":
            self.scale = qa.xnnpack_scale(x_q.scale, scale, out_q.scale).astype(f32)
            if self.scale.max() >= XNNPACK_MAX_REQUANTIZATION_SCALE:
                self.refusal = f"requantization scale {self.scale.max():.4g} >= {XNNPACK_MAX_REQUANTIZATION_SCALE:g}"
            self.rq = fp32_requant(self.scale, self.out_zero_point, self.lo, self.hi, cout)
        else:
            if w_scale.size == 1:  # GetQuantizedConvolutionMultipler: the product in float32, then double
                real = np.float64(x_q.scale * w_scale[0]) / np.float64(out_q.scale) + np.zeros(cout)
            else:  # per channel: double(input_scale) * double(filter_scale[c]) / double(output_scale)
                real = np.float64(x_q.scale) * scale.astype(np.float64) / np.float64(out_q.scale)
            self.multiplier, self.shift = (np.array(v, np.int64) for v in zip(*map(qa.quantize_multiplier, real)))
            requant = fixed_simd_requant if self.kernels == "optimized" else fixed_requant
            self.rq = requant(self.multiplier, self.shift, self.out_zero_point, self.lo, self.hi, cout)
        # The kernels' bias folds in the input zero point: bias' = bias - zp_x * sum_k w (border taps read zp_x).
        self.folded_bias = (self.bias - self.x_zero_point * self.weights.reshape(-1, cout).astype(np.int64)
                            .sum(axis=0)).astype(np.int32)

    def _channel_shape(self, w_t):
        shape = [1] * w_t.data.ndim
        shape[w_t.quantized_dimension] = -1
        return shape

    def requantize(self, acc):
        if self.kernels == "xnnpack":
            y = qa.requantize_fp32(acc, self.scale, self.out_zero_point, self.lo, self.hi)
        else:
            y = qa.requantize_fixed(acc, self.multiplier, self.shift, self.out_zero_point, self.lo, self.hi,
                                    simd=self.kernels == "optimized")
        return y.astype(np.uint8)

    def spatial(self, kh, kw):
        """(out_h, out_w, (top, bottom, left, right)) of the (N, H, W, C) input tensor: the file's SAME or VALID
        padding, or the amounts of a PAD folded into this operator (tinynet.quantized.program.fold_pads)."""
        shape = self.tensor(0).shape
        o = self.op.options
        explicit = o.get("explicit_padding")
        sizes, pads = [], []
        for axis, (size, k, s, d) in enumerate(((shape[1], kh, o["stride_h"], o.get("dilation_h", 1)),
                                                (shape[2], kw, o["stride_w"], o.get("dilation_w", 1)))):
            if explicit is not None:
                before, after = explicit[2 * axis:2 * axis + 2]
                out = (size + before + after - (k - 1) * d - 1) // s + 1
            elif o["padding"] == 0:  # SAME
                out, before = conv_output_size(size, k, s, "tf_same", d)
                after = max((out - 1) * s + (k - 1) * d + 1 - size - before, 0)
            else:
                out, before, after = (size - (k - 1) * d - 1) // s + 1, 0, 0
            sizes.append(out)
            pads += [before, after]
        return sizes[0], sizes[1], tuple(pads)

    def strides(self):
        """(stride, dilation) when they are the same along H and W, as the integer kernels take them, else None."""
        o = self.op.options
        stride, dilation = (o["stride_h"], o["stride_w"]), (o.get("dilation_h", 1), o.get("dilation_w", 1))
        return (stride[0], dilation[0]) if stride[0] == stride[1] and dilation[0] == dilation[1] else None

    def packed(self, w2d):
        """(wp, bp) of (K, M) weights for kernels.int8_gemm."""
        if self.signed_weights:
            return pack_gemm_s8(w2d.astype(np.int8), self.folded_bias)
        return pack_gemm_s16(w2d, self.folded_bias)

    def taps(self, x, kh, kw):
        """Yield ((i, j), (N, OH, OW, C) int32 view of x - zp_x at tap i, j), borders padded with zp_x."""
        o = self.op.options
        sh, sw, dh, dw = o["stride_h"], o["stride_w"], o.get("dilation_h", 1), o.get("dilation_w", 1)
        oh, ow, (top, bottom, left, right) = self.spatial(kh, kw)
        padded = np.pad(x.astype(np.int32) - self.x_zero_point, ((0, 0), (top, bottom), (left, right), (0, 0)))
        for i in range(kh):
            for j in range(kw):
                yield (i, j), padded[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]


class Conv2d(_Convolution):
    def runtime_weights(self, w):  # (O, KH, KW, I) -> (KH, KW, I, O)
        self.cout = w.shape[0]
        return np.ascontiguousarray(w.transpose(1, 2, 3, 0))

    def setup(self):
        super().setup()
        kh, kw, cin, cout = self.weights.shape
        self.fast = self.strides() is not None
        oh, ow, (top, _, left, _) = self.spatial(kh, kw)
        self.out_shape = (self.tensor(0).shape[0], oh, ow, cout)
        if self.fast:
            self.wp, self.bp = self.packed(self.weights.reshape(kh * kw * cin, cout))
            self.pointwise = kh == kw == 1 and self.strides() == (1, 1)
            self.gemm = Gemm(self.out_shape[0] * oh * ow, cin, cout, self.wp.shape[2])
            self.conv_args = (kh, kw, *self.strides(), top, left, self.x_zero_point)  # conv2d_nhwc_u8's after out

    def kernel_calls(self):
        if not self.fast:
            return ()
        if self.pointwise:
            return self.gemm.calls(self.wp, self.bp, self.rq)
        return ((conv2d_nhwc_u8, (_activations(4), self.wp, self.bp, self.rq, _activations(4), *self.conv_args)),)

    def bind(self, workspace):
        if not self.fast:
            return super().bind(workspace)
        self.workspace = workspace
        out, x_index, output = self.buffer(self.out_shape), self.computed_inputs[0], self.output
        if self.pointwise:
            x_shape, args = self.gemm.x_shape, self.gemm.arguments(self.wp, self.bp, self.rq, out)

            def step(values):
                gemm_bias_requant_u8(values[x_index].reshape(x_shape), *args)
                values[output] = out
        else:
            args = (self.wp, self.bp, self.rq, out, *self.conv_args)

            def step(values):
                conv2d_nhwc_u8(values[x_index], *args)
                values[output] = out
        return step

    def run(self, x, *_):  # strides the kernels do not take
        kh, kw = self.weights.shape[:2]
        acc = None
        for (i, j), tap in self.taps(x, kh, kw):
            part = tap.astype(np.float64) @ self.weights[i, j].astype(np.float64)  # exact: |sums| < 2**53
            acc = part if acc is None else acc + part
        return self.requantize(acc.astype(np.int64) + self.bias)


class Gemm:
    """The shapes of a GEMM of ``rows`` x ``k`` activations by k x ``m`` weights in panels ``nr`` wide
    (tinynet.kernels.int8_gemm), set at load."""

    def __init__(self, rows, k, m, nr):
        self.x_shape, self.out_shape, self.nr = (rows, k), (rows, m), nr

    def tile(self):
        """Rows per task at the current thread count (tinynet.plan.gemm_row_tile)."""
        return gemm_row_tile(*self.x_shape, self.out_shape[1], self.nr, numba.get_num_threads())

    def arguments(self, wp, bp, rq, out):
        """gemm_bias_requant_u8's arguments after x, for the current thread count."""
        return wp, bp, rq, out.reshape(self.out_shape), self.tile()

    def calls(self, wp, bp, rq):
        """The kernel call's types, as Operator.kernel_calls gives them."""
        return ((gemm_bias_requant_u8, (_activations(2), wp, bp, rq, _activations(2), self.tile())),)


class DepthwiseConv2d(_Convolution):
    def runtime_weights(self, w):  # (1, KH, KW, C * multiplier)
        self.cout = w.shape[3]
        return np.ascontiguousarray(w[0])

    def setup(self):
        super().setup()
        self.fast = self.strides() is not None
        kh, kw = self.weights.shape[:2]
        oh, ow, (top, _, left, _) = self.spatial(kh, kw)
        self.out_shape = (self.tensor(0).shape[0], oh, ow, self.cout)
        self.depth_multiplier = self.cout // self.tensor(0).shape[3]  # outputs per input channel, in order
        if self.fast:
            self.packed_weights = pack_depthwise(self.weights)
            self.conv_args = (kh, kw, *self.strides(), top, left, self.x_zero_point)  # dwconv2d_nhwc_u8's after out

    def kernel_calls(self):
        return ((dwconv2d_nhwc_u8, (_activations(4), self.packed_weights, self.folded_bias, self.rq, _activations(4),
                                    *self.conv_args)),) if self.fast else ()

    def bind(self, workspace):
        if not self.fast:
            return super().bind(workspace)
        self.workspace = workspace
        out, x_index, output, repeats = self.buffer(self.out_shape), self.computed_inputs[0], self.output, \
            self.depth_multiplier
        args = (self.packed_weights, self.folded_bias, self.rq, out, *self.conv_args)

        def step(values):
            x = values[x_index] if repeats == 1 else np.repeat(values[x_index], repeats, axis=3)
            dwconv2d_nhwc_u8(np.ascontiguousarray(x), *args)
            values[output] = out
        return step

    def run(self, x, *_):  # strides the kernels do not take
        if self.depth_multiplier != 1:
            x = np.repeat(x, self.depth_multiplier, axis=3)
        kh, kw = self.weights.shape[:2]
        acc = self.bias.copy()
        for (i, j), tap in self.taps(x, kh, kw):
            acc = acc + tap * self.weights[i, j].astype(np.int64)
        return self.requantize(acc)


class FullyConnected(_Convolution):
    def runtime_weights(self, w):  # (O, I) -> (I, O)
        self.cout = w.shape[0]
        return np.ascontiguousarray(w.T)

    def setup(self):
        super().setup()
        self.wp, self.bp = self.packed(self.weights)
        k = self.weights.shape[0]
        self.gemm = Gemm(int(np.prod(self.tensor(0).shape)) // k, k, self.cout, self.wp.shape[2])
        self.out_shape = self.tensors[self.output].shape

    def kernel_calls(self):
        return self.gemm.calls(self.wp, self.bp, self.rq)

    def bind(self, workspace):
        self.workspace = workspace
        out, x_index, output = self.buffer(self.out_shape), self.computed_inputs[0], self.output
        x_shape, args = self.gemm.x_shape, self.gemm.arguments(self.wp, self.bp, self.rq, out)

        def step(values):
            gemm_bias_requant_u8(np.ascontiguousarray(values[x_index].reshape(x_shape)), *args)
            values[output] = out
        return step


# --- elementwise ------------------------------------------------------------------------------------------

class _Binary(Operator):
    """Two inputs, either may be a constant (broadcast). With one input a constant scalar, the output is a function
    of one byte: a table of ``run`` over the 256 values, built at load (exact: the same arithmetic)."""

    def setup(self):
        self.a_q, self.b_q, self.out_q = (self.quant(i) for i in (*self.inputs[:2], self.output))
        self.constants = {slot: to_stored(self.tensor(slot).data, Quant.of(self.tensor(slot)).signed)
                          for slot in (0, 1) if self.tensor(slot).data is not None}
        self.lo, self.hi = self.activation_bounds(self.out_q)
        self.prepare()
        self.table = None
        if len(self.constants) == 1 and next(iter(self.constants.values())).size == 1:
            (slot, constant), = self.constants.items()
            every = np.arange(256, dtype=np.int64)
            a, b = (constant.astype(np.int64), every) if slot == 0 else (every, constant.astype(np.int64))
            self.table = self.run(a.reshape(-1), b.reshape(-1)).astype(np.uint8)
            self.variable = self.inputs[1 - slot]
        shapes = [self.tensor(slot).shape for slot in (0, 1)]
        self.shape = np.broadcast_shapes(*shapes)
        rows = _as_rows(*(np.zeros(shape, np.uint8) for shape in shapes))  # the kernels' operand shapes, at load
        self.row_shapes = None if rows is None else tuple(r.shape for r in rows)
        self.b_expands = rows is not None and rows[1].size != np.prod(shapes[1])  # a scalar b repeated along C

    def kernel_calls(self):
        if self.table is not None:
            return _lookup_calls(self)
        if self.row_shapes is None:
            return ()
        calls = []
        self.kernel(_activations(2), _activations(2), _activations(2), record=calls.append)
        return tuple(calls)

    def bind(self, workspace):
        self.workspace = workspace
        output, constants, inputs = self.output, self.constants, self.inputs[:2]
        if self.table is not None:
            return _bind_lookup(self, self.variable, self.shape)
        if self.row_shapes is None:  # a broadcast the kernels do not take: NumPy
            def step(values):
                a, b = (constants[s] if s in constants else values[inputs[s]] for s in (0, 1))
                values[output] = self.run(a.astype(np.int64), b.astype(np.int64)).astype(np.uint8)
            return step
        out = self.buffer(self.shape)  # the kernel set's arithmetic as a Numba kernel (int8_elementwise)
        out_rows, (a_shape, b_shape), expands = out.reshape(self.row_shapes[0]), self.row_shapes, self.b_expands

        def step(values):
            a, b = (constants[s] if s in constants else values[inputs[s]] for s in (0, 1))
            self.kernel(*(_as_rows(a, b) if expands else (a.reshape(a_shape), b.reshape(b_shape))), out_rows)
            values[output] = out
        return step


def _as_rows(a, b):
    """(a, b) as the elementwise kernels take them: (rows, C) each, or b one row broadcast; None for other
    broadcasts (then NumPy runs the operator). An operator whose broadcast input comes first is not swapped:
    its arithmetic is not symmetric in general (SUB)."""
    if a.shape == b.shape:
        channels = a.shape[-1] if a.ndim else 1
        return a.reshape(-1, channels), b.reshape(-1, channels)
    channels = a.shape[-1] if a.ndim else 1
    if b.size in (1, channels) and a.size >= b.size and b.ndim <= a.ndim and \
            all(d == 1 for d in b.shape[:-1]) and np.broadcast_shapes(a.shape, b.shape) == a.shape:
        return a.reshape(-1, channels), np.ascontiguousarray(np.broadcast_to(b.reshape(-1), (channels,)))[None]
    return None


class Add(_Binary):
    def prepare(self):
        if self.kernels == "xnnpack":  # XNNPACK's integer add: acc = bias + a * am + b * bm, >> shift
            self.am, self.bm, self.shift = qa.xnnpack_add_params(self.a_q.scale, self.b_q.scale, self.out_q.scale)
            self.add_bias = (1 << (self.shift - 1)) - self.am * self.a_q.zero_point - self.bm * self.b_q.zero_point
        else:  # TFLite's reference add: inputs moved to 2**20 * twice the larger scale, summed, rescaled
            twice_max = 2 * max(float(self.a_q.scale), float(self.b_q.scale))
            self.multipliers = [qa.quantize_multiplier(float(q.scale) / twice_max) for q in (self.a_q, self.b_q)]
            self.out_multiplier = qa.quantize_multiplier(twice_max / ((1 << 20) * float(self.out_q.scale)))

    def kernel(self, a, b, out, record=None):
        """Run the kernel set's kernel on (rows, C) operands, or give ``record`` the (kernel, arguments) instead."""
        if self.kernels == "xnnpack":
            call = add_u8, (a, b, out, self.add_bias, self.am, self.bm, self.shift, self.out_q.zero_point, self.lo,
                            self.hi)
        else:
            call = add_fixed_u8, (a, b, out, self.a_q.zero_point, self.b_q.zero_point, *self.multipliers,
                                  self.out_multiplier, self.out_q.zero_point, self.lo, self.hi)
        record(call) if record else call[0](*call[1])

    def run(self, a, b):
        if self.kernels == "xnnpack":
            y = ((self.add_bias + a * self.am + b * self.bm) >> self.shift) + self.out_q.zero_point
        else:
            scaled = [qa.multiply_by_quantized_multiplier((v - q.zero_point) << 20, *m)
                      for v, q, m in zip((a, b), (self.a_q, self.b_q), self.multipliers)]
            y = qa.multiply_by_quantized_multiplier(scaled[0] + scaled[1], *self.out_multiplier) + self.out_q.zero_point
        return np.clip(y, self.lo, self.hi)


class Sub(Add):
    """a - b: ADD with the second input's multiplier negated (XNNPACK's subtract, TFLite's SUB)."""

    def prepare(self):
        super().prepare()
        if self.kernels == "xnnpack":
            self.bm = -self.bm
            self.add_bias = (1 << (self.shift - 1)) - self.am * self.a_q.zero_point - self.bm * self.b_q.zero_point
        else:
            m, shift = self.multipliers[1]
            self.multipliers[1] = (-m, shift)


class Mul(_Binary):
    def prepare(self):
        if self.kernels == "xnnpack":  # XNNPACK: float32 scale (a_scale * b_scale) / out_scale
            self.scale = (self.a_q.scale * self.b_q.scale) / self.out_q.scale
        else:
            self.multiplier = qa.quantize_multiplier(float(self.a_q.scale) * float(self.b_q.scale) / float(self.out_q.scale))

    def kernel(self, a, b, out, record=None):
        """Run the kernel set's kernel on (rows, C) operands, or give ``record`` the (kernel, arguments) instead."""
        if self.kernels == "xnnpack":
            call = mul_fp32_u8, (a, b, out, self.a_q.zero_point, self.b_q.zero_point, self.scale,
                                 self.out_q.zero_point, self.lo, self.hi)
        else:
            call = mul_fixed_u8, (a, b, out, self.a_q.zero_point, self.b_q.zero_point, self.multiplier,
                                  self.out_q.zero_point, self.lo, self.hi)
        record(call) if record else call[0](*call[1])

    def run(self, a, b):
        product = (a - self.a_q.zero_point) * (b - self.b_q.zero_point)
        if self.kernels == "xnnpack":
            return qa.requantize_fp32(product, self.scale, self.out_q.zero_point, self.lo, self.hi)
        return qa.requantize_fixed(product, *self.multiplier, self.out_q.zero_point, self.lo, self.hi)


class _Lookup(Operator):
    """An 8-bit activation tabulated at load (``table``, 256 outputs): a lookup per byte."""

    def kernel_calls(self):
        return _lookup_calls(self)

    def bind(self, workspace):
        self.workspace = workspace
        return _bind_lookup(self, self.inputs[0], self.tensors[self.output].shape)


class HardSwish(_Lookup):
    """TFLite's fixed-point HARD_SWISH (reference/hard_swish.h; LiteRT's x86 kernel is the same), on int16."""

    def setup(self):
        x_q, self.out_q = self.quant(self.inputs[0]), self.quant(self.output)
        hires_scale = f32(1 / 128) * x_q.scale
        out_m, self.out_exponent = qa.quantize_multiplier(float(hires_scale / self.out_q.scale))
        relu_m, self.relu_exponent = qa.quantize_multiplier(float(hires_scale / f32(3 / 32768)))
        self.out_m16, self.relu_m16 = (_int16_multiplier(m) for m in (out_m, relu_m))
        self.x_zero_point = x_q.zero_point
        self.table = self.run_elementwise(np.arange(256, dtype=np.int64)).astype(np.uint8)

    def run_elementwise(self, x):
        srdhm16 = lambda a, b: qa.saturating_rounding_doubling_high_mul(a, b, bits=16)
        hires = (x - self.x_zero_point) * 128  # fits int16: |x - zp| <= 255
        preshift = srdhm16(hires, self.out_m16)
        relu = hires
        if self.relu_exponent > 0:
            relu = np.clip(relu * (1 << (self.relu_exponent - 1)), qa.INT16_MIN, qa.INT16_MAX)
        relu = srdhm16(relu, self.relu_m16)
        if self.relu_exponent > 0:
            relu = np.clip(relu * 2, qa.INT16_MIN, qa.INT16_MAX)
        if self.relu_exponent < 0:
            relu = qa.rounding_divide_by_pot(relu, -self.relu_exponent)
        relu = (relu + (1 << 15)) >> 1
        product = relu * preshift  # SaturatingDoublingHighMul: truncating division by 2**15
        doubled_high = np.where(product >= 0, product >> 15, -((-product) >> 15))
        y = qa.rounding_divide_by_pot(doubled_high, -self.out_exponent) + self.out_q.zero_point
        return np.clip(y, *STORED_RANGE)



def _lookup_calls(op):
    return ((lookup_u8, (_activations(1), op.table, _activations(1))),)


def _bind_lookup(op, x_index, shape):
    """The step of an operator whose output is ``op.table`` at each byte of tensor ``x_index``: an output of
    ``shape`` from op's workspace."""
    out, output, table = op.buffer(shape), op.output, op.table
    flat = out.reshape(-1)

    def step(values):
        lookup_u8(np.ascontiguousarray(values[x_index]).reshape(-1), table, flat)
        values[output] = out
    return step


def _int16_multiplier(m):
    """TFLite's DownScaleInt32ToInt16Multiplier: a Q31 multiplier rounded to Q15."""
    return qa.INT16_MAX if m >= qa.INT32_MAX - (1 << 15) else (m + (1 << 15)) >> 16


class Logistic(_Lookup):
    """TFLite's 8-bit LOGISTIC: a 256-entry table built in float (optimized and reference kernels alike)."""

    def setup(self):
        x_q, out_q = self.quant(self.inputs[0]), self.quant(self.output)
        real = x_q.scale * (np.arange(256) - x_q.zero_point).astype(f32)
        with np.errstate(over="ignore"):
            sigmoid = f32(1) / (f32(1) + np.exp(-real, dtype=f32))
        self.table = np.clip(np.floor(sigmoid / out_q.scale + f32(0.5)) + out_q.zero_point, 0, 255).astype(np.uint8)



# --- pooling, softmax -------------------------------------------------------------------------------------

class AveragePool2d(Operator):
    """TFLite's AVERAGE_POOL_2D over in-image taps: (sum + n/2) / n; int8 rounds negative sums away from zero."""

    def setup(self):
        x_q, out_q = self.quant(self.inputs[0]), self.quant(self.output)
        if x_q != out_q:
            self.fail("input and output quantization differ")
        self.q = out_q
        self.lo, self.hi = self.activation_bounds(out_q)

    def kernel_calls(self):
        return ((average_pool_u8, (_activations(4), _activations(4), *[0] * 7, self.lo, self.hi)),)

    def run(self, x):
        o = self.op.options
        kh, kw = o["filter_h"], o["filter_w"]
        geometry = []
        for size, k, stride in ((x.shape[1], kh, o["stride_h"]), (x.shape[2], kw, o["stride_w"])):
            geometry.append(conv_output_size(size, k, stride, "tf_same") if o["padding"] == 0 else
                            ((size - k) // stride + 1, 0))
        (oh, top), (ow, left) = geometry
        out = self.buffer((x.shape[0], oh, ow, x.shape[3]))
        average_pool_u8(np.ascontiguousarray(x), out, kh, kw, o["stride_h"], o["stride_w"], top, left,
                        128 if self.q.signed else 0, self.lo, self.hi)
        return out


class Mean(Operator):
    """MEAN over H and W (a global average pool): the sums by tinynet.kernels.int8_elementwise.spatial_sums_u8, each
    kernel set's rescaling of the C sums in NumPy, its constants computed at load (n is the input's H * W)."""

    def setup(self):
        self.x_q, self.out_q = self.quant(self.inputs[0]), self.quant(self.output)
        axes = tuple(sorted(int(a) % 4 for a in np.atleast_1d(self.tensor(1).data)))
        if axes != (1, 2):
            self.fail(f"it averages over axes {axes}; tinynet runs the spatial mean (1, 2)")
        self.keep_dims = bool(self.op.options.get("keep_dims"))
        _, height, width, channels = self.tensor(0).shape
        n = height * width
        if self.kernels == "xnnpack":  # XNNPACK: the int32 sum converted with scale x_scale / (n * y_scale)
            self.scale = f32(self.x_q.scale) * (f32(1) / f32(n)) / f32(self.out_q.scale)
            self.offset = n * self.x_q.zero_point
        elif self.kernels == "optimized":  # optimized Mean: the file's raw sum rescaled, plus a rounded bias
            self.offset = 128 * n if self.x_q.signed else 0
            temp = f32(self.x_q.file_zero_point) * self.x_q.scale / self.out_q.scale
            self.bias = (self.out_q.file_zero_point - int(temp + f32(0.5) if temp > 0 else temp - f32(0.5))
                         + (128 if self.out_q.signed else 0))
            self.multiplier = qa.quantize_multiplier(float(self.x_q.scale / (f32(n) * self.out_q.scale)))
            self.body = channels // MEAN_SIMD_LANES * MEAN_SIMD_LANES  # the rest: scalar code, another rounding
        else:  # reference QuantizedMeanOrSum: 1/n folded into the multiplier with integer division
            m, shift = qa.quantize_multiplier(float(self.x_q.scale) / float(self.out_q.scale))
            extra = min(n.bit_length() - 1, 32, 31 + shift)
            self.multiplier = ((m << extra) // n, shift - extra)
            self.offset = n * self.x_q.zero_point

    def kernel_calls(self):
        return ((spatial_sums_u8, (_activations(4), np.empty((0, 0), np.int64))),)

    def run(self, x, *_):
        sums = np.empty((x.shape[0], x.shape[3]), np.int64)
        spatial_sums_u8(x, sums)
        raw = sums - self.offset
        if self.kernels == "xnnpack":
            y = np.rint(np.clip(raw.astype(f32) * self.scale, -self.out_q.zero_point, 255 - self.out_q.zero_point)) \
                + self.out_q.zero_point
        elif self.kernels == "optimized":
            y = np.concatenate([qa.multiply_by_quantized_multiplier_simd(raw[..., :self.body], *self.multiplier),
                                qa.multiply_by_quantized_multiplier(raw[..., self.body:], *self.multiplier)], axis=-1)
            y = y + self.bias
        else:
            y = qa.multiply_by_quantized_multiplier(raw, *self.multiplier) + self.out_q.zero_point
        y = np.clip(y, *STORED_RANGE).astype(np.uint8)
        return y[:, None, None, :] if self.keep_dims else y


class Softmax(Operator):
    """TFLite's 8-bit SOFTMAX. Its optimized x86 kernel (what LiteRT runs by default): a float exp table indexed by
    max - x. The reference kernel: gemmlowp fixed point, exp of the scaled differences in Q5.26, their sum in
    Q12.19, its reciprocal by Newton-Raphson (tinynet.quantized.arithmetic)."""

    SCALED_DIFF_INTEGER_BITS, ACCUMULATION_INTEGER_BITS = 5, 12

    def setup(self):
        self.x_q, self.out_q = self.quant(self.inputs[0]), self.quant(self.output)
        beta = self.op.options.get("beta", 1.0)
        if self.kernels == "reference":  # PreprocessSoftmaxScaling, CalculateInputRadius
            bits = self.SCALED_DIFF_INTEGER_BITS
            real = min(float(beta) * float(self.x_q.scale) * (1 << (31 - bits)), (1 << 31) - 1.0)
            self.multiplier, self.left_shift = qa.quantize_multiplier(real)
            self.diff_min = -int(np.floor(((1 << bits) - 1) * (1 << (31 - bits)) / (1 << self.left_shift)))
            return
        scale = -self.x_q.scale * f32(beta)
        exps = np.array([_LIBM.expf(float(scale * f32(v))) for v in range(256)], f32)
        self.table = exps[::-1].copy()  # table[255 - v] = exp(-input_scale * beta * v)

    def run_reference(self, rows):
        out = np.empty_like(rows)
        for r, row in enumerate(rows.astype(np.int64)):
            diff = row - row.max()
            used = diff >= self.diff_min
            rescaled = qa.saturating_rounding_doubling_high_mul(diff << self.left_shift, self.multiplier)
            exps = np.where(used, qa.exp_on_negative_values(rescaled, self.SCALED_DIFF_INTEGER_BITS), 0)
            total = int(qa.rescale(exps, 0, self.ACCUMULATION_INTEGER_BITS)[used].sum())
            scale, bits_over_unit = qa.reciprocal(total, self.ACCUMULATION_INTEGER_BITS)
            y = qa.rounding_divide_by_pot(qa.saturating_rounding_doubling_high_mul(scale, exps), bits_over_unit + 31 - 8)
            out[r] = np.where(used, np.clip(y, *STORED_RANGE), 0)  # the stored minimum: 0 (uint8) or -128 (int8)
        return out

    def kernel_calls(self):
        return () if self.kernels == "reference" else \
            ((softmax_table_u8, (_activations(2), self.table, self.out_q.scale, self._zero_point(), _activations(2))),)

    def _zero_point(self):
        return self.out_q.zero_point if self.out_q.signed else 0

    def run(self, x):
        rows = x.reshape(-1, x.shape[-1])
        if self.kernels == "reference":
            return self.run_reference(rows).reshape(x.shape)
        out = self.buffer(x.shape)
        # QuantizeSoftmaxOutput: std::round plus the zero point (int8), + 0.5 truncated on x86 (uint8, zero point 0)
        softmax_table_u8(rows, self.table, self.out_q.scale, self._zero_point(), out.reshape(rows.shape))
        return out


# --- shape, type and copy operators -----------------------------------------------------------------------

class Reshape(Operator):
    def setup(self):
        self.shape = self.tensors[self.output].shape
        if Quant.of(self.tensors[self.inputs[0]]) != Quant.of(self.tensors[self.output]):
            self.fail("it changes the quantization")

    def run(self, x, *_):
        return x.reshape(self.shape)


class Pad(Operator):
    def setup(self):
        self.pads = [tuple(int(v) for v in row) for row in self.tensor(1).data]
        self.value = self.quant(self.output).zero_point

    def run(self, x, *_):
        return np.pad(x, self.pads, constant_values=self.value)


class Quantize(_Lookup):
    """float32 -> 8 bits (x * (1 / scale), lrintf, as XNNPACK), or 8 bits -> 8 bits with another quantization: the
    latter is a function of one byte, so it runs as a lookup in a table that ``run`` fills at load (a uint8 file fed
    to int8 kernels starts with one over the whole image: 0.23 ms of V2's 3.4 in NumPy int64 arithmetic)."""

    def setup(self):
        self.out_q = self.quant(self.output)
        self.x_q = Quant.of(self.tensor(0))
        self.table = None
        if self.x_q is None:
            return
        if self.kernels == "xnnpack":  # qu8-vcvt: an 8.8 fixed-point multiplier lrintf(256 * s_in / s_out)
            self.multiplier = int(np.rint(f32(256) * (self.x_q.scale / self.out_q.scale)))
            self.bias = (self.out_q.zero_point << 8) - self.multiplier * self.x_q.zero_point + 0x80
        else:  # Requantize: MultiplyByQuantizedMultiplier(q - zp_in) + zp_out, multiplier from double(s_in / s_out)
            self.multiplier = qa.quantize_multiplier(float(self.x_q.scale) / float(self.out_q.scale))
        self.table = self.run(np.arange(256, dtype=np.uint8))

    def kernel_calls(self):
        return super().kernel_calls() if self.table is not None else Operator.kernel_calls(self)

    def bind(self, workspace):
        return super().bind(workspace) if self.table is not None else Operator.bind(self, workspace)

    def run(self, x):
        if self.x_q is not None and self.kernels == "xnnpack":
            return np.clip((self.bias + x.astype(np.int64) * self.multiplier) >> 8, *STORED_RANGE).astype(np.uint8)
        if self.x_q is not None:
            y = qa.multiply_by_quantized_multiplier(x.astype(np.int64) - self.x_q.zero_point, *self.multiplier)
            return np.clip(y + self.out_q.zero_point, *STORED_RANGE).astype(np.uint8)
        if self.kernels == "reference":  # AffineQuantize: TfLiteRound(x / scale) + zero point
            v = qa.round_half_away(x.astype(f32) / self.out_q.scale) + self.out_q.zero_point
            return np.clip(v, *STORED_RANGE).astype(np.uint8)
        v = x.astype(f32) * (f32(1) / self.out_q.scale)
        v = np.clip(v, f32(-self.out_q.zero_point), f32(255 - self.out_q.zero_point))
        return (np.rint(v) + self.out_q.zero_point).astype(np.uint8)


class Dequantize(Operator):
    def setup(self):
        self.x_q = self.quant(self.inputs[0])

    def run(self, x):
        if self.kernels == "xnnpack":  # float32 (q - zp) * scale
            return (x.astype(np.int32) - self.x_q.zero_point).astype(f32) * self.x_q.scale
        # TFLite's Dequantize: the scale as a double, the product rounded to float32 once
        scalar = (np.float64(self.x_q.scale) * (x.astype(np.int32) - self.x_q.zero_point)).astype(f32)
        if self.kernels == "optimized":  # SIMD body of 8 lanes: q * scale - zp * scale in float32; tail: scalar
            q = (x.astype(np.int32) - (128 if self.x_q.signed else 0)).ravel()
            body = q.size // DEQUANTIZE_SIMD_LANES * DEQUANTIZE_SIMD_LANES
            simd = q[:body].astype(f32) * self.x_q.scale - f32(self.x_q.file_zero_point) * self.x_q.scale
            scalar.ravel()[:body] = simd
        return scalar


class Concatenation(Operator):
    """Inputs with the output's quantization are copied; others are rescaled as TFLite's
    ConcatenationWithScaling does: round-half-away(q * s + b) + zp_out, s = s_in * (1 / s_out) in float32."""

    def setup(self):
        out_q = self.quant(self.output)
        self.axis = self.op.options.get("axis", 0) % len(self.tensors[self.output].shape)
        self.rescales = []
        for index in self.inputs:
            in_q = self.quant(index)
            if in_q == out_q:
                self.rescales.append(None)
                continue
            scale = in_q.scale * (f32(1) / out_q.scale)
            self.rescales.append((in_q.file_zero_point, in_q.signed, scale, -f32(in_q.file_zero_point) * scale,
                                  out_q.zero_point))

    def run(self, *parts):
        return np.concatenate([x if r is None else self._rescale(x, *r) for x, r in zip(parts, self.rescales)],
                              axis=self.axis)

    @staticmethod
    def _rescale(x, zero_point, signed, scale, bias, out_zero_point):
        q = x.astype(f32) - (f32(128) if signed else f32(0))
        return np.clip(qa.round_half_away(q * scale + bias) + out_zero_point, *STORED_RANGE).astype(np.uint8)


class ResizeBilinear(Operator):
    """8-bit bilinear resize.
    XNNPACK: sampling positions in float32 as its indirection sets them, 11-bit weights lrintf(alpha * 2048), two
    lerps in int32, (acc + 2**21) >> 22 (tinynet.kernels.int8_resize).
    TFLite's kernels, int8 (ResizeBilinearInteger): positions and 10-bit weights in integers, the four corner
    products summed in int64, rounded half away from zero at 2**20. uint8 (the generic ResizeBilinear): positions
    and weights in float32, the four products summed in float32 in order, + 0.5, truncated."""

    def setup(self):
        if self.quant(self.inputs[0]) != self.quant(self.output):
            self.fail("input and output quantization differ")
        self.align_corners = bool(self.op.options.get("align_corners"))
        self.half_pixel = bool(self.op.options.get("half_pixel_centers"))
        self.size = tuple(int(v) for v in self.tensor(1).data)
        self._axes = {}

    def _xnnpack_axis(self, n_in, n_out):
        """(lower index, upper index, 11-bit weight) per output position."""
        adjust = int(self.align_corners and n_out != 1)
        scale = f32(n_in - adjust) / f32(n_out - adjust)
        out = np.arange(n_out).astype(f32)
        if self.half_pixel:
            position = np.clip(out * scale + (f32(0.5) * scale - f32(0.5)), f32(0), f32(n_in - 1))
        else:
            position = np.minimum(out * scale, f32(n_in - 1))
        lower = position.astype(np.int64)
        weight = np.rint((position - lower.astype(f32)) * f32(2048)).astype(np.int32)
        return lower, np.minimum(lower + 1, n_in - 1), weight

    def _tflite_axis(self, n_in, n_out):
        """(lower, upper, scaled position in units of 1/1024) per output position."""
        if self.align_corners and n_out > 1:
            scale = ((1 << 10) * (n_in - 1) + (n_out - 1) // 2) // (n_out - 1)
        else:
            scale = ((1 << 10) * n_in + n_out // 2) // n_out
        out = np.arange(n_out, dtype=np.int64)
        scaled = out * scale + (scale // 2 - (1 << 9) if self.half_pixel else 0)
        lower = np.maximum(scaled // (1 << 10), 0)  # C truncates where Python floors: the same past max(., 0)
        upper = np.minimum((scaled + (1 << 10) - 1) // (1 << 10), n_in - 1)
        return lower, upper, scaled

    def kernel_calls(self):
        return ((resize_bilinear_q11_u8, (_activations(4), *self._xnnpack_axis(1, 1) * 2, _activations(4))),) \
            if self.kernels == "xnnpack" else ()

    def axes(self, shape):
        key = shape[1:3]
        if key not in self._axes:
            axis = self._xnnpack_axis if self.kernels == "xnnpack" else self._tflite_axis
            self._axes[key] = axis(shape[1], self.size[0]) + axis(shape[2], self.size[1])
        return self._axes[key]

    def run(self, x, *_):
        y0, y1, wy, x0, x1, wx = self.axes(x.shape)
        if self.kernels == "xnnpack":
            out = self.buffer((x.shape[0], *self.size, x.shape[3]))
            resize_bilinear_q11_u8(np.ascontiguousarray(x), y0, y1, wy, x0, x1, wx, out)
            return out
        if not self.quant(self.inputs[0]).signed:
            return self._float_resize(x)
        v = x.astype(np.int64) - 128  # the file's int8 values
        dy = (wy - (y0 << 10))[None, :, None, None]
        dx = (wx - (x0 << 10))[None, None, :, None]
        corner = lambda rows, cols: v[:, rows][:, :, cols]
        total = (corner(y0, x0) * ((1 << 10) - dy) * ((1 << 10) - dx) + corner(y1, x0) * dy * ((1 << 10) - dx) +
                 corner(y0, x1) * ((1 << 10) - dy) * dx + corner(y1, x1) * dy * dx)
        rounded = np.where(total > 0, (total + (1 << 19)) // (1 << 20), -((-total + (1 << 19)) // (1 << 20)))
        return (rounded + 128).astype(np.uint8)

    def _float_resize(self, x):
        axes = []
        for n_in, n_out in ((x.shape[1], self.size[0]), (x.shape[2], self.size[1])):
            scale = f32(n_in - 1) / f32(n_out - 1) if self.align_corners and n_out > 1 else f32(n_in) / f32(n_out)
            out = np.arange(n_out).astype(f32)
            position = (out + f32(0.5)) * scale - f32(0.5) if self.half_pixel else out * scale
            lower = np.maximum(np.floor(position).astype(np.int64), 0)
            axes.append((lower, np.minimum(np.ceil(position).astype(np.int64), n_in - 1), position - lower.astype(f32)))
        (y0, y1, dy), (x0, x1, dx) = axes
        dy, dx = dy[None, :, None, None], dx[None, None, :, None]
        v = x.astype(f32)
        corner = lambda rows, cols: v[:, rows][:, :, cols]
        one = f32(1)
        total = corner(y0, x0) * (one - dy) * (one - dx)
        total = total + corner(y1, x0) * dy * (one - dx)
        total = total + corner(y0, x1) * (one - dy) * dx
        total = total + corner(y1, x1) * dy * dx
        return (total + f32(0.5)).astype(np.uint8)


class ArgMax(Operator):
    """Index of the largest value along an axis; ties go to the first (TFLite's ArgMinMax)."""

    def setup(self):
        self.axis = int(np.atleast_1d(self.tensor(1).data)[0])
        self.dtype = self.tensors[self.output].dtype

    def run(self, x, *_):
        return np.argmax(x, axis=self.axis).astype(self.dtype)


OPERATORS = {
    "CONV_2D": Conv2d, "DEPTHWISE_CONV_2D": DepthwiseConv2d, "FULLY_CONNECTED": FullyConnected,
    "ADD": Add, "SUB": Sub, "MUL": Mul, "HARD_SWISH": HardSwish, "LOGISTIC": Logistic,
    "AVERAGE_POOL_2D": AveragePool2d, "MEAN": Mean, "SOFTMAX": Softmax,
    "CONCATENATION": Concatenation, "RESIZE_BILINEAR": ResizeBilinear, "ARG_MAX": ArgMax,
    "RESHAPE": Reshape, "SQUEEZE": Reshape, "PAD": Pad, "QUANTIZE": Quantize, "DEQUANTIZE": Dequantize,
}
