"""Read ``torch.save`` checkpoints (the zip format, torch >= 1.6) without importing torch.

The archive holds ``<prefix>/data.pkl``, a pickle of the state dict, and one raw little-endian
blob per storage in ``<prefix>/data/<key>``. The pickle is read by an unpickler that resolves
only the handful of globals a state dict of tensors needs, each mapped to a harmless local
function; any other global (``os.system``, ``builtins.eval``, ...) is refused before it can run.
"""
import io
import math
import pickle
import pickletools
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
MAX_PICKLE_BYTES = 16 * 1024 * 1024  # a MobileNet's data.pkl takes about 30 KB
MAX_PICKLE_OPCODES = 1_000_000  # each may build an object of a few hundred bytes; a state dict needs ~30 per tensor
MAX_COMPRESSION_RATIO = 1000  # deflate tops out near 1032:1; anything above is a zip bomb
MAX_LOADED_BYTES = 1 << 31  # storages read plus tensors copied out of them; a MobileNet checkpoint needs < 100 MB
# What one archive may make the reader hold: its storages, plus 8 bytes for each element of a tensor copied out
# of them (what the loader turns it into, float64). A genuine float32 checkpoint needs 3 times its size, float16
# 5 times; deflated members, one storage shared by many tensors, or uint8 storages would need more.
LOADED_PER_ARCHIVE_BYTE = 8
LOADED_MIN_BYTES = 64 << 20
MAX_DIMS = 8  # state-dict tensors have at most 4
MAX_EXTENT = 1 << 48  # bound on offsets, sizes and strides (elements)
# How zipfile reports a damaged or unsupported archive (seen fuzzing checkpoints): bad or truncated headers,
# "zip file version 12.7", unknown compression methods, encrypted members, corrupt deflate streams.
ZIP_ERRORS = (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError, zlib.error,
              struct.error)


class _Frozen:
    """Objects a pickle can reach but never change: a BUILD opcode (or any setattr) on one is refused."""
    __slots__ = ()

    def __setattr__(self, name, value):
        raise WeightsError(f"checkpoint tries to modify a {type(self).__name__.strip('_')} object")

    def _init(self, **fields):
        for name, value in fields.items():
            object.__setattr__(self, name, value)


class _Storage(_Frozen):
    """A reference to one storage blob, resolved lazily by the tensor that uses it. Only persistent_load makes
    these: the pickle cannot name this class."""
    __slots__ = ("dtype", "key", "numel")

    def __init__(self, dtype, key, numel):
        self._init(dtype=dtype, key=key, numel=numel)


class _TensorView(_Frozen):
    """A checked (storage, offset, shape, stride) view, made only by _rebuild_tensor: a state-dict value that is
    not one of these is refused, however it looks (a pickle can build any tuple of ints and strings)."""
    __slots__ = ("storage", "offset", "shape", "stride")

    def __init__(self, storage, offset, shape, stride):
        self._init(storage=storage, offset=offset, shape=shape, stride=stride)


def _rebuild_tensor(storage, offset, shape, stride, *_ignored):
    """Stand-in for torch._utils._rebuild_tensor_v2: a lazy, checked view of a storage."""
    if not isinstance(storage, _Storage):
        raise WeightsError("tensor without a storage in checkpoint")
    # Check the types before formatting anything: a hostile pickle can make a "shape" a list nested so
    # deeply (through shared references) that printing it would never finish.
    geometry = (offset, shape, stride)
    if not (isinstance(shape, tuple) and isinstance(stride, tuple) and len(shape) == len(stride) <= MAX_DIMS
            and all(isinstance(v, int) and 0 <= v < MAX_EXTENT for v in (offset, *shape, *stride))):
        described = ", ".join(map(_describe, geometry))
        raise WeightsError(f"invalid tensor geometry in checkpoint (offset, shape, stride): {described}")
    return _TensorView(storage, offset, shape, stride)


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

    def __init__(self, dtype):
        self._init(dtype=dtype)


class _Function(_Frozen):
    """A stand-in function as the pickle sees it: callable, with no attributes to set (a plain function's
    __defaults__ or __dict__ could be changed by BUILD, for every later load)."""
    __slots__ = ("function",)

    def __init__(self, function):
        self._init(function=function)

    def __call__(self, *args):
        return self.function(*args)


def _allowed_globals():
    """The globals a state dict needs, as new objects for each load: nothing one file does reaches the next."""
    return {
        ("collections", "OrderedDict"): OrderedDict,  # a built-in type: immutable
        ("torch._utils", "_rebuild_tensor_v2"): _Function(_rebuild_tensor),
        ("torch._utils", "_rebuild_parameter"): _Function(_rebuild_parameter),
        **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
    }


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file)
        self.allowed = _allowed_globals()

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise WeightsError(f"checkpoint refers to {module}.{name}, which a plain state dict never does; "
                               "refusing to load it (it could run code)") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise WeightsError(f"unsupported persistent id in checkpoint (a {type(pid).__name__})")
        _, storage_type, key, _location, numel = pid
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise WeightsError("invalid storage reference in checkpoint")
        return _Storage(storage_type.dtype, key, numel)


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
            data = archive.read(info)
            _check_memo_indices(data)
            obj = _RestrictedUnpickler(io.BytesIO(data)).load()
        except WeightsError as e:
            raise WeightsError(f"{path}: {e}") from None
        except Exception as e:  # a malformed pickle can raise almost anything
            raise WeightsError(f"{path}: unreadable pickle in checkpoint ({type(e).__name__}: {_reason(e)})") from None
        state = _find_state_dict(obj)
        if state is None:
            raise WeightsError(f"{path}: checkpoint holds no state dict of tensors")
        archive_bytes = archive.fp.seek(0, 2)
        storages = _Storages(path, archive, prefix,
                             min(MAX_LOADED_BYTES, LOADED_MIN_BYTES + LOADED_PER_ARCHIVE_BYTE * archive_bytes))
        return {name: storages.tensor(t) for name, t in state.items()}


