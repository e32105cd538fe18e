"""Metadata that would load, then fail at every forward (issue 10, class 4): refused at load instead.

Hostile tinynet files are written here byte by byte (an 8-byte header length, the JSON header with its
``__metadata__``, the tensor bytes), independently of tinynet's safetensors writer; hostile TFLite files
are test_tflite's synthetic graphs with their quantization parameters overwritten in place. Each file
must either load and then classify an image, or be refused at load with a one-line WeightsError that
names the field.
"""
import json
import struct

import numpy as np
import pytest

import tinynet
from tinynet.errors import WeightsError

ARCH = "mobilenet_v1"
CLASSES = 4


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """A small genuine tinynet file: (header dict, tensor bytes)."""
    path = tmp_path_factory.mktemp("genuine") / "v1.safetensors"
    tinynet.save(tinynet.create(ARCH, width=0.25, num_classes=CLASSES), path)
    blob = path.read_bytes()
    (length,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + length]), blob[8 + length:]


def with_metadata(genuine, tmp_path, meta=None, name="hostile.safetensors", **fields):
    """A copy of the genuine file whose ``meta`` JSON is ``meta`` (a dict, or raw text) and whose other
    __metadata__ strings are replaced by ``fields``."""
    header, data = genuine
    header = json.loads(json.dumps(header))
    metadata = header["__metadata__"]
    if meta is not None:
        metadata["meta"] = meta if isinstance(meta, str) else json.dumps(meta)
    metadata.update(fields)
    text = json.dumps(header).encode()
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def grid(**entries):
    return {"preprocess": {"preset": "tf"}, "activation_grid": entries}


# (meta, a word the error message must contain)
REFUSED = [
    ({"preprocess": "tf"}, "preprocess"),
    ({"preprocess": {"preset": "nope"}}, "preset"),
    ({"preprocess": {"size": 0}}, "size"),
    ({"preprocess": {"size": 16}}, "size"),  # loads today, then every forward refuses a 16x16 input
    ({"preprocess": {"size": 10 ** 6}}, "size"),
    ({"preprocess": {"size": 224.5}}, "size"),
    ({"preprocess": {"size": True}}, "size"),
    ({"preprocess": {"crop_fraction": 1e-308}}, "crop_fraction"),  # 224 / 1e-308 overflows at resize
    ({"preprocess": {"crop_fraction": 0}}, "crop_fraction"),
    ({"preprocess": {"crop_fraction": -0.5}}, "crop_fraction"),
    ({"preprocess": {"crop_fraction": 1.5}}, "crop_fraction"),
    ({"preprocess": {"crop_fraction": float("nan")}}, "crop_fraction"),
    ({"preprocess": {"crop_fraction": 10 ** 400}}, "crop_fraction"),
    ({"preprocess": {"crop_fraction": "all"}}, "crop_fraction"),
    ({"preprocess": {"crop_first": "yes"}}, "crop_first"),
    ({"preprocess": {"interpolation": "cubic"}}, "interpolation"),
    ({"preprocess": {"interpolation": 3}}, "interpolation"),
    ({"preprocess": {"mean": [0.5, 0.5]}}, "mean"),
    ({"preprocess": {"mean": ["a", "b", "c"]}}, "mean"),
    ({"preprocess": {"mean": [10 ** 400, 0, 0]}}, "mean"),
    ({"preprocess": {"std": [0, 1, 1]}}, "std"),
    ({"preprocess": {"std": [1e-50, 1, 1]}}, "std"),  # zero in float32
    ({"preprocess": {"std": [1e300, 1, 1]}}, "std"),  # infinite in float32
    ({"preprocess": {"std": [float("inf"), 1, 1]}}, "std"),
    ({"preprocess": {"range": [1, 1]}}, "range"),
    ({"preprocess": {"range": [0, float("inf")]}}, "std"),
    ({"preprocess": {"range": [10 ** 400, 0]}}, "range"),
    ({"preprocess": {"range": "x"}}, "range"),
    ({"preprocess": {"resolution": 224}}, "resolution"),
    ({"labels": 5}, "labels"),
    ({"labels": "imagenet21k"}, "labels"),
    ({"labels": {"0": "cat"}}, "labels"),
    ({"labels": ["a", "b", "c"]}, "label"),
    ({"labels": ["a", "b", "c", 4]}, "label"),
    ({"labels": "imagenet1k"}, "labels"),  # 1000 names for 4 outputs
    ({"labels": ["a", "b", "c", "d" * 5000]}, "label"),
    ({"source": 5}, "source"),
    ({"source": ["x"]}, "source"),
    ({"source": "x" * 100000}, "source"),
    ({"activation_grid": [0, 1, 256]}, "activation_grid"),
    (grid(nope=[0, 1, 256]), "activation_grid"),
    (grid(**{"14.pool": [0, 1, 256]}), "activation_grid"),
    (grid(**{"00.conv": [0, 0, 256]}), "activation_grid"),  # step 0: 1 / step at every forward
    (grid(**{"00.conv": [0, -0.1, 256]}), "activation_grid"),
    (grid(**{"00.conv": [0, 1e-45, 256]}), "activation_grid"),  # 1 / step is infinite in float32
    (grid(**{"00.conv": [0, 1e39, 256]}), "activation_grid"),
    (grid(**{"00.conv": [1e39, 0.1, 256]}), "activation_grid"),
    (grid(**{"00.conv": [0, 1e35, 65536]}), "activation_grid"),  # the top level overflows
    (grid(**{"00.conv": [10 ** 400, 0.1, 256]}), "activation_grid"),  # np.float32(10**400): OverflowError
    (grid(**{"00.conv": [0, float("nan"), 256]}), "activation_grid"),
    (grid(**{"00.conv": ["0", 0.1, 256]}), "activation_grid"),
    (grid(**{"00.conv": [0, 0.1, 256.0]}), "activation_grid"),
    (grid(**{"00.conv": [0, 0.1, True]}), "activation_grid"),
    (grid(**{"00.conv": [0, 0.1, 1]}), "activation_grid"),
    (grid(**{"00.conv": [0, 0.1, 1 << 20]}), "activation_grid"),
    (grid(**{"00.conv": [0, 0.1]}), "activation_grid"),
    (grid(**{"00.conv": {"lo": 0}}), "activation_grid"),
]


