"""Images that cost far more after decoding than their size suggests (issue 10, class 5), one bad image
in a batch, and libtiff's own lines on stderr.

The strips are PNG files written here row by row (a few hundred KB on disk), decoded in a child
interpreter with an address-space limit that reports its peak RSS: before the work of every step was
bounded, the TF preset's resize of a 1-pixel-wide strip took 3.2 GB.
"""
import io
import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

import tinynet
from tinynet import preprocess
from tinynet.errors import ImageError

from conftest import REPO, run_cli
from weight_files import run_isolated

PEAK_RSS_LIMIT_MB = 1024


def gray_png(path, width, height):
    """An 8-bit grayscale PNG of mid-gray, streamed through zlib one block of rows at a time (never held
    decoded in this process)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, parts = zlib.compressobj(9), []
    row = b"\0" + b"\x80" * width  # filter type 0, then the pixels
    rows_per_block = max(1, (1 << 20) // len(row))
    for start in range(0, height, rows_per_block):
        parts.append(compressor.compress(row * min(rows_per_block, height - start)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


PEAK = """
import sys
import tinynet.preprocess as P
from tinynet.errors import ImageError
for preset in ("tf", "torchvision", "timm"):
    try:
        x = P.to_array(sys.argv[1], {"preset": preset})
        outcome = f"ok {x.shape}"
    except ImageError as e:
        outcome = f"refused {e}"
    print(preset, outcome, flush=True)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec, so a child of a
