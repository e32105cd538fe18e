"""tinynet.formats.protobuf_writer against encodings written out in the Protocol Buffers encoding guide."""
import pytest
from hypothesis import given, strategies as st

from tinynet.formats.protobuf_writer import data, float32, integer, repeated, varint


@pytest.mark.parametrize("value,encoded", [
    (0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (150, b"\x96\x01"), (300, b"\xac\x02"),
    (2 ** 63 - 1, b"\xff" * 8 + b"\x7f"),
    (-1, b"\xff" * 9 + b"\x01"),  # int64 -1: ten bytes, two's complement
    (-2, b"\xfe" + b"\xff" * 8 + b"\x01"),
])
def test_varint(value, encoded):
    assert varint(value) == encoded


def test_fields():
    assert integer(1, 150) == b"\x08\x96\x01"  # the guide's "Test1 a = 150"
    assert data(2, "testing") == b"\x12\x07testing"  # "Test2 b = 'testing'"
    assert data(3, integer(1, 150)) == b"\x1a\x03\x08\x96\x01"  # an embedded message
    assert float32(2, 1.0) == b"\x15\x00\x00\x80\x3f"
    assert repeated(integer, 4, [1, 2]) == b"\x20\x01\x20\x02"
    assert data(1, b"") == b"\x0a\x00" and data(16, b"x") == b"\x82\x01\x01x"  # field 16: a two-byte key


def decode_varint(encoded):
    """The wire format's rule read back, written out on its own: 7 bits per byte, least significant first."""
    value = 0
    for shift, byte in enumerate(encoded):
        value |= (byte & 0x7F) << (7 * shift)
        assert (byte & 0x80 == 0) == (shift == len(encoded) - 1)  # only the last byte lacks the continuation bit
    return value


@given(st.integers(-(2 ** 63), 2 ** 63 - 1))
def test_varint_reads_back_as_its_64_bit_pattern(value):
    encoded = varint(value)
    assert decode_varint(encoded) == value % 2 ** 64
    assert len(encoded) == max(1, -(-(value % 2 ** 64).bit_length() // 7))
