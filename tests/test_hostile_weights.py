"""Hostile and broken weight files: the only outcomes allowed are a model or a tinynet error.

Covers truncated, empty and random files, safetensors headers that lie, zip entries with absurd
declared sizes, pickles that try to call functions, NaN/Inf weights, and hypothesis-mutated files.
"""
import io
import json
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinynet
from conftest import shared_path
from tinynet.formats import safetensors

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def load_outcome(path):
    """'model' or 'error': anything else (another exception type, a crash) fails the test."""
    try:
        tinynet.load(path)
    except tinynet.TinynetError as e:
        assert "\n" not in str(e), "error messages are one line"
        return "error"
    return "model"


@pytest.fixture(scope="module")
def small_native(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "small.tinynet"
    tinynet.save(tinynet.create("mobilenet_v3_small", width=0.35, num_classes=4), path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def golden_pth():
    return shared_path("golden", "tv_mobilenet_v3_small.pth").read_bytes()


def split_safetensors(blob):
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def join_safetensors(header, data):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize("content", [b"", b"\0" * 7, b"PK\x03\x04" + b"\0" * 30, bytes(range(256)) * 40])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".tinynet", ".tflite", ".h5"])
def test_empty_and_garbage_files(tmp_path, content, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    assert load_outcome(path) == "error"


def test_truncated_files(tmp_path, small_native, golden_pth):
    for name, blob in (("native.tinynet", small_native), ("golden.pth", golden_pth)):
        for cut in (9, 100, len(blob) // 2, len(blob) - 1):
            path = tmp_path / f"{cut}-{name}"
            path.write_bytes(blob[:cut])
            assert load_outcome(path) == "error", (name, cut)


@pytest.mark.parametrize("lie,message", [
    (lambda h, t: h[t].__setitem__("data_offsets", [0, 10**12]), "outside the file"),
    (lambda h, t: h[t].__setitem__("dtype", "F8_E4M3"), "unsupported dtype"),
    (lambda h, t: h[t].__setitem__("shape", [-1, 3]), "invalid shape"),
    (lambda h, t: h[t].__setitem__("shape", [10**6, 10**6]), "needs"),
    (lambda h, t: h[t].__setitem__("data_offsets", h[next(k for k in h if k not in (t, "__metadata__"))]["data_offsets"]), "overlap|needs"),
    (lambda h, t: h[t].pop("data_offsets"), "lacks"),
    (lambda h, t: h["__metadata__"].__setitem__("meta", 7), "strings"),
])
def test_safetensors_header_lies(tmp_path, small_native, lie, message):
    header, data = split_safetensors(small_native)
    target = next(k for k in header if k != "__metadata__")
    lie(header, target)
    path = tmp_path / "lie.tinynet"
    path.write_bytes(join_safetensors(header, data))
    with pytest.raises(tinynet.WeightsError, match=message):
        tinynet.load(path)


def test_huge_declared_header_length(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(tinynet.WeightsError, match="header claims"):
        tinynet.load(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(tmp_path, bad):
    model = tinynet.create("mobilenet_v3_small", width=0.35, num_classes=4)
    model.weights["05.dw.w"][0, 0, 0] = bad
    path = tmp_path / "nan.tinynet"
    tinynet.save(model, path)
    with pytest.raises(tinynet.WeightsError, match=r"05\.dw\.w .*(NaN|infinite)"):
        tinynet.load(path)
    state = {"conv_stem.weight": np.full((8, 3, 3, 3), bad, np.float32)}
    with pytest.raises(tinynet.WeightsError):
        tinynet.load(write(tmp_path / "nan.safetensors", state))


def write(path, tensors):
    safetensors.write(path, tensors)
    return path


def rezip(golden_pth, replace):
    """The golden checkpoint with some members replaced (name -> bytes, or (ZipInfo, bytes))."""
    src = zipfile.ZipFile(io.BytesIO(golden_pth))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            key = info.filename.split("/", 1)[1]
            dst.writestr(info, replace.get(key, src.read(info)))
    return out.getvalue()


def test_zip_member_with_absurd_declared_size(tmp_path, golden_pth):
    blob = bytearray(rezip(golden_pth, {}))
    # Patch the central directory's uncompressed size of storage 0 to 3 GB.
    name = b"tv_mobilenet_v3_small/data/0"
    at = blob.rfind(b"PK\x01\x02", 0, blob.rfind(name))
    struct.pack_into("<I", blob, at + 24, 3 * 2**30)
    path = tmp_path / "absurd.pth"
    path.write_bytes(bytes(blob))
    with pytest.raises(tinynet.WeightsError, match=r"data/0 declares 3221225472 bytes"):
        tinynet.load(path)


@given(data=st.data())
@FUZZ
def test_mutated_pickle(tmp_path, golden_pth, data):
    pkl = zipfile.ZipFile(io.BytesIO(golden_pth)).read("tv_mobilenet_v3_small/data.pkl")
    mutated = bytearray(pkl)
    for _ in range(data.draw(st.integers(1, 8))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(mutated)))
    path = tmp_path / "mutated.pth"
    path.write_bytes(rezip(golden_pth, {"data.pkl": bytes(mutated[:cut])}))
    assert load_outcome(path) in ("model", "error")


@given(data=st.data())
@FUZZ
def test_mutated_safetensors_header(tmp_path, small_native, data):
    (n,) = struct.unpack("<Q", small_native[:8])
    mutated = bytearray(small_native)
    for _ in range(data.draw(st.integers(1, 6))):
        mutated[data.draw(st.integers(0, 8 + n - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "mutated.tinynet"
    path.write_bytes(bytes(mutated))
    assert load_outcome(path) in ("model", "error")
