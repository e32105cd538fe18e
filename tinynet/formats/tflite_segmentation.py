"""Read a DeepLab segmentation .tflite (TF DeepLab's MobileNet V2 exports) into a graph of named tensors.

    segmentation = read_segmentation_graph(read_graph(data))

Such a file is a MobileNet V2 backbone whose last blocks are dilated (atrous), a head of 1x1 convs, image pooling
(AVERAGE_POOL_2D over the whole map, a 1x1 conv, RESIZE_BILINEAR back), a CONCATENATION along channels and a 1x1
conv to the class logits, then a RESIZE_BILINEAR to the input size and an ARG_MAX over the classes (int64). The
reader stops before that last resize: the logits, the resize's conventions and (uint8 graphs) the grid its output
is rounded to are the graph's output, and the model resizes them to whatever size it needs.

Two spellings of a float graph are folded on reading (the float dm0.5 file has both):

- SPACE_TO_BATCH_ND -> DEPTHWISE_CONV_2D (VALID) -> BATCH_TO_SPACE_ND: TF's atrous conv. It is the depthwise conv
  dilated by the block size, with the paddings minus the crops as its padding: one dilated "dw" node (refused
  unless that padding is TensorFlow SAME's for the dilated kernel, which tinynet runs).
- MUL and ADD by per-channel constants after a conv with no activation: BatchNorm left unfolded; folded into
  the conv's weights and bias, the ADD's activation becoming the conv's.

Nodes (tinynet.formats.tflite_dag.Node) beyond the shared ones: "add" (two maps), "image_pool" (global average
pool), "resize" (options size, align_corners, half_pixel_centers), "quantize" (QUANTIZE: the same values on
another uint8 grid).
"""
from dataclasses import dataclass, replace

import numpy as np

from tinynet.errors import UnsupportedModelError, WeightsError
from tinynet.formats.tflite_dag import ACTIVATION_PREFERENCE, DagReader, Node, uint8_quant
from tinynet.formats.tflite_graph import PADDINGS, short_name
from tinynet.kernels import conv_output_size

FLOAT_INPUT_RANGE = (-1.0, 1.0)  # a float DeepLab file takes x / 127.5 - 1 (its input is TF's "sub_7")


@dataclass
class SegmentationGraph:
    input: str  # the input tensor's name
    input_size: tuple  # (height, width)
    input_range: tuple  # (lo, hi): the real values the first conv sees for input bytes 0 and 255
    nodes: list
    logits: str  # the tensor (1, h, w, classes) the final resize reads
    align_corners: bool  # the final resize's conventions
    half_pixel_centers: bool
    output_grid: tuple  # (lo, step, levels) the resized logits are rounded to before the ARG_MAX; None if float
    uint8: bool  # quantized weights (TF1 QAT export)


def is_segmentation_graph(graph):
    """Whether ``graph`` ends in an ARG_MAX over the channels of a (1, H, W, C) map: a segmentation network."""
    if len(graph.outputs) != 1 or not graph.operators or graph.operators[-1].name != "ARG_MAX":
        return False
    op = graph.operators[-1]
    return op.outputs == tuple(graph.outputs) and bool(op.inputs) and op.inputs[0] >= 0 and \
        len(graph.tensors[op.inputs[0]].shape) == 4


def read_segmentation_graph(graph):
    """The SegmentationGraph of ``graph`` (tflite_schema.Graph); UnsupportedModelError names the first operator that
    does not fit, WeightsError a corrupt one."""
    return _SegmentationReader(graph).run()


