"""Preprocessing returns the geometry it applied: a marked rectangle of a photo lands where the Geometry says,
and boxes map back onto the photo."""
import numpy as np
import pytest

import tinynet
from tinynet.geometry import Geometry

BOX = (100.0, 50.0, 160.0, 110.0)  # x0, y0, x1, y1 in the original 300 x 200 photo


def photo():
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[50:110, 100:160] = 255
    return rgb


@pytest.mark.parametrize("preset", ["torchvision", "tf"])
def test_marked_rectangle_lands_where_the_geometry_says(preset):
    model = tinynet.create("mobilenet_v3_small", 0.35, 4)
    model.meta["preprocess"] = {"preset": preset}
    x, geometry = model.preprocess_with_geometry(photo())
    (sy, sx), (oy, ox) = geometry.scale, geometry.offset
    x0, y0, x1, y1 = BOX[0] * sx + ox, BOX[1] * sy + oy, BOX[2] * sx + ox, BOX[3] * sy + oy
    brightness = x[0].mean(axis=-1)
    inside = brightness[int(y0) + 3:int(y1) - 3, int(x0) + 3:int(x1) - 3]
    bright, dark = brightness.max(), brightness.min()
    assert inside.size and inside.min() > (bright + dark) / 2  # inside the mapped box: white
    outside = np.ones(brightness.shape, bool)
    outside[max(0, int(y0) - 3):int(y1) + 4, max(0, int(x0) - 3):int(x1) + 4] = False
    assert brightness[outside].max() < (bright + dark) / 2  # elsewhere: black
    np.testing.assert_allclose(geometry.boxes_to_original([[x0, y0, x1, y1]])[0], BOX, atol=1e-9)


def test_boxes_are_clipped_to_the_original():
    geometry = Geometry.resized((200, 300), (320, 320))
    np.testing.assert_allclose(geometry.boxes_to_original([[-10, 0, 330, 160]]), [[0, 0, 300, 100]])
