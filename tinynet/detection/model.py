"""``DetectionModel``: a backbone plus a box head (tinynet.graph), with torchvision SSD's conventions."""
import functools

import numba
import numpy as np

from tinynet.detection import ssdlite
from tinynet.detection.anchors import default_boxes_xyxy
from tinynet.detection.transform import torchvision_detection_input
from tinynet.errors import ImageError, TinynetError
from tinynet.graph import GraphPlan, backbone_shapes, count_head, head_shapes, head_weight_shapes
from tinynet.labels import labels_for
from tinynet.model import Model
from tinynet.prefetch import prefetched
from tinynet.spec import count
from tinynet.tasks.dense import DenseTask
from tinynet.tasks.detection import torchvision_detections
from tinynet.threads import resolve as resolve_threads
from tinynet.warmup import compile_notice

DEFAULT_SCORE_THRESHOLD = 0.001  # torchvision SSD's box_score_thresh
DETECT_BATCH = 8  # images per forward in detect: SSDLite320's plan for 8 holds about 90 MB of activations


class DetectionModel(DenseTask, Model):
    """An SSD-style detector: ``forward`` gives the raw head outputs by name, ``detect`` the boxes.

    ``head``: tinynet.graph Nodes over the backbone's named tensors (tinynet.detection.ssdlite.head_nodes);
    ``outputs``: the names ``forward`` returns. ``weights`` hold the backbone's and the head's tensors.
    """

    task = "detection"
    answer = "detect"

    def __init__(self, arch, layers, head, weights, padding="symmetric", meta=None, threads=None,
                 outputs=ssdlite.OUTPUTS):
        self.head = tuple(head)
        self.outputs = tuple(outputs)
        super().__init__(arch, layers, weights, padding, meta, threads)

    def _head_weight_shapes(self, layers):
        # Channels do not depend on the padding convention or input size: any valid ones give the shapes.
        return head_weight_shapes(self.head, backbone_shapes(layers, (1, *ssdlite.INPUT_SIZE, 3)))

    @property
    def num_classes(self):
        """Class slots of the classification head, background (0) included."""
        return next(n for n in self.head if n.name == "cls.0.anchors").option("columns")

    @property
    def input_size(self):
        """(height, width) the transform resizes every photo to."""
        return ssdlite.INPUT_SIZE

    @property
    def width(self):
        return None  # detection backbones have their own channel rules (reduced tail)

    def __repr__(self):
        return f"<tinynet.DetectionModel {self.arch} classes={self.num_classes} padding={self.padding}>"

    def forward(self, x):
        """Raw head outputs for a preprocessed batch ``x`` (N, H, W, 3): {"cls_logits": (N, anchors, classes),
        "bbox_regression": (N, anchors, 4)} float32, anchors in torchvision's order."""
        x = self._check_input(x)
        threads = resolve_threads(self.threads)
        key = ("graph", x.shape, threads)
        with self._pooled_plan(key, lambda: GraphPlan(self.layers, self.head, self.outputs, self.weights, self.padding,
                                                      x.shape, threads, packed_weights=self._packed_weights)) as plan:
            numba.set_num_threads(threads)
            with compile_notice():
                return {name: array.copy() for name, array in plan.run(x).items()}

    def anchors(self, height, width):
        """DefaultBoxGenerator's anchors for an input of ``height`` x ``width``: (anchors, 4) x0, y0, x1, y1 in
        input pixels, in the order of ``forward``'s anchors."""
        shapes = head_shapes(self.head, backbone_shapes(self.layers, (1, height, width, 3), self.padding), self.padding)
        grids = [shapes[name][1:3] for name in ssdlite.FEATURE_MAPS]
        return default_boxes_xyxy(grids, height, width, aspect_ratios=ssdlite.ASPECT_RATIOS)

    def preprocess_with_geometry(self, image):
        """One image -> ((1, 320, 320, 3) float32, tinynet.geometry.Geometry), as torchvision's transform."""
        return torchvision_detection_input(image, ssdlite.INPUT_SIZE, ssdlite.MEAN, ssdlite.STD)

    def preprocess(self, image):
        """One image (path, PIL image, array, ...) as the network sees it: (1, 320, 320, 3); a list gives (N, ...)."""
        if isinstance(image, (list, tuple)):
            return np.concatenate([self.preprocess_with_geometry(one)[0] for one in image])
        return self.preprocess_with_geometry(image)[0]

    def detect(self, images, score_threshold=None, top=None, batch_size=DETECT_BATCH, errors="raise"):
        """Detections of one image (or a list): [Detection(label, class_id, score, box), ...] best first, box
        (x0, y0, x1, y1) in the original image's pixels; a list of images gives one such list per image.
        ``score_threshold``: default torchvision's 0.001; ``top``: at most this many per image.

        A list runs as batches of ``batch_size`` images through one forward each; the results are the same as one
        image at a time (every kernel computes each image of a batch as it computes it alone). An image that cannot
        be read raises its tinynet.ImageError; with ``errors="return"`` that ImageError takes the image's place in
        the list instead, and the other images are detected."""
        if errors not in ("raise", "return"):
            raise TinynetError(f"errors must be 'raise' or 'return', got {errors!r}")
        if not isinstance(images, (list, tuple)):
            return self.detect([images], score_threshold, top, batch_size, errors)[0]
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise TinynetError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")

        def prepare(chunk):
            """Per image: (x, geometry), or the ImageError that stopped it."""
            prepared = []
            for image in chunk:
                try:
                    prepared.append(self.preprocess_with_geometry(image))
                except ImageError as e:
                    if errors == "raise":
                        raise
                    prepared.append(e)
            return prepared

        chunks = [images[start:start + batch_size] for start in range(0, len(images), batch_size)]
        results = []
        # A thread decodes and resizes the next batch while this one runs (Pillow and the kernels release the GIL).
        for _, prepared in prefetched(chunks, prepare, workers=1 if len(chunks) > 1 else 0):
            read = [p for p in prepared if not isinstance(p, ImageError)]
            out = self.forward(np.concatenate([x for x, _ in read])) if read else {}
            found = iter(self.detections({name: a[i] for name, a in out.items()}, geometry, score_threshold, top)
                         for i, (_, geometry) in enumerate(read))
            results.extend(p if isinstance(p, ImageError) else next(found) for p in prepared)
        return results

    def detections(self, outputs, geometry, score_threshold=None, top=None):
        """One image's detections from its head outputs (``forward``'s, without the batch axis), boxes mapped back
        to the original image with ``geometry``: torchvision's postprocess."""
        threshold = DEFAULT_SCORE_THRESHOLD if score_threshold is None else float(score_threshold)
        return torchvision_detections(outputs["cls_logits"], outputs["bbox_regression"], self._input_anchors,
                                      geometry, labels_for(self), threshold, top)

    @functools.cached_property
    def _input_anchors(self):
        """``anchors`` at the input size, computed once: they depend only on the head's shapes."""
        return self.anchors(*ssdlite.INPUT_SIZE)

    def count(self, resolution=ssdlite.INPUT_SIZE[0]):
        """Parameters and MACs of backbone and head at a square input (tinynet.spec.count's format)."""
        backbone = count(self.layers, resolution, self.padding)
        head = count_head(self.head, backbone_shapes(self.layers, (1, resolution, resolution, 3), self.padding),
                          self.padding)
        table = backbone["layers"] + head
        return {"params": sum(r["params"] for r in table), "macs": sum(r["macs"] for r in table), "layers": table}
