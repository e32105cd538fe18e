"""Keras .h5 importer: the real Keras Applications MobileNet file, and small files written here with
h5py in Keras' layout (layer_names / weight_names attributes, model_config JSON)."""
import json
import sys

import numpy as np
import pytest

import tinynet
from tinynet import preprocess
from tinynet.errors import TinynetError, WeightsError

from conftest import shared_path

V1_CHANNELS = [8, 16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256]  # width 0.25: stem, 13 pointwise


def keras_v1_layers(rng, classes):
    """Keras MobileNet (width 0.25) layer name -> {variable: array}, in model order."""
    def bn(c):
        return {"gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(0, 0.1, c),
                "moving_mean": rng.normal(0, 0.1, c), "moving_variance": rng.uniform(0.01, 2.0, c)}

    layers = {"conv1": {"kernel": rng.normal(0, 0.2, (3, 3, 3, 8))}, "conv1_bn": bn(8)}
    c = 8
    for i in range(1, 14):
        layers[f"conv_dw_{i}"] = {"depthwise_kernel": rng.normal(0, 0.2, (3, 3, c, 1))}
        layers[f"conv_dw_{i}_bn"] = bn(c)
        layers[f"conv_pw_{i}"] = {"kernel": rng.normal(0, 0.2, (1, 1, c, V1_CHANNELS[i]))}
        c = V1_CHANNELS[i]
        layers[f"conv_pw_{i}_bn"] = bn(c)
    layers["conv_preds"] = {"kernel": rng.normal(0, 0.2, (1, 1, c, classes)), "bias": rng.normal(0, 0.1, classes)}
    return {name: {k: v.astype(np.float32) for k, v in variables.items()} for name, variables in layers.items()}


def write_keras_h5(path, layers, epsilon=None, size=None):
    """Write ``layers`` as Keras 2 does: model_weights/<layer>/<layer>/<var>:0, with weight_names."""
    h5py = pytest.importorskip("h5py", reason="h5py not installed (optional extra tinynet[keras])")
    with h5py.File(path, "w") as f:
        if epsilon is not None:
            config_layers = [{"class_name": "InputLayer", "config": {"name": "input_1", "batch_input_shape": [None, size, size, 3]}}]
            config_layers += [{"class_name": "BatchNormalization", "config": {"name": n, "epsilon": epsilon}}
                              for n in layers if n.endswith("_bn")]
            f.attrs["model_config"] = json.dumps({"class_name": "Functional", "config": {"layers": config_layers}})
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [n.encode() for n in layers]
        for name, variables in layers.items():
            group = root.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{v}:0".encode() for v in variables]
            for v, array in variables.items():
                group.create_dataset(f"{name}/{v}:0", data=array)


def folded(kernel, bn, eps):
    """BatchNorm folded in float64: W * gamma / sqrt(var + eps) and beta - mean * gamma / sqrt(var + eps)."""
    s = bn["gamma"].astype(np.float64) / np.sqrt(bn["moving_variance"].astype(np.float64) + eps)
    return kernel.astype(np.float64) * s, bn["beta"].astype(np.float64) - bn["moving_mean"].astype(np.float64) * s


