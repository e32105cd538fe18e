"""The pretrained models ``tinynet pull`` knows: data only, one ``Entry`` per name.

Facts come from the publishers (looked up, never guessed):
  torchvision  URLs, acc@1 and resize sizes from the weight enums in torchvision/models/mobilenetv2.py and
               mobilenetv3.py. torchvision publishes no full digest: the 8 hex digits in each file name are
               the start of its sha256, which torch.hub checks, and so does tinynet (``sha256_prefix``).
  TensorFlow   .tgz URLs and top-1 from tensorflow/models research/slim/nets/mobilenet_v1.md and
               nets/mobilenet/README.md. No digest is published for these archives (``sha256=None``).
  timm         Hugging Face repository timm/mobilenetv1_100.ra4_e3600_r224_in1k; top-1 at 224 from timm's
               README table (tinynet.preprocess's "timm" preset is its pretrained config). Hugging Face shows
               an LFS sha256 on the file page, but none could be looked up for this file: not pinned.

Tests and mirrors add or replace entries with a JSON file named by $TINYNET_REGISTRY (a list of objects
with the fields of ``Entry``), or by passing ``extra`` to ``load``.
"""
import json
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

from tinynet.errors import TinynetError

TORCHVISION_LICENSE = "BSD-3-Clause"  # torchvision's license; its weight enums state no other
TENSORFLOW_LICENSE = "Apache-2.0"  # tensorflow/models
TIMM_LICENSE = "Apache-2.0"  # the Hugging Face model card of the timm weights


@dataclass(frozen=True)
class Entry:
    name: str  # store name, what users type
    arch: str  # tinynet architecture
    url: str  # official download
    file: str  # the download's file name (also its name in torch's / Keras' caches)
    license: str
    top1: float  # published ImageNet-1k top-1 (%) of these weights
    preprocess: dict  # Model.meta["preprocess"]: {"preset": ..., overrides} (see tinynet.preprocess.resolve)
    member: str = None  # archive member holding the weights (TF's .tgz -> .tflite)
    sha256: str = None  # full published digest of the download
    sha256_prefix: str = None  # published leading hex digits of the digest (torchvision file names)
    hf_repo: str = None  # Hugging Face repository id, to find the file in HF's cache
    width: float = 1.0  # width multiplier, and
    num_classes: int = 1000  # outputs of the converted model: for the size and cost `tinynet models` shows
    notes: str = ""  # which release of the weights this is

    @property
    def verification(self):
        """How a download is checked, in words for ``tinynet models``."""
        if self.sha256:
            return "sha256"
        if self.sha256_prefix:
            return f"prefix {self.sha256_prefix}"
        return "none published"


def _torchvision(name, file, top1, resize, notes):
    """torchvision's eval transform: resize the shorter side to ``resize``, centre crop 224."""
    return Entry(name, name, f"https://download.pytorch.org/models/{file}", file, TORCHVISION_LICENSE, top1,
                 {"preset": "torchvision", "crop_fraction": 224 / resize},
                 sha256_prefix=file.rsplit("-", 1)[1].split(".")[0], notes=notes)


def _tensorflow(name, arch, url, member, top1):
    """TF-slim float weights; their 1001st output ("background") is dropped on import, leaving ImageNet's 1000."""
    return Entry(name, arch, url, url.rsplit("/", 1)[1], TENSORFLOW_LICENSE, top1, {"preset": "tf"}, member=member,
                 notes="TF-slim float weights, .tflite from the published archive")


BUILTIN = [
    _torchvision("mobilenet_v3_large", "mobilenet_v3_large-5c1a4163.pth", 75.274, 232, "IMAGENET1K_V2"),
    _torchvision("mobilenet_v3_small", "mobilenet_v3_small-047dcff4.pth", 67.668, 256, "IMAGENET1K_V1"),
    _torchvision("mobilenet_v2", "mobilenet_v2-7ebf99e0.pth", 72.154, 232, "IMAGENET1K_V2"),
    Entry("mobilenet_v1", "mobilenet_v1",
          "https://huggingface.co/timm/mobilenetv1_100.ra4_e3600_r224_in1k/resolve/main/model.safetensors",
          "model.safetensors", TIMM_LICENSE, 75.382,
          {"preset": "timm"},
          hf_repo="timm/mobilenetv1_100.ra4_e3600_r224_in1k", notes="timm mobilenetv1_100.ra4_e3600_r224_in1k"),
    _tensorflow("mobilenet_v1_tf", "mobilenet_v1",
                "http://download.tensorflow.org/models/mobilenet_v1_2018_08_02/mobilenet_v1_1.0_224.tgz",
                "mobilenet_v1_1.0_224.tflite", 70.9),
    _tensorflow("mobilenet_v2_tf", "mobilenet_v2",
                "https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_1.0_224.tgz",
                "mobilenet_v2_1.0_224.tflite", 71.8),
    _tensorflow("mobilenet_v3_large_tf", "mobilenet_v3_large",
                "https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-large_224_1.0_float.tgz",
                "v3-large_224_1.0_float.tflite", 75.2),
    _tensorflow("mobilenet_v3_small_tf", "mobilenet_v3_small",
                "https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-small_224_1.0_float.tgz",
                "v3-small_224_1.0_float.tflite", 67.5),
    _tensorflow("mobilenet_v3_large_minimalistic_tf", "mobilenet_v3_large_minimalistic",
                "https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-large-minimalistic_224_1.0_float.tgz",
                "v3-large-minimalistic_224_1.0_float.tflite", 72.3),
    _tensorflow("mobilenet_v3_small_minimalistic_tf", "mobilenet_v3_small_minimalistic",
                "https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-small-minimalistic_224_1.0_float.tgz",
                "v3-small-minimalistic_224_1.0_float.tflite", 61.9),
]

