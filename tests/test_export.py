"""tinynet.export / `tinynet export`: the written files run in ONNX Runtime and LiteRT, which are the oracles here
(neither shares code with tinynet's writers), and give tinynet's logits within 1e-4 of the largest logit.

The models are synthetic (tinynet.create, seeded He-normal weights) across V1/V2/V3 with SE and h-swish, widths
below and above 1.0, both width conventions and both paddings, plus a model with a trained head
(tinynet.train.with_head). Odd input sizes matter: there symmetric padding and TF's SAME differ at stride 2.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import tinynet
from conftest import shared_path
from tinynet.errors import TinynetError
from tinynet.train import with_head

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# arch, width, padding, convention, input size
CASES = [
    ("mobilenet_v1", 0.25, "symmetric", "torchvision", 64),
    ("mobilenet_v1", 0.5, "tf_same", "torchvision", 65),
    ("mobilenet_v2", 0.35, "tf_same", "torchvision", 65),
    ("mobilenet_v2", 1.3, "symmetric", "torchvision", 48),
    ("mobilenet_v3_small", 0.75, "symmetric", "tf", 97),
    ("mobilenet_v3_small", 1.0, "tf_same", "torchvision", 64),
    ("mobilenet_v3_large", 0.5, "tf_same", "torchvision", 63),
    ("mobilenet_v3_large", 0.75, "symmetric", "tf", 64),
    ("mobilenet_v3_large_minimalistic", 1.0, "symmetric", "torchvision", 64),
]


def synthetic(arch, width, padding, convention, classes=10):
    return tinynet.create(arch, width, num_classes=classes, padding=padding, convention=convention, seed=3)


def trained_head_model():
    """A V3-Small backbone with a new 3-class head, as `tinynet train` makes it."""
    base = tinynet.create("mobilenet_v3_small", 0.5, seed=1)
    rng = np.random.default_rng(7)
    w, b = rng.standard_normal((base.layers[-1].cin, 3)), rng.standard_normal(3)
    return with_head(base, w, b, ["cat", "dog", "fox"], {"source": "test head"})


def images(n, height, width, seed=0):
    return np.random.default_rng(seed).standard_normal((n, height, width, 3)).astype(np.float32)


def assert_same_logits(got, expected):
    assert got.shape == expected.shape
    error = np.abs(got - expected).max()
    assert error <= 1e-4 * max(1.0, np.abs(expected).max()), (error, np.abs(expected).max())


def onnx_logits(path, x_nhwc):
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime checks the exported .onnx (the oracle extra)")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))})[0]


def litert_logits(path, x_nhwc):
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="LiteRT checks the exported .tflite (the oracle extra)")
    interpreter = litert.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert tuple(inp["shape"]) == x_nhwc.shape and out["name"] == "logits"
    interpreter.set_tensor(inp["index"], x_nhwc)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


@pytest.mark.parametrize("arch,width,padding,convention,size", CASES)
def test_onnx_runs_in_onnxruntime_with_tinynets_logits(tmp_path, arch, width, padding, convention, size):
    model = synthetic(arch, width, padding, convention)
    path = tinynet.export(model, tmp_path / "m.onnx")
    x = images(2, size, size + 6)  # N, H and W are free in the ONNX graph
    assert_same_logits(onnx_logits(path, x), model.forward(x))


@pytest.mark.parametrize("arch,width,padding,convention,size", CASES)
def test_tflite_runs_in_litert_with_tinynets_logits(tmp_path, arch, width, padding, convention, size):
    model = synthetic(arch, width, padding, convention)
    path = tinynet.export(model, tmp_path / "m.tflite", resolution=size)
    x = images(1, size, size)
    assert_same_logits(litert_logits(path, x), model.forward(x))


def test_trained_head_model_exports_to_both(tmp_path):
    model = trained_head_model()
    x = images(1, 224, 224, seed=5)  # the default TFLite input: the model's preprocessing size
    expected = model.forward(x)
    assert_same_logits(onnx_logits(tinynet.export(model, tmp_path / "head.onnx"), x), expected)
    assert_same_logits(litert_logits(tinynet.export(model, tmp_path / "head.tflite"), x), expected)


def test_onnx_carries_labels_and_preprocessing(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime reads the metadata")
    path = tinynet.export(trained_head_model(), tmp_path / "head.onnx")
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert meta["labels"] == '["cat", "dog", "fox"]'
    assert '"size": 224' in meta["preprocess"]


def test_format_from_argument_overrides_suffix(tmp_path):
    path = tinynet.export(synthetic("mobilenet_v1", 0.25, "symmetric", "torchvision"), tmp_path / "m.bin", format="tflite")
    assert path.read_bytes()[4:8] == b"TFL3"


@pytest.mark.parametrize("name,kwargs,message", [
    ("m.pb", {}, "cannot tell the export format"),
    ("m.onnx", {"format": "coreml"}, "unknown export format"),
    ("missing/m.onnx", {}, "does not exist"),
    ("m.tflite", {"resolution": 16}, "at least 32"),
])
def test_user_mistakes_are_one_line_errors(tmp_path, name, kwargs, message):
    with pytest.raises(TinynetError, match=message):
        tinynet.export(synthetic("mobilenet_v1", 0.25, "symmetric", "torchvision"), tmp_path / name, **kwargs)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


@pytest.mark.parametrize("format", ["onnx", "tflite"])
def test_activation_grids_of_a_qat_model_are_exported(tmp_path, format):
    """TF's uint8 V3 file snaps activations to 8-bit grids (Model.quantized_activations): the export does too, with
    quantize-dequantize pairs. Values that fall within rounding error of a grid boundary land on the other level in
    another runtime, so these logits agree to a few percent, not 1e-4 (measured: at most 0.15 in LiteRT and 0.43 in ONNX Runtime, whose optimiser fuses the pairs into
    its own kernels, for logits up to 10.7); with
    float_activations=True the export matches tinynet's float activations to 1e-4."""
    model = tinynet.load(shared_path("weights", "tqminlo_mobilenetv3_by_c", "v3-large-minimalistic_224_1.0_uint8.tflite"),
                         precision="float")  # the float path, whose layers and grids the export writes
    assert model.quantized_activations
    x = model.preprocess(shared_path("images", "chelsea.png"))
    run = onnx_logits if format == "onnx" else litert_logits
    snapped, plain = model.forward(x), None
    exported = run(tinynet.export(model, tmp_path / f"grid.{format}"), x)
    floats = run(tinynet.export(model, tmp_path / f"float.{format}", float_activations=True), x)
    model.quantized_activations = False
    plain = model.forward(x)
    assert_same_logits(floats, plain)
    assert exported.argmax() == snapped.argmax()
    assert np.abs(exported - snapped).mean() < 0.75 * np.abs(floats - snapped).mean(), (
        np.abs(exported - snapped).mean(), np.abs(floats - snapped).mean())  # the grids bring it closer to tinynet


