"""Integer inference of quantized .tflite files (issue 15): tinynet's integer graph against LiteRT, element for element.

The oracle is LiteRT itself (tests/litert_oracle.py), run on the same uint8/float input tensors:
  profile "litert"    against LiteRT's default resolver (XNNPACK delegate); for a file the delegate refuses
                      (Mobilenet_v3_small_quant.tflite: a requantization scale >= 256), LiteRT without it.
  profile "reference" against TFLite's builtin reference kernels (OpResolverType.BUILTIN_REF).
"Identical" means 0 differing elements of the file's output tensor (and, where named, of every tensor).
The default suite checks a few photos per file; `pytest -m slow` all shared photos, 200 ImageNet validation
images per file and profile, and top-1 on all 1,300.
"""
import numpy as np
import pytest

import tinynet
from conftest import shared_path
from litert_oracle import run_litert
from tinynet.errors import TinynetError
from tinynet.formats.tflite_schema import read_graph
from tinynet.quantized.program import Program

CLASSIFIERS = (
    "atu_model_zoo/Mobilenet_v3_small_quant.tflite", "atu_model_zoo/mobilenet_v1_0.75_224_quant.tflite",
    "atu_model_zoo/mobilenet_v2_1_0_quant.tflite", "atu_model_zoo/v3-small_224_1.0_uint8.tflite",
    "coral_test_data/mobilenet_v1_0.25_128_quant.tflite", "coral_test_data/mobilenet_v1_0.5_160_quant.tflite",
    "coral_test_data/mobilenet_v1_0.75_192_quant.tflite", "coral_test_data/mobilenet_v2_1.0_224_quant.tflite",
    "coral_test_data/tf2_mobilenet_v2_1.0_224_ptq.tflite",
    "tqminlo_mobilenetv3_by_c/v3-large-minimalistic_224_1.0_uint8.tflite",
)
PHOTOS = ("grace_hopper.jpg", "chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "cat_720p.jpg",
          "hot_dog.jpg", "parrot.jpg", "bird.bmp", "dragonfly.bmp")
QUICK_PHOTOS = ("parrot.jpg", "coffee.png")


def resolver(model):
    if model.profile == "reference":
        return "REF"
    return "AUTO" if model.program.kernels == "xnnpack" else "BUILTIN"


def file_input(model, image):
    """The tensor both engines get: the photo preprocessed as the model's metadata says, as the file's input."""
    return model.file_input(model.preprocess(image))


def raw_output(model, x):
    return model.program.run([x])[0]


_models = {}


def load(name, profile="litert"):
    if (name, profile) not in _models:
        _models[name, profile] = tinynet.load(shared_path("weights", name), profile=profile)
    return _models[name, profile]


def assert_identical(model, path, images):
    for image in images:
        x = file_input(model, image)
        mine, theirs = raw_output(model, x), run_litert(path, [x], resolver(model))[0]
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        differing = np.count_nonzero(mine != theirs)
        assert differing == 0, f"{path.name} ({model.profile}) on {getattr(image, 'name', image)}: {differing} differ"


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_litert_profile_identical_on_photos(name):
    model = load(name)
    assert model.precision == "int8"
    assert_identical(model, shared_path("weights", name), [shared_path("images", p) for p in QUICK_PHOTOS])


@pytest.mark.parametrize("name", ("coral_test_data/mobilenet_v1_0.25_128_quant.tflite",
                                  "atu_model_zoo/Mobilenet_v3_small_quant.tflite",
                                  "coral_test_data/tf2_mobilenet_v2_1.0_224_ptq.tflite"))
def test_reference_profile_identical_on_a_photo(name):
    model = load(name, "reference")
    assert model.program.kernels == "reference"
    assert_identical(model, shared_path("weights", name), [shared_path("images", "parrot.jpg")])


