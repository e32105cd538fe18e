"""``tinynet.export``: a model as a float32 ONNX or TFLite file, for ONNX Runtime or LiteRT on a server or phone.

Both files compute tinynet's forward: the input is the preprocessed image (tinynet.preprocess.for_model), the
output the logits. ONNX takes it channels first (N, 3, H, W) with N, H and W free; TFLite channels last
(1, S, S, 3) at the model's input size S (LiteRT's resize_tensor_input changes it).
"""
import os
import threading
from pathlib import Path

from tinynet import io, preprocess
from tinynet.errors import TinynetError
from tinynet.model import MIN_INPUT_SIZE, Model

FORMATS = {"onnx": ".onnx", "tflite": ".tflite"}


def format_for(path, format=None):
    """The format named, or the one ``path``'s suffix names; a one-line TinynetError otherwise."""
    if format is None:
        format = next((name for name, suffix in FORMATS.items() if str(path).lower().endswith(suffix)), None)
        if format is None:
            raise TinynetError(f"cannot tell the export format from {str(path)!r}: name it .onnx or .tflite, "
                               f"or give format='onnx' or 'tflite'")
    if format not in FORMATS:
        raise TinynetError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    return format


def export(model, path, format=None, resolution=None, float_activations=False):
    """Write ``model`` (a Model, or anything tinynet.load takes) to ``path`` as ``format`` ("onnx" or "tflite";
    default from the suffix); returns the Path written.

    ``resolution``: the TFLite input size (default: the model's preprocessing size; ONNX leaves it free).
    A model that snaps its activations to 8-bit grids (Model.quantized_activations: quantization-aware-trained
    weights, e.g. TF1 uint8 .tflite files and heads trained on them) is exported with the same snapping, as
    quantize-dequantize pairs; ``float_activations=True`` leaves them out (plain float activations throughout).
    """
    model = model if isinstance(model, Model) else io.load(model)
    if model.task != "classification":  # the writers walk a classifier's layers; a head graph has no place yet
        raise TinynetError(f"{model.arch} is a {model.task} model: only classifiers can be exported so far")
    format = format_for(path, format)
    path = Path(path)
    if not path.parent.is_dir():
        raise TinynetError(f"cannot write {path}: folder {path.parent} does not exist")
    grid = model.meta.get("activation_grid") if model.quantized_activations and not float_activations else None
    resolution = resolution or preprocess.for_model(model).size
    if resolution < MIN_INPUT_SIZE:
        raise TinynetError(f"resolution must be at least {MIN_INPUT_SIZE}, got {resolution}")
    if format == "onnx":
        from tinynet.formats.onnx_writer import to_onnx

        content = to_onnx(model, grid)
    else:
        from tinynet.formats.tflite_writer import to_tflite

        content = to_tflite(model, resolution, f"tinynet export of {model.meta.get('source', model.arch)}", grid)
    _write_atomically(path, content)
    return path


def _write_atomically(path, content):
    """A reader never sees half a file, and a failed export leaves no file behind; the file gets the usual
    permissions (the umask's), as any file the user writes."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
