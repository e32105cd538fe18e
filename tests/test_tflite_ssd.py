"""The TF Object Detection API SSD .tflite as a tinynet detection model, against LiteRT.

The criterion (issue 11): every LiteRT detection scoring 0.5 or more has a tinynet detection of the same class at
IoU 0.85 or more, and tinynet has no detection at 0.5 or more that LiteRT lacks. LiteRT's outputs come from
<shared>/weights/expected/ssd_mobilenet_v1/ (its exact input tensors are stored there) and, for other photos, from
tests/fixtures/ssd_mobilenet_v1_litert.npz (tests/fixtures/make_ssd_litert_fixtures.py)."""
from pathlib import Path

import numpy as np
import pytest

import tinynet
from conftest import shared_path
from tinynet.detection.model import DetectionModel
from tinynet.detection.tflite_model import TfliteSsdModel, labels_from_file
from tinynet.errors import TinynetError, UnsupportedModelError
from tinynet.preprocess import open_image
from tinynet.tasks.detection import Detection

OTHER_PHOTOS = Path(__file__).parent / "fixtures" / "ssd_mobilenet_v1_litert.npz"
EXPECTED = ("astronaut.png", "bird_segmentation.bmp", "cat_720p.jpg", "chelsea.png", "coffee.png", "grace_hopper.jpg",
            "hot_dog.jpg", "kite_and_cold.jpg", "parrot.jpg", "pets.jpg")


@pytest.fixture(scope="module")
def model():
    return tinynet.load(shared_path("weights", "edje_tflite_od", "ssd_mobilenet_v1.tflite"))


def iou_ref(a, b):
    ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def unmatched(mine, theirs):
    """``mine``'s detections scoring >= 0.5 without a same-class detection in ``theirs`` at IoU >= 0.85."""
    return [(int(c), float(s)) for box, c, s in zip(*mine) if s >= 0.5 and not any(
        c == c2 and iou_ref(box, box2) >= 0.85 for box2, c2 in zip(*theirs[:2]))]


def tinynet_detections(model, x):
    return tinynet_detections_from(model, model.forward(x))


def tinynet_detections_from(model, out):
    boxes, classes, scores, count = model.postprocess(out["box_encodings"][0], out["class_scores"][0])
    n = int(count[0])
    return boxes[0, :n], classes[0, :n], scores[0, :n]


def check(name, ours, litert):
    missing, extra = unmatched(litert, ours), unmatched(ours, litert)
    assert not missing, f"{name}: LiteRT detections (class, score) tinynet misses: {missing}"
    assert not extra, f"{name}: tinynet detections (class, score) LiteRT lacks: {extra}"


@pytest.mark.parametrize("photo", EXPECTED)
def test_expected_photos_from_their_stored_inputs(model, photo):
    f = np.load(shared_path("weights", "expected", "ssd_mobilenet_v1", f"{photo}.npz"))
    x = (f["input"].astype(np.float32) - 128) / 128  # the file's input quantization
    n = int(f["num"][0])
    check(photo, tinynet_detections(model, x), (f["boxes"][0, :n], f["classes"][0, :n], f["scores"][0, :n]))


@pytest.mark.parametrize("photo", EXPECTED)
def test_head_tensors_and_outputs_are_litert_s_bit_for_bit(model, photo):
    # The file's integer graph runs as LiteRT runs it (tinynet.quantized): LiteRT's raw head tensors and its
    # four postprocess outputs, to the bit, not just the criterion above.
    f = np.load(shared_path("weights", "expected", "ssd_mobilenet_v1", f"{photo}.npz"))
    out = model.forward((f["input"].astype(np.float32) - 128) / 128)
    for name, raw, (scale, zero_point) in (("box_encodings", f["raw_box_encodings"], f["raw_box_quant"]),
                                           ("class_scores", f["raw_scores"], f["raw_scores_quant"])):
        dequantized = (raw[0].astype(np.float32) - np.float32(zero_point)) * np.float32(scale)  # as the postprocess does
        np.testing.assert_array_equal(out[name][0], dequantized, err_msg=name)
    for got, key in zip(model.postprocess(out["box_encodings"][0], out["class_scores"][0]),
                        ("boxes", "classes", "scores", "num")):
        np.testing.assert_array_equal(got, f[key], err_msg=key)


