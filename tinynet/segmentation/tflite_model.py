"""A DeepLab .tflite as a segmentation model (what tinynet.load returns for one).

    model = tinynet.load("deeplabv3_mnv2_pascal_quant.tflite")
    model.segment("pets.jpg").fractions()  # {'background': 0.85, 'dog': 0.15}

A tinynet.segmentation.model.SegmentationModel whose backbone and head are the file's
(tinynet.segmentation.tflite_deeplab), with the conventions these files are run with: the whole image resized to
the input size (Pillow bilinear, aspect ratio not kept), bytes q fed as the input quantization says
((q - 128) / 128 for the uint8 files, q / 127.5 - 1 for the float one), logits resized with align_corners.
``forward`` gives what the file's ARG_MAX reads (rounded to its grid in a uint8 file); ``segment`` resizes the
logits straight to the photo's size instead of to the input size.
"""
import numpy as np
from PIL import Image

from tinynet.errors import TinynetError
from tinynet.preprocess import open_image
from tinynet.segmentation.model import SegmentationModel
from tinynet.segmentation.tflite_deeplab import BACKBONE

ARCH = "deeplabv3_mobilenet_v2"


class TfliteDeeplabModel(SegmentationModel):
    """A SegmentationModel built from a DeeplabNetwork (tinynet.segmentation.tflite_deeplab)."""

    def __init__(self, network, source=None, threads=None):
        self.network = network
        meta = {"preprocess": {"preset": "tf", "size": network.input_size[0], "crop_fraction": 1.0,
                               "range": list(network.input_range)},
                "source": source, "backbone": BACKBONE}
        if network.activation_grid:
            meta["activation_grid"] = network.activation_grid
        resize = (("align_corners", network.align_corners), ("half_pixel_centers", network.half_pixel_centers))
        super().__init__(ARCH, network.layers, network.nodes, network.weights, "tf_same", meta, threads,
                         output=network.output, resize=resize, output_grid=network.output_grid)
        if self.num_classes == 21:  # PASCAL VOC, as DeepLab's model zoo files are
            self.meta["labels"] = "voc21"

    @property
    def input_size(self):
        """(height, width) the network runs at (the file's input)."""
        return self.network.input_size

    @property
    def width(self):
        """The backbone's width multiplier (0.5 for the dm05 files), None if no common one fits."""
        return self.network.width

    def __repr__(self):
        return f"<tinynet.TfliteDeeplabModel {self.arch} width={self.width} classes={self.num_classes}>"

    def _check_input(self, x):
        x = super()._check_input(x)
        if x.shape[1:3] != self.input_size:
            raise TinynetError(f"expected a batch (N, {self.input_size[0]}, {self.input_size[1]}, 3), got {x.shape}; "
                               "model.preprocess makes one")
        return x

    def preprocess_with_size(self, image):
        """One image -> ((1, H, W, 3) float32 at the file's input size, (original height, original width))."""
        rgb = open_image(image)
        height, width = self.input_size
        q = np.asarray(rgb.resize((width, height), Image.Resampling.BILINEAR), np.float32)
        lo, hi = self.network.input_range
        x = np.float32(lo) + q * np.float32((hi - lo) / 255)  # exact for (q - 128) / 128
        return np.ascontiguousarray(x[None]), (rgb.size[1], rgb.size[0])

    def count(self, resolution=None):
        if resolution not in (None, self.input_size[0]) or self.input_size[0] != self.input_size[1]:
            raise TinynetError(f"this network runs at its input size {self.input_size[0]}x{self.input_size[1]} only")
        return super().count(resolution)
