"""Import Keras 3 ``.keras`` files of Keras Applications MobileNet (V1) and MobileNetV2.

A ``.keras`` file is a zip of ``config.json`` (the model: its layers in order, each with a class name,
a name and settings), ``model.weights.h5`` and ``metadata.json``. Keras 3 does not key weights by layer
name: ``model.weights.h5`` holds ``layers/<class>/vars/<i>``, where <class> is the layer's class name in
snake case, numbered by occurrence in the model's layer order (``conv2d``, ``conv2d_1``, ...;
``batch_normalization_12``), and <i> the layer's variables in creation order. So the i-th
BatchNormalization of config.json is ``layers/batch_normalization_<i>``, and its vars 0..3 are gamma,
beta, moving_mean, moving_variance (fewer when ``scale`` or ``center`` is off). Renamed to Keras 2's
"<layer name>/<variable>", the weights then go through the .h5 importer (keras_h5.from_weights).

The zip is bounded before anything is extracted (member sizes and compression ratio), and the h5 part is
read in a child process like any .h5 (keras_h5.read_isolated).
"""
import re
import tempfile
import zipfile
import zlib
from pathlib import Path

from tinynet.errors import TinynetError, WeightsError
from tinynet.formats import keras_h5

CONFIG, WEIGHTS = "config.json", "model.weights.h5"
MAX_CONFIG_BYTES = 16 << 20  # MobileNetV2's config.json is about 300 KB
MAX_WEIGHTS_BYTES = 1 << 30
MAX_COMPRESSION_RATIO = 1000
VARIABLES = {  # class name -> its variables in Keras' creation order (None: depends on the layer's settings)
    "Conv2D": ("kernel", "bias"),
    "DepthwiseConv2D": ("depthwise_kernel", "bias"),
    "Dense": ("kernel", "bias"),
    "BatchNormalization": None,
}


def is_keras_archive(path):
    """Whether the zip at ``path`` is a Keras 3 model: config.json at its top, and no torch data.pkl."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except Exception:  # noqa: BLE001 (zipfile raises many kinds; the torch reader reports damage as one line)
        return False
    return CONFIG in names and not any(name.endswith("data.pkl") for name in names)


def load(path, arch=None):
    """A tinynet Model from the ``.keras`` file at ``path``; ``arch`` must agree with the file if given."""
    try:
        import h5py  # noqa: F401 (only to say what to install: the h5 part is read in a child process)
    except ImportError:
        raise TinynetError('reading Keras .keras files needs h5py: pip install "tinynet[keras]"') from None
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="tinynet-keras-") as work:
        raw_config, weights_file = _unzip(path, Path(work))
        variables, _ = keras_h5.read_isolated(weights_file)
    config = keras_h5.model_config(raw_config)
    return keras_h5.from_weights(_by_layer_name(variables, config), config, path, arch)


def _unzip(path, work):
    """(config.json text, path of model.weights.h5 extracted into ``work``), after bounding both members."""
    try:
        with zipfile.ZipFile(path) as z:
            for name, limit in ((CONFIG, MAX_CONFIG_BYTES), (WEIGHTS, MAX_WEIGHTS_BYTES)):
                info = z.getinfo(name)
                if info.file_size > limit or info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
                    raise WeightsError(f"{name} in the archive declares {info.file_size} bytes "
                                       f"({info.compress_size} stored): more than a MobileNet's")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise WeightsError(f"{name} in the archive uses zip compression {info.compress_type}; "
                                       "Keras writes stored or deflated members")
            raw_config = z.read(CONFIG).decode("utf-8", errors="replace")
            target = work / "weights.h5"
            with z.open(WEIGHTS) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                    if dst.tell() > MAX_WEIGHTS_BYTES:  # the declared size may lie
                        raise WeightsError(f"{WEIGHTS} in the archive is larger than it declares")
    except KeyError:
        raise WeightsError(f"a .keras archive needs {CONFIG} and {WEIGHTS}; this one lacks one") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError, NotImplementedError) as e:
        raise WeightsError(f"damaged .keras archive ({' '.join(str(e).split())[:200]})") from None
    # The config is Keras' whole-model JSON; keras_h5 expects the same shape as Keras 2's model_config.
    return raw_config, target


def snake_case(name):
    """Keras' ``to_snake_case`` (keras/src/utils/naming.py), which names the weight groups."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def _by_layer_name(variables, config):
    """Keras 3 ``{"layers/<class>_<k>/vars/<i>": array}`` -> Keras 2 ``{"<layer name>/<variable>": array}``."""
    seen, weights = {}, {}
    for layer in config.get("layers", []):
        class_name = layer.get("class_name")
        if not isinstance(class_name, str):
            raise WeightsError("config.json has a layer without a class_name")
        key = snake_case(class_name)
        seen[key] = seen.get(key, -1) + 1
        group = f"layers/{key}" + (f"_{seen[key]}" if seen[key] else "")
        if class_name not in VARIABLES:
            continue
        names = VARIABLES[class_name] or _batchnorm_variables(layer["config"])
        stored = sorted(int(v.rsplit("/", 1)[1]) for v in variables if v.startswith(group + "/vars/"))
        if stored and stored != list(range(len(stored))):
            raise WeightsError(f"{group} holds variables {stored[:6]}; expected 0..{len(stored) - 1}")
        if len(stored) > len(names):
            raise WeightsError(f"{group} ({layer['config'].get('name')}, a {class_name}) holds {len(stored)} variables, "
                               f"expected at most {len(names)}")
        for i in stored:
            weights[f"{layer['config'].get('name')}/{names[i]}"] = variables[f"{group}/vars/{i}"]
    return weights


def _batchnorm_variables(settings):
    scale, center = settings.get("scale", True), settings.get("center", True)
    return tuple(n for n, kept in (("gamma", scale), ("beta", center), ("moving_mean", True),
                                   ("moving_variance", True)) if kept)
