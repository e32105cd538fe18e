"""tinynet: MobileNet inference in pure Python (NumPy + Numba + Pillow).

    import tinynet
    model = tinynet.load("mobilenet_v2.pth")           # torchvision, timm, TFLite, Keras or tinynet files
    model = tinynet.load("mobilenet_v3_large")         # or a store name (tinynet.pull / `tinynet import`)
    model.classify("photo.jpg", top=5)                 # [(label, probability), ...]
    logits = model.forward(batch)                      # batch: float32 (N, H, W, 3), preprocessed
    tinynet.count(tinynet.create("mobilenet_v3_large")) # {"params": ..., "macs": ..., "layers": [...]}
    tinynet.export(model, "model.onnx")                # or .tflite: float32, for ONNX Runtime / LiteRT
"""
from tinynet.architectures import ARCHITECTURES
from tinynet.exporter import export
from tinynet.errors import ImageError, TinynetError, UnsupportedModelError, WeightsError
from tinynet.io import load, save
from tinynet.model import Model, create
from tinynet.threads import get_threads, set_threads
from tinynet.store import pull

__version__ = "0.1.0"


def count(model, resolution=None):
    """Parameters and multiply-accumulates of ``model`` at a square input ``resolution`` (default: the model's own,
    224 for classifiers, 320 for SSDLite320):
    ``{"params": int, "macs": int, "layers": [{"name", "op", "output", "params", "macs"}, ...]}``."""
    return model.count() if resolution is None else model.count(resolution)


__all__ = ["ARCHITECTURES", "ImageError", "Model", "TinynetError", "UnsupportedModelError", "WeightsError",
           "count", "create", "export", "get_threads", "load", "pull", "save", "set_threads", "__version__"]
