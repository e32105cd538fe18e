"""A TF Object Detection API SSD .tflite as a ready-to-run detection model (what tinynet.load returns for one).

    model = tinynet.load("ssd_mobilenet_v1.tflite")
    model.detect("pets.jpg")  # [Detection(label='dog', class_id=17, score=0.82, box=(x0, y0, x1, y1)), ...]

The network runs on tinynet's kernels (tinynet.graph.GraphPlan over the MobileNet V1 backbone,
tinynet.detection.tflite_ssd); the file's own TFLite_Detection_PostProcess (its options and anchors) turns the
head outputs into detections (tinynet.detection.tflite_postprocess). Preprocessing is the one these files are
run with: the whole image resized to the input size (Pillow bilinear, aspect ratio not kept), bytes q given to
the network as the file's input quantization says ((q - 128) / 128).
"""
import threading
import zipfile
from dataclasses import dataclass
from io import BytesIO

import numba
import numpy as np
from PIL import Image

from tinynet.detection.tflite_postprocess import detection_postprocess
from tinynet.errors import TinynetError
from tinynet.graph import GraphPlan, count_head
from tinynet.preprocess import open_image
from tinynet.spec import count, infer_width, layers_for_weights
from tinynet.threads import resolve as resolve_threads
from tinynet.warmup import compile_notice

LABELMAP = "labelmap.txt"
MAX_LABELMAP_BYTES = 1 << 20


@dataclass(frozen=True)
class Detection:
    label: str
    class_id: int  # 0-based, without background (index into the labels)
    score: float
    box: tuple  # (x0, y0, x1, y1) in the original image's pixels


class SsdDetector:
    """A detection model built from an SsdNetwork; ``labels``: one name per class."""

    task = "detection"
    padding = "tf_same"

    def __init__(self, network, labels=None, source=None, threads=None):
        self.network = network
        self.arch = network.backbone
        self.weights = network.weights
        self.layers = layers_for_weights(network.backbone, {k: v.shape for k, v in network.weights.items()})
        self.threads = threads
        height, width = network.input_size
        self.meta = {"preprocess": {"preset": "tf", "size": height, "crop_fraction": 1.0,
                                    "range": list(network.input_range)},
                     "labels": list(labels) if labels else [f"class {i}" for i in range(self.num_classes)],
                     "source": source}
        self._idle_plans = {}
        self._packed_weights = {}
        self._lock = threading.Lock()

    @property
    def num_classes(self):
        return self.network.options.num_classes

    @property
    def width(self):
        """The backbone's width multiplier (0.75 for the shared file), None if no common one fits."""
        return infer_width(self.arch, self.layers)

    @property
    def labels(self):
        return self.meta["labels"]

    def __repr__(self):
        return f"<tinynet SsdDetector {self.arch} classes={self.num_classes} input={self.network.input_size}>"

    def count(self, resolution=None):
        """Parameters and multiply-adds of backbone and head (tinynet.spec.count's table, plus one row per head
        node) at the native input size; the anchors (a constant of the postprocess) are not counted."""
        if resolution not in (None, self.network.input_size[0]) or self.network.input_size[0] != self.network.input_size[1]:
            raise TinynetError(f"this detector runs at its input size {self.network.input_size} only")
        backbone = count(self.layers, self.network.input_size[0], self.padding)
        taps = {row["name"]: (1, *row["output"]) for row in backbone["layers"]}
        head = count_head(self.network.nodes, taps, self.padding)
        table = backbone["layers"] + head
        return {"params": sum(r["params"] for r in table), "macs": sum(r["macs"] for r in table), "layers": table}

    # ---- running -----------------------------------------------------------------------------------------------

    def forward(self, x):
        """Raw head outputs for a preprocessed batch (N, H, W, 3): {"box_encodings": (N, anchors, 4) ty, tx, th, tw;
        "class_scores": (N, anchors, 1 + classes) after the sigmoid, column 0 background}."""
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1:] != (*self.network.input_size, 3):
            shape = getattr(x, "shape", type(x).__name__)
            raise TinynetError(f"expected a batch (N, {self.network.input_size[0]}, {self.network.input_size[1]}, 3), "
                               f"got {shape}; model.preprocess makes one")
        x = np.require(x, np.float32, ["C", "A", "W"])
        threads = resolve_threads(self.threads)
        key = (x.shape, threads)
        with self._lock:
            idle = self._idle_plans.setdefault(key, [])
            plan = idle.pop() if idle else None
        if plan is None:
            plan = GraphPlan(self.layers, self.network.nodes, self.network.outputs, self.weights, self.padding, x.shape,
                             threads, self.network.activation_grid, packed_weights=self._packed_weights)
        try:
            numba.set_num_threads(threads)
            with compile_notice():
                return {name: array.copy() for name, array in plan.run(x).items()}
        finally:
            with self._lock:
                self._idle_plans[key].append(plan)

    def anchors(self, height=None, width=None):
        """The file's anchors as (anchors, 4) x0, y0, x1, y1 in input pixels (of the native input size by default;
        the anchors are fixed fractions of the image, so another size scales them)."""
        native_h, native_w = self.network.input_size
        height, width = height or native_h, width or native_w
        y, x, h, w = (self.network.anchors[:, i].astype(np.float64) for i in range(4))
        return np.stack([(x - w / 2) * width, (y - h / 2) * height, (x + w / 2) * width, (y + h / 2) * height], axis=1)

    def preprocess(self, image):
        """One image (path, PIL image, array, bytes) -> (1, H, W, 3) float32; a list gives (N, H, W, 3)."""
        if isinstance(image, (list, tuple)):
            return np.concatenate([self.preprocess(one) for one in image])
        return self._prepare(open_image(image))[None]

    def _prepare(self, rgb):
        height, width = self.network.input_size
        q = np.asarray(rgb.resize((width, height), Image.Resampling.BILINEAR), np.float32)
        lo, hi = self.network.input_range
        return np.float32(lo) + q * np.float32((hi - lo) / 255)  # exact for (q - 128) / 128

    def postprocess(self, box_encodings, class_scores):
        """The file's TFLite_Detection_PostProcess on one image's head outputs: its four output tensors."""
        return detection_postprocess(box_encodings, class_scores, self.network.anchors, self.network.options)

    def detect(self, images, score_threshold=None, top=None):
        """Detections per image, best first: [Detection(label, class_id, score, box), ...].

        ``images``: one image (as for ``preprocess``) or a list (then a list of lists). ``score_threshold``: keep
        scores >= it (None: all the file's postprocess returns, at most its max_detections); ``top``: at most this
        many. Boxes are in the original image's pixels, clipped to it."""
        if isinstance(images, (list, tuple)):
            return [self.detect(image, score_threshold, top) for image in images]
        rgb = open_image(images)
        out = self.forward(self._prepare(rgb)[None])
        boxes, classes, scores, count = self.postprocess(out["box_encodings"][0], out["class_scores"][0])
        width, height = rgb.size
        found = []
        for (ymin, xmin, ymax, xmax), class_id, score in zip(boxes[0], classes[0], scores[0][:int(count[0])]):
            if score_threshold is not None and score < score_threshold:
                continue
            box = (float(np.clip(xmin * width, 0, width)), float(np.clip(ymin * height, 0, height)),
                   float(np.clip(xmax * width, 0, width)), float(np.clip(ymax * height, 0, height)))
            found.append(Detection(self.labels[int(class_id)], int(class_id), float(score), box))
        return found[:top] if top is not None else found

    def classify(self, *args, **kwargs):
        raise TinynetError("this model's task is detection (an SSD detector): use model.detect, or `tinynet detect`")


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