@pytest.mark.parametrize("name, profile", [("coral_test_data/mobilenet_v1_0.25_128_quant.tflite", "litert"),
                                           ("atu_model_zoo/v3-small_224_1.0_uint8.tflite", "reference"),
                                           ("atu_model_zoo/Mobilenet_v3_small_quant.tflite", "litert")])
def test_every_tensor_identical(name, profile):
    """Every operator's output, so that a mismatch names the first operator that differs. Under the reference
    kernels LiteRT keeps every tensor (experimental_preserve_all_tensors); under its delegate the tensors are
    made graph outputs (litert_oracle.with_outputs)."""
    path = shared_path("weights", name)
    model = load(name, profile)
    x = file_input(model, shared_path("images", "chelsea.png"))
    mine = model.program.run([x], keep=True)
    graph = model.program.graph
    produced = [op.outputs[0] for op in graph.operators]
    theirs = run_litert(path, [x], resolver(model), tensors=produced)
    for op, index, expected in zip(graph.operators, produced, theirs):
        differing = np.count_nonzero(mine[index] != expected)
        assert differing == 0, f"first differing operator: {op.describe()} '{graph.tensors[index].name}', " \
                               f"{differing} of {expected.size} elements"


@pytest.mark.slow
@pytest.mark.parametrize("profile", ("litert", "reference"))
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_identical_on_all_photos_and_200_validation_images(name, profile):
    model = load(name, profile)
    val = sorted(shared_path("images", "imagenet_val_1300", "data").iterdir())[:200]
    assert_identical(model, shared_path("weights", name), [shared_path("images", p) for p in PHOTOS] + val)


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_top1_on_1300_images_equals_litert(name):
    model = load(name)
    path = shared_path("weights", name)
    files = sorted(shared_path("images", "imagenet_val_1300", "data").iterdir())
    assert len(files) == 1300
    differing = []
    for image in files:
        x = file_input(model, image)
        if int(np.argmax(raw_output(model, x))) != int(np.argmax(run_litert(path, [x], resolver(model))[0])):
            differing.append(image.name)
    assert differing == []


def test_ssd_heads_identical_in_both_profiles():
    """The SSD's box encodings and class scores (the postprocess's inputs) from the integer graph."""
    path = shared_path("weights", "edje_tflite_od", "ssd_mobilenet_v1.tflite")
    graph = read_graph(path.read_bytes())
    heads = graph.operators[-1].inputs[:2]
    x = tinynet.load(path).preprocess(shared_path("images", "pets.jpg"))
    x = np.clip(np.rint(x * 127.5 + 127.5), 0, 255).astype(np.uint8)
    for profile, kernels in (("litert", "AUTO"), ("reference", "REF")):
        mine = Program(graph, profile, outputs=heads).run([x])
        theirs = run_litert(path, [x], kernels, tensors=heads)
        for m, t in zip(mine, theirs):
            assert np.count_nonzero(m != t) == 0


DEEPLABS = ("deeplabv3_mnv2_dm05_pascal_quant", "deeplabv3_mnv2_pascal_quant")


def deeplab_masks(name, photos):
    """(tinynet's mask, LiteRT's stored mask) per photo, on the exact 513x513 inputs LiteRT was given."""
    program = Program(read_graph(shared_path("weights", "coral_test_data", f"{name}.tflite").read_bytes()))
    inputs = np.load(shared_path("weights", "expected", "seg_inputs_513.npz"))
    expected = np.load(shared_path("weights", "expected", f"coral_{name}", "masks.npz"))
    return [(program.run([inputs[photo]])[0][0], expected[photo]) for photo in photos]


def test_deeplab_mask_identical():
    for mine, theirs in deeplab_masks(DEEPLABS[0], ["bird_segmentation.bmp"]):
        assert np.count_nonzero(mine != theirs) == 0


