"""Detection models from weight files: torchvision's SSDLite state dict (``.pth`` or safetensors)."""
from tinynet.detection import ssdlite
from tinynet.detection.model import DetectionModel
from tinynet.errors import WeightsError
from tinynet.formats import pytorch
from tinynet.formats.fold import fold, unused
from tinynet.spec import layers_for_weights


def ssdlite_from_torchvision(tensors, path):
    """A DetectionModel from a torchvision ssdlite320_mobilenet_v3_large state dict (any class count)."""
    renamed = ssdlite.torchvision_backbone_names(tensors)
    backbone = pytorch.torchvision_sources(ssdlite.BACKBONE, renamed)
    sources = backbone + ssdlite.torchvision_head_sources(renamed)
    weights, origin = fold(renamed, sources, ssdlite.BN_EPS)
    extra = unused(renamed, sources)
    if extra:
        raise WeightsError(f"tensor {extra[0]} has no place in ssdlite320_mobilenet_v3_large")
    shapes = {n: a.shape for n, a in weights.items()}
    layers = layers_for_weights(ssdlite.BACKBONE, shapes)
    head = ssdlite.head_nodes(shapes)
    meta = {"preprocess": {"preset": "torchvision"}, "source": f"torchvision:{path.name}"}
    model = DetectionModel("ssdlite320_mobilenet_v3_large", layers, head, weights, "symmetric", meta)
    if model.num_classes == 91:  # torchvision's COCO heads: 91 slots, 0 = background
        model.meta["labels"] = "coco91"
    return model
