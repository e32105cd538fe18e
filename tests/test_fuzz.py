"""Fuzzing (issue 6): random and mutated weight files of every format tinynet reads, and images in every
format Pillow both writes and reads. The only outcomes allowed are a correct result or a clean, one-line
tinynet error: any other exception fails the test (a crash inside libhdf5 is contained by tinynet's
reader process; see test_reliability.py for the cases that would crash without it).

Each test runs a small number of examples by default and twenty times as many under ``-m slow``.
"""
import io
import struct
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

import tinynet
from tinynet.formats import safetensors
from tinynet.preprocess import Preprocess, open_image, to_array
from weight_files import keras_h5, tflite_bytes, torch_checkpoint, torchvision_state

SLOW_FACTOR = 20
BUDGET = [pytest.param(1, id="default"), pytest.param(SLOW_FACTOR, marks=pytest.mark.slow, id="slow")]
# Integers that push a size, count or offset to an edge when written over one.
EDGES = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1]


def run(examples, test):
    """Run the hypothesis-decorated ``test`` with ``examples`` examples."""
    settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])(test)()


class Edited(bytes):
    """Bytes that print as the edits that made them: a failing example is then readable, not megabytes."""

    def __new__(cls, data, edits):
        edited = super().__new__(cls, data)
        edited.edits = edits
        return edited

    def __repr__(self):
        return f"<{len(self)} bytes after {self.edits or 'no edits'}>"

    def _repr_pretty_(self, printer, cycle):  # hypothesis prints examples with IPython's pretty printer
        printer.text(repr(self))


@st.composite
def mutated(draw, blob, regions):
    """``blob`` after 0 to 6 edits, each at a position inside one of ``regions`` [(start, end)]: set a byte,
    write an edge integer (2, 4 or 8 bytes, little-endian), insert or delete a few bytes, or cut the file."""
    data, edits = bytearray(blob), []
    for _ in range(draw(st.integers(0, 6))):
        start, end = draw(st.sampled_from(regions))
        end = min(end, len(data))
        if end <= start:
            break
        at = draw(st.integers(start, end - 1))
        edit = draw(st.sampled_from(["byte", "integer", "insert", "delete", "cut"]))
        if edit == "byte":
            detail = data[at] = draw(st.integers(0, 255))
        elif edit == "integer":
            width = draw(st.sampled_from([2, 4, 8]))
            detail = draw(st.sampled_from(EDGES + [len(blob), len(blob) - at])) % (1 << (8 * width))
            data[at:at + width] = detail.to_bytes(width, "little")
        elif edit == "insert":
            detail = draw(st.binary(min_size=1, max_size=16))
            data[at:at] = detail
        elif edit == "delete":
            detail = draw(st.integers(1, 16))
            del data[at:at + detail]
        else:
            detail = None
            del data[at:]
        edits.append((edit, at, detail))
    return Edited(data, edits)


def clean_error(e):
    message = str(e)
    assert message and "\n" not in message, f"not a one-line message: {message!r}"


def load_and_run(path):
    """The model in ``path``, after checking that it runs; None for a clean error. A bad file must be refused as a
    WeightsError (UnsupportedModelError included) naming the file: another TinynetError, or one about something
    else, would mean the reader blamed the wrong thing."""
    try:
        model = tinynet.load(path)
    except tinynet.WeightsError as e:
        clean_error(e)
        assert str(e).startswith(f"{path}: "), f"the error does not name the file: {e}"
        return None
    assert model.forward(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, model.num_classes)
    return model