def test_deeplab_model_runs_the_integer_graph():
    """tinynet.load gives the int8 model for a quantized DeepLab file: its mask is LiteRT's; segment resizes it
    (nearest) to the photo; precision='float' keeps the float path."""
    path = shared_path("weights", "coral_test_data", f"{DEEPLABS[0]}.tflite")
    model = tinynet.load(path)
    assert model.precision == "int8" and model.task == "segmentation"
    photo = "bird_segmentation.bmp"  # 513x513: segment's mask is the file's own
    x = np.load(shared_path("weights", "expected", "seg_inputs_513.npz"))[photo]
    expected = np.load(shared_path("weights", "expected", f"coral_{DEEPLABS[0]}", "masks.npz"))[photo]
    assert np.array_equal(model.mask(x)[0], expected)
    result = model.segment(shared_path("images", photo))
    assert np.array_equal(result.mask, expected) and result.counts.sum() == 513 * 513
    assert model.segment(shared_path("images", "pets.jpg")).mask.shape == (430, 512)
    assert model.forward(model.preprocess(shared_path("images", photo))).shape == (1, 513, 513, 21)
    assert tinynet.load(path, precision="float").precision == "float"


@pytest.mark.slow
@pytest.mark.parametrize("name", DEEPLABS)
def test_deeplab_masks_identical_on_every_photo(name):
    photos = sorted(np.load(shared_path("weights", "expected", "seg_inputs_513.npz")).files)
    for photo, (mine, theirs) in zip(photos, deeplab_masks(name, photos)):
        assert np.count_nonzero(mine != theirs) == 0, photo


def test_precision_and_profile_choices():
    name = "coral_test_data/mobilenet_v1_0.25_128_quant.tflite"
    path = shared_path("weights", name)
    assert tinynet.load(path, precision="float").precision == "float"
    assert load(name, "reference").profile == "reference"
    with pytest.raises(TinynetError, match="profile"):
        tinynet.load(path, profile="fast")
    with pytest.raises(TinynetError, match="precision"):
        tinynet.load(path, precision="int4")


def test_forward_takes_the_files_bytes_or_a_preprocessed_batch():
    model = load("coral_test_data/mobilenet_v1_0.25_128_quant.tflite")
    photo = shared_path("images", "parrot.jpg")
    x = model.preprocess(photo)
    pixels = file_input(model, photo)
    assert pixels.dtype == np.uint8 and pixels.shape == (1, 128, 128, 3)
    assert np.array_equal(model.forward(pixels), model.forward(x))
    assert model.forward(np.concatenate([pixels, pixels])).shape == (2, 1000)  # background dropped
    other = file_input(model, shared_path("images", "hot_dog.jpg"))
    both = model.forward(np.concatenate([pixels, other]))  # each image's output, not the last one's twice
    np.testing.assert_array_equal(both, np.concatenate([model.forward(pixels), model.forward(other)]))
    top = model.classify(photo, top=1)[0]
    assert top.label == "macaw" and top.probability == pytest.approx(float(model.forward(pixels).max()))


def test_int8_is_refused_for_float_files():
    with pytest.raises(TinynetError, match="float"):
        tinynet.load(shared_path("golden", "tv_mobilenet_v2.pth"), precision="int8")


def test_a_float_input_is_fed_the_range_the_graph_takes():
    """Mobilenet_v3_small_quant.tflite takes [0, 1] floats and rescales them inside the graph: the int8 model
    preprocesses to [0, 1] (its float-path twin to the [-1, 1] its first conv sees), and classifies the photos."""
    model = load("atu_model_zoo/Mobilenet_v3_small_quant.tflite")
    lo, hi = model.meta["preprocess"]["range"]
    assert lo == 0 and hi == pytest.approx(1, abs=1e-6)
    photos = {"parrot.jpg": 88, "chelsea.png": {281, 282, 285}, "bird.bmp": 19, "grace_hopper.jpg": 652}
    for photo, expected in photos.items():
        top = model.classify(shared_path("images", photo), top=1)[0].class_index
        assert top in (expected if isinstance(expected, set) else {expected}), photo


