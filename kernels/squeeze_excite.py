"""Squeeze-and-excite's last step: scale each channel by its gate.

The rest of the block is other kernels' work (tinynet.plan lays it out): the channel means are a global
average pool, and the two small fully connected layers that turn them into the gate are GEMMs with one
row per image. As GEMMs they split across threads by output channels; their weights (up to 1.8 MB per
block in V3-Large) stream from memory at batch 1, so a single thread computing the gate left the other idle.
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def scale_channels_f32(x, gate):
    """x[n, y, :, c] *= gate[n, c], in place; one task per row.   x: (N, H, W, C)   gate: (N, C)"""
    n_img, height, width, channels = x.shape
    for task in prange(n_img * height):
        t = np.int64(task)
        n = t // height
        row = x[n, t - n * height]
        g = gate[n]
        for px in range(width):
            pixel = row[px]
            for c in range(channels):
                pixel[c] *= g[c]
