"""A TF Object Detection API SSD .tflite (tinynet.formats.tflite_detection) as a tinynet backbone + head graph.

    network = ssd_network(read_detection_graph(graph))

The backbone is MobileNet V1's table up to its last separable block (tinynet.architectures.BACKBONES
"mobilenet_v1_ssd"; the width, e.g. 0.75, comes from the weights). Everything after it becomes tinynet.graph
Nodes, named by role:

    extra.<j>        the extra feature layers (1x1 then 3x3 stride 2 convs, ReLU6), in file order
    box.<m>, cls.<m> the box-encoding and class-logit 1x1 convs of feature map m (m = their place in the concat)
    <conv>.anchors   their outputs per anchor, (N, H*W*A, 4) and (N, H*W*A, classes + 1): TFLite's RESHAPE
    box_encodings    the concatenated encodings (N, anchors, 4): ty, tx, th, tw     } the outputs
    class_scores     LOGISTIC of the concatenated class logits (N, anchors, 1 + classes) }

A uint8 file rounds every tensor to its grid: the backbone layers through the plan's activation grid, each head
tensor through a "quantize" node after it (kernels.fake_quant), so that scores and boxes round where LiteRT's do.
"""
from dataclasses import dataclass

import numpy as np

from tinynet.architectures import rows
from tinynet.errors import UnsupportedModelError
from tinynet.graph import Node

BACKBONE = "mobilenet_v1_ssd"
OUTPUTS = ("box_encodings", "class_scores")


@dataclass
class SsdNetwork:
    backbone: str  # tinynet.architectures.BACKBONES name
    weights: dict  # float32, runtime layout: backbone layers ("00.conv.w") and head nodes ("box.0.w")
    nodes: tuple  # tinynet.graph.Node, in execution order
    outputs: tuple  # OUTPUTS
    activation_grid: dict  # backbone layer -> [lo, step, levels] (empty for float files)
    input_size: tuple  # (height, width)
    input_range: tuple  # real values of input bytes 0 and 255
    anchors: np.ndarray  # (anchors, 4) ycenter, xcenter, h, w
    options: object  # tinynet.detection.tflite_postprocess.PostprocessOptions


def _backbone_layers(arch):
    """(layer name, kind, k, stride, act) of the table's layers, as tinynet.spec names them."""
    layers = []
    for i, row in enumerate(rows(arch)):
        if row.kind == "conv":
            layers.append((f"{i:02d}.conv", "conv" if row.k > 1 else "pw", row.k, row.s, row.act))
        elif row.kind == "ds":
            layers += [(f"{i:02d}.dw", "dw", row.k, row.s, row.act), (f"{i:02d}.pw", "pw", 1, 1, row.act)]
        else:
            raise ValueError(f"{arch} row {i} is a {row.kind!r}; an SSD backbone has only convs and separable blocks")
    return layers


def ssd_network(d):
    """The SsdNetwork of DetectionGraph ``d``; UnsupportedModelError names where the file stops fitting. (A uint8
    file's integer graph runs in tinynet.quantized.ssd; this is its float path, on the file's grids.)"""
    return _Builder(d).run()


