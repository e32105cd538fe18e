"""Hostile and broken inputs (issue 6): weight files that lie, try to run code or exhaust memory, images
at the extremes, and command-line batches with bad images in them.

Every protection here has a test that fails without it. Cases that would hang, crash the interpreter
or allocate gigabytes without their protection run in a child interpreter (weight_files.run_isolated:
memory limit, timeout), so that a regression fails the test instead of taking pytest down with it.
"""
import io
import json
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tinynet
from tinynet.errors import ImageError, WeightsError
from tinynet.formats import keras_h5, safetensors, torch_zip
from conftest import run_cli
from weight_files import (checkpoint_zip, keras_h5 as write_keras_file, load_outcomes, op, run_isolated,
                          tensor_opcodes, torch_checkpoint, torchvision_state)

# ---------------------------------------------------------------------------------------------
# torch zip checkpoints


def write(path, data):
    path.write_bytes(data)
    return path


def test_pickle_calling_builtins_eval_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "evaluated"
    payload = b"\x80\x02}(" + op("w") + b"cbuiltins\neval\n(" + op(f"open({str(marker)!r}, 'w').close()") + b"tRu."
    path = tmp_path / "eval.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
    with pytest.raises(WeightsError, match=r"refers to builtins\.eval.*refusing"):
        tinynet.load(path)
    assert not marker.exists()
    pickle.loads(payload)  # the same bytes through plain pickle do run the code
    assert marker.exists()


def test_data_pkl_declaring_an_absurd_size(tmp_path):
    blob = bytearray(torch_checkpoint({"w": np.zeros(3, np.float32)}))
    entry = blob.rfind(b"PK\x01\x02", 0, blob.rfind(b"archive/data.pkl"))  # its central-directory entry
    struct.pack_into("<I", blob, entry + 24, 3 * 2**30)  # uncompressed size: 3 GB
    with pytest.raises(WeightsError, match=r"data\.pkl declares 3221225472 bytes"):
        tinynet.load(write(tmp_path / "absurd.pth", bytes(blob)))


def central_directory_entry(blob, member):
    return blob.rfind(b"PK\x01\x02", 0, blob.rfind(member.encode()))


@pytest.mark.parametrize("member, field, value, message", [
    ("archive/data.pkl", 6, 127, r"damaged zip archive \(zip file version 12\.7\)"),  # version needed to extract
    ("archive/data/0", 10, 99, "archive/data/0 uses compression method 99"),  # a method torch.save never writes
    ("archive/data/0", 8, 1, "storage 0 is corrupt .*encrypted"),  # flag bit 0: encrypted
])
def test_zip_structures_zipfile_refuses(tmp_path, member, field, value, message):
    blob = bytearray(torch_checkpoint({"features.0.0.weight": np.zeros((8, 3, 3, 3), np.float32)}))
    struct.pack_into("<H", blob, central_directory_entry(blob, member) + field, value)
    with pytest.raises(WeightsError, match=message):
        tinynet.load(write(tmp_path / "damaged.pth", bytes(blob)))


def test_corrupt_deflate_stream_in_a_storage(tmp_path):
    entries = {"features.0.0.weight": tensor_opcodes("0", 216, 0, (8, 3, 3, 3), (27, 9, 3, 1))}
    blob = bytearray(checkpoint_zip(entries, {"0": bytes(864)}, compression=zipfile.ZIP_DEFLATED))
    info = zipfile.ZipFile(io.BytesIO(blob)).getinfo("archive/data/0")
    blob[info.header_offset + 30 + len(info.filename)] = 0xFF  # first deflate block: type 3, which does not exist
    with pytest.raises(WeightsError, match="storage 0 is corrupt"):
        tinynet.load(write(tmp_path / "deflated.pth", bytes(blob)))


def nested_list(depth):
    """[x, x] nested ``depth`` times with shared references: a few hundred bytes of pickle, 2**depth
    leaves when printed."""
    value = []
    for _ in range(depth):
        value = [value, value]
    return value


