"""Segmentation models from weight files: torchvision's LR-ASPP and DeepLab v3 (MobileNet V3) state dicts."""
from tinynet.errors import WeightsError
from tinynet.formats import pytorch
from tinynet.formats.fold import fold, unused
from tinynet.segmentation import deeplabv3, lraspp
from tinynet.segmentation.model import SegmentationModel
from tinynet.spec import layers_for_weights


HEADS = {"lraspp_mobilenet_v3_large": lraspp, "deeplabv3_mobilenet_v3_large": deeplabv3}


def segmentation_arch(tensors):
    """The torchvision segmentation model a state dict is, or None."""
    if lraspp.is_lraspp_state_dict(tensors):
        return "lraspp_mobilenet_v3_large"
    if deeplabv3.is_deeplabv3_state_dict(tensors):
        return "deeplabv3_mobilenet_v3_large"
    return None


def segmentation_from_torchvision(tensors, path, arch=None):
    """A SegmentationModel from a torchvision lraspp_ or deeplabv3_mobilenet_v3_large state dict (any class
    count). DeepLab's aux_classifier (a training-time head) is accepted and left out."""
    arch = arch or segmentation_arch(tensors)
    head_module = HEADS[arch]
    renamed = {name: array for name, array in lraspp.torchvision_backbone_names(tensors).items()
               if not name.startswith(deeplabv3.AUX_PREFIX)}
    backbone = pytorch.torchvision_sources(lraspp.BACKBONE, renamed)
    head = head_module.head_sources()
    weights, _ = fold(renamed, backbone, lraspp.BACKBONE_BN_EPS)
    weights.update(fold(renamed, head, lraspp.HEAD_BN_EPS)[0])
    extra = unused(renamed, backbone + head)
    if extra:
        raise WeightsError(f"tensor {extra[0]} has no place in {arch}")
    shapes = {n: a.shape for n, a in weights.items()}
    layers = lraspp.dilate_tail(layers_for_weights(lraspp.BACKBONE, shapes))
    meta = {"source": f"torchvision:{path.name}"}
    model = SegmentationModel(arch, layers, head_module.head_nodes(shapes), weights, "symmetric", meta)
    if model.num_classes == 21:  # torchvision's VOC-subset heads
        model.meta["labels"] = "voc21"
    return model
