"""Activation codes applied in every kernel's output step (the epilogue).

Kernels take the activation as an int and branch once, outside the channel loop, so each
branch is a plain loop that LLVM vectorises. Constants are float32 module globals: a Python
float literal would promote the arithmetic to float64.
"""
import numpy as np
from numba import njit, prange

NONE, RELU, RELU6, HSWISH, HSIGMOID = 0, 1, 2, 3, 4
ACTIVATIONS = {None: NONE, "none": NONE, "relu": RELU, "relu6": RELU6, "hswish": HSWISH, "hsigmoid": HSIGMOID}

ZERO = np.float32(0.0)
THREE = np.float32(3.0)
SIX = np.float32(6.0)
SIXTH = np.float32(1.0 / 6.0)


def activation_code(name):
    """Map an activation name (None, 'relu', 'relu6', 'hswish', 'hsigmoid') to its kernel code."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(k for k in ACTIVATIONS if k)}") from None


@njit(cache=True, fastmath={"contract"})
def activate_row(row, act):
    """Apply activation ``act`` in place to a 1-D float32 array (one output pixel's channels)."""
    n = row.shape[0]
    if act == RELU:
        for i in range(n):
            row[i] = max(row[i], ZERO)
    elif act == RELU6:
        for i in range(n):
            row[i] = min(max(row[i], ZERO), SIX)
    elif act == HSWISH:
        for i in range(n):
            v = row[i]
            row[i] = v * min(max(v + THREE, ZERO), SIX) * SIXTH
    elif act == HSIGMOID:
        for i in range(n):
            row[i] = min(max(row[i] + THREE, ZERO), SIX) * SIXTH
