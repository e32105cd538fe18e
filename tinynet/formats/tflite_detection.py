"""Read a TF Object Detection API SSD .tflite into a graph of named tensors.

    detection = read_detection_graph(read_graph(data))

Such a file (e.g. ssd_mobilenet_v1 exported with TFLite_Detection_PostProcess) is a MobileNet backbone, extra
feature layers, and per feature map two 1x1 box-predictor convs (box encodings, class logits) whose outputs are
RESHAPEd to (1, anchors, 4) and (1, anchors, classes), CONCATENATEd over the maps, the class logits put through
a LOGISTIC, and all three (with the anchors, a constant) handed to the custom operator. Unlike the classifier
path (tflite_graph.walk, one chain), any tensor may be read by several operators (the heads tap the backbone).

Each operator becomes a ``Node`` naming the tensors it reads and the one it writes, in execution order; convs
carry their weights in tinynet's runtime layout (as tflite_graph gives them) and their activation, and every
node of a quantized graph carries the (lo, step, levels) grid its output tensor holds: a uint8 graph rounds
there (the head outputs, the concatenations that requantize them, the LOGISTIC's 1/256 steps), and an engine
that rounds at the same places reproduces the file's detections (see tests/test_tflite_detection.py).
"""
from dataclasses import dataclass, field

import numpy as np

from tinynet.detection.tflite_postprocess import PostprocessOptions, dequantize
from tinynet.errors import UnsupportedModelError, WeightsError
from tinynet.formats.tflite_graph import _Walker, short_name

POSTPROCESS = "CUSTOM 'TFLite_Detection_PostProcess'"
ACTIVATION_PREFERENCE = ("relu6", "relu", None)  # in a quantized graph several fit: the output range clamps
SHAPE_OPS = ("RESHAPE", "SQUEEZE")
KINDS = {"conv": "CONV_2D", "dw": "DEPTHWISE_CONV_2D", "pw": "CONV_2D 1x1", "reshape": "RESHAPE",
         "concat": "CONCATENATION", "sigmoid": "LOGISTIC"}


@dataclass
class Node:
    kind: str  # "conv" (k x k), "dw", "pw", "reshape", "concat", "sigmoid"
    name: str  # the tensor it writes
    inputs: tuple  # the tensors it reads (constants excluded)
    shape: tuple  # of its output, batch first
    k: int = 1
    stride: int = 1
    act: str = None  # "relu6", "relu" or None, for convs
    weights: dict = field(default_factory=dict)  # "w", "b": float64 (exact dequantized values), tinynet's layout
    axis: int = None  # concat: the output axis joined (>= 1)
    grid: tuple = None  # (lo, step, levels) of the quantized output tensor; None in float graphs
    quant: tuple = None  # (scale, zero_point) of a per-tensor uint8 output, else None
    integer: dict = None  # convs of uint8 graphs: the integer arithmetic LiteRT runs (see _integer_conv)


@dataclass
class DetectionGraph:
    input: str  # the input tensor's name
    input_size: tuple  # (height, width)
    input_range: tuple  # (lo, hi): the real values the first conv sees for input bytes 0 and 255
    input_quant: tuple  # (scale, zero_point) of the uint8 input
    nodes: list
    box_encodings: str  # tensor (1, anchors, 4) the postprocess reads
    class_scores: str  # tensor (1, anchors, classes + background columns), after the LOGISTIC
    anchors: np.ndarray  # (anchors, 4) float32 ycenter, xcenter, h, w, dequantized as TFLite does
    options: PostprocessOptions
    uint8: bool  # quantized weights (TF1 QAT export)

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)


def _uint8_quant(tensor):
    """(scale, zero_point) of a per-tensor quantized uint8 tensor, else None."""
    if tensor.dtype != np.uint8 or tensor.scale.size != 1:
        return None
    return float(tensor.scale[0]), int(tensor.zero_point[0]) if tensor.zero_point.size else 0


def is_detection_graph(graph):
    """Whether ``graph`` ends in TFLite_Detection_PostProcess (so tflite_graph.walk does not apply)."""
    return any(op.name == POSTPROCESS for op in graph.operators)


def read_detection_graph(graph):
    """The DetectionGraph of ``graph`` (tflite_schema.Graph); UnsupportedModelError names the first operator that
    does not fit, WeightsError a corrupt one."""
    return _DetectionReader(graph).run()


