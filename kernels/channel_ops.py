"""The small channel-wise ops of segmentation heads: concatenation, image pooling, sigmoid gating (NHWC float32).

- concatenation along channels (DeepLab's ASPP branches, TFLite CONCATENATION on axis 3);
- image pooling: the global average of each channel, broadcast back over the map (DeepLab's image-pool branch
  after its 1x1 conv, or the pooled map itself);
- sigmoid gating: ``x * sigmoid(g)`` per image and channel (LR-ASPP's ``x * s``, s from a pooled branch).
"""
import numpy as np
from numba import njit, prange

from .pool import global_avg_pool_nhwc_f32


def concat_channels_nhwc(parts, out):
    """out = the parts side by side along channels.   parts: (N, H, W, Ci) each   out: (N, H, W, sum Ci)"""
    if sum(p.shape[3] for p in parts) != out.shape[3] or any(p.shape[:3] != out.shape[:3] for p in parts):
        raise ValueError(f"concat: parts {[p.shape for p in parts]} do not fill output {out.shape}")
    return np.concatenate(parts, axis=3, out=out)


def image_pool_nhwc_f32(x, out):
    """out[n, y, x, c] = mean of x[n, :, :, c] for every (y, x).   x: (N, H, W, C)   out: (N, Ho, Wo, C)

    The output size may differ from the input's (the pooled value is constant, so resizing it is a broadcast)."""
    n_img, height, _, channels = x.shape
    pooled = np.empty((n_img, channels), np.float32)
    global_avg_pool_nhwc_f32(x, np.empty((n_img * height, channels), np.float32), pooled)
    out[:] = pooled[:, None, None, :]
    return out


@njit(parallel=True, cache=True)
def scale_channels_nhwc_f32(x, gate, out):
    """out = x * gate per image and channel, one task per image row.   x, out: (N, H, W, C)   gate: (N, C)

    out may be x (in place): a squeeze-and-excite gate applied as its own step (tinynet.plan, fuse_squeeze_excite)."""
    n_img, height, width, channels = x.shape
    for task in prange(n_img * height):
        t = np.int64(task)
        n = t // height
        y = t - n * height
        g = gate[n]
        for px in range(width):
            for c in range(channels):
                out[n, y, px, c] = x[n, y, px, c] * g[c]


def sigmoid_gate_nhwc_f32(x, gate_logits, out):
    """out = x * sigmoid(gate_logits) per image and channel.   x, out: (N, H, W, C)   gate_logits: (N, C)

    out may be x (in place)."""
    g = np.asarray(gate_logits, np.float32).reshape(x.shape[0], x.shape[3])
    # exp(-g) overflows to inf for g < -88, giving gate 0: the right limit, so the warning is noise.
    with np.errstate(over="ignore"):
        gate = (np.float32(1) / (np.float32(1) + np.exp(-g))).astype(np.float32)
    scale_channels_nhwc_f32(x, gate, out)
    return out
