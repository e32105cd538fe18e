"""A read-only Protocol Buffers decoder that trusts nothing in the buffer (for ONNX files).

Wire format, as far as a reader needs it: a message is a sequence of fields, each a varint key
``field_number << 3 | wire_type`` followed by its value:
  0 varint   1..10 bytes, 7 bits each, least significant first (int64 negatives take 10 bytes)
  1 fixed64  8 bytes little-endian          5 fixed32  4 bytes little-endian (float)
  2 length-delimited: a varint length, then that many bytes (a string, bytes, a sub-message, or a
    "packed" repeated scalar field)
  3, 4 groups (deprecated; ONNX has none): refused
A field may repeat; for a singular field the last occurrence wins. Every length and position is
checked against the message's bounds before use, so a truncated or corrupt file raises WeightsError
(not IndexError, a hang, or a huge allocation). Schemas are not read: callers name fields by number.
"""
import struct

import numpy as np

from tinynet.errors import WeightsError

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
MAX_VARINT_BYTES = 10


class Message:
    """One message: the bytes ``data[start:end]``, its fields decoded on first use."""

    def __init__(self, data, start=0, end=None, what="protobuf message"):
        self.data = data if isinstance(data, memoryview) else memoryview(data).cast("B")
        self.start, self.end = start, len(self.data) if end is None else end
        self.what = what
        self._fields = None

    def fail(self, message):
        raise WeightsError(f"corrupt {self.what}: {message}")

    def _varint(self, pos):
        value = shift = 0
        for i in range(MAX_VARINT_BYTES):
            if pos + i >= self.end:
                self.fail(f"varint at byte {pos} runs past the end of the message")
            byte = self.data[pos + i]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value, pos + i + 1
            shift += 7
        self.fail(f"varint at byte {pos} is longer than {MAX_VARINT_BYTES} bytes")

    @property
    def fields(self):
        """{field number: [(wire type, value)]}: an int for varints, a (start, end) span otherwise."""
        if self._fields is None:
            fields, pos = {}, self.start
            while pos < self.end:
                key, pos = self._varint(pos)
                number, wire = key >> 3, key & 7
                if number == 0:
                    self.fail(f"field number 0 at byte {pos}")
                if wire == VARINT:
                    value, pos = self._varint(pos)
                elif wire in (FIXED64, FIXED32, LENGTH):
                    if wire == LENGTH:
                        size, pos = self._varint(pos)
                    else:
                        size = 8 if wire == FIXED64 else 4
                    if size > self.end - pos:
                        self.fail(f"field {number} at byte {pos} claims {size} bytes; {self.end - pos} remain")
                    value, pos = (pos, pos + size), pos + size
                else:
                    self.fail(f"field {number} has wire type {wire}, which this reader does not accept")
                fields.setdefault(number, []).append((wire, value))
            self._fields = fields
        return self._fields

    def _last(self, number, wire):
        entries = self.fields.get(number)
        if not entries:
            return None
        found, value = entries[-1]
        if found != wire:
            self.fail(f"field {number} has wire type {found}, expected {wire}")
        return value

    def int(self, number, default=0, signed=True):
        value = self._last(number, VARINT)
        if value is None:
            return default
        return value - (1 << 64) if signed and value >= 1 << 63 else value

    def float(self, number, default=0.0):
        span = self._last(number, FIXED32)
        return default if span is None else struct.unpack_from("<f", self.data, span[0])[0]

    def bytes(self, number):
        """A length-delimited field as a memoryview (empty when absent)."""
        span = self._last(number, LENGTH)
        return self.data[0:0] if span is None else self.data[span[0]:span[1]]

    def string(self, number, default=""):
        span = self._last(number, LENGTH)
        return default if span is None else bytes(self.data[span[0]:span[1]]).decode("utf-8", errors="replace")

    def strings(self, number):
        out = []
        for wire, span in self.fields.get(number, []):
            if wire != LENGTH:
                self.fail(f"field {number} has wire type {wire}, expected a string")
            out.append(bytes(self.data[span[0]:span[1]]).decode("utf-8", errors="replace"))
        return out

    def message(self, number, what=None):
        """The sub-message in field ``number`` (the last one), or None when absent."""
        span = self._last(number, LENGTH)
        return None if span is None else Message(self.data, span[0], span[1], what or f"{self.what}.{number}")

    def messages(self, number, what=None):
        out = []
        for i, (wire, span) in enumerate(self.fields.get(number, [])):
            if wire != LENGTH:
                self.fail(f"field {number} has wire type {wire}, expected a message")
            out.append(Message(self.data, span[0], span[1], f"{what or f'{self.what}.{number}'}[{i}]"))
        return out

    def ints(self, number, signed=True):
        """A repeated integer field, packed or not, as a list of ints."""
        out = []
        for wire, value in self.fields.get(number, []):
            if wire == VARINT:
                out.append(value)
            elif wire == LENGTH:
                pos, end = value
                packed = Message(self.data, pos, end, f"{self.what} packed field {number}")
                while pos < end:
                    item, pos = packed._varint(pos)
                    out.append(item)
            else:
                self.fail(f"field {number} has wire type {wire}, expected integers")
        return [v - (1 << 64) if signed and v >= 1 << 63 else v for v in out]

    def floats(self, number):
        """A repeated float field, packed or not, as a float32 array."""
        parts = []
        for wire, (start, end) in ((w, v) for w, v in self.fields.get(number, []) if w != VARINT):
            if (end - start) % 4:
                self.fail(f"packed floats in field {number} take {end - start} bytes, not a multiple of 4")
            parts.append(np.frombuffer(self.data, "<f4", (end - start) // 4, start))
        if any(w == VARINT for w, _ in self.fields.get(number, [])):
            self.fail(f"field {number} holds varints, expected floats")
        return np.concatenate(parts) if parts else np.empty(0, np.float32)
