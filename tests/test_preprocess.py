"""Preprocessing: torchvision parity on the golden input, the geometry and scaling of each preset, and
decoding of every image mode and broken file tinynet promises to handle."""
import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import tinynet
from conftest import shared_path
from tinynet.errors import ImageError, TinynetError
from tinynet.preprocess import Preprocess, batch, for_model, normalise_rows_f32, open_image, resolve, to_array

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def save(image, path, **params):
    image.save(path, **params)
    return path


def pixels(image):
    return np.asarray(image.convert("RGB")).astype(int)  # (H, W, 3)


# ---------------------------------------------------------------------------------------------
# torchvision parity (golden fixtures: grace_hopper.jpg through torchvision's own transforms)

# Both sides resize to uint8 and then run the same float32 steps (x / 255 - mean) / std, so a real
# difference is a whole uint8 step, at least 1 / (255 * 0.229) = 0.017; 1e-6 admits float rounding only.
# (Measured: 0.0 with Pillow 13.0.)
PARITY_TOLERANCE = 1e-6


def test_torchvision_preset_reproduces_golden_input():
    golden = np.load(shared_path("golden", "tv_mobilenet_v2.input.npy"))[0].transpose(1, 2, 0)  # (224, 224, 3)
    ours = to_array(shared_path("images", "grace_hopper.jpg"), {"preset": "torchvision"})
    assert ours.shape == golden.shape == (224, 224, 3) and ours.dtype == np.float32
    assert np.abs(ours - golden).max() <= PARITY_TOLERANCE


@pytest.mark.parametrize("name, weights", [("tv_mobilenet_v2", "tv_mobilenet_v2.pth"),
                                           ("timm_mobilenetv1_100", "timm_mobilenetv1_100.safetensors")])
def test_golden_model_top1_on_our_input(name, weights):
    # The fixture's input was made the torchvision way for every golden model, timm's included.
    model = tinynet.load(shared_path("golden", weights))
    reference = np.load(shared_path("golden", f"{name}.logits_f64.npy")).reshape(-1)  # (1000,)
    x = to_array(shared_path("images", "grace_hopper.jpg"), {"preset": "torchvision"})[None]
    assert int(np.argmax(model.forward(x)[0])) == int(np.argmax(reference))


# ---------------------------------------------------------------------------------------------
# Presets and their resolution


def test_default_is_torchvision_at_224():
    p = resolve(None)
    assert (p.size, p.crop_fraction, p.crop_first, p.interpolation) == (224, 0.875, False, "bilinear")
    assert for_model(tinynet.create("mobilenet_v2", num_classes=10)) == p


def test_timm_preset_follows_mobilenetv1_pretrained_config():
    p = resolve({"preset": "timm"})
    assert (p.size, p.crop_fraction, p.crop_first, p.interpolation) == (224, 0.875, False, "bicubic")
    assert p.mean == p.std == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("spec, gray, expected", [
    ({"preset": "tf"}, 51, 51 / 127.5 - 1),
    ({"preset": "tf", "range": [0, 1]}, 51, 0.2),
    ({"preset": "tf", "range": "[0, 1]"}, 255, 1.0),
    ({"preset": "tf", "range": [-1.0, 1.0]}, 0, -1.0),
    ({"preset": "timm"}, 255, 1.0),
    ({"preset": "tf", "mean": [0, 0, 0], "std": [1 / 255] * 3}, 200, 200.0),
])
def test_value_scaling(spec, gray, expected):
    x = to_array(Image.new("RGB", (50, 40), (gray,) * 3), spec)
    np.testing.assert_allclose(x, expected, atol=1e-6)


