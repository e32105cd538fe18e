"""``SegmentationModel``: a dilated backbone plus a dense head (tinynet.graph), with torchvision's conventions."""
from dataclasses import replace

import numba

from tinynet.errors import TinynetError
from tinynet.graph import GraphPlan, Node, backbone_shapes, count_head, head_shapes, head_weight_shapes
from tinynet.labels import labels_for
from tinynet.model import Model
from tinynet.segmentation import lraspp
from tinynet.segmentation.transform import torchvision_segmentation_input
from tinynet.spec import count
from tinynet.tasks.dense import DenseTask
from tinynet.tasks.segmentation import segmentation
from tinynet.threads import resolve as resolve_threads
from tinynet.warmup import compile_notice

SHAPE_PROBE = (1, 224, 224, 3)  # any valid input size gives the head's channel counts
TORCHVISION_RESIZE = (("half_pixel_centers", True),)  # F.interpolate(align_corners=False)


class SegmentationModel(DenseTask, Model):
    """Per-pixel classes: ``forward`` gives the logits at the input size, ``segment`` masks at the photo's size.

    ``head``: tinynet.graph Nodes over the backbone's named tensors, ending in ``output`` (the low-resolution
    logits, (N, h, w, classes)); ``weights`` hold the backbone's and the head's tensors. ``resize``: the options
    of the resize from those logits to a full-size map (tinynet.graph "resize" nodes); ``output_grid``: the
    (lo, step, levels) a quantized file rounds the resized logits to, None for float models.
    """

    task = "segmentation"
    answer = "segment"

    def __init__(self, arch, layers, head, weights, padding="symmetric", meta=None, threads=None,
                 output=lraspp.OUTPUT, resize=TORCHVISION_RESIZE, output_grid=None):
        self.head = tuple(head)
        self.output = output
        self.resize = tuple(resize)
        self.output_grid = output_grid
        super().__init__(arch, layers, weights, padding, meta, threads)

    def _head_weight_shapes(self, layers):
        return head_weight_shapes(self.head, backbone_shapes(layers, SHAPE_PROBE))

    @property
    def num_classes(self):
        """Class channels of the head's output (background included)."""
        return head_shapes(self.head, backbone_shapes(self.layers, SHAPE_PROBE))[self.output][-1]

    @property
    def width(self):
        return None  # dense backbones have their own channel rules

    @property
    def input_size(self):
        """(height, width) the model is made for: torchvision's preset resizes the shorter side to 520."""
        return lraspp.RESIZE_SHORTER, lraspp.RESIZE_SHORTER

    def __repr__(self):
        return f"<tinynet.SegmentationModel {self.arch} classes={self.num_classes} padding={self.padding}>"

    def _outputs(self, x, head, output):
        x = self._check_input(x)
        threads = resolve_threads(self.threads)
        grid = self.meta.get("activation_grid") if self.quantized_activations else None
        key = ("graph", x.shape, threads, output, grid is not None)
        with self._pooled_plan(key, lambda: GraphPlan(self.layers, head, (output,), self.weights, self.padding,
                                                      x.shape, threads, grid, packed_weights=self._packed_weights,
                                                      fresh=(output,))) as plan:
            numba.set_num_threads(threads)
            with compile_notice():
                return plan.run(x)[output]

    def low_res_logits(self, x):
        """The head's output before the final resize: (N, h, w, classes) float32 (torchvision's ``low_res_out``
        head output, NHWC)."""
        return self._outputs(x, self.head, self.output)

    def forward(self, x):
        """Logits at the input size for a preprocessed batch ``x`` (N, H, W, 3): (N, H, W, classes) float32, as
        torchvision's ``out`` (NHWC). Holds every class at full size: for big photos use ``segment``."""
        tail = (Node("out", "resize", (self.output,), options=(("size", tuple(x.shape[1:3])), *self.resize)),)
        if self.output_grid is not None and self.quantized_activations:
            tail = (replace(tail[0], name="out.float"),
                    Node("out", "quantize", ("out.float",), options=(("grid", tuple(self.output_grid)),)))
        return self._outputs(x, self.head + tail, "out")

    def preprocess_with_size(self, image):
        """One image -> ((1, H, W, 3) float32 as the network sees it, (original height, original width))."""
        return torchvision_segmentation_input(image, lraspp.RESIZE_SHORTER, lraspp.MEAN, lraspp.STD)

    def preprocess(self, image):
        if isinstance(image, (list, tuple)):
            raise TinynetError("segmentation inputs differ in size: preprocess one image at a time")
        return self.preprocess_with_size(image)[0]

    def segment(self, images):
        """One image (or a list): a tinynet.tasks.segmentation.Segmentation per image, with ``mask`` (H, W) uint8
        class ids at the original image's size, ``labels`` and ``counts`` (pixels per class)."""
        if not isinstance(images, (list, tuple)):
            return self.segment([images])[0]
        names = labels_for(self)
        results = []
        for image in images:  # one at a time: sizes differ, and a photo's logits are large
            x, original_size = self.preprocess_with_size(image)
            grid = self.output_grid if self.quantized_activations else None
            results.append(segmentation(self.low_res_logits(x)[0], original_size, names, grid, **dict(self.resize)))
        return results

    def detect(self, images, score_threshold=None, top=None):
        raise TinynetError(f"this is a {self.task} model ({self.arch}): it has no boxes; use segment")

    def count(self, resolution=None):
        """Parameters and MACs of backbone and head at a square input (tinynet.spec.count's format), by default
        the model's own size (``input_size``)."""
        resolution = resolution or self.input_size[0]
        shape = (1, resolution, resolution, 3)
        backbone = count(self.layers, resolution, self.padding)
        head = count_head(self.head, backbone_shapes(self.layers, shape, self.padding), self.padding)
        table = backbone["layers"] + head
        return {"params": sum(r["params"] for r in table), "macs": sum(r["macs"] for r in table), "layers": table}
