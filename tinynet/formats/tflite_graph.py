"""Reduce a TFLite MobileNet graph to the layer steps tinynet runs.

``walk(graph)`` follows the main path of the graph operator by operator and returns ``Steps``:
what the network feeds its first conv (the input range), and one ``Step`` per tinynet layer
(stem conv, depthwise, pointwise, squeeze-excite, pool, classifier), with weights already
dequantized and in tinynet's runtime layout (tinynet.spec):

  CONV_2D k x k   (O, KH, KW, I) -> (KH, KW, I, O)      CONV_2D 1x1    (O, 1, 1, I) -> (I, O)
  DEPTHWISE       (1, KH, KW, C) -> (KH, KW, C)         FULLY_CONNECTED (O, I)       -> (I, O)

Activations are read by evaluating, on a grid of pre-activation values, every elementwise
operator that follows a conv (fused activation, RELU/RELU6/HARD_SWISH ops, ADD/MUL chains) with
the clamps that the tensors' quantization implies. Converters for quantization-aware-trained
graphs often drop a ReLU and keep only its effect on the output range (zero point at the bottom
of the range), and build the squeeze-excite hard sigmoid from ADD/MUL constants; evaluating the
chain sees through both. Which activation a layer *should* have is decided by the layer table
the graph is matched against (tinynet.formats.tflite); a step only answers "do you fit this?".
"""
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from tinynet.kernels import conv_output_size
from tinynet.errors import UnsupportedModelError, WeightsError

ACTIVATIONS = {
    None: lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "relu6": lambda z: np.clip(z, 0.0, 6.0),
    "hswish": lambda z: z * np.clip(z + 3.0, 0.0, 6.0) / 6.0,
}
FUSED = {0: None, 1: "relu", 3: "relu6"}  # ActivationFunctionType values tinynet runs
PADDINGS = {0: "SAME", 1: "VALID"}


def hard_sigmoid(z):
    """relu6(z + 3) / 6, the squeeze-excite gate tinynet's kernel applies."""
    return np.clip(z + 3.0, 0.0, 6.0) / 6.0


ELEMENTWISE = {
    "ADD": np.add, "SUB": np.subtract, "MUL": np.multiply, "DIV": np.divide,
    "MAXIMUM": np.maximum, "MINIMUM": np.minimum,
    "RELU": ACTIVATIONS["relu"], "RELU6": ACTIVATIONS["relu6"], "HARD_SWISH": ACTIVATIONS["hswish"],
    "RELU_0_TO_1": lambda z: np.clip(z, 0.0, 1.0),
    "QUANTIZE": lambda z: z, "DEQUANTIZE": lambda z: z,  # requantization: only its clamp matters
}
SUPPORTED = set(ELEMENTWISE) | {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MEAN",
                                "PAD", "RESHAPE", "SQUEEZE", "SOFTMAX"}
PASS_THROUGH = {"RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE"}  # allowed on a pooled (1 x C) tensor
# (min, max) number of inputs; inputs below min are required (not -1). Every operator has one output.
ARITY = {"CONV_2D": (2, 3), "DEPTHWISE_CONV_2D": (2, 3), "FULLY_CONNECTED": (2, 3), "MEAN": (2, 2), "PAD": (2, 2),
         "RESHAPE": (1, 2), "ADD": (2, 2), "SUB": (2, 2), "MUL": (2, 2), "DIV": (2, 2), "MAXIMUM": (2, 2),
         "MINIMUM": (2, 2)}
# Dequantized constants (float64) the walker may hold, as a multiple of the file's size: the distinct
# constants of a genuine file take 2 to 8 times its size, but many operators (DEQUANTIZE, convs, ADDs)
# or tensors may name one constant, and each would be a new float64 copy.
VALUES_PER_FILE_BYTE = 16
VALUES_MIN_BYTES = 64 << 20
MAX_AXES = 8  # a MEAN's axis list
GRID = np.linspace(-8.0, 8.0, 161)  # pre-activation values activations are compared on
STANDARD_RANGES = ((-1.0, 1.0), (0.0, 1.0))