def resize_graph(in_hw, out_hw, align_corners, half_pixel, dtype):
    """A one-operator quantized RESIZE_BILINEAR graph (tinynet.formats.tflite_builder)."""
    from tinynet.formats.tflite_builder import Graph

    g = Graph()
    quant = (0.05, 3 if dtype == np.uint8 else -7)
    x = g.input((1, *in_hw, 5), dtype, quant=quant)
    size = g.const(np.array(out_hw, np.int32))
    y = g.op("RESIZE_BILINEAR", [x, size], (1, *out_hw, 5), dtype, out_quant=quant, align_corners=align_corners,
             half_pixel_centers=half_pixel)
    return g.finish(y)


@pytest.mark.parametrize("dtype", (np.uint8, np.int8))
@pytest.mark.parametrize("align_corners, half_pixel", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("in_hw, out_hw", [((5, 7), (9, 4)), ((3, 3), (17, 17)), ((33, 33), (513, 513))])
def test_resize_bilinear_on_sizes_whose_weights_round(in_hw, out_hw, align_corners, half_pixel, dtype):
    """Scales like 5 -> 9 make XNNPACK's 11-bit and TFLite's 10-bit weights round differently: each profile
    must follow its own kernel set."""
    data = resize_graph(in_hw, out_hw, align_corners, half_pixel, dtype)
    info = np.iinfo(dtype)
    x = np.random.default_rng(sum(in_hw + out_hw)).integers(info.min, info.max + 1, (1, *in_hw, 5)).astype(dtype)
    for profile, kernels in (("litert", "AUTO"), ("reference", "REF")):
        if profile == "reference" and dtype == np.int8 and not align_corners and in_hw[0] * 1024 % out_hw[0]:
            continue  # TFLite's integer resize rounds the scale up here and reads a row past the input's end
        mine = Program(read_graph(data), profile).run([x])[0]
        assert np.count_nonzero(mine != run_litert(data, [x], kernels)[0]) == 0, profile


KERAS_V2 = "atu_model_zoo/mobilenet_v2_1_0_quant.tflite"  # a PAD before each stride-2 depthwise conv


@pytest.mark.parametrize("profile", ("litert", "reference"))
def test_pads_folded_into_their_convolutions_change_no_output(profile):
    model = load(KERAS_V2, profile)
    names = [op.op.name for op in model.program.operators]
    graph_pads = [op for op in model.program.graph.operators if op.name == "PAD"]
    assert len(graph_pads) == 4 and "PAD" not in names
    rng = np.random.default_rng(3)  # random bytes: every border tap of the folded convolutions reads something
    x = rng.integers(0, 256, model.program.input_tensors[0].shape, dtype=np.uint8)
    assert np.array_equal(raw_output(model, x), run_litert(shared_path("weights", KERAS_V2), [x], resolver(model))[0])


def test_a_pad_is_kept_where_folding_would_change_what_is_computed():
    from dataclasses import replace

    from tinynet.quantized.program import fold_pads
    graph = read_graph(shared_path("weights", KERAS_V2).read_bytes())
    ops = graph.operators
    pad = next(op for op in ops if op.name == "PAD")
    conv = next(op for op in ops if pad.outputs[0] in op.inputs)
    assert len(fold_pads(graph, ops, graph.outputs)) == len(ops) - 4
    kept = lambda operators, outputs=graph.outputs: pad in fold_pads(graph, operators, outputs)
    assert kept(ops, (*graph.outputs, pad.outputs[0]))  # its output is asked for
    same = [replace(op, options={**op.options, "padding": 0}) if op is conv else op for op in ops]
    assert kept(same)  # the convolution pads by itself too
    second_reader = [*ops, replace(conv, index=len(ops), outputs=(-7,))]
    assert kept(second_reader)  # another operator reads the padded tensor
    wide = read_graph(shared_path("weights", KERAS_V2).read_bytes())
    wide.tensors[pad.inputs[1]].data = wide.tensors[pad.inputs[1]].data * 3  # beyond a 3x3 kernel's reach
    assert pad in fold_pads(wide, wide.operators, wide.outputs)