def check_weight_file(path, blob, original_blob, original_model):
    """A mutated file loads and runs, or fails cleanly; the unmutated one gives exactly the original model."""
    path.write_bytes(blob)
    model = load_and_run(path)
    event("loaded and ran" if model is not None else "tinynet error")  # shown by --hypothesis-show-statistics
    if blob == original_blob:
        assert model is not None and model.arch == original_model.arch
        assert model.weights.keys() == original_model.weights.keys()
        for name, w in original_model.weights.items():
            np.testing.assert_array_equal(model.weights[name], w, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Weight files: each format's file, the byte ranges most of its structure lives in


def native_file(tmp_path):
    path = tmp_path / "native.tinynet"
    tinynet.save(tinynet.create("mobilenet_v3_small", width=0.35, num_classes=4), path)
    blob = path.read_bytes()
    (header,) = struct.unpack("<Q", blob[:8])
    return blob, [(0, 8 + header), (0, len(blob))]


def torchvision_safetensors(tmp_path):
    path = tmp_path / "tv.safetensors"
    safetensors.write(path, torchvision_state())
    blob = path.read_bytes()
    (header,) = struct.unpack("<Q", blob[:8])
    return blob, [(0, 8 + header), (0, len(blob))]


def torch_zip(tmp_path):
    blob = torch_checkpoint(torchvision_state())
    pickle_member = zipfile.ZipFile(io.BytesIO(blob)).getinfo("archive/data.pkl")
    pickle_end = pickle_member.header_offset + 30 + len(pickle_member.filename) + pickle_member.compress_size
    directory = blob.find(b"PK\x01\x02")
    return blob, [(pickle_member.header_offset, pickle_end), (directory, len(blob)), (0, len(blob))]


def tflite(tmp_path):
    blob = tflite_bytes()
    return blob, [(len(blob) - 6000, len(blob)), (0, len(blob))]  # the tables sit after the weight buffers


def keras(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py not installed (optional extra tinynet[keras])")
    path = keras_h5(tmp_path / "base.h5")
    spans = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: spans.append((obj.id.get_offset(), obj.id.get_storage_size()))
                     if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None else None)
    blob, gaps, at = path.read_bytes(), [], 0
    for offset, size in sorted(spans):  # everything between datasets' data: superblock, headers, heaps, trees
        if offset > at:
            gaps.append((at, offset))
        at = max(at, offset + size)
    return blob, gaps + [(at, len(blob))] if at < len(blob) else gaps


FORMATS = {"tinynet": (native_file, 60), "safetensors": (torchvision_safetensors, 30), "torch": (torch_zip, 50),
           "tflite": (tflite, 50), "h5": (keras, 12)}  # (base file, default examples); h5 loads take ~0.25 s each


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow in a forward pass of absurd (finite) weights
@pytest.mark.parametrize("budget", BUDGET)
@pytest.mark.parametrize("kind", FORMATS)
def test_mutated_weight_files(tmp_path, kind, budget):
    make, examples = FORMATS[kind]
    blob, regions = make(tmp_path)
    original_path = tmp_path / f"original.{kind}"
    original_path.write_bytes(blob)
    original = tinynet.load(original_path)

    @given(mutated(blob, regions))
    def check(data):
        check_weight_file(tmp_path / f"fuzzed.{kind}", data, blob, original)

    run(examples * budget, check)


MAGIC = {"tinynet": lambda n: struct.pack("<Q", n) + b"{", "torch": lambda n: b"PK\x03\x04",
         "tflite": lambda n: b"\x1c\0\0\0TFL3", "h5": lambda n: b"\x89HDF\r\n\x1a\n"}


@pytest.mark.parametrize("budget", BUDGET)
@pytest.mark.parametrize("kind", MAGIC)
def test_random_bytes_after_each_formats_magic(tmp_path, kind, budget):
    if kind == "h5":
        pytest.importorskip("h5py", reason="h5py not installed (optional extra tinynet[keras])")

    @given(st.integers(0, 4096), st.binary(max_size=4096))
    def check(declared, tail):
        path = tmp_path / f"random.{kind}"
        path.write_bytes(MAGIC[kind](declared) + tail)
        with pytest.raises(tinynet.TinynetError) as error:
            tinynet.load(path)
        clean_error(error.value)

    run((6 if kind == "h5" else 50) * budget, check)


# ---------------------------------------------------------------------------------------------
# Images: every (format, mode) Pillow can write and read back, then mutated


def writable_pairs():
    """(format, mode) pairs Pillow writes and reads back as an image tinynet takes (not mode F: SPIDER).
    EPS is left out (tinynet refuses it: Pillow would run Ghostscript), ICNS for its size (1024 x 1024)."""
    Image.init()
    sample = Image.fromarray(np.arange(5 * 7 * 4, dtype=np.uint8).reshape(5, 7, 4), "RGBA")
    pairs = []
    for fmt in sorted((set(Image.SAVE) & set(Image.OPEN)) - {"EPS", "ICNS"}):
        for mode in ("RGB", "L", "RGBA", "LA", "P", "1", "CMYK", "I;16"):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # Pillow 13: "IM image format is deprecated"
                    data = encode(picture(sample, mode), fmt)
                    with Image.open(io.BytesIO(data)) as back:
                        back.load()
                        if back.mode != "F":
                            pairs.append((fmt, mode))
            except Exception:  # this Pillow cannot write or read that combination
                continue
    return pairs


def picture(rgba, mode):
    if mode == "I;16":
        return Image.fromarray(np.asarray(rgba)[..., 0].astype(np.uint16) * 257)  # full 16-bit range
    return rgba.convert(mode)


def encode(image, fmt):
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


PAIRS = writable_pairs()
PLAIN_MODES = ("RGB", "L", "P", "1", "CMYK")  # no alpha, 8 bits: tinynet's RGB is Pillow's plain conversion


@st.composite
def image_files(draw):
    fmt, mode = draw(st.sampled_from(PAIRS))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    rgba = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, (height, width, 4), dtype=np.uint8)
    try:
        blob = encode(picture(Image.fromarray(rgba, "RGBA"), mode), fmt)
    except (OSError, ValueError):  # e.g. a size this format cannot hold
        blob = None
    return fmt, (width, height), blob


