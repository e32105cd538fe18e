"""Small weight files of every format tinynet reads, written here without torch, TensorFlow or Keras,
plus hostile variants, and a way to load files in a separate interpreter (so that a crash in C code,
a hang or a runaway allocation fails the test instead of killing pytest).

    torch_checkpoint(state)      torch.save's zip format (data.pkl + data/<key>), written opcode by opcode
    torchvision_state(classes)   a torchvision MobileNetV3-Small (width 0.5) state dict, seeded weights
    keras_h5(path)               a Keras MobileNet (width 0.25) .h5 file (needs h5py)
    tflite_bytes()               a MobileNet V1 (width 0.25) .tflite graph
    run_isolated(code, *args)    Python code in a child interpreter with a memory limit and a timeout
    load_outcomes(paths)         tinynet.load each path in such a child: "model", "error: <message>", ...
"""
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from conftest import REPO
from synthetic_weights import state_dict

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STORAGES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
            np.dtype(np.int64): "LongStorage"}


def op(value):
    """The pickle opcodes (protocol 2) that push ``value``: an int, a str, or a tuple or list of them."""
    return pickle.dumps(value, protocol=2)[2:-1]


def tensor_opcodes(key, numel, offset, shape, stride, storage="FloatStorage"):
    """Opcodes that rebuild one tensor the way torch.save writes it: _rebuild_tensor_v2(persistent storage
    id, offset, shape, stride, requires_grad, backward hooks). ``shape`` may be raw opcodes (bytes)."""
    shape = shape if isinstance(shape, bytes) else op(tuple(shape))
    return b"".join([b"ctorch._utils\n_rebuild_tensor_v2\n(", b"(", op("storage"), f"ctorch\n{storage}\n".encode(),
                     op(key), op("cpu"), op(numel), b"tQ", op(offset), shape, op(tuple(stride)),
                     b"\x89ccollections\nOrderedDict\n)RtR"])


def checkpoint_zip(pickled_entries, blobs, prefix="archive", compression=zipfile.ZIP_STORED):
    """A torch zip: ``pickled_entries`` (name -> opcodes for the value) in one dict, ``blobs`` key -> bytes
    (stored uncompressed, as torch.save does, unless ``compression`` says otherwise)."""
    pkl = b"\x80\x02}(" + b"".join(op(name) + value for name, value in pickled_entries.items()) + b"u."
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        for key, blob in blobs.items():
            z.writestr(f"{prefix}/data/{key}", blob, compress_type=compression)
    return out.getvalue()


def torch_checkpoint(state):
    """torch.save(state) for a dict of NumPy arrays: one storage per tensor, contiguous strides."""
    entries, blobs = {}, {}
    for i, (name, array) in enumerate(state.items()):
        array = np.require(array, requirements="C")  # (np.ascontiguousarray makes 0-d arrays 1-d)
        stride = tuple(s // array.itemsize for s in array.strides)
        entries[name] = tensor_opcodes(str(i), array.size, 0, array.shape, stride, STORAGES[array.dtype])
        blobs[str(i)] = array.astype(array.dtype.newbyteorder("<")).tobytes()
    return checkpoint_zip(entries, blobs)


def torchvision_state(classes=4, seed=0):
    """torchvision mobilenet_v3_small(width_mult=0.5) tensor names and shapes (from the parity fixture),
    seeded weights, and a classifier cut to ``classes`` outputs to keep the file small (1.4 MB)."""
    tensors = json.loads((FIXTURES / "width_tv_mobilenet_v3_small_050_odd.json").read_text())["tensors"]
    state = state_dict(tensors, seed)
    state["classifier.3.weight"] = state["classifier.3.weight"][:classes].copy()
    state["classifier.3.bias"] = state["classifier.3.bias"][:classes].copy()
    return state


def keras_h5(path, seed=0, classes=7):
    """A Keras MobileNet (width 0.25) weights file at ``path``, written with h5py in Keras' layout."""
    from test_keras_h5 import keras_v1_layers, write_keras_h5

    write_keras_h5(path, keras_v1_layers(np.random.default_rng(seed), classes), epsilon=1e-3, size=224)
    return path


def tflite_bytes(seed=0):
    """A MobileNet V1 (width 0.25, 32x32 input, 4 classes) TFLite graph with uint8 weights."""
    from test_tflite import v1_graph

    return v1_graph("per-tensor", size=32, classes=4, seed=seed)[0]


MEMORY_LIMIT = 3 << 30  # address space of a child interpreter: Python, NumPy and Numba take ~0.5 GB of it

ISOLATED = """
import sys
try:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
except ImportError:  # Windows: the timeout still applies
    pass
sys.argv = sys.argv[1:]
"""


def run_isolated(code, *args, memory=MEMORY_LIMIT, timeout=300):
    """Run ``code`` (with ``sys.argv[1:] == args``) in a fresh interpreter that imports tinynet from this
    checkout and cannot use more than ``memory`` bytes of address space: a runaway allocation becomes a
    MemoryError there, a hang a subprocess.TimeoutExpired here. Returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-c", ISOLATED.format(memory=memory) + code, "-", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


LOADER = """
import json, sys
import tinynet
for path in sys.argv[1:]:
    try:
        model = tinynet.load(path)
        outcome = "model"
    except tinynet.TinynetError as e:
        outcome = "error: " + str(e)
    except BaseException as e:
        outcome = f"other: {type(e).__name__}: {e}"
    print(json.dumps(outcome), flush=True)
"""


def load_outcomes(paths, timeout=300):
    """``tinynet.load`` of each path, in one isolated child (``run_isolated``): a list of "model", "error:
    <message>" (a TinynetError), "other: <type>: <message>" (any other exception) or "crashed (exit status
    N)" for a file that killed the interpreter (the files after it are loaded again in a fresh one)."""
    outcomes, paths = [], [str(p) for p in paths]
    while len(outcomes) < len(paths):
        done = run_isolated(LOADER, *paths[len(outcomes):], timeout=timeout)
        outcomes += [json.loads(line) for line in done.stdout.splitlines()]
        if done.returncode != 0 and len(outcomes) < len(paths):
            outcomes.append(f"crashed (exit status {done.returncode}): {done.stderr.strip()[-300:]}")
    return outcomes
