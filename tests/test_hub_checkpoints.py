"""timm's MobileNet V2/V3 and transformers' MobileNetV1/V2 checkpoints against the libraries' own float64 logits.

tests/fixtures/format_*.json hold each library's tensor names and shapes, the config.json its checkpoint
folder carries, a seed for tests/synthetic_weights.py and the library's logits (see
tests/fixtures/make_format_fixtures.py). Criterion as in test_parity: 1e-4 of the largest logit, same top-1.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import tinynet
from synthetic_weights import input_batch, state_dict
from test_parity import assert_parity
from tinynet.formats import safetensors
from tinynet.labels import labels_for
from weight_files import torch_checkpoint

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("format_*.json"))
EXPECTED = {  # fixture -> (arch, padding)
    "format_timm_mobilenetv2_050_odd": ("mobilenet_v2", "symmetric"),
    "format_timm_mobilenetv3_large_075": ("mobilenet_v3_large", "symmetric"),
    "format_timm_mobilenetv3_small_050": ("mobilenet_v3_small", "symmetric"),
    "format_timm_tf_mobilenetv3_small_075_odd": ("mobilenet_v3_small", "tf_same"),
    "format_timm_tf_mobilenetv3_large_minimal_100": ("mobilenet_v3_large_minimalistic", "tf_same"),
    "format_hf_mobilenet_v1_025_1001_odd": ("mobilenet_v1", "tf_same"),
    "format_hf_mobilenet_v2_035_finegrained": ("mobilenet_v2", "tf_same"),
    "format_hf_mobilenet_v2_075_symmetric": ("mobilenet_v2", "symmetric"),
}


def write_folder(spec, folder, weight_file="model.safetensors"):
    """A Hugging Face style folder: config.json + the weight file, with the library's tensor names."""
    folder.mkdir(exist_ok=True)
    weights = state_dict(spec["tensors"], spec["seed"])
    (folder / "config.json").write_text(json.dumps(spec["config"]))
    if weight_file.endswith(".bin"):
        (folder / weight_file).write_bytes(torch_checkpoint(weights))
    else:
        safetensors.write(folder / weight_file, weights)
    return folder


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_logits_match_the_library(fixture, tmp_path):
    spec = json.loads(fixture.read_text())
    model = tinynet.load(write_folder(spec, tmp_path / "checkpoint"))
    assert (model.arch, model.padding) == EXPECTED[fixture.stem]
    x = input_batch(spec["input_shape"], spec["input_seed"]).transpose(0, 2, 3, 1)
    assert_parity(model.forward(x), np.array(spec["logits_f64"]))


def test_transformers_pytorch_model_bin_and_labels(tmp_path):
    spec = json.loads((FIXTURES[0].parent / "format_hf_mobilenet_v2_035_finegrained.json").read_text())
    model = tinynet.load(write_folder(spec, tmp_path / "m", "pytorch_model.bin") / "pytorch_model.bin")
    assert labels_for(model) == ["cat", "dog", "fox"]
    assert model.layers[-2 - 1].cout == 1280  # finegrained_output: the head conv stays 1280 wide below width 1


def test_1001_outputs_carry_background(tmp_path):
    spec = json.loads((FIXTURES[0].parent / "format_hf_mobilenet_v1_025_1001_odd.json").read_text())
    model = tinynet.load(write_folder(spec, tmp_path / "m"))
    names = labels_for(model)
    assert (len(names), names[0], names[1]) == (1001, "background", "tench")


def test_tf_port_named_by_its_folder(tmp_path):
    """Without config.json, timm's Hugging Face cache folder name says it is a tf_ port."""
    spec = json.loads((FIXTURES[0].parent / "format_timm_tf_mobilenetv3_small_075_odd.json").read_text())
    folder = tmp_path / "models--timm--tf_mobilenetv3_small_075.in1k" / "snapshots" / "abc"
    folder.mkdir(parents=True)
    safetensors.write(folder / "model.safetensors", state_dict(spec["tensors"], spec["seed"]))
    model = tinynet.load(folder / "model.safetensors")
    assert model.padding == "tf_same"
    x = input_batch(spec["input_shape"], spec["input_seed"]).transpose(0, 2, 3, 1)
    assert_parity(model.forward(x), np.array(spec["logits_f64"]))


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(model_type="mobilenet_v1"), "model_type"),
    (lambda c: c.update(hidden_act="gelu"), "hidden_act"),
    (lambda c: c.update(output_stride=16), "output_stride"),
    (lambda c: c.update(layer_norm_eps="x"), "layer_norm_eps"),
    (lambda c: c.update(id2label={"0": "a"}), "id2label"),
])
def test_bad_transformers_config(tmp_path, change, message):
    spec = json.loads((FIXTURES[0].parent / "format_hf_mobilenet_v2_035_finegrained.json").read_text())
    change(spec["config"])
    folder = write_folder(spec, tmp_path / "m")
    with pytest.raises(tinynet.WeightsError, match=message):
        tinynet.load(folder)


def test_transformers_without_config_or_weights(tmp_path):
    spec = json.loads((FIXTURES[0].parent / "format_hf_mobilenet_v2_035_finegrained.json").read_text())
    folder = write_folder(spec, tmp_path / "m")
    (folder / "config.json").write_text("[1, 2")
    with pytest.raises(tinynet.WeightsError, match="not valid JSON"):
        tinynet.load(folder)
    (folder / "config.json").unlink()
    with pytest.raises(tinynet.WeightsError, match="needs its config.json"):
        tinynet.load(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(tinynet.WeightsError, match="model folder needs"):
        tinynet.load(folder)


def test_timm_depth_scaled_variant_is_refused(tmp_path):
    spec = json.loads((FIXTURES[0].parent / "format_timm_mobilenetv2_050_odd.json").read_text())
    weights = state_dict(spec["tensors"], spec["seed"])
    extra = {n.replace("blocks.5.2.", "blocks.5.3."): a for n, a in weights.items() if n.startswith("blocks.5.2.")}
    safetensors.write(tmp_path / "m.safetensors", {**weights, **extra})
    with pytest.raises(tinynet.UnsupportedModelError, match="depth-scaled"):
        tinynet.load(tmp_path / "m.safetensors")
