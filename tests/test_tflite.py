"""TFLite importer: real files from the shared folder, and small synthetic graphs written by
tinynet.formats.tflite_builder whose every tensor the test knows."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinynet
from tinynet import preprocess
from tinynet.errors import UnsupportedModelError, WeightsError
from tinynet.formats.tflite_schema import read_graph

from conftest import shared_path
from tinynet.formats.tflite_builder import Graph

# ---------------------------------------------------------------------------------------------
# Synthetic MobileNet V1 graphs at width 0.25 (channel counts written out, not taken from tinynet)

V1_CHANNELS = [8, 16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256]  # stem, then 13 pointwise
V1_STRIDES = [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]  # stem, then 13 depthwise


def quantized(rng, shape, scheme, axis):
    """(stored array, quantization, real values float64) for a weight in one of three schemes."""
    if scheme == "float":
        w = rng.standard_normal(shape).astype(np.float32) * 0.1
        return w, None, w.astype(np.float64)
    if scheme == "per-tensor":
        q = rng.integers(0, 256, shape).astype(np.uint8)
        scale, zero_point = 0.0123, 131
        return q, (scale, zero_point), (q.astype(np.float64) - zero_point) * np.float64(np.float32(scale))
    q = rng.integers(-127, 128, shape).astype(np.int8)
    n = shape[axis]
    scale = rng.uniform(0.001, 0.05, n).astype(np.float32)
    zero_point = rng.integers(-3, 4, n)
    along = [n if d == axis else 1 for d in range(len(shape))]
    real = (q.astype(np.float64) - zero_point.reshape(along)) * scale.astype(np.float64).reshape(along)
    return q, (scale, zero_point, axis), real


def quantized_bias(rng, n, scheme):
    if scheme == "float":
        b = rng.standard_normal(n).astype(np.float32) * 0.1
        return b, None, b.astype(np.float64)
    q = rng.integers(-5000, 5000, n).astype(np.int32)
    scale = np.full(n, 1.5e-5, np.float32) if scheme == "per-tensor" else rng.uniform(1e-5, 1e-4, n).astype(np.float32)
    quant = (scale[0], 0) if scheme == "per-tensor" else (scale, np.zeros(n, int), 0)
    return q, quant, q.astype(np.float64) * scale.astype(np.float64)


def v1_graph(scheme="float", size=32, classes=10, seed=0, edit=None, strides=V1_STRIDES):
    """A MobileNet V1 (width 0.25) TFLite graph with float activations and ``scheme`` weights.

    Returns (file bytes, expected tinynet weights as float64 in runtime layout). ``edit(g, x, where)``
    may insert operators: it is called with the current tensor at "input" and "stem" and returns it."""
    rng = np.random.default_rng(seed)
    g, expected = Graph(), {}
    edit = edit or (lambda g, x, where: x)
    x = edit(g, g.input((1, size, size, 3)), "input")
    h, c = size, 3

    def conv(x, block, part, kind, out, k, stride, act="RELU6"):
        nonlocal h, c
        if kind == "dw":
            shape, axis, op = (1, k, k, c), 3, "DEPTHWISE_CONV_2D"
        else:
            shape, axis, op = (out, k, k, c), 0, "CONV_2D"
        stored, quant, real = quantized(rng, shape, scheme, axis)
        b_stored, b_quant, b_real = quantized_bias(rng, shape[axis], scheme)
        w = g.const(stored, quant, name=f"{block}_{part}_weights")
        b = g.const(b_stored, b_quant, name=f"{block}_{part}_bias")
        h = -(-h // stride)
        c = shape[axis]
        name = f"{block:02d}.{part}"
        padded = bool(g.operators) and g.operators[-1][0] == "PAD" and g.operators[-1][2] == [x]
        expected[f"{name}.w"] = {"conv": lambda r: r.transpose(1, 2, 3, 0), "dw": lambda r: r[0],
                                 "pw": lambda r: r[:, 0, 0, :].T}[kind](real)
        expected[f"{name}.b"] = b_real
        return g.op(op, [x, w, b], (1, h, h, c), stride=stride, act=act, padding="VALID" if padded else "SAME")

    x = conv(x, 0, "conv", "conv", V1_CHANNELS[0], 3, strides[0])
    x = edit(g, x, "stem")
    for i in range(1, 14):
        x = conv(x, i, "dw", "dw", c, 3, strides[i])
        x = conv(x, i, "pw", "pw", V1_CHANNELS[i], 1, 1)
    x = g.op("MEAN", [x, g.const(np.array([1, 2], np.int32))], (1, 1, 1, c), keep_dims=True)
    x = conv(x, 15, "fc", "pw", classes, 1, 1, act=None)
    expected["15.fc.w"], expected["15.fc.b"] = expected.pop("15.fc.w"), expected.pop("15.fc.b")
    x = g.op("RESHAPE", [x, g.const(np.array([1, classes], np.int32))], (1, classes))
    x = g.op("SOFTMAX", [x], (1, classes))
    return g.finish(x), expected


def load_bytes(tmp_path, data, name="model.tflite"):
    path = tmp_path / name
    path.write_bytes(data)
    return tinynet.load(path)


@pytest.mark.parametrize("scheme", ["float", "per-tensor", "per-channel"])
def test_weights_are_dequantized_exactly(tmp_path, scheme):
    data, expected = v1_graph(scheme)
    model = load_bytes(tmp_path, data)
    assert (model.arch, model.width, model.num_classes, model.padding) == ("mobilenet_v1", 0.25, 10, "tf_same")
    assert set(model.weights) == set(expected)
    for name, real in expected.items():
        np.testing.assert_array_equal(model.weights[name], real.astype(np.float32), err_msg=name)


@pytest.mark.parametrize("classes", [1000, 1001])
def test_background_class_is_dropped(tmp_path, classes):
    data, expected = v1_graph("per-tensor", classes=classes)
    model = load_bytes(tmp_path, data)
    assert model.num_classes == 1000
    assert model.meta["labels"] == "imagenet1k"
    keep = slice(classes - 1000, None)  # 1001 outputs: output k + 1 is ImageNet class k
    np.testing.assert_array_equal(model.weights["15.fc.w"], expected["15.fc.w"][:, keep].astype(np.float32))
    np.testing.assert_array_equal(model.weights["15.fc.b"], expected["15.fc.b"][keep].astype(np.float32))


def test_unsupported_operator_is_named(tmp_path):
    def resize_first(g, x, where):
        return g.op("RESIZE_BILINEAR", [x, g.const(np.array([32, 32], np.int32))], (1, 32, 32, 3)) if where == "input" else x

    data, _ = v1_graph(edit=resize_first)
    with pytest.raises(UnsupportedModelError, match="operator 0 is RESIZE_BILINEAR, which tinynet does not run"):
        load_bytes(tmp_path, data)


def test_inconsistent_bias_names_the_tensor(tmp_path):
    g = Graph()
    x = g.input((1, 32, 32, 3))
    w = g.const(np.zeros((8, 3, 3, 3), np.float32), name="stem_weights")
    b = g.const(np.zeros(7, np.float32), name="stem_bias_of_wrong_length")
    g.op("CONV_2D", [x, w, b], (1, 16, 16, 8), stride=2)
    with pytest.raises(WeightsError, match="stem_bias_of_wrong_length"):
        load_bytes(tmp_path, g.finish(len(g.tensors) - 1))


def test_weights_that_do_not_fit_the_input_name_the_tensor(tmp_path):
    g = Graph()
    x = g.input((1, 32, 32, 3))
    w = g.const(np.zeros((8, 3, 3, 4), np.float32), name="stem_weights_for_4_channels")
    g.op("CONV_2D", [x, w, g.const(np.zeros(8, np.float32))], (1, 16, 16, 8), stride=2)
    with pytest.raises(WeightsError, match="stem_weights_for_4_channels"):
        load_bytes(tmp_path, g.finish(len(g.tensors) - 1))


def test_data_shorter_than_its_shape_names_the_tensor(tmp_path):
    g = Graph()
    x = g.input((1, 32, 32, 3))
    w = g.const(np.zeros(10, np.float32), name="short_weights")
    g.tensors[w]["shape"] = (8, 3, 3, 3)  # header says 216 values, buffer holds 10
    g.op("CONV_2D", [x, w], (1, 16, 16, 8), stride=2)
    with pytest.raises(WeightsError, match="short_weights"):
        load_bytes(tmp_path, g.finish(len(g.tensors) - 1))


def test_a_graph_that_leaves_the_table_says_where(tmp_path):
    strides = list(V1_STRIDES)
    strides[4] = 1  # block 04's depthwise should have stride 2
    data, _ = v1_graph(strides=strides)
    with pytest.raises(UnsupportedModelError, match=r"closest is mobilenet_v1.*block 04.*stride 2.*found DEPTHWISE_CONV_2D 3x3 stride 1"):
        load_bytes(tmp_path, data)
    with pytest.raises(UnsupportedModelError, match="not a mobilenet_v2"):
        tinynet.load(tmp_path / "model.tflite", arch="mobilenet_v2")


def pad_stem(amounts):
    """An edit that pads the stem's output explicitly (the block-1 depthwise then uses VALID)."""
    def edit(g, x, where):
        if where != "stem":
            return x
        h = g.tensors[x]["shape"][1]
        pads = np.array([[0, 0], amounts, amounts, [0, 0]], np.int32)
        return g.op("PAD", [x, g.const(pads)], (1, h + sum(amounts), h + sum(amounts), 8))
    return edit


