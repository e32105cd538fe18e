"""Loading weight files: architecture inference, and errors that name the tensor that does not fit."""
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

import tinynet
from conftest import shared_path
from tinynet.formats import safetensors, torch_zip


def torchvision_state(name):
    return torch_zip.read(shared_path("golden", f"tv_{name}.pth"))


def write_state(tmp_path, state):
    path = tmp_path / "state.safetensors"
    safetensors.write(path, state)
    return path


@pytest.mark.parametrize("name,arch", [("mobilenet_v2", "mobilenet_v2"), ("mobilenet_v3_large", "mobilenet_v3_large"),
                                       ("mobilenet_v3_small", "mobilenet_v3_small")])
def test_torchvision_names_in_safetensors_load_too(tmp_path, name, arch):
    model = tinynet.load(write_state(tmp_path, torchvision_state(name)))
    assert (model.arch, model.width, model.num_classes, model.padding) == (arch, 1.0, 1000, "symmetric")


def test_wrong_kernel_size_names_the_tensor(tmp_path):
    state = torchvision_state("mobilenet_v3_small")
    state["features.4.block.1.0.weight"] = np.zeros((96, 1, 3, 3), np.float32)  # the table says 5x5
    with pytest.raises(tinynet.WeightsError, match=r"features\.4\.block\.1\.0\.weight .*expected shape \(5, 5, 96\), found \(3, 3, 96\)"):
        tinynet.load(write_state(tmp_path, state))


def test_inconsistent_channels_name_the_tensor(tmp_path):
    state = torchvision_state("mobilenet_v2")
    state["features.5.conv.0.0.weight"] = np.zeros((192, 40, 1, 1), np.float32)  # previous block gives 32 channels
    with pytest.raises(tinynet.WeightsError, match=r"features\.5\.conv\.0\.0\.weight .*expected shape \(32, 192\), found \(40, 192\)"):
        tinynet.load(write_state(tmp_path, state))


def test_arch_override_that_does_not_fit(tmp_path):
    path = shared_path("golden", "tv_mobilenet_v3_small.pth")
    with pytest.raises(tinynet.WeightsError, match=r"tv_mobilenet_v3_small\.pth: missing tensor features\.12\.block\.0\.0\.weight"):
        tinynet.load(path, arch="mobilenet_v3_large")
    assert tinynet.load(path, arch="mobilenet_v3_small").arch == "mobilenet_v3_small"


def test_classifier_size_is_inferred(tmp_path):
    state = torchvision_state("mobilenet_v3_small")
    state["classifier.3.weight"] = state["classifier.3.weight"][:10].copy()
    state["classifier.3.bias"] = state["classifier.3.bias"][:10].copy()
    model = tinynet.load(write_state(tmp_path, state))
    assert model.num_classes == 10
    assert model.forward(np.zeros((1, 64, 64, 3), np.float32)).shape == (1, 10)


def test_extra_tensor_is_reported(tmp_path):
    state = torchvision_state("mobilenet_v3_small")
    state["features.99.weight"] = np.zeros(3, np.float32)
    with pytest.raises(tinynet.WeightsError, match=r"features\.99\.weight has no place in mobilenet_v3_small"):
        tinynet.load(write_state(tmp_path, state))


def test_unknown_tensor_names(tmp_path):
    path = write_state(tmp_path, {"encoder.weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(tinynet.UnsupportedModelError, match="encoder.weight"):
        tinynet.load(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(tinynet.TinynetError, match="no such weight file"):
        tinynet.load(tmp_path / "nope.pth")
    text = tmp_path / "notes.txt"
    text.write_text("hello, not weights\n")
    with pytest.raises(tinynet.WeightsError, match="not a weight file"):
        tinynet.load(text)
    with pytest.raises(tinynet.TinynetError, match="unknown architecture 'resnet50'"):
        tinynet.load(text, arch="resnet50")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_calls_a_function_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": _Payload(marker)}, protocol=2))
    path = tmp_path / "evil.pth"
    path.write_bytes(buf.getvalue())
    with pytest.raises(tinynet.WeightsError, match=r"refers to (posix|os)\.system"):
        tinynet.load(path)
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Payload(marker), protocol=2))  # the same payload through plain pickle does run
    assert marker.exists()


@pytest.mark.parametrize("shape,message", [
    ((1, 3, 224, 224), "looks like NCHW"),
    ((224, 224, 3), "add a batch axis"),
    ((1, 16, 16, 3), "at least 32x32"),
])
def test_bad_input_shapes_are_explained(shape, message):
    model = tinynet.create("mobilenet_v3_small", width=0.5, num_classes=5)
    with pytest.raises(tinynet.TinynetError, match=message):
        model.forward(np.zeros(shape, np.float32))
