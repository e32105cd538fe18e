"""TFLite's custom operator TFLite_Detection_PostProcess (TF Object Detection API SSD exports), in NumPy.

    options = PostprocessOptions.from_flexbuffer(operator.custom_options)
    boxes, classes, scores, count = detection_postprocess(box_encodings, class_scores, anchors, options)

Inputs, for one image: box encodings (anchors, 4) as ty, tx, th, tw; class scores (anchors, classes + background
columns) after the graph's LOGISTIC; anchors (anchors, 4) as ycenter, xcenter, h, w, normalized. uint8 inputs are
dequantized in float32, ``(q - zero_point) * scale``, as the kernel does. The four outputs are the operator's:
boxes (1, n, 4) ymin, xmin, ymax, xmax (normalized, not clipped), classes (1, n) 0-based without background (as
float32), scores (1, n), count (1,); rows past ``count`` are zero.

Two NMS variants, as options.use_regular_nms selects:
  fast     each anchor keeps its best max_classes_per_detection classes, ranked by the best one; one
           class-agnostic greedy NMS over those ranks; at most max_detections anchors
  regular  a greedy NMS per class (at most detections_per_class boxes each), then the best max_detections
           of all classes by score
Both keep scores >= nms_score_threshold, suppress at IoU strictly greater than nms_iou_threshold (float32
arithmetic, 0 for a box without area) and rank equal scores in anchor order (TFLite's stable sort). Where TFLite
uses std::partial_sort (several classes per anchor in the fast variant, the cross-class merge of the regular one)
the order of equal scores is not specified by TFLite; here it stays anchor order, then class order.
"""
from dataclasses import dataclass

import numpy as np

from tinynet.detection.box_coder import decode_tflite
from tinynet.errors import UnsupportedModelError, WeightsError
from tinynet.kernels.nms import descending_order, nms_in_order

DEFAULT_DETECTIONS_PER_CLASS = 100  # TFLite's kNumDetectionsPerClass
REQUIRED = ("max_detections", "max_classes_per_detection", "nms_score_threshold", "nms_iou_threshold",
            "num_classes", "y_scale", "x_scale", "h_scale", "w_scale")


@dataclass(frozen=True)
class PostprocessOptions:
    max_detections: int
    max_classes_per_detection: int
    nms_score_threshold: float
    nms_iou_threshold: float
    num_classes: int
    y_scale: float
    x_scale: float
    h_scale: float
    w_scale: float
    detections_per_class: int = DEFAULT_DETECTIONS_PER_CLASS
    use_regular_nms: bool = False

    @classmethod
    def from_flexbuffer(cls, data, what="TFLite_Detection_PostProcess options"):
        from tinynet.formats.flexbuffer import loads
        return cls.from_map(loads(data, what), what)

    @classmethod
    def from_map(cls, options, what="TFLite_Detection_PostProcess options"):
        """From the decoded options map; refuses values TFLite would reject or that make no detections sense."""
        if not isinstance(options, dict):
            raise WeightsError(f"{what} are a {type(options).__name__}, not a map")
        missing = [k for k in REQUIRED if options.get(k) is None]
        if missing:
            raise WeightsError(f"{what} lack {', '.join(missing)}")
        values = {}
        for key, kind in cls.__annotations__.items():
            value = options.get(key)
            if value is None:
                continue
            if not isinstance(value, (int, float)):  # bool is an int
                raise WeightsError(f"{what}: {key} is {value!r}, not a number")
            values[key] = kind(value)  # int(), float() or bool(), as AsInt32/AsFloat/AsBool convert
        made = cls(**values)
        made._check(what)
        return made

    def _check(self, what):
        problems = []
        if self.max_detections < 0 or self.max_classes_per_detection < 1 or self.num_classes < 1:
            problems.append("max_detections must be >= 0, max_classes_per_detection and num_classes >= 1")
        if self.use_regular_nms and self.detections_per_class < 1:
            problems.append("detections_per_class must be >= 1")
        if not 0 < self.nms_iou_threshold <= 1:
            problems.append(f"nms_iou_threshold {self.nms_iou_threshold} is not in (0, 1]")
        if not all(np.isfinite(s) and s > 0 for s in (self.y_scale, self.x_scale, self.h_scale, self.w_scale)):
            problems.append("the y/x/h/w scales must be positive")
        if problems:
            raise UnsupportedModelError(f"{what}: {'; '.join(problems)}")

    @property
    def scales(self):
        return self.y_scale, self.x_scale, self.h_scale, self.w_scale

    @property
    def output_rows(self):
        """Rows of the operator's outputs (TFLite sizes them so at prepare time)."""
        return self.max_detections if self.use_regular_nms else self.max_detections * self.max_classes_per_detection


