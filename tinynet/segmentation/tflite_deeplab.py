"""A DeepLab .tflite (tinynet.formats.tflite_segmentation) as a tinynet backbone + head graph.

    network = deeplab_network(read_segmentation_graph(graph))

The backbone is MobileNet V2's table up to its last inverted residual block (tinynet.architectures.BACKBONES
"mobilenet_v2_deeplab"; the width, e.g. 0.5, comes from the weights), with each depthwise conv's stride and
dilation as the file has them: the atrous tail (output stride 16: the last three blocks dilated by 2; output
stride 8: dilation 2 from block 8 and 4 from block 15) is the file's, not a table's. Everything after it becomes
tinynet.graph Nodes named after the file's TF scopes ("aspp0", "image_pooling", "concat_projection",
"logits/semantic", ...): 1x1 convs, image pooling, resizes (those to the size they read are left out), the
concatenation. The network's output is the logits before the file's final resize.

A uint8 file runs on the float path, rounding where the file rounds: the backbone layers' outputs through the
plan's activation grid (as the classifier TFLite path does; a residual block rounds after its addition), each head
tensor through a "quantize" node after it (kernels.fake_quant), and the resized logits to the grid the file's
ARG_MAX reads (the model does that, tinynet.segmentation.tflite_model), so that ties fall as the file's do.
"""
from dataclasses import dataclass, replace

import numpy as np

from tinynet.architectures import rows
from tinynet.errors import UnsupportedModelError
from tinynet.graph import Node
from tinynet.spec import infer_width, layers_for_weights

BACKBONE = "mobilenet_v2_deeplab"
CONV_KINDS = ("conv", "dw", "pw")


@dataclass
class DeeplabNetwork:
    layers: tuple  # tinynet.spec.Layer of the backbone, strides and dilations as in the file
    width: float  # the backbone's width multiplier, None if no common one fits
    weights: dict  # float32, runtime layout: backbone layers ("00.conv.w") and head nodes ("aspp0.w")
    nodes: tuple  # tinynet.graph.Node, in execution order
    output: str  # the node giving the low-resolution logits (N, h, w, classes)
    activation_grid: dict  # backbone layer -> [lo, step, levels] (empty for float files)
    input_size: tuple  # (height, width)
    input_range: tuple  # real values of input bytes 0 and 255
    align_corners: bool  # the final resize's conventions
    half_pixel_centers: bool
    output_grid: tuple  # (lo, step, levels) of the resized logits, None for float files


def deeplab_network(g):
    """The DeeplabNetwork of SegmentationGraph ``g``; UnsupportedModelError names where the file stops fitting."""
    return _Builder(g).run()


