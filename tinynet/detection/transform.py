"""torchvision's detection transform (GeneralizedRCNNTransform at a fixed size), with the geometry it applied.

ToTensor (uint8 / 255), Normalize (mean, std), then each axis resized on its own to the fixed size with bilinear
interpolation, half-pixel centres and no antialiasing (F.interpolate(align_corners=False)). size_divisible=1 at a
fixed size means no padding. Same float32 operations in the same order as torchvision.
"""
import numpy as np

from tinynet.geometry import Geometry
from tinynet.kernels import resize_bilinear_nhwc_f32
from tinynet.preprocess import normalise_rows_f32, open_image


def torchvision_detection_input(image, size, mean, std):
    """One image (anything tinynet.preprocess.open_image takes) -> ((1, H, W, 3) float32 NHWC, Geometry)."""
    rgb = np.asarray(open_image(image), dtype=np.float32)  # (h, w, 3), 0..255
    x = normalise_rows_f32(rgb / np.float32(255), mean, std)
    out = np.empty((1, *size, 3), np.float32)
    resize_bilinear_nhwc_f32(np.ascontiguousarray(x[None]), out, align_corners=False, half_pixel_centers=True)
    return out, Geometry.resized(rgb.shape[:2], size)
