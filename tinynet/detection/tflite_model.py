"""A TF Object Detection API SSD .tflite as a detection model (what tinynet.load returns for one).

    model = tinynet.load("ssd_mobilenet_v1.tflite")
    model.detect("pets.jpg")  # [Detection(label='dog', class_id=17, score=0.82, box=(x0, y0, x1, y1)), ...]

A tinynet.detection.model.DetectionModel whose head is the file's (tinynet.detection.tflite_ssd) and whose
results come from the file's own TFLite_Detection_PostProcess (its options and anchors;
tinynet.detection.tflite_postprocess). This is the float path (a uint8 file's weights dequantized, its tensors
rounded to their grids); tinynet.load gives a uint8 file's integer graph, tinynet.quantized.ssd. Preprocessing is the one these files are run with: the whole image resized
to the input size (Pillow bilinear, aspect ratio not kept), bytes q fed as the input quantization says
((q - 128) / 128 in the shared file).
"""
import zipfile
from io import BytesIO

import numba
import numpy as np
from PIL import Image

from tinynet.detection.model import DetectionModel
from tinynet.detection.tflite_postprocess import detection_postprocess
from tinynet.errors import TinynetError
from tinynet.formats.tflite import STORED_TENSOR
from tinynet.geometry import Geometry
from tinynet.graph import GraphPlan, backbone_shapes, count_head, head_weight_shapes
from tinynet.labels import labels_for
from tinynet.preprocess import open_image
from tinynet.spec import count, infer_width, layers_for_weights
from tinynet.tasks.detection import Detection
from tinynet.threads import resolve as resolve_threads
from tinynet.warmup import compile_notice

LABELMAP = "labelmap.txt"
MAX_LABELMAP_BYTES = 1 << 20