def test_the_image_formats_cover_the_usual_ones():
    formats = {fmt for fmt, _ in PAIRS}
    assert {"JPEG", "PNG", "GIF", "BMP", "TIFF", "PPM"} <= formats, sorted(formats)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about corrupt TIFF tags and EXIF it skips
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Pillow 13: "IM image format is deprecated"
@pytest.mark.parametrize("budget", BUDGET)
def test_mutated_images(tmp_path, budget):
    small = Preprocess(size=32)

    @given(image_files(), st.data())
    def check(image, data):
        fmt, size, blob = image
        if blob is None:
            return
        mutated_blob = data.draw(mutated(blob, [(0, min(len(blob), 512)), (0, len(blob))]))
        path = tmp_path / f"fuzzed.{fmt.lower()}"
        path.write_bytes(mutated_blob)
        try:
            rgb = open_image(path)
            x = to_array(path, small)
        except tinynet.ImageError as e:
            clean_error(e)
            assert str(e).startswith(str(path))
            event(f"{fmt}: ImageError")
            return
        event(f"{fmt}: decoded")
        assert rgb.mode == "RGB" and x.shape == (32, 32, 3) and x.dtype == np.float32
        lowest, highest = (0 - np.array(small.mean)) / np.array(small.std), (1 - np.array(small.mean)) / np.array(small.std)
        assert (x >= lowest - 1e-5).all() and (x <= highest + 1e-5).all()
        if mutated_blob == blob:  # the file as written: decoded exactly as Pillow decodes it
            with Image.open(path) as reference:
                if fmt != "ICO":  # an icon holds only the standard sizes up to the image's
                    assert rgb.size == size
                if reference.mode in PLAIN_MODES and "transparency" not in reference.info:
                    np.testing.assert_array_equal(np.asarray(rgb), np.asarray(reference.convert("RGB")))

    run(300 * budget, check)
