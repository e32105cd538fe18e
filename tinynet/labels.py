"""Class names: the 1000 ImageNet-1k names shipped with tinynet, and the names a model's outputs carry.

A model's ``meta["labels"]`` says which names its outputs have:
  "imagenet1k"    the built-in list (tinynet/data/imagenet1k.txt, synset order); a model with 1001
                  outputs is taken to follow the TensorFlow convention, output 0 = "background"
  "coco91"        torchvision's 91 COCO detection slots (tinynet/data/coco91.txt: 0 = background, "N/A" gaps)
  "voc21"         PASCAL VOC's 20 classes after "__background__" (tinynet/data/voc21.txt, torchvision's segmentation)
  [name, ...]     its own list, one name per output
  absent          numbered names, "class 0", "class 1", ...
"""
import re
from functools import cache
from importlib import resources
from pathlib import Path

from tinynet.errors import TinynetError, WeightsError

IMAGENET_CLASSES = 1000
BUILT_IN = ("imagenet1k", "coco91", "voc21")  # the lists named above, shipped in tinynet/data
INDEXED = re.compile(r"(\d+)\t(.*)")  # a line of `tinynet labels`: index, tab, name


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


def read_names(file, outputs):
    """Class names for a model with ``outputs`` outputs from a text file: one name per line, in output order
    (TensorFlow's and Keras' labels.txt), or what `tinynet labels` prints ("<index><TAB><name>" lines). Blank
    lines at the end are ignored; the count must match the outputs."""
    file = Path(file)
    try:
        lines = file.read_text(encoding="utf-8").rstrip("\n").split("\n")
    except OSError as e:
        raise TinynetError(f"cannot read labels file {file}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise TinynetError(f"labels file {file} is not UTF-8 text") from None
    lines = [line.rstrip("\r") for line in lines]
    indexed = [INDEXED.fullmatch(line) for line in lines]
    if all(indexed) and [int(m[1]) for m in indexed] == list(range(len(lines))):
        lines = [m[2] for m in indexed]
    names = [line.strip() for line in lines]
    if any(not name for name in names):
        raise TinynetError(f"{file}:{names.index('') + 1}: empty class name (one name per line)")
    if len(names) != outputs:
        hint = ""
        if len(names) + 1 == outputs:
            hint = " (a 1001-output model's first output is usually 'background': add it as the first line)"
        elif len(names) == outputs + 1:
            hint = " (a first line 'background' belongs to 1001-output models: remove it)"
        raise TinynetError(f"{file} has {len(names)} class names, the model has {outputs} outputs{hint}")
    return names
