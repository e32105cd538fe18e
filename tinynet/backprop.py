"""Hand-written backward passes for the layers `--fine-tune` trains, in float64 NumPy.

Each layer is a ``*_forward`` returning (output, cache) and a ``*_backward`` taking that cache and the
gradient of the loss with respect to the output, returning the gradients of the input and the parameters.
Layouts are tinynet's runtime layouts (tinynet.spec): NHWC activations, pointwise weights (Cin, Cout),
depthwise weights (KH, KW, C); BatchNorm is folded, so a trainable BatchNorm is an affine per channel.
tests/test_backprop.py checks every backward against finite differences of kernels.reference.
"""
import numpy as np


def act_forward(v, act):
    """activation(v) for act in None/"relu"/"relu6"/"hswish"/"hsigmoid"; the cache is ``v``."""
    if act is None:
        return v, v
    if act == "relu":
        return np.maximum(v, 0.0), v
    if act == "relu6":
        return np.clip(v, 0.0, 6.0), v
    if act == "hswish":
        return v * np.clip(v + 3.0, 0.0, 6.0) / 6.0, v
    if act == "hsigmoid":
        return np.clip(v + 3.0, 0.0, 6.0) / 6.0, v
    raise ValueError(f"no backward pass for activation {act!r}")


def act_backward(v, act, grad):
    """d loss / d v from d loss / d activation(v); the derivative at a kink is taken from the right."""
    if act is None:
        return grad
    if act == "relu":
        return grad * (v > 0)
    if act == "relu6":
        return grad * ((v > 0) & (v < 6))
    if act == "hswish":  # x (x + 3) / 6 on (-3, 3): slope (2x + 3) / 6; 0 below, 1 above
        return grad * np.where(v <= -3, 0.0, np.where(v >= 3, 1.0, (2 * v + 3) / 6))
    if act == "hsigmoid":
        return grad * (((v > -3) & (v < 3)) / 6.0)
    raise ValueError(f"no backward pass for activation {act!r}")


def affine_forward(x, scale, shift):
    """Folded BatchNorm: x * scale + shift per channel (last axis)."""
    return x * scale + shift, x


def affine_backward(x, scale, grad):
    """(dx, dscale, dshift)."""
    axes = tuple(range(grad.ndim - 1))
    return grad * scale, (grad * x).sum(axis=axes), grad.sum(axis=axes)


def pointwise_forward(x, w, b):
    """1x1 conv (or a dense layer on (N, C)): x (..., Cin) @ w (Cin, Cout) + b."""
    return x @ w + b, x


def pointwise_backward(x, w, grad):
    """(dx, dw, db)."""
    cin, cout = w.shape
    return grad @ w.T, x.reshape(-1, cin).T @ grad.reshape(-1, cout), grad.reshape(-1, cout).sum(axis=0)


def depthwise_forward(x, w, b, stride, pad_top, pad_left, out_hw):
    """Depthwise conv: x (N, H, W, C), w (KH, KW, C); zero padding ``pad_top``/``pad_left`` before the image
    and whatever ``out_hw`` needs after it."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    oh, ow = out_hw
    ph, pw_ = (oh - 1) * stride + kh, (ow - 1) * stride + kw
    xp = np.zeros((n, max(ph, pad_top + h), max(pw_, pad_left + wd), c))
    xp[:, pad_top:pad_top + h, pad_left:pad_left + wd] = x
    y = np.zeros((n, oh, ow, c)) + b
    for ky in range(kh):
        for kx in range(kw):
            y += xp[:, ky:ky + (oh - 1) * stride + 1:stride, kx:kx + (ow - 1) * stride + 1:stride] * w[ky, kx]
    return y, (xp, x.shape, pad_top, pad_left, stride)


def depthwise_backward(cache, w, grad):
    """(dx, dw, db) of depthwise_forward."""
    xp, shape, pad_top, pad_left, stride = cache
    n, h, wd, c = shape
    kh, kw = w.shape[:2]
    oh, ow = grad.shape[1:3]
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for ky in range(kh):
        for kx in range(kw):
            window = (slice(None), slice(ky, ky + (oh - 1) * stride + 1, stride), slice(kx, kx + (ow - 1) * stride + 1, stride))
            dw[ky, kx] = (xp[window] * grad).sum(axis=(0, 1, 2))
            dxp[window] += grad * w[ky, kx]
    return dxp[:, pad_top:pad_top + h, pad_left:pad_left + wd], dw, grad.sum(axis=(0, 1, 2))


def pool_forward(x):
    """Global average pool (N, H, W, C) -> (N, C)."""
    return x.mean(axis=(1, 2)), x.shape


def pool_backward(shape, grad):
    n, h, w, c = shape
    return np.broadcast_to(grad[:, None, None, :] / (h * w), shape).copy()


def se_forward(x, w_reduce, b_reduce, w_expand, b_expand):
    """Squeeze-and-excite as MobileNet V3 has it: x * hsigmoid(relu(mean_hw(x) @ w_reduce + b_reduce) @ w_expand + b_expand)."""
    pooled, _ = pool_forward(x)
    z1 = pooled @ w_reduce + b_reduce
    hidden = np.maximum(z1, 0.0)
    z2 = hidden @ w_expand + b_expand
    gate = np.clip(z2 + 3.0, 0.0, 6.0) / 6.0
    return x * gate[:, None, None, :], (x, pooled, z1, hidden, z2, gate)


def se_backward(cache, w_reduce, w_expand, grad):
    """(dx, dw_reduce, db_reduce, dw_expand, db_expand)."""
    x, pooled, z1, hidden, z2, gate = cache
    d_gate = (grad * x).sum(axis=(1, 2))
    d_z2 = act_backward(z2, "hsigmoid", d_gate)
    d_hidden, dw_expand, db_expand = pointwise_backward(hidden, w_expand, d_z2)
    d_z1 = act_backward(z1, "relu", d_hidden)
    d_pooled, dw_reduce, db_reduce = pointwise_backward(pooled, w_reduce, d_z1)
    dx = grad * gate[:, None, None, :] + pool_backward(x.shape, d_pooled)
    return dx, dw_reduce, db_reduce, dw_expand, db_expand
