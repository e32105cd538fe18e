"""Read ``torch.save`` checkpoints (the zip format, torch >= 1.6) without importing torch.

The archive holds ``<prefix>/data.pkl``, a pickle of the state dict, and one raw little-endian
blob per storage in ``<prefix>/data/<key>``. The pickle is read by an unpickler that resolves
only the handful of globals a state dict of tensors needs, each mapped to a harmless local
function; any other global (``os.system``, ``builtins.eval``, ...) is refused before it can run.
"""
import io
import pickle
import zipfile
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


class _Storage:
    """A reference to one storage blob, resolved lazily by the tensor that uses it."""

    def __init__(self, dtype, key, numel):
        self.dtype, self.key, self.numel = dtype, key, numel


def _rebuild_tensor(storage, offset, shape, stride, *_ignored):
    """Stand-in for torch._utils._rebuild_tensor_v2: a lazy (storage, view) description."""
    if not isinstance(storage, _Storage):
        raise WeightsError("tensor without a storage in checkpoint")
    for v in (offset, *shape, *stride):
        if not isinstance(v, int) or v < 0:
            raise WeightsError(f"invalid tensor geometry in checkpoint: offset {offset}, shape {shape}, stride {stride}")
    return ("tensor", storage, offset, tuple(shape), tuple(stride))


def _rebuild_parameter(data, *_ignored):
    """Stand-in for torch._utils._rebuild_parameter: a Parameter is just its tensor here."""
    return data


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise WeightsError(f"checkpoint refers to {module}.{name}, which a plain state dict never does; "
                               "refusing to load it (it could run code)") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise WeightsError(f"unsupported persistent id in checkpoint: {str(pid)[:80]}")
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
            raise WeightsError(f"{path}: unreadable pickle in checkpoint ({type(e).__name__}: {e})") from None
        state = _find_state_dict(obj)
        if state is None:
            raise WeightsError(f"{path}: checkpoint holds no state dict of tensors")
        blobs = {}
        return {name: _materialise(path, archive, prefix, blobs, t) for name, t in state.items()}


def _check_member_size(path, archive, info):
    """Refuse members whose declared size the archive cannot hold (torch stores members uncompressed)."""
    archive_size = archive.fp.seek(0, 2)
    ratio = 1 if info.compress_type == zipfile.ZIP_STORED else MAX_COMPRESSION_RATIO
    if info.compress_size > archive_size or info.file_size > ratio * max(info.compress_size, 1):
        raise WeightsError(f"{path}: archive member {info.filename} declares {info.file_size} bytes, "
                           f"more than its {info.compress_size} stored bytes can hold")


def _find_state_dict(obj):
    def is_state(d):
        return isinstance(d, dict) and d and all(isinstance(k, str) and isinstance(v, tuple) and v[:1] == ("tensor",)
                                                  for k, v in d.items())

    if is_state(obj):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "state_dict_ema"):
            if is_state(obj.get(key)):
                return obj[key]
    return None


def _materialise(path, archive, prefix, blobs, tensor):
    _, storage, offset, shape, stride = tensor
    if storage.key not in blobs:
        name = f"{prefix}data/{storage.key}"
        try:
            info = archive.getinfo(name)
        except KeyError:
            raise WeightsError(f"{path}: storage {storage.key} is missing from the archive") from None
        itemsize = np.dtype(storage.dtype).itemsize
        _check_member_size(path, archive, info)
        if info.file_size != storage.numel * itemsize:
            raise WeightsError(f"{path}: storage {storage.key} has {info.file_size} bytes, expected {storage.numel * itemsize}")
        try:
            raw = archive.read(info)
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            raise WeightsError(f"{path}: storage {storage.key} is corrupt ({e})") from None
        blobs[storage.key] = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
    flat = blobs[storage.key]
    extent = offset + sum((d - 1) * s for d, s in zip(shape, stride)) + 1 if all(shape) else offset
    if extent > flat.size:
        raise WeightsError(f"{path}: a tensor of shape {shape} reads past the end of storage {storage.key}")
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=shape, strides=[s * flat.itemsize for s in stride])
    return np.array(view)  # own the memory, contiguous
