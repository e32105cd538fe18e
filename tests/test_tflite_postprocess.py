"""TFLite_Detection_PostProcess: bit for bit against LiteRT (fixtures made offline, and the SSD file's stored head
tensors), and against a plain Python reference written from the operator's documented rules."""
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from test_flexbuffer import encode
from tinynet.detection.tflite_postprocess import (PostprocessOptions, dequantize, detection_postprocess, fast_nms,
                                                  regular_nms)
from tinynet.errors import UnsupportedModelError, WeightsError

FIXTURE = Path(__file__).parent / "fixtures" / "tflite_postprocess_litert.npz"
OUTPUTS = ("boxes", "classes", "scores", "count")


def options(**changes):
    base = {"max_detections": 10, "max_classes_per_detection": 1, "nms_score_threshold": 0.25,
            "nms_iou_threshold": 0.5, "num_classes": 3, "y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0,
            "w_scale": 5.0}
    return PostprocessOptions.from_flexbuffer(encode({**base, **changes}))


# ---- LiteRT -----------------------------------------------------------------------------------------------------

def fixture_cases():
    f = np.load(FIXTURE)
    return sorted({k.split("/")[0] for k in f if "/" in k})


@pytest.mark.parametrize("case", fixture_cases())
def test_matches_litert_exactly(case):
    f = np.load(FIXTURE)
    quant = json.loads(str(f["quant"]))
    opts = PostprocessOptions.from_map(json.loads(str(f[f"{case}/options"])))
    inputs = [f[f"{case}/{k}"] for k in ("encodings", "scores", "anchors")]
    if inputs[0].dtype == np.uint8:
        inputs = [dequantize(a, *quant[k]) for a, k in zip(inputs, ("enc", "scores", "anchors"))]
    got = detection_postprocess(*inputs, opts)
    want = [f[f"{case}/{k}"] for k in ("boxes", "classes", "out_scores", "count")]
    np.testing.assert_array_equal(got[3], want[3])
    n = int(want[3][0]) * (1 if opts.use_regular_nms else opts.max_classes_per_detection)
    for name, g, w in zip(OUTPUTS, got[:3], want[:3]):
        assert g.dtype == np.float32 and g.shape == w.shape, name
        np.testing.assert_array_equal(g[:, :n], w[:, :n], err_msg=name)  # LiteRT leaves later rows unwritten
        assert not g[:, n:].any()


def test_ssd_file_outputs_from_its_stored_head_tensors():
    from tinynet.formats.tflite_schema import read_graph
    graph = read_graph(shared_path("weights", "edje_tflite_od", "ssd_mobilenet_v1.tflite").read_bytes())
    op = graph.operators[-1]
    opts = PostprocessOptions.from_flexbuffer(op.custom_options)
    anchors = graph.tensors[op.inputs[2]]
    assert anchors.name == "anchors" and anchors.shape == (1917, 4)
    anchors = dequantize(anchors.data, anchors.scale[0], anchors.zero_point[0])
    photos = sorted(shared_path("weights", "expected", "ssd_mobilenet_v1").glob("*.npz"))
    assert len(photos) >= 10
    for photo in photos:
        f = np.load(photo)
        got = detection_postprocess(dequantize(f["raw_box_encodings"], *f["raw_box_quant"]),
                                    dequantize(f["raw_scores"], *f["raw_scores_quant"]), anchors, opts)
        for name, g, key in zip(OUTPUTS, got, ("boxes", "classes", "scores", "num")):
            np.testing.assert_array_equal(g, f[key], err_msg=f"{photo.name} {name}")


# ---- a plain reference --------------------------------------------------------------------------------------------

def iou_ref(a, b):
    """ymin, xmin, ymax, xmax boxes; 0 when either has no area (TFLite's rule)."""
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    if area_a <= 0 or area_b <= 0:
        return 0.0
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / (area_a + area_b - inter)


def greedy_ref(boxes, scores, score_threshold, iou_threshold, limit):
    """Anchors kept: scores >= threshold, best first (equal scores: lower anchor first), drop IoU > threshold."""
    remaining = sorted((i for i in range(len(boxes)) if scores[i] >= score_threshold), key=lambda i: (-scores[i], i))
    kept = []
    while remaining and len(kept) < limit:
        best = remaining.pop(0)
        kept.append(best)
        remaining = [j for j in remaining if not iou_ref(boxes[best], boxes[j]) > iou_threshold]
    return kept