@pytest.mark.parametrize("photo", EXPECTED)
def test_preprocess_gives_the_stored_inputs(model, photo):
    f = np.load(shared_path("weights", "expected", "ssd_mobilenet_v1", f"{photo}.npz"))
    np.testing.assert_array_equal(model.preprocess(shared_path("images", photo)), (f["input"] - 128.0) / 128)


def other_photos():
    return sorted({k.rsplit("/", 1)[0] for k in np.load(OTHER_PHOTOS)})


@pytest.mark.parametrize("photo", other_photos())
def test_other_photos_through_detect(model, photo):
    f = np.load(OTHER_PHOTOS)
    path = shared_path("images", *photo.split("/"))
    detections = model.detect(path)
    width, height = open_image(path).size
    ours = (np.array([(d.box[1] / height, d.box[0] / width, d.box[3] / height, d.box[2] / width) for d in detections]),
            [d.class_id for d in detections], [d.score for d in detections])
    litert_boxes = np.clip(f[f"{photo}/boxes"], 0, 1)  # detect clips boxes to the image
    check(photo, ours, (litert_boxes, f[f"{photo}/classes"], f[f"{photo}/scores"]))


def test_detect_api(model):
    pets = shared_path("images", "pets.jpg")
    found = model.detect(pets, score_threshold=0.5)
    assert [(d.label, d.class_id) for d in found] == [("dog", 17), ("dog", 17)]
    assert all(isinstance(d, Detection) and 0 <= d.box[0] < d.box[2] <= 512 and 0 <= d.box[1] < d.box[3] <= 430
               for d in found)
    assert found[0].score >= found[1].score
    assert len(model.detect(pets)) == 10 and len(model.detect(pets, top=3)) == 3
    both = model.detect([pets, str(pets)], score_threshold=0.5)
    assert len(both) == 2 and both[0] == both[1] == found
    assert model.task == "detection" and model.num_classes == 90 and model.labels[0] == "person"
    with pytest.raises(TinynetError, match="this is a detection model"):
        model.classify(pets)
    assert found[0].as_dict()["label"] == "dog"
    with pytest.raises(TinynetError, match=r"expected a batch \(N, 300, 300, 3\)"):
        model.forward(np.zeros((1, 224, 224, 3), np.float32))


def test_forward_outputs_and_anchors(model):
    out = model.forward(model.preprocess(shared_path("images", "pets.jpg")))
    assert out["box_encodings"].shape == (1, 1917, 4) and out["class_scores"].shape == (1, 1917, 91)
    assert set(np.unique(out["class_scores"] * 256)) <= set(range(256))  # LOGISTIC's uint8 grid
    anchors = model.anchors()
    assert anchors.shape == (1917, 4)
    # The first anchor: 19x19 map, centre (0.5, 0.5) / 19 of the image, box (0.1, 1.0) of TF-OD's lowest layer.
    np.testing.assert_allclose(anchors[0], [(0.5 / 19 - 0.05) * 300, (0.5 / 19 - 0.05) * 300,
                                            (0.5 / 19 + 0.05) * 300, (0.5 / 19 + 0.05) * 300], atol=0.01 * 300)
    np.testing.assert_allclose(model.anchors(600, 300)[:, 1::2], anchors[:, 1::2] * 2)


def test_network_structure(model):
    """tinynet.load gives the file's integer graph (tinynet.quantized.ssd) over the float network read from it
    (layers, head nodes, anchors, postprocess), whose structure this checks."""
    assert model.precision == "int8" and model.program.kernels == "xnnpack"
    net = model.network
    assert net.backbone == "mobilenet_v1_ssd" and len(model.layers) == 27 and model.width == 0.75
    assert [layer.cout for layer in model.layers if layer.name in ("01.pw", "02.pw", "13.pw")] == [48, 96, 768]
    nodes = {n.name: n for n in net.nodes}
    assert nodes["extra.0"].inputs == ("13.pw",) and nodes["box.0"].inputs == nodes["cls.0"].inputs == ("11.pw",)
    assert net.outputs == ("box_encodings", "class_scores")
    assert tinynet.load(shared_path("weights", "edje_tflite_od", "ssd_mobilenet_v1.tflite"),
                        precision="float").precision == "float"