def test_torchvision_scaling_uses_imagenet_mean_std():
    x = to_array(Image.new("RGB", (64, 64), (10, 128, 250)), {"preset": "torchvision", "size": 32})
    expected = (np.array([10, 128, 250], np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(x, np.broadcast_to(expected, (32, 32, 3)), atol=1e-6)


def test_torchvision_crop_offsets_round_half_to_even():
    # Shorter side already 256 and the longer one 341, so there is no resampling: the result is an exact
    # crop. (341 - 224) / 2 = 58.5 rounds to 58 as torchvision's round() does; (256 - 224) / 2 = 16.
    rgb = np.random.default_rng(0).integers(0, 256, (341, 256, 3), dtype=np.uint8)  # (H, W, 3)
    x = to_array(Image.fromarray(rgb), {"preset": "torchvision"})
    expected = (rgb[58:282, 16:240].astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(x, expected, atol=1e-6)


def test_torchvision_truncates_the_longer_side():
    # torchvision: new_long = int(256 * 403 / 300) = int(343.89) = 343 (not 344), then crop offsets
    # round((343 - 224) / 2) = round(59.5) = 60 and (256 - 224) / 2 = 16. Expected built with Pillow here.
    image = Image.fromarray(np.random.default_rng(4).integers(0, 256, (403, 300, 3), dtype=np.uint8))
    resized = np.asarray(image.resize((256, 343), Image.Resampling.BILINEAR), dtype=np.float32)  # (343, 256, 3)
    expected = (resized[60:284, 16:240] / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(to_array(image, {"preset": "torchvision"}), expected, atol=1e-6)


def test_torchvision_keeps_aspect_ratio_and_crops_the_centre():
    # 300 x 400: shorter side 300 -> 256, so the kept window is about x 18.8..281.3, y 68..331 of the
    # original; everything red lies at least 3 pixels outside it (beyond the resize filter's reach).
    rgb = np.zeros((400, 300, 3), np.uint8)
    rgb[:] = RED
    rgb[64:335, 15:285] = GREEN
    x = to_array(Image.fromarray(rgb), {"preset": "torchvision", "range": [0, 1]})
    assert x.shape == (224, 224, 3)
    np.testing.assert_allclose(x, np.broadcast_to([0, 1, 0], x.shape), atol=1e-6)


@pytest.mark.parametrize("w, h", [(160, 160), (200, 100), (227, 227)])
def test_tf_central_crop_then_resize_sees_exactly_the_crop(w, h):
    # tf.image.central_crop: offset int((n - n * 0.875) / 2) on each side. Paint everything outside the
    # crop red and its first/last rows and columns blue: the result must show blue edges and no red,
    # which fails if the crop is off by one pixel or if the resize samples outside it.
    top, left = int((h - h * 0.875) / 2), int((w - w * 0.875) / 2)
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:] = RED
    rgb[top:h - top, left:w - left] = BLUE
    rgb[top + 1:h - top - 1, left + 1:w - left - 1] = GREEN
    x = to_array(Image.fromarray(rgb), {"preset": "tf", "range": [0, 1], "size": 96})
    assert x.shape == (96, 96, 3)
    assert x[..., 0].max() < 1e-6  # no red anywhere
    for edge in (x[0], x[-1], x[:, 0], x[:, -1]):
        assert edge[:, 2].min() > 0.4  # blue edges survive the bilinear resize
    assert np.allclose(x[48, 48], [0, 1, 0])


@pytest.mark.parametrize("spec", [
    {"preset": "caffe"},
    {"preset": "tf", "resize": 256},
    {"preset": "tf", "range": [1, 0]},
    {"preset": "tf", "range": [0, 1], "mean": [0, 0, 0]},
    {"preset": "tf", "range": "zero to one"},
    {"size": 0},
    {"size": 224.0},
    {"crop_fraction": 1.5},
    {"crop_fraction": "most"},
    {"interpolation": "area"},
    {"mean": [0.5, 0.5]},
    {"std": [1, 0, 1]},
])
def test_bad_preprocess_specs_raise_one_line_errors(spec):
    with pytest.raises(TinynetError) as error:
        resolve(spec)
    assert "\n" not in str(error.value)


def test_preprocess_objects_pass_through_and_batch_stacks():
    p = Preprocess(size=48)
    assert resolve(p) is p
    images = [Image.new("RGB", (60, 50), c) for c in (RED, GREEN, BLUE)]
    stacked = batch(images, p)
    assert stacked.shape == (3, 48, 48, 3) and stacked.dtype == np.float32
    for i, image in enumerate(images):
        np.testing.assert_array_equal(stacked[i], to_array(image, p))


# ---------------------------------------------------------------------------------------------
# Image modes


def test_grayscale_and_one_bit(tmp_path):
    assert pixels(open_image(save(Image.new("L", (8, 6), 77), tmp_path / "l.png")))[0, 0].tolist() == [77] * 3
    bits = Image.new("1", (8, 6), 0)
    bits.putpixel((3, 2), 1)
    rgb = pixels(open_image(save(bits, tmp_path / "one.png")))
    assert rgb[2, 3].tolist() == [255] * 3 and rgb[0, 0].tolist() == [0] * 3


def test_palette_with_and_without_transparency(tmp_path):
    palette = Image.new("P", (8, 6), 1)
    palette.putpalette([*RED, *GREEN, *BLUE] + [0] * 759)
    palette.putpixel((0, 0), 0)
    opaque = open_image(save(palette, tmp_path / "p.png"))
    assert opaque.mode == "RGB"
    assert pixels(opaque)[0, 0].tolist() == list(RED) and pixels(opaque)[1, 1].tolist() == list(GREEN)
    transparent = open_image(save(palette, tmp_path / "p_t.png", transparency=1))  # index 1 (green) clear
    assert pixels(transparent)[0, 0].tolist() == list(RED) and pixels(transparent)[1, 1].tolist() == list(WHITE)
    gif = open_image(save(palette, tmp_path / "p_t.gif", transparency=1))
    assert pixels(gif)[1, 1].tolist() == list(WHITE)


@pytest.mark.parametrize("mode, clear, half", [("RGBA", (0, 0, 255, 0), (200, 0, 0, 128)),
                                               ("LA", (0, 0), (200, 128))])
def test_alpha_is_composited_on_white(tmp_path, mode, clear, half):
    image = Image.new(mode, (4, 2), clear)
    image.putpixel((1, 0), half)
    rgb = pixels(open_image(save(image, tmp_path / f"{mode}.png")))
    assert rgb[0, 0].tolist() == list(WHITE)
    alpha = 128 / 255
    expected = [200 * alpha + 255 * (1 - alpha), 255 * (1 - alpha), 255 * (1 - alpha)]
    if mode == "LA":
        expected = [200 * alpha + 255 * (1 - alpha)] * 3
    np.testing.assert_allclose(rgb[0, 1], expected, atol=1.5)


def test_cmyk(tmp_path):
    image = Image.new("CMYK", (4, 2), (0, 0, 0, 0))
    image.putpixel((1, 0), (255, 0, 0, 0))  # pure cyan
    image.putpixel((2, 0), (0, 0, 0, 255))  # pure black
    rgb = pixels(open_image(save(image, tmp_path / "cmyk.tif")))
    assert rgb[0, 0].tolist() == list(WHITE)
    assert rgb[0, 1].tolist() == [0, 255, 255]
    assert rgb[0, 2].tolist() == [0, 0, 0]


def sixteen_bit_ramp():
    # (1, 5) -> 0, 1, 100, 254, 255 in 8 bits; 65280 tells x / 257 (254) from x / 256 (255)
    return np.array([[0, 257, 100 * 257, 65280, 65535]], np.uint16)


@pytest.mark.parametrize("make", [
    lambda v: Image.fromarray(v),  # I;16
    lambda v: Image.frombytes("I;16B", (v.shape[1], v.shape[0]), v.astype(">u2").tobytes()),
    lambda v: Image.fromarray(v.astype(np.int32)),  # I
])
def test_sixteen_bit_is_scaled_not_clipped(make):
    image = make(sixteen_bit_ramp())
    assert image.mode in ("I;16", "I;16B", "I")
    assert pixels(open_image(image))[0, :, 0].tolist() == [0, 1, 100, 254, 255]


def test_sixteen_bit_png_file(tmp_path):
    path = save(Image.fromarray(sixteen_bit_ramp()), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    assert pixels(open_image(path))[0, :, 1].tolist() == [0, 1, 100, 254, 255]


def test_exif_orientation_rotates_pixels(tmp_path):
    stored = Image.new("RGB", (60, 40), BLUE)  # landscape as stored: red left half, blue right half
    stored.paste(RED, (0, 0, 30, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": the stored left edge becomes the top
    path = save(stored, tmp_path / "rotated.jpg", exif=exif, quality=95)
    assert Image.open(path).size == (60, 40)
    shown = open_image(path)
    assert shown.size == (40, 60)
    rgb = pixels(shown)
    assert rgb[5, 20, 0] > 200 and rgb[5, 20, 2] < 60  # top: red
    assert rgb[55, 20, 2] > 200 and rgb[55, 20, 0] < 60  # bottom: blue
    plain = pixels(open_image(save(stored, tmp_path / "plain.jpg", quality=95)))
    assert plain.shape == (40, 60, 3) and plain[20, 5, 0] > 200


def test_exif_orientation_of_a_pil_image_without_modifying_it(tmp_path):
    stored = Image.new("RGB", (60, 40), BLUE)
    exif = Image.Exif()
    exif[0x0112] = 8
    user_image = Image.open(save(stored, tmp_path / "r8.jpg", exif=exif))
    assert open_image(user_image).size == (40, 60)
    assert user_image.size == (60, 40)


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 12), RED), Image.new("RGB", (16, 12), BLUE)]
    path = save(frames[0], tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 2
    rgb = pixels(open_image(path))
    assert rgb.shape == (12, 16, 3) and rgb[6, 8].tolist() == list(RED)


def test_unsupported_mode_is_an_image_error():
    with pytest.raises(ImageError, match="mode F"):
        open_image(Image.new("F", (4, 4), 0.5))


# ---------------------------------------------------------------------------------------------
# Broken and hostile files


def jpeg_bytes():
    buffer = io.BytesIO()
    rgb = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def png_header(width, height):
    """A PNG that declares width x height RGB pixels and holds none (IHDR then IEND)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("name, content, reason", [
    ("empty.jpg", b"", "empty file"),
    ("notes.txt", b"these are not pixels\n" * 20, "not an image"),
    ("truncated.jpg", None, "truncated"),
    ("bomb.png", png_header(100_000, 100_000), "decompression-bomb limit"),
])
def test_bad_files_raise_image_error_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(jpeg_bytes()[:1500] if content is None else content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the bomb must not get past as a mere warning
        with pytest.raises(ImageError) as error:
            open_image(path)
    message = str(error.value)
    assert message.startswith(str(path)) and reason in message and "\n" not in message


def test_truncated_file_opened_by_the_caller(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg_bytes()[:1500])
    lazy = Image.open(path)  # Pillow reads only the header here
    with pytest.raises(ImageError, match=f"^{path}: .*truncated"):
        to_array(lazy)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "nowhere.png")
    with pytest.raises(ImageError, match="directory"):
        open_image(tmp_path)
    with pytest.raises(ImageError, match="expected an image path"):
        open_image(12)


def test_bomb_limit_follows_pillow_setting_in_its_warning_band(tmp_path, monkeypatch):
    # 20 x 20 = 400 pixels: above a 300-pixel limit but under twice it, where Pillow only warns.
    path = save(Image.new("RGB", (20, 20), RED), tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match="larger than 300 pixels"):
            open_image(path)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert open_image(path).size == (20, 20)


def valid_files():
    files = {}
    for fmt, mode in (("PNG", "RGBA"), ("JPEG", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "CMYK")):
        buffer = io.BytesIO()
        image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (24, 32, 3), dtype=np.uint8)).convert(mode)
        image.save(buffer, fmt)
        files[fmt] = buffer.getvalue()
    return files


VALID = valid_files()


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's TIFF reader warns about the corrupt tags it skips
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(sorted(VALID)), cut=st.floats(0.05, 1.0),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8))
def test_corrupted_files_either_decode_or_raise_image_error(tmp_path, fmt, cut, flips):
    data = bytearray(VALID[fmt][:max(1, int(len(VALID[fmt]) * cut))])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    path = tmp_path / f"fuzz.{fmt.lower()}"
    path.write_bytes(bytes(data))
    try:
        image = open_image(path)
    except ImageError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
    else:
        assert image.mode == "RGB"


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_normalise_rows_is_the_broadcast_bit_for_bit(h, w, seed):
    """The detection and segmentation transforms' per-channel normalisation, against plain broadcasting."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
    mean, std = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.5, 3)
    expected = (x - mean.astype(np.float32)) / std.astype(np.float32)
    np.testing.assert_array_equal(normalise_rows_f32(x.copy(), mean, std), expected)
