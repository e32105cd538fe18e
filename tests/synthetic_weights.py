"""Deterministic, torch-free weights for framework parity fixtures.

``tests/fixtures/make_width_fixtures.py`` (run once, with torch, torchvision and timm installed) builds
each model with its own library, fills its state dict with ``state_dict(...)`` below, runs the library's
float64 forward pass, and stores only the tensor names and shapes, the seed and the library's logits.
The tests rebuild the identical weights here with NumPy alone, so CI checks tinynet against
torchvision and timm at other widths and input sizes without installing torch.
"""
import numpy as np


def state_dict(entries, seed):
    """``entries``: [(name, shape)] in state-dict order -> {name: float32 array} (int64 for counters).

    Conv and linear weights are He-uniform; BatchNorm statistics and affine parameters are random so
    that folding them matters; every value is float32-representable so both sides see the same numbers.
    """
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in entries:
        shape = tuple(shape)
        if name.endswith("num_batches_tracked"):
            tensors[name] = np.zeros(shape, np.int64)
            continue
        u = rng.random(shape)
        if name.endswith("running_var"):
            v = 0.5 + 1.5 * u
        elif name.endswith("running_mean") or name.endswith(".bias"):
            v = 0.4 * u - 0.2
        elif len(shape) == 1:  # BatchNorm gamma
            v = 0.5 + u
        else:
            fan_in = int(np.prod(shape[1:]))
            v = (2 * u - 1) * np.sqrt(6.0 / fan_in)
        tensors[name] = v.astype(np.float32)
    return tensors


def input_batch(shape, seed):
    """A float32 NCHW batch of standard-normal values (a stand-in for a normalised image)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def keras_variables(entries, seed):
    """``entries``: [(h5 path, shape, role)] of a Keras 3 weights file, role one of kernel, bias, gamma, beta,
    moving_mean, moving_variance -> {path: float32 array}, drawn like ``state_dict`` (kernels He-uniform over
    the input taps: all axes but the last, or the depthwise kernel's spatial ones)."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for path, shape, role in entries:
        shape = tuple(shape)
        u = rng.random(shape)
        if role == "moving_variance":
            v = 0.5 + 1.5 * u
        elif role in ("moving_mean", "bias", "beta"):
            v = 0.4 * u - 0.2
        elif role == "gamma":
            v = 0.5 + u
        else:
            fan_in = int(np.prod(shape[:2] if role == "depthwise_kernel" else shape[:-1]))
            v = (2 * u - 1) * np.sqrt(6.0 / fan_in)
        tensors[path] = v.astype(np.float32)
    return tensors


def onnx_initializers(entries, seed):
    """``entries``: [(name, shape, role)] of an ONNX graph's float initializers, role "var" (a BatchNormalization
    variance), "gamma" (its scale) or "weight" -> {name: float32 array}: He-uniform for 2-D and 4-D weights
    (fan-in over all axes but the first), small values around 0 for the other 1-D tensors."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape, role in entries:
        shape = tuple(shape)
        u = rng.random(shape)
        if role == "var":
            v = 0.5 + 1.5 * u
        elif role == "gamma":
            v = 0.5 + u
        elif len(shape) >= 2:
            v = (2 * u - 1) * np.sqrt(6.0 / int(np.prod(shape[1:])))
        else:
            v = 0.4 * u - 0.2
        out[name] = v.astype(np.float32)
    return out


def synthetic_photo(height, width, seed):
    """A deterministic uint8 RGB "photo" (height, width, 3): smooth colour gradients plus a few solid rectangles,
    so that a detector sees edges and flat regions, as in a real picture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    phase = rng.random((3, 3)) * 6
    photo = np.stack([127 + 100 * np.sin(phase[c, 0] + 5 * x * phase[c, 1] + 4 * y * phase[c, 2]) for c in range(3)], -1)
    for _ in range(4):
        y0, x0 = rng.integers(0, height // 2), rng.integers(0, width // 2)
        photo[y0:y0 + rng.integers(8, height // 2), x0:x0 + rng.integers(8, width // 2)] = rng.integers(0, 256, 3)
    return np.clip(np.rint(photo), 0, 255).astype(np.uint8)
