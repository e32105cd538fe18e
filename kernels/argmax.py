"""Argmax over channels, NHWC -> (N, H, W) class ids: the segmentation mask.

Ties go to the lowest channel index, as numpy.argmax and TFLite's ARG_MAX do (strict ``>`` below).
A NaN logit never wins (``>`` is false), unlike numpy where the first NaN wins; logits are finite in practice.
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _argmax_rows(x, out):
    n_img, height, width, channels = x.shape
    for task in prange(n_img * height):
        t = np.int64(task)
        n = t // height
        y = t - n * height
        row = x[n, y]
        for px in range(width):
            pixel = row[px]
            best, best_value = 0, pixel[0]
            for c in range(1, channels):
                if pixel[c] > best_value:
                    best, best_value = c, pixel[c]
            out[n, y, px] = best


def argmax_channels_nhwc(x, out):
    """out[n, y, x] = index of the largest x[n, y, x, :] (lowest on ties).   x: (N, H, W, C) float32   out: (N, H, W)
    uint8 (C <= 256) or int32."""
    if out.dtype == np.uint8 and x.shape[3] > 256:
        raise ValueError(f"argmax: {x.shape[3]} channels do not fit a uint8 mask")
    if out.shape != x.shape[:3]:
        raise ValueError(f"argmax: output {out.shape} does not match input {x.shape}")
    _argmax_rows(x, out)
    return out