def test_float_path_of_the_same_file_rounds_on_the_grids():
    # Without the integer arithmetic (ssd_network's default) the file runs in float32 with its grids applied.
    from tinynet.detection.tflite_model import TfliteSsdModel
    from tinynet.detection.tflite_ssd import ssd_network
    from tinynet.formats.tflite_detection import read_detection_graph
    from tinynet.formats.tflite_schema import read_graph
    graph = read_graph(shared_path("weights", "edje_tflite_od", "ssd_mobilenet_v1.tflite").read_bytes())
    model = TfliteSsdModel(ssd_network(read_detection_graph(graph)))
    assert len(model.layers) == 27 and set(model.network.activation_grid) == {layer.name for layer in model.layers}
    assert [n.name for n in model.network.nodes][:2] == ["extra.0", "extra.0.q"]
    f = np.load(shared_path("weights", "expected", "ssd_mobilenet_v1", "pets.jpg.npz"))
    out = model.forward((f["input"].astype(np.float32) - 128) / 128)
    n = int(f["num"][0])
    check("pets.jpg", tinynet_detections_from(model, out), (f["boxes"][0, :n], f["classes"][0, :n], f["scores"][0, :n]))


def test_labels_from_the_file_zip_or_none():
    data = shared_path("weights", "edje_tflite_od", "ssd_mobilenet_v1.tflite").read_bytes()
    labels = labels_from_file(data, 90)
    assert labels[0] == "person" and labels[17] == "dog" and len(labels) == 90
    assert labels_from_file(data, 91) is None and labels_from_file(b"no zip here", 90) is None


def test_a_detection_file_with_another_backbone_is_refused():
    from test_tflite_detection import tiny_detector
    from tinynet.detection.tflite_ssd import ssd_network
    from tinynet.formats.tflite_detection import read_detection_graph
    with pytest.raises(UnsupportedModelError, match="backbone is not MobileNet V1: layer 01.dw"):
        ssd_network(read_detection_graph(tiny_detector()))


def test_detector_class_is_what_load_returns(model):
    assert isinstance(model, TfliteSsdModel) and isinstance(model, DetectionModel)
    with pytest.raises(UnsupportedModelError, match="--arch mobilenet_v2 does not apply"):
        tinynet.load(shared_path("weights", "edje_tflite_od", "ssd_mobilenet_v1.tflite"), arch="mobilenet_v2")


def test_count_matches_the_files_constants(model):
    from tinynet.formats.tflite_schema import read_graph
    graph = read_graph(shared_path("weights", "edje_tflite_od", "ssd_mobilenet_v1.tflite").read_bytes())
    shape_constants = sum(t.data.size for t in graph.tensors if t.is_constant and t.dtype == np.int32 and t.data.ndim == 1
                          and t.data.size <= 4)
    counted = model.count()
    # SOURCES_detection_segmentation.md: 4,108,944 constant elements, the 1917 x 4 anchors included.
    assert counted["params"] + model.network.anchors.size + shape_constants == 4_108_944
    assert counted["macs"] == sum(row["macs"] for row in counted["layers"]) > 0.7e9


# ---- other sizes, widths and class counts: a float SSD file built here ---------------------------------------------

V1_CHANNELS = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
V1_STRIDES = [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]


