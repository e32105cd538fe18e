"""Anchor (default box) generators, as pure NumPy functions.

torchvision SSD/SSDLite's DefaultBoxGenerator: per feature map k, scale s_k spaced linearly from
min_ratio to max_ratio (plus 1.0 after the last), boxes (s_k, s_k), (s'_k, s'_k) with
s'_k = sqrt(s_k s_{k+1}), then (s_k sqrt(a), s_k / sqrt(a)) and its transpose for each aspect
ratio a; width and height clipped to [0, 1]; centres at (j + 0.5) / f on a row-major grid, every
box of a location before the next location.
"""
import math

import numpy as np


def _default_box_sizes(aspect_ratios, min_ratio, max_ratio):
    """Per feature map, the (w, h) pairs relative to the image, before clipping."""
    levels = len(aspect_ratios)
    if levels > 1:
        scales = [min_ratio + (max_ratio - min_ratio) * k / (levels - 1.0) for k in range(levels)] + [1.0]
    else:
        scales = [min_ratio, max_ratio]
    sizes = []
    for k, ratios in enumerate(aspect_ratios):
        s, s_next = scales[k], math.sqrt(scales[k] * scales[k + 1])
        pairs = [(s, s), (s_next, s_next)]
        for a in ratios:
            pairs += [(s * math.sqrt(a), s / math.sqrt(a)), (s / math.sqrt(a), s * math.sqrt(a))]
        sizes.append(pairs)
    return sizes


def default_boxes_cxcywh(grid_sizes, aspect_ratios=None, min_ratio=0.2, max_ratio=0.95, clip=True,
                         dtype=np.float32):
    """torchvision DefaultBoxGenerator's boxes (anchors, 4) as cx, cy, w, h relative to the image.

    ``grid_sizes`` holds each feature map's (height, width); computed in ``dtype`` like torchvision (float32).
    ``aspect_ratios`` defaults to SSDLite's [2, 3] on every map.
    """
    if aspect_ratios is None:
        aspect_ratios = [(2, 3)] * len(grid_sizes)
    if len(grid_sizes) != len(aspect_ratios):
        raise ValueError(f"{len(grid_sizes)} feature maps but {len(aspect_ratios)} aspect-ratio lists")
    levels = []
    for (fh, fw), pairs in zip(grid_sizes, _default_box_sizes(aspect_ratios, min_ratio, max_ratio)):
        wh = np.array(pairs, dtype=dtype)
        if clip:
            wh = np.clip(wh, 0, 1)
        cy, cx = np.meshgrid((np.arange(fh) + 0.5) / fh, (np.arange(fw) + 0.5) / fw, indexing="ij")
        centres = np.stack([cx.ravel(), cy.ravel()], axis=-1).astype(dtype)
        levels.append(np.concatenate([np.repeat(centres, len(wh), axis=0), np.tile(wh, (fh * fw, 1))], axis=1))
    return np.concatenate(levels, axis=0)


def default_boxes_xyxy(grid_sizes, image_height, image_width, **options):
    """The same boxes as x0, y0, x1, y1 in input pixels (what torchvision's generator returns)."""
    boxes = default_boxes_cxcywh(grid_sizes, **options)
    size = np.array([image_width, image_height], dtype=boxes.dtype)
    return np.concatenate([(boxes[:, :2] - 0.5 * boxes[:, 2:]) * size, (boxes[:, :2] + 0.5 * boxes[:, 2:]) * size], axis=1)
