"""TFLite's optimized 8-bit SOFTMAX (x86), what LiteRT runs by default: exps from a 256-entry float32 table.

For each row: e[i] = table[255 - max + x[i]] (table[255 - d] = exp(-input_scale * beta * d), built by the caller),
their float32 sum in order (not pairwise), p[i] = e[i] * (1 / (sum * output_scale)) in float32, and the output
trunc(p + 0.5) + offset clamped to 0..255 (p >= 0: std::round for int8 outputs, whose offset is the stored zero
point; + 0.5 truncated for uint8, offset 0).
"""
import numpy as np
from numba import njit


@njit(cache=True)
def softmax_table_u8(x, table, output_scale, offset, out):
    """x, out: (rows, classes) uint8   table: (256,) float32   output_scale: float32   offset: int"""
    for r in range(x.shape[0]):
        top = 0
        for i in range(x.shape[1]):
            top = max(top, np.int64(x[r, i]))
        total = np.float32(0)
        for i in range(x.shape[1]):
            total += table[255 - top + x[r, i]]
        inverse = np.float32(1) / (total * output_scale)
        for i in range(x.shape[1]):
            p = table[255 - top + x[r, i]] * inverse
            out[r, i] = np.uint8(min(max(np.int64(p + np.float32(0.5)) + offset, 0), 255))
