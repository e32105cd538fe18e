"""``load`` and ``save``: weight files in, tinynet's own format out.

Recognised by content, not by extension:
  torch zip (``torch.save``)     torchvision / timm / transformers state dicts, read without torch
  safetensors                    tinynet's own format (has ``tinynet_format`` metadata) or timm / transformers
                                 checkpoints (a Hugging Face folder with config.json is read through its weight file)
  TFLite flatbuffer, Keras HDF5  (tinynet.formats.tflite / keras_h5)
  Keras 3 .keras zip, ONNX       (tinynet.formats.keras3 / onnx)

tinynet's format is safetensors with BatchNorm already folded and every tensor in runtime layout
(see tinynet.spec), plus metadata: ``tinynet_format`` ("1"), ``arch``, ``padding`` and ``meta``
(JSON: preprocessing, labels, source). Loading it is one read and a shape check.
"""
import json
from pathlib import Path

from tinynet import metadata as conventions
from tinynet.architectures import ARCHITECTURES
from tinynet.errors import TinynetError, WeightsError
from tinynet.formats import hub_config, pytorch, safetensors, torch_zip
from tinynet.formats.fold import fold, unused
from tinynet.model import Model
from tinynet.spec import check_weights, layers_for_weights

FORMAT_VERSION = "1"
MAX_MESSAGE_CHARS = 1000
MAGIC = {b"PK\x03\x04": "torch", b"\x89HDF": "hdf5"}


