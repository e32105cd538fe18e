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
def _greedy_nms(boxes, order, iou_threshold, max_kept):
    """Indices (into ``boxes``) kept by greedy NMS visiting boxes in ``order``, stopping once ``max_kept`` are kept
    (the later ones could only be kept after them, so the first ``max_kept`` are the same either way).

    The boxes are gathered in visiting order into one array per coordinate, and each kept box computes its IoU with
    every later box into a scratch row, suppressed or not, before marking those above the threshold: that loop is
    contiguous and free of branches and stores to the mask, so LLVM vectorises it (the IoUs are the same
    float operations as before, one pair at a time). On 90 groups of 300 boxes (SSDLite's candidates) it took
    0.6-0.8x the time of the one-pair-at-a-time loop (A/B runs on a busy machine)."""
    n = order.shape[0]
    x0, y0 = np.empty(n, boxes.dtype), np.empty(n, boxes.dtype)
    x1, y1 = np.empty(n, boxes.dtype), np.empty(n, boxes.dtype)
    for a in range(n):
        x0[a], y0[a], x1[a], y1[a] = boxes[order[a], 0], boxes[order[a], 1], boxes[order[a], 2], boxes[order[a], 3]
    area = (x1 - x0) * (y1 - y0)
    iou = np.empty(n, boxes.dtype)
    zero = np.zeros(1, dtype=boxes.dtype)[0]  # a float literal would turn float32 IoUs into float64 ones
    suppressed = np.zeros(n, dtype=np.bool_)
    keep = np.empty(n, dtype=np.int64)
    kept = 0
    for a in range(n):
        if kept == max_kept:
            break
        if suppressed[a]:
            continue
        keep[kept] = order[a]
        kept += 1
        xa0, ya0, xa1, ya1, area_a = x0[a], y0[a], x1[a], y1[a], area[a]  # scalars: the loop below writes iou
        for b in range(a + 1, n):
            w = min(xa1, x1[b]) - max(xa0, x0[b])
            h = min(ya1, y1[b]) - max(ya0, y0[b])
            inter = max(w, zero) * max(h, zero)
            iou[b] = inter / (area_a + area[b] - inter)
        for b in range(a + 1, n):
            if iou[b] > iou_threshold:
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


def nms_in_order(boxes, order, iou_threshold, max_kept=None):
    """Greedy NMS visiting boxes in a given ``order`` (e.g. a score order with the caller's tie rule): kept indices,
    at most ``max_kept`` (TFLite's NMS stops there; the search stops too, which saves most of its work)."""
    boxes, _ = _check(boxes, np.zeros(len(boxes)))
    order = np.asarray(order, dtype=np.int64)
    return _greedy_nms(boxes, order, boxes.dtype.type(iou_threshold), len(order) if max_kept is None else max_kept)


def nms(boxes, scores, iou_threshold):
    """torchvision.ops.nms: indices of the kept boxes, by descending score."""
    boxes, scores = _check(boxes, scores)
    return _greedy_nms(boxes, descending_order(scores), boxes.dtype.type(iou_threshold), len(scores))


@numba.njit(cache=True, error_model="numpy")
def _greedy_nms_by_class(boxes, order, classes, n_classes, iou_threshold, max_kept):
    """Indices kept by greedy NMS within each class, visiting all classes' boxes in one ``order``, the first
    ``max_kept`` of them in that order. A box is kept unless an earlier kept box of its class overlaps it by more
    than the threshold, which is what NMS class by class decides; and nothing after the first ``max_kept`` kept
    boxes can change them, so the visit stops there (torchvision's SSD keeps 300 of up to 27,000 candidates).
    ``classes``: 0 .. n_classes - 1 per box. The kept boxes of a class are a linked list through ``previous``."""
    n = order.shape[0]
    limit = min(n, max_kept)
    keep = np.empty(limit, dtype=np.int64)
    previous = np.empty(limit, dtype=np.int64)  # per kept box: where in keep the previous one of its class is
    last = np.full(n_classes, -1, dtype=np.int64)  # per class: where in keep its latest kept box is
    zero = np.zeros(1, dtype=boxes.dtype)[0]  # a float literal would turn float32 IoUs into float64 ones
    kept = 0
    for a in range(n):
        if kept == limit:
            break
        j = order[a]
        area_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
        k = last[classes[j]]
        while k >= 0:
            i = keep[k]  # kept before j: the IoU is formed as _greedy_nms forms it, kept box first
            w = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            h = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            inter = max(w, zero) * max(h, zero)
            area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            if inter / (area_i + area_j - inter) > iou_threshold:
                break
            k = previous[k]
        if k < 0:  # no kept box of its class suppressed it
            keep[kept] = j
            previous[kept] = last[classes[j]]
            last[classes[j]] = kept
            kept += 1
    return keep[:kept]


def batched_nms(boxes, scores, class_ids, iou_threshold, max_kept=None):
    """torchvision.ops.batched_nms: NMS within each class, kept indices by descending score over all classes; with
    ``max_kept``, only the first that many (``batched_nms(...)[:max_kept]``, found without visiting the rest).

    Classes are told apart by their ids rather than by torchvision's trick of shifting each class's boxes
    apart: the kept set is the same, and large coordinates lose no precision to the shift.
    """
    boxes, scores = _check(boxes, scores)
    class_ids = np.asarray(class_ids)
    if class_ids.shape != scores.shape:
        raise ValueError(f"batched_nms needs one class id per box, got {class_ids.shape} for {scores.shape}")
    classes, index = np.unique(class_ids, return_inverse=True)
    return _greedy_nms_by_class(boxes, descending_order(scores), index.astype(np.int64).ravel(), len(classes),
                                boxes.dtype.type(iou_threshold), len(scores) if max_kept is None else max_kept)


def top_descending(scores, k):
    """``descending_order(scores)[:k]`` without sorting all of ``scores``: the k best, ties in input order."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) <= k or np.isnan(scores).any():  # NaNs sort last, and compare with nothing
        return descending_order(scores)[:k]
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th largest value
    above = np.flatnonzero(scores > kth)
    ties = np.flatnonzero(scores == kth)[:k - len(above)]  # a stable sort puts the first of equal scores first
    chosen = np.sort(np.concatenate([above, ties]))
    return chosen[descending_order(scores[chosen])]
