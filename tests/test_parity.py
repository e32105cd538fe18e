"""Exact parity with the frameworks: tinynet's logits against torchvision's and timm's own float64 output.

Two sources of truth, both produced by the libraries themselves:
- ../shared/golden: real checkpoint files (.pth zip, timm safetensors) with the library's float64 logits;
- tests/fixtures/width_*.json: other widths and input sizes (non-square, odd, batch 2), holding the
  library's tensor names and shapes and its float64 logits for weights that tests/synthetic_weights.py
  regenerates from a seed (see tests/fixtures/make_width_fixtures.py).

Criterion (issue 2): max |tinynet - reference| <= 1e-4 * max |reference|, and the same top-1.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import tinynet
from conftest import shared_path
from synthetic_weights import input_batch, state_dict
from tinynet.formats import safetensors

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("width_*.json"))
GOLDEN = ["tv_mobilenet_v2", "tv_mobilenet_v3_large", "tv_mobilenet_v3_small", "timm_mobilenetv1_100"]
ARCH = {"mobilenet_v2": "mobilenet_v2", "mobilenet_v3_large": "mobilenet_v3_large",
        "mobilenet_v3_small": "mobilenet_v3_small", "mobilenetv1_100": "mobilenet_v1", "mobilenetv1_125": "mobilenet_v1"}


def assert_parity(logits, reference):
    assert logits.shape == reference.shape
    scale = np.abs(reference).max()
    err = np.abs(logits.astype(np.float64) - reference).max()
    assert err <= 1e-4 * scale, f"max abs error {err:.3g} exceeds 1e-4 x {scale:.3g}"
    np.testing.assert_array_equal(logits.argmax(axis=1), reference.argmax(axis=1))


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_checkpoint(name):
    manifest = json.loads(shared_path("golden", "MANIFEST.json").read_text())["models"][name]
    model = tinynet.load(shared_path("golden", manifest["weights"]))
    assert model.arch == ARCH[manifest["constructor"]]
    assert (model.width, model.num_classes) == (1.0, 1000)
    x = np.load(shared_path("golden", f"{name}.input.npy")).transpose(0, 2, 3, 1)
    reference = np.load(shared_path("golden", f"{name}.logits_f64.npy"))
    logits = model.forward(x)
    assert_parity(logits, reference)
    assert list(np.argsort(-logits[0])[:5]) == manifest["top5_f64"]


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_other_widths_and_sizes(fixture, tmp_path):
    spec = json.loads(fixture.read_text())
    weights = state_dict(spec["tensors"], spec["seed"])
    path = tmp_path / "checkpoint.safetensors"  # library tensor names, as timm/torchvision would write them
    safetensors.write(path, weights)
    model = tinynet.load(path)
    assert model.arch == ARCH[spec["constructor"]]
    width = spec["kwargs"].get("width_mult", {"mobilenetv1_125": 1.25}.get(spec["constructor"], 1.0))
    assert model.width == width
    x = input_batch(spec["input_shape"], spec["input_seed"]).transpose(0, 2, 3, 1)
    assert_parity(model.forward(x), np.array(spec["logits_f64"]))


def test_batch_items_are_independent():
    """Image i of a batch gets the same logits as image i run alone (buffers and tasks do not mix images)."""
    model = tinynet.create("mobilenet_v3_small", width=0.75, num_classes=37)
    x = np.random.default_rng(1).standard_normal((3, 64, 80, 3)).astype(np.float32)
    batched = model.forward(x)
    for i in range(3):
        np.testing.assert_allclose(batched[i], model.forward(x[i:i + 1])[0], rtol=0, atol=1e-5 * np.abs(batched).max())


def test_save_and_load_roundtrip(tmp_path):
    model = tinynet.load(shared_path("golden", "tv_mobilenet_v3_small.pth"))
    tinynet.save(model, tmp_path / "v3s.tinynet")
    again = tinynet.load(tmp_path / "v3s.tinynet")
    assert (again.arch, again.padding, again.meta) == (model.arch, model.padding, model.meta)
    x = np.load(shared_path("golden", "tv_mobilenet_v3_small.input.npy")).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
