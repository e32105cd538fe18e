"""Read ``torch.save`` checkpoints (the zip format, torch >= 1.6) without importing torch.

The archive holds ``<prefix>/data.pkl``, a pickle of the state dict, and one raw little-endian
blob per storage in ``<prefix>/data/<key>``. The pickle is read by an unpickler that resolves
only the handful of globals a state dict of tensors needs, each mapped to a harmless local
function; any other global (``os.system``, ``builtins.eval``, ...) is refused before it can run.
"""
import io
import math
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from tinynet.errors import WeightsError

STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
MAX_PICKLE_BYTES = 64 * 1024 * 1024
MAX_COMPRESSION_RATIO = 1000  # deflate tops out near 1032:1; anything above is a zip bomb
MAX_LOADED_BYTES = 1 << 31  # storages read plus tensors copied out of them; a MobileNet checkpoint needs < 100 MB
MAX_DIMS = 8  # state-dict tensors have at most 4
MAX_EXTENT = 1 << 48  # bound on offsets, sizes and strides (elements)
# How zipfile reports a damaged or unsupported archive (seen fuzzing checkpoints): bad or truncated headers,
# "zip file version 12.7", unknown compression methods, encrypted members, corrupt deflate streams.
ZIP_ERRORS = (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError, zlib.error,
              struct.error)


class _Frozen:
    """Base of every object a pickle can reach: a BUILD opcode (which sets attributes) on one of them is
    refused, so a file cannot change how later objects of this load, or later loads, behave."""
    __slots__ = ()

    def __init__(self, **fields):
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise WeightsError("checkpoint tries to modify a tinynet object (a BUILD on a global or tensor)")

    __delattr__ = __setattr__


class _Storage(_Frozen):
    """A reference to one storage blob, resolved lazily by the tensor that uses it."""
    __slots__ = ("dtype", "key", "numel")


class _TensorRef(_Frozen):
    """A (storage, view) description. Only _rebuild_tensor creates one, after checking its geometry: a pickle
    cannot name this class, so a tuple or object built literally by a file is never taken for a tensor."""
    __slots__ = ("storage", "offset", "shape", "stride")


def _rebuild_tensor(storage, offset, shape, stride, *_ignored):
    """Stand-in for torch._utils._rebuild_tensor_v2: a lazy (storage, view) description."""
    if not isinstance(storage, _Storage):
        raise WeightsError("tensor without a storage in checkpoint")
    # Check the types before formatting anything: a hostile pickle can make a "shape" a list nested so
    # deeply (through shared references) that printing it would never finish.
    geometry = (offset, shape, stride)
    if not (isinstance(shape, tuple) and isinstance(stride, tuple) and len(shape) == len(stride) <= MAX_DIMS
            and all(isinstance(v, int) and 0 <= v < MAX_EXTENT for v in (offset, *shape, *stride))):
        described = ", ".join(map(_describe, geometry))
        raise WeightsError(f"invalid tensor geometry in checkpoint (offset, shape, stride): {described}")
    return _TensorRef(storage=storage, offset=offset, shape=shape, stride=stride)


def _describe(value):
    """A few words for a number or a tuple of numbers from a pickle, never printing an unbounded value."""
    def small(v):
        return isinstance(v, int) and v.bit_length() < 64

    if small(value):
        return str(value)
    if isinstance(value, int):
        return "a huge number"
    if isinstance(value, tuple) and len(value) <= 2 * MAX_DIMS and all(map(small, value)):
        return str(value)
    return f"a {type(value).__name__}" + (f" of {len(value)} items" if isinstance(value, tuple) else "")


def _rebuild_parameter(data, *_ignored):
    """Stand-in for torch._utils._rebuild_parameter: a Parameter is just its tensor here."""
    return data


class _StorageType(_Frozen):
    __slots__ = ("dtype",)


class _Function(_Frozen):
    """A frozen wrapper around one allowed function: a plain function's attributes (__defaults__,
    __kwdefaults__, __dict__) could otherwise be rewritten by a BUILD opcode for the rest of the process."""
    __slots__ = ("function",)

    def __call__(self, *args):
        return self.function(*args)


# Each load gets fresh stand-ins (and they are frozen): nothing a file does reaches another load.
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): lambda: OrderedDict,  # a builtin type: its attributes cannot be set
    ("torch._utils", "_rebuild_tensor_v2"): lambda: _Function(function=_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): lambda: _Function(function=_rebuild_parameter),
    **{("torch", name): (lambda dtype=dtype: _StorageType(dtype=dtype)) for name, dtype in STORAGE_DTYPES.items()},
}
ALLOWED_DTYPES = frozenset(np.dtype(d) for d in STORAGE_DTYPES.values())


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            make = ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise WeightsError(f"checkpoint refers to {_describe_name(module)}.{_describe_name(name)}, which a plain "
                               "state dict never does; refusing to load it (it could run code)") from None
        return make()

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise WeightsError(f"unsupported persistent id in checkpoint (a {type(pid).__name__})")
        _, storage_type, key, _location, numel = pid
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise WeightsError("invalid storage reference in checkpoint")
        return _Storage(dtype=storage_type.dtype, key=key, numel=numel)


def _describe_name(name):
    """A global's module or name as printable text, short and on one line."""
    return repr(name)[1:-1][:80] if isinstance(name, str) else "?"


