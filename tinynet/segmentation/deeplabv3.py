"""torchvision's ``deeplabv3_mobilenet_v3_large``: the dilated backbone of LR-ASPP with DeepLab v3's ASPP head.

The network (torchvision.models.segmentation.deeplabv3):

    backbone   as tinynet.segmentation.lraspp: V3-Large rows 0-16, rows 13-15 dilated; tap "16.conv" (stride 16)
    ASPP       five branches on "16.conv", each 256 channels + BatchNorm (eps 1e-5) + ReLU: a 1x1 conv; 3x3 convs at
               dilation 12, 24, 36; image pooling (mean, 1x1 conv, broadcast back to the map); joined along channels,
               then a 1x1 projection (dropout is identity at inference)
    tail       3x3 conv + BatchNorm + ReLU, then a 1x1 conv with bias to the classes: "low_res_out"
    aux        ``aux_classifier`` (an FCN head on row 4, for training): its tensors load and are not run

The head is data: HEAD_ROWS below, expanded into tinynet.graph Nodes with channel counts read from the weights.
"""
from tinynet.errors import WeightsError
from tinynet.formats.fold import Source
from tinynet.graph import Node
from tinynet.segmentation.lraspp import HIGH, OUTPUT

RATES = (12, 24, 36)
AUX_PREFIX = "aux_classifier."

#   node            kind          reads                                    k  act     options
HEAD_ROWS = [
    ("aspp.0",      "pw",         (HIGH,),                                 1, "relu", ()),
    *[(f"aspp.{i + 1}", "conv",   (HIGH,),                                 3, "relu", (("dilation", rate),))
      for i, rate in enumerate(RATES)],
    ("aspp.4.pool", "image_pool", (HIGH,),                                 1, None,   ()),
    ("aspp.4.conv", "pw",         ("aspp.4.pool",),                        1, "relu", ()),
    ("aspp.4",      "resize",     ("aspp.4.conv", HIGH),                   1, None,   (("half_pixel_centers", True),)),
    ("aspp.concat", "concat",     tuple(f"aspp.{i}" for i in range(5)),    1, None,   (("axis", 3),)),
    ("aspp",        "pw",         ("aspp.concat",),                        1, "relu", ()),
    ("tail",        "conv",       ("aspp",),                               3, "relu", ()),
    (OUTPUT,        "pw",         ("tail",),                               1, None,   ()),
]
WEIGHTED_KINDS = {"pw", "conv"}
#   runtime name, op, torchvision conv, its bias, its BatchNorm
HEAD_SOURCES = [
    ("aspp.0", "pw", "classifier.0.convs.0.0.weight", None, "classifier.0.convs.0.1"),
    *[(f"aspp.{i}", "conv", f"classifier.0.convs.{i}.0.weight", None, f"classifier.0.convs.{i}.1") for i in (1, 2, 3)],
    ("aspp.4.conv", "pw", "classifier.0.convs.4.1.weight", None, "classifier.0.convs.4.2"),
    ("aspp", "pw", "classifier.0.project.0.weight", None, "classifier.0.project.1"),
    ("tail", "conv", "classifier.1.weight", None, "classifier.2"),
    (OUTPUT, "pw", "classifier.4.weight", "classifier.4.bias", None),
]


def head_nodes(shapes):
    """The head's Nodes, channel counts read from the runtime weight ``shapes`` ({name: shape})."""
    def cout(name):
        if f"{name}.w" not in shapes:
            raise WeightsError(f"deeplabv3: missing tensor {name}.w")
        return shapes[f"{name}.w"][-1]

    return tuple(Node(name, kind, reads, cout(name) if kind in WEIGHTED_KINDS else 0, k=k, act=act, options=options)
                 for name, kind, reads, k, act, options in HEAD_ROWS)


def is_deeplabv3_state_dict(tensors):
    return "backbone.0.0.weight" in tensors and "classifier.0.convs.0.0.weight" in tensors


def head_sources():
    return [Source(name, op, weight, bias=bias, bn=bn) for name, op, weight, bias, bn in HEAD_SOURCES]