class TfliteSsdModel(DetectionModel):
    """A DetectionModel built from an SsdNetwork (tinynet.detection.tflite_ssd); ``labels``: one name per class;
    ``file_bytes``: the .tflite file it was read from, which is what tinynet's format stores for it."""

    def __init__(self, network, labels=None, source=None, threads=None, file_bytes=None):
        self.network = network
        self.file_bytes = file_bytes
        height, width = network.input_size
        layers = layers_for_weights(network.backbone, {k: v.shape for k, v in network.weights.items()})
        self._width = infer_width(network.backbone, layers)
        meta = {"preprocess": {"preset": "tf", "size": height, "crop_fraction": 1.0, "range": list(network.input_range)},
                "source": source}
        if labels:
            meta["labels"] = list(labels)  # else numbered names ("class 0", ...)
        super().__init__("ssd_mobilenet_v1", layers, network.nodes, network.weights, "tf_same", meta, threads,
                         outputs=network.outputs)
        # The backbone's grid goes to GraphPlan here, not through Model's classifier plans.
        self.quantized_activations = bool(network.activation_grid)

    def native_tensors(self):
        """The file itself, as one uint8 tensor: its graph, quantization and integer arithmetic are the file's, and
        reading it again (tinynet.formats.tflite.from_bytes) rebuilds them with all of that reader's checks."""
        if self.file_bytes is None:
            raise TinynetError(f"{self.arch}: this detector was not read from a .tflite file, so there is none to store")
        return {STORED_TENSOR: np.frombuffer(self.file_bytes, np.uint8)}

    def _head_weight_shapes(self, layers):
        shapes = backbone_shapes(layers, (1, *self.network.input_size, 3), "tf_same")
        return head_weight_shapes(self.network.nodes, shapes, "tf_same")

    @property
    def input_size(self):
        """(height, width) the network runs at (the file's input)."""
        return self.network.input_size

    @property
    def num_classes(self):
        """Classes of the postprocess's outputs (0-based, background not among them)."""
        return self.network.options.num_classes

    @property
    def width(self):
        """The backbone's width multiplier (0.75 for the shared file), None if no common one fits."""
        return self._width

    @property
    def labels(self):
        return labels_for(self)

    def __repr__(self):
        return f"<tinynet.TfliteSsdModel {self.arch} width={self.width} classes={self.num_classes}>"

    def forward(self, x):
        """Raw head outputs for a preprocessed batch (N, H, W, 3): {"box_encodings": (N, anchors, 4) ty, tx, th, tw;
        "class_scores": (N, anchors, 1 + classes) after the sigmoid, column 0 background}."""
        x = self._check_input(x)
        if x.shape[1:3] != self.network.input_size:
            raise TinynetError(f"expected a batch (N, {self.network.input_size[0]}, {self.network.input_size[1]}, 3), "
                               f"got {x.shape}; model.preprocess makes one")
        threads = resolve_threads(self.threads)
        grid = self.network.activation_grid if self.quantized_activations else None
        make = lambda: GraphPlan(self.layers, self.head, self.outputs, self.weights, self.padding, x.shape, threads,
                                 grid, packed_weights=self._packed_weights)
        with self._pooled_plan(("graph", x.shape, threads, grid is not None), make) as plan:
            numba.set_num_threads(threads)
            with compile_notice():
                return {name: array.copy() for name, array in plan.run(x).items()}

    def anchors(self, height=None, width=None):
        """The file's anchors as (anchors, 4) x0, y0, x1, y1 in input pixels (of the native input size by default;
        they are fixed fractions of the image, so another size scales them), in ``forward``'s order."""
        native_h, native_w = self.network.input_size
        height, width = height or native_h, width or native_w
        y, x, h, w = (self.network.anchors[:, i].astype(np.float64) for i in range(4))
        return np.stack([(x - w / 2) * width, (y - h / 2) * height, (x + w / 2) * width, (y + h / 2) * height], axis=1)

    def preprocess_with_geometry(self, image):
        """One image -> ((1, H, W, 3) float32, tinynet.geometry.Geometry)."""
        rgb = open_image(image)
        height, width = self.network.input_size
        q = np.asarray(rgb.resize((width, height), Image.Resampling.BILINEAR), np.float32)
        lo, hi = self.network.input_range
        x = np.float32(lo) + q * np.float32((hi - lo) / 255)  # exact for (q - 128) / 128
        return x[None], Geometry.resized((rgb.size[1], rgb.size[0]), (height, width))

    def postprocess(self, box_encodings, class_scores):
        """The file's TFLite_Detection_PostProcess on one image's head outputs: its four output tensors."""
        return detection_postprocess(box_encodings, class_scores, self.network.anchors, self.network.options)

    def detections(self, outputs, geometry, score_threshold=None, top=None):
        """One image's detections from its head outputs (``forward``'s, without the batch axis), best first: the
        file's postprocess, scores >= ``score_threshold`` (None: all it returns, at most its max_detections), at
        most ``top``; boxes (x0, y0, x1, y1) in the original image's pixels, clipped to it (``geometry``)."""
        boxes, classes, scores, n = self.postprocess(outputs["box_encodings"], outputs["class_scores"])
        n = int(n[0])
        height, width = geometry.input_size
        in_pixels = boxes[0, :n][:, [1, 0, 3, 2]].astype(np.float64) * [width, height, width, height]
        names = self.labels
        found = [Detection(names[int(c)], int(c), float(s), tuple(float(v) for v in box))
                 for box, c, s in zip(geometry.boxes_to_original(in_pixels), classes[0, :n], scores[0, :n])
                 if score_threshold is None or s >= score_threshold]
        return found[:top] if top is not None else found

    def count(self, resolution=None):
        """Parameters and multiply-adds of backbone and head (tinynet.spec.count's table, plus one row per head
        node) at the native input size; the anchors (a constant of the postprocess) are not counted."""
        size = self.network.input_size
        if resolution not in (None, size[0]) or size[0] != size[1]:
            raise TinynetError(f"this detector runs at its input size {size[0]}x{size[1]} only")
        layers = self.layers
        backbone = count(layers, size[0], self.padding)
        head = count_head(self.head, backbone_shapes(layers, (1, *size, 3), self.padding), self.padding)
        table = backbone["layers"] + head
        return {"params": sum(r["params"] for r in table), "macs": sum(r["macs"] for r in table), "layers": table}


def labels_from_file(data, num_classes):
    """The label names in the zip TFLite metadata appends after the flatbuffer (labelmap.txt, one per line), or None
    when there is none that fits: labels are a convenience, never a reason to refuse the weights."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            info = archive.getinfo(LABELMAP)
            if info.file_size > MAX_LABELMAP_BYTES or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                return None
            with archive.open(info) as f:
                text = f.read(MAX_LABELMAP_BYTES + 1)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError, NotImplementedError, RuntimeError):
        return None
    names = [line.strip() for line in text.decode("utf-8", errors="replace").splitlines()]
    names = [n for n in names if n] if len(names) != num_classes else names
    return names if len(names) == num_classes else None
