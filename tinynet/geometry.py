"""The geometry preprocessing applied to an image, so that results in input pixels map back onto the original.

Preprocessing scales each axis, then crops (a negative offset) or pads (a positive one):
    input_x = original_x * scale_x + offset_x        input_y = original_y * scale_y + offset_y
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    original_size: tuple  # (height, width) of the image as opened
    input_size: tuple  # (height, width) of the network input
    scale: tuple  # (y, x) input pixels per original pixel
    offset: tuple = (0.0, 0.0)  # (y, x) input pixel where the original's (0, 0) lands: padding minus crop

    @classmethod
    def resized(cls, original_size, input_size):
        """A plain resize of each axis to ``input_size`` (torchvision's detection transform at a fixed size)."""
        return cls(tuple(original_size), tuple(input_size),
                   (input_size[0] / original_size[0], input_size[1] / original_size[1]))

    def boxes_to_original(self, boxes):
        """Boxes (n, 4) x0, y0, x1, y1 in input pixels -> the original image's pixels, clipped to it (float64)."""
        sy, sx = self.scale
        oy, ox = self.offset
        boxes = (np.asarray(boxes, np.float64) - [ox, oy, ox, oy]) / [sx, sy, sx, sy]
        height, width = self.original_size
        return np.clip(boxes, 0, [width, height, width, height])