def read(path):
    """Return the checkpoint's tensors as ``{name: np.ndarray}`` (a state dict, possibly nested under
    "state_dict" or "model")."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise WeightsError(f"{path}: not a torch zip checkpoint (legacy pre-1.6 .pth files are not supported; "
                           "re-save with torch.save)") from None
    except ZIP_ERRORS as e:
        raise WeightsError(f"{path}: damaged zip archive ({_reason(e)})") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise WeightsError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        info = archive.getinfo(pickles[0])
        _check_member_size(path, archive, info)
        if info.file_size > MAX_PICKLE_BYTES:
            raise WeightsError(f"{path}: data.pkl declares {info.file_size} bytes, more than a state dict needs")
        try:
            obj = _RestrictedUnpickler(io.BytesIO(archive.read(info))).load()
        except WeightsError as e:
            raise WeightsError(f"{path}: {e}") from None
        except Exception as e:  # a malformed pickle can raise almost anything
            raise WeightsError(f"{path}: unreadable pickle in checkpoint ({type(e).__name__}: {_reason(e)})") from None
        state = _find_state_dict(obj)
        if state is None:
            raise WeightsError(f"{path}: checkpoint holds no state dict of tensors")
        storages = _Storages(path, archive, prefix)
        return {name: storages.tensor(t) for name, t in state.items()}


def _reason(error):
    """An exception's message as one short line: a pickle's error can quote bytes of the file, newlines included."""
    return " ".join(str(error).split())[:200] or type(error).__name__


def _check_member_size(path, archive, info):
    """Refuse members whose declared size the archive cannot hold (torch stores members uncompressed)."""
    archive_size = archive.fp.seek(0, 2)
    ratio = 1 if info.compress_type == zipfile.ZIP_STORED else MAX_COMPRESSION_RATIO
    if info.compress_size > archive_size or info.file_size > ratio * max(info.compress_size, 1):
        raise WeightsError(f"{path}: archive member {info.filename} declares {info.file_size} bytes, "
                           f"more than its {info.compress_size} stored bytes can hold")


def _find_state_dict(obj):
    def is_state(d):
        return isinstance(d, dict) and d and all(isinstance(k, str) and type(v) is _TensorRef for k, v in d.items())

    if is_state(obj):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "state_dict_ema"):
            if is_state(obj.get(key)):
                return obj[key]
    return None


class _Storages:
    """The archive's storage blobs, each read once, and the tensors viewed out of them. The bytes held
    are capped: many tensors sharing one storage, or deflated members, must not add up to gigabytes."""

    def __init__(self, path, archive, prefix):
        self.path, self.archive, self.prefix = path, archive, prefix
        self.blobs, self.loaded = {}, 0

    def _charge(self, nbytes):
        self.loaded += nbytes
        if self.loaded > MAX_LOADED_BYTES:
            raise WeightsError(f"{self.path}: the checkpoint's tensors add up to more than {MAX_LOADED_BYTES} bytes; "
                               "a MobileNet needs well under 100 MB")

    def _blob(self, storage):
        if storage.key not in self.blobs:
            try:
                info = self.archive.getinfo(f"{self.prefix}data/{storage.key}")
            except KeyError:
                raise WeightsError(f"{self.path}: storage {storage.key} is missing from the archive") from None
            itemsize = np.dtype(storage.dtype).itemsize
            _check_member_size(self.path, self.archive, info)
            if info.file_size != storage.numel * itemsize:
                raise WeightsError(f"{self.path}: storage {storage.key} has {info.file_size} bytes, "
                                   f"expected {storage.numel * itemsize}")
            self._charge(info.file_size)
            try:
                raw = self.archive.read(info)
            except ZIP_ERRORS as e:
                raise WeightsError(f"{self.path}: storage {storage.key} is corrupt ({_reason(e)})") from None
            self.blobs[storage.key] = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
        return self.blobs[storage.key]

    def tensor(self, description):
        """A tensor described by _rebuild_tensor, as its own contiguous array."""
        storage, offset, shape, stride = description.storage, description.offset, description.shape, description.stride
        # Checked again here, next to as_strided, whatever made the description: a view outside its storage
        # would read the process's memory.
        if not (type(storage) is _Storage and np.dtype(storage.dtype) in ALLOWED_DTYPES
                and type(shape) is tuple and type(stride) is tuple and len(shape) == len(stride) <= MAX_DIMS
                and all(type(v) is int and 0 <= v < MAX_EXTENT for v in (offset, *shape, *stride))):
            raise WeightsError(f"{self.path}: invalid tensor description in checkpoint")
        flat = self._blob(storage)
        extent = offset + sum((d - 1) * s for d, s in zip(shape, stride)) + 1 if all(shape) else offset
        if offset > flat.size or extent > flat.size:
            raise WeightsError(f"{self.path}: a tensor of shape {shape} reads past the end of storage {storage.key}")
        count = math.prod(shape)
        if count > flat.size:  # only a broadcast view (stride 0) can; torch.save never writes one in a state dict
            raise WeightsError(f"{self.path}: a tensor of shape {shape} has more elements than its storage {storage.key}")
        self._charge(count * flat.itemsize)
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=shape, strides=[s * flat.itemsize for s in stride])
        return np.array(view)  # own the memory, contiguous