class _Builder:
    def __init__(self, g):
        self.g = g
        self.names = {g.input: None}  # SegmentationGraph tensor -> tinynet tensor name (None: the image)
        self.weights, self.grid, self.nodes, self.layout = {}, {}, [], {}
        self.position = 0

    def run(self):
        self._backbone()
        for node in self.g.nodes[self.position:]:
            self._head_node(node)
        output = self.names.get(self.g.logits)
        if output is None:
            raise UnsupportedModelError(f"the final resize reads {self.g.logits}, which the head does not compute")
        shapes = {name: w.shape for name, w in self.weights.items()}
        layers = layers_for_weights(BACKBONE, shapes)
        width = infer_width(BACKBONE, layers)
        layers = tuple(self._as_in_file(layer) for layer in layers)
        return DeeplabNetwork(layers, width, self.weights, tuple(self.nodes), output, self.grid, self.g.input_size,
                              self.g.input_range, self.g.align_corners, self.g.half_pixel_centers, self.g.output_grid)

    # ---- backbone ----------------------------------------------------------------------------------------------

    def _next(self, kind, reads, where, k=1, act=None):
        """The next node, checked to be a ``kind`` (k x k, ``act``) reading ``reads``."""
        node = self.g.nodes[self.position] if self.position < len(self.g.nodes) else None
        if node is None or node.kind != kind or node.inputs != (reads,) or \
                (kind in CONV_KINDS and (node.k, node.act) != (k, act)):
            found = f"{node.kind} {node.k}x{node.k} with {node.act} reading {node.inputs}" if node else "nothing"
            raise UnsupportedModelError(f"the graph's backbone is not MobileNet V2: {where} should be a {kind} "
                                        f"{k}x{k} with {act} reading {reads}, found {found}")
        self.position += 1
        return node

    def _layer(self, node, layer, output=None):
        """Record backbone ``node`` as tinynet layer ``layer``; ``output``: the node whose tensor ends the layer
        (a residual block's ADD)."""
        output = output or node
        for part in ("w", "b"):
            self.weights[f"{layer}.{part}"] = np.ascontiguousarray(node.weights[part], np.float32)
        if output.grid is not None:
            self.grid[layer] = list(output.grid)
        self.layout[layer] = (node.stride, node.dilation, output is not node)
        self.names[output.name] = layer
        return output.name

    def _backbone(self):
        previous = self.g.input
        for i, row in enumerate(rows(BACKBONE)):
            block = f"{i:02d}"
            if row.kind == "conv":
                previous = self._layer(self._next("conv", previous, f"layer {block}.conv", row.k, row.act),
                                       f"{block}.conv")
                continue
            block_input = previous
            ahead = self.g.nodes[self.position:self.position + 2]
            if [n.kind for n in ahead] == ["pw", "dw"] and ahead[1].inputs == (ahead[0].name,):
                previous = self._layer(self._next("pw", previous, f"layer {block}.expand", 1, row.act),
                                       f"{block}.expand")
            previous = self._layer(self._next("dw", previous, f"layer {block}.dw", row.k, row.act), f"{block}.dw")
            project = self._next("pw", previous, f"layer {block}.project", 1, None)
            after = self.g.nodes[self.position] if self.position < len(self.g.nodes) else None
            residual = after is not None and after.kind == "add" and set(after.inputs) == {project.name, block_input}
            self.position += residual
            previous = self._layer(project, f"{block}.project", after if residual else None)

    def _as_in_file(self, layer):
        """``layer`` with the file's stride and dilation; its residual connection checked against the file's."""
        stride, dilation, residual = self.layout[layer.name]
        if layer.op == "pw" and layer.residual != residual:
            raise UnsupportedModelError(f"layer {layer.name}: the file {'adds' if residual else 'does not add'} the "
                                        f"block input, MobileNet V2 {'does' if layer.residual else 'does not'}")
        return replace(layer, stride=stride, dilation=dilation) if layer.op == "dw" else layer

    # ---- head --------------------------------------------------------------------------------------------------

    def _reads(self, node):
        missing = [t for t in node.inputs if t not in self.names]
        if missing:
            raise UnsupportedModelError(f"{node.name} reads {missing[0]}, which tinynet has not computed")
        return tuple(self.names[t] for t in node.inputs)

    def _unique(self, name):
        taken = {n.name for n in self.nodes} | set(self.layout)
        base, n = name, 1
        while name in taken:
            name, n = f"{base}#{n}", n + 1
        return name

    def _head_node(self, node):
        reads = self._reads(node)
        name = self._unique(node.name.rsplit("/", 1)[0] if "/" in node.name and node.kind in CONV_KINDS else node.name)
        if node.kind in CONV_KINDS:
            for part in ("w", "b"):
                self.weights[f"{name}.{part}"] = np.ascontiguousarray(node.weights[part], np.float32)
            options = (("dilation", node.dilation),) if node.dilation > 1 else ()
            emitted = Node(name, node.kind, reads, node.weights["b"].shape[0], node.k, node.stride, node.act, options)
        elif node.kind == "resize":
            if tuple(node.options["size"]) == tuple(self._shape(node.inputs[0])[1:3]):
                self.names[node.name] = reads[0]  # to its own size: the identity in every convention
                if node.grid is not None and node.grid != self._grid(node.inputs[0]):
                    self._emit(Node(name, "quantize", reads, options=(("grid", tuple(node.grid)),)), node, False)
                return
            if self._shape(node.inputs[0])[1:3] == (1, 1) and node.grid == self._grid(node.inputs[0]):
                # A 1x1 map broadcast (image pooling): its values stay on their grid.
                self._emit(Node(name, "resize", reads, options=(("size", tuple(node.options["size"])),)), node, False)
                return
            emitted = Node(name, "resize", reads, options=(("size", tuple(node.options["size"])),
                                                          ("align_corners", bool(node.options["align_corners"])),
                                                          ("half_pixel_centers",
                                                           bool(node.options["half_pixel_centers"]))))
        elif node.kind == "concat" and node.axis == 3:
            emitted = Node(name, "concat", reads, options=(("axis", 3),))
            if all(self._grid(t) == node.grid for t in node.inputs):  # joins values already on its grid
                self._emit(emitted, node, False)
                return
        elif node.kind in ("add", "image_pool"):
            emitted = Node(name, node.kind, reads)
        elif node.kind == "quantize":
            emitted = Node(name, "quantize", reads, options=(("grid", tuple(node.grid)),))
            self._emit(emitted, node, False)
            return
        else:
            raise UnsupportedModelError(f"{node.name}: a {node.kind} in a DeepLab head, which tinynet does not run "
                                        "(it runs 1x1 and 3x3 convs, image pooling, resizes, concatenation, adds)")
        self._emit(emitted, node)

    def _emit(self, graph_node, source, rounds=True):
        """Append ``graph_node`` for SegmentationGraph node ``source``, then (``rounds`` and a quantized ``source``)
        a quantize node to its grid: later nodes read the rounded tensor."""
        self.nodes.append(graph_node)
        self.names[source.name] = graph_node.name
        if rounds and source.grid is not None:
            self.nodes.append(Node(f"{graph_node.name}.q", "quantize", (graph_node.name,),
                                   options=(("grid", tuple(source.grid)),)))
            self.names[source.name] = f"{graph_node.name}.q"

    def _node(self, name):
        return next((n for n in self.g.nodes if n.name == name), None)

    def _shape(self, name):
        node = self._node(name)
        return node.shape if node is not None else (1, *self.g.input_size, 3)

    def _grid(self, name):
        node = self._node(name)
        return node.grid if node is not None else None