def test_explicit_pad_equal_to_same_padding_is_dropped(tmp_path):
    data, expected = v1_graph(edit=pad_stem([1, 1]))
    ops = read_graph(data).operators
    assert [(op.name, op.options.get("padding")) for op in ops[1:3]] == [("PAD", None), ("DEPTHWISE_CONV_2D", 1)]
    model = load_bytes(tmp_path, data)
    assert model.padding == "tf_same"
    np.testing.assert_array_equal(model.weights["01.dw.w"], expected["01.dw.w"].astype(np.float32))


def test_explicit_pad_unlike_same_padding_is_refused(tmp_path):
    data, _ = v1_graph(edit=pad_stem([0, 2]))
    with pytest.raises(UnsupportedModelError, match=r"PAD\) pads \(0, 2\).*SAME padding gives \(1, 1\)"):
        load_bytes(tmp_path, data)


@pytest.mark.parametrize("edit, expected_range", [
    (None, [-1.0, 1.0]),  # float input, no rescale: TF-slim / Keras convention
    (lambda g, x, w: _rescale(g, x, [("MUL", 2.0), ("SUB", 1.0)]) if w == "input" else x, [-1.0, 1.0]),  # TF Hub
    (lambda g, x, w: _rescale(g, x, [("MUL", 1 / 255)]) if w == "input" else x, [0.0, 1.0]),  # raw 0..255
    (lambda g, x, w: _dequantized_uint8(g, x, 1 / 255, 0) if w == "input" else x, [0.0, 1.0]),
    (lambda g, x, w: _dequantized_uint8(g, x, 1 / 128, 128) if w == "input" else x, [-1.0, 1.0]),
])
def test_input_range_follows_the_graph(tmp_path, edit, expected_range):
    data, _ = v1_graph(edit=edit)
    model = load_bytes(tmp_path, data)
    assert model.meta["preprocess"] == {"preset": "tf", "size": 32, "range": expected_range}


