"""Reading TF Object Detection API SSD .tflite files into a graph of named tensors (tinynet.formats.tflite_detection).

The real file's graph is run here by a small NumPy executor of the test's own (padding, convs and rounding written
from TFLite's rules, not tinynet's kernels), which must reproduce LiteRT's raw head tensors: that checks weights,
layouts, taps and grids independently of tinynet's planner."""
from collections import Counter

import numpy as np
import pytest

from conftest import shared_path
from test_flexbuffer import encode
from tinynet.formats.tflite_builder import Graph
from tinynet.errors import UnsupportedModelError, WeightsError
from tinynet.formats.tflite_detection import is_detection_graph, read_detection_graph
from tinynet.formats.tflite_schema import read_graph

OPTIONS = {"max_detections": 5, "max_classes_per_detection": 1, "nms_score_threshold": 0.3, "nms_iou_threshold": 0.5,
           "num_classes": 2, "y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0, "w_scale": 5.0}


def ssd_graph():
    return read_graph(shared_path("weights", "edje_tflite_od", "ssd_mobilenet_v1.tflite").read_bytes())


def test_ssd_file_structure():
    graph = ssd_graph()
    assert is_detection_graph(graph)
    d = read_detection_graph(graph)
    assert d.input_size == (300, 300) and d.input_range == (-1.0, 127 / 128) and d.uint8
    assert Counter((n.kind, n.act) for n in d.nodes) == {("pw", "relu6"): 17, ("dw", "relu6"): 13, ("conv", "relu6"): 5,
                                                        ("pw", None): 12, ("reshape", None): 13, ("concat", None): 2,
                                                        ("sigmoid", None): 1}
    # Two heads tap the backbone at stride 16 (Conv2d_11) and its end (Conv2d_13, 768 = 1024 * 0.75 channels).
    tap = "FeatureExtractor/MobilenetV1/MobilenetV1/Conv2d_11_pointwise/Relu6"
    assert [n.name for n in d.nodes if n.inputs == (tap,)][-2:] == ["BoxPredictor_0/BoxEncodingPredictor/BiasAdd",
                                                                   "BoxPredictor_0/ClassPredictor/BiasAdd"]
    assert d.node("FeatureExtractor/MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6").weights["w"].shape == (768, 768)
    assert (d.box_encodings, d.class_scores) == ("Squeeze", "convert_scores")
    assert d.node("concat").axis == 1 and d.node("concat_1").shape == (1, 1917, 91)
    assert d.node("convert_scores").grid == (0.0, 1 / 256, 256)
    assert d.anchors.shape == (1917, 4) and d.anchors.dtype == np.float32
    assert d.options.num_classes == 90 and d.options.max_detections == 10 and not d.options.use_regular_nms


# ---- an executor of the test's own ----------------------------------------------------------------------------------

def tf_same(x, k, stride):
    """Zero-pad (H, W, C) as TensorFlow's SAME: total (out - 1) * stride + k - n, the odd pixel after."""
    pads = []
    for n in x.shape[:2]:
        total = max((-(-n // stride) - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, pads + [(0, 0)])


def conv_ref(x, node):
    w, b = node.weights["w"].astype(np.float64), node.weights["b"].astype(np.float64)
    if node.kind == "pw":
        return x[::node.stride, ::node.stride] @ w + b
    k, s = node.k, node.stride
    xp = tf_same(x, k, s)
    oh, ow = -(-x.shape[0] // s), -(-x.shape[1] // s)
    out = np.zeros((oh, ow, w.shape[-1]))
    for i in range(k):
        for j in range(k):
            patch = xp[i:i + s * oh:s, j:j + s * ow:s]
            out += patch * w[i, j] if node.kind == "dw" else patch @ w[i, j]
    return out + b


def snap(x, grid):
    lo, step, levels = grid
    return lo + step * np.clip(np.rint((x - lo) / step), 0, levels - 1)


def run_ref(d, image_u8):
    lo, hi = d.input_range
    values = {d.input: lo + image_u8[0].astype(np.float64) * (hi - lo) / 255}
    for node in d.nodes:
        x = [values[name] for name in node.inputs]
        if node.kind in ("conv", "dw", "pw"):
            y = conv_ref(x[0], node)
            y = {"relu6": lambda v: np.clip(v, 0, 6), "relu": lambda v: np.maximum(v, 0), None: lambda v: v}[node.act](y)
        elif node.kind == "reshape":
            y = x[0].reshape(node.shape[1:])
        elif node.kind == "concat":
            y = np.concatenate(x, axis=node.axis - 1)
        else:
            y = 1 / (1 + np.exp(-x[0]))
        values[node.name] = y if node.grid is None else snap(y, node.grid)
    return values[d.box_encodings], values[d.class_scores]


@pytest.mark.parametrize("photo", ["pets.jpg", "kite_and_cold.jpg"])
def test_executor_of_the_graph_reproduces_litert_head_tensors(photo):
    d = read_detection_graph(ssd_graph())
    f = np.load(shared_path("weights", "expected", "ssd_mobilenet_v1", f"{photo}.npz"))
    encodings, scores = run_ref(d, f["input"])
    (enc_scale, enc_zp), (score_scale, score_zp) = f["raw_box_quant"], f["raw_scores_quant"]
    np.testing.assert_array_equal(np.rint(encodings / enc_scale + enc_zp), f["raw_box_encodings"][0])
    np.testing.assert_array_equal(np.rint(scores / score_scale + score_zp), f["raw_scores"][0])


# ---- small synthetic files ------------------------------------------------------------------------------------------

def tiny_detector(extra=None, options=OPTIONS, anchors_constant=True):
    """uint8 image (1, 8, 8, 3) -> 3x3 s2 conv -> two 1x1 heads (4 anchors per... one per cell) -> reshape ->
    [concat] -> logistic -> postprocess; ``extra`` (name, after) adds an operator somewhere to be refused."""
    rng = np.random.default_rng(0)
    g = Graph()
    x = g.input((1, 8, 8, 3), np.uint8, (1 / 128, 128))
    f = g.op("CONV_2D", [x, g.const(rng.normal(size=(8, 3, 3, 3)).astype(np.float32)), g.const(np.zeros(8, np.float32))],
             (1, 4, 4, 8), stride=2, act="RELU6")
    enc = g.op("CONV_2D", [f, g.const(rng.normal(size=(4, 1, 1, 8)).astype(np.float32)), g.const(np.zeros(4, np.float32))],
               (1, 4, 4, 4))
    cls = g.op("CONV_2D", [f, g.const(rng.normal(size=(3, 1, 1, 8)).astype(np.float32)), g.const(np.zeros(3, np.float32))],
               (1, 4, 4, 3))
    enc = g.op("RESHAPE", [enc, g.const(np.array([1, 16, 4], np.int32))], (1, 16, 4))
    cls = g.op("RESHAPE", [cls, g.const(np.array([1, 16, 3], np.int32))], (1, 16, 3))
    cls = g.op("CONCATENATION", [cls], (1, 16, 3), axis=-2)
    if extra == "mean":
        cls = g.op("MEAN", [cls, g.const(np.array([2], np.int32))], (1, 16, 3), keep_dims=True)
    cls = g.op("LOGISTIC", [cls], (1, 16, 3))
    anchors = np.tile(np.float32([[0.5, 0.5, 0.2, 0.2]]), (16, 1))
    anchor_input = g.const(anchors, name="anchors") if anchors_constant else g.input((16, 4))
    outs = g.custom("TFLite_Detection_PostProcess", [enc, cls, anchor_input],
                    [((1, 5, 4), np.float32), ((1, 5), np.float32), ((1, 5), np.float32), ((1,), np.float32)],
                    encode(options) if options is not None else b"")
    if extra == "after":
        outs[0] = g.op("RELU", [outs[0]], (1, 5, 4))
    return read_graph(g.finish(outs))


def test_tiny_detector_is_read():
    d = read_detection_graph(tiny_detector())
    assert [n.kind for n in d.nodes] == ["conv", "pw", "pw", "reshape", "reshape", "concat", "sigmoid"]
    head = d.nodes[1]
    assert head.inputs == (d.nodes[0].name,) and d.nodes[2].inputs == (d.nodes[0].name,)
    assert head.weights["w"].shape == (8, 4) and d.nodes[0].weights["w"].shape == (3, 3, 3, 8)
    assert d.nodes[0].act == "relu6" and head.act is None and head.grid is None
    assert d.node(d.class_scores).kind == "sigmoid" and d.node(d.box_encodings).kind == "reshape"
    assert d.nodes[5].axis == 1 and d.options.num_classes == 2 and d.anchors.shape == (16, 4)
    assert d.input_range == (-1.0, 127 / 128) and not d.uint8


@pytest.mark.parametrize("build, error, message", [
    (lambda: tiny_detector(extra="mean"), UnsupportedModelError, r"operator 6 \(MEAN\) is not part of an SSD detector"),
    (lambda: tiny_detector(extra="after"), UnsupportedModelError, "follows TFLite_Detection_PostProcess"),
    (lambda: tiny_detector(options={**OPTIONS, "num_classes": 5}), UnsupportedModelError, "do not fit 5 classes"),
    (lambda: tiny_detector(options={k: v for k, v in OPTIONS.items() if k != "h_scale"}), WeightsError, "lack h_scale"),
    (lambda: tiny_detector(options=None), WeightsError, "corrupt operator 7"),
    (lambda: tiny_detector(anchors_constant=False), UnsupportedModelError, "inputs; a detector has one"),
])
def test_refusals_are_one_line_errors(build, error, message):
    with pytest.raises(error, match=message):
        read_detection_graph(build())


def test_a_classifier_is_not_a_detection_graph():
    g = Graph()
    x = g.input((1, 4, 4, 3))
    y = g.op("CONV_2D", [x, g.const(np.ones((2, 1, 1, 3), np.float32)), g.const(np.zeros(2, np.float32))], (1, 4, 4, 2))
    graph = read_graph(g.finish(y))
    assert not is_detection_graph(graph)
    with pytest.raises(UnsupportedModelError, match="plain uint8 image"):
        read_detection_graph(graph)


def test_corrupt_detector_files_raise_weights_errors_only():
    g = Graph()
    x = g.input((1, 8, 8, 3), np.uint8, (1 / 128, 128))
    f = g.op("CONV_2D", [x, g.const(np.ones((4, 1, 1, 3), np.float32)), g.const(np.zeros(4, np.float32))], (1, 8, 8, 4))
    c = g.op("CONV_2D", [x, g.const(np.ones((2, 1, 1, 3), np.float32)), g.const(np.zeros(2, np.float32))], (1, 8, 8, 2))
    enc = g.op("RESHAPE", [f, g.const(np.array([1, 64, 4], np.int32))], (1, 64, 4))
    cls = g.op("LOGISTIC", [g.op("RESHAPE", [c, g.const(np.array([1, 64, 2], np.int32))], (1, 64, 2))], (1, 64, 2))
    outs = g.custom("TFLite_Detection_PostProcess", [enc, cls, g.const(np.ones((64, 4), np.float32))],
                    [((1, 5, 4), np.float32), ((1, 5), np.float32), ((1, 5), np.float32), ((1,), np.float32)],
                    encode({**OPTIONS, "num_classes": 1}))
    data = g.finish(outs)
    assert len(read_detection_graph(read_graph(data)).nodes) == 5  # the intact file reads
    rng = np.random.default_rng(1)
    for trial in range(400):
        corrupt = bytearray(data)
        for at in rng.integers(0, len(corrupt), rng.integers(1, 6)):
            corrupt[at] = rng.integers(0, 256)
        try:
            read_detection_graph(read_graph(bytes(corrupt[:len(corrupt) - int(rng.integers(0, 3)) * 7])))
        except WeightsError:
            pass  # UnsupportedModelError is one too: a one-line refusal either way