class _Builder:
    def __init__(self, d):
        self.d = d
        self.names = {d.input: None}  # DetectionGraph tensor -> tinynet tensor name (None: the image)
        self.weights, self.grid, self.nodes = {}, {}, []
        self.consumers = {}
        for node in d.nodes:
            for t in node.inputs:
                self.consumers.setdefault(t, []).append(node)

    def run(self):
        position = self._backbone()
        roles = self._head_roles()
        extra = 0
        for node in self.d.nodes[position:]:
            if node.kind in ("conv", "dw", "pw"):
                name = roles.get(node.name)
                if name is None:
                    name, extra = f"extra.{extra}", extra + 1
                self._conv(node, name)
            elif node.kind == "reshape":
                self._reshape(node)
            elif node.kind == "concat":
                self._concat(node, roles)
            else:  # sigmoid
                if node.name != self.d.class_scores:
                    raise UnsupportedModelError(f"{node.name}: a LOGISTIC that does not give the postprocess its scores")
                self._emit(Node("class_scores", "sigmoid", self._reads(node)), node)
        for role, tensor in zip(OUTPUTS, (self.d.box_encodings, self.d.class_scores)):
            if self.names.get(tensor) != role:
                raise UnsupportedModelError(f"the postprocess reads {tensor}, which is not the head's {role}")
        return SsdNetwork(BACKBONE, self.weights, tuple(self.nodes), OUTPUTS, self.grid, self.d.input_size,
                          self.d.input_range, self.d.anchors, self.d.options)

    # ---- backbone ----------------------------------------------------------------------------------------------

    def _backbone(self):
        """Assign the first nodes to the backbone table's layers; returns how many it took."""
        previous = self.d.input
        layers = _backbone_layers(BACKBONE)
        for position, (layer, kind, k, stride, act) in enumerate(layers):
            node = self.d.nodes[position] if position < len(self.d.nodes) else None
            if node is None or (node.kind, node.k, node.stride, node.act) != (kind, k, stride, act) or \
                    node.inputs != (previous,):
                found = f"{node.kind} {node.k}x{node.k} stride {node.stride} with {node.act}" if node else "nothing"
                raise UnsupportedModelError(f"the graph's backbone is not MobileNet V1: layer {layer} should be a "
                                            f"{kind} {k}x{k} stride {stride} with {act}, found {found}")
            previous = node.name
            for part in ("w", "b"):
                self.weights[f"{layer}.{part}"] = np.ascontiguousarray(node.weights[part], np.float32)
            if node.grid is not None:
                self.grid[layer] = list(node.grid)
            self.names[node.name] = layer
        return len(layers)

    # ---- head --------------------------------------------------------------------------------------------------

    def _node(self, name):
        return next((n for n in self.d.nodes if n.name == name), None)

    def _is_relabel(self, node):
        """A RESHAPE that only drops a unit axis of a joined head output (TF-OD's final "Squeeze")."""
        source = self._node(node.inputs[0])
        return source is not None and source.kind in ("concat", "reshape") and \
            _per_anchor_form(source.shape) == _per_anchor_form(node.shape) is not None

    def _resolve(self, name):
        """Through relabelling reshapes, to the node that computes ``name``."""
        node = self._node(name)
        while node is not None and node.kind == "reshape" and self._is_relabel(node):
            name = node.inputs[0]
            node = self._node(name)
        return name

    def _head_roles(self):
        """{DetectionGraph conv name: "box.<m>" / "cls.<m>"} from the concats the postprocess reads."""
        logistic = next((n for n in self.d.nodes if n.name == self.d.class_scores and n.kind == "sigmoid"), None)
        if logistic is None:
            raise UnsupportedModelError("the postprocess scores do not come from a LOGISTIC; tinynet runs SSD files "
                                        "whose class logits go through a sigmoid")
        roles = {}
        for head, tensor in (("box", self.d.box_encodings), ("cls", logistic.inputs[0])):
            concat = next((n for n in self.d.nodes if n.name == self._resolve(tensor) and n.kind == "concat"), None)
            if concat is None:
                raise UnsupportedModelError(f"the postprocess's {head} input does not come from a CONCATENATION")
            roles[concat.name] = "box_encodings" if head == "box" else "class_logits"
            for m, part in enumerate(concat.inputs):
                reshape = next(n for n in self.d.nodes if n.name == part)
                if reshape.kind != "reshape":
                    raise UnsupportedModelError(f"{concat.name} joins {part}, which is not a RESHAPE of a head conv")
                roles[reshape.inputs[0]] = f"{head}.{m}"
        return roles

    def _reads(self, node):
        missing = [t for t in node.inputs if t not in self.names]
        if missing:
            raise UnsupportedModelError(f"{node.name} reads {missing[0]}, which tinynet has not computed")
        return tuple(self.names[t] for t in node.inputs)

    def _emit(self, graph_node, source):
        """Append ``graph_node`` for DetectionGraph node ``source``, then a quantize node if the file rounds there;
        the result is what later nodes read for ``source``."""
        grid = source.grid
        if grid is not None and graph_node.kind not in ("conv", "dw", "pw"):
            # The op's own name goes to the rounded tensor: outputs keep their role names.
            final, graph_node = graph_node.name, Node(f"{graph_node.name}.float", graph_node.kind, graph_node.inputs,
                                                      options=graph_node.options)
        else:
            final = f"{graph_node.name}.q" if grid is not None else graph_node.name
        self.nodes.append(graph_node)
        if grid is not None:
            self.nodes.append(Node(final, "quantize", (graph_node.name,), options=(("grid", tuple(grid)),)))
        self.names[source.name] = final

    def _conv(self, node, name):
        reads = self._reads(node)
        cout = node.weights["b"].shape[0]
        for part in ("w", "b"):
            self.weights[f"{name}.{part}"] = np.ascontiguousarray(node.weights[part], np.float32)
        self._emit(Node(name, node.kind, reads, cout, node.k, node.stride, node.act), node)

    def _reshape(self, node):
        if self._is_relabel(node):
            self.names[node.name] = self._reads(node)[0]
            return
        shape, after = self._node(node.inputs[0]).shape, _per_anchor_form(node.shape)
        if len(shape) != 4 or after is None or after[0] != shape[0] or shape[3] % after[2] or \
                after[1] != shape[1] * shape[2] * shape[3] // after[2]:
            raise UnsupportedModelError(f"{node.name} reshapes {shape} to {after}; tinynet runs per-anchor reshapes "
                                        "(N, H, W, A * K) -> (N, H * W * A, K) of head outputs")
        reads = self._reads(node)
        self.nodes.append(Node(f"{reads[0].removesuffix('.q')}.anchors", "per_anchor", reads,
                               options=(("columns", after[2]),)))
        self.names[node.name] = self.nodes[-1].name

    def _concat(self, node, roles):
        forms = [_per_anchor_form(self._node(t).shape) for t in node.inputs]
        if node.name not in roles or None in forms or node.axis != 1:
            raise UnsupportedModelError(f"{node.name} is not a concatenation of per-anchor head outputs over anchors")
        reads = self._reads(node)
        self._emit(Node(roles[node.name], "concat", reads, options=(("axis", 1),)), node)


def _per_anchor_form(shape):
    """(N, rows, columns) of a per-anchor tensor, stored as such or as (N, rows, 1, columns) (TF-OD's box
    encodings); None for other shapes."""
    if len(shape) == 4 and shape[2] == 1:
        return shape[0], shape[1], shape[3]
    return tuple(shape) if len(shape) == 3 else None