def _rescale(g, x, steps):
    for name, constant in steps:
        x = g.op(name, [x, g.const(np.array(constant, np.float32))], (1, 32, 32, 3))
    return x


def _dequantized_uint8(g, x, scale, zero_point):
    g.tensors[x].update(dtype=np.dtype(np.uint8), quant=(scale, zero_point))
    return g.op("DEQUANTIZE", [x], (1, 32, 32, 3))


# ---------------------------------------------------------------------------------------------
# Corrupt files: every failure is a WeightsError (or the file still loads), never anything else

@pytest.fixture(scope="module")
def small_file():
    data, _ = v1_graph("per-tensor", size=32, classes=4)
    return data


def load_or_weights_error(tmp_path, data):
    try:
        load_bytes(tmp_path, data)
    except WeightsError:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10**9))
def test_truncated_file_is_a_weights_error(tmp_path, small_file, cut):
    cut %= len(small_file)
    with pytest.raises(WeightsError):
        load_bytes(tmp_path, small_file[:cut])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(min_size=0, max_size=4096))
def test_random_bytes_are_a_weights_error(tmp_path, junk):
    with pytest.raises(WeightsError):
        load_bytes(tmp_path, junk[:4] + b"TFL3" + junk[4:])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=8),
       in_header=st.booleans())
