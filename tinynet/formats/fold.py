"""Turn a framework's conv + BatchNorm tensors into tinynet's runtime tensors, once, at load time.

A ``Source`` names, for one tinynet layer, the framework tensors that make it. ``fold`` transposes
each weight from PyTorch's (O, I, KH, KW) / (O, I) layout into tinynet's runtime layout and
folds the BatchNorm that follows it:

    s = gamma / sqrt(running_var + eps)      per output channel
    W' = W * s                               b' = (b - running_mean) * s + beta

computed in float64 and stored as float32, so the engine never runs a BatchNorm.
"""
from dataclasses import dataclass

import numpy as np

from tinynet.errors import WeightsError


@dataclass(frozen=True)
class Source:
    name: str  # tinynet layer name, e.g. "04.dw" or "04.se.reduce"
    op: str  # "conv" | "dw" | "pw" | "fc"  (how to transpose the weight)
    weight: str  # framework tensor name of the weight
    bias: str = None  # framework tensor name of the conv/linear bias, if any
    bn: str = None  # prefix of the BatchNorm that follows ("<bn>.weight", ".bias", ".running_mean", ".running_var")


def to_runtime_layout(op, w):
    """PyTorch layout -> tinynet layout: conv (O,I,KH,KW)->(KH,KW,I,O); dw (C,1,KH,KW)->(KH,KW,C);
    pw (O,I,1,1)->(I,O); fc (O,I)->(I,O)."""
    if op == "conv":
        return w.transpose(2, 3, 1, 0)
    if op == "dw":
        return w[:, 0].transpose(1, 2, 0)
    if op == "pw":
        return w[:, :, 0, 0].T
    return w.T


EXPECTED_NDIM = {"conv": 4, "dw": 4, "pw": 4, "fc": 2}


def fold_batchnorm(w, b, gamma, beta, mean, var, eps, var_name="running_var"):
    """Fold a BatchNorm into the conv before it: ``w`` in runtime layout (output channels last),
    all arrays float64. Returns ``(w', b')``. ``var_name`` names the variance tensor in errors."""
    bad = ~(var + eps > 0)  # also catches NaN
    if bad.any():
        raise WeightsError(f"tensor {var_name} holds {float(var[bad][0])} with epsilon {eps}: a BatchNorm variance "
                           "plus epsilon must be positive")
    scale = gamma / np.sqrt(var + eps)
    return w * scale, (b - mean) * scale + beta


def fold(tensors, sources, eps):
    """Runtime tensors ``{"<name>.w", "<name>.b"}`` for every source, and a map runtime name -> framework
    name for error messages. Raises WeightsError naming the framework tensor that is missing or malformed."""
    def shape_of(name):
        if name not in tensors:
            raise WeightsError(f"missing tensor {name}")
        return np.shape(tensors[name])

    def get(name, expected=None, what=None):
        """The tensor as float64, after checking its shape: a wrong tensor is refused before it is converted
        (a uint8 tensor grows eightfold on the way)."""
        if expected is not None and shape_of(name) != expected:
            raise WeightsError(f"tensor {name} has shape {shape_of(name)}, expected {expected}{what or ''}")
        return np.asarray(tensors[name], dtype=np.float64)

    out, origin = {}, {}
    for src in sources:
        shape = shape_of(src.weight)
        if (len(shape) != EXPECTED_NDIM[src.op] or (src.op == "dw" and shape[1] != 1)
                or (src.op == "pw" and shape[2:] != (1, 1))):
            raise WeightsError(f"tensor {src.weight} has shape {shape}, which is not a {src.op} weight")
        cout = shape[0]
        w = to_runtime_layout(src.op, get(src.weight))
        b = get(src.bias, (cout,)) if src.bias else np.zeros(cout)
        if src.bn:
            gamma, beta, mean, var = (get(f"{src.bn}.{p}", (cout,), f" to match {src.weight}")
                                      for p in ("weight", "bias", "running_mean", "running_var"))
            w, b = fold_batchnorm(w, b, gamma, beta, mean, var, eps, f"{src.bn}.running_var")
        with np.errstate(over="ignore"):  # values beyond float32 become inf, which check_weights then refuses
            out[f"{src.name}.w"], out[f"{src.name}.b"] = np.ascontiguousarray(w, np.float32), b.astype(np.float32)
        origin[f"{src.name}.w"], origin[f"{src.name}.b"] = src.weight, src.bias or src.bn or src.weight
    return out, origin


def unused(tensors, sources, ignore_suffixes=("num_batches_tracked",)):
    """Framework tensors that no source consumed (a sign the architecture guess is wrong)."""
    used = set()
    for s in sources:
        used.update(filter(None, (s.weight, s.bias)))
        if s.bn:
            used.update(f"{s.bn}.{p}" for p in ("weight", "bias", "running_mean", "running_var"))
    return [n for n in tensors if n not in used and not n.endswith(ignore_suffixes)]
