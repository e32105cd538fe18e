"""From a layer table to concrete layers: channel counts, weight names and shapes, MACs and params.

A table row (tinynet.architectures) becomes one or more ``Layer``s. Channel counts come either
from a width multiplier (``layers_for_width``, for ``tinynet.create``) or from the shapes of the
weights in a file (``layers_for_weights``), so a checkpoint of any width loads without knowing its
rounding rule. Weight names are ``"{block:02d}.{part}.{w|b}"`` in the runtime layout:

  conv  w (KH, KW, Cin, Cout)    dw  w (KH, KW, C)    pw / fc  w (Cin, Cout)
  se    se.reduce.w (C, S), se.expand.w (S, C)        every layer has a bias b (Cout,)
"""
from dataclasses import dataclass

import numpy as np

from tinynet.kernels import conv_output_size
from tinynet.architectures import CLASSES, EXPANSION_IS_RATIO, make_divisible, rows
from tinynet.errors import TinynetError, WeightsError


@dataclass(frozen=True)
class Layer:
    name: str  # weight prefix, e.g. "04.dw"
    op: str  # "conv" | "dw" | "pw" | "se" | "pool" | "fc"
    block: int  # table row
    cin: int
    cout: int
    k: int = 1
    stride: int = 1
    act: str = None
    residual: bool = False  # add the block's input after the activation
    squeeze: int = 0  # se only: hidden width of the squeeze FC
    dilation: int = 1  # dw only: taps this many pixels apart (atrous backbones for dense tasks)


def _layers(arch, out_channels, expanded_channels, squeeze_channels):
    """Walk the table of ``arch``; the three callbacks decide channel counts for each row."""
    layers, c = [], 3
    for i, row in enumerate(rows(arch)):
        name = f"{i:02d}"
        if row.kind == "conv":
            out = out_channels(i, row)
            op = "conv" if row.k > 1 else "pw"
            layers.append(Layer(f"{name}.conv", op, i, c, out, row.k, row.s, row.act))
        elif row.kind == "ds":
            out = out_channels(i, row)
            layers.append(Layer(f"{name}.dw", "dw", i, c, c, row.k, row.s, row.act))
            layers.append(Layer(f"{name}.pw", "pw", i, c, out, act=row.act))
        elif row.kind == "ir":
            out, exp = out_channels(i, row), expanded_channels(i, row, c)
            if exp != c:
                layers.append(Layer(f"{name}.expand", "pw", i, c, exp, act=row.act))
            layers.append(Layer(f"{name}.dw", "dw", i, exp, exp, row.k, row.s, row.act))
            if row.se:
                layers.append(Layer(f"{name}.se", "se", i, exp, exp, squeeze=squeeze_channels(i, exp)))
            residual = row.s == 1 and c == out
            layers.append(Layer(f"{name}.project", "pw", i, exp, out, residual=residual))
        elif row.kind == "pool":
            layers.append(Layer(f"{name}.pool", "pool", i, c, c))
        elif row.kind == "fc":
            out = out_channels(i, row)
            layers.append(Layer(f"{name}.fc", "fc", i, c, out, act=row.act))
        else:
            raise ValueError(f"{arch} row {i}: unknown kind {row.kind!r}")
        c = layers[-1].cout
    return tuple(layers)


CONVENTIONS = ("torchvision", "tf")


