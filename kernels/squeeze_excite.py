"""Squeeze-and-excite: scale each channel by a gate computed from the channel means."""
from numba import njit, prange

from kernels.activation import HSIGMOID, RELU, activate_row
from kernels.gemm import gemm_row_f32
from kernels.pool import mean_hw_f32


@njit(cache=True, fastmath={"contract"})
def se_gate_f32(x, w_reduce, b_reduce, w_expand, b_expand, pooled, hidden, gate):
    """gate = hsigmoid(relu(mean_hw(x) @ w_reduce + b_reduce) @ w_expand + b_expand), per image.

    x: (N, H, W, C)   w_reduce: (C, S)   b_reduce: (S,)   w_expand: (S, C)   b_expand: (C,)
    pooled: (N, C)  hidden: (N, S)  gate: (N, C)   written (scratch owned by the caller's plan)

    Serial: the pool and the two tiny FCs are a few thousand MACs.
    """
    for n in range(x.shape[0]):
        mean_hw_f32(x[n], pooled[n])
        hidden[n] = b_reduce
        gemm_row_f32(pooled[n], w_reduce, hidden[n])
        activate_row(hidden[n], RELU)
        gate[n] = b_expand
        gemm_row_f32(hidden[n], w_expand, gate[n])
        activate_row(gate[n], HSIGMOID)


@njit(parallel=True, cache=True, fastmath={"contract"})
def squeeze_excite_nhwc_f32(x, w_reduce, b_reduce, w_expand, b_expand, pooled, hidden, gate):
    """x *= hsigmoid(relu(mean_hw(x) @ w_reduce + b_reduce) @ w_expand + b_expand), per image, in place.

    x:        (N, H, W, C)   scaled in place
    w_reduce: (C, S)         squeeze FC (a 1x1 conv on the pooled vector)
    b_reduce: (S,)
    w_expand: (S, C)         excite FC
    b_expand: (C,)
    pooled:   (N, C)  hidden: (N, S)  gate: (N, C)   scratch owned by the caller's plan

    The gate is computed serially (se_gate_f32); the scale pass, which touches the whole tensor,
    runs one task per row.
    """
    n_img, height = x.shape[0], x.shape[1]
    channels = w_expand.shape[1]
    se_gate_f32(x, w_reduce, b_reduce, w_expand, b_expand, pooled, hidden, gate)
    for task in prange(n_img * height):
        n = task // height
        y = task - n * height
        for xx in range(x.shape[2]):
            for c in range(channels):
                x[n, y, xx, c] *= gate[n, c]