@pytest.mark.parametrize("epsilon, size", [(None, None), (0.01, 192)])
def test_batchnorm_is_folded_with_the_files_epsilon(tmp_path, epsilon, size):
    layers = keras_v1_layers(np.random.default_rng(0), classes=7)
    write_keras_h5(tmp_path / "v1.h5", layers, epsilon, size)
    model = tinynet.load(tmp_path / "v1.h5")
    eps = 1e-3 if epsilon is None else epsilon  # Keras' MobileNet default when the file has no config
    assert (model.arch, model.width, model.num_classes, model.padding) == ("mobilenet_v1", 0.25, 7, "tf_same")
    assert model.meta["preprocess"] == {"preset": "tf", "size": size or 224, "range": [-1.0, 1.0]}

    w, b = folded(layers["conv1"]["kernel"], layers["conv1_bn"], eps)  # (3, 3, 3, 8): Keras layout is tinynet's
    np.testing.assert_allclose(model.weights["00.conv.w"], w, rtol=1e-6)
    np.testing.assert_allclose(model.weights["00.conv.b"], b, rtol=1e-6, atol=1e-7)
    w, b = folded(layers["conv_dw_5"]["depthwise_kernel"][..., 0], layers["conv_dw_5_bn"], eps)  # (3, 3, C)
    np.testing.assert_allclose(model.weights["05.dw.w"], w, rtol=1e-6)
    np.testing.assert_allclose(model.weights["05.dw.b"], b, rtol=1e-6, atol=1e-7)
    w, b = folded(layers["conv_pw_13"]["kernel"][0, 0], layers["conv_pw_13_bn"], eps)  # (Cin, Cout)
    np.testing.assert_allclose(model.weights["13.pw.w"], w, rtol=1e-6)
    np.testing.assert_allclose(model.weights["13.pw.b"], b, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(model.weights["15.fc.w"], layers["conv_preds"]["kernel"][0, 0])
    np.testing.assert_array_equal(model.weights["15.fc.b"], layers["conv_preds"]["bias"])


# Keras MobileNetV2 at width 0.35 (Keras' _make_divisible by 8): block outputs, stem 16, head 1280.
V2_OUTPUTS = [8, 8, 8, 16, 16, 16, 24, 24, 24, 24, 32, 32, 32, 56, 56, 56, 112]


def keras_v2_layers(rng, classes):
    def conv_bn(name, bn, shape):
        depthwise = name.endswith("_depthwise")
        c = shape[2] if depthwise else shape[3]
        return {name: {"depthwise_kernel" if depthwise else "kernel": rng.normal(0, 0.2, shape)},
                bn: {"gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(0, 0.1, c),
                     "moving_mean": rng.normal(0, 0.1, c), "moving_variance": rng.uniform(0.01, 2.0, c)}}

    layers = conv_bn("Conv1", "bn_Conv1", (3, 3, 3, 16))
    c = 16
    for i, out in enumerate(V2_OUTPUTS):
        prefix = "expanded_conv" if i == 0 else f"block_{i}"  # Keras' first block has no number, no expand
        expanded = c if i == 0 else 6 * c
        if i > 0:
            layers |= conv_bn(f"{prefix}_expand", f"{prefix}_expand_BN", (1, 1, c, expanded))
        layers |= conv_bn(f"{prefix}_depthwise", f"{prefix}_depthwise_BN", (3, 3, expanded, 1))
        layers |= conv_bn(f"{prefix}_project", f"{prefix}_project_BN", (1, 1, expanded, out))
        c = out
    layers |= conv_bn("Conv_1", "Conv_1_bn", (1, 1, c, 1280))
    layers["Logits"] = {"kernel": rng.normal(0, 0.1, (1280, classes)), "bias": rng.normal(0, 0.1, classes)}
    return {name: {k: v.astype(np.float32) for k, v in variables.items()} for name, variables in layers.items()}


def test_keras_mobilenet_v2_names_are_read(tmp_path):
    layers = keras_v2_layers(np.random.default_rng(3), classes=5)
    write_keras_h5(tmp_path / "v2.h5", layers)
    model = tinynet.load(tmp_path / "v2.h5")
    assert (model.arch, model.width, model.num_classes) == ("mobilenet_v2", 0.35, 5)
    w, b = folded(layers["block_5_expand"]["kernel"][0, 0], layers["block_5_expand_BN"], 1e-3)  # table row 6
    np.testing.assert_allclose(model.weights["06.expand.w"], w, rtol=1e-6)
    np.testing.assert_allclose(model.weights["06.expand.b"], b, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(model.weights["20.fc.w"], layers["Logits"]["kernel"])


def test_mismatched_batchnorm_names_the_tensor(tmp_path):
    layers = keras_v1_layers(np.random.default_rng(1), classes=7)
    layers["conv_dw_3_bn"]["moving_variance"] = np.ones(5, np.float32)
    write_keras_h5(tmp_path / "bad.h5", layers)
    with pytest.raises(WeightsError, match="conv_dw_3_bn/moving_variance"):
        tinynet.load(tmp_path / "bad.h5")


def test_missing_layer_names_the_tensor(tmp_path):
    layers = keras_v1_layers(np.random.default_rng(2), classes=7)
    del layers["conv_pw_7"]
    write_keras_h5(tmp_path / "missing.h5", layers)
    with pytest.raises(WeightsError, match="conv_pw_7/kernel"):
        tinynet.load(tmp_path / "missing.h5")


def test_without_h5py_the_error_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes "import h5py" raise ImportError
    with pytest.raises(TinynetError, match=r'pip install "tinynet\[keras\]"'):
        tinynet.load(path)


def test_real_keras_mobilenet_loads_and_classifies():
    pytest.importorskip("h5py", reason="h5py not installed (optional extra tinynet[keras])")
    model = tinynet.load(shared_path("weights", "stm32ai_modelzoo", "mobilenet_v1_0.25_224.h5"))
    assert (model.arch, model.width, model.num_classes, model.padding) == ("mobilenet_v1", 0.25, 1000, "tf_same")
    assert model.meta == {"preprocess": {"preset": "tf", "size": 224, "range": [-1.0, 1.0]},
                          "labels": "imagenet1k", "source": "keras:mobilenet_v1_0.25_224.h5"}
    photos = ["coffee.png", "parrot.jpg", "bird.bmp", "dragonfly.bmp", "hot_dog.jpg"]
    x = preprocess.batch([shared_path("images", p) for p in photos], preprocess.for_model(model))
    assert model.forward(x).argmax(axis=1).tolist() == [967, 88, 19, 319, 934]