def layers_for_width(arch, width=1.0, num_classes=1000, convention="torchvision"):
    """Concrete layers of ``arch`` at a width multiplier.

    ``convention`` is how a width scales the channels; the two differ for V3 only:
      "torchvision"  torchvision's and timm's: every count in the table times ``width``, rounded.
      "tf"           TF-slim's and Keras': an expansion is its ratio (table exp / table input) times the
                     block's rounded input channels, and the hidden FC before the classifier (C5) is never
                     narrower than at 1.0. This is what the V3 paper's Table 3 counts (Large 0.75: 155 M MACs).
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width < float("inf"):
        raise TinynetError(f"width must be a positive number (1.0 is the published size), got {width!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise TinynetError(f"num_classes must be a whole number of at least 1, got {num_classes!r}")
    if convention not in CONVENTIONS:
        raise TinynetError(f"unknown width convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
    table = rows(arch)
    tf = convention == "tf"

    def out_channels(i, row):
        if row.out == CLASSES:
            return num_classes
        scale = {"w": width, "max1": max(1.0, width), "fixed": 1.0}[row.scale]
        if tf and row.kind == "fc":
            scale = max(1.0, width)
        return make_divisible(row.out * scale)

    def expanded_channels(i, row, cin):
        if arch in EXPANSION_IS_RATIO:
            return int(round(cin * row.exp))
        if tf:  # the ratio as TF-slim writes it (72/16, 88/24, 184/80), applied to the rounded input
            return make_divisible(cin * (row.exp / table[i - 1].out))
        return make_divisible(row.exp * width)

    return _layers(arch, out_channels, expanded_channels, lambda i, exp: make_divisible(exp // 4))


def layers_for_weights(arch, shapes):
    """Concrete layers of ``arch`` with channel counts read from weight ``shapes`` (name -> shape)."""

    def channels(name, axis):
        if name not in shapes:
            raise WeightsError(f"{arch}: missing tensor {name}")
        if len(shapes[name]) < 2:  # every weight these counts come from is a matrix or a kernel
            raise WeightsError(f"{arch}: tensor {name} has shape {tuple(shapes[name])}, not a weight matrix or kernel")
        return shapes[name][axis]

    def out_channels(i, row):
        part = {"conv": "conv", "ds": "pw", "ir": "project", "fc": "fc"}[row.kind]
        return channels(f"{i:02d}.{part}.w", -1)

    def expanded_channels(i, row, cin):
        name = f"{i:02d}.expand.w"
        return channels(name, -1) if name in shapes else cin

    return _layers(arch, out_channels, expanded_channels, lambda i, exp: channels(f"{i:02d}.se.reduce.w", -1))


def weight_shapes(layers):
    """Expected name -> shape of every weight tensor, in execution order."""
    shapes = {}
    for layer in layers:
        n, k, cin, cout = layer.name, layer.k, layer.cin, layer.cout
        if layer.op == "conv":
            shapes[f"{n}.w"], shapes[f"{n}.b"] = (k, k, cin, cout), (cout,)
        elif layer.op == "dw":
            shapes[f"{n}.w"], shapes[f"{n}.b"] = (k, k, cout), (cout,)
        elif layer.op in ("pw", "fc"):
            shapes[f"{n}.w"], shapes[f"{n}.b"] = (cin, cout), (cout,)
        elif layer.op == "se":
            s = layer.squeeze
            shapes[f"{n}.reduce.w"], shapes[f"{n}.reduce.b"] = (cin, s), (s,)
            shapes[f"{n}.expand.w"], shapes[f"{n}.expand.b"] = (s, cin), (cin,)
    return shapes


def check_weights(layers, tensors, head_shapes=None, describe=str):
    """Raise WeightsError at the first tensor whose shape differs from what ``layers`` expect, or
    that holds NaN or infinite values (which would silently poison every output).

    ``tensors`` maps names to arrays (or to shapes, to check shapes only). ``describe(name)`` turns a
    tinynet name into the words used in the message (e.g. the source file's own tensor name). ``head_shapes``:
    {name: shape} of the weights a head adds (tinynet.graph.head_weight_shapes).
    """
    shapes = {n: getattr(t, "shape", t) for n, t in tensors.items()}
    expected = {**weight_shapes(layers), **(head_shapes or {})}
    for name, shape in expected.items():
        if name not in shapes:
            raise WeightsError(f"missing tensor {describe(name)}: expected shape {shape}")
        if tuple(shapes[name]) != shape:
            raise WeightsError(f"tensor {describe(name)} does not fit: expected shape {shape}, found {tuple(shapes[name])}")
    extra = [n for n in shapes if n not in expected]
    if extra:
        raise WeightsError(f"unexpected tensor {describe(extra[0])} (shape {tuple(shapes[extra[0]])}) for this architecture")
    for name, t in tensors.items():
        if hasattr(t, "dtype") and not np.isfinite(t).all():
            raise WeightsError(f"tensor {describe(name)} contains NaN or infinite values")


COMMON_WIDTHS = (1.0, 0.75, 0.5, 0.35, 0.25, 1.25, 1.3, 1.4, 1.5, 2.0)


def infer_width(arch, layers):
    """The width multiplier whose rounding (either convention) reproduces ``layers`` exactly, or None if none does."""
    num_classes = layers[-1].cout
    candidates = COMMON_WIDTHS + tuple(round(0.05 * i, 2) for i in range(2, 61))
    for convention in CONVENTIONS:
        for width in candidates:
            if layers_for_width(arch, width, num_classes, convention) == layers:
                return width
    return None


def count(layers, resolution=224, padding="symmetric"):
    """Per-layer table and totals of parameters and multiply-accumulates at a square input size.

    Parameters are what the engine stores (BatchNorm folded into weights and one bias per channel).
    MACs count the convolutions, the classifier, the squeeze-excite FCs and the SE channel scaling
    (one multiply per element), which is how torchvision's published figures (0.217 G for V3-Large)
    count; pooling and activations are left out.
    """
    shapes = weight_shapes(layers)
    h = w = resolution
    table = []
    for layer in layers:
        params = sum(_numel(s) for n, s in shapes.items() if n.startswith(layer.name + "."))
        if layer.op in ("conv", "dw"):
            h, _ = conv_output_size(h, layer.k, layer.stride, padding)
            w, _ = conv_output_size(w, layer.k, layer.stride, padding)
            per_pixel = layer.k * layer.k * (layer.cin if layer.op == "conv" else 1) * layer.cout
            macs = h * w * per_pixel
        elif layer.op == "pw":
            macs = h * w * layer.cin * layer.cout
        elif layer.op == "se":
            macs = 2 * layer.cin * layer.squeeze + h * w * layer.cin
        elif layer.op == "fc":
            macs = layer.cin * layer.cout
        else:
            macs = 0
        shape = (layer.cout,) if layer.op in ("pool", "fc") else (h, w, layer.cout)
        if layer.op == "pool":
            h = w = 1
        table.append({"name": layer.name, "op": layer.op, "output": shape, "params": params, "macs": macs})
    return {"params": sum(r["params"] for r in table), "macs": sum(r["macs"] for r in table), "layers": table}


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n
