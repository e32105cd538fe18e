"""Mistakes a user makes with the Python API are one-line TinynetErrors, not tracebacks or silent wrong answers."""
import numpy as np
import pytest

import tinynet
from tinynet.model import MIN_INPUT_SIZE


@pytest.fixture(scope="module")
def model():
    return tinynet.create("mobilenet_v3_small", width=0.5, num_classes=10, seed=1)


def one_line(error):
    message = str(error.value)
    assert message and "\n" not in message
    return message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_to_forward_is_refused(model, bad):
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype(np.float32)
    x[1, 5, 7, 2] = bad
    with pytest.raises(tinynet.TinynetError) as error:
        model.forward(x)
    assert "1 NaN or infinite value" in one_line(error)
    x[1, 5, 7, 2] = 0
    assert np.isfinite(model.forward(x)).all()  # the same batch, finite, runs


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_raw_pixels_to_forward_are_refused_with_a_hint(model, dtype):
    pixels = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3)).astype(dtype)
    with pytest.raises(tinynet.TinynetError) as error:
        model.forward(pixels)
    assert "model.preprocess(image)" in one_line(error)
    assert model.classify(pixels[0].astype(np.uint8), top=1)  # the hint's way works: classify takes uint8 images


@pytest.mark.parametrize("arch, width, num_classes, words", [
    ("mobilenet_v5", 1.0, 1000, "unknown architecture 'mobilenet_v5'; known: mobilenet_v1"),
    ("mobilenet_v2", 0, 1000, "width must be a positive number"),
    ("mobilenet_v2", -0.5, 1000, "width must be a positive number"),
    ("mobilenet_v2", float("nan"), 1000, "width must be a positive number"),
    ("mobilenet_v2", "1.0", 1000, "width must be a positive number"),
    ("mobilenet_v2", 1.0, 0, "num_classes must be a whole number of at least 1"),
])
def test_create_with_a_bad_architecture_or_width(arch, width, num_classes, words):
    with pytest.raises(tinynet.TinynetError) as error:
        tinynet.create(arch, width=width, num_classes=num_classes)
    assert words in one_line(error)


def test_save_to_a_missing_folder(model, tmp_path):
    with pytest.raises(tinynet.TinynetError) as error:
        tinynet.save(model, tmp_path / "no" / "such" / "model.tinynet")
    assert f"folder {tmp_path / 'no' / 'such'} does not exist" in one_line(error)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("top", [0, -1, 1.5, True])
def test_top_below_one_or_not_a_count(model, top):
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(tinynet.TinynetError) as error:
        model.classify(image, top=top)
    assert "top must be a whole number of at least 1" in one_line(error)
    with pytest.raises(tinynet.TinynetError):
        model.classify([image], top=top)


@pytest.mark.parametrize("resolution", [MIN_INPUT_SIZE - 1, 0, -224, 224.0])
def test_count_below_the_minimum_input_size(model, resolution):
    with pytest.raises(tinynet.TinynetError) as error:
        tinynet.count(model, resolution=resolution)
    assert f"at least {MIN_INPUT_SIZE}" in one_line(error)
    assert tinynet.count(model, resolution=MIN_INPUT_SIZE)["macs"] > 0
