"""Class names: the 1000 ImageNet-1k names shipped with tinynet, and the names a model's outputs carry.

A model's ``meta["labels"]`` says which names its outputs have:
  "imagenet1k"    the built-in list (tinynet/data/imagenet1k.txt, synset order); a model with 1001
                  outputs is taken to follow the TensorFlow convention, output 0 = "background"
  "coco91"        torchvision's 91 COCO detection slots (tinynet/data/coco91.txt: 0 = background, "N/A" gaps)
  "voc21"         PASCAL VOC's 20 classes after "__background__" (tinynet/data/voc21.txt, torchvision's segmentation)
  [name, ...]     its own list, one name per output
  absent          numbered names, "class 0", "class 1", ...
"""
from functools import cache
from importlib import resources

from tinynet.errors import WeightsError

IMAGENET_CLASSES = 1000


@cache
def imagenet1k():
    """The 1000 ImageNet-1k class names in synset order (torchvision's short names), as a tuple."""
    text = resources.files("tinynet").joinpath("data/imagenet1k.txt").read_text(encoding="utf-8")
    names = tuple(text.splitlines())
    if len(names) != IMAGENET_CLASSES:  # a broken install, not a user error
        raise RuntimeError(f"tinynet/data/imagenet1k.txt has {len(names)} lines, expected {IMAGENET_CLASSES}")
    return names


@cache
def coco91():
    """torchvision's 91 COCO category names, index = class id, as a tuple."""
    return tuple(resources.files("tinynet").joinpath("data/coco91.txt").read_text(encoding="utf-8").splitlines())


@cache
def voc21():
    """PASCAL VOC's segmentation classes, index = class id (0 = background), as a tuple."""
    return tuple(resources.files("tinynet").joinpath("data/voc21.txt").read_text(encoding="utf-8").splitlines())


def labels_for(model):
    """One name per output of ``model`` (a list of ``model.num_classes`` strings), from its meta["labels"]."""
    labels = model.meta.get("labels")
    n = model.num_classes
    if labels == "imagenet1k":
        names = list(imagenet1k())
        if n == IMAGENET_CLASSES + 1:
            names.insert(0, "background")
        if len(names) != n:
            raise WeightsError(f"labels are 'imagenet1k' ({IMAGENET_CLASSES} classes) but the model has {n} outputs")
        return names
    if labels == "coco91":
        names = list(coco91())
        if len(names) != n:
            raise WeightsError(f"labels are 'coco91' ({len(names)} classes) but the model has {n} outputs")
        return names
    if labels == "voc21":
        names = list(voc21())
        if len(names) != n:
            raise WeightsError(f"labels are 'voc21' ({len(names)} classes) but the model has {n} outputs")
        return names
    if isinstance(labels, list):
        if len(labels) != n:
            raise WeightsError(f"metadata lists {len(labels)} label names for a model with {n} outputs")
        if not all(isinstance(name, str) for name in labels):
            raise WeightsError("metadata label names must all be strings")
        return list(labels)
    return [f"class {i}" for i in range(n)]
