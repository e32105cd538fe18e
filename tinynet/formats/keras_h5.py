"""Import Keras Applications MobileNet (V1) and MobileNetV2 weights from HDF5 (.h5) files.

    model = tinynet.load("mobilenet_1_0_224_tf.h5")      # needs h5py: pip install "tinynet[keras]"

Both full-model files (``model.save``: weights under ``model_weights`` plus a JSON
``model_config``) and weights-only files (``model.save_weights``) are read. Keras names its layers
the same way at every width, so the layer names say which architecture a file holds and the
weight shapes say its width. BatchNorm is folded at load, with each BatchNorm layer's epsilon
from ``model_config`` (1e-3, Keras' MobileNet default, when the file has none). Layouts: Conv2D
kernels (KH, KW, I, O) are already tinynet's; DepthwiseConv2D (KH, KW, C, 1) -> (KH, KW, C);
1x1 Conv2D (1, 1, I, O) -> (I, O); the classifier is V1's 1x1 ``conv_preds`` or V2's Dense
``Logits`` (I, O). Keras pads stride-2 convs by (0, 1), which is TensorFlow SAME ("tf_same") at
the even input sizes these models are trained at.

h5py itself runs in a child process (hdf5_reader.py, with a memory limit and a timeout): a damaged
or hostile file can crash or hang libhdf5, and must not take the caller's process with it.
"""
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinynet.architectures import rows
from tinynet.errors import TinynetError, UnsupportedModelError, WeightsError
from tinynet.formats.fold import fold_batchnorm
from tinynet.model import Model
from tinynet.spec import check_weights, layers_for_weights

DEFAULT_BN_EPS = 1e-3  # keras.applications.MobileNet / MobileNetV2 build BatchNormalization(epsilon=1e-3)
DEFAULT_SIZE = 224
READER = Path(__file__).with_name("hdf5_reader.py")
READ_TIMEOUT_SECONDS = 60  # the 2 MB Keras MobileNet reads in 0.2 s; a damaged global heap can loop forever


@dataclass(frozen=True)
class KerasSource:
    name: str  # tinynet layer, e.g. "04.dw"
    op: str  # "conv" | "dw" | "pw" | "fc"
    layer: str  # Keras layer holding the kernel
    bn: str = None  # Keras BatchNormalization layer that follows, if any


def load(path, arch=None):
    """A tinynet Model from the Keras .h5 file at ``path``; ``arch`` must agree with the file if given."""
    try:
        import h5py  # noqa: F401 (only to say what to install: the file is read by hdf5_reader.py, in a child process)
    except ImportError:
        raise TinynetError('reading Keras .h5 files needs h5py: pip install "tinynet[keras]"') from None
    path = Path(path)
    weights, raw_config = read_isolated(path)
    return from_weights(weights, model_config(raw_config), path, arch)


def from_weights(weights, config, path, arch=None):
    """A Model from Keras weights ``{"layer/variable": float64 array}`` and the model's ``config`` (the
    ``config`` part of its model_config: layers with their settings); also used for Keras 3 files (keras3.py)."""
    detected = _detect(weights)
    if arch is not None and arch != detected:
        raise UnsupportedModelError(f"the file holds a Keras {detected}, not {arch}")
    layer_configs = {layer["config"].get("name"): layer for layer in config.get("layers", [])}
    tensors, origin = {}, {}
    for src in SOURCES[detected](weights):
        w, b = _fold(src, weights, layer_configs)
        tensors[f"{src.name}.w"], tensors[f"{src.name}.b"] = w, b
        origin[f"{src.name}.w"], origin[f"{src.name}.b"] = f"{src.layer}/kernel", src.bn or f"{src.layer}/bias"
    shapes = {n: a.shape for n, a in tensors.items()}
    layers = layers_for_weights(detected, shapes)
    check_weights(layers, shapes, describe=lambda n: f"'{origin[n]}' ({n})")
    meta = {"preprocess": {"preset": "tf", "size": _input_size(config), "range": [-1.0, 1.0]},
            "source": f"keras:{path.name}"}
    if layers[-1].cout == 1000:
        meta["labels"] = "imagenet1k"
    return Model(detected, layers, tensors, "tf_same", meta)


