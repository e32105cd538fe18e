"""torchvision's ``lraspp_mobilenet_v3_large``: dilated backbone, LR-ASPP head table, and its state dict's layout.

The network (torchvision.models.segmentation.lraspp, MobileNet V3 paper section 6.4):

    backbone   V3-Large rows 0-16, rows 13-15 dilated (stride 1, depthwise dilation 2): output stride 16;
               BatchNorm eps 0.001. Taps: "04.project" (low, stride 8) and "16.conv" (high, stride 16)
    head       cbr = 1x1 conv (no bias) + BatchNorm (eps 1e-5) + ReLU on high; gate = sigmoid(1x1 conv (no bias) of
               the mean of high); (cbr * gate) resized to low's size; low_classifier(low) + high_classifier(that)
    output     "low_res_out" (N, H/8, W/8, classes); the model resizes it to the input size (half-pixel bilinear)

The head is data: HEAD_ROWS below, expanded into tinynet.graph Nodes by ``head_nodes``, with channel counts read
from the weights (any class count loads).
"""
from dataclasses import replace

from tinynet.errors import WeightsError
from tinynet.formats.fold import Source
from tinynet.graph import Node

BACKBONE = "mobilenet_v3_large_dilated"
BACKBONE_BN_EPS = 1e-3
HEAD_BN_EPS = 1e-5  # the head's BatchNorm is torch's default
DILATED_ROWS = (13, 14, 15)
DILATION = 2
LOW, HIGH = "04.project", "16.conv"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RESIZE_SHORTER = 520  # torchvision's SemanticSegmentation preset for these weights
OUTPUT = "low_res_out"

#   node              kind          reads                              cout from weights  act      options
HEAD_ROWS = [
    ("cbr",            "pw",         (HIGH,),                           True,  "relu",  ()),
    ("scale.pool",     "image_pool", (HIGH,),                           False, None,    ()),
    ("scale",          "pw",         ("scale.pool",),                   True,  None,    ()),
    ("scale.gate",     "sigmoid",    ("scale",),                        False, None,    ()),
    ("gated",          "mul",        ("cbr", "scale.gate"),             False, None,    ()),
    ("gated.up",       "resize",     ("gated", LOW),                    False, None,    (("half_pixel_centers", True),)),
    ("low_classifier", "pw",         (LOW,),                            True,  None,    ()),
    ("high_classifier", "pw",        ("gated.up",),                     True,  None,    ()),
    (OUTPUT,           "add",        ("low_classifier", "high_classifier"), False, None, ()),
]
#   runtime name, torchvision conv, its bias, its BatchNorm
HEAD_SOURCES = [
    ("cbr", "classifier.cbr.0.weight", None, "classifier.cbr.1"),
    ("scale", "classifier.scale.1.weight", None, None),
    ("low_classifier", "classifier.low_classifier.weight", "classifier.low_classifier.bias", None),
    ("high_classifier", "classifier.high_classifier.weight", "classifier.high_classifier.bias", None),
]


def dilate_tail(layers):
    """The backbone layers with the depthwise convs of DILATED_ROWS at stride 1 and dilation 2 (torchvision's
    dilated=True: the stride-2 block keeps its resolution, and the taps spread to keep the receptive field)."""
    return [replace(layer, stride=1, dilation=DILATION) if layer.op == "dw" and layer.block in DILATED_ROWS else layer
            for layer in layers]


def head_nodes(shapes):
    """The head's Nodes, channel counts read from the runtime weight ``shapes`` ({name: shape})."""
    def cout(name):
        if f"{name}.w" not in shapes:
            raise WeightsError(f"lraspp: missing tensor {name}.w")
        return shapes[f"{name}.w"][-1]

    return tuple(Node(name, kind, reads, cout(name) if has_weights else 0, act=act, options=options)
                 for name, kind, reads, has_weights, act, options in HEAD_ROWS)


def is_lraspp_state_dict(tensors):
    return "backbone.0.0.weight" in tensors and "classifier.low_classifier.weight" in tensors


def torchvision_backbone_names(tensors):
    """The state dict with ``backbone.<row>`` renamed to the plain ``features.<row>`` (tinynet.formats.pytorch reads
    that): torchvision's IntermediateLayerGetter keeps the rows' own indices."""
    return {f"features.{name[len('backbone.'):]}" if name.startswith("backbone.") else name: array
            for name, array in tensors.items()}


def head_sources():
    return [Source(name, "pw", weight, bias=bias, bn=bn) for name, weight, bias, bn in HEAD_SOURCES]
