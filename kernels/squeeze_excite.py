"""Squeeze-and-excite: scale each channel by a gate computed from the channel means."""
from numba import njit, prange

from kernels.activation import HSIGMOID, RELU, activate_row
from kernels.gemm import gemm_row_f32
from kernels.pool import mean_hw_f32


@njit(parallel=True, cache=True, fastmath={"contract"})
def squeeze_excite_nhwc_f32(x, w_reduce, b_reduce, w_expand, b_expand, pooled, hidden, gate):
    """x *= hsigmoid(relu(mean_hw(x) @ w_reduce + b_reduce) @ w_expand + b_expand), per image, in place.

    x:        (N, H, W, C)   scaled in place
    w_reduce: (C, S)         squeeze FC (a 1x1 conv on the pooled vector)
    b_reduce: (S,)
    w_expand: (S, C)         excite FC
    b_expand: (C,)
    pooled:   (N, C)  hidden: (N, S)  gate: (N, C)   scratch owned by the caller's plan

    The pool and the two tiny FCs run serially (a few thousand MACs); the scale pass, which
    touches the whole tensor, runs one task per row.
    """
    n_img, height = x.shape[0], x.shape[1]
    squeeze = w_reduce.shape[1]
    channels = w_expand.shape[1]
    for n in range(n_img):
        mean_hw_f32(x[n], pooled[n])
        gemm_row_f32(pooled, w_reduce, b_reduce, hidden, n, 0, squeeze)
        activate_row(hidden[n], RELU)
        gemm_row_f32(hidden, w_expand, b_expand, gate, n, 0, channels)
        activate_row(gate[n], HSIGMOID)
    for task in prange(n_img * height):
        n = task // height
        y = task - n * height
        g = gate[n]
        row = x[n, y]  # (W, C)
        for xx in range(row.shape[0]):
            pixel = row[xx]
            for c in range(channels):
                pixel[c] *= g[c]
