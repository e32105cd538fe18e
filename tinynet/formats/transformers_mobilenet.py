"""Hugging Face transformers MobileNetV1 / MobileNetV2 checkpoints (``MobileNetV1ForImageClassification``, ...).

A checkpoint is a folder (or its weight file) with ``config.json`` and ``model.safetensors`` or
``pytorch_model.bin``. Tensor names:

  V1  mobilenet_v1.conv_stem, mobilenet_v1.layer.<2b> (depthwise) / .<2b+1> (pointwise) for ds block b+1
  V2  mobilenet_v2.conv_stem.{first_conv, [expand_1x1], conv_3x3, reduce_1x1} (row 1),
      mobilenet_v2.layer.<i-2>.{expand_1x1, conv_3x3, reduce_1x1} (row i), mobilenet_v2.conv_1x1 (head)
  each  <...>.convolution.weight + <...>.normalization.{weight, bias, running_mean, running_var}
  then  classifier.{weight, bias}

From config.json: ``tf_padding`` (TensorFlow SAME padding computed per input size: tinynet's "tf_same"),
``layer_norm_eps`` (the BatchNorm epsilon, 1e-3), ``image_size`` and ``id2label`` (Google's ports have
1001 outputs, output 0 "background"). ``depth_multiplier``, ``min_depth`` and ``finegrained_output`` only
decide channel counts, which tinynet reads from the tensor shapes.
"""
import math

from tinynet.architectures import rows
from tinynet.errors import UnsupportedModelError, WeightsError
from tinynet.formats.fold import Source, fold, unused
from tinynet.formats.hub_config import config_beside
from tinynet.model import Model
from tinynet.spec import check_weights, layers_for_weights

IMAGENET_WITH_BACKGROUND = 1001


def load(tensors, arch, path, detected):
    """A Model from transformers ``tensors`` (read from ``path``); ``detected`` from the tensor names."""
    config = config_beside(path)
    if config is None:
        raise WeightsError(f"a transformers checkpoint needs its config.json beside {path.name}")
    model_type = config.get("model_type")
    if model_type != detected:
        raise WeightsError(f"config.json says model_type {str(model_type)[:40]!r} but the tensors are a {detected}")
    if arch is not None and arch != detected:
        raise UnsupportedModelError(f"the file holds a {detected}, not {arch}")
    if config.get("hidden_act", "relu6") != "relu6":
        raise UnsupportedModelError(f"hidden_act {str(config['hidden_act'])[:40]!r}: tinynet runs these MobileNets with relu6")
    if config.get("output_stride", 32) != 32:
        raise UnsupportedModelError(f"output_stride {config['output_stride']!r} (dilated convolutions) is not supported")
    if config.get("num_channels", 3) != 3:
        raise UnsupportedModelError(f"num_channels {config['num_channels']!r}: tinynet reads RGB images")
    eps = config.get("layer_norm_eps", 1e-3)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps >= 0):
        raise WeightsError(f"config.json gives layer_norm_eps {eps!r}; expected a small positive number")
    sources = (_v1_sources if detected == "mobilenet_v1" else _v2_sources)(tensors)
    weights, origin = fold(tensors, sources, eps)
    extra = unused(tensors, sources)
    if extra:
        raise WeightsError(f"tensor {extra[0]} has no place in {detected}")
    layers = layers_for_weights(detected, {n: a.shape for n, a in weights.items()})
    check_weights(layers, weights, describe=lambda n: f"{origin.get(n, n)} ({n})")
    size = config.get("image_size", 224)
    meta = {"preprocess": {"preset": "timm", "interpolation": "bilinear", "size": size},  # MobileNetV*ImageProcessor
            "source": f"transformers:{path.name}"}
    labels = _labels(config.get("id2label"), layers[-1].cout)
    if labels is not None:
        meta["labels"] = labels
    padding = "tf_same" if config.get("tf_padding", True) else "symmetric"
    return Model(detected, layers, weights, padding, meta)


def _conv(name, op, prefix):
    return Source(name, op, f"{prefix}.convolution.weight", bn=f"{prefix}.normalization")


def _v1_sources(tensors):
    sources = []
    for i, row in enumerate(rows("mobilenet_v1")):
        if row.kind == "conv":
            sources.append(_conv(f"{i:02d}.conv", "conv", "mobilenet_v1.conv_stem"))
        elif row.kind == "ds":
            sources.append(_conv(f"{i:02d}.dw", "dw", f"mobilenet_v1.layer.{2 * (i - 1)}"))
            sources.append(_conv(f"{i:02d}.pw", "pw", f"mobilenet_v1.layer.{2 * (i - 1) + 1}"))
        elif row.kind == "fc":
            sources.append(Source(f"{i:02d}.fc", "fc", "classifier.weight", bias="classifier.bias"))
    return sources


def _v2_sources(tensors):
    sources = []
    for i, row in enumerate(rows("mobilenet_v2")):
        n = f"{i:02d}"
        if row.kind == "conv" and row.k > 1:
            sources.append(_conv(f"{n}.conv", "conv", "mobilenet_v2.conv_stem.first_conv"))
        elif row.kind == "conv":
            sources.append(_conv(f"{n}.conv", "pw", "mobilenet_v2.conv_1x1"))
        elif row.kind == "ir":
            p = "mobilenet_v2.conv_stem" if i == 1 else f"mobilenet_v2.layer.{i - 2}"
            if f"{p}.expand_1x1.convolution.weight" in tensors:
                sources.append(_conv(f"{n}.expand", "pw", f"{p}.expand_1x1"))
            sources.append(_conv(f"{n}.dw", "dw", f"{p}.conv_3x3"))
            sources.append(_conv(f"{n}.project", "pw", f"{p}.reduce_1x1"))
        elif row.kind == "fc":
            sources.append(Source(f"{n}.fc", "fc", "classifier.weight", bias="classifier.bias"))
    return sources


def _labels(id2label, outputs):
    """meta["labels"] from config.json's id2label: "imagenet1k" for Google's 1001-class ports, the names when
    the config has real ones, None for transformers' placeholders ("LABEL_0", ...)."""
    if not isinstance(id2label, dict):
        return None
    try:
        names = [id2label[str(i)] for i in range(outputs)] if len(id2label) == outputs else None
    except KeyError:
        names = None
    if names is None or not all(isinstance(name, str) for name in names):
        raise WeightsError(f"config.json id2label does not name the {outputs} outputs 0..{outputs - 1}")
    if names == [f"LABEL_{i}" for i in range(outputs)]:
        return None
    if outputs == IMAGENET_WITH_BACKGROUND and names[0] == "background":
        return "imagenet1k"
    return names
