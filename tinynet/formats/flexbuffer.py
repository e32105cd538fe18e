"""A read-only FlexBuffers decoder (the schema-less format of TFLite custom operator options) that trusts nothing.

FlexBuffers layout, as far as a reader needs it (all little-endian; google/flatbuffers docs, "FlexBuffers"):
  root         the last byte is the root's width W, the byte before it the root's packed type, and the
               root value sits in the W bytes before that
  packed type  bits 0-1: log2 of the byte width of what a reference points to, bits 2-7: the type
  inline       null, int, uint, float, bool: the value itself, in the width of the slot that holds it
  reference    every other type: an unsigned distance *back* from the slot to the data
  string/blob  length (in the target's width), then the bytes (a string has a NUL after them)
  key          a NUL-terminated byte string, no length
  vector       length, then the elements; an untyped vector follows them with one packed type byte each
  typed vector length, then elements all of one type; the fixed-length ones (2, 3, 4) store no length
  map          an untyped vector of values, preceded by (keys vector, its width, length): keys sorted

Every position, width and length is checked against the buffer before it is read, and nesting depth and
the number of decoded values are bounded (references may point at themselves), so a corrupt buffer raises
WeightsError, never IndexError, RecursionError, a hang or a huge allocation.
"""
import struct

from tinynet.errors import WeightsError

NULL, INT, UINT, FLOAT, KEY, STRING, INDIRECT_INT, INDIRECT_UINT, INDIRECT_FLOAT, MAP, VECTOR = range(11)
VECTOR_INT, VECTOR_UINT, VECTOR_FLOAT, VECTOR_KEY, VECTOR_STRING = range(11, 16)  # VECTOR_STRING is deprecated
BLOB, BOOL, VECTOR_BOOL = 25, 26, 36
FIXED_VECTORS = {16 + 3 * (n - 2) + k: (n, (INT, UINT, FLOAT)[k]) for n in (2, 3, 4) for k in range(3)}
TYPED_VECTORS = {VECTOR_INT: INT, VECTOR_UINT: UINT, VECTOR_FLOAT: FLOAT, VECTOR_KEY: KEY,
                 VECTOR_STRING: STRING, VECTOR_BOOL: BOOL}
MAX_DEPTH = 32
MAX_VALUES = 100_000  # custom options hold a handful


def loads(data, what="flexbuffer"):
    """The value at the root of ``data`` (bytes) as Python objects: dict (map), list (vectors), int, float,
    bool, None, str (strings and keys) or bytes (blobs). Raises WeightsError if the buffer is corrupt."""
    return _Reader(data, what).root()


class _Reader:
    def __init__(self, data, what):
        self.data = memoryview(data).cast("B")
        self.size = len(self.data)
        self.what = what
        self.values = 0

    def fail(self, message):
        raise WeightsError(f"corrupt {self.what}: {message}")

    def check(self, pos, nbytes, what):
        if pos < 0 or nbytes < 0 or pos + nbytes > self.size:
            self.fail(f"{what} at byte {pos} ({nbytes} bytes) lies outside the buffer ({self.size} bytes)")

    def uint(self, pos, width, what):
        self.check(pos, width, what)
        if width not in (1, 2, 4, 8):
            self.fail(f"{what} has width {width}")
        return int.from_bytes(self.data[pos:pos + width], "little")

    def int(self, pos, width, what):
        value = self.uint(pos, width, what)
        return value - (1 << (8 * width)) if value >> (8 * width - 1) else value

    def float(self, pos, width, what):
        if width not in (4, 8):
            self.fail(f"{what} is a float {width} bytes wide")
        self.check(pos, width, what)
        return struct.unpack_from("<f" if width == 4 else "<d", self.data, pos)[0]

    def root(self):
        if self.size < 3:
            self.fail(f"{self.size} bytes is too short to hold a root")
        width = self.data[self.size - 1]
        packed = self.data[self.size - 2]
        return self.value(self.size - 2 - width, width, packed, 0)

    def target(self, pos, width, what):
        """Where the reference in the ``width``-byte slot at ``pos`` points."""
        return pos - self.uint(pos, width, f"{what} reference")

    def value(self, pos, parent_width, packed, depth):
        """The value whose slot (``parent_width`` bytes) is at ``pos`` and whose packed type is ``packed``."""
        self.values += 1
        if self.values > MAX_VALUES or depth > MAX_DEPTH:
            self.fail(f"more than {MAX_VALUES} values or {MAX_DEPTH} levels of nesting (a reference cycle?)")
        kind, width = packed >> 2, 1 << (packed & 3)
        what = f"value of type {kind} at byte {pos}"
        if kind == NULL:
            return None
        if kind == INT:
            return self.int(pos, parent_width, what)
        if kind in (UINT, BOOL):
            value = self.uint(pos, parent_width, what)
            return bool(value) if kind == BOOL else value
        if kind == FLOAT:
            return self.float(pos, parent_width, what)
        at = self.target(pos, parent_width, what)
        if kind == INDIRECT_INT:
            return self.int(at, width, what)
        if kind == INDIRECT_UINT:
            return self.uint(at, width, what)
        if kind == INDIRECT_FLOAT:
            return self.float(at, width, what)
        if kind == KEY:
            return self.key(at)
        if kind in (STRING, BLOB):
            length = self.uint(at - width, width, f"{what} length")
            self.check(at, length + (kind == STRING), what)
            raw = bytes(self.data[at:at + length])
            return raw.decode("utf-8", errors="replace") if kind == STRING else raw
        if kind == VECTOR:
            return self.untyped_vector(at, width, depth, what)
        if kind == MAP:
            return self.map(at, width, depth, what)
        if kind in TYPED_VECTORS:
            return self.typed_vector(at, width, self.uint(at - width, width, f"{what} length"), TYPED_VECTORS[kind],
                                     depth, what)
        if kind in FIXED_VECTORS:
            length, element = FIXED_VECTORS[kind]
            return self.typed_vector(at, width, length, element, depth, what)
        self.fail(f"{what}: type {kind} is not a FlexBuffers type")

    def key(self, at):
        self.check(at, 1, "key")
        end = bytes(self.data[at:]).find(b"\0")
        if end < 0:
            self.fail(f"key at byte {at} has no terminating NUL")
        return bytes(self.data[at:at + end]).decode("utf-8", errors="replace")

    def typed_vector(self, at, width, length, element, depth, what):
        self.check(at, length * width, what)
        packed = (element << 2) | (width.bit_length() - 1)  # elements are as wide as the vector's slots
        return [self.value(at + i * width, width, packed, depth + 1) for i in range(length)]

    def untyped_vector(self, at, width, depth, what, length=None):
        if length is None:
            length = self.uint(at - width, width, f"{what} length")
        self.check(at, length * width + length, what)  # the elements, then one packed type byte each
        types = at + length * width
        return [self.value(at + i * width, width, self.data[types + i], depth + 1) for i in range(length)]

    def map(self, at, width, depth, what):
        length = self.uint(at - width, width, f"{what} length")
        keys_slot = at - 3 * width
        keys_width = self.uint(at - 2 * width, width, f"{what} keys width")
        keys_at = self.target(keys_slot, width, f"{what} keys")
        if self.uint(keys_at - keys_width, keys_width, f"{what} keys length") != length:
            self.fail(f"{what} has {length} values but a different number of keys")
        keys = self.typed_vector(keys_at, keys_width, length, KEY, depth, f"{what} keys")
        values = self.untyped_vector(at, width, depth, what, length)
        return dict(zip(keys, values))
