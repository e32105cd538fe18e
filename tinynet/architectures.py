"""MobileNet architectures written as data: one row per block, as torchvision's V3 table does.

Columns of a row (``Row``):
  kind   "conv"  standard conv + act (the stem; a 1x1 "conv" is the head conv)
         "ds"    depthwise-separable (V1): depthwise k x k + act, then pointwise + act
         "ir"    inverted residual (V2/V3): [expand 1x1 + act] -> depthwise + act -> [SE] ->
                 project 1x1 (linear), + input when stride is 1 and channels match
         "pool"  global average pool
         "fc"    fully connected (out == CLASSES: the classifier)
  k, s   kernel size and stride of the spatial conv
  exp    "ir" only: expanded channels (V3: explicit counts), or the expansion ratio t for V2
  out    output channels at width 1.0
  se     1 if the block has squeeze-and-excite
  act    activation: "relu", "relu6", "hswish" or None
  scale  how width scales ``out``: "w" make_divisible(out * width), "max1" make_divisible(out * max(1, width)),
         "fixed" never scaled

Row index == block index == the two-digit prefix of the block's weight names ("04.dw.w").
Comments give the input resolution at 224x224.
"""
from collections import namedtuple

from tinynet.errors import TinynetError

Row = namedtuple("Row", "kind k s exp out se act scale", defaults=("w",))
CLASSES = -1  # placeholder for num_classes in the classifier row

# The channel rounding that torchvision, timm and TF-slim share ("taken from the original tf repo").
def make_divisible(value, divisor=8):
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


#    kind     k  s  exp   out  se  act
MOBILENET_V1 = [
    Row("conv", 3, 2, 0, 32, 0, "relu6"),  # stem 224 -> 112
    Row("ds", 3, 1, 0, 64, 0, "relu6"),  # 112
    Row("ds", 3, 2, 0, 128, 0, "relu6"),  # 112 -> 56
    Row("ds", 3, 1, 0, 128, 0, "relu6"),
    Row("ds", 3, 2, 0, 256, 0, "relu6"),  # 56 -> 28
    Row("ds", 3, 1, 0, 256, 0, "relu6"),
    Row("ds", 3, 2, 0, 512, 0, "relu6"),  # 28 -> 14
    Row("ds", 3, 1, 0, 512, 0, "relu6"),
    Row("ds", 3, 1, 0, 512, 0, "relu6"),
    Row("ds", 3, 1, 0, 512, 0, "relu6"),
    Row("ds", 3, 1, 0, 512, 0, "relu6"),
    Row("ds", 3, 1, 0, 512, 0, "relu6"),
    Row("ds", 3, 2, 0, 1024, 0, "relu6"),  # 14 -> 7
    Row("ds", 3, 1, 0, 1024, 0, "relu6"),
    Row("pool", 0, 0, 0, 0, 0, None),
    Row("fc", 0, 0, 0, CLASSES, 0, None),
]

#    kind     k  s  t     out  se  act        (exp is the expansion ratio t)
MOBILENET_V2 = [
    Row("conv", 3, 2, 0, 32, 0, "relu6"),  # stem 224 -> 112
    Row("ir", 3, 1, 1, 16, 0, "relu6"),  # 112
    Row("ir", 3, 2, 6, 24, 0, "relu6"),  # 112 -> 56
    Row("ir", 3, 1, 6, 24, 0, "relu6"),
    Row("ir", 3, 2, 6, 32, 0, "relu6"),  # 56 -> 28
    Row("ir", 3, 1, 6, 32, 0, "relu6"),
    Row("ir", 3, 1, 6, 32, 0, "relu6"),
    Row("ir", 3, 2, 6, 64, 0, "relu6"),  # 28 -> 14
    Row("ir", 3, 1, 6, 64, 0, "relu6"),
    Row("ir", 3, 1, 6, 64, 0, "relu6"),
    Row("ir", 3, 1, 6, 64, 0, "relu6"),
    Row("ir", 3, 1, 6, 96, 0, "relu6"),
    Row("ir", 3, 1, 6, 96, 0, "relu6"),
    Row("ir", 3, 1, 6, 96, 0, "relu6"),
    Row("ir", 3, 2, 6, 160, 0, "relu6"),  # 14 -> 7
    Row("ir", 3, 1, 6, 160, 0, "relu6"),
    Row("ir", 3, 1, 6, 160, 0, "relu6"),
    Row("ir", 3, 1, 6, 320, 0, "relu6"),
    Row("conv", 1, 1, 0, 1280, 0, "relu6", "max1"),  # head conv
    Row("pool", 0, 0, 0, 0, 0, None),
    Row("fc", 0, 0, 0, CLASSES, 0, None),
]

