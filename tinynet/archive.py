"""One weight file out of a .tar or .tar.gz archive, with every allocation and write bounded.

Python's tarfile is not used on files a user imports: it reads a GNU long name or a pax header in one
read of whatever size the header declares (a few hundred bytes of bzip2 become gigabytes inside
``tarfile.is_tarfile``), tries every compression it knows, and writes a GNU sparse member out at its
declared size. This reader parses ustar headers itself, from a stream it reads in bounded chunks:

- compression: none or gzip (what model hubs publish); any other file is not an archive here
- the uncompressed stream may be at most ``budget(archive size)`` bytes, checked before each
  member's data is read or skipped, so a gzip bomb stops early
- members: regular files and folders are read; GNU long names and pax headers are read only up to
  64 KiB; links, devices and FIFOs are skipped (never created); sparse, multi-volume and unknown
  member types are refused
"""
import gzip
import zlib
from pathlib import PurePosixPath

from tinynet.errors import WeightsError

BLOCK = 512
CHUNK = 1 << 20
MAX_HEADER_DATA = 64 * 1024  # a long name or pax header: paths are at most a few KiB
MAX_RATIO = 64  # weights barely compress; a larger expansion is a bomb
MIN_BUDGET = 16 << 20  # small archives of tiny members: tar's 512-byte blocks alone can be most of it
MAX_BUDGET = 2 << 30  # what tinynet.formats.tflite reads at most
REGULAR, FOLDER = (b"0", b"\0", b"7"), b"5"
LONG_NAME, LONG_LINK, PAX, GLOBAL_PAX = b"L", b"K", b"x", b"g"
SKIPPED = {b"1": "a hard link", b"2": "a symbolic link", b"3": "a character device", b"4": "a block device",
           b"6": "a FIFO"}
REFUSED = {b"S": "a GNU sparse file", b"M": "a multi-volume continuation", b"V": "a volume label",
           b"D": "a GNU dump directory", b"N": "an old GNU long name"}


def budget(archive_bytes):
    """Bytes of uncompressed tar stream an archive of ``archive_bytes`` may expand to."""
    return min(MAX_BUDGET, max(MIN_BUDGET, MAX_RATIO * archive_bytes))


def is_archive(path):
    """Whether ``path`` is a tar archive (plain or gzip): its first header block is a valid tar header.
    Reads at most a few KiB, whatever the file holds."""
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(wbits=31).decompress(head, BLOCK)
        except zlib.error:
            return False
    return len(head) >= BLOCK and _valid_checksum(head[:BLOCK])


def extract(path, wanted, out):
    """Copy the one regular member that ``wanted(member name)`` accepts into the file ``out``.

    Returns the names of all accepted members (the caller refuses anything but exactly one; only the
    first is copied). Raises WeightsError for a damaged, hostile or over-budget archive."""
    path_size = path.stat().st_size
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = _Stream(gzip.GzipFile(fileobj=raw) if compressed else raw, budget(path_size), path.name)
            return _walk(stream, wanted, out)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise WeightsError(f"{path.name}: damaged archive ({' '.join(str(e).split())[:200]})") from None


def _walk(stream, wanted, out):
    found, long_name, pax = [], None, {}
    while True:
        header = stream.read(BLOCK)
        if len(header) < BLOCK or header == bytes(BLOCK):
            return found  # end of archive (two zero blocks, or tar's tolerated early end)
        if not _valid_checksum(header):
            stream.fail("a member header has a bad checksum")
        kind, size = header[156:157], _number(header[124:136], stream)
        if kind in (LONG_NAME, LONG_LINK, PAX, GLOBAL_PAX):
            if size > MAX_HEADER_DATA:
                stream.fail(f"a long name or pax header of {size} bytes (at most {MAX_HEADER_DATA})")
            data = stream.read_member(size)
            if kind == LONG_NAME:
                long_name = data.split(b"\0", 1)[0].decode("utf-8", "replace")
            elif kind == PAX:
                pax = _pax_records(data, stream)
            continue
        name = pax.get("path") or long_name or _name(header)
        size = int(pax["size"]) if "size" in pax and pax["size"].isdigit() else size
        long_name, pax = None, {}
        if kind in REFUSED or not (kind in REGULAR or kind == FOLDER or kind in SKIPPED):
            what = REFUSED.get(kind, f"of unknown type {kind!r}")
            stream.fail(f"member {_printable(name)} is {what}; a weight archive holds files and folders")
        if kind in REGULAR and wanted(name):
            found.append(name)
            if len(found) == 1:
                stream.copy_member(size, out)
                continue
        stream.skip_member(size)


class _Stream:
    """The uncompressed tar stream, read in chunks of at most CHUNK bytes, at most ``limit`` in all."""

    def __init__(self, fileobj, limit, what):
        self.fileobj, self.limit, self.what, self.used = fileobj, limit, what, 0

    def fail(self, message):
        raise WeightsError(f"{self.what}: {message}")

    def _reserve(self, nbytes):
        if self.used + nbytes > self.limit:
            self.fail(f"the archive expands to more than {self.limit} bytes (at most {MAX_RATIO} times its size)")
        self.used += nbytes

    def read(self, nbytes):
        self._reserve(nbytes)
        return self.fileobj.read(nbytes)

    def _chunks(self, size):
        """The member's ``size`` bytes of data in chunks, then its padding to a whole block."""
        padded = -(-size // BLOCK) * BLOCK
        self._reserve(padded)  # before reading any of it: a bomb stops here
        left = size
        while left:
            chunk = self.fileobj.read(min(left, CHUNK))
            if not chunk:
                self.fail("the archive ends inside a member")
            left -= len(chunk)
            yield chunk
        self.fileobj.read(padded - size)

    def read_member(self, size):
        return b"".join(self._chunks(size))

    def skip_member(self, size):
        for _ in self._chunks(size):
            pass

    def copy_member(self, size, out):
        with open(out, "wb") as f:
            for chunk in self._chunks(size):
                f.write(chunk)


def _number(field, stream):
    """A header's octal number (GNU base-256 numbers, for members over 8 GB, are over any budget anyway)."""
    if field[:1] and field[0] & 0x80:
        stream.fail("a member is larger than 8 GB")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        stream.fail(f"a member header holds the size {text[:20]!r}")


def _valid_checksum(header):
    try:
        stored = int(header[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(header[:148]) + 8 * 32 + sum(header[156:])
    signed = unsigned - 2 * sum(b for b in header[:148] + header[156:] if b > 127)
    return stored in (unsigned, signed)


def _name(header):
    name = header[:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\0":  # POSIX: a path prefix (GNU headers use these bytes for other fields)
        prefix = header[345:500].split(b"\0", 1)[0]
        name = prefix + b"/" + name if prefix else name
    return name.decode("utf-8", "replace")


def _pax_records(data, stream):
    """``{key: value}`` of a pax extended header: records "<length> <key>=<value>\\n"."""
    records, pos = {}, 0
    while pos < len(data) and data[pos:pos + 1] != b"\0":
        length = data[pos:pos + 20].partition(b" ")[0]
        if not length.isdigit() or int(length) <= len(length) + 1 or pos + int(length) > len(data):
            stream.fail("a pax header is malformed")
        key, _, value = data[pos + len(length) + 1:pos + int(length) - 1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        pos += int(length)
    return records


def _printable(name):
    return repr(name[:200])


def base_name(name):
    """The last component of a member's path: the only part of it tinynet uses on disk."""
    return PurePosixPath(name).name