@pytest.mark.parametrize("meta, field", REFUSED, ids=[f"{i}-{field}" for i, (_, field) in enumerate(REFUSED)])
def test_invalid_metadata_is_refused_at_load(genuine, tmp_path, meta, field):
    path = with_metadata(genuine, tmp_path, meta)
    with pytest.raises(WeightsError) as caught:
        tinynet.load(path)
    message = str(caught.value)
    assert field in message and "\n" not in message and len(message) < 1200


@pytest.mark.parametrize("fields, field", [
    ({"padding": "reflect"}, "padding"),
    ({"meta": "[1, 2]"}, "meta"),
    ({"meta": "{"}, "meta"),
    ({"arch": "resnet50"}, "architecture"),
    ({"tinynet_format": "99"}, "format"),
])
def test_invalid_native_fields_are_refused_at_load(genuine, tmp_path, fields, field):
    with pytest.raises(WeightsError, match=field):
        tinynet.load(with_metadata(genuine, tmp_path, **fields))


def test_valid_metadata_loads_and_runs(genuine, tmp_path):
    meta = {"preprocess": {"preset": "tf", "size": 64, "crop_fraction": 0.05},
            "labels": ["a", "b", "c", "d"], "source": "test",
            "activation_grid": {"00.conv": [0, 6 / 255, 256], "01.dw": [-1, 0.01, 256]}}
    model = tinynet.load(with_metadata(genuine, tmp_path, meta))
    assert model.quantized_activations
    predictions = model.classify(np.zeros((40, 50, 3), np.uint8), top=4)
    assert sorted(label for label, _ in predictions) == ["a", "b", "c", "d"]


# ---------------------------------------------------------------------------------------------
# A generated corpus: whatever loads must work

ODD_VALUES = [None, True, 0, -1, 1, 2, 33, 224, 2049, 10 ** 400, 0.5, 1e-308, 1e308, float("nan"), float("inf"),
              "", "tf", "imagenet1k", "bicubic", "\u001b[2J", [], [0], [0, 1], [0.5, 0.5, 0.5], [0, 0.1, 256], ["a", "b", "c", "d"],
              {}, {"preset": "timm"}]