class _SegmentationReader(DagReader):
    WHAT = "a DeepLab segmentation network"
    RUNS = ("CONV_2D, DEPTHWISE_CONV_2D (also dilated, or as SPACE_TO_BATCH_ND ... BATCH_TO_SPACE_ND), ADD, MUL, "
            "AVERAGE_POOL_2D, RESIZE_BILINEAR, CONCATENATION, QUANTIZE and a final ARG_MAX")

    def run(self):
        if len(self.graph.inputs) != 1:
            raise UnsupportedModelError(f"the graph has {len(self.graph.inputs)} inputs; a segmentation network "
                                        "has one")
        source = self.tensors[self.graph.inputs[0]]
        if len(source.shape) != 4 or source.shape[0] != 1 or source.shape[3] != 3:
            raise UnsupportedModelError(f"input {source.describe()} has shape {source.shape}; expected (1, H, W, 3)")
        if source.dtype == np.float32 and not self._chain(source.index, 0).ops:
            input_range, chain = FLOAT_INPUT_RANGE, self._chain(source.index, 0)
        else:
            input_range, chain = self._input_range(source)
        self.names = {}  # tensor index -> node name
        self.names[chain.end] = self._name(chain.end)
        nodes, pos = [], chain.next
        last = self.ops[-1]
        while pos < last.index:
            op = self.ops[pos]
            if op.index in self.skip:
                pos += 1
                continue
            node, pos = self._node(op)
            nodes.append(node)
        return self._finish(source, input_range, nodes, last)

    def _finish(self, source, input_range, nodes, argmax):
        resize = nodes.pop() if nodes and nodes[-1].kind == "resize" else None
        axis = self._constant_raw(argmax, 1).ravel()
        if resize is None or resize.name != self._read(argmax, argmax.inputs[0]) or \
                tuple(resize.shape[1:3]) != tuple(source.shape[1:3]):
            raise UnsupportedModelError(f"{argmax.describe()} does not read the logits resized to the input size")
        if axis.size != 1 or int(axis[0]) % 4 != 3:
            raise UnsupportedModelError(f"{argmax.describe()} is not over the channels (axis {axis.tolist()})")
        uint8 = all(self.tensors[o.inputs[1]].dtype == np.uint8 for o in self.ops
                    if o.name in ("CONV_2D", "DEPTHWISE_CONV_2D"))
        return SegmentationGraph(self.names.get(source.index, short_name(source)), tuple(source.shape[1:3]),
                                 tuple(float(v) for v in input_range), nodes, resize.inputs[0],
                                 resize.options["align_corners"], resize.options["half_pixel_centers"], resize.grid,
                                 uint8)

    # ---- operators --------------------------------------------------------------------------------------------

    def _node(self, op):
        variable = [t for t in op.inputs if t >= 0 and not self._is_constant(t)]
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            node, pos = super()._node(op)
            return self._folded_batch_norm(node, self.ops[pos - 1])
        if len(op.outputs) != 1 or not variable:
            raise WeightsError(f"corrupt TFLite graph: {op.describe()} has inputs {op.inputs} and outputs {op.outputs}")
        if op.name == "SPACE_TO_BATCH_ND":
            node, last = self._space_to_batch_conv(op)
            return self._folded_batch_norm(node, last)
        inputs = tuple(self._read(op, t) for t in variable)
        if op.name == "ADD" and len(variable) == 2 and len(op.inputs) == 2:
            if op.options["activation"] != 0:
                raise UnsupportedModelError(f"{op.describe()} adds two maps with an activation; tinynet adds plainly")
            shapes = {self.tensors[t].shape for t in (*op.inputs, op.outputs[0])}
            if len(shapes) != 1:
                raise UnsupportedModelError(f"{op.describe()} adds tensors of shapes {sorted(shapes)}; tinynet adds "
                                            "maps of one shape")
            return self._named(Node("add", None, inputs, None), op.outputs[0]), op.index + 1
        if op.name == "AVERAGE_POOL_2D" and len(op.inputs) == 1:
            self._check_global_pool(op)
            return self._named(Node("image_pool", None, inputs, None), op.outputs[0]), op.index + 1
        if op.name == "RESIZE_BILINEAR" and len(op.inputs) == 2:
            size = tuple(int(v) for v in self._constant_raw(op, 1).ravel())
            if size != tuple(self.tensors[op.outputs[0]].shape[1:3]):
                raise WeightsError(f"corrupt TFLite graph: {op.describe()} resizes to {size}, but its output is "
                                   f"{self.tensors[op.outputs[0]].shape}")
            if op.options["align_corners"] and op.options["half_pixel_centers"]:
                raise UnsupportedModelError(f"{op.describe()} sets both align_corners and half_pixel_centers")
            node = Node("resize", None, inputs, None, options={"size": size, **op.options})
            return self._named(node, op.outputs[0]), op.index + 1
        if op.name == "QUANTIZE" and len(op.inputs) == 1 and uint8_quant(self.tensors[op.outputs[0]]) is not None:
            return self._named(Node("quantize", None, inputs, None), op.outputs[0]), op.index + 1
        return super()._node(op)

    def _check_conv_options(self, op, w):
        """tflite_graph's checks, dilation allowed (the same along both axes)."""
        o = op.options
        if o["dilation_h"] != o["dilation_w"] or o["dilation_h"] < 1:
            raise UnsupportedModelError(f"{op.describe()} has dilations {o['dilation_h']}x{o['dilation_w']}; tinynet "
                                        "runs equal ones")
        super()._check_conv_options(replace(op, options={**o, "dilation_h": 1, "dilation_w": 1}), w)

    def _space_to_batch_conv(self, space_to_batch):
        """SPACE_TO_BATCH_ND -> DEPTHWISE_CONV_2D (VALID, stride 1) -> BATCH_TO_SPACE_ND as one dilated "dw" Node;
        returns it and the BATCH_TO_SPACE_ND operator."""
        what = "the dilated depthwise conv SPACE_TO_BATCH_ND -> DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND"
        conv = self._expect(space_to_batch.index + 1, ("DEPTHWISE_CONV_2D",), space_to_batch.outputs[0], what)
        if len(conv.outputs) != 1 or len(conv.inputs) not in (2, 3) or conv.inputs[0] != space_to_batch.outputs[0]:
            raise WeightsError(f"corrupt TFLite graph: {conv.describe()} has inputs {conv.inputs} and outputs "
                               f"{conv.outputs}")
        back = self._expect(conv.index + 1, ("BATCH_TO_SPACE_ND",), conv.outputs[0], what)
        for op in (space_to_batch, back):
            if len(op.inputs) != 3 or len(op.outputs) != 1 or op.inputs[0] < 0:
                raise WeightsError(f"corrupt TFLite graph: {op.describe()} has inputs {op.inputs}")
        block, pads = (self._constant_raw(space_to_batch, i).astype(np.int64) for i in (1, 2))
        back_block, crops = (self._constant_raw(back, i).astype(np.int64) for i in (1, 2))
        x, y = (self.tensors[t].shape for t in (space_to_batch.inputs[0], back.outputs[0]))
        w, w_name = self._constant(conv, 1, "weights")
        if block.shape != (2,) or block[0] != block[1] or block.tolist() != back_block.ravel().tolist() or \
                pads.shape != (2, 2) or crops.shape != (2, 2) or len(x) != 4 or tuple(y) != tuple(x):
            raise UnsupportedModelError(f"{what} at {conv.describe()} is not a square dilation keeping the map's size")
        o = conv.options
        if PADDINGS.get(o["padding"]) != "VALID" or (o["stride_h"], o["stride_w"]) != (1, 1) or \
                (o["dilation_h"], o["dilation_w"]) != (1, 1) or w.ndim != 4 or w.shape[0] != 1 or \
                w.shape[1] != w.shape[2] or w.shape[3] != x[3]:
            raise UnsupportedModelError(f"{conv.describe()} inside SPACE_TO_BATCH_ND is not a VALID stride-1 "
                                        f"depthwise conv of square weights (weights {w_name} {w.shape})")
        rate, k = int(block[0]), w.shape[1]
        for axis in (0, 1):
            size, pad_before = conv_output_size(x[1 + axis], k, 1, "tf_same", rate)
            if (size, pad_before) != (x[1 + axis], int(pads[axis, 0] - crops[axis, 0])):
                raise UnsupportedModelError(f"{what} at {conv.describe()} pads {pads[axis].tolist()} and crops "
                                            f"{crops[axis].tolist()}: not TensorFlow SAME padding of the dilated conv")
        bias, _ = self._bias(conv, x[3])
        act = self._fused(conv)
        node = Node("dw", None, (self._read(space_to_batch, space_to_batch.inputs[0]),), None, k, 1, act, rate,
                    {"w": w[0], "b": bias})
        return self._named(node, back.outputs[0]), back

    def _folded_batch_norm(self, node, last):
        """``node`` with a following MUL and ADD by per-channel constants (an unfolded BatchNorm) folded into its
        weights and bias, and the position after what it took."""
        channels = node.weights["b"].shape[0]
        mul = self._per_channel_op(last.index + 1, "MUL", last.outputs[0], channels)
        add = mul and self._per_channel_op(mul[0].index + 1, "ADD", mul[0].outputs[0], channels)
        if node.act is not None or last.options.get("activation", 0) or not add:
            return node, last.index + 1
        (mul, scale), (add, shift) = mul, add
        step_act, chain = self._activation(add)
        act = next((a for a in ACTIVATION_PREFERENCE if step_act.fits(a)), "?")
        if act == "?":
            raise UnsupportedModelError(f"{add.describe()}: tinynet runs relu, relu6 or no activation there")
        node.weights = {"w": node.weights["w"] * scale, "b": node.weights["b"] * scale + shift}
        node.act = act
        return self._named(node, chain.end), chain.next

    def _per_channel_op(self, pos, name, reads, channels):
        """(operator, its constant as (channels,) float64) when the operator at ``pos`` is ``name`` of tensor
        ``reads`` (read by nothing else) and a per-channel constant, else None."""
        pos = self._next_unskipped(pos)
        op = self.ops[pos] if pos < len(self.ops) else None
        if op is None or op.name != name or len(op.inputs) != 2 or len(op.outputs) != 1 or reads not in op.inputs \
                or self.consumers[reads] != [op.index]:
            return None
        other = next((t for t in op.inputs if t != reads), -1)
        if other < 0 or not self._is_constant(other) or self._values(other).size not in (1, channels):
            return None
        return op, np.broadcast_to(self._values(other).ravel(), (channels,)).astype(np.float64)
