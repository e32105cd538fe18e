"""Protocol Buffers wire format, encoding only: enough to write ONNX files without the protobuf package.

A message is the concatenation of its fields; each field is a key (field number << 3 | wire type) as a varint,
then the value: wire type 0 a varint, 2 a length-delimited run of bytes (strings, bytes, embedded messages),
5 four little-endian bytes (float). Repeated fields are the same field written once per value (not packed),
which every protobuf reader accepts.
"""
import struct

VARINT, LENGTH_DELIMITED, FIXED32 = 0, 2, 5


def varint(value):
    """Base-128 varint; a negative int64 is written as its 64-bit two's complement (10 bytes), as protobuf does."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field, wire_type):
    return varint(field << 3 | wire_type)


def integer(field, value):
    """An int32/int64/enum/bool field."""
    return key(field, VARINT) + varint(int(value))


def float32(field, value):
    return key(field, FIXED32) + struct.pack("<f", value)


def data(field, payload):
    """A bytes, string (str is UTF-8 encoded) or embedded message field."""
    if isinstance(payload, str):
        payload = payload.encode()
    return key(field, LENGTH_DELIMITED) + varint(len(payload)) + bytes(payload)


def repeated(encode, field, values):
    """One field per value: ``repeated(integer, 1, dims)``, ``repeated(data, 1, names)``."""
    return b"".join(encode(field, v) for v in values)
