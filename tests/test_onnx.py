"""ONNX MobileNets against ONNX Runtime's own logits, and the protobuf reader against hostile bytes.

tests/fixtures/onnx_*.onnx are graphs exported by torch.onnx (opsets 7 to 18, torchvision and timm, one with
BatchNormalization nodes and float_data, one with TensorFlow's explicit SAME pads) whose weights live in an
external file the test writes again from a seed; onnx_*.json hold that file's layout and ONNX Runtime's
logits (see tests/fixtures/make_onnx_fixtures.py). Criterion as in test_parity.
"""
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinynet
from synthetic_weights import input_batch, onnx_initializers
from test_parity import assert_parity
from tinynet.formats.protobuf import Message

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("onnx_*.json"))
EXPECTED = {  # fixture -> (arch, padding)
    "onnx_tv_v3_small_050_op17": ("mobilenet_v3_small", "symmetric"),
    "onnx_tv_v3_small_050_op13": ("mobilenet_v3_small", "symmetric"),
    "onnx_tv_v2_035_op11": ("mobilenet_v2", "symmetric"),
    "onnx_tv_v2_035_op9_bn_float_data": ("mobilenet_v2", "symmetric"),
    "onnx_tv_v2_035_op7": ("mobilenet_v2", "symmetric"),
    "onnx_timm_v3_small_050_op18": ("mobilenet_v3_small", "symmetric"),
    "onnx_timm_v3_large_075_op12": ("mobilenet_v3_large", "symmetric"),
    "onnx_tv_v3_large_075_tf_pads": ("mobilenet_v3_large", "tf_same"),
    "onnx_tv_v2_035_op13_tf_pad_nodes": ("mobilenet_v2", "tf_same"),
}


def model_folder(fixture, folder):
    """The fixture's .onnx with its external weights file written from the seed, in ``folder``."""
    spec = json.loads(fixture.read_text())
    folder.mkdir(exist_ok=True)
    shutil.copy(fixture.with_suffix(".onnx"), folder / "model.onnx")
    values = onnx_initializers(spec["entries"], spec["seed"])
    (folder / spec["external"]).write_bytes(b"".join(values[name].tobytes() for name, _, _ in spec["entries"]))
    return folder / "model.onnx", spec


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_logits_match_onnx_runtime(fixture, tmp_path):
    path, spec = model_folder(fixture, tmp_path / "m")
    model = tinynet.load(path)
    assert (model.arch, model.padding) == EXPECTED[fixture.stem]
    x = input_batch(spec["input_shape"], spec["input_seed"]).transpose(0, 2, 3, 1)
    assert_parity(model.forward(x), np.array(spec["logits"]))


@pytest.fixture
def v2(tmp_path):
    return model_folder(FIXTURES[0].parent / "onnx_tv_v2_035_op11.json", tmp_path / "m")[0]


def test_external_data_must_stay_in_the_model_folder(v2, tmp_path):
    data = v2.read_bytes()
    for location in (b"../weights.bin", b"/etc/passwd", b"sub/../../x.bin"):
        # Same length keeps every enclosing length prefix valid only when the size matches, so pad or cut the name.
        forged = data.replace(b"weights.bin", location[:11].ljust(11, b"/") if len(location) != 11 else location)
        (tmp_path / "m" / "forged.onnx").write_bytes(forged)
        with pytest.raises(tinynet.WeightsError, match="outside the model.s folder"):
            tinynet.load(tmp_path / "m" / "forged.onnx")


def test_external_link_out_of_the_folder_is_refused(v2, tmp_path):
    weights = v2.parent / "weights.bin"
    outside = tmp_path / "outside.bin"
    weights.rename(outside)
    weights.symlink_to(outside)
    with pytest.raises(tinynet.WeightsError, match="outside the model's folder"):
        tinynet.load(v2)


def test_truncated_external_file(v2):
    weights = v2.parent / "weights.bin"
    weights.write_bytes(weights.read_bytes()[:-4])
    with pytest.raises(tinynet.WeightsError, match="missing or shorter"):
        tinynet.load(v2)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_truncated_model_is_a_clean_error(v2, cut):
    data = v2.read_bytes()
    v2.write_bytes(data[:int(len(data) * cut)])
    with pytest.raises(tinynet.WeightsError):
        tinynet.load(v2)


def test_random_corruption_is_a_clean_error(v2):
    data = bytearray(v2.read_bytes())
    rng = np.random.default_rng(0)
    for trial in range(40):
        forged = bytearray(data)
        for pos in rng.integers(0, len(forged), 3):
            forged[pos] = int(rng.integers(0, 256))
        v2.write_bytes(bytes(forged))
        try:
            tinynet.load(v2)
        except tinynet.WeightsError as e:
            assert "\n" not in str(e)


def test_unknown_operator_is_named(v2):
    v2.write_bytes(v2.read_bytes().replace(b"\x22\x04Gemm", b"\x22\x04Gelu"))
    with pytest.raises(tinynet.UnsupportedModelError, match="'Gelu'"):
        tinynet.load(v2)


def test_relu6_changed_to_another_clip_is_refused(tmp_path):
    path, _ = model_folder(FIXTURES[0].parent / "onnx_tv_v2_035_op9_bn_float_data.json", tmp_path / "m")
    six = struct.pack("<f", 6.0)
    path.write_bytes(path.read_bytes().replace(six, struct.pack("<f", 5.0), 1))
    with pytest.raises(tinynet.UnsupportedModelError, match="Clip"):
        tinynet.load(path)


