"""A read-only FlatBuffers decoder that trusts nothing in the buffer.

FlatBuffers layout, as far as a reader needs it (all little-endian):
  root        uint32 at byte 0: offset of the root table
  table       int32 at its start: signed distance back to its vtable; fields follow
  vtable      uint16 vtable size, uint16 table size, then one uint16 per field slot:
              the field's offset from the table start, 0 when the field is absent
  reference   uint32 stored in a field (or a vector element): offset from that field's own
              position to a table, vector or string
  vector      uint32 element count, then the elements; string = byte vector + NUL

Every position, count and size is checked against the buffer before it is used, so a truncated
or corrupt file raises WeightsError (not IndexError, struct.error, a hang or a huge allocation).
Schemas are not read: callers name fields by slot number, in schema order (a union takes two
slots: its type byte, then the reference).
"""
import struct

import numpy as np

from tinynet.errors import WeightsError

SCALARS = {"b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "q": 8, "Q": 8, "f": 4, "d": 8, "?": 1}


class Buffer:
    """The bytes of one FlatBuffer, with checked primitive reads."""

    def __init__(self, data, what="flatbuffer"):
        self.data = memoryview(data).cast("B")
        self.size = len(self.data)
        self.what = what

    def fail(self, message):
        raise WeightsError(f"corrupt {self.what}: {message}")

    def check(self, pos, nbytes, what):
        if pos < 0 or nbytes < 0 or pos + nbytes > self.size:
            self.fail(f"{what} at byte {pos} ({nbytes} bytes) lies outside the file ({self.size} bytes)")

    def scalar(self, pos, fmt, what="value"):
        self.check(pos, SCALARS[fmt], what)
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def root(self, identifier=None):
        """The root table, after checking the 4-byte file identifier if one is given."""
        if identifier is not None:
            self.check(4, 4, "file identifier")
            if bytes(self.data[4:8]) != identifier:
                self.fail(f"file identifier is {bytes(self.data[4:8])!r}, expected {identifier!r}")
        return Table(self, self.scalar(0, "I", "root offset"), "root")


class Table:
    """One table of a Buffer; fields are read by slot number."""

    def __init__(self, buf, pos, what):
        self.buf, self.pos, self.what = buf, pos, what
        vtable = pos - buf.scalar(pos, "i", f"{what} vtable offset")
        vtable_size = buf.scalar(vtable, "H", f"{what} vtable")
        if vtable_size < 4 or vtable_size % 2:
            buf.fail(f"{what} has a malformed vtable (size {vtable_size})")
        buf.check(vtable, vtable_size, f"{what} vtable")
        table_size = buf.scalar(vtable + 2, "H", f"{what} vtable")
        buf.check(pos, max(table_size, 4), what)
        self.n_slots = (vtable_size - 4) // 2
        self.vtable, self.table_size = vtable, table_size

    def _field(self, slot):
        """Absolute position of the field in ``slot``, or None when absent."""
        if slot >= self.n_slots:
            return None
        offset = self.buf.scalar(self.vtable + 4 + 2 * slot, "H")
        if offset == 0:
            return None
        if offset + 1 > self.table_size:
            self.buf.fail(f"{self.what} field {slot} lies outside its table")
        return self.pos + offset

    def scalar(self, slot, fmt, default=0):
        pos = self._field(slot)
        return default if pos is None else self.buf.scalar(pos, fmt, f"{self.what} field {slot}")

    def _target(self, slot):
        pos = self._field(slot)
        if pos is None:
            return None
        return pos + self.buf.scalar(pos, "I", f"{self.what} field {slot}")

    def table(self, slot, what=None):
        """The sub-table in ``slot``, or None when absent."""
        target = self._target(slot)
        return None if target is None else Table(self.buf, target, what or f"{self.what}.{slot}")

    def _vector(self, slot, itemsize, what):
        """(position of the first element, count) of the vector in ``slot``; (None, 0) if absent."""
        target = self._target(slot)
        if target is None:
            return None, 0
        count = self.buf.scalar(target, "I", f"{what} length")
        self.buf.check(target + 4, count * itemsize, what)
        return target + 4, count

    def array(self, slot, dtype, what=None):
        """A numeric vector as a read-only numpy array (empty when absent)."""
        dtype = np.dtype(dtype).newbyteorder("<")
        start, count = self._vector(slot, dtype.itemsize, what or f"{self.what} vector {slot}")
        if start is None:
            return np.empty(0, dtype)
        return np.frombuffer(self.buf.data, dtype, count, start)

    def bytes(self, slot, what=None):
        """A byte vector as a memoryview (empty when absent)."""
        start, count = self._vector(slot, 1, what or f"{self.what} bytes {slot}")
        return self.buf.data[0:0] if start is None else self.buf.data[start:start + count]

    def string(self, slot, default="", max_bytes=None):
        """A string field, cut to its first ``max_bytes`` bytes when given (many tables may share one
        long string: decoding it whole for each would multiply it)."""
        start, count = self._vector(slot, 1, f"{self.what} string {slot}")
        if start is None:
            return default
        count = count if max_bytes is None else min(count, max_bytes)
        return bytes(self.buf.data[start:start + count]).decode("utf-8", errors="replace")

    def tables(self, slot, what=None, limit=None):
        """The vector of tables in ``slot`` (empty when absent), as a sequence that decodes each table
        when it is indexed. More than ``limit`` tables is refused before any is decoded."""
        what = what or f"{self.what}.{slot}"
        start, count = self._vector(slot, 4, what)
        if limit is not None and count > limit:
            self.buf.fail(f"{what} has {count} entries; at most {limit} are allowed")
        return Tables(self.buf, start, count, what)


class Tables:
    """A vector of tables, decoded lazily: a vector of a million references to one table costs 4 MB of file
    but would cost gigabytes as a list of Table objects."""

    def __init__(self, buf, start, count, what):
        self.buf, self.start, self.count, self.what = buf, start, count, what

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        if not 0 <= i < self.count:
            raise IndexError(i)
        element = self.start + 4 * i
        return Table(self.buf, element + self.buf.scalar(element, "I"), f"{self.what}[{i}]")
