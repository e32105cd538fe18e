"""Segmentation results: low-resolution class logits -> a class-id mask at the original image's size.

The logits are resized (bilinear, in the model's convention: half-pixel centres as torchvision's final
F.interpolate, or TF1's align_corners as the DeepLab TFLite files) straight to the original size and reduced to
class ids one band of rows at a time: a 12-megapixel photo never has its full-size logits for every class in
memory, only a band of rows of them, BAND_BYTES at most (from MIN_BAND_ROWS on): the resize, the rounding and
the arg-max then pass over a band while it is in cache. A quantized file's resized logits are rounded to its grid first (``grid``),
so that classes tie where the file's ARG_MAX sees ties (the lowest class id wins).
"""
from dataclasses import dataclass

import numpy as np

from tinynet.kernels import argmax_channels_nhwc, resize_bilinear_rows_nhwc_f32
from tinynet.kernels.fake_quant import fake_quantize_f32

BAND_BYTES = 1 << 20  # a band's float32 logits: within a core's L2
MIN_BAND_ROWS = 4


@dataclass(frozen=True)
class Segmentation:
    mask: np.ndarray  # (H, W) uint8 class ids at the original image's size
    labels: list  # class names, index = class id
    counts: np.ndarray  # (classes,) int64 pixels per class

    def fractions(self):
        """{label: share of the image's pixels} for the classes present."""
        total = self.mask.size
        return {self.labels[i]: float(c) / total for i, c in enumerate(self.counts) if c}


def mask_from_logits(logits, height, width, band_rows=None, align_corners=False, half_pixel_centers=None,
                     grid=None):
    """Class ids (height, width) uint8 of ``logits`` (h, w, classes) float32 resized to height x width (in the
    convention ``align_corners`` / ``half_pixel_centers`` name, kernels.resize; half-pixel centres unless
    ``align_corners`` by default), rounded to ``grid`` (lo, step, levels) if given."""
    classes = logits.shape[-1]
    if classes > 256:
        raise ValueError(f"{classes} classes do not fit a uint8 mask")
    band_rows = band_rows or max(MIN_BAND_ROWS, BAND_BYTES // (4 * width * classes))
    half_pixel_centers = not align_corners if half_pixel_centers is None else half_pixel_centers
    src = np.ascontiguousarray(logits[None], dtype=np.float32)
    mask = np.empty((height, width), np.uint8)
    band = np.empty((1, min(band_rows, height), width, classes), np.float32)
    for row0 in range(0, height, band_rows):
        rows = min(band_rows, height - row0)
        part = band[:, :rows]
        resize_bilinear_rows_nhwc_f32(src, part, height, row0, align_corners, half_pixel_centers)
        if grid is not None:
            lo, step, levels = grid
            fake_quantize_f32(part.reshape(-1, classes), np.float32(lo), np.float32(step), int(levels))
        argmax_channels_nhwc(part, mask[None, row0:row0 + rows])
    return mask


def segmentation(logits, original_size, labels, grid=None, **resize):
    """One image's Segmentation from its low-resolution ``logits`` (h, w, classes) and ``original_size`` (H, W)
    (``grid`` and the ``resize`` convention: as for mask_from_logits)."""
    mask = mask_from_logits(logits, *original_size, grid=grid, **resize)
    counts = np.bincount(mask.ravel(), minlength=logits.shape[-1]).astype(np.int64)
    return Segmentation(mask, list(labels), counts)
