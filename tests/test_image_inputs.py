"""Images as NumPy arrays, bytes and binary file objects, through the one opener (preprocess.open_image)."""
import io

import numpy as np
import pytest
from PIL import Image

import tinynet
from conftest import shared_path
from tinynet import preprocess

PHOTO = shared_path("images", "grace_hopper.jpg")


@pytest.fixture(scope="module")
def from_file():
    return preprocess.to_array(str(PHOTO))


def rgb_pixels():
    with Image.open(PHOTO) as image:
        return np.asarray(image.convert("RGB"))  # (H, W, 3) uint8


def test_uint8_array_equals_the_file(from_file):
    assert np.array_equal(preprocess.to_array(rgb_pixels()), from_file)


def test_float_array_in_unit_range_equals_the_file(from_file):
    pixels = rgb_pixels().astype(np.float32) / 255
    assert np.array_equal(preprocess.to_array(pixels), from_file)


def test_gray_array_becomes_rgb():
    image = preprocess.open_image(np.full((40, 50), 7, np.uint8))
    assert image.mode == "RGB" and image.size == (50, 40) and image.getpixel((0, 0)) == (7, 7, 7)


def test_bytes_and_file_objects_equal_the_file(from_file):
    data = PHOTO.read_bytes()
    assert np.array_equal(preprocess.to_array(data), from_file)
    assert np.array_equal(preprocess.to_array(bytearray(data)), from_file)
    assert np.array_equal(preprocess.to_array(io.BytesIO(data)), from_file)
    with open(PHOTO, "rb") as f:
        assert np.array_equal(preprocess.to_array(f), from_file)


@pytest.mark.parametrize("array, message", [
    (np.zeros((3, 64, 64), np.uint8), "looks like CHW"),
    (np.zeros((64, 64, 4), np.uint8), "expected an image array"),
    (np.full((8, 8, 3), 200.0), "float image arrays must hold values in [0, 1]"),
    (np.full((8, 8, 3), np.nan, np.float32), "[0, 1]"),
    (np.zeros((8, 8, 3), np.int64), "must be uint8"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
])
def test_ambiguous_or_bad_arrays_are_refused_in_one_line(array, message):
    with pytest.raises(tinynet.ImageError) as e:
        preprocess.open_image(array)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_bytes_are_an_image_error():
    with pytest.raises(tinynet.ImageError, match="<bytes>"):
        preprocess.open_image(b"not an image")
    with pytest.raises(tinynet.ImageError, match="empty"):
        preprocess.open_image(b"")


def test_model_preprocess_and_features_take_lists(from_file):
    model = tinynet.create("mobilenet_v3_small", width=0.5, num_classes=10)
    images = [str(PHOTO), rgb_pixels(), PHOTO.read_bytes()]
    x = model.preprocess(images)
    assert x.shape == (3, 224, 224, 3) and all(np.array_equal(row, from_file) for row in x)
    batched = model.features(images, batch_size=2)
    one = model.features(rgb_pixels())
    assert batched.shape == (3,) + one.shape
    assert np.allclose(batched[1], one, atol=1e-5) and np.allclose(batched[0], batched[2], atol=1e-5)
