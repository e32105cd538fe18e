"""Global average pooling, split across threads by image rows.

At batch 1 one task per image would leave every thread but one idle, and would pull the rows that the
other threads just wrote (the previous layer splits by rows too) onto one core. So each task sums one
row into its own slot of ``row_sums``, and the rows' sums are added up after the parallel loop.
"""
import numpy as np
from numba import njit, prange

from .channel_rows import channel_sums
from .threading import one_thread


@njit(cache=True, inline="always")
def pooled_rows_f32(x, row_sums, out):
    """out = mean of x over H and W, with one task per image row (the body of global_avg_pool_nhwc_f32).

    x: (N, H, W, C)   row_sums: (N*H, C) scratch   out: (N, C)
    On one thread the rows go in a plain loop (kernels.threading.one_thread).
    """
    n_img, height, width, channels = x.shape
    if one_thread():
        for t in range(n_img * height):
            channel_sums(x, t * width * channels, width, channels, row_sums, t * channels)
    else:
        for task in prange(n_img * height):
            t = np.int64(task)
            channel_sums(x, t * width * channels, width, channels, row_sums, t * channels)
    inv = np.float32(1.0) / np.float32(height * width)
    for n in range(n_img):
        channel_sums(row_sums, n * height * channels, height, channels, out, n * channels)
        for c in range(channels):
            out[n, c] *= inv


@njit(parallel=True, cache=True, fastmath={"contract"})
def global_avg_pool_nhwc_f32(x, row_sums, out):
    """out = mean of x over H and W.   x: (N, H, W, C)   row_sums: (N*H, C) scratch   out: (N, C)"""
    pooled_rows_f32(x, row_sums, out)