def test_tensor_geometry_is_checked_before_it_is_used_or_printed(tmp_path):
    blob = {"0": np.zeros(4, np.float32).tobytes()}
    cases = {
        # A broadcast view (stride 0) would copy 4 bytes of storage into a 14 GB array.
        "broadcast": ({"w": tensor_opcodes("0", 4, 0, (60000, 60000), (0, 0))}, "more elements than its storage"),
        # Printing these in an error message would never finish.
        "shape_bomb": ({"w": tensor_opcodes("0", 4, 0, op((nested_list(60),)), (1,))}, "invalid tensor geometry"),
        "storage_id_bomb": ({"w": op(nested_list(60)) + b"Q"}, "unsupported persistent id"),
        # NumPy cannot make these views at all.
        "100_dims": ({"w": tensor_opcodes("0", 4, 0, (1,) * 100, (1,) * 100)}, "invalid tensor geometry"),
        "strides_for_another_shape": ({"w": tensor_opcodes("0", 4, 0, (2, 2), (1,))}, "invalid tensor geometry"),
        "empty_but_huge": ({"w": tensor_opcodes("0", 4, 0, (0, 10**30), (1, 1))}, "invalid tensor geometry"),
    }
    paths = [write(tmp_path / f"{name}.pth", checkpoint_zip(entries, blob)) for name, (entries, _) in cases.items()]
    outcomes = load_outcomes(paths, timeout=120)  # without the checks: MemoryError, a hang, ValueError
    for (name, (_, expected)), outcome in zip(cases.items(), outcomes):
        assert outcome.startswith("error:") and expected in outcome, (name, outcome)


def test_tensors_sharing_one_storage_cannot_add_up_to_gigabytes(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_zip, "MAX_LOADED_BYTES", 1 << 20)
    storage = np.zeros(10_000, np.float32).tobytes()  # 40 KB, viewed whole by 100 tensors: 4 MB of copies
    entries = {f"w{i}": tensor_opcodes("0", 10_000, 0, (10_000,), (1,)) for i in range(100)}
    with pytest.raises(WeightsError, match="add up to more than 1048576 bytes"):
        tinynet.load(write(tmp_path / "shared.pth", checkpoint_zip(entries, {"0": storage})))


# ---------------------------------------------------------------------------------------------
# safetensors and tinynet files


def safetensors_file(path, header, data=b""):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return write(path, struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize("header, message", [
    (b'{"a":' + b"[" * 100_000, "not valid JSON"),  # RecursionError in the JSON parser
    (b'{"a": ' + b"7" * 5000 + b"}", "not valid JSON"),  # int() refuses more than 4300 digits
    ({"w": {"dtype": "F32", "shape": [0, 10**30], "data_offsets": [0, 0]}}, "invalid shape"),
    ({"w": {"dtype": "F32", "shape": [0, 2**31, 2**31], "data_offsets": [0, 0]}}, "invalid shape"),
    ({"w": {"dtype": "F32", "shape": [1] * 40, "data_offsets": [0, 4]}}, "invalid shape"),
    ({"w": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}, "unsupported dtype"),
])
def test_safetensors_headers_that_break_the_parser(tmp_path, header, message):
    path = safetensors_file(tmp_path / "bad.safetensors", header, bytes(4))
    with pytest.raises(WeightsError, match=message):
        tinynet.load(path)


def test_a_file_of_empty_tensors_only(tmp_path):
    path = safetensors_file(tmp_path / "empty.safetensors", {"w": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]}})
    tensors, _ = safetensors.read(path)
    assert tensors["w"].shape == (0, 3)
    with pytest.raises(WeightsError):  # and not the ValueError of mapping an empty data section
        tinynet.load(path)


def test_names_from_the_file_cannot_break_the_one_line_message(tmp_path):
    state = torchvision_state()
    state["features.99.weight\nERROR: forged log line" + "x" * 5000] = np.zeros(3, np.float32)
    path = tmp_path / "names.safetensors"
    safetensors.write(path, state)
    with pytest.raises(WeightsError) as error:
        tinynet.load(path)
    message = str(error.value)
    assert "tensor features.99.weight ERROR: forged log line" in message  # (the rest: "has no place in ...")
    assert "\n" not in message and len(message) <= len(f"{path}: ") + 1000


