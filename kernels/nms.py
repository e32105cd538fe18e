"""Greedy non-maximum suppression on (x0, y0, x1, y1) boxes, with torchvision's conventions.

IoU has no "+1" (boxes are continuous), the order is by descending score with ties kept in input
order (a stable sort, as torchvision sorts), and a box is suppressed only when its IoU with a kept box
is strictly greater than the threshold, computed in the boxes' dtype (as torchvision and TFLite do). Two zero-area boxes have IoU 0/0 = NaN, which is not greater
than any threshold, so neither suppresses the other (as in torchvision): ``error_model="numpy"``
keeps that division a NaN instead of an exception.
"""
import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def _greedy_nms(boxes, order, iou_threshold):
    """Indices (into ``boxes``) kept by greedy NMS visiting boxes in ``order``."""
    n = order.shape[0]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    zero = np.zeros(1, dtype=boxes.dtype)[0]  # a float literal would turn float32 IoUs into float64 ones
    suppressed = np.zeros(n, dtype=np.bool_)
    keep = np.empty(n, dtype=np.int64)
    kept = 0
    for a in range(n):
        if suppressed[a]:
            continue
        i = order[a]
        keep[kept] = i
        kept += 1
        for b in range(a + 1, n):
            if suppressed[b]:
                continue
            j = order[b]
            w = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            h = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            inter = max(w, zero) * max(h, zero)
            iou = inter / (area[i] + area[j] - inter)
            if iou > iou_threshold:
                suppressed[b] = True
    return keep[:kept]


def _check(boxes, scores):
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
        raise ValueError(f"nms needs boxes (N, 4) and scores (N,), got {boxes.shape} and {scores.shape}")
    dtype = np.float64 if boxes.dtype == np.float64 else np.float32
    return np.ascontiguousarray(boxes, dtype=dtype), scores


def descending_order(scores):
    """Indices sorting ``scores`` from highest to lowest, ties in input order (torchvision's stable sort)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def nms_in_order(boxes, order, iou_threshold):
    """Greedy NMS visiting boxes in a given ``order`` (e.g. a score order with the caller's tie rule): kept indices."""
    boxes, _ = _check(boxes, np.zeros(len(boxes)))
    return _greedy_nms(boxes, np.asarray(order, dtype=np.int64), boxes.dtype.type(iou_threshold))


def nms(boxes, scores, iou_threshold):
    """torchvision.ops.nms: indices of the kept boxes, by descending score."""
    boxes, scores = _check(boxes, scores)
    return _greedy_nms(boxes, descending_order(scores), boxes.dtype.type(iou_threshold))


def batched_nms(boxes, scores, class_ids, iou_threshold):
    """torchvision.ops.batched_nms: NMS within each class, kept indices by descending score over all classes.

    Classes are run one at a time rather than by torchvision's trick of shifting each class's boxes
    apart: the kept set is the same, and large coordinates lose no precision to the shift.
    """
    boxes, scores = _check(boxes, scores)
    class_ids = np.asarray(class_ids)
    if class_ids.shape != scores.shape:
        raise ValueError(f"batched_nms needs one class id per box, got {class_ids.shape} for {scores.shape}")
    threshold = boxes.dtype.type(iou_threshold)
    order = descending_order(scores)
    kept = np.zeros(len(scores), dtype=bool)
    for class_id in np.unique(class_ids):
        in_class = order[class_ids[order] == class_id]
        kept[_greedy_nms(boxes, in_class, threshold)] = True
    return order[kept[order]]