def dequantize(q, scale, zero_point):
    """uint8/int8 -> float32 as TFLite's postprocess kernel: (float(q) - zero_point) * scale in float32."""
    return (np.asarray(q).astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def decode_boxes(box_encodings, anchors, options):
    """(anchors, 4) float32 ymin, xmin, ymax, xmax; refuses inverted boxes, as TFLite's ValidateBoxes."""
    boxes = decode_tflite(np.asarray(box_encodings, np.float32), np.asarray(anchors, np.float32), *options.scales)
    if np.any(boxes[:, 0] > boxes[:, 2]) or np.any(boxes[:, 1] > boxes[:, 3]):
        raise UnsupportedModelError("TFLite_Detection_PostProcess: decoded boxes are inverted (anchors with a "
                                    "negative height or width)")
    return boxes


def single_class_nms(boxes, scores, max_detections, options):
    """Indices of the boxes kept by TFLite's NonMaxSuppressionSingleClassHelper, best first."""
    candidates = np.flatnonzero(scores >= np.float32(options.nms_score_threshold))
    order = candidates[descending_order(scores[candidates])]
    return nms_in_order(boxes, order, np.float32(options.nms_iou_threshold), max_detections)


def _best_classes(class_scores, k):
    """Per anchor, its k best class indices, best first (ties: the lower class, as std::max_element for k = 1)."""
    if k == 1 and not np.isnan(class_scores).any():  # argmax is that first maximum, without sorting every row
        return np.argmax(class_scores, axis=1)[:, None]
    return np.argsort(-class_scores, axis=1, kind="stable")[:, :k]


def fast_nms(boxes, class_scores, options):
    """(anchor, class index, score) triples of the fast variant, in output order; class_scores without background."""
    per_anchor = min(options.max_classes_per_detection, options.num_classes)
    best = _best_classes(class_scores, per_anchor)
    kept = single_class_nms(boxes, class_scores[np.arange(len(best)), best[:, 0]], options.max_detections, options)
    return kept, best[kept], np.take_along_axis(class_scores[kept], best[kept], axis=1)


def regular_nms(boxes, class_scores, options):
    """(anchors, classes, scores) of the regular variant, best first."""
    per_class = min(options.detections_per_class, options.max_detections)
    anchors, classes, scores = [], [], []
    for c in range(options.num_classes):
        kept = single_class_nms(boxes, class_scores[:, c], per_class, options)
        anchors.append(kept)
        classes.append(np.full(len(kept), c, np.int64))
        scores.append(class_scores[kept, c])
    anchors, classes, scores = (np.concatenate(parts) for parts in (anchors, classes, scores))
    best = descending_order(scores)[:options.max_detections]
    return anchors[best], classes[best], scores[best]


def detection_postprocess(box_encodings, class_scores, anchors, options):
    """The operator's four outputs (boxes, classes, scores, count) for one image; see the module docstring."""
    box_encodings, class_scores, anchors = (np.asarray(a, np.float32) for a in (box_encodings, class_scores, anchors))
    box_encodings = box_encodings.reshape(box_encodings.shape[-2:]) if box_encodings.ndim == 3 else box_encodings
    class_scores = class_scores.reshape(class_scores.shape[-2:]) if class_scores.ndim == 3 else class_scores
    n = anchors.shape[0]
    if box_encodings.shape != (n, 4) or anchors.shape != (n, 4) or class_scores.ndim != 2 or len(class_scores) != n:
        raise UnsupportedModelError(f"TFLite_Detection_PostProcess needs encodings ({n}, 4), anchors ({n}, 4) and "
                                    f"scores ({n}, classes), got {box_encodings.shape}, {anchors.shape}, "
                                    f"{class_scores.shape}")
    background = class_scores.shape[1] - options.num_classes
    if background < 0:
        raise UnsupportedModelError(f"TFLite_Detection_PostProcess: {class_scores.shape[1]} score columns for "
                                    f"{options.num_classes} classes")
    boxes = decode_boxes(box_encodings, anchors, options)
    class_scores = class_scores[:, background:]
    rows = options.output_rows
    out_boxes = np.zeros((1, rows, 4), np.float32)
    out_classes = np.zeros((1, rows), np.float32)
    out_scores = np.zeros((1, rows), np.float32)
    if options.use_regular_nms:
        kept, classes, scores = regular_nms(boxes, class_scores, options)
        out_boxes[0, :len(kept)] = boxes[kept]
        out_classes[0, :len(kept)] = classes
        out_scores[0, :len(kept)] = scores
    else:
        kept, classes, scores = fast_nms(boxes, class_scores, options)
        # Row stride max_classes_per_detection even when fewer classes exist, as TFLite lays them out.
        stride = options.max_classes_per_detection
        for row, (anchor, cls, score) in enumerate(zip(kept, classes, scores)):
            out_boxes[0, row * stride:row * stride + len(cls)] = boxes[anchor]
            out_classes[0, row * stride:row * stride + len(cls)] = cls
            out_scores[0, row * stride:row * stride + len(cls)] = score
    return out_boxes, out_classes, out_scores, np.array([len(kept)], np.float32)