DEFAULT_MODEL = "mobilenet_v3_large"


def load(extra=None):
    """Name -> Entry: the built-in entries, then those of the JSON file ``extra`` (default: $TINYNET_REGISTRY),
    which add names or replace built-in ones."""
    entries = {e.name: e for e in BUILTIN}
    extra = extra or os.environ.get("TINYNET_REGISTRY")
    if extra:
        for entry in _read_extra(Path(extra)):
            entries[entry.name] = entry
    return entries


def _read_extra(path):
    try:
        items = json.loads(path.read_text())
    except OSError as e:
        raise TinynetError(f"cannot read registry file {path}: {e.strerror}") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise TinynetError(f"registry file {path} is not valid JSON: {str(e)[:200]}") from None
    known = {f.name for f in fields(Entry)}
    entries = []
    for item in items if isinstance(items, list) else [items]:
        if not isinstance(item, dict):
            raise TinynetError(f"registry file {path}: expected a list of objects")
        unknown = set(item) - known
        if unknown:
            raise TinynetError(f"registry file {path}: unknown field {sorted(unknown)[0]!r}")
        try:
            entry = Entry(**item)
        except TypeError as e:
            raise TinynetError(f"registry file {path}: {e}") from None
        problem = _problem(entry)
        if problem:
            raise TinynetError(f"registry file {path}: entry {str(item.get('name'))[:60]!r}: {problem}")
        entries.append(entry)
    return entries


HEX = frozenset("0123456789abcdef")


def _problem(entry):
    """What is wrong with an entry read from JSON (each field its type, in its range), or None: a wrong type
    would otherwise surface as a TypeError deep in `tinynet models` or `pull`."""
    from tinynet import preprocess, store  # here: both import this module's neighbours, not needed for BUILTIN
    from tinynet.architectures import ARCHITECTURES

    def text(value, optional=False):
        return (optional and value is None) or (isinstance(value, str) and value.isprintable() and len(value) <= 2000)

    def number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    if not (text(entry.name) and store.is_valid_name(entry.name)):
        return "name must be a store name (letters, digits, '.', '_', '-')"
    if not isinstance(entry.arch, str) or entry.arch not in ARCHITECTURES:
        return f"arch must be one of {', '.join(ARCHITECTURES)}"
    for field in ("url", "file", "license", "notes"):
        if not text(getattr(entry, field)):
            return f"{field} must be a string"
    if "/" in entry.file or "\\" in entry.file or entry.file in ("", ".", ".."):
        return "file must be a plain file name"
    for field in ("member", "hf_repo"):
        if not text(getattr(entry, field), optional=True):
            return f"{field} must be a string or null"
    for field, length in (("sha256", 64), ("sha256_prefix", None)):
        value = getattr(entry, field)
        if value is not None and not (isinstance(value, str) and 0 < len(value) <= 64 and set(value.lower()) <= HEX
                                      and (length is None or len(value) == length)):
            return f"{field} must be {length or 'up to 64'} hex digits or null"
    if not (number(entry.top1) and 0 <= entry.top1 <= 100):
        return "top1 must be a percentage"
    if not (number(entry.width) and 0 < entry.width <= 4):
        return "width must be a number in (0, 4]"
    if not (isinstance(entry.num_classes, int) and not isinstance(entry.num_classes, bool) and 1 <= entry.num_classes <= 100000):
        return "num_classes must be a whole number from 1 to 100000"
    if not isinstance(entry.preprocess, dict):
        return "preprocess must be an object such as {\"preset\": \"tf\"}"
    try:
        preprocess.resolve(entry.preprocess)
    except TinynetError as e:
        return str(e)
    return None
