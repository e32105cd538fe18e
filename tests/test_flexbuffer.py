"""tinynet's FlexBuffers reader against an encoder written here from the format description, the real SSD file's
options, and corrupt buffers (which must raise WeightsError and nothing else)."""
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from tinynet.errors import WeightsError
from tinynet.formats.flexbuffer import loads

# ---- a small encoder, independent of the reader: every reference points back, at a fixed width W ----------------

W = 8  # every slot and every length is 8 bytes wide: simple, and legal (bit width 3)
NULL, INT, UINT, FLOAT, KEY, STRING, MAP, VECTOR, VECTOR_INT, BLOB, BOOL = 0, 1, 2, 3, 4, 5, 9, 10, 11, 25, 26


class Encoder:
    def __init__(self):
        self.out = bytearray()

    def pad(self):
        self.out += b"\0" * (-len(self.out) % W)

    def scalar_slot(self, value):
        """(slot bytes, packed type) for an inline value, or write the value and return a reference marker."""
        if value is None:
            return struct.pack("<q", 0), NULL << 2 | 3
        if isinstance(value, bool):
            return struct.pack("<Q", int(value)), BOOL << 2 | 3
        if isinstance(value, int):
            return (struct.pack("<q", value), INT << 2 | 3) if value < 2 ** 63 else (struct.pack("<Q", value), UINT << 2 | 3)
        if isinstance(value, float):
            return struct.pack("<d", value), FLOAT << 2 | 3
        return None

    def write(self, value):
        """Write a referenced value; returns (its position, packed type)."""
        if isinstance(value, str):
            data = value.encode()
            self.pad()
            self.out += struct.pack("<Q", len(data))
            at = len(self.out)
            self.out += data + b"\0"
            return at, STRING << 2 | 3
        if isinstance(value, bytes):
            self.pad()
            self.out += struct.pack("<Q", len(value))
            at = len(self.out)
            self.out += value
            return at, BLOB << 2 | 3
        if isinstance(value, list) and value and all(type(v) is int and -2 ** 63 <= v < 2 ** 63 for v in value):
            self.pad()
            self.out += struct.pack("<Q", len(value))
            at = len(self.out)
            self.out += struct.pack(f"<{len(value)}q", *value)
            return at, VECTOR_INT << 2 | 3
        if isinstance(value, list):
            return self.untyped(value, []), VECTOR << 2 | 3
        if isinstance(value, dict):
            keys = sorted(value)
            key_at = []
            for k in keys:
                key_at.append(len(self.out))
                self.out += k.encode() + b"\0"
            self.pad()
            self.out += struct.pack("<Q", len(keys))
            keys_vector = len(self.out)
            for i, at in enumerate(key_at):
                self.out += struct.pack("<Q", keys_vector + i * W - at)
            return self.untyped([value[k] for k in keys], [keys_vector]), MAP << 2 | 3
        raise TypeError(value)

    def untyped(self, values, keys_vector):
        children = [self.scalar_slot(v) or self.write(v) for v in values]
        self.pad()
        if keys_vector:  # a map's prefix: keys vector (a reference from this slot), its width
            self.out += struct.pack("<Q", len(self.out) - keys_vector[0]) + struct.pack("<Q", W)
        self.out += struct.pack("<Q", len(values))
        at = len(self.out)
        for i, (slot, packed) in enumerate(children):
            if isinstance(slot, int):  # a reference: distance back from this slot
                slot = struct.pack("<Q", at + i * W - slot)
            self.out += slot
        self.out += bytes(packed for _, packed in children)
        return at

    def finish(self, value):
        inline = self.scalar_slot(value)
        if inline is not None:
            self.pad()
            self.out += inline[0] + bytes([inline[1], W])
        else:
            at, packed = self.write(value)
            self.pad()
            self.out += struct.pack("<Q", len(self.out) - at) + bytes([packed, W])
        return bytes(self.out)


def encode(value):
    return Encoder().finish(value)


keys = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\0"), max_size=12)
scalars = (st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64 - 1) | st.floats(allow_nan=False)
           | st.text(max_size=20).filter(lambda s: "\0" not in s) | st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
                      max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(values)
def test_decodes_what_the_independent_encoder_wrote(value):
    assert loads(encode(value)) == value


def test_narrow_widths_and_typed_vectors():
    # Hand-assembled: root map {"a": 7, "b": [1, 2]} with 1-byte slots; "b" is a VECTOR_INT of 1-byte elements.
    out = bytearray(b"a\0b\0")             # keys at 0 and 2
    out += bytes([2])                      # keys vector length at 4
    out += bytes([5 - 0, 6 - 2])           # keys vector at 5: element refs
    out += bytes([2, 1, 2])                # VECTOR_INT length at 7, elements [1, 2] at 8
    out += bytes([5 + 0])                  # map prefix at 10: keys vector ref (10 - 5 = 5)
    out += bytes([1, 2])                   # keys width 1 at 11, map length 2 at 12
    out += bytes([7, 14 - 8])              # map values at 13: 7 inline, ref to the vector at 8 (14 - 8)
    out += bytes([INT << 2, 11 << 2])      # value types: INT, VECTOR_INT (1-byte elements)
    out += bytes([17 - 13, MAP << 2, 1])   # root slot at 17 points to the map at 13; packed type; width 1
    assert loads(bytes(out)) == {"a": 7, "b": [1, 2]}


def test_ssd_file_options():
    from tinynet.formats.tflite_schema import read_graph
    graph = read_graph(shared_path("weights", "edje_tflite_od", "ssd_mobilenet_v1.tflite").read_bytes())
    op = graph.operators[-1]
    assert op.name == "CUSTOM 'TFLite_Detection_PostProcess'"
    options = loads(op.custom_options)
    assert options == {"_output_quantized": True, "h_scale": 5.0, "max_classes_per_detection": 1,
                       "max_detections": 10, "nms_iou_threshold": pytest.approx(0.6), "nms_score_threshold":
                       pytest.approx(1e-8), "num_classes": 90, "w_scale": 5.0, "x_scale": 10.0, "y_scale": 10.0}
    assert options["nms_iou_threshold"] == struct.unpack("<f", struct.pack("<f", 0.6))[0]  # stored as float32


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x00\x01", b"\xff" * 3, bytes([0, 36 << 2, 1]),
                                  bytes([0, 9 << 2 | 3, 8]), bytes([0, 0, 3 << 2, 1]), bytes([5, 63 << 2, 1])])
def test_short_or_impossible_buffers(data):
    with pytest.raises(WeightsError, match="corrupt flexbuffer"):
        loads(data)


def test_a_vector_that_contains_itself_is_refused():
    # An untyped vector of length 1 whose element refers (distance 0) to the vector itself.
    data = bytes([1, 0, VECTOR << 2, 3 - 1, VECTOR << 2, 1])
    with pytest.raises(WeightsError, match="nesting"):
        loads(data)


@settings(max_examples=300, deadline=None)
@given(values, st.data())
def test_corrupt_buffers_raise_weights_error_only(value, data):
    raw = bytearray(encode(value))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[cut:])):
        try:
            loads(candidate)
        except WeightsError as e:
            assert str(e).startswith("corrupt flexbuffer")


def test_floats_of_both_widths():
    assert loads(struct.pack("<f", 1.5) + bytes([FLOAT << 2 | 2, 4])) == 1.5
    assert math.isinf(loads(struct.pack("<d", math.inf) + bytes([FLOAT << 2 | 3, 8])))
    with pytest.raises(WeightsError, match="float 2 bytes wide"):
        loads(b"\0\0" + bytes([FLOAT << 2 | 1, 2]))
