"""A quantized TFLite graph run operator by operator on integers: ``Program``.

    program = Program(graph, profile="litert")     # graph: tinynet.formats.tflite_schema.Graph
    program.kernels                                # "xnnpack", or "optimized" where XNNPACK refuses the graph
    outputs = program.run([x])                     # x: the file's input (uint8/int8 bytes, or float32)

Tensors are named by their index in the file, as LiteRT names them; ``run(..., keep=True)`` returns every
tensor computed, which the conformance tests compare with LiteRT's to name the first operator that differs.
"""
import dataclasses

import numba
import numpy as np

from tinynet.errors import TinynetError, UnsupportedModelError
from tinynet.quantized.ops import OPERATORS, Quant, from_stored, to_stored

PROFILES = ("litert", "reference")


class Program:
    def __init__(self, graph, profile="litert", outputs=None):
        """``outputs``: tensor indices to compute instead of the graph's outputs (e.g. what a detection
        postprocess reads); only the operators they depend on run."""
        if profile not in PROFILES:
            raise TinynetError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
        self.graph, self.profile = graph, profile
        self.output_indices = tuple(graph.outputs if outputs is None else outputs)
        self.needed = _needed_operators(graph, self.output_indices)
        unknown = sorted({graph.operators[i].name for i in self.needed} - set(OPERATORS))
        if unknown:
            raise UnsupportedModelError(f"tinynet's integer path does not run {', '.join(unknown)}")
        self.kernels = "reference" if profile == "reference" else "xnnpack"
        self.operators = self._prepare(graph)
        self.refusal = next((f"{op.op.describe()}: {op.refusal}" for op in self.operators if op.refusal), None)
        if self.refusal:  # LiteRT's delegate would refuse the graph and LiteRT runs its own builtin kernels
            self.kernels = "optimized"
            self.operators = self._prepare(graph)
        self._subsets = {self.output_indices: self.operators}  # outputs -> the operators they need
        self.input_tensors = [graph.tensors[i] for i in graph.inputs]
        self.output_tensors = [graph.tensors[i] for i in self.output_indices]
        self._input_quants = [Quant.of(tensor) for tensor in self.input_tensors]
        self._quants = {}  # tensor index -> Quant.of its tensor, for the outputs returned

    @property
    def steps(self):
        """(kernel, arguments) per Numba kernel call of the operators, the arguments of the types they pass (not their
        values): what tinynet.warmup.compile_notice takes of a plan, so that a cold cache compiles these signatures
        only (the requantization and weight kinds of this file, not all four)."""
        return [call for op in self.operators for call in op.kernel_calls()]

    def _prepare(self, graph):
        ops = fold_pads(graph, [graph.operators[i] for i in self.needed], self.output_indices)
        return [OPERATORS[op.name](op, graph.tensors, self.kernels) for op in ops]

    def run(self, inputs, keep=False, workspace=None, outputs=None):
        """The graph outputs (the file's dtypes) for ``inputs`` (one array per graph input, the file's dtype).

        ``workspace``: a dict this call may keep output arrays in for the next call (one caller at a time); the
        outputs returned then live in it, valid until that next call. ``outputs``: some of the program's output
        tensors, computed alone (only the operators they need run)."""
        values = {}
        for tensor, quant, x in zip(self.input_tensors, self._input_quants, inputs):
            if x.shape != tensor.shape or x.dtype != tensor.dtype:
                raise TinynetError(f"input '{tensor.name}' must be {tensor.dtype} of shape {tensor.shape}, "
                                   f"got {x.dtype} {x.shape}")
            values[tensor.index] = to_stored(x, quant.signed) if quant else x
        wanted = self.output_indices if outputs is None else tuple(outputs)
        if workspace is None:
            for op in self._operators_for(wanted):
                op(values)
        else:  # the operators' steps, bound to this workspace's arrays once per thread count
            key = ("steps", wanted, numba.get_num_threads())
            if key not in workspace:
                workspace[key] = [op.bind(workspace) for op in self._operators_for(wanted)]
            for step in workspace[key]:
                step(values)
        if keep:
            return {i: self._as_file(i, v) for i, v in values.items()}
        return [self._as_file(i, values[i]) for i in wanted]

    def _operators_for(self, outputs):
        if outputs not in self._subsets:
            needed = set(_needed_operators(self.graph, outputs))
            self._subsets[outputs] = [op for op in self.operators if op.op.index in needed]
        return self._subsets[outputs]

    def _as_file(self, index, value):
        if index not in self._quants:
            self._quants[index] = Quant.of(self.graph.tensors[index])
        quant = self._quants[index]
        return from_stored(value, quant.signed) if quant and value.dtype == np.uint8 else value


PADDED_CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")
VALID = 1  # Conv2DOptions / DepthwiseConv2DOptions padding: 0 SAME, 1 VALID


def fold_pads(graph, operators, outputs):
    """``operators`` with each PAD whose only reader is a VALID convolution folded into it: the convolution reads
    the PAD's input with the PAD's amounts as its "explicit_padding" (top, bottom, left, right). The integer kernels
    treat border taps as the input's zero point, and a quantized PAD pads with exactly that (same quantization in
    and out), so the accumulators do not change. Keras's MobileNet V2 pads before each stride-2 depthwise conv:
    4 PADs, 0.29 of 3.6 ms of a forward as copies of their own. Only height and width may be padded; the PAD's
    output must not be a graph output (nor one asked for), and ``keep=True`` runs do not return it; no side may be
    padded beyond the kernel's reach, as SAME padding never is."""
    readers = {}
    for op in operators:
        for t in op.inputs:
            readers.setdefault(t, []).append(op)
    folded, rewritten = set(), {}
    for op in operators:
        if op.name != "PAD" or len(op.inputs) != 2 or op.outputs[0] in outputs:
            continue
        amounts, (x, y) = graph.tensors[op.inputs[1]].data, (graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]])
        reader = readers.get(op.outputs[0], [])
        if (amounts is None or amounts.shape != (4, 2) or amounts[[0, 3]].any() or (amounts < 0).any()
                or len(reader) != 1 or reader[0].name not in PADDED_CONVOLUTIONS
                or reader[0].inputs[0] != op.outputs[0] or reader[0].options.get("padding") != VALID
                or Quant.of(x) is None or Quant.of(x) != Quant.of(y)):
            continue
        conv = reader[0]
        (top, bottom), (left, right) = amounts[1].tolist(), amounts[2].tolist()
        kh, kw = graph.tensors[conv.inputs[1]].shape[1:3]
        reach_h, reach_w = ((k - 1) * conv.options.get(f"dilation_{a}", 1) for k, a in ((kh, "h"), (kw, "w")))
        if max(top, bottom) > reach_h or max(left, right) > reach_w:
            continue  # outputs of padding alone: a case SAME never makes, kept as a PAD of its own
        rewritten[conv.index] = dataclasses.replace(
            conv, inputs=(op.inputs[0], *conv.inputs[1:]),
            options={**conv.options, "explicit_padding": (int(top), int(bottom), int(left), int(right))})
        folded.add(op.index)
    return [rewritten.get(op.index, op) for op in operators if op.index not in folded]


def _needed_operators(graph, outputs):
    """Indices of the operators that ``outputs`` depend on, in file (execution) order."""
    producer = {t: i for i, op in enumerate(graph.operators) for t in op.outputs}
    needed, stack = set(), [t for t in outputs]
    while stack:
        i = producer.get(stack.pop())
        if i is not None and i not in needed:
            needed.add(i)
            stack.extend(t for t in graph.operators[i].inputs if t >= 0)
    return sorted(needed)