def run_tinynet(cwd, home, *args):
    env = {**os.environ, "TINYNET_HOME": str(home), "TINYNET_PROGRESS": "0", "PYTHONPATH": REPO}
    env.pop("TINYNET_MODEL", None)
    return subprocess.run([sys.executable, "-m", "tinynet", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_cli_exports_a_stored_trained_model(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path / "home"))
    model = trained_head_model()
    tinynet.store.save(model, "pets")
    result = run_tinynet(tmp_path, tmp_path / "home", "export", "pets", "--format", "tflite")
    assert result.returncode == 0, result.stderr
    assert "wrote pets.tflite (tflite, float32, input (1, 224, 224, 3), output logits (N, 3))" in result.stdout
    x = images(1, 224, 224, seed=2)
    assert_same_logits(litert_logits(tmp_path / "pets.tflite", x), model.forward(x))
    result = run_tinynet(tmp_path, tmp_path / "home", "export", "pets", "--format", "onnx", "--out", "out/pets.onnx")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "does not exist" in result.stderr
    (tmp_path / "out").mkdir()
    result = run_tinynet(tmp_path, tmp_path / "home", "export", "pets", "--format", "onnx", "--out", "out/pets.onnx")
    assert result.returncode == 0, result.stderr
    assert_same_logits(onnx_logits(tmp_path / "out" / "pets.onnx", x), model.forward(x))
