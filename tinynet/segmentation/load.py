"""Segmentation models from weight files: torchvision's LR-ASPP state dict (``.pth`` or safetensors)."""
from tinynet.errors import WeightsError
from tinynet.formats import pytorch
from tinynet.formats.fold import fold, unused
from tinynet.segmentation import lraspp
from tinynet.segmentation.model import SegmentationModel
from tinynet.spec import layers_for_weights


def lraspp_from_torchvision(tensors, path):
    """A SegmentationModel from a torchvision lraspp_mobilenet_v3_large state dict (any class count)."""
    renamed = lraspp.torchvision_backbone_names(tensors)
    backbone = pytorch.torchvision_sources(lraspp.BACKBONE, renamed)
    head = lraspp.head_sources()
    weights, _ = fold(renamed, backbone, lraspp.BACKBONE_BN_EPS)
    weights.update(fold(renamed, head, lraspp.HEAD_BN_EPS)[0])
    extra = unused(renamed, backbone + head)
    if extra:
        raise WeightsError(f"tensor {extra[0]} has no place in lraspp_mobilenet_v3_large")
    shapes = {n: a.shape for n, a in weights.items()}
    layers = lraspp.dilate_tail(layers_for_weights(lraspp.BACKBONE, shapes))
    meta = {"source": f"torchvision:{path.name}"}
    model = SegmentationModel("lraspp_mobilenet_v3_large", layers, lraspp.head_nodes(shapes), weights, "symmetric",
                              meta)
    if model.num_classes == 21:  # torchvision's VOC-subset heads
        model.meta["labels"] = "voc21"
    return model