@dataclass
class Activation:
    """What the graph computes from a layer's pre-activation ``z``: samples ``y`` at ``z``."""
    z: np.ndarray
    y: np.ndarray
    bounds: tuple  # (lo, hi) of the quantized result tensor, or (-inf, inf)
    tolerance: float  # about a quantization step: clamps of quantized graphs are not exact

    def fits(self, name):
        """Whether the graph computes activation ``name`` (None, "relu", ...) wherever it can represent it."""
        return bool(np.max(np.abs(np.clip(ACTIVATIONS[name](self.z), *self.bounds) - self.y)) <= self.tolerance)

    def describe(self):
        name = next((n for n in ("hswish", "relu6", "relu", None) if self.fits(n)), "?")
        return {None: "no activation", "?": "an activation tinynet does not run"}.get(name, name)


@dataclass
class Step:
    """One tinynet layer found in the graph."""
    kind: str  # "conv" | "dw" | "pw" | "se" | "pool" | "fc"
    op: object  # the tflite_schema.Operator that defines it
    input: int  # main-path tensor it reads
    cin: int = 0
    cout: int = 0
    k: int = 1
    stride: int = 1
    act: Activation = None
    weights: dict = field(default_factory=dict)  # "w"/"b" (or "reduce.w", ...) -> float64 array, runtime layout
    sources: dict = field(default_factory=dict)  # same keys -> tflite tensor name
    residual_from: int = None  # main-path tensor a following ADD adds to this step's output
    output: int = None  # tensor holding the step's result (after its activation and any residual ADD)

    def describe(self):
        what = {"conv": f"CONV_2D {self.k}x{self.k} stride {self.stride}",
                "dw": f"DEPTHWISE_CONV_2D {self.k}x{self.k} stride {self.stride}",
                "pw": f"CONV_2D 1x1 stride {self.stride}", "se": "a squeeze-excite block",
                "pool": "a global average pool", "fc": "a fully connected layer"}[self.kind]
        act = f" with {self.act.describe()}" if self.act is not None else ""
        return f"{what}{act} at {self.op.describe()}"


@dataclass
class Steps:
    steps: list
    input_size: int  # native input height (= width)
    input_range: tuple  # (lo, hi): values of the input that the first conv expects
    uint8_weights: bool  # every conv's weights are uint8: TF1's export of a quantization-aware-trained model
    graph_input_range: tuple = None  # (lo, hi): what the graph input itself takes for image bytes 0 and 255


def walk(graph):
    """The tinynet layer steps of ``graph`` (tflite_schema.Graph). Raises UnsupportedModelError naming the
    first operator that tinynet cannot run or that does not fit a MobileNet's structure."""
    for op in graph.operators:
        if op.name not in SUPPORTED:
            raise UnsupportedModelError(f"operator {op.index} is {op.name}, which tinynet does not run")
        low, high = ARITY.get(op.name, (1, 1))
        if not low <= len(op.inputs) <= high or min(op.inputs[:low]) < 0 or len(op.outputs) != 1 or op.outputs[0] < 0:
            raise WeightsError(f"corrupt TFLite graph: {op.describe()} has inputs {op.inputs} and outputs {op.outputs}")
    return _Walker(graph).run()


def short_name(tensor):
    """The first of the ';'-joined names converters give fused tensors."""
    return tensor.name.split(";")[0] or f"tensor {tensor.index}"


@dataclass
class _Chain:
    """Elementwise operators after a tensor, and what they compute from it."""
    ops: list
    end: int  # tensor holding the result
    next: int  # position of the first operator after the chain