FIELDS = [("preprocess",), ("preprocess", "preset"), ("preprocess", "size"), ("preprocess", "crop_fraction"),
          ("preprocess", "crop_first"), ("preprocess", "interpolation"), ("preprocess", "mean"),
          ("preprocess", "std"), ("preprocess", "range"), ("labels",), ("source",), ("activation_grid",),
          ("activation_grid", "00.conv"), ("activation_grid", "13.pw"), ("activation_grid", "15.fc")]


def mutated_metas(count, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        meta = {"preprocess": {"preset": "tf", "size": 64}, "labels": ["a", "b", "c", "d"], "source": "x",
                "activation_grid": {"00.conv": [0.0, 0.05, 256]}}
        for _ in range(rng.integers(1, 3)):
            path = FIELDS[rng.integers(len(FIELDS))]
            value = ODD_VALUES[rng.integers(len(ODD_VALUES))]
            target = meta
            for key in path[:-1]:
                if not isinstance(target.get(key), dict):
                    target[key] = {}
                target = target[key]
            target[path[-1]] = value
        yield meta


def test_every_mutated_file_that_loads_also_classifies(genuine, tmp_path):
    loaded = refused = 0
    image = np.random.default_rng(1).integers(0, 256, (70, 90, 3)).astype(np.uint8)
    for i, meta in enumerate(mutated_metas(100)):
        path = with_metadata(genuine, tmp_path, meta, name=f"m{i}.safetensors")
        try:
            model = tinynet.load(path)
        except WeightsError as e:
            assert "\n" not in str(e)
            refused += 1
            continue
        loaded += 1
        predictions = model.classify(image, top=2)
        assert len(predictions) == 2 and all(np.isfinite(p) for _, p in predictions), meta
        assert len(model.classify([image, image], top=1)) == 2, meta
    assert loaded >= 5 and refused >= 20, (loaded, refused)  # the corpus exercises both outcomes


# ---------------------------------------------------------------------------------------------
# TFLite quantization parameters: zero, negative, huge, non-finite scales and zero points

def _tflite_file():
    from test_tflite import _dequantized_uint8, v1_graph

    data, _ = v1_graph("per-tensor", size=32, classes=CLASSES,
                       edit=lambda g, x, where: _dequantized_uint8(g, x, 1 / 128, 128) if where == "input" else x)
    return data


def _replace_all(data, old, new):
    assert data.count(old) >= 1
    return data.replace(old, new)


WEIGHT_SCALE, BIAS_SCALE, INPUT_SCALE = (struct.pack("<f", v) for v in (0.0123, 1.5e-5, 1 / 128))
ZERO_POINT = struct.pack("<q", 131)
HOSTILE_FLOATS = [0.0, -0.0123, 1e-45, 3e38, float("inf"), float("-inf"), float("nan")]


@pytest.mark.parametrize("where", [WEIGHT_SCALE, BIAS_SCALE, INPUT_SCALE], ids=["weights", "bias", "input"])
@pytest.mark.parametrize("value", HOSTILE_FLOATS)
def test_tflite_scales_load_and_work_or_are_refused(tmp_path, where, value):
    data = _replace_all(_tflite_file(), where, struct.pack("<f", value))
    _loads_and_works_or_refused(tmp_path, data)


@pytest.mark.parametrize("value", [-2 ** 63, -1000, 255, 2 ** 40, 2 ** 63 - 1])
def test_tflite_zero_points_load_and_work_or_are_refused(tmp_path, value):
    data = _replace_all(_tflite_file(), ZERO_POINT, struct.pack("<q", value))
    _loads_and_works_or_refused(tmp_path, data)


def _loads_and_works_or_refused(tmp_path, data):
    path = tmp_path / "hostile.tflite"
    path.write_bytes(data)
    try:
        model = tinynet.load(path)
    except WeightsError as e:
        assert "\n" not in str(e)
        return
    logits = model.forward(model.preprocess(np.zeros((32, 32, 3), np.uint8)))
    assert logits.shape == (1, CLASSES) and np.isfinite(logits).all()