#    kind     k  s  exp   out  se  act
MOBILENET_V3_LARGE = [
    Row("conv", 3, 2, 0, 16, 0, "hswish"),  # stem 224 -> 112
    Row("ir", 3, 1, 16, 16, 0, "relu"),  # 112
    Row("ir", 3, 2, 64, 24, 0, "relu"),  # 112 -> 56  C1
    Row("ir", 3, 1, 72, 24, 0, "relu"),
    Row("ir", 5, 2, 72, 40, 1, "relu"),  # 56 -> 28   C2
    Row("ir", 5, 1, 120, 40, 1, "relu"),
    Row("ir", 5, 1, 120, 40, 1, "relu"),
    Row("ir", 3, 2, 240, 80, 0, "hswish"),  # 28 -> 14  C3
    Row("ir", 3, 1, 200, 80, 0, "hswish"),
    Row("ir", 3, 1, 184, 80, 0, "hswish"),
    Row("ir", 3, 1, 184, 80, 0, "hswish"),
    Row("ir", 3, 1, 480, 112, 1, "hswish"),
    Row("ir", 3, 1, 672, 112, 1, "hswish"),
    Row("ir", 5, 2, 672, 160, 1, "hswish"),  # 14 -> 7   C4
    Row("ir", 5, 1, 960, 160, 1, "hswish"),
    Row("ir", 5, 1, 960, 160, 1, "hswish"),
    Row("conv", 1, 1, 0, 960, 0, "hswish"),  # head conv, 6 x 160
    Row("pool", 0, 0, 0, 0, 0, None),
    Row("fc", 0, 0, 0, 1280, 0, "hswish"),  # C5
    Row("fc", 0, 0, 0, CLASSES, 0, None),
]

#    kind     k  s  exp   out  se  act
MOBILENET_V3_SMALL = [
    Row("conv", 3, 2, 0, 16, 0, "hswish"),  # stem 224 -> 112
    Row("ir", 3, 2, 16, 16, 1, "relu"),  # 112 -> 56  C1
    Row("ir", 3, 2, 72, 24, 0, "relu"),  # 56 -> 28   C2
    Row("ir", 3, 1, 88, 24, 0, "relu"),
    Row("ir", 5, 2, 96, 40, 1, "hswish"),  # 28 -> 14  C3
    Row("ir", 5, 1, 240, 40, 1, "hswish"),
    Row("ir", 5, 1, 240, 40, 1, "hswish"),
    Row("ir", 5, 1, 120, 48, 1, "hswish"),
    Row("ir", 5, 1, 144, 48, 1, "hswish"),
    Row("ir", 5, 2, 288, 96, 1, "hswish"),  # 14 -> 7   C4
    Row("ir", 5, 1, 576, 96, 1, "hswish"),
    Row("ir", 5, 1, 576, 96, 1, "hswish"),
    Row("conv", 1, 1, 0, 576, 0, "hswish"),  # head conv, 6 x 96
    Row("pool", 0, 0, 0, 0, 0, None),
    Row("fc", 0, 0, 0, 1024, 0, "hswish"),  # C5
    Row("fc", 0, 0, 0, CLASSES, 0, None),
]


def minimalistic(rows):
    """The V3 "minimalistic" variants of TF-slim: no squeeze-excite, no h-swish, 3x3 kernels only."""
    return [r._replace(k=min(r.k, 3), se=0, act="relu" if r.act == "hswish" else r.act) for r in rows]


ARCHITECTURES = {
    "mobilenet_v1": MOBILENET_V1,
    "mobilenet_v2": MOBILENET_V2,
    "mobilenet_v3_large": MOBILENET_V3_LARGE,
    "mobilenet_v3_small": MOBILENET_V3_SMALL,
    "mobilenet_v3_large_minimalistic": minimalistic(MOBILENET_V3_LARGE),
    "mobilenet_v3_small_minimalistic": minimalistic(MOBILENET_V3_SMALL),
}

# Backbones of detection and segmentation models: tables that stop before the classifier. Not classifiers, so not in
# ARCHITECTURES (create, import and the CLI's architecture lists), but their rows walk the same way.
BACKBONES = {
    # torchvision's SSDLite backbone: V3-Large up to the head conv, with the "reduced tail" (rows 13-16 at half
    # channels, which the weights' shapes give).
    "mobilenet_v3_large_ssdlite": MOBILENET_V3_LARGE[:17],
    # TF Object Detection API's SSD MobileNet V1 feature extractor: V1 up to its last separable block (Conv2d_13).
    "mobilenet_v1_ssd": MOBILENET_V1[:14],
    # torchvision's segmentation backbone: V3-Large up to the head conv; rows 13-15 are dilated (stride 1,
    # dilation 2: tinynet.segmentation.lraspp.dilate_tail), so the output stride is 16.
    "mobilenet_v3_large_dilated": MOBILENET_V3_LARGE[:17],
    # TF DeepLab's MobileNet V2 feature extractor: V2 up to its last inverted residual block (expanded_conv_16); its
    # files set the strides and dilations of the atrous tail (tinynet.segmentation.tflite_deeplab).
    "mobilenet_v2_deeplab": MOBILENET_V2[:18],
}

# V2 rows give the expansion as a ratio of the (width-scaled) input channels; the others give channels.
EXPANSION_IS_RATIO = {"mobilenet_v2", "mobilenet_v2_deeplab"}


def rows(arch):
    """The layer table of ``arch``; raises TinynetError naming the known architectures."""
    try:
        return ARCHITECTURES[arch] if arch in ARCHITECTURES else BACKBONES[arch]
    except (KeyError, TypeError):
        raise TinynetError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}") from None
