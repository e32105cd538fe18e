"""Head outputs -> detections, as pure NumPy functions (one image at a time)."""
import numpy as np

from ..kernels.nms import batched_nms, descending_order
from .box_coder import decode_torchvision


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def torchvision_ssd(cls_logits, bbox_regression, anchors_xyxy, image_size, original_size=None, score_threshold=0.001,
                    topk_candidates=300, nms_threshold=0.55, detections_per_img=300):
    """torchvision SSD.postprocess_detections then GeneralizedRCNNTransform.postprocess, for one image.

    ``cls_logits`` (anchors, classes) with background at 0, ``bbox_regression`` (anchors, 4), anchors in input
    pixels; ``image_size`` and ``original_size`` are (height, width). Returns boxes (n, 4) x0, y0, x1, y1 in the
    original image's pixels, scores (n,) and labels (n,), best first.
    """
    scores = _softmax(np.asarray(cls_logits))
    height, width = image_size
    boxes = decode_torchvision(bbox_regression, anchors_xyxy)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    picked_boxes, picked_scores, picked_labels = [], [], []
    for label in range(1, scores.shape[1]):
        candidates = np.flatnonzero(scores[:, label] > score_threshold)
        best = candidates[descending_order(scores[candidates, label])[:topk_candidates]]
        picked_boxes.append(boxes[best])
        picked_scores.append(scores[best, label])
        picked_labels.append(np.full(len(best), label, dtype=np.int64))
    boxes, scores, labels = (np.concatenate(parts) for parts in (picked_boxes, picked_scores, picked_labels))
    keep = batched_nms(boxes, scores, labels, nms_threshold)[:detections_per_img]
    boxes = boxes[keep]
    if original_size is not None:
        # Scaled per axis, as torchvision resizes each axis independently.
        scale = np.array([original_size[1] / width, original_size[0] / height] * 2, dtype=boxes.dtype)
        boxes = boxes * scale
    return boxes, scores[keep], labels[keep]


def _iou_tflite(a, b):
    """IoU as TFLite_Detection_PostProcess computes it: 0 whenever either box has no area."""
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    if area_a <= 0 or area_b <= 0:
        return 0.0
    inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    return inter / (area_a + area_b - inter)


def tflite_fast_nms(boxes, scores, max_detections, nms_score_threshold, nms_iou_threshold, max_classes_per_detection=1):
    """TFLite_Detection_PostProcess with use_regular_nms false: one class-agnostic NMS over each box's best class.

    ``boxes`` (anchors, 4) decoded ymin, xmin, ymax, xmax; ``scores`` (anchors, classes) without the background
    column. Returns boxes (n, 4), classes (n, k) and scores (n, k) with k = max_classes_per_detection, best first.
    """
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    best_classes = np.argsort(-scores, axis=1, kind="stable")[:, :max_classes_per_detection]
    best_scores = np.take_along_axis(scores, best_classes, axis=1)
    candidates = np.flatnonzero(best_scores[:, 0] >= nms_score_threshold)
    kept = []
    for i in candidates[descending_order(best_scores[candidates, 0])]:
        if len(kept) == max_detections:
            break
        if all(_iou_tflite(boxes[i], boxes[j]) <= nms_iou_threshold for j in kept):
            kept.append(i)
    kept = np.array(kept, dtype=np.int64)
    return boxes[kept].reshape(-1, 4), best_classes[kept], best_scores[kept]
