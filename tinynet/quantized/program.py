"""A quantized TFLite graph run operator by operator on integers: ``Program``.

    program = Program(graph, profile="litert")     # graph: tinynet.formats.tflite_schema.Graph
    program.kernels                                # "xnnpack", or "optimized" where XNNPACK refuses the graph
    outputs = program.run([x])                     # x: the file's input (uint8/int8 bytes, or float32)

Tensors are named by their index in the file, as LiteRT names them; ``run(..., keep=True)`` returns every
tensor computed, which the conformance tests compare with LiteRT's to name the first operator that differs.
"""
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
        return [OPERATORS[graph.operators[i].name](graph.operators[i], graph.tensors, self.kernels) for i in self.needed]

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