def test_corrupted_bytes_load_or_raise_weights_error(tmp_path, small_file, flips, in_header):
    data = bytearray(small_file)
    # Weight bytes are most of the file; aim half of the examples at the flatbuffer tables at its end.
    region = (len(data) - 6000, len(data)) if in_header else (0, len(data))
    for position, xor in flips:
        data[region[0] + position % (region[1] - region[0])] ^= xor
    load_or_weights_error(tmp_path, bytes(data))


# ---------------------------------------------------------------------------------------------
# Optional: LiteRT runs the same synthetic float graph (ai-edge-litert, the "bench" extra)

def test_synthetic_float_graph_matches_litert(tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert not installed (optional)")
    data, _ = v1_graph("float", size=33, classes=10, seed=3)  # odd size: SAME pads (1, 1) at stride 2
    path = tmp_path / "float.tflite"
    path.write_bytes(data)
    model = tinynet.load(path)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 33, 33, 3)).astype(np.float32)
    interpreter = litert.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    logits = model.forward(x)[0].astype(np.float64)
    ours = np.exp(logits - logits.max())
    np.testing.assert_allclose(ours / ours.sum(), probabilities, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Real files

QUANTIZATION_AWARE = {"coral_test_data/mobilenet_v1_0.25_128_quant.tflite", "coral_test_data/mobilenet_v1_0.5_160_quant.tflite",
                      "coral_test_data/mobilenet_v1_0.75_192_quant.tflite", "atu_model_zoo/mobilenet_v1_0.75_224_quant.tflite",
                      "coral_test_data/mobilenet_v2_1.0_224_quant.tflite", "atu_model_zoo/v3-small_224_1.0_uint8.tflite",
                      "tqminlo_mobilenetv3_by_c/v3-large-minimalistic_224_1.0_uint8.tflite"}
REAL = {  # file: (arch, width, native size, input range)
    "coral_test_data/mobilenet_v1_0.25_128_quant.tflite": ("mobilenet_v1", 0.25, 128, [-1.0, 1.0]),
    "coral_test_data/mobilenet_v1_0.5_160_quant.tflite": ("mobilenet_v1", 0.5, 160, [-1.0, 1.0]),
    "coral_test_data/mobilenet_v1_0.75_192_quant.tflite": ("mobilenet_v1", 0.75, 192, [-1.0, 1.0]),
    "atu_model_zoo/mobilenet_v1_0.75_224_quant.tflite": ("mobilenet_v1", 0.75, 224, [-1.0, 1.0]),
    "coral_test_data/mobilenet_v2_1.0_224_quant.tflite": ("mobilenet_v2", 1.0, 224, [-1.0, 1.0]),
    "coral_test_data/tf2_mobilenet_v2_1.0_224_ptq.tflite": ("mobilenet_v2", 1.0, 224, [-1.0, 1.0]),
    # Its input quantization (1/255, 0) feeds the first conv [0, 1]; see weights/SOURCES.md.
    "atu_model_zoo/mobilenet_v2_1_0_quant.tflite": ("mobilenet_v2", 1.0, 224, [0.0, 1.0]),
    "atu_model_zoo/v3-small_224_1.0_uint8.tflite": ("mobilenet_v3_small", 1.0, 224, [-1.0, 1.0]),
    # Float [0, 1] input rescaled inside by MUL 2, SUB 1: the first conv sees [-1, 1].
    "atu_model_zoo/Mobilenet_v3_small_quant.tflite": ("mobilenet_v3_small", 1.0, 224, [-1.0, 1.0]),
    "tqminlo_mobilenetv3_by_c/v3-large-minimalistic_224_1.0_uint8.tflite":
        ("mobilenet_v3_large_minimalistic", 1.0, 224, [-1.0, 1.0]),
}


@pytest.mark.parametrize("name", REAL)
def test_real_file_loads(name):
    arch, width, size, value_range = REAL[name]
    model = tinynet.load(shared_path("weights", *name.split("/")), precision="float")  # the float path's reading
    assert (model.arch, model.width, model.num_classes, model.padding) == (arch, width, 1000, "tf_same")
    grid = model.meta.pop("activation_grid", None)
    assert model.meta == {"preprocess": {"preset": "tf", "size": size, "range": value_range},
                          "labels": "imagenet1k", "source": f"tflite:{name.split('/')[1]}"}
    # uint8 weights (SOURCES.md: "tflite uint8") mark TF1's quantization-aware-trained exports
    assert (grid is not None) == (name in QUANTIZATION_AWARE) == model.quantized_activations
    if grid is not None:
        convs = [layer.name for layer in model.layers if layer.op in ("conv", "dw", "pw", "fc")]
        assert list(grid) == convs[:-1]  # every conv layer but the classifier, whose logits stay unrounded
        assert all(step > 0 and levels == 256 and lo <= 0 for lo, step, levels in grid.values())


# images/LABELS.md: expected ImageNet class (0-based) of each photo.
PHOTOS = {"grace_hopper.jpg": {652}, "coffee.png": {967}, "hot_dog.jpg": {934}, "parrot.jpg": {88},
          "bird.bmp": {19}, "dragonfly.bmp": {319}, "cat_720p.jpg": {285, 281, 282}, "chelsea.png": {285, 281, 282}}
# Where the file itself disagrees: LiteRT 2.3.0 running the same file gives these classes too (mortarboard,
# and paper towel for the V2 whose input quantization only spans [0, 1]).
FILE_SAYS = {("coral_test_data/tf2_mobilenet_v2_1.0_224_ptq.tflite", "grace_hopper.jpg"): 667,
             ("atu_model_zoo/mobilenet_v2_1_0_quant.tflite", "grace_hopper.jpg"): 667,
             ("atu_model_zoo/mobilenet_v2_1_0_quant.tflite", "hot_dog.jpg"): 700}


@pytest.mark.parametrize("name", [n for n, spec in REAL.items() if spec[0] != "mobilenet_v1"])
def test_v2_and_v3_classify_the_photos(name):
    model = tinynet.load(shared_path("weights", *name.split("/")))
    photos = [shared_path("images", photo) for photo in PHOTOS]
    top1 = model.forward(preprocess.batch(photos, preprocess.for_model(model))).argmax(axis=1)
    for photo, predicted in zip(PHOTOS, top1):
        assert predicted in ({FILE_SAYS[name, photo]} if (name, photo) in FILE_SAYS else PHOTOS[photo]), photo


@pytest.mark.parametrize("name", [n for n, spec in REAL.items() if spec[0] == "mobilenet_v1"])
def test_v1_classify_the_easy_photos(name):
    model = tinynet.load(shared_path("weights", *name.split("/")))
    photos = ["coffee.png", "parrot.jpg", "bird.bmp"]
    x = preprocess.batch([shared_path("images", p) for p in photos], preprocess.for_model(model))
    assert model.forward(x).argmax(axis=1).tolist() == [967, 88, 19]


# ---------------------------------------------------------------------------------------------
# Independent check: a float64 NumPy evaluation of the dequantized graph, op by op (NHWC), written
# here from the TFLite op definitions. It shares only the file decoder with tinynet (dequantization,
# layouts, padding, the activation and squeeze-excite mapping and the kernels are all its own).

def reference_logits(path, x):
    """Logits (before any softmax) of the graph at ``path`` for ``x``, the graph input's real values."""
    graph = read_graph(path.read_bytes())
    values = {graph.inputs[0]: x.astype(np.float64)}

    def real(t):
        tensor = graph.tensors[t]
        if t in values:
            return values[t]
        q = tensor.data.astype(np.float64)
        if tensor.scale.size == 0:
            return q
        shape = [-1 if d == tensor.quantized_dimension and tensor.scale.size > 1 else 1 for d in range(q.ndim)]
        zero_point = tensor.zero_point.reshape(shape) if tensor.zero_point.size > 1 else tensor.zero_point[0]
        return (q - zero_point) * tensor.scale.astype(np.float64).reshape(shape)

    fused = {0: lambda v: v, 1: lambda v: np.maximum(v, 0), 3: lambda v: np.clip(v, 0, 6)}
    logits = None
    for op in graph.operators:
        args = [real(t) for t in op.inputs if t >= 0]
        o = op.options
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            y = ref_conv(args[0], args[1], args[2] if len(args) > 2 else 0.0, o["stride_h"], op.name == "DEPTHWISE_CONV_2D")
            y = fused[o["activation"]](y)
        elif op.name == "AVERAGE_POOL_2D":
            assert o["padding"] == 1 and args[0].shape[1:3] == (o["filter_h"], o["filter_w"])
            y = args[0].mean(axis=(1, 2), keepdims=True)
        elif op.name == "MEAN":
            y = args[0].mean(axis=tuple(args[1].astype(int)), keepdims=bool(o["keep_dims"]))
        elif op.name in ("ADD", "SUB", "MUL"):
            y = fused[o["activation"]]({"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply}[op.name](*args))
        elif op.name == "HARD_SWISH":
            y = args[0] * np.clip(args[0] + 3, 0, 6) / 6
        elif op.name == "RESHAPE":
            y = args[0].reshape(len(args[0]), -1)  # the classifier's flatten, batch kept
            logits = y
        elif op.name in ("QUANTIZE", "DEQUANTIZE"):
            y = args[0]
        elif op.name == "SOFTMAX":
            break
        else:
            raise AssertionError(f"reference does not implement {op.name}")
        values[op.outputs[0]] = y
    return logits


def ref_conv(x, w, b, stride, depthwise):
    """TF conv with SAME padding: x (N, H, W, C); w (O, KH, KW, I) or depthwise (1, KH, KW, C)."""
    k = w.shape[1]
    n, h, width, c = x.shape
    out = -(-h // stride)
    total = max((out - 1) * stride + k - h, 0)
    xp = np.pad(x, ((0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0)))
    y = 0.0
    for i in range(k):
        for j in range(k):
            patch = xp[:, i:i + stride * (out - 1) + 1:stride, j:j + stride * (out - 1) + 1:stride, :]
            y = y + (patch * w[0, i, j] if depthwise else patch @ w[:, i, j, :].T)
    return y + b


@pytest.mark.parametrize("name, graph_input", [
    # uint8 per-tensor QAT graph: its input tensor holds the real values the model sees.
    ("coral_test_data/mobilenet_v1_0.25_128_quant.tflite", lambda x: x),
    # int8 per-channel V3-Small with squeeze-excite (+3 folded into the gate bias) and hard-swish;
    # its float input is [0, 1], rescaled inside the graph.
    ("atu_model_zoo/Mobilenet_v3_small_quant.tflite", lambda x: (x + 1) / 2),
])
def test_logits_match_a_float64_evaluation_of_the_graph(name, graph_input):
    path = shared_path("weights", *name.split("/"))
    model = tinynet.load(path, precision="float")
    model.quantized_activations = False  # the reference evaluates the dequantized graph in plain float64
    x = preprocess.batch([shared_path("images", "grace_hopper.jpg"), shared_path("images", "parrot.jpg")],
                         preprocess.for_model(model))
    expected = reference_logits(path, graph_input(x.astype(np.float64)))[:, 1:]  # drop "background"
    ours = model.forward(x)
    # Measured: 1.5e-6 (V1) and 1.0e-4 (V3: the graph's gate constant is 0.16666999, tinynet's 1/6) of
    # the largest logit. A wrong layout, activation or padding is off by whole units.
    scale = np.abs(expected).max()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=5e-4 * scale)
    assert (ours.argmax(axis=1) == expected.argmax(axis=1)).all()
