"""Global average pooling."""
import numpy as np
from numba import njit, prange


@njit(cache=True, fastmath={"contract"})
def mean_hw_f32(image, out):
    """out[c] = mean over (H, W) of image[:, :, c].   image: (H, W, C)   out: (C,)"""
    out[:] = 0
    for y in range(image.shape[0]):
        for x in range(image.shape[1]):
            pixel = image[y, x]
            for c in range(out.shape[0]):
                out[c] += pixel[c]
    inv = np.float32(1.0) / np.float32(image.shape[0] * image.shape[1])
    for c in range(out.shape[0]):
        out[c] *= inv


@njit(parallel=True, cache=True, fastmath={"contract"})
def global_avg_pool_nhwc_f32(x, out):
    """out = mean of x over H and W.   x: (N, H, W, C)   out: (N, C)"""
    for n in prange(x.shape[0]):
        mean_hw_f32(x[n], out[n])
