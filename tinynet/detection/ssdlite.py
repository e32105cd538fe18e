"""torchvision's ``ssdlite320_mobilenet_v3_large``: backbone table, head table, and its state dict's layout.

The network (torchvision.models.detection.ssdlite, MobileNet V3 paper section 6.3):

    backbone   V3-Large rows 0-16 with the reduced tail (tinynet.architectures.BACKBONES), BatchNorm eps 0.001
    maps       "13.expand" (C4's expand output, 20x20 at 320) and "16.conv" (10x10), then four extra blocks
               (1x1 conv to half, 3x3 depthwise stride 2, 1x1 conv; all ReLU6): 5x5, 3x3, 2x2, 1x1
    predictors per map and per head (classes, boxes): 3x3 depthwise + ReLU6, then a 1x1 conv with bias to
               anchors x columns; "per_anchor" reshapes it to (N, H*W*anchors, columns), "concat" joins the maps
    outputs    "cls_logits" (N, anchors, classes), "bbox_regression" (N, anchors, 4), torchvision's order

The head is data: EXTRA_ROWS and FEATURE_MAPS below, expanded into tinynet.graph Nodes by ``head_nodes``, with
channel counts read from the weights (so any class count, and any width, loads).
"""
from tinynet.errors import WeightsError
from tinynet.formats.fold import Source
from tinynet.graph import Node

BACKBONE = "mobilenet_v3_large_ssdlite"
BN_EPS = 1e-3
ANCHORS_PER_LOCATION = 6  # DefaultBoxGenerator([[2, 3]] * 6): 2 square boxes + 2 per aspect ratio
ASPECT_RATIOS = [(2, 3)] * 6
INPUT_SIZE = (320, 320)  # GeneralizedRCNNTransform(fixed_size=(320, 320))
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # inputs scaled to [-1, 1]

#   block       reads        (channels come from the weights: 512, 256, 256, 128 at width 1.0)
EXTRA_ROWS = [
    ("extra.0", "16.conv"),
    ("extra.1", "extra.0"),
    ("extra.2", "extra.1"),
    ("extra.3", "extra.2"),
]
FEATURE_MAPS = ("13.expand", "16.conv", "extra.0", "extra.1", "extra.2", "extra.3")
#   head   output name         columns per anchor (None: the class count)
PREDICTORS = [("cls", "cls_logits", None), ("box", "bbox_regression", 4)]
OUTPUTS = tuple(output for _, output, _ in PREDICTORS)


def head_nodes(shapes):
    """The head's Nodes, channel counts read from the runtime weight ``shapes`` ({name: shape})."""
    def cout(name):
        if f"{name}.w" not in shapes:
            raise WeightsError(f"ssdlite: missing tensor {name}.w")
        return shapes[f"{name}.w"][-1]

    nodes = []
    for block, reads in EXTRA_ROWS:
        nodes += [Node(f"{block}.reduce", "pw", (reads,), cout(f"{block}.reduce"), act="relu6"),
                  Node(f"{block}.dw", "dw", (f"{block}.reduce",), k=3, stride=2, act="relu6"),
                  Node(block, "pw", (f"{block}.dw",), cout(block), act="relu6")]
    for head, output, columns in PREDICTORS:
        columns = columns or cout(f"{head}.0") // ANCHORS_PER_LOCATION
        per_map = []
        for i, feature in enumerate(FEATURE_MAPS):
            nodes += [Node(f"{head}.{i}.dw", "dw", (feature,), k=3, act="relu6"),
                      Node(f"{head}.{i}", "pw", (f"{head}.{i}.dw",), cout(f"{head}.{i}")),
                      Node(f"{head}.{i}.anchors", "per_anchor", (f"{head}.{i}",), options=(("columns", columns),))]
            per_map.append(f"{head}.{i}.anchors")
        nodes.append(Node(output, "concat", tuple(per_map), options=(("axis", 1),)))
    return tuple(nodes)


def is_ssdlite_state_dict(tensors):
    return "backbone.features.0.0.0.weight" in tensors and "head.classification_head.module_list.0.1.weight" in tensors


def torchvision_backbone_names(tensors, c4_row=13):
    """The state dict with its backbone renamed to a plain V3 ``features.<row>`` layout (tinynet.formats.pytorch reads
    that). torchvision splits the backbone at C4's expand conv:
    features.0 = rows 0..12 + row 13's block[0];  features.1 = Sequential(row 13's block[1:], rows 14..16),
    where block[1:] keeps its indices (1 dw, 2 se, 3 project)."""
    renamed = {}
    for name, array in tensors.items():
        parts = name.split(".")
        if name.startswith("backbone.features.0."):
            row = int(parts[3])
            rest = ".".join(parts[4:])
            renamed[f"features.{row}.{rest}" if row < c4_row else f"features.{c4_row}.block.0.{rest}"] = array
        elif name.startswith("backbone.features.1.0."):
            renamed[f"features.{c4_row}.block.{'.'.join(parts[4:])}"] = array
        elif name.startswith("backbone.features.1."):
            renamed[f"features.{c4_row + int(parts[3])}.{'.'.join(parts[4:])}"] = array
        else:
            renamed[name] = array
    return renamed


def torchvision_head_sources(tensors):
    """fold Sources of the extra blocks and the two predictor heads."""
    sources = []
    for i, (block, _) in enumerate(EXTRA_ROWS):
        p = f"backbone.extra.{i}"
        sources += [Source(f"{block}.reduce", "pw", f"{p}.0.0.weight", bn=f"{p}.0.1"),
                    Source(f"{block}.dw", "dw", f"{p}.1.0.weight", bn=f"{p}.1.1"),
                    Source(block, "pw", f"{p}.2.0.weight", bn=f"{p}.2.1")]
    for head, module in (("cls", "classification_head"), ("box", "regression_head")):
        for i in range(len(FEATURE_MAPS)):
            p = f"head.{module}.module_list.{i}"
            sources += [Source(f"{head}.{i}.dw", "dw", f"{p}.0.0.weight", bn=f"{p}.0.1"),
                        Source(f"{head}.{i}", "pw", f"{p}.1.weight", bias=f"{p}.1.bias")]
    return sources