def read_isolated(path):
    """``({"layer/variable": float64 array}, model_config text or None)``, read by hdf5_reader.py in a child
    process: a file that crashes, hangs or exhausts libhdf5 costs that process, not the caller's. For a Keras 3
    weights file the names are "layers/<path>/vars/<i>" (see hdf5_reader.py)."""
    if not sys.executable:  # an interpreter embedded in another program may not know its own path
        raise TinynetError("reading .h5 files needs a Python interpreter to run in a child process, "
                           "and sys.executable is not set")
    with tempfile.TemporaryDirectory(prefix="tinynet-h5-") as out:
        try:
            done = subprocess.run([sys.executable, str(READER), str(path), out], capture_output=True,
                                  text=True, errors="replace", timeout=READ_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise WeightsError(f"cannot read HDF5 file {path.name}: no result after {READ_TIMEOUT_SECONDS} s "
                               "(damaged or hostile file)") from None
        if done.returncode < 0:
            raise WeightsError(f"cannot read HDF5 file {path.name}: the HDF5 library crashed on it "
                               f"(signal {-done.returncode}); the file is damaged or hostile")
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            raise WeightsError(f"cannot read HDF5 file {path.name}: {reason}")
        index = json.loads(Path(out, "index.json").read_text())
        with np.load(Path(out, "weights.npz"), allow_pickle=False) as arrays:
            weights = {name: arrays[f"t{i}"].astype(np.float64) for i, name in enumerate(index["names"])}
    return weights, index["model_config"]


def model_config(raw):
    """The ``config`` of the file's model_config JSON, checked as far as it is used ({} when absent)."""
    if raw is None:
        return {}
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; RecursionError: absurd nesting
        raise WeightsError("model_config attribute is not valid JSON") from None
    config = document.get("config", {}) if isinstance(document, dict) else None
    layers = config.get("layers", []) if isinstance(config, dict) else None
    if not isinstance(layers, list) or not all(map(_is_layer_config, layers)):
        raise WeightsError("model_config is not a Keras model configuration (config.layers[*].config)")
    return config


def _is_layer_config(layer):
    """Whether ``layer`` has the parts this importer reads: {"config": {"name": str, "batch_input_shape": list}}."""
    if not (isinstance(layer, dict) and isinstance(layer.get("config"), dict)):
        return False
    config = layer["config"]
    shapes = (config.get("batch_input_shape"), config.get("batch_shape"))
    return isinstance(config.get("name", ""), str) and all(s is None or isinstance(s, list) for s in shapes)


def _detect(weights):
    layers = {name.split("/")[0] for name in weights}
    if "conv_dw_1" in layers:
        return "mobilenet_v1"
    if "expanded_conv_depthwise" in layers or "block_1_expand" in layers:
        return "mobilenet_v2"
    sample = ", ".join(sorted(layers)[:4])
    raise UnsupportedModelError(f"Keras layers ({sample}, ...) are not a Keras MobileNet or MobileNetV2")


def _v1_sources(weights):
    sources, table = [], rows("mobilenet_v1")
    for i, row in enumerate(table):
        if row.kind == "conv":
            sources.append(KerasSource(f"{i:02d}.conv", "conv", "conv1", "conv1_bn"))
        elif row.kind == "ds":
            sources.append(KerasSource(f"{i:02d}.dw", "dw", f"conv_dw_{i}", f"conv_dw_{i}_bn"))
            sources.append(KerasSource(f"{i:02d}.pw", "pw", f"conv_pw_{i}", f"conv_pw_{i}_bn"))
        elif row.kind == "fc":
            sources.append(KerasSource(f"{i:02d}.fc", "fc", "conv_preds"))
    return sources


def _v2_sources(weights):
    sources, table = [], rows("mobilenet_v2")
    for i, row in enumerate(table):
        n = f"{i:02d}"
        if row.kind == "conv" and row.k > 1:
            sources.append(KerasSource(f"{n}.conv", "conv", "Conv1", "bn_Conv1"))
        elif row.kind == "conv":
            sources.append(KerasSource(f"{n}.conv", "pw", "Conv_1", "Conv_1_bn"))
        elif row.kind == "ir":
            prefix = "expanded_conv" if i == 1 else f"block_{i - 1}"  # Keras numbers blocks from 0, row 1 unnamed
            if row.exp != 1:
                sources.append(KerasSource(f"{n}.expand", "pw", f"{prefix}_expand", f"{prefix}_expand_BN"))
            sources.append(KerasSource(f"{n}.dw", "dw", f"{prefix}_depthwise", f"{prefix}_depthwise_BN"))
            sources.append(KerasSource(f"{n}.project", "pw", f"{prefix}_project", f"{prefix}_project_BN"))
        elif row.kind == "fc":
            classifier = "predictions" if "predictions/kernel" in weights else "Logits"  # Keras 3 / Keras 2 name
            sources.append(KerasSource(f"{n}.fc", "fc", classifier))
    return sources


SOURCES = {"mobilenet_v1": _v1_sources, "mobilenet_v2": _v2_sources}


def _fold(src, weights, layer_configs):
    """Runtime (w, b) of one layer as float32, BatchNorm folded."""
    def get(name):
        if name not in weights:
            raise WeightsError(f"missing tensor {name}")
        return weights[name]

    variable = "depthwise_kernel" if src.op == "dw" else "kernel"
    kernel = get(f"{src.layer}/{variable}")
    w = _runtime_layout(src, kernel)
    cout = w.shape[-1]
    b = weights.get(f"{src.layer}/bias", np.zeros(cout))
    if src.bn:
        eps = layer_configs.get(src.bn, {}).get("config", {}).get("epsilon", DEFAULT_BN_EPS)
        if isinstance(eps, bool) or not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
            raise WeightsError(f"layer {src.bn} has epsilon {eps!r} in model_config; expected a small positive number")
        gamma = weights.get(f"{src.bn}/gamma", np.ones(cout))  # absent when the layer has scale=False
        beta = weights.get(f"{src.bn}/beta", np.zeros(cout))  # absent when center=False
        mean, var = get(f"{src.bn}/moving_mean"), get(f"{src.bn}/moving_variance")
        for name, v in (("gamma", gamma), ("beta", beta), ("moving_mean", mean), ("moving_variance", var)):
            if v.shape != (cout,):
                raise WeightsError(f"tensor {src.bn}/{name} has shape {v.shape}, expected ({cout},) "
                                   f"to match {src.layer}/{variable} {kernel.shape}")
        w, b = fold_batchnorm(w, b, gamma, beta, mean, var, eps, f"{src.bn}/moving_variance")
    if b.shape != (cout,):
        raise WeightsError(f"tensor {src.layer}/bias has shape {b.shape}, expected ({cout},)")
    return np.ascontiguousarray(w, np.float32), b.astype(np.float32)


def _runtime_layout(src, w):
    """Keras layout -> tinynet layout; raises WeightsError naming the kernel if its shape is not one."""
    fits = {"conv": w.ndim == 4,
            "dw": w.ndim == 4 and w.shape[3] == 1,
            "pw": w.ndim == 4 and w.shape[:2] == (1, 1),
            "fc": w.ndim == 2 or (w.ndim == 4 and w.shape[:2] == (1, 1))}[src.op]
    if not fits:
        raise WeightsError(f"tensor {src.layer} kernel has shape {w.shape}, which is not a {src.op} weight")
    if src.op == "dw":
        return w[..., 0]
    if src.op == "conv" or w.ndim == 2:
        return w
    return w[0, 0]


def _input_size(config):
    for layer in config.get("layers", []):
        if layer.get("class_name") == "InputLayer":
            shape = layer["config"].get("batch_input_shape") or layer["config"].get("batch_shape") or []
            if len(shape) == 4 and shape[1] is not None:
                if not isinstance(shape[1], int) or isinstance(shape[1], bool) or shape[1] < 1:
                    raise WeightsError(f"model_config gives the input shape {shape!r}; expected whole numbers")
                return shape[1]
    return DEFAULT_SIZE