def test_tf_pads_are_not_read_as_pytorch_padding(tmp_path):
    """The same weights with the exporter's symmetric pads would give other logits: the pads are honoured."""
    path, spec = model_folder(FIXTURES[0].parent / "onnx_tv_v3_large_075_tf_pads.json", tmp_path / "m")
    model = tinynet.load(path)
    x = input_batch(spec["input_shape"], spec["input_seed"]).transpose(0, 2, 3, 1)
    symmetric = tinynet.Model(model.arch, model.layers, model.weights, "symmetric", model.meta)
    assert np.abs(symmetric.forward(x) - np.array(spec["logits"])).max() > 1e-3


def test_arch_override_must_agree(v2):
    with pytest.raises(tinynet.UnsupportedModelError, match="as mobilenet_v1"):
        tinynet.load(v2, arch="mobilenet_v1")


# ---- the protobuf reader, against an encoder written here -------------------------------------------------

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not out[-1] & 0x80:
            return bytes(out)


@given(st.lists(st.tuples(st.integers(1, 500), st.integers(-(1 << 63), (1 << 63) - 1)), max_size=20))
def test_varint_fields_roundtrip(fields):
    data = b"".join(varint(number << 3) + varint(value) for number, value in fields)
    message = Message(data)
    for number in {n for n, _ in fields}:
        assert message.ints(number) == [v for n, v in fields if n == number]
        assert message.int(number) == [v for n, v in fields if n == number][-1]


@given(st.lists(st.floats(width=32, allow_nan=False), max_size=30), st.booleans())
def test_floats_packed_or_not(values, packed):
    raw = [struct.pack("<f", v) for v in values]
    if packed:
        data = varint(4 << 3 | 2) + varint(4 * len(values)) + b"".join(raw)
    else:
        data = b"".join(varint(4 << 3 | 5) + r for r in raw)
    np.testing.assert_array_equal(Message(data).floats(4), np.array(values, np.float32))


@given(st.binary(max_size=64))
def test_any_bytes_give_fields_or_a_clean_error(data):
    try:
        fields = Message(data).fields
    except tinynet.WeightsError:
        return
    for entries in fields.values():
        for wire, value in entries:
            if wire != 0:
                assert 0 <= value[0] <= value[1] <= len(data)


@pytest.mark.parametrize("data, message", [
    (varint(1 << 3 | 2) + varint(100) + b"abc", "claims 100 bytes"),
    (b"\xff" * 11, "longer than 10 bytes"),
    (varint(1 << 3 | 3), "wire type 3"),
    (varint(0), "field number 0"),
    (varint(1 << 3), "runs past the end"),
])
def test_malformed_messages(data, message):
    with pytest.raises(tinynet.WeightsError, match=message):
        Message(data).fields


# ---- hand-built graphs, encoded here field by field ----------------------------------------------------

def field(number, payload):
    """A length-delimited field (bytes, str or an already encoded message)."""
    payload = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def number(field_number, value):
    return varint(field_number << 3) + varint(value)


def tensor(name, array, data_type=1):
    dims = b"".join(number(1, d) for d in array.shape)
    return dims + number(2, data_type) + field(8, name) + field(9, array.tobytes())


def node(op, inputs, outputs, *attributes):
    return (b"".join(field(1, i) for i in inputs) + b"".join(field(2, o) for o in outputs) + field(4, op)
            + b"".join(field(5, a) for a in attributes))


def onnx_model(nodes, initializers, opset=13):
    value_info = lambda name: field(1, name)  # noqa: E731 (a name is all the reader needs of the graph's inputs)
    graph = (b"".join(field(1, n) for n in nodes) + field(2, "g") + b"".join(field(5, t) for t in initializers)
             + field(11, value_info("x")) + field(12, value_info("y")))
    return number(1, 8) + field(2, "test") + field(7, graph) + field(8, number(2, opset))


def tiny_classifier(dtype=np.float32, data_type=1, pads=(1, 1, 1, 1)):
    w = np.ones((4, 3, 3, 3), dtype)
    gemm = np.ones((10, 4), np.float32)
    conv_pads = field(1, "pads") + b"".join(number(8, p) for p in pads)
    nodes = [node("Conv", ["x", "w"], ["c"], conv_pads), node("Relu", ["c"], ["r"]), node("GlobalAveragePool", ["r"], ["p"]),
             node("Flatten", ["p"], ["f"]), node("Gemm", ["f", "g"], ["y"], field(1, "transB") + number(3, 1))]
    return onnx_model(nodes, [tensor("w", w, data_type), tensor("g", gemm)])


def test_a_graph_that_is_no_mobilenet_sniffed_by_content(tmp_path):
    (tmp_path / "model.bin").write_bytes(tiny_classifier())
    with pytest.raises(tinynet.UnsupportedModelError, match=r"graph \(conv3/1 pool fc\) matches no MobileNet"):
        tinynet.load(tmp_path / "model.bin")


def test_valid_padding_is_refused(tmp_path):
    (tmp_path / "m.onnx").write_bytes(tiny_classifier(pads=(0, 0, 0, 0)))
    with pytest.raises(tinynet.UnsupportedModelError, match=r"padding NOTSET \[0, 0, 0, 0\]"):
        tinynet.load(tmp_path / "m.onnx")


def test_float16_weights_are_refused(tmp_path):
    (tmp_path / "m.onnx").write_bytes(tiny_classifier(np.float16, data_type=10))
    with pytest.raises(tinynet.UnsupportedModelError, match="data type 10"):
        tinynet.load(tmp_path / "m.onnx")


def test_opset_outside_7_to_18(tmp_path):
    (tmp_path / "m.onnx").write_bytes(onnx_model([], [], opset=6))
    with pytest.raises(tinynet.UnsupportedModelError, match="opset 6"):
        tinynet.load(tmp_path / "m.onnx")