def v1_ssd_file(height, width, classes, multiplier=0.25, anchors=(3, 6, 6, 6)):
    """A float TF-OD style SSD on MobileNet V1 at ``multiplier``: maps at Conv2d_11, Conv2d_13 and two extras."""
    from tinynet.formats.tflite_builder import Graph
    from test_flexbuffer import encode
    rng = np.random.default_rng(classes)
    g = Graph()

    def conv(x, shape, cin, cout, k, stride, act, depthwise=False):
        h, w = -(-shape[0] // stride), -(-shape[1] // stride)
        fan_in = k * k * (1 if depthwise else cin)
        wt = rng.normal(0, (2 / fan_in) ** 0.5, (1, k, k, cin) if depthwise else (cout, k, k, cin)).astype(np.float32)
        y = g.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [x, g.const(wt), g.const(rng.normal(0, 0.1, cout).astype(np.float32))],
                 (1, h, w, cout), stride=stride, act=act)
        return y, (h, w)

    x = g.input((1, height, width, 3), np.uint8, (1 / 128, 128))
    c = [max(8, int(ch * multiplier)) for ch in V1_CHANNELS]
    t, shape = conv(x, (height, width), 3, c[0], 3, 2, "RELU6")
    maps = []
    for row in range(1, 14):
        t, shape = conv(t, shape, c[row - 1], c[row - 1], 3, V1_STRIDES[row], "RELU6", depthwise=True)
        t, shape = conv(t, shape, c[row - 1], c[row], 1, 1, "RELU6")
        if row in (11, 13):
            maps.append((t, shape, c[row]))
    for _ in range(2):
        last, last_shape, cin = maps[-1]
        t, shape = conv(last, last_shape, cin, cin // 2, 1, 1, "RELU6")
        t, shape = conv(t, shape, cin // 2, cin, 3, 2, "RELU6")
        maps.append((t, shape, cin))
    boxes, scores, total = [], [], 0
    for (t, (h, w), cin), a in zip(maps, anchors):
        n = h * w * a
        b, _ = conv(t, (h, w), cin, a * 4, 1, 1, None)
        s, _ = conv(t, (h, w), cin, a * (classes + 1), 1, 1, None)
        boxes.append(g.op("RESHAPE", [b, g.const(np.array([1, n, 1, 4], np.int32))], (1, n, 1, 4)))
        scores.append(g.op("RESHAPE", [s, g.const(np.array([1, n, classes + 1], np.int32))], (1, n, classes + 1)))
        total += n
    box = g.op("CONCATENATION", boxes, (1, total, 1, 4), axis=1)
    box = g.op("RESHAPE", [box, g.const(np.array([1, total, 4], np.int32))], (1, total, 4))
    score = g.op("LOGISTIC", [g.op("CONCATENATION", scores, (1, total, classes + 1), axis=1)], (1, total, classes + 1))
    anchor_values = np.concatenate([rng.uniform(0.1, 0.9, (total, 2)), rng.uniform(0.05, 0.5, (total, 2))], 1)
    options = {"max_detections": 20, "max_classes_per_detection": 1, "nms_score_threshold": 0.0, "nms_iou_threshold": 0.6,
               "num_classes": classes, "y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0, "w_scale": 5.0}
    outs = g.custom("TFLite_Detection_PostProcess", [box, score, g.const(anchor_values.astype(np.float32))],
                    [((1, 20, 4), np.float32), ((1, 20), np.float32), ((1, 20), np.float32), ((1,), np.float32)],
                    encode(options))
    return g.finish(outs)


@pytest.mark.parametrize("height, width, classes, multiplier", [(160, 128, 3, 0.25), (96, 96, 1, 0.5)])
def test_other_sizes_widths_and_class_counts(tmp_path, height, width, classes, multiplier):
    from test_tflite_detection import run_ref
    from tinynet.formats.tflite_detection import read_detection_graph
    from tinynet.formats.tflite_schema import read_graph
    data = v1_ssd_file(height, width, classes, multiplier)
    path = tmp_path / "ssd.tflite"
    path.write_bytes(data)
    model = tinynet.load(path)
    assert model.num_classes == classes and model.width == multiplier and not model.network.activation_grid
    assert model.labels == [f"class {i}" for i in range(classes)]
    image = np.random.default_rng(0).integers(0, 256, (height + 37, width * 2, 3), dtype=np.uint8)
    x = model.preprocess(image)
    assert x.shape == (1, height, width, 3)
    out = model.forward(x)
    want_boxes, want_scores = run_ref(read_detection_graph(read_graph(data)), np.rint(x * 128 + 128))
    for got, want in ((out["box_encodings"][0], want_boxes), (out["class_scores"][0], want_scores)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4 * max(1.0, np.abs(want).max()))
    boxes, class_ids, scores, n = model.postprocess(out["box_encodings"][0], out["class_scores"][0])
    found = model.detect(image)
    assert [d.class_id for d in found] == class_ids[0, :int(n[0])].astype(int).tolist()
    original = np.array([width * 2, height + 37] * 2)  # x, y, x, y
    expected = np.clip(boxes[0, :int(n[0])][:, [1, 0, 3, 2]] * original, 0, original)
    np.testing.assert_allclose([d.box for d in found], expected, rtol=1e-5, atol=1e-3)