@pytest.fixture(scope="module")
def small_model():
    return tinynet.create("mobilenet_v3_small", width=0.35, num_classes=4)


@pytest.mark.parametrize("meta, padding, message", [
    ("[" * 100_000, "symmetric", "'meta' is not valid JSON"),
    ("[1, 2]", "symmetric", "not an object"),
    # Each would load, then fail (or run out of memory) at the first image: refused at load instead.
    (json.dumps({"preprocess": {"size": 1_000_000}}), "symmetric", "size must be a whole number from 1 to 2048"),
    (json.dumps({"preprocess": {"mean": [float("nan")] * 3}}), "symmetric", "3 finite values"),
    (json.dumps({"preprocess": {"std": [1e-50] * 3}}), "symmetric", "std non-zero"),
    (json.dumps({"preprocess": 5}), "symmetric", "preprocess spec is a dict"),
    (json.dumps({"preprocess": {"preset": ["tf"]}}), "symmetric", "unknown preprocess preset"),
    (json.dumps({"labels": ["cat", "dog"]}), "symmetric", "2 label names for a model with 4 outputs"),
    ("{}", "reflect", "unknown padding 'reflect'"),
])
def test_native_metadata_is_checked_at_load(tmp_path, small_model, meta, padding, message):
    path = tmp_path / "model.tinynet"
    safetensors.write(path, small_model.weights, {"tinynet_format": "1", "arch": small_model.arch,
                                                  "padding": padding, "meta": meta})
    with pytest.raises(WeightsError, match=message):
        tinynet.load(path)


