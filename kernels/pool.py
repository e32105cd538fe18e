"""Global average pooling, split across threads by image rows.

At batch 1 one task per image would leave every thread but one idle, and would pull the rows that the
other threads just wrote (the previous layer splits by rows too) onto one core. So each task sums one
row into its own slot of ``row_sums``, and the rows' sums are added up after the parallel loop.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, fastmath={"contract"})
def sum_pixels_f32(row, out):
    """out[c] = sum over pixels of row[:, c].   row: (W, C)   out: (C,)"""
    out[:] = 0
    for x in range(row.shape[0]):
        pixel = row[x]
        for c in range(out.shape[0]):
            out[c] += pixel[c]


@njit(cache=True, inline="always")
def pooled_rows_f32(x, row_sums, out):
    """out = mean of x over H and W, with one task per image row (the body of global_avg_pool_nhwc_f32).

    x: (N, H, W, C)   row_sums: (N*H, C) scratch   out: (N, C)
    """
    n_img, height, width, channels = x.shape
    for task in prange(n_img * height):
        t = np.int64(task)
        n = t // height
        sum_pixels_f32(x[n, t - n * height], row_sums[t])
    inv = np.float32(1.0) / np.float32(height * width)
    for n in range(n_img):
        for c in range(channels):
            total = np.float32(0.0)
            for y in range(height):
                total += row_sums[n * height + y, c]
            out[n, c] = total * inv


@njit(parallel=True, cache=True, fastmath={"contract"})
def global_avg_pool_nhwc_f32(x, row_sums, out):
    """out = mean of x over H and W.   x: (N, H, W, C)   row_sums: (N*H, C) scratch   out: (N, C)"""
    pooled_rows_f32(x, row_sums, out)