# large pytest would report the parent's peak (tests/hostile.py measured it).
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("peak", peak_kb // 1024)
"""


@pytest.mark.parametrize("width, height", [(89_000_000, 1), (1, 29_000_000), (3, 17_000_000)],
                         ids=["wide strip", "tall strip", "narrow strip"])
def test_strips_under_the_pixel_limit_preprocess_within_a_bounded_memory(tmp_path, width, height):
    path = gray_png(tmp_path / "strip.png", width, height)
    assert path.stat().st_size < 1 << 20
    done = run_isolated(PEAK, path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [[p, "ok"] for p in ("tf", "torchvision", "timm")], lines
    assert int(lines[-1].split()[1]) < PEAK_RSS_LIMIT_MB, lines


def test_a_strip_whose_rows_cost_more_than_the_limit_is_refused_before_decoding(tmp_path):
    path = gray_png(tmp_path / "tall.png", 1, 89_000_000)  # 89 M pixels, under Pillow's limit; 89 M row pointers
    done = run_isolated(PEAK, path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert all("refused" in line and "decompression-bomb limit" in line for line in lines[:3]), lines
    assert int(lines[-1].split()[1]) < 500, lines  # refused from the header: nothing was decoded (2 GB when it was)


def test_the_row_cost_follows_pillows_limit(tmp_path, monkeypatch):
    path = tmp_path / "tall.png"
    Image.new("L", (1, 2000), 128).save(path)
    preprocess.to_array(path, {"preset": "tf"})
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # 2000 pixels, but 6000 with the rows
    with pytest.raises(ImageError, match="row pointer"):
        preprocess.to_array(path, {"preset": "tf"})
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # no limit at all, as Pillow's None means
    preprocess.to_array(path, {"preset": "tf"})


@pytest.mark.parametrize("preset", ["tf", "torchvision", "timm"])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "lanczos"])
def test_an_over_budget_resize_reduces_first_and_stays_close(monkeypatch, preset, interpolation):
    rng = np.random.default_rng(0)
    smooth = Image.fromarray(rng.integers(0, 256, (45, 40, 3)).astype(np.uint8)).resize((3200, 3600), Image.Resampling.BICUBIC)
    spec = preprocess.resolve({"preset": preset, "interpolation": interpolation})
    exact = np.asarray(preprocess._resize_and_crop(smooth, spec), np.int16)
    reductions = []
    original_reduce = Image.Image.reduce
    monkeypatch.setattr(Image.Image, "reduce", lambda self, *a, **k: reductions.append(a) or original_reduce(self, *a, **k))
    monkeypatch.setattr(preprocess, "RESIZE_BUDGET", 1000)
    bounded = np.asarray(preprocess._resize_and_crop(smooth, spec), np.int16)
    assert reductions, "the over-budget resize did not reduce first"
    assert bounded.shape == exact.shape
    difference = np.abs(bounded - exact)  # a box average then the filter, not the filter alone
    assert difference.mean() < 1.5 and difference.max() <= 16


def test_resize_within_budget_is_untouched(monkeypatch):
    monkeypatch.setattr(Image.Image, "reduce", lambda *a, **k: pytest.fail("reduced a resize within budget"))
    image = Image.new("RGB", (4000, 3000), (10, 20, 30))
    for preset in ("tf", "torchvision"):
        preprocess._resize_and_crop(image, preprocess.resolve({"preset": preset}))


def test_memory_error_while_resizing_is_an_image_error(tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    Image.new("RGB", (300, 200), (1, 2, 3)).save(path)

    def out_of_memory(*args):
        raise MemoryError

    monkeypatch.setattr(preprocess, "_resize_and_crop", out_of_memory)
    with pytest.raises(ImageError, match=r"photo\.png: not enough memory"):
        preprocess.to_array(path)


# ---------------------------------------------------------------------------------------------
# One bad image never stops a batch

@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.safetensors"
    tinynet.save(tinynet.create("mobilenet_v1", width=0.25, num_classes=3), path)
    return path


def test_cli_batch_goes_on_past_images_that_cannot_be_afforded(tmp_path, small_model):
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(good)
    tall = gray_png(tmp_path / "tall.png", 1, 89_000_000)
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:60])
    done = run_cli("classify", tall, good, broken, good, "--model", small_model, "--json", "--batch", "2")
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1
    assert [("error" in r, r["image"].rsplit("/", 1)[-1]) for r in records] == [
        (True, "tall.png"), (False, "good.png"), (True, "broken.png"), (False, "good.png")]
    assert all(line.startswith("tinynet: ") for line in done.stderr.splitlines()), done.stderr


# ---------------------------------------------------------------------------------------------
# libtiff prints on stderr itself; tinynet reports the image once, in its own words

def corrupt_tiff(path):
    """A deflate-compressed TIFF whose compressed strip is damaged: libtiff reports a ZIPDecode error."""
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (40, 40, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(buffer, "TIFF", compression="tiff_deflate")
    data = bytearray(buffer.getvalue())
    for i in range(20, 60):  # inside the compressed strip, which follows the 8-byte TIFF header
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


PLAIN_PILLOW = """
import sys
from PIL import Image
try:
    Image.open(sys.argv[1]).load()
except Exception:
    pass
"""


def test_libtiff_prints_nothing_of_its_own(tmp_path, small_model):
    path = corrupt_tiff(tmp_path / "bad.tif")
    plain = subprocess.run([sys.executable, "-c", PLAIN_PILLOW, path], capture_output=True, text=True, timeout=60)
    assert "Decod" in plain.stderr  # the file does make libtiff print, without tinynet in the way
    through_tinynet = run_isolated("import sys, tinynet.preprocess as P\n"
                                   "try:\n    P.to_array(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)\n",
                                   path)
    assert through_tinynet.stderr == ""
    assert through_tinynet.stdout.startswith("ImageError ") and through_tinynet.stdout.count("\n") == 1
    done = run_cli("classify", path, "--model", small_model)
    assert done.returncode == 1
    assert all(line.startswith("tinynet: ") for line in done.stderr.splitlines()), done.stderr
    assert "bad.tif" in done.stderr


def test_python_classify_can_return_errors_in_place_and_go_on(tmp_path, small_model):
    model = tinynet.load(small_model)
    good = np.full((40, 40, 3), 120, np.uint8)
    tall = gray_png(tmp_path / "tall.png", 1, 89_000_000)
    results = model.classify([good, tall, b"not an image", good], top=2, batch_size=3, errors="return")
    assert [type(r).__name__ for r in results] == ["list", "ImageError", "ImageError", "list"]
    assert "tall.png" in str(results[1]) and results[0] == results[3] == model.classify(good, top=2)
    with pytest.raises(ImageError, match="tall.png"):
        model.classify([good, tall])
    with pytest.raises(tinynet.TinynetError, match="errors must be"):
        model.classify([good], errors="ignore")
