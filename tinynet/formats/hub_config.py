"""The ``config.json`` a Hugging Face repository keeps beside its weights, and the weight file of such a folder.

transformers writes ``{"model_type": "mobilenet_v2", "depth_multiplier": ..., ...}``; timm writes
``{"architecture": "tf_mobilenetv3_large_100", "pretrained_cfg": {...}}``. Both sit next to
``model.safetensors`` (or ``pytorch_model.bin``) in a downloaded snapshot, and carry what the tensors
alone cannot say: padding, BatchNorm epsilon, preprocessing, label names.
"""
import json
from pathlib import Path

from tinynet.errors import WeightsError

CONFIG = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
MAX_CONFIG_BYTES = 4 << 20  # a MobileNet config with 1001 label names is about 40 KB


def weights_in(folder):
    """The weight file of a Hugging Face model folder; WeightsError when it has none."""
    for name in WEIGHT_FILES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise WeightsError(f"{folder}: a model folder needs {' or '.join(WEIGHT_FILES)} (beside {CONFIG})")


def config_beside(path):
    """The parsed ``config.json`` in the folder of the weight file ``path`` (a dict), or None if there is none."""
    config = Path(path).parent / CONFIG
    if not config.is_file():
        return None
    if config.stat().st_size > MAX_CONFIG_BYTES:
        raise WeightsError(f"{config}: {config.stat().st_size} bytes is too large for a model config")
    try:
        document = json.loads(config.read_bytes())
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WeightsError(f"{config} is not valid JSON") from None
    if not isinstance(document, dict):
        raise WeightsError(f"{config} holds a JSON {type(document).__name__}, not an object")
    return document