def fast_ref(boxes, scores, o):
    """[(anchor, [classes], [scores])]: each anchor's best classes (equal scores: lower class first)."""
    k = min(o.max_classes_per_detection, o.num_classes)
    ranked = [sorted(range(len(row)), key=lambda c: (-row[c], c))[:k] for row in scores]
    kept = greedy_ref(boxes, [row[r[0]] for row, r in zip(scores, ranked)], o.nms_score_threshold,
                      o.nms_iou_threshold, o.max_detections)
    return [(a, ranked[a], [scores[a][c] for c in ranked[a]]) for a in kept]


def regular_ref(boxes, scores, o):
    """[(anchor, class, score)] best first; equal scores: lower class, then NMS order."""
    found = []
    for c in range(o.num_classes):
        column = [row[c] for row in scores]
        kept = greedy_ref(boxes, column, o.nms_score_threshold, o.nms_iou_threshold,
                          min(o.detections_per_class, o.max_detections))
        found += [(-column[a], c, rank, a) for rank, a in enumerate(kept)]
    return [(a, c, -s) for s, c, _, a in sorted(found)[:o.max_detections]]


# Boxes and scores on coarse binary grids: float32 holds every area and score exactly, and an IoU can equal a
# threshold exactly or miss it by far more than float32 rounding, so float32 and the float64 reference agree.
grid_box = st.tuples(*[st.integers(0, 24)] * 2, *[st.integers(0, 12)] * 2).map(
    lambda t: (t[0] / 8, t[1] / 8, (t[0] + t[2]) / 8, (t[1] + t[3]) / 8))
grid_score = st.integers(0, 8).map(lambda k: k / 8)


@st.composite
def problems(draw, max_anchors=40):
    classes = draw(st.integers(1, 4))
    n = draw(st.integers(0, max_anchors))
    boxes = draw(st.lists(grid_box, min_size=n, max_size=n))
    scores = draw(st.lists(st.lists(grid_score, min_size=classes, max_size=classes), min_size=n, max_size=n))
    o = options(num_classes=classes, max_detections=draw(st.integers(0, 12)),
                max_classes_per_detection=draw(st.integers(1, 5)), detections_per_class=draw(st.integers(1, 6)),
                nms_score_threshold=draw(grid_score), nms_iou_threshold=draw(st.sampled_from([0.25, 0.5, 0.6, 1 / 3, 1.0])))
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32).reshape(-1, classes), o


@settings(max_examples=300, deadline=None)
@given(problems())
def test_fast_nms_matches_reference(problem):
    boxes, scores, o = problem
    kept, classes, kept_scores = fast_nms(boxes, scores, o)
    want = fast_ref(boxes.tolist(), scores.tolist(), o)
    assert kept.tolist() == [a for a, _, _ in want]
    assert classes.tolist() == [c for _, c, _ in want]
    assert kept_scores.tolist() == [s for _, _, s in want]


@settings(max_examples=300, deadline=None)
@given(problems())
def test_regular_nms_matches_reference(problem):
    boxes, scores, o = problem
    anchors, classes, kept_scores = regular_nms(boxes, scores, o)
    assert list(zip(anchors.tolist(), classes.tolist(), kept_scores.tolist())) == regular_ref(
        boxes.tolist(), scores.tolist(), o)


def test_iou_exactly_at_the_threshold_does_not_suppress():
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 0.5], [0, 0, 1, 0.25]], np.float32)  # IoUs 0.5 and 0.25 with box 0
    scores = np.array([[0.9], [0.8], [0.7]], np.float32)
    assert fast_nms(boxes, scores, options(num_classes=1, nms_iou_threshold=0.5))[0].tolist() == [0, 1, 2]
    assert fast_nms(boxes, scores, options(num_classes=1, nms_iou_threshold=0.25))[0].tolist() == [0, 2]


def test_zero_area_boxes_never_suppress_or_get_suppressed():
    boxes = np.array([[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 1, 1]], np.float32)
    scores = np.full((4, 1), 0.5, np.float32)
    assert fast_nms(boxes, scores, options(num_classes=1))[0].tolist() == [0, 1, 2]


def test_equal_scores_keep_anchor_order_and_the_lower_class():
    boxes = np.array([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]], np.float32)
    scores = np.array([[0.5, 0.5], [0.5, 0.75], [0.75, 0.75]], np.float32)
    kept, classes, _ = fast_nms(boxes, scores, options(num_classes=2))
    assert kept.tolist() == [1, 2, 0] and classes[:, 0].tolist() == [1, 0, 0]


