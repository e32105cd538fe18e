"""Read a TF Object Detection API SSD .tflite into a graph of named tensors.

    detection = read_detection_graph(read_graph(data))

Such a file (e.g. ssd_mobilenet_v1 exported with TFLite_Detection_PostProcess) is a MobileNet backbone, extra
feature layers, and per feature map two 1x1 box-predictor convs (box encodings, class logits) whose outputs are
RESHAPEd to (1, anchors, 4) and (1, anchors, classes), CONCATENATEd over the maps, the class logits put through
a LOGISTIC, and all three (with the anchors, a constant) handed to the custom operator.

Each operator becomes a tinynet.formats.tflite_dag ``Node`` (the reader of those operators is shared with the
segmentation files'), with the (lo, step, levels) grid its output tensor holds: a uint8 graph rounds
there (the head outputs, the concatenations that requantize them, the LOGISTIC's 1/256 steps), and an engine
that rounds at the same places reproduces the file's detections (see tests/test_tflite_detection.py).
"""
from dataclasses import dataclass

import numpy as np

from tinynet.detection.tflite_postprocess import PostprocessOptions, dequantize
from tinynet.errors import UnsupportedModelError, WeightsError
from tinynet.formats.tflite_dag import DagReader, uint8_quant
from tinynet.formats.tflite_graph import short_name

POSTPROCESS = "CUSTOM 'TFLite_Detection_PostProcess'"


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


def is_detection_graph(graph):
    """Whether ``graph`` ends in TFLite_Detection_PostProcess (so tflite_graph.walk does not apply)."""
    return any(op.name == POSTPROCESS for op in graph.operators)


def read_detection_graph(graph):
    """The DetectionGraph of ``graph`` (tflite_schema.Graph); UnsupportedModelError names the first operator that
    does not fit, WeightsError a corrupt one."""
    return _DetectionReader(graph).run()


class _DetectionReader(DagReader):
    WHAT = "an SSD detector"
    RUNS = "CONV_2D, DEPTHWISE_CONV_2D, RESHAPE, CONCATENATION, LOGISTIC and TFLite_Detection_PostProcess"

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
                              tuple(source.shape[1:3]), input_range, uint8_quant(source), nodes, self._read(op, op.inputs[0]),
                              self._read(op, op.inputs[1]), anchor_values, options, uint8)