class _Walker:
    def __init__(self, graph):
        self.graph, self.ops, self.tensors = graph, graph.operators, graph.tensors
        self.consumers = defaultdict(list)  # tensor -> indices of the operators reading it
        for op in self.ops:
            for t in op.inputs:
                self.consumers[t].append(op.index)
        self.constants = {}  # tensor -> float64 values, incl. outputs of DEQUANTIZE on constants (fp16 weights)
        self.dequantized = {}  # constant tensor -> its float64 values, once per tensor
        self.values_left = VALUES_MIN_BYTES + VALUES_PER_FILE_BYTE * graph.file_bytes
        self.skip = set()  # operators already accounted for
        for op in self.ops:
            if op.name == "DEQUANTIZE" and len(op.inputs) == 1 and self.tensors[op.inputs[0]].is_constant:
                self.constants[op.outputs[0]] = self._values(op.inputs[0])
                self.skip.add(op.index)

    def _values(self, t):
        """Tensor ``t``'s constant values as float64, made once and charged to the file's budget."""
        if t in self.constants:
            return self.constants[t]
        if t not in self.dequantized:
            tensor = self.tensors[t]
            nbytes = 8 * tensor.data.size
            if nbytes > self.values_left:
                raise WeightsError(f"the graph's constants dequantize to more than "
                                   f"{VALUES_PER_FILE_BYTE} times the file's size ({tensor.describe()} and others)")
            self.values_left -= nbytes
            with np.errstate(all="ignore"):  # corrupt scales may overflow: _constant refuses the result
                self.dequantized[t] = tensor.values()
        return self.dequantized[t]

    # ---- main path ---------------------------------------------------------------------------

    def run(self):
        if len(self.graph.inputs) != 1 or len(self.graph.outputs) != 1:
            raise UnsupportedModelError(f"the graph has {len(self.graph.inputs)} inputs and {len(self.graph.outputs)} "
                                        "outputs; a classifier has one of each")
        source = self.tensors[self.graph.inputs[0]]
        if len(source.shape) != 4 or source.shape[3] != 3 or source.shape[1] != source.shape[2]:
            raise UnsupportedModelError(f"input {source.describe()} has shape {source.shape}; expected (1, S, S, 3)")
        input_range, chain, graph_input_range = self._input_chain(source)
        cur, pos = chain.end, chain.next
        steps, pad, pooled = [], None, False
        while pos < len(self.ops):
            op = self.ops[pos]
            if op.index in self.skip:
                pos += 1
                continue
            if cur not in op.inputs:
                raise UnsupportedModelError(f"{op.describe()} does not read the main path (tensor {cur}); "
                                            "tinynet runs only plain MobileNet graphs")
            name = op.name
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                step, chain = self._conv(op, cur, pad, pooled)
                steps.append(step)
                cur, pos, pad = chain.end, chain.next, None
                continue
            if pad is not None:
                raise UnsupportedModelError(f"{pad.describe()} pads a tensor that {op.describe()} reads; only convs "
                                            "may follow an explicit PAD")
            is_pool = name in ("AVERAGE_POOL_2D", "MEAN")
            if is_pool and self._is_identity_pool(op):
                pass
            elif is_pool and self._scales_later(cur, pos):
                step, cur, pos = self._squeeze_excite(op, cur)
                steps.append(step)
                continue
            elif is_pool:
                self._check_global_pool(op)
                steps.append(Step("pool", op, cur))
                pooled = True
            elif name == "PAD":
                pad = op
            elif name == "ADD" and not pooled:
                self._residual(op, cur, steps)
            elif name == "SOFTMAX" or (name in PASS_THROUGH and pooled):
                pass  # softmax is monotonic: tinynet returns the logits before it
            else:
                raise UnsupportedModelError(f"{op.describe()} on the main path is not part of a MobileNet tinynet runs")
            cur, pos = op.outputs[0], pos + 1
        if cur != self.graph.outputs[0]:
            raise UnsupportedModelError(f"the main path ends at tensor {cur}, not at the graph output {self.graph.outputs[0]}")
        uint8 = all(self.tensors[s.op.inputs[1]].dtype == np.uint8 for s in steps if s.kind in ("conv", "dw", "pw", "fc"))
        return Steps(steps, source.shape[1], input_range, uint8, graph_input_range)

    def _input_chain(self, source):
        """(the value range the input operators hand the first conv, those operators, the input's own range)."""
        chain = self._chain(source.index, 0)
        nominal = source.real_range()
        if nominal is None and chain.ops and chain.ops[0].name == "QUANTIZE":
            nominal = self.tensors[chain.ops[0].outputs[0]].real_range()  # float input, quantized on entry
        # A float input with rescale operators: raw values in [0, 1] (TF Hub) or [0, 255] (Keras).
        candidates = [nominal] if nominal else [(0.0, 1.0), (0.0, 255.0)] if chain.ops else [(-1.0, 1.0)]
        where = f"the input operators {', '.join(op.describe() for op in chain.ops)}"
        tolerance = self._tolerance([source.index] + [op.outputs[0] for op in chain.ops])
        for lo, hi in candidates:
            y = self._evaluate(source.index, chain.ops, np.linspace(lo, hi, 5))
            if np.max(np.abs(np.diff(y, 2))) > tolerance * max(1.0, hi - lo):
                raise UnsupportedModelError(f"{where} do not rescale the input linearly")
            image = _snap((float(y[0]), float(y[-1])))
            if image in STANDARD_RANGES or nominal:
                return image, chain, (lo, hi)
        raise UnsupportedModelError(f"{where} map neither [0, 1] nor [0, 255] onto [-1, 1] or [0, 1]")

    # ---- layers ------------------------------------------------------------------------------

    def _conv(self, op, cur, pad, pooled):
        """A conv / depthwise / fully connected step, and the chain that carries its activation."""
        x = self.tensors[cur]
        if len(x.shape) != (2 if op.name == "FULLY_CONNECTED" else 4):
            raise UnsupportedModelError(f"{op.describe()} reads tensor {cur} of shape {x.shape}")
        w, w_name = self._constant(op, 1, "weights")
        if op.name == "FULLY_CONNECTED":
            if w.ndim != 2 or op.options["weights_format"] != 0:
                raise WeightsError(f"{op.describe()}: weights {w_name} of shape {w.shape} are not a plain (out, in) matrix")
            step = Step("fc", op, cur, w.shape[1], w.shape[0])
            step.weights["w"] = w.T
        else:
            self._check_conv_options(op, w)
            k, stride = w.shape[1], op.options["stride_h"]
            if op.name == "DEPTHWISE_CONV_2D":
                if w.shape[0] != 1 or w.shape[3] != x.shape[-1]:
                    raise UnsupportedModelError(f"{op.describe()}: weights {w_name} of shape {w.shape} on {x.shape[-1]} "
                                                "channels; tinynet runs depthwise convs with depth multiplier 1")
                step = Step("dw", op, cur, w.shape[3], w.shape[3], k, stride)
                step.weights["w"] = w[0]
            elif k == 1:
                step = Step("fc" if pooled else "pw", op, cur, w.shape[3], w.shape[0], 1, stride)
                step.weights["w"] = w[:, 0, 0, :].T
            else:
                step = Step("conv", op, cur, w.shape[3], w.shape[0], k, stride)
                step.weights["w"] = w.transpose(1, 2, 3, 0)
            self._check_padding(op, k, stride, pad)
        if step.cin != x.shape[-1]:
            raise WeightsError(f"{op.describe()}: weights {w_name} of shape {w.shape} expect {step.cin} input "
                               f"channels, but its input has {x.shape[-1]}")
        step.sources["w"] = w_name
        step.weights["b"], step.sources["b"] = self._bias(op, step.cout)
        step.act, chain = self._activation(op)
        step.output = chain.end
        return step, chain

    def _squeeze_excite(self, pool, cur):
        """pool -> 1x1 conv (reduce) + relu -> 1x1 conv (expand) + hard sigmoid -> MUL with the input.
        Returns the step, the block's output tensor and the next position."""
        self._check_global_pool(pool)
        channels = self.tensors[cur].shape[3]
        step = Step("se", pool, cur, channels, channels)
        hidden, pos = pool.outputs[0], pool.index + 1
        for part in ("reduce", "expand"):
            op = self._expect(pos, ("CONV_2D", "FULLY_CONNECTED"), hidden, f"the squeeze-excite {part} layer")
            w, w_name = self._constant(op, 1, "weights")
            if w.ndim not in (2, 4) or w.shape[1:-1] not in ((), (1, 1)):
                raise WeightsError(f"{op.describe()}: weights {w_name} of shape {w.shape} are not a 1x1 conv")
            w = w.reshape(w.shape[0], -1)  # (O, 1, 1, I) or (O, I) -> (O, I)
            if (w.shape[1],) != self.tensors[hidden].shape[-1:]:
                raise WeightsError(f"{op.describe()}: weights {w_name} of shape {w.shape} do not fit its input")
            b, b_name = self._bias(op, w.shape[0])
            act, chain = self._activation(op)
            if part == "reduce" and not act.fits("relu"):
                raise UnsupportedModelError(f"squeeze-excite reduce layer {op.describe()} has {act.describe()}; "
                                            "tinynet runs relu there")
            if part == "expand":
                b = b + self._hard_sigmoid_offset(op, act, chain)
            step.weights[f"{part}.w"], step.weights[f"{part}.b"] = w.T, b
            step.sources[f"{part}.w"], step.sources[f"{part}.b"] = w_name, b_name
            hidden, pos = chain.end, chain.next
        mul = self._expect(pos, ("MUL",), hidden, "the squeeze-excite scaling")
        if sorted(mul.inputs) != sorted((cur, hidden)) or mul.options["activation"] != 0:
            raise UnsupportedModelError(f"{mul.describe()} does not scale the block's features by the excite gate")
        return step, mul.outputs[0], mul.index + 1

    def _residual(self, op, cur, steps):
        other = [t for t in op.inputs if t != cur]
        if len(other) != 1 or self._is_constant(other[0]):
            raise UnsupportedModelError(f"{op.describe()} is not a residual connection (it should add two feature maps)")
        if op.options["activation"] != 0 or not steps or steps[-1].kind != "pw" or steps[-1].residual_from is not None:
            raise UnsupportedModelError(f"{op.describe()} adds a residual where tinynet expects none "
                                        "(only right after a linear projection conv)")
        steps[-1].residual_from = other[0]
        steps[-1].output = op.outputs[0]

    # ---- activations -------------------------------------------------------------------------

    def _activation(self, op):
        """What follows ``op``'s accumulator: its fused activation, separate elementwise operators, and
        the clamps of quantized tensors. Returns (Activation, _Chain).

        The result is compared with a candidate activation only where the result tensor can hold
        values: a ReLU that a converter dropped survives as a zero at the bottom of the output range,
        while a post-training range that stops short of 6 says nothing about a ReLU6."""
        chain = self._chain(op.outputs[0], op.index + 1)
        y = self._evaluate(op.outputs[0], chain.ops, GRID, self._fused(op))
        bounds = self.tensors[chain.end].real_range() or (-np.inf, np.inf)
        tolerance = self._tolerance([chain.end] + [c.outputs[0] for c in chain.ops])
        return Activation(GRID, np.clip(y, *bounds), bounds, tolerance), chain

    def _hard_sigmoid_offset(self, op, act, chain):
        """The shift ``s`` with gate(z) == hard_sigmoid(z + s); the caller adds it to the excite bias.

        Converters either keep the +3 of relu6(z + 3) / 6 as an ADD (s = 0) or fold it into the
        bias and fuse the relu6 into the conv (s = -3)."""
        z = np.linspace(-16.0, 16.0, 641)
        gate = np.clip(self._evaluate(op.outputs[0], chain.ops, z, self._fused(op)), *act.bounds)
        if np.all(np.diff(gate) >= -1e-9) and gate[0] < 0.5 < gate[-1]:
            shift = -float(np.interp(0.5, gate, z))
            if np.max(np.abs(gate - np.clip(hard_sigmoid(z + shift), *act.bounds))) <= act.tolerance + 0.01:
                return shift
        raise UnsupportedModelError(f"the squeeze-excite gate after {op.describe()} is not a hard sigmoid")

    def _chain(self, start, pos):
        """The run of elementwise operators from position ``pos`` on that compute a function of tensor
        ``start`` alone (with scalar constants)."""
        inside, ops = {start}, []
        pos = self._next_unskipped(pos)
        while pos < len(self.ops):
            op = self.ops[pos]
            variable = {t for t in op.inputs if not self._is_constant(t)}
            scalars = all(self._scalar(t) is not None for t in op.inputs if t not in variable)
            if op.name not in ELEMENTWISE or not variable or not variable <= inside or not scalars:
                break
            ops.append(op)
            inside.add(op.outputs[0])
            pos = self._next_unskipped(pos + 1)
        end = ops[-1].outputs[0] if ops else start
        members = {op.index for op in ops}
        for t in inside - {end}:
            outside = [o for o in self.consumers[t] if o not in members]
            if outside:
                raise UnsupportedModelError(f"operator {outside[0]} reads tensor {t} from the middle of the "
                                            f"elementwise operators {ops[0].index}..{ops[-1].index}")
        return _Chain(ops, end, pos)

    def _evaluate(self, start, ops, z, fused=None):
        """Run ``ops`` on the values ``z`` of tensor ``start`` (after the start op's fused activation),
        clamping each result to the range its quantized tensor can hold."""
        values = {start: ACTIVATIONS[fused](np.asarray(z, np.float64))}
        for op in ops:
            y = ELEMENTWISE[op.name](*(values[t] if t in values else self._scalar(t) for t in op.inputs))
            y = ACTIVATIONS[self._fused(op)](y)
            bounds = self.tensors[op.outputs[0]].real_range()
            values[op.outputs[0]] = y if bounds is None else np.clip(y, *bounds)
        return values[ops[-1].outputs[0]] if ops else values[start]

    def _tolerance(self, tensors):
        """One quantization step of the coarsest quantized tensor among ``tensors`` (those whose
        clamps the evaluation applies): TF puts range ends on the quantization grid, off by < 1 step."""
        steps = [float(self.tensors[t].scale[0]) for t in tensors if self.tensors[t].real_range() is not None]
        return 1e-3 + max(steps, default=0.0)

    @staticmethod
    def _fused(op):
        code = op.options.get("activation", 0)
        if code not in FUSED:
            raise UnsupportedModelError(f"{op.describe()} has fused activation function {code}, which tinynet does not run")
        return FUSED[code]

    # ---- checks and helpers ------------------------------------------------------------------

    @staticmethod
    def _check_conv_options(op, w):
        o = op.options
        if w.ndim != 4 or w.shape[1] != w.shape[2]:
            raise UnsupportedModelError(f"{op.describe()} has weights of shape {w.shape}; tinynet runs square kernels")
        if o["stride_h"] != o["stride_w"] or o["stride_h"] < 1:
            raise UnsupportedModelError(f"{op.describe()} has strides {o['stride_h']}x{o['stride_w']}; tinynet runs equal ones")
        if o["dilation_h"] != 1 or o["dilation_w"] != 1:
            raise UnsupportedModelError(f"{op.describe()} is dilated; tinynet does not run dilated convs")

    def _check_padding(self, op, k, stride, pad):
        """TF "SAME" padding, either by the conv itself or by a PAD before a "VALID" conv (Keras graphs),
        which must equal what "SAME" gives at the model's native input size."""
        padding = PADDINGS.get(op.options["padding"])
        if pad is None:
            if k > 1 and padding != "SAME":
                raise UnsupportedModelError(f"{op.describe()} uses VALID padding; tinynet runs TensorFlow SAME padding")
            return
        if padding != "VALID":
            raise UnsupportedModelError(f"{op.describe()} pads twice (an explicit PAD and SAME padding)")
        amounts = self._constant_raw(pad, 1).reshape(-1, 2)
        padded_from = self.tensors[pad.inputs[0]].shape
        if amounts.shape != (4, 2) or amounts[0].any() or amounts[3].any() or len(padded_from) != 4:
            raise UnsupportedModelError(f"{pad.describe()} does not pad only height and width")
        for axis in (1, 2):
            out, before = conv_output_size(padded_from[axis], k, stride, "tf_same")
            after = (out - 1) * stride + k - padded_from[axis] - before
            if tuple(int(a) for a in amounts[axis]) != (before, after):
                raise UnsupportedModelError(
                    f"{pad.describe()} pads {tuple(int(a) for a in amounts[axis])} before {op.describe()}, but "
                    f"TensorFlow SAME padding gives {(before, after)} at {padded_from[axis]} pixels")

    def _check_global_pool(self, op):
        x, y = self.tensors[op.inputs[0]].shape, self.tensors[op.outputs[0]].shape
        if op.name == "MEAN":
            axes = self._constant_raw(op, 1).ravel()
            ok = axes.size <= MAX_AXES and sorted(int(a) % 4 for a in axes) == [1, 2]
        else:
            ok = (op.options["filter_h"], op.options["filter_w"]) == tuple(x[1:3])
        if not ok or len(x) != 4 or int(np.prod(y, dtype=object)) != x[0] * x[3] or op.options.get("activation", 0):
            raise UnsupportedModelError(f"{op.describe()} is not a global average pool over height and width")

    def _is_identity_pool(self, op):
        x = self.tensors[op.inputs[0]].shape
        return (op.name == "AVERAGE_POOL_2D" and len(x) == 4 and x[1:3] == (1, 1)
                and (op.options["filter_h"], op.options["filter_w"]) == (1, 1) and op.options["activation"] == 0)

    def _scales_later(self, cur, pos):
        """Whether a later MUL reads ``cur``: then a pool of ``cur`` is a squeeze-excite gate, not the head."""
        return any(o > pos and self.ops[o].name == "MUL" for o in self.consumers[cur])

    def _expect(self, pos, names, reads, what):
        pos = self._next_unskipped(pos)
        op = self.ops[pos] if pos < len(self.ops) else None
        if op is None or op.name not in names or reads not in op.inputs:
            found = op.describe() if op else "the end of the graph"
            raise UnsupportedModelError(f"expected {what} ({' or '.join(names)} reading tensor {reads}), found {found}")
        return op

    def _next_unskipped(self, pos):
        while pos < len(self.ops) and pos in self.skip:
            pos += 1
        return pos

    def _is_constant(self, t):
        return t in self.constants or self.tensors[t].is_constant

    def _scalar(self, t):
        """The value of a one-element constant, else None."""
        if not self._is_constant(t):
            return None
        size = self.constants[t].size if t in self.constants else self.tensors[t].data.size
        return float(self._values(t).ravel()[0]) if size == 1 else None

    def _constant_raw(self, op, slot):
        t = op.inputs[slot] if len(op.inputs) > slot else -1
        if t < 0 or not self.tensors[t].is_constant:
            raise UnsupportedModelError(f"{op.describe()}: input {slot} is not a constant")
        return self.tensors[t].data

    def _constant(self, op, slot, what):
        """A constant input's real (dequantized) values as float64, and its name."""
        t = op.inputs[slot] if len(op.inputs) > slot else -1
        if t < 0 or not self._is_constant(t):
            raise UnsupportedModelError(f"{op.describe()}: its {what} are not constant")
        tensor = self.tensors[t]
        if t not in self.constants and not np.issubdtype(tensor.dtype, np.floating) and tensor.scale.size == 0:
            raise WeightsError(f"{op.describe()}: {what} {short_name(tensor)} are {tensor.dtype} without quantization scales")
        values = self._values(t)
        if values.size == 0:
            raise WeightsError(f"{op.describe()}: {what} {short_name(tensor)} are empty (shape {values.shape})")
        if not np.all(np.abs(values) <= np.finfo(np.float32).max):
            raise WeightsError(f"{op.describe()}: {what} {short_name(tensor)} hold values that are not finite float32")
        return values, short_name(tensor)

    def _bias(self, op, n):
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            return np.zeros(n), None
        b, name = self._constant(op, 2, "bias")
        if b.shape != (n,):
            raise WeightsError(f"{op.describe()}: bias {name} has shape {b.shape}, expected ({n},)")
        return b, name


def _snap(bounds):
    """The standard range within quantization noise of ``bounds``, else ``bounds`` rounded."""
    for standard in STANDARD_RANGES:
        if max(abs(a - b) for a, b in zip(bounds, standard)) < 0.02:
            return standard
    return tuple(round(b, 4) for b in bounds)