def test_no_anchors_and_nothing_above_threshold():
    o = options()
    for n, score in ((0, 0.0), (5, 0.1)):
        boxes, classes, scores, count = detection_postprocess(np.zeros((n, 4)), np.full((n, 4), score), np.ones((n, 4)), o)
        assert count.tolist() == [0] and boxes.shape == (1, 10, 4) and not boxes.any() and not scores.any()


def test_thousands_of_boxes():
    rng = np.random.default_rng(0)
    corners = rng.integers(0, 64, (3000, 2)) / 8
    boxes = np.concatenate([corners, corners + rng.integers(1, 24, (3000, 2)) / 8], axis=1).astype(np.float32)
    scores = (rng.integers(0, 32, (3000, 2)) / 32).astype(np.float32)
    o = options(num_classes=2, max_detections=50, detections_per_class=40, nms_score_threshold=0.5)
    assert fast_nms(boxes, scores, o)[0].tolist() == [a for a, _, _ in fast_ref(boxes.tolist(), scores.tolist(), o)]
    anchors, classes, kept = regular_nms(boxes, scores, o)
    assert list(zip(anchors.tolist(), classes.tolist(), kept.tolist())) == regular_ref(boxes.tolist(), scores.tolist(), o)
    assert len(anchors) == 50


def test_fast_outputs_several_classes_per_anchor_with_tflite_row_stride():
    o = options(num_classes=2, max_classes_per_detection=3, max_detections=2)
    enc = np.zeros((2, 4), np.float32)
    anchors = np.array([[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]], np.float32)
    boxes, classes, scores, count = detection_postprocess(enc, np.array([[0, 0.3, 0.6], [0, 0.9, 0.2]]), anchors, o)
    assert boxes.shape == (1, 6, 4) and count.tolist() == [2]
    assert classes[0].tolist() == [0, 1, 0, 1, 0, 0]  # anchor 1 (best 0.9), then anchor 0; row 3 of each unused
    np.testing.assert_array_equal(scores[0], np.float32([0.9, 0.2, 0, 0.6, 0.3, 0]))
    np.testing.assert_allclose(boxes[0, 3], [0.4, 0.4, 0.6, 0.6], rtol=1e-6)


# ---- options and refusals -----------------------------------------------------------------------------------------

def test_options_defaults_and_conversions():
    o = options(max_detections=7.0, use_regular_nms=1)
    assert o.max_detections == 7 and o.use_regular_nms is True and o.detections_per_class == 100
    assert isinstance(o.y_scale, float) and o.output_rows == 7


@pytest.mark.parametrize("changes, error, message", [
    ({"y_scale": None}, WeightsError, "lack y_scale"),
    ({"num_classes": "ninety"}, WeightsError, "num_classes is 'ninety'"),
    ({"nms_iou_threshold": 0.0}, UnsupportedModelError, r"nms_iou_threshold 0.0 is not in \(0, 1\]"),
    ({"w_scale": -5.0}, UnsupportedModelError, "scales must be positive"),
    ({"max_classes_per_detection": 0}, UnsupportedModelError, "max_classes_per_detection"),
    ({"use_regular_nms": True, "detections_per_class": 0}, UnsupportedModelError, "detections_per_class"),
])
def test_bad_options_are_one_line_errors(changes, error, message):
    with pytest.raises(error, match=message):
        options(**changes)


def test_options_that_are_not_a_map():
    with pytest.raises(WeightsError, match="not a map"):
        PostprocessOptions.from_flexbuffer(encode([1, 2]))


def test_inverted_boxes_and_mismatched_shapes_are_refused():
    o = options()
    with pytest.raises(UnsupportedModelError, match="inverted"):
        detection_postprocess(np.zeros((1, 4)), np.ones((1, 4)), np.array([[0.5, 0.5, -0.1, 0.1]]), o)
    with pytest.raises(UnsupportedModelError, match="needs encodings"):
        detection_postprocess(np.zeros((2, 4)), np.ones((3, 4)), np.ones((2, 4)), o)
    with pytest.raises(UnsupportedModelError, match="2 score columns for 3 classes"):
        detection_postprocess(np.zeros((2, 4)), np.ones((2, 2)), np.ones((2, 4)), o)