def _reason(error):
    """An exception's message as one short line: a pickle's error can quote bytes of the file, newlines included."""
    return " ".join(str(error).split())[:200] or type(error).__name__


def _check_memo_indices(data):
    """Refuse a pickle whose PUT/GET opcodes name memo slots beyond its own opcode count: the C unpickler grows
    its memo table to the largest index it sees, so one LONG_BINPUT of 2**31 would allocate gigabytes. Refuse
    more than MAX_PICKLE_OPCODES opcodes too: each can build an object (an empty dict is 64 bytes from one
    byte of pickle), so their number bounds the memory unpickling takes."""
    stored = 0  # memo entries so far: a pickler numbers them 0, 1, 2...; the slack allows other numberings
    try:
        for count, (opcode, argument, _position) in enumerate(pickletools.genops(data)):
            if count >= MAX_PICKLE_OPCODES:
                raise WeightsError(f"pickle has more than {MAX_PICKLE_OPCODES} opcodes; a state dict needs far fewer")
            if "PUT" in opcode.name or "GET" in opcode.name:
                if not isinstance(argument, int) or not 0 <= argument <= 2 * stored + 1024:
                    raise WeightsError(f"pickle memo index {_describe(argument)} out of range")
            stored += "PUT" in opcode.name or opcode.name == "MEMOIZE"
    except (ValueError, struct.error, UnicodeDecodeError) as e:  # malformed opcodes: load() would refuse them too
        raise WeightsError(f"malformed pickle ({_reason(e)})") from None


def _check_member_size(path, archive, info):
    """Refuse members whose declared size the archive cannot hold (torch stores members uncompressed), and
    compression methods that zipfile inflates without a bound on each step's output (bzip2, LZMA): torch.save
    never uses them."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise WeightsError(f"{path}: archive member {info.filename} uses compression method {info.compress_type}, "
                           "which torch.save never writes")
    archive_size = archive.fp.seek(0, 2)
    ratio = 1 if info.compress_type == zipfile.ZIP_STORED else MAX_COMPRESSION_RATIO
    if info.compress_size > archive_size or info.file_size > ratio * max(info.compress_size, 1):
        raise WeightsError(f"{path}: archive member {info.filename} declares {info.file_size} bytes, "
                           f"more than its {info.compress_size} stored bytes can hold")


def _find_state_dict(obj):
    def is_state(d):
        return isinstance(d, dict) and d and all(isinstance(k, str) and isinstance(v, _TensorView)
                                                  for k, v in d.items())

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

    def __init__(self, path, archive, prefix, budget):
        self.path, self.archive, self.prefix, self.budget = path, archive, prefix, budget
        self.blobs, self.loaded = {}, 0

    def _charge(self, nbytes):
        """Count ``nbytes`` against the budget, before they are allocated."""
        self.loaded += nbytes
        if self.loaded > self.budget:
            raise WeightsError(f"{self.path}: the checkpoint's tensors add up to more than {self.budget} bytes "
                               f"({LOADED_PER_ARCHIVE_BYTE} times its size, as float64); a checkpoint needs 3 to 5")

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

    def tensor(self, view):
        """A tensor described by _rebuild_tensor, as its own contiguous array. The view must lie inside its
        storage (checked again here, next to as_strided, whatever made it)."""
        storage, offset, shape, stride = view.storage, view.offset, view.shape, view.stride
        if not (isinstance(view, _TensorView) and isinstance(storage, _Storage)
                and all(type(v) is int and 0 <= v < MAX_EXTENT for v in (offset, *shape, *stride))
                and len(shape) == len(stride) <= MAX_DIMS):
            raise WeightsError(f"{self.path}: invalid tensor view in checkpoint")
        flat = self._blob(storage)
        extent = offset + sum((d - 1) * s for d, s in zip(shape, stride)) + 1 if all(shape) else offset
        if extent > flat.size:
            raise WeightsError(f"{self.path}: a tensor of shape {shape} reads past the end of storage {storage.key}")
        count = math.prod(shape)
        if count > flat.size:  # only a broadcast view (stride 0) can; torch.save never writes one in a state dict
            raise WeightsError(f"{self.path}: a tensor of shape {shape} has more elements than its storage {storage.key}")
        self._charge(count * 8)  # the loader converts every tensor to float64
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=shape, strides=[s * flat.itemsize for s in stride])
        return np.array(view)  # own the memory, contiguous