def test_negative_batchnorm_variance_names_the_tensor(tmp_path):
    state = torchvision_state()
    state["features.2.block.0.1.running_var"][3] = -0.5
    path = tmp_path / "negative.safetensors"
    safetensors.write(path, state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in sqrt" on the way
        with pytest.raises(WeightsError, match=r"features\.2\.block\.0\.1\.running_var holds -0\.5"):
            tinynet.load(path)


# ---------------------------------------------------------------------------------------------
# Keras .h5 files: libhdf5 reads them in a child process (tinynet/formats/hdf5_reader.py)

@pytest.fixture
def h5py():
    return pytest.importorskip("h5py", reason="h5py not installed (optional extra tinynet[keras])")


@pytest.fixture
def keras_file(h5py, tmp_path):
    return write_keras_file(tmp_path / "keras.h5")


def test_the_keras_file_loads(keras_file):
    assert tinynet.load(keras_file).arch == "mobilenet_v1"  # the fixture the hostile variants start from


def test_attribute_datatype_that_crashes_libhdf5(keras_file):
    # One byte turns weight_names' variable-length string type into a "sequence of type 8": h5py 3.16
    # (HDF5 2.0) segfaults reading that attribute. The reader checks each attribute's type before reading.
    blob = bytearray(keras_file.read_bytes())
    name = blob.find(b"weight_names")
    datatype = blob.find(b"\x19\x01\x00\x00", name, name + 40)  # class 9 (variable length), version 1, string
    assert name > 0 and datatype > 0
    blob[datatype + 1] = 0xF8
    [outcome] = load_outcomes([write(keras_file, bytes(blob))])
    assert outcome.startswith("error:") and "attribute 'weight_names' is not text" in outcome, outcome


LOOP = """
import sys
import tinynet
from tinynet.formats import keras_h5
keras_h5.READ_TIMEOUT_SECONDS = 3
try:
    tinynet.load(sys.argv[1])
except tinynet.WeightsError as e:
    print(e)
"""


def test_a_file_that_makes_libhdf5_loop_is_stopped(keras_file):
    # The global heap holding the variable-length strings says it is 32 KB instead of 4 KB: reading
    # layer_names then never returns (h5py 3.16, HDF5 2.0; found by fuzzing). Only the reader's timeout
    # ends it, so the load runs in a child interpreter here: without the timeout this test fails, not hangs.
    blob = bytearray(keras_file.read_bytes())
    heaps = [m.start() for m in re.finditer(b"GCOL", blob)]
    assert len(heaps) >= 2 and struct.unpack_from("<Q", blob, heaps[1] + 8) == (4096,)
    struct.pack_into("<Q", blob, heaps[1] + 8, 32768)  # collection size, after signature, version, reserved
    done = run_isolated(LOOP, write(keras_file, bytes(blob)), timeout=60)
    assert "no result after 3 s (damaged or hostile file)" in done.stdout, done.stdout + done.stderr[-500:]


@pytest.mark.parametrize("script, message", [
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", rf"crashed on it \(signal {int(signal.SIGSEGV)}\)"),
    ("import time; time.sleep(30)", "no result after 1 s"),
    ("import sys; print('first line\\nwhat went wrong', file=sys.stderr); sys.exit(3)", ": what went wrong$"),
])
def test_whatever_happens_in_the_reader_process_is_a_weights_error(keras_file, tmp_path, monkeypatch, script, message):
    reader = tmp_path / "reader.py"
    reader.write_text(script)
    monkeypatch.setattr(keras_h5, "READER", reader)
    monkeypatch.setattr(keras_h5, "READ_TIMEOUT_SECONDS", 1)
    with pytest.raises(WeightsError, match=message):
        tinynet.load(keras_file)


def test_without_an_interpreter_path_the_error_says_so(keras_file, monkeypatch):
    monkeypatch.setattr(sys, "executable", "")  # as in some programs that embed Python
    with pytest.raises(tinynet.TinynetError, match="sys.executable is not set"):
        tinynet.load(keras_file)


def replace_kernel(h5py, path, layer, **dataset_options):
    """Rewrite ``layer``'s kernel with h5py's create_dataset options (same values unless ``shape`` is given)."""
    with h5py.File(path, "a") as f:
        name = f"model_weights/{layer}/{layer}/kernel:0"
        kernel = f[name][()]
        del f[name]
        if "shape" in dataset_options:
            f.create_dataset(name, dtype=kernel.dtype, **dataset_options)
        else:
            f.create_dataset(name, data=kernel, **dataset_options)


def test_a_dataset_declaring_a_gigabyte_it_does_not_store(h5py, keras_file):
    replace_kernel(h5py, keras_file, "conv1", shape=(16384, 16384))  # never written: libhdf5 would fill 1 GB of zeros
    with pytest.raises(WeightsError, match=r"kernel:0' declares 1073741824 bytes \(0 stored\)"):
        tinynet.load(keras_file)


def test_weights_stored_in_another_file_are_not_read(h5py, keras_file, tmp_path):
    secret = tmp_path / "secret.bin"  # stands for any file on the machine
    secret.write_bytes(np.ones((3, 3, 3, 8), np.float32).tobytes())
    replace_kernel(h5py, keras_file, "conv1", shape=(3, 3, 3, 8), external=[(str(secret), 0, secret.stat().st_size)])
    with pytest.raises(WeightsError, match="keeps its data outside this file"):
        tinynet.load(keras_file)


def test_links_to_other_files_are_not_followed(h5py, keras_file, tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(keras_file, "a") as f, h5py.File(other, "w") as o:
        f.copy(f["model_weights/conv1"], o, name="conv1")
        del f["model_weights/conv1"]
        f["model_weights/conv1"] = h5py.ExternalLink(str(other), "/conv1")
    with pytest.raises(WeightsError, match="'model_weights/conv1' links to another file"):
        tinynet.load(keras_file)


def test_filters_libhdf5_would_load_as_plugins_are_refused(h5py, keras_file):
    replace_kernel(h5py, keras_file, "conv1", compression="gzip", chunks=(3, 3, 3, 8))
    blob = bytearray(keras_file.read_bytes())
    name = blob.find(b"deflate\0")  # filter pipeline message, version 1: id, name length, flags, values, name
    assert blob.count(b"deflate\0") == 1 and blob[name - 8:name - 6] == b"\x01\x00"
    struct.pack_into("<H", blob, name - 8, 32001)  # Blosc, a plugin filter
    with pytest.raises(WeightsError, match="needs HDF5 filter 32001, which tinynet does not load"):
        tinynet.load(write(keras_file, bytes(blob)))


@pytest.mark.parametrize("config, message", [
    ("{", "model_config attribute is not valid JSON"),
    ("[1, 2]", "not a Keras model configuration"),
    (json.dumps({"config": {"layers": [{"config": {"name": ["conv1_bn"]}}]}}), "not a Keras model configuration"),
    (json.dumps({"config": {"layers": [{"config": {"name": "conv1_bn", "epsilon": "0.001"}}]}}), "epsilon '0.001'"),
    (json.dumps({"config": {"layers": [{"config": {"name": "conv1_bn", "epsilon": -1.0}}]}}), "epsilon -1.0"),
    (json.dumps({"config": {"layers": [{"class_name": "InputLayer",
                                        "config": {"batch_input_shape": [None, "224", 224, 3]}}]}}), "input shape"),
])
def test_keras_model_config_is_checked(h5py, keras_file, config, message):
    with h5py.File(keras_file, "a") as f:
        f.attrs["model_config"] = config
    with pytest.raises(WeightsError, match=message):
        tinynet.load(keras_file)


def test_negative_keras_moving_variance_names_the_tensor(h5py, keras_file):
    with h5py.File(keras_file, "a") as f:
        variance = f["model_weights/conv_dw_3_bn/conv_dw_3_bn/moving_variance:0"]
        variance[0] = -2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(WeightsError, match="conv_dw_3_bn/moving_variance holds -2.0"):
            tinynet.load(keras_file)


# ---------------------------------------------------------------------------------------------
# Images at the extremes

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
COLOUR = (30, 160, 220)


def flat(colour=COLOUR):
    """The torchvision-preset value of every pixel of a flat ``colour`` image: (colour / 255 - mean) / std."""
    return (np.array(colour, np.float32) / np.float32(255) - IMAGENET_MEAN) / IMAGENET_STD


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF"])
def test_one_pixel_image(tmp_path, fmt):
    path = tmp_path / f"dot.{fmt.lower()}"
    Image.new("RGB", (1, 1), (255, 0, 0) if fmt == "GIF" else COLOUR).save(path, fmt)
    x = tinynet.preprocess.to_array(path)
    assert x.shape == (224, 224, 3)
    expected = flat((255, 0, 0) if fmt == "GIF" else COLOUR)  # GIF's palette holds pure red exactly
    np.testing.assert_allclose(x, np.broadcast_to(expected, x.shape), atol=0.02)  # JPEG: within 1 level


def test_ten_thousand_by_eight_thousand_photo(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (10_000, 8_000), COLOUR).save(path, quality=90)  # 80 M pixels: under the bomb limit
    x = tinynet.preprocess.to_array(path)
    np.testing.assert_allclose(x, np.broadcast_to(flat(), x.shape), atol=0.02)


@pytest.mark.skipif(os.name != "posix", reason="the stand-in for Ghostscript is a shell script")
def test_eps_is_never_handed_to_ghostscript(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    marker = tmp_path / "ghostscript_ran"
    fake = tmp_path / "gs"
    fake.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", str(fake))  # where Pillow caches the Ghostscript it found
    path = tmp_path / "page.eps"
    Image.new("RGB", (8, 8), COLOUR).save(path, "EPS")
    with pytest.raises(ImageError, match="not an image file Pillow can read"):
        tinynet.preprocess.to_array(path)
    assert not marker.exists()
    with pytest.raises(subprocess.CalledProcessError):
        Image.open(path).load()  # Pillow on its own does run it (and lets its failure through)
    assert marker.exists()


STRIP = """
import sys
import numpy as np
from PIL import Image
from tinynet.preprocess import to_array
for size in [(1, 100_000), (100_000, 1)]:
    path = f"{sys.argv[1]}/strip.png"
    Image.new("RGB", size, (30, 160, 220)).save(path)  # 400 bytes
    for preset in ("torchvision", "timm"):
        x = to_array(path, {"preset": preset, "range": [0, 1]})
        print(size, preset, x.shape, np.abs(x - np.array([30, 160, 220]) / 255).max(), flush=True)
"""


def test_extreme_aspect_ratio_does_not_resize_to_gigabytes(tmp_path):
    # The shorter side goes to 256 pixels, so a 1 x 100000 strip would first become 256 x 25,600,000
    # (20 GB); only the part the centre crop keeps is resized. Limit the child to 1.5 GB to prove it.
    done = run_isolated(STRIP, tmp_path, memory=1536 << 20, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    lines = done.stdout.splitlines()
    assert len(lines) == 4
    for line in lines:
        assert "(224, 224, 3)" in line and float(line.split()[-1]) < 1e-6, line


# ---------------------------------------------------------------------------------------------
# The command line over a folder of good, odd and broken images


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model = tinynet.create("mobilenet_v3_small", width=0.35, num_classes=4, seed=3)
    model.meta["preprocess"] = {"preset": "torchvision", "size": 96}
    path = tmp_path_factory.mktemp("model") / "small.tinynet"
    tinynet.save(model, path)
    return path


def odd_and_broken_images(folder):
    """Good images in every awkward form, and broken ones; returns (good, bad) file names."""
    rng = np.random.default_rng(5)
    photo = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    photo.save(folder / "photo.jpg")
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    Image.fromarray(rng.integers(0, 65536, (50, 60), dtype=np.uint16)).save(folder / "deep.png")  # 16-bit
    photo.convert("CMYK").save(folder / "cmyk.jpg")
    photo.convert("CMYK").save(folder / "cmyk.tif")
    Image.new("RGB", (1, 1), COLOUR).save(folder / "tiny.png")
    Image.new("RGB", (10_000, 8_000), COLOUR).save(folder / "huge.jpg")
    jpeg = io.BytesIO()
    photo.save(jpeg, "JPEG")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[:1000])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("an image suffix, but text\n")
    (folder / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    good = ["anim.gif", "cmyk.jpg", "cmyk.tif", "deep.png", "huge.jpg", "photo.jpg", "tiny.png"]
    bad = ["bomb.png", "empty.png", "notes.jpg", "truncated.jpg"]
    return good, bad


def png_declaring(width, height):
    """A PNG header declaring width x height pixels, with no pixel data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def test_batch_with_bad_images_classifies_the_rest_and_exits_1(tmp_path, model_file):
    folder = tmp_path / "photos"
    folder.mkdir()
    good, bad = odd_and_broken_images(folder)
    readme = tmp_path / "readme.txt"  # named explicitly, so tried although .txt is not an image suffix
    readme.write_text("not an image\n")
    empty_folder = tmp_path / "empty_folder"
    empty_folder.mkdir()
    result = run_cli("classify", folder, readme, tmp_path / "missing.jpg", empty_folder, "--model", model_file,
                 "--json", "--top", "4", "--batch", "3", home=tmp_path / "home")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    failed = {Path(r["image"]).name for r in records if "error" in r}
    assert failed >= set(bad + ["readme.txt"]), failed  # each failed image is a record with its error
    records = [r for r in records if "predictions" in r]
    assert [Path(r["image"]).name for r in records] == good  # the folder's images, sorted, bad ones left out

    model = tinynet.load(model_file)
    for record in records:
        alone = model.classify(record["image"], top=4)
        assert [p["label"] for p in record["predictions"]] == [label for label, _ in alone], record["image"]
        np.testing.assert_allclose([p["probability"] for p in record["predictions"]], [p for _, p in alone], atol=2e-6)

    errors = result.stderr.splitlines()
    for name in bad + ["readme.txt"]:
        assert sum(name in line for line in errors) == 1, (name, result.stderr)
    assert any("missing.jpg" in line and "no such file" in line for line in errors)
    assert any(line.endswith(f"no image files in folder {empty_folder}") for line in errors)
    failed, inputs = len(bad) + 2, len(good) + len(bad) + 2  # + readme.txt, missing.jpg
    assert errors[-1] == f"tinynet: {failed} of {inputs} inputs could not be classified"


def test_a_folder_without_images_is_an_error(tmp_path, model_file):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here\n")
    result = run_cli("classify", folder, "--model", model_file, home=tmp_path / "home")
    assert result.returncode == 1 and result.stdout == ""
    assert re.search(r"no image files in folder .*empty", result.stderr)
    assert result.stderr.strip().splitlines()[-1] == "tinynet: error: no images to classify"
