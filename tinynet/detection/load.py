"""Detection models from weight files (torchvision's SSDLite state dict, ``.pth`` or safetensors), and from tinynet's
own format.

tinynet's format (tinynet.io) stores a detector as it stores a classifier where it can, and says which by ``arch``:

    ssdlite320_mobilenet_v3_large   the folded runtime weights of backbone and head. The head is not written down:
                                    as the backbone's layers come from its table, the head's nodes come from
                                    tinynet.detection.ssdlite's table and the weights' shapes (any class count).
    ssd_mobilenet_v1                the .tflite file itself, one uint8 tensor (TfliteSsdModel.native_tensors). Its
                                    graph, grids and integer arithmetic are derived from the file by the TFLite
                                    reader, with that reader's checks; a second description of them in the format
                                    would be one more reader of untrusted data to harden, for no gain in load time
                                    (reading the shared 4 MB file takes 0.15 s).
"""
from tinynet.detection import ssdlite
from tinynet.detection.model import DetectionModel
from tinynet.errors import WeightsError
from tinynet.formats import pytorch
from tinynet.formats.fold import fold, unused
from tinynet.spec import layers_for_weights

SSDLITE = "ssdlite320_mobilenet_v3_large"
TFLITE_SSD = "ssd_mobilenet_v1"  # tinynet.detection.tflite_model.TfliteSsdModel's arch
NATIVE_DETECTORS = (SSDLITE, TFLITE_SSD)


def ssdlite_from_torchvision(tensors, path):
    """A DetectionModel from a torchvision ssdlite320_mobilenet_v3_large state dict (any class count)."""
    renamed = ssdlite.torchvision_backbone_names(tensors)
    backbone = pytorch.torchvision_sources(ssdlite.BACKBONE, renamed)
    sources = backbone + ssdlite.torchvision_head_sources(renamed)
    weights, origin = fold(renamed, sources, ssdlite.BN_EPS)
    extra = unused(renamed, sources)
    if extra:
        raise WeightsError(f"tensor {extra[0]} has no place in {SSDLITE}")
    meta = {"preprocess": {"preset": "torchvision"}, "source": f"torchvision:{path.name}"}
    model = ssdlite_model(weights, "symmetric", meta)
    if model.num_classes == 91:  # torchvision's COCO heads: 91 slots, 0 = background
        model.meta["labels"] = "coco91"
    return model


def ssdlite_model(weights, padding, meta):
    """A DetectionModel of SSDLite320's tables over runtime ``weights`` (folded; names as tinynet.detection.ssdlite
    gives them)."""
    shapes = {n: a.shape for n, a in weights.items()}
    return DetectionModel(SSDLITE, layers_for_weights(ssdlite.BACKBONE, shapes), ssdlite.head_nodes(shapes), weights,
                          padding, meta)


def detector_from_native(arch, tensors, padding, meta):
    """The detector of ``arch`` (one of NATIVE_DETECTORS) from a tinynet file's tensors and metadata."""
    from tinynet.io import check_float32  # here: tinynet.io imports this module at load

    if arch == SSDLITE:
        check_float32(tensors)
        return ssdlite_model(tensors, padding, meta)
    from tinynet.formats import tflite

    return tflite.from_stored(tensors, meta)
