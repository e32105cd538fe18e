"""Turn a detection head's box regressions into boxes, relative to anchors (pure NumPy, any float dtype).

Two conventions ship: torchvision's BoxCoder (x/y/w/h order, weights 10, 10, 5, 5, the size
exponent clamped at log(1000/16) so one wild regression cannot overflow) and TFLite's
Detection_PostProcess (y/x/h/w order, divided by y/x/h/w scales, no clamp).
"""
import math

import numpy as np

TORCHVISION_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
TORCHVISION_SIZE_CLIP = math.log(1000.0 / 16)


def decode_torchvision(rel_codes, anchors_xyxy, weights=TORCHVISION_WEIGHTS, size_clip=TORCHVISION_SIZE_CLIP):
    """torchvision BoxCoder.decode_single: codes (..., 4) dx, dy, dw, dh and anchors (..., 4) x0, y0, x1, y1 -> x0, y0, x1, y1."""
    codes = np.asarray(rel_codes)
    anchors = np.asarray(anchors_xyxy, dtype=codes.dtype)
    wx, wy, ww, wh = (codes.dtype.type(w) for w in weights)
    widths = anchors[..., 2] - anchors[..., 0]
    heights = anchors[..., 3] - anchors[..., 1]
    ctr_x = anchors[..., 0] + 0.5 * widths
    ctr_y = anchors[..., 1] + 0.5 * heights
    dw = np.minimum(codes[..., 2] / ww, size_clip)
    dh = np.minimum(codes[..., 3] / wh, size_clip)
    pred_ctr_x = codes[..., 0] / wx * widths + ctr_x
    pred_ctr_y = codes[..., 1] / wy * heights + ctr_y
    half_w = 0.5 * np.exp(dw) * widths
    half_h = 0.5 * np.exp(dh) * heights
    return np.stack([pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h], axis=-1)


def decode_tflite(box_encodings, anchors_yxhw, y_scale, x_scale, h_scale, w_scale):
    """TFLite_Detection_PostProcess decoding: encodings and anchors (..., 4) as ycenter, xcenter, h, w -> ymin, xmin, ymax, xmax.

    As TFLite's kernel: centres and half sizes in float64, each rounded to the encodings' dtype, and the
    corners formed in that dtype (so float32 results are bit for bit LiteRT's)."""
    enc = np.asarray(box_encodings)
    dtype = enc.dtype
    e = enc.astype(np.float64)
    anchors = np.asarray(anchors_yxhw, dtype=dtype).astype(np.float64)
    y = (e[..., 0] / y_scale * anchors[..., 2] + anchors[..., 0]).astype(dtype)
    x = (e[..., 1] / x_scale * anchors[..., 3] + anchors[..., 1]).astype(dtype)
    with np.errstate(over="ignore"):  # a wild encoding gives an infinite box, as in TFLite
        half_h = (0.5 * np.exp(e[..., 2] / h_scale) * anchors[..., 2]).astype(dtype)
        half_w = (0.5 * np.exp(e[..., 3] / w_scale) * anchors[..., 3]).astype(dtype)
    return np.stack([y - half_h, x - half_w, y + half_h, x + half_w], axis=-1)