class _DetectionReader(_Walker):
    """tflite_graph's walker, reused for what a conv is (weights, padding, activation chains), over a DAG."""

    def run(self):
        if len(self.graph.inputs) != 1:
            raise UnsupportedModelError(f"the graph has {len(self.graph.inputs)} inputs; a detector has one")
        source = self.tensors[self.graph.inputs[0]]
        if len(source.shape) != 4 or source.shape[0] != 1 or source.shape[3] != 3:
            raise UnsupportedModelError(f"input {source.describe()} has shape {source.shape}; expected (1, H, W, 3)")
        input_range, chain = self._input_range(source)
        self.names = {}  # tensor index -> node name
        self.names[chain.end] = self._name(chain.end)
        nodes, postprocess = [], None
        pos = chain.next
        while pos < len(self.ops):
            op = self.ops[pos]
            if op.index in self.skip:
                pos += 1
                continue
            if postprocess is not None:
                raise UnsupportedModelError(f"{op.describe()} follows TFLite_Detection_PostProcess; tinynet runs it last")
            if op.name == POSTPROCESS:
                postprocess = op
                pos += 1
                continue
            node, pos = self._node(op)
            nodes.append(node)
        if postprocess is None:
            raise UnsupportedModelError("the graph has no TFLite_Detection_PostProcess operator")
        return self._finish(source, input_range, nodes, postprocess)

    def _input_range(self, source):
        """The exact real values of input bytes 0 and 255 (no snapping to [-1, 1]: (q - 128) / 128 tops out at
        127/128, and a detector's scores near a threshold feel the difference)."""
        chain = self._chain(source.index, 0)
        nominal = source.real_range()
        if nominal is None or chain.ops:
            raise UnsupportedModelError(f"input {source.describe()} is not a plain uint8 image; tinynet reads "
                                        "uint8 TF Object Detection API SSD files")
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
            node = Node(step.kind, None, (self._read(op, op.inputs[0]),), None, step.k, step.stride, act, step.weights)
            node.integer = self._integer_conv(op) if not chain.ops else None
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
        raise UnsupportedModelError(f"{op.describe()} is not part of an SSD detector tinynet runs "
                                    f"(it runs {', '.join(sorted(set(KINDS.values())))} and TFLite_Detection_PostProcess)")

    def _named(self, node, t):
        tensor = self.tensors[t]
        node.name = self.names[t] = self._name(t)
        node.shape = tensor.shape
        node.grid = tensor.grid()
        node.quant = _uint8_quant(tensor)
        return node

    def _integer_conv(self, op):
        """What LiteRT computes for a uint8 conv (XNNPACK's "fp32" requantization), or None for other graphs:
        acc = sum((q_x - zp_x) * (q_w - zp_w)) + bias_q exactly, then q - zp_out = round-half-even(clamp(
        float32(acc) * scale, lo, hi)), scale = float32(s_x) * float32(s_w) / float32(s_out) in float32, lo..hi the
        output range (and a fused ReLU/ReLU6) in units of s_out. ``w``/``b``: integer weights (q_w - zp_w, runtime
        layout) and bias_q, as float64."""
        x, w, out = (_uint8_quant(self.tensors[t]) for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
        bias = self.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        if None in (x, w, out) or bias is None or bias.dtype != np.int32 or bias.data is None:
            return None
        step, _ = self._conv(op, op.inputs[0], None, False)
        scale = np.float32(x[0]) * np.float32(w[0]) / np.float32(out[0])
        lo, hi = -out[1], 255 - out[1]
        fused = op.options.get("activation", 0)
        if fused in (1, 3):
            lo = max(lo, 0)
        if fused == 3:
            hi = min(hi, int(np.rint(np.float32(6) / np.float32(out[0]))))
        return {"w": np.rint(step.weights["w"] / w[0]), "b": bias.data.astype(np.float64), "scale": float(scale),
                "lo": lo, "hi": hi}

    def _check_concat_shapes(self, op, axis):
        shapes = [self.tensors[t].shape for t in op.inputs]
        out = self.tensors[op.outputs[0]].shape
        rest = {s[:axis] + s[axis + 1:] for s in shapes} | {out[:axis] + out[axis + 1:]}
        if len(rest) != 1 or sum(s[axis] for s in shapes) != out[axis]:
            raise WeightsError(f"corrupt TFLite graph: {op.describe()} joins shapes {shapes} into {out}")

    def _finish(self, source, input_range, nodes, op):
        if len(op.inputs) != 3 or len(op.outputs) != 4:
            raise WeightsError(f"corrupt TFLite graph: {op.describe()} has inputs {op.inputs} and outputs {op.outputs}")
        options = PostprocessOptions.from_flexbuffer(op.custom_options, f"{op.describe()} options")
        encodings, scores, anchors = (self.tensors[t] for t in op.inputs)
        if not anchors.is_constant:
            raise UnsupportedModelError(f"{op.describe()}: its anchors {anchors.describe()} are not a constant")
        n = anchors.shape[0] if len(anchors.shape) == 2 else -1
        if (anchors.shape != (n, 4) or encodings.shape != (1, n, 4) or len(scores.shape) != 3
                or scores.shape[:2] != (1, n) or not 0 <= scores.shape[2] - options.num_classes <= 1):
            raise UnsupportedModelError(f"{op.describe()} reads encodings {encodings.shape}, scores {scores.shape} and "
                                        f"anchors {anchors.shape}, which do not fit {options.num_classes} classes")
        if anchors.dtype == np.uint8 and anchors.scale.size == 1:
            zero_point = anchors.zero_point[0] if anchors.zero_point.size else 0
            anchor_values = dequantize(anchors.data, anchors.scale[0], zero_point)
        elif anchors.dtype == np.float32:
            anchor_values = np.array(anchors.data, np.float32)
        else:
            raise UnsupportedModelError(f"{op.describe()}: anchors {anchors.describe()} are {anchors.dtype}; "
                                        "tinynet reads float32 or per-tensor uint8 anchors")
        uint8 = all(self.tensors[o.inputs[1]].dtype == np.uint8 for o in self.ops
                    if o.name in ("CONV_2D", "DEPTHWISE_CONV_2D"))
        return DetectionGraph(self.names[source.index] if source.index in self.names else short_name(source),
                              tuple(source.shape[1:3]), input_range, _uint8_quant(source), nodes, self._read(op, op.inputs[0]),
                              self._read(op, op.inputs[1]), anchor_values, options, uint8)
