"""The conventions a loaded model carries (``Model.padding`` and ``Model.meta``), checked at load.

Every format ends in the same ``Model``, and its metadata comes from the file: a tinynet file's JSON,
a TFLite file's quantization parameters, a registry entry. A value that would only fail at forward
(a ZeroDivisionError from a zero grid step, an OverflowError from a 400-digit number, a crop that
resizes to infinity) is refused here instead, with a WeightsError naming the field: a file either
loads and works, or does not load.
"""
import math

import numpy as np

from tinynet import preprocess
from tinynet.errors import TinynetError, WeightsError
from tinynet.kernels.padding import PADDINGS
from tinynet.labels import BUILT_IN, labels_for
from tinynet.model import MIN_INPUT_SIZE  # Model refuses smaller inputs: a model asking for them could never run

MAX_LABEL_CHARS = 1000
MAX_SOURCE_CHARS = 4096
GRID_OPS = ("conv", "dw", "pw", "fc")  # the layers whose output Plan may snap to a grid
MAX_GRID_LEVELS = 1 << 16  # 16-bit activations at most; TF's QAT files use 256


def check(model):
    """Raise WeightsError, naming the field, for the first metadata value of ``model`` that is invalid."""
    if not isinstance(model.padding, str) or model.padding not in PADDINGS:
        raise WeightsError(f"unknown padding {_short(model.padding)} in metadata; expected one of {', '.join(PADDINGS)}")
    _check_preprocess(model)
    _check_labels(model)
    source = model.meta.get("source")
    if source is not None and not (isinstance(source, str) and len(source) <= MAX_SOURCE_CHARS):
        raise WeightsError(f"metadata source must be a string of at most {MAX_SOURCE_CHARS} characters, got {_short(source)}")
    if "activation_grid" in model.meta:
        check_activation_grid(model.meta["activation_grid"], model.layers)


def _check_preprocess(model):
    try:
        spec = preprocess.for_model(model)
    except TinynetError as e:
        raise WeightsError(f"metadata: {e}") from None
    if spec.size < MIN_INPUT_SIZE:
        raise WeightsError(f"metadata preprocess size {spec.size} is below {MIN_INPUT_SIZE}, the smallest input a model runs on")


def _check_labels(model):
    labels = model.meta.get("labels")
    if labels is not None and labels not in BUILT_IN and not isinstance(labels, list):
        raise WeightsError(f"metadata labels must be one of {', '.join(map(repr, BUILT_IN))} or a list of names, "
                           f"got {_short(labels)}")
    try:
        names = labels_for(model)
    except TinynetError as e:
        raise WeightsError(f"metadata: {e}") from None
    long = next((name for name in names if len(name) > MAX_LABEL_CHARS), None)
    if long is not None:
        raise WeightsError(f"metadata labels: a label name has {len(long)} characters (at most {MAX_LABEL_CHARS})")


def check_activation_grid(grid, layers):
    """``grid``: {layer name: [lo, step, levels]} (tinynet.plan); each entry must describe levels the
    kernel can compute in float32: lo, step and the top level finite, 1 / step finite, 2..65536 levels."""
    if not isinstance(grid, dict):
        raise WeightsError(f"metadata activation_grid must be an object {{layer: [lo, step, levels]}}, got {_short(grid)}")
    snappable = {layer.name for layer in layers if layer.op in GRID_OPS}
    for name, entry in grid.items():
        where = f"metadata activation_grid[{_short(name)}]"
        if name not in snappable:
            raise WeightsError(f"{where}: no conv, depthwise, pointwise or fc layer of that name in this model")
        if not (isinstance(entry, (list, tuple)) and len(entry) == 3):
            raise WeightsError(f"{where} must be [lo, step, levels], got {_short(entry)}")
        lo, step, levels = entry
        if not (_is_real(lo) and _is_real(step) and isinstance(levels, int) and not isinstance(levels, bool)):
            raise WeightsError(f"{where} must hold two numbers and a whole number of levels, got {_short(entry)}")
        if not 2 <= levels <= MAX_GRID_LEVELS:
            raise WeightsError(f"{where}: {levels} levels, expected 2 to {MAX_GRID_LEVELS}")
        with np.errstate(all="ignore"):
            lo32, step32 = np.float32(lo), np.float32(step)
            top32 = lo32 + step32 * np.float32(levels - 1)
            inverse = np.float32(1) / step32 if step32 > 0 else np.float32(np.inf)
        if not (np.isfinite([lo32, step32, top32, inverse]).all() and step32 > 0):
            raise WeightsError(f"{where}: lo {_short(lo)} and step {_short(step)} do not give finite float32 levels "
                               "with a positive step")


def _is_real(value):
    """A finite int or float that float() can convert (a 400-digit int cannot)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _short(value):
    """repr of a file's value, cut to fit on one line of an error message."""
    try:
        text = repr(value)
    except ValueError:  # an int of more than 4300 digits
        return f"<{type(value).__name__} too long to show>"
    return text if len(text) <= 60 else text[:57] + "..."
