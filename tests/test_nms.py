"""NMS kernels against a plain float64 reference written from torchvision's documented semantics."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels.nms import batched_nms, descending_order, nms, nms_in_order, top_descending


def iou_pair_ref(a, b):
    """IoU of two (x0, y0, x1, y1) boxes, no +1; NaN for two empty boxes (0/0), as torchvision."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if union == 0.0:
        return float("nan")
    return inter / union


def nms_ref(boxes, scores, threshold):
    """Greedy: take the best remaining box (first in input order among equal scores), drop those it overlaps."""
    boxes = [tuple(float(v) for v in b) for b in boxes]
    remaining = sorted(range(len(boxes)), key=lambda i: (-float(scores[i]), i))
    keep = []
    while remaining:
        best = remaining.pop(0)
        keep.append(best)
        remaining = [j for j in remaining if not iou_pair_ref(boxes[best], boxes[j]) > threshold]
    return keep


def batched_nms_ref(boxes, scores, classes, threshold):
    keep = []
    for c in set(int(c) for c in classes):
        members = [i for i in range(len(boxes)) if classes[i] == c]
        keep += [members[k] for k in nms_ref([boxes[i] for i in members], [scores[i] for i in members], threshold)]
    return sorted(keep, key=lambda i: (-float(scores[i]), i))


# Small integer coordinates: IoUs are exact small fractions, so float32 and float64 agree even at the threshold,
# and degenerate (zero-area, inverted) and identical boxes come up often.
coord = st.integers(0, 12)
box = st.tuples(coord, coord, st.integers(-2, 8), st.integers(-2, 8)).map(lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3]))
score = st.sampled_from([0.1, 0.5, 0.5, 0.9, 1.0])
threshold = st.sampled_from([0.0, 0.25, 1 / 3, 0.5, 0.7, 1.0])
case = st.lists(st.tuples(box, score, st.integers(0, 2)), min_size=0, max_size=40)


def unpack(items, dtype):
    boxes = np.array([b for b, _, _ in items], dtype=dtype).reshape(-1, 4)
    scores = np.array([s for _, s, _ in items], dtype=dtype)
    classes = np.array([c for _, _, c in items], dtype=np.int64)
    return boxes, scores, classes


@settings(max_examples=300, deadline=None)
@given(case, threshold, st.sampled_from([np.float32, np.float64]))
def test_nms_matches_reference(items, thr, dtype):
    boxes, scores, _ = unpack(items, dtype)
    assert nms(boxes, scores, thr).tolist() == nms_ref(boxes, scores, thr)


@settings(max_examples=300, deadline=None)
@given(case, threshold)
def test_batched_nms_matches_reference(items, thr):
    boxes, scores, classes = unpack(items, np.float32)
    assert batched_nms(boxes, scores, classes, thr).tolist() == batched_nms_ref(boxes, scores, classes, thr)


@settings(max_examples=200, deadline=None)
@given(case, threshold, st.integers(0, 45))
def test_nms_stopping_at_max_kept_keeps_the_first_of_all(items, thr, max_kept):
    boxes, scores, classes = unpack(items, np.float32)
    order = descending_order(scores)
    assert nms_in_order(boxes, order, thr, max_kept).tolist() == nms_ref(boxes, scores, thr)[:max_kept]
    assert batched_nms(boxes, scores, classes, thr, max_kept).tolist() == \
        batched_nms_ref(boxes, scores, classes, thr)[:max_kept]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0.0, -0.0, 0.1, 0.5, 0.5, 0.9, 1.0, float("nan")]), max_size=60), st.integers(1, 70))
def test_top_descending_is_a_stable_sort_cut_at_k(scores, k):
    """The k best scores, highest first, equal scores in input order (NaN last), as sorting them all would give."""
    expected = sorted(range(len(scores)), key=lambda i: (np.isnan(scores[i]), -scores[i] if scores[i] == scores[i] else 0, i))
    assert top_descending(np.array(scores, np.float32), k).tolist() == expected[:k]


def test_ties_keep_input_order_and_iou_at_threshold_is_kept():
    boxes = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 4]], dtype=np.float32)
    scores = np.array([0.5, 0.5, 0.9], dtype=np.float32)
    # Box 2 is best; its IoU with the others is exactly 0.5, not above 0.5, so they survive; 1 duplicates 0.
    assert nms(boxes, scores, 0.5).tolist() == [2, 0]
    assert nms(boxes, scores, 0.49).tolist() == [2]


def test_zero_area_boxes_never_suppress():
    boxes = np.zeros((3, 4), dtype=np.float32)
    assert nms(boxes, np.ones(3, dtype=np.float32), 0.0).tolist() == [0, 1, 2]


def test_empty_and_bad_shapes():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []
    with pytest.raises(ValueError):
        nms(np.zeros((3, 5)), np.zeros(3), 0.5)


def test_thousands_of_boxes():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (2000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 60, (2000, 2))], axis=1).astype(np.float32)
    scores = rng.uniform(size=2000).astype(np.float32)
    classes = rng.integers(0, 5, 2000)
    assert nms(boxes, scores, 0.55).tolist() == nms_ref(boxes, scores, 0.55)
    assert batched_nms(boxes, scores, classes, 0.55).tolist() == batched_nms_ref(boxes, scores, classes, 0.55)
    assert batched_nms(boxes, scores, classes, 0.55, 300).tolist() == batched_nms_ref(boxes, scores, classes, 0.55)[:300]


def test_matches_torchvision():
    from pathlib import Path
    f = np.load(Path(__file__).parent / "fixtures" / "detection_torchvision.npz")
    assert nms(f["boxes"], f["scores"], 0.55).tolist() == f["nms_055"].tolist()
    assert batched_nms(f["boxes"], f["scores"], f["classes"], 0.55).tolist() == f["batched_nms_055"].tolist()
