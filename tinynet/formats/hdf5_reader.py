"""Read the weights of a Keras .h5 file in a child process: ``python hdf5_reader.py FILE OUTDIR``.

libhdf5 is a large C library, and a damaged or hostile file can crash it, hang it or make it allocate
without bound. Fuzzing a Keras file found both of the first two with h5py 3.16 / HDF5 2.0: one
corrupt byte in an attribute's datatype message segfaults it, a global heap that claims 32 KB
instead of 4 KB makes reading an attribute loop forever. tinynet.formats.keras_h5 therefore runs this
script as a separate process with a memory limit and a timeout; whatever happens here, the caller's
process survives.

This file is run as a script, not imported: it needs only the standard library, NumPy and h5py
(importing the tinynet package would load Numba for nothing). It writes OUTDIR/index.json
({"names": [...], "model_config": str or null}) and OUTDIR/weights.npz (array "t<i>" for
names[i]), or exits with status BAD_FILE and one line on stderr saying what is wrong.

Keras 3 weights files (``model.weights.h5`` inside a ``.keras`` zip) have no layer_names: their
variables are ``layers/<layer>/vars/<i>`` (see _read_keras3).

Besides what libhdf5 itself checks, it refuses, before reading any data:
  - external links, external raw-data files and virtual datasets: a weight file must not make
    tinynet read other files on this machine;
  - filters other than deflate, shuffle and fletcher32 (libhdf5 would load any other filter as a
    plugin from disk), and data declaring more than MAX_COMPRESSION_RATIO times its stored bytes;
  - attributes that are not strings and datasets that are not plain numbers (the datatypes a
    Keras weights file uses), and more than MAX_WEIGHT_BYTES of weights in total.
"""
import json
import os
import sys

if __name__ == "__main__":
    del sys.path[0]  # this script's folder: keep tinynet's modules (tflite.py, ...) from shadowing libraries

import h5py
import numpy as np

try:
    import resource
except ImportError:  # Windows: no address-space limit; the timeout still applies
    resource = None

BAD_FILE = 3
MAX_WEIGHT_BYTES = 1 << 30  # as float64; the largest Keras MobileNet (V2 1.4) holds 6.2 M weights, 50 MB
MAX_COMPRESSION_RATIO = 1000  # deflate tops out near 1032:1
MAX_ADDRESS_SPACE = 4 << 30  # Python, NumPy and h5py take ~160 MB of it; libhdf5 gets the rest


class BadFile(Exception):
    """The file is not a Keras weights file this reader will read."""


def read(path):
    """``({"layer/variable": array}, model_config text or None)`` from the Keras file at ``path``."""
    with h5py.File(path, "r") as f:
        _refuse_external_links(f)
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs and isinstance(f.get("layers"), h5py.Group):
            return _read_keras3(f["layers"]), None
        if "layer_names" not in root.attrs:
            raise BadFile("not a Keras weights file (no layer_names attribute)")
        weights, budget = {}, MAX_WEIGHT_BYTES
        for layer in _strings(root, "layer_names"):
            group = root[layer]
            if not isinstance(group, h5py.Group):
                raise BadFile(f"layer {layer!r} is not a group")
            names = _strings(group, "weight_names") if "weight_names" in group.attrs else []
            for name in names:
                variable = name.split("/")[-1].split(":")[0]  # "model/conv1/kernel:0" -> "kernel"
                array = _dataset(group, name, budget)
                budget -= array.size * 8
                weights[f"{layer}/{variable}"] = array
        config = next(iter(_strings(f, "model_config")), None) if "model_config" in f.attrs else None
    return weights, config


def _read_keras3(layers):
    """Keras 3's model.weights.h5: ``layers/<layer>/vars/<i>`` per top-level layer, where <layer> is the class
    name in snake case numbered by occurrence (conv2d, conv2d_1, ...); returned as {"layers/<layer>/vars/<i>": array}."""
    weights, budget = {}, MAX_WEIGHT_BYTES
    for layer in layers:
        group = layers.get(layer, getlink=True)
        if not isinstance(group, h5py.HardLink) or not isinstance(layers[layer], h5py.Group):
            raise BadFile(f"layer {layer!r} is not a group stored in this file")
        variables = layers[layer].get("vars")
        if variables is None:
            continue
        if not isinstance(variables, h5py.Group):
            raise BadFile(f"layer {layer!r}: vars is not a group")
        for name in variables:
            if not name.isdigit():
                raise BadFile(f"layer {layer!r} has variable {name[:40]!r}; Keras numbers them 0, 1, ...")
            array = _dataset(variables, name, budget)
            budget -= array.size * 8
            weights[f"layers/{layer}/vars/{name}"] = array
    return weights


def _refuse_external_links(f):
    # (A value returned by the callback stops the visit; an exception raised in it would be garbled by h5py.)
    external = f.id.links.visit(lambda name, info: name if info.type == h5py.h5l.TYPE_EXTERNAL else None, info=True)
    if external:
        raise BadFile(f"{external.decode(errors='replace')!r} links to another file; refusing to follow it")


def _strings(obj, name):
    """A string attribute (one or many) as a list of str, after checking its datatype is a string."""
    attribute = h5py.h5a.open(obj.id, name.encode())
    if attribute.shape is not None and 0 in attribute.shape:
        return []  # Keras writes an empty list (a layer without weights) as an empty float64 array
    if not isinstance(attribute.get_type(), h5py.h5t.TypeStringID):
        raise BadFile(f"attribute {name!r} is not text")
    value = obj.attrs[name]
    values = [value] if isinstance(value, (str, bytes)) else list(getattr(value, "flat", value))
    return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in values]


def _dataset(group, name, budget):
    import numpy as np

    link = group.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise BadFile(f"weight {name!r} is a {type(link).__name__}, not data stored in this file")
    dataset = group[name]
    if not isinstance(dataset, h5py.Dataset):
        raise BadFile(f"weight {name!r} is not a dataset")
    if not isinstance(dataset.id.get_type(), (h5py.h5t.TypeFloatID, h5py.h5t.TypeIntegerID)):
        raise BadFile(f"weight {name!r} does not hold numbers")
    plist = dataset.id.get_create_plist()
    if plist.get_layout() not in (h5py.h5d.CONTIGUOUS, h5py.h5d.COMPACT, h5py.h5d.CHUNKED) or plist.get_external_count():
        raise BadFile(f"weight {name!r} keeps its data outside this file")
    allowed = {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32}
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if not set(filters) <= allowed:
        raise BadFile(f"weight {name!r} needs HDF5 filter {min(set(filters) - allowed)}, which tinynet does not load")
    stored = dataset.id.get_storage_size()
    if dataset.nbytes > MAX_COMPRESSION_RATIO * max(stored, 1) or dataset.size * 8 > budget:
        raise BadFile(f"weight {name!r} declares {dataset.nbytes} bytes ({stored} stored): more than a "
                      "MobileNet's weights")
    return np.asarray(dataset[()])


def main(path, out):
    if resource is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)  # the caller's own limit, if any, cannot be raised
        limit = MAX_ADDRESS_SPACE if hard == resource.RLIM_INFINITY else min(MAX_ADDRESS_SPACE, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        weights, config = read(path)
    except Exception as e:  # BadFile, or whatever h5py raises: in this process any failure means a bad file
        print(" ".join(str(e).split())[:300] or type(e).__name__, file=sys.stderr)
        return BAD_FILE
    names = list(weights)
    np.savez(os.path.join(out, "weights.npz"), **{f"t{i}": weights[n] for i, n in enumerate(names)})
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"names": names, "model_config": config}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
