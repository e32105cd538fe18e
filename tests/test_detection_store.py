"""Detectors in tinynet's format and the store: `tinynet import` of a detector, `tinynet.load(name)`,
`tinynet detect --model NAME`, and refusals of stored detector files that do not fit."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import tinynet
from conftest import run_cli, shared_path
from tinynet import store
from tinynet.formats import safetensors

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_detection_example import write_example, write_photos  # noqa: E402


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYNET_MODEL", raising=False)
    return tmp_path / "home"


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The README's seeded 7-class SSDLite, its photo and another."""
    folder = tmp_path_factory.mktemp("example")
    photo, weights = write_example(folder)
    return tinynet.load(weights), [photo, *write_photos(folder, [(97, 301)])], weights


def same_outputs(a, b, x):
    out_a, out_b = a.forward(x), b.forward(x)
    return out_a.keys() == out_b.keys() and all(np.array_equal(out_a[k], out_b[k]) for k in out_a)


def test_ssdlite_imported_loads_by_name_with_identical_results(home, example, tmp_path):
    model, photos, weights = example
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["background", "cat", "dog", "kite", "car", "tie", "cup"]) + "\n")
    name, path = store.import_file(weights, "ssdlite7", labels=labels)
    assert path == home / "models" / "ssdlite7.safetensors"
    stored = tinynet.load("ssdlite7")
    assert stored.task == "detection" and stored.num_classes == 7 and stored.head == model.head
    assert same_outputs(stored, model, model.preprocess(photos[:2]))
    found = stored.detect(photos[0], top=5)
    assert [(d.class_id, d.score, d.box) for d in found] == [(d.class_id, d.score, d.box) for d in model.detect(photos[0], top=5)]
    assert found[0].label == ["background", "cat", "dog", "kite", "car", "tie", "cup"][found[0].class_id]
    assert stored.meta["source"] == "import:ssdlite_7classes.pth"
    assert tinynet.count(stored) == tinynet.count(model)


def test_tflite_detector_imported_loads_by_name_with_identical_results(home):
    original = shared_path("weights", "edje_tflite_od", "ssd_mobilenet_v1.tflite")
    store.import_file(original, "ssd_v1")
    stored, model = tinynet.load("ssd_v1"), tinynet.load(original)
    pets = shared_path("images", "pets.jpg")
    assert same_outputs(stored, model, model.preprocess(pets))
    assert stored.detect(pets) == model.detect(pets) and stored.labels == model.labels
    assert stored.meta["source"] == "import:ssd_mobilenet_v1.tflite"


def test_cli_import_then_detect_by_name(home, example):
    _, photos, weights = example
    imported = run_cli("import", weights, "--name", "ssdlite7", home=home)
    assert imported.returncode == 0, imported.stderr
    by_name = run_cli("detect", photos[0], "--model", "ssdlite7", "--top", "3", "--json", home=home)
    by_file = run_cli("detect", photos[0], "--model", weights, "--top", "3", "--json", home=home)
    assert by_name.returncode == 0, by_name.stderr
    assert json.loads(by_name.stdout) == json.loads(by_file.stdout)
    assert len(json.loads(by_name.stdout)["detections"]) == 3


def test_stored_detectors_that_do_not_fit_are_refused(tmp_path, example):
    model, _, _ = example
    path = tmp_path / "ssdlite.safetensors"
    tinynet.save(model, path)
    tensors, metadata = safetensors.read(path)
    del tensors["cls.3.w"]
    safetensors.write(path, tensors, metadata)
    with pytest.raises(tinynet.WeightsError, match="cls.3"):
        tinynet.load(path)
    for arch, bad in [("ssd_mobilenet_v1", {"tflite": np.zeros(8, np.float32)}),
                      ("ssd_mobilenet_v1", {"tflite": np.frombuffer(b"TFL3 truncated", np.uint8)}),
                      ("ssdlite320_mobilenet_v3_large", {**tensors, "cls.3.w": np.zeros((1, 1, 8, 42), np.float64)})]:
        safetensors.write(path, bad, {**metadata, "arch": arch})
        with pytest.raises(tinynet.WeightsError) as refused:
            tinynet.load(path)
        assert "\n" not in str(refused.value)
