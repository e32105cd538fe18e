"""safetensors, read and written by tinynet itself (no dependency).

Layout: an 8-byte little-endian header length, a JSON header mapping tensor names to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the end of the header),
an optional ``"__metadata__"`` of string -> string, then the raw little-endian tensor bytes.

Reading copies the tensor bytes into memory (one read of the file, no memory map: a file truncated
after loading cannot fault the next forward) and gives aligned, writable views of that copy. Every
offset, size and dtype in the header is checked against the file before any array is made.
"""
import json
import os
import secrets
import struct

import numpy as np

from tinynet.errors import WeightsError

DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": None,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
NAMES = {np.dtype(t): n for n, t in DTYPES.items() if t is not None}
MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_DIMS = 32  # NumPy 1.x's limit; MobileNet tensors have at most 4
HEADER_ALIGN = 64  # pad the header with spaces so tensor data starts 64-byte aligned


def read(path):
    """Return ``(tensors, metadata)`` for the safetensors file at ``path``."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise WeightsError(f"{path}: not a safetensors file ({size} bytes, too short for a header)")
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > min(size - 8, MAX_HEADER_BYTES):
            raise WeightsError(f"{path}: safetensors header claims {header_len} bytes but the file has {size - 8}")
        try:
            header = json.loads(f.read(header_len))
        except (ValueError, RecursionError) as e:  # bad UTF-8 or JSON, a 5000-digit number, absurd nesting
            raise WeightsError(f"{path}: safetensors header is not valid JSON ({str(e)[:100]})") from None
        if not isinstance(header, dict):
            raise WeightsError(f"{path}: safetensors header is not a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise WeightsError(f"{path}: safetensors __metadata__ must map strings to strings")
        data_start = 8 + header_len
        entries = _check_entries(path, header, size - data_start)
        # Read, not memory-mapped: a mapped file truncated or rewritten after the load would make the next
        # forward fault (SIGBUS) on the missing pages, and the tensors would change under the model.
        needed = max((end for _, _, _, end in entries.values()), default=0)  # bytes past the last tensor stay unread
        data = np.empty(needed, np.uint8)  # aligned (NumPy's allocator), writable
        f.seek(data_start)
        if f.readinto(memoryview(data)) != data.size:
            raise WeightsError(f"{path}: safetensors file changed while it was read")
    tensors = {}
    for name, (dtype, shape, begin, end) in entries.items():
        if end == begin:
            tensors[name] = np.empty(shape, dtype)
        else:
            array = data[begin:end].view(dtype).reshape(shape)
            # An offset that is not a multiple of the item size gives a misaligned view: copy it out.
            tensors[name] = array if array.flags.aligned else array.copy()
    return tensors, metadata


def _check_entries(path, header, data_len):
    entries = {}
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise WeightsError(f"{path}: tensor {name!r} lacks dtype, shape or data_offsets")
        dtype_name, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype_name, str) or DTYPES.get(dtype_name) is None:
            raise WeightsError(f"{path}: tensor {name!r} has unsupported dtype {str(dtype_name)[:40]!r}")
        if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise WeightsError(f"{path}: tensor {name!r} has an invalid shape {str(shape)[:80]}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise WeightsError(f"{path}: tensor {name!r} has invalid data_offsets {str(offsets)[:80]}")
        begin, end = offsets
        dtype = np.dtype(DTYPES[dtype_name]).newbyteorder("<")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if not 0 <= begin <= end <= data_len:
            raise WeightsError(f"{path}: tensor {name!r} lies outside the file (bytes {begin}..{end} of {data_len})")
        if end - begin != nbytes:
            raise WeightsError(f"{path}: tensor {name!r} has {end - begin} bytes but shape {str(shape)[:80]} of {dtype_name} needs {nbytes}")
        if nbytes == 0:
            try:
                np.empty(shape, dtype)  # NumPy refuses dimensions whose product overflows, even beside a zero
            except (ValueError, OverflowError):
                raise WeightsError(f"{path}: tensor {name!r} has an invalid shape {str(shape)[:80]}") from None
        entries[name] = (dtype, tuple(shape), begin, end)
    spans = sorted((b, e, n) for n, (_, _, b, e) in entries.items() if e > b)
    for (b0, e0, n0), (b1, _, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise WeightsError(f"{path}: tensors {n0!r} and {n1!r} overlap")
    return entries


def write(path, tensors, metadata=None):
    """Write ``tensors`` (name -> array) and string ``metadata`` to ``path`` atomically: into a hidden temporary
    file beside it, unique to this call, renamed over ``path`` only once complete."""
    header, offset, arrays = {}, 0, []
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        if array.dtype not in NAMES:
            raise ValueError(f"tensor {name!r}: dtype {array.dtype} cannot be stored in safetensors")
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        header[name] = {"dtype": NAMES[array.dtype.newbyteorder("=")], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
        arrays.append(array)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-(8 + len(blob)) % HEADER_ALIGN)
    folder, name = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(tmp, "xb") as f:  # a new file with the usual permissions (mkstemp's would be owner-only)
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for array in arrays:
                f.write(array.tobytes())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
