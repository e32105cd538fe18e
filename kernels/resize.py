"""Bilinear resize, NHWC float32, in the three source-coordinate conventions segmentation models use.

For output index ``d`` of an ``n_in -> n_out`` axis the source coordinate is

- ``align_corners=True`` (TF1, the DeepLab TFLite files): ``d * (n_in - 1) / (n_out - 1)`` (0 if n_out == 1);
- ``align_corners=False, half_pixel_centers=False`` (TF1's legacy default): ``d * n_in / n_out``;
- ``half_pixel_centers=True`` (torch ``F.interpolate(align_corners=False)``, TF2): ``(d + 0.5) * n_in / n_out - 0.5``,
  clamped below at 0 as torch does (TFLite clamps the taps instead; both give the same value).

The two taps are ``floor(src)`` and ``min(floor(src) + 1, n_in - 1)``. The taps and weights of each axis are
computed once (tiny arrays); the Numba loop then blends two input rows per output row, one task per output row.
"""
import numpy as np
from numba import njit, prange


def bilinear_taps(n_in, n_out, align_corners, half_pixel_centers):
    """Return ``(lo, hi, frac)`` for one axis: int64 tap indices and float32 weight of ``hi``, each (n_out,)."""
    if align_corners and half_pixel_centers:
        raise ValueError("align_corners and half_pixel_centers cannot both be set")
    d = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = d * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    elif half_pixel_centers:
        src = np.maximum((d + 0.5) * (n_in / n_out) - 0.5, 0.0)
    else:
        src = d * (n_in / n_out)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (src - lo).astype(np.float32)


@njit(parallel=True, cache=True, fastmath={"contract"})
def _blend_rows_f32(x, y_lo, y_hi, y_frac, x_lo, x_hi, x_frac, out):
    n_img, out_h, out_w, channels = out.shape
    for task in prange(n_img * out_h):
        t = np.int64(task)
        n = t // out_h
        oy = t - n * out_h
        row_a, row_b = x[n, y_lo[oy]], x[n, y_hi[oy]]
        fy = y_frac[oy]
        for ox in range(out_w):
            xa, xb, fx = x_lo[ox], x_hi[ox], x_frac[ox]
            dst = out[n, oy, ox]
            for c in range(channels):
                top = row_a[xa, c] + fx * (row_a[xb, c] - row_a[xa, c])
                bottom = row_b[xa, c] + fx * (row_b[xb, c] - row_b[xa, c])
                dst[c] = top + fy * (bottom - top)


def resize_bilinear_nhwc_f32(x, out, align_corners=False, half_pixel_centers=False):
    """out = bilinear resize of x to out's spatial size.   x: (N, H, W, C) float32   out: (N, Ho, Wo, C) float32"""
    if x.shape[0] != out.shape[0] or x.shape[3] != out.shape[3]:
        raise ValueError(f"resize: input {x.shape} and output {out.shape} differ in batch or channels")
    y_taps = bilinear_taps(x.shape[1], out.shape[1], align_corners, half_pixel_centers)
    x_taps = bilinear_taps(x.shape[2], out.shape[2], align_corners, half_pixel_centers)
    _blend_rows_f32(np.ascontiguousarray(x, dtype=np.float32), *y_taps, *x_taps, out)
    return out


def resize_bilinear_rows_nhwc_f32(x, out, out_height, row0, align_corners=False, half_pixel_centers=False):
    """Rows ``row0 .. row0 + out.shape[1]`` of the resize of x to (out_height, out.shape[2]): a band of a large
    output, so that a full-size map of many channels never exists at once (segmentation masks of big photos)."""
    if x.shape[0] != out.shape[0] or x.shape[3] != out.shape[3] or row0 < 0 or row0 + out.shape[1] > out_height:
        raise ValueError(f"resize band: input {x.shape}, band {out.shape} at row {row0} of {out_height}")
    y_lo, y_hi, y_frac = bilinear_taps(x.shape[1], out_height, align_corners, half_pixel_centers)
    band = slice(row0, row0 + out.shape[1])
    x_taps = bilinear_taps(x.shape[2], out.shape[2], align_corners, half_pixel_centers)
    _blend_rows_f32(np.ascontiguousarray(x, dtype=np.float32), y_lo[band], y_hi[band], y_frac[band], *x_taps, out)
    return out
