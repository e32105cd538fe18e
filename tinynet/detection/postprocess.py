"""Head outputs -> detections, as pure NumPy functions (one image at a time)."""
import numpy as np

from ..kernels.nms import batched_nms, top_descending
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
    by_class = np.ascontiguousarray(scores.T)  # (classes, anchors): each class's scores contiguous
    for label in range(1, scores.shape[1]):
        candidates = np.flatnonzero(by_class[label] > score_threshold)
        best = candidates[top_descending(by_class[label, candidates], topk_candidates)]
        picked_boxes.append(boxes[best])
        picked_scores.append(by_class[label, best])
        picked_labels.append(np.full(len(best), label, dtype=np.int64))
    boxes, scores, labels = (np.concatenate(parts) for parts in (picked_boxes, picked_scores, picked_labels))
    keep = batched_nms(boxes, scores, labels, nms_threshold, detections_per_img)
    boxes = boxes[keep]
    if original_size is not None:
        # Scaled per axis, as torchvision resizes each axis independently.
        scale = np.array([original_size[1] / width, original_size[0] / height] * 2, dtype=boxes.dtype)
        boxes = boxes * scale
    return boxes, scores[keep], labels[keep]