def sniff(path):
    """The format of the file at ``path``: "torch", "keras3", "safetensors", "tflite", "hdf5", "onnx", or None."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"PK\x03\x04":
        from tinynet.formats import keras3
        return "keras3" if keras3.is_keras_archive(path) else "torch"
    if head[:4] in MAGIC:
        return MAGIC[head[:4]]
    if head[4:8] == b"TFL3":
        return "tflite"
    if len(head) > 8 and head[8:9] == b"{":
        return "safetensors"
    from tinynet.formats import onnx
    if onnx.looks_like_onnx(head):
        return "onnx"
    return None


def load(source, arch=None, precision=None, profile="litert"):
    """Load a model from a weight file, or by name from the local store (tinynet.store: ``tinynet pull`` /
    ``tinynet import`` put models there); ``arch`` overrides the architecture inferred from the file.

    ``source`` is a path when it is a ``Path`` (any os.PathLike), contains a directory separator or ends in
    a weight-file suffix (.pth, .safetensors, .tflite, .h5, ...); any other string is a stored model's name,
    even when a file of that name is in the working directory (load that one as ``"./name"``).

    Architecture, width and number of classes come from the tensor names and shapes. A file that
    does not fit raises tinynet.WeightsError naming the first tensor that does not match.

    Quantized .tflite files run in integers, bit for bit what LiteRT gives (``model.precision == "int8"``):
    ``profile="litert"`` (default) matches LiteRT's default kernels on x86, ``profile="reference"`` TFLite's
    reference kernels; ``precision="float"`` runs such a file dequantized in float32 instead.
    """
    if arch is not None and arch not in ARCHITECTURES:
        raise TinynetError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    from tinynet import store  # here, not at the top: the store itself saves and loads through this module

    if isinstance(source, str) and not store.is_path(source):
        # A bare name is a stored model, never a file of that name in the working directory ("./name" is one).
        path = store.locate(source)
    else:
        path = Path(source)
        if not path.exists():
            raise TinynetError(store.missing_message(str(source)))
    if path.is_dir():  # a Hugging Face model folder: config.json + model.safetensors / pytorch_model.bin
        try:
            path = hub_config.weights_in(path)
        except WeightsError as e:
            raise type(e)(" ".join(str(e).split())[:MAX_MESSAGE_CHARS]) from None
    if not path.is_file():
        raise TinynetError(f"not a weight file: {source}")
    kind = sniff(path)
    if precision not in (None, "float") and kind not in ("tflite", "safetensors"):  # tinynet's own files may hold one
        raise TinynetError(f"precision {precision!r} applies to quantized .tflite files; {path.name} runs in float")
    try:
        if kind == "torch":
            model = _from_pytorch(torch_zip.read(path), arch, path)
        elif kind == "safetensors":
            tensors, metadata = safetensors.read(path)
            if "tinynet_format" in metadata:
                model = _from_native(tensors, metadata, arch, path, precision, profile)
            else:
                model = _from_pytorch(tensors, arch, path)
        elif kind == "tflite":
            from tinynet.formats import tflite
            model = tflite.load(path, arch, precision, profile)
        elif kind == "hdf5":
            from tinynet.formats import keras_h5
            model = keras_h5.load(path, arch)
        elif kind == "keras3":
            from tinynet.formats import keras3
            model = keras3.load(path, arch)
        elif kind == "onnx":
            from tinynet.formats import onnx
            model = onnx.load(path, arch)
        else:
            raise WeightsError("not a weight file tinynet reads (expected a .pth, .safetensors, .tflite, .h5, .keras "
                               "or .onnx)")
        conventions.check(model)  # metadata that would only fail at forward is refused now
    except WeightsError as e:
        # One line, of bounded length, whatever the file put in it (tensor names come from the file).
        message = " ".join(str(e).split())[:MAX_MESSAGE_CHARS]
        raise type(e)(message if message.startswith(str(path)) else f"{path}: {message}") from None
    return model


def _from_pytorch(tensors, arch, path):
    from tinynet.detection import ssdlite  # here: the detection package imports tinynet.model, as this module does

    if ssdlite.is_ssdlite_state_dict(tensors):
        from tinynet.detection.load import ssdlite_from_torchvision

        return ssdlite_from_torchvision(tensors, path)
    from tinynet.segmentation.load import segmentation_arch, segmentation_from_torchvision

    if segmentation_arch(tensors):
        return segmentation_from_torchvision(tensors, path)
    library, detected = pytorch.detect(tensors)
    if library == "transformers":
        from tinynet.formats import transformers_mobilenet
        return transformers_mobilenet.load(tensors, arch, path, detected)
    arch = arch or detected
    padding, preprocess_spec = "symmetric", {"preset": library}
    if library == "torchvision":
        sources, eps = pytorch.torchvision_sources(arch, tensors), pytorch.BN_EPS.get(arch, 1e-5)
    else:
        sources = pytorch.timm_sources(arch, tensors)
        eps, padding, preprocess_spec = pytorch.timm_conventions(arch, path, hub_config.config_beside(path))
    weights, origin = fold(tensors, sources, eps)
    extra = unused(tensors, sources)
    if extra:
        raise WeightsError(f"tensor {extra[0]} has no place in {arch}")
    shapes = {n: a.shape for n, a in weights.items()}
    layers = layers_for_weights(arch, shapes)
    check_weights(layers, weights, describe=lambda n: f"{origin.get(n, n)} ({n})")
    meta = {"preprocess": preprocess_spec, "source": f"{library}:{path.name}"}
    if layers[-1].cout == 1000:  # torchvision and timm ImageNet heads use the standard synset order
        meta["labels"] = "imagenet1k"
    return Model(arch, layers, weights, padding, meta)


def _from_native(tensors, metadata, arch, path, precision=None, profile="litert"):
    from tinynet.detection.load import NATIVE_DETECTORS, detector_from_native  # here: it imports tinynet.model too

    if metadata["tinynet_format"] != FORMAT_VERSION:
        raise WeightsError(f"tinynet format version {metadata['tinynet_format']} is newer than this tinynet reads ({FORMAT_VERSION})")
    stored = metadata.get("arch")
    if stored not in ARCHITECTURES and stored not in NATIVE_DETECTORS:
        raise WeightsError(f"unknown architecture {stored!r} in metadata")
    if arch is not None and arch != stored:
        raise WeightsError(f"file holds {stored}, not {arch}")
    try:
        meta = json.loads(metadata.get("meta", "{}"))
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; RecursionError: absurd nesting
        raise WeightsError("metadata 'meta' is not valid JSON") from None
    if not isinstance(meta, dict):
        raise WeightsError(f"metadata 'meta' is a JSON {type(meta).__name__}, not an object")
    padding = metadata.get("padding", "symmetric")
    if stored in NATIVE_DETECTORS:
        return detector_from_native(stored, tensors, padding, meta)
    from tinynet.formats import tflite  # here, as in load: its reader is only needed for .tflite files

    if tflite.STORED_TENSOR in tensors:  # an int8 classifier, kept as its .tflite file
        return tflite.from_stored(tensors, meta, stored, precision, profile)
    if precision == "int8":
        raise TinynetError(f"{path.name} holds a float model: precision 'int8' applies to quantized .tflite files")
    shapes = {n: a.shape for n, a in tensors.items()}
    check_float32(tensors)
    layers = layers_for_weights(stored, shapes)
    return Model(stored, layers, tensors, padding, meta)


def check_float32(tensors):
    for name, array in tensors.items():
        if array.dtype != "float32":
            raise WeightsError(f"tensor {name} is {array.dtype}; tinynet files hold float32")


def save(model, path):
    """Write ``model`` in tinynet's format (safetensors, BatchNorm folded, runtime layout; a detector as
    tinynet.detection.load says)."""
    if model.task not in ("classification", "detection"):  # a segmentation head has no place in the format yet
        raise TinynetError(f"{model.arch} is a {model.task} model: tinynet's format holds classifiers and detectors "
                           "only so far; load its original file instead")
    folder = Path(path).parent
    if not folder.is_dir():
        raise TinynetError(f"cannot save to {path}: folder {folder} does not exist")
    metadata = {"tinynet_format": FORMAT_VERSION, "arch": model.arch, "padding": model.padding,
                "meta": json.dumps(model.meta, sort_keys=True)}
    safetensors.write(path, model.native_tensors(), metadata)
