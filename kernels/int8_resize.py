"""Bilinear resize of uint8 NHWC maps with XNNPACK's fixed-point arithmetic (u8-ibilinear, 11-bit weights).

    resize_bilinear_q11_u8(x, top, bottom, alpha_y, left, right, alpha_x, out)

Per output row r and column c: the rows top[r], bottom[r] and columns left[c], right[c] of x, weights alpha_y[r]
and alpha_x[c] in [0, 2048]; per channel, in int32:
    t = (tl << 11) + (tr - tl) * ax;  b = (bl << 11) + (br - bl) * ax;  out = ((t << 11) + (b - t) * ay + 2**21) >> 22
The caller computes the sampling positions and weights (align_corners / half-pixel conventions).
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def resize_bilinear_q11_u8(x, top, bottom, alpha_y, left, right, alpha_x, out):
    n_img, out_h, out_w, channels = out.shape
    for task in prange(n_img * out_h):
        n, r = task // out_h, task % out_h
        ay = np.int32(alpha_y[r])
        row_t, row_b = x[n, top[r]], x[n, bottom[r]]
        for c in range(out_w):
            ax = np.int32(alpha_x[c])
            tl, tr, bl, br = row_t[left[c]], row_t[right[c]], row_b[left[c]], row_b[right[c]]
            dst = out[n, r, c]
            for k in range(channels):
                t = (np.int32(tl[k]) << 11) + (np.int32(tr[k]) - np.int32(tl[k])) * ax
                b = (np.int32(bl[k]) << 11) + (np.int32(br[k]) - np.int32(bl[k])) * ax
                dst[k] = np.uint8(((t << 11) + (b - t) * ay + (1 << 21)) >> 22)
