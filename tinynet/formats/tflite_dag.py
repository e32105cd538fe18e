"""Read the operators of a TFLite graph into named-tensor ``Node``s: the shared part of tinynet's readers of
dense-task files (tinynet.formats.tflite_detection for SSD detectors, tflite_segmentation for DeepLab).

Unlike the classifier path (tflite_graph.walk, one chain), any tensor may be read by several operators (heads tap
the backbone). Each operator becomes a ``Node`` naming the tensors it reads and the one it writes, in execution
order; convs carry their weights in tinynet's runtime layout (as tflite_graph gives them) and their activation, and
every node of a quantized graph carries the (lo, step, levels) grid its output tensor holds, so that an engine can
round where the file rounds. ``DagReader._node`` reads the operators both readers meet (convs, reshapes,
concatenations, LOGISTIC); a reader handles its own operators first and hands the rest to it.
"""
from dataclasses import dataclass, field

import numpy as np

from tinynet.errors import UnsupportedModelError, WeightsError
from tinynet.formats.tflite_graph import _Walker, short_name

ACTIVATION_PREFERENCE = ("relu6", "relu", None)  # in a quantized graph several fit: the output range clamps
SHAPE_OPS = ("RESHAPE", "SQUEEZE")


@dataclass
class Node:
    kind: str  # "conv" (k x k), "dw", "pw", "reshape", "concat", "sigmoid"; a reader may add its own
    name: str  # the tensor it writes
    inputs: tuple  # the tensors it reads (constants excluded)
    shape: tuple  # of its output, batch first
    k: int = 1
    stride: int = 1
    act: str = None  # "relu6", "relu" or None, for convs
    dilation: int = 1  # convs: taps this many pixels apart
    weights: dict = field(default_factory=dict)  # "w", "b": float64 (exact dequantized values), tinynet's layout
    axis: int = None  # concat: the output axis joined (>= 1)
    grid: tuple = None  # (lo, step, levels) of the quantized output tensor; None in float graphs
    quant: tuple = None  # (scale, zero_point) of a per-tensor uint8 output, else None
    options: dict = field(default_factory=dict)  # what a reader's own kinds need (a resize's size, ...)


def uint8_quant(tensor):
    """(scale, zero_point) of a per-tensor quantized uint8 tensor, else None."""
    if tensor.dtype != np.uint8 or tensor.scale.size != 1:
        return None
    return float(tensor.scale[0]), int(tensor.zero_point[0]) if tensor.zero_point.size else 0


class DagReader(_Walker):
    """tflite_graph's walker, reused for what a conv is (weights, padding, activation chains), over a DAG.
    ``WHAT`` and ``RUNS`` name the kind of file and the operators a subclass reads, for messages."""

    WHAT = "a graph"
    RUNS = "CONV_2D, DEPTHWISE_CONV_2D, RESHAPE, CONCATENATION, LOGISTIC"

    def _input_range(self, source):
        """The exact real values of input bytes 0 and 255 (no snapping to [-1, 1]: (q - 128) / 128 tops out at
        127/128, and a detector's scores near a threshold feel the difference)."""
        chain = self._chain(source.index, 0)
        nominal = source.real_range()
        if nominal is None or chain.ops:
            raise UnsupportedModelError(f"input {source.describe()} is not a plain uint8 image, the input of "
                                        f"{self.WHAT} tinynet reads")
        return tuple(float(v) for v in nominal), chain

    def _name(self, t):
        name = short_name(self.tensors[t])
        if name in self.names.values():
            name = f"{name}#{t}"
        return name

    def _read(self, op, t):
        if t not in self.names:
            raise UnsupportedModelError(f"{op.describe()} reads tensor {t}, which no earlier operator writes")
        return self.names[t]

    def _node(self, op):
        """The Node for ``op`` and the position after it (and after an activation chain it carries)."""
        variable = [t for t in op.inputs if t >= 0 and not self._is_constant(t)]
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            if len(op.inputs) not in (2, 3) or len(op.outputs) != 1 or len(variable) != 1 or op.inputs[0] != variable[0]:
                raise WeightsError(f"corrupt TFLite graph: {op.describe()} has inputs {op.inputs} and outputs {op.outputs}")
            step, chain = self._conv(op, op.inputs[0], None, False)
            act = next((a for a in ACTIVATION_PREFERENCE if step.act.fits(a)), "?")
            if act == "?":
                raise UnsupportedModelError(f"{step.describe()}: tinynet runs relu, relu6 or no activation there")
            node = Node(step.kind, None, (self._read(op, op.inputs[0]),), None, step.k, step.stride, act,
                        op.options["dilation_h"], step.weights)
            return self._named(node, chain.end), chain.next
        if len(op.outputs) != 1 or not variable:
            raise WeightsError(f"corrupt TFLite graph: {op.describe()} has inputs {op.inputs} and outputs {op.outputs}")
        inputs = tuple(self._read(op, t) for t in variable)
        if op.name in SHAPE_OPS and len(variable) == 1:
            if int(np.prod(self.tensors[variable[0]].shape)) != int(np.prod(self.tensors[op.outputs[0]].shape)):
                raise WeightsError(f"corrupt TFLite graph: {op.describe()} changes the number of elements")
            return self._named(Node("reshape", None, inputs, None), op.outputs[0]), op.index + 1
        if op.name == "CONCATENATION" and len(variable) == len(op.inputs):
            rank = len(self.tensors[op.outputs[0]].shape)
            axis = op.options["axis"] + (rank if op.options["axis"] < 0 else 0)
            if not 1 <= axis < rank or op.options["activation"] != 0:
                raise UnsupportedModelError(f"{op.describe()} joins axis {op.options['axis']} (or has an activation); "
                                            "tinynet joins head outputs along a non-batch axis")
            self._check_concat_shapes(op, axis)
            return self._named(Node("concat", None, inputs, None, axis=axis), op.outputs[0]), op.index + 1
        if op.name == "LOGISTIC" and len(op.inputs) == 1:
            return self._named(Node("sigmoid", None, inputs, None), op.outputs[0]), op.index + 1
        raise UnsupportedModelError(f"{op.describe()} is not part of {self.WHAT} tinynet runs (it runs {self.RUNS})")

    def _named(self, node, t):
        tensor = self.tensors[t]
        node.name = self.names[t] = self._name(t)
        node.shape = tensor.shape
        node.grid = tensor.grid()
        node.quant = uint8_quant(tensor)
        return node

    def _check_concat_shapes(self, op, axis):
        shapes = [self.tensors[t].shape for t in op.inputs]
        out = self.tensors[op.outputs[0]].shape
        rest = {s[:axis] + s[axis + 1:] for s in shapes} | {out[:axis] + out[axis + 1:]}
        if len(rest) != 1 or sum(s[axis] for s in shapes) != out[axis]:
            raise WeightsError(f"corrupt TFLite graph: {op.describe()} joins shapes {shapes} into {out}")
