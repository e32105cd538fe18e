"""Keras 3 .keras files (Keras Applications MobileNet and MobileNetV2) against Keras' own float64 logits.

tests/fixtures/keras3_*.json hold the file's config.json, the layout of its model.weights.h5 (path, shape,
role of each variable), a seed for tests/synthetic_weights.py's keras_variables and Keras' logits (see
tests/fixtures/make_keras3_fixtures.py); the .keras zip is rebuilt here with h5py.
"""
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tinynet
from synthetic_weights import input_batch, keras_variables
from test_parity import assert_parity

h5py = pytest.importorskip("h5py", reason="reading .keras files needs h5py (the keras extra)")

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("keras3_*.json"))


def keras_file(path, spec, entries=None, config=None, compression=zipfile.ZIP_DEFLATED):
    """A .keras zip from a fixture: config.json + model.weights.h5 (written without Keras' group name attributes,
    as Keras 3 before 3.10 did), + metadata.json."""
    entries = spec["entries"] if entries is None else entries
    values = keras_variables(spec["entries"], spec["seed"])
    weights = io.BytesIO()
    with h5py.File(weights, "w") as f:
        f.create_group("vars")
        for name, _, _ in entries:
            f.create_dataset(name, data=values.get(name, np.zeros(1, np.float32)))
    with zipfile.ZipFile(path, "w", compression) as z:
        z.writestr("metadata.json", json.dumps({"keras_version": spec["made_with"]["keras"]}))
        z.writestr("config.json", spec["config"] if config is None else config)
        z.writestr("model.weights.h5", weights.getvalue())
    return path


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_logits_match_keras(fixture, tmp_path):
    spec = json.loads(fixture.read_text())
    model = tinynet.load(keras_file(tmp_path / "m.keras", spec))
    assert model.arch == {"MobileNet": "mobilenet_v1", "MobileNetV2": "mobilenet_v2"}[spec["application"]]
    assert model.padding == "tf_same" and model.meta["preprocess"]["size"] == 96
    x = input_batch(spec["input_shape"], spec["input_seed"])
    assert_parity(model.forward(x), np.array(spec["logits_f64"]))


@pytest.fixture
def spec():
    return json.loads((Path(__file__).parent / "fixtures" / "keras3_mobilenet_025_96.json").read_text())


def test_a_missing_variable_is_named(spec, tmp_path):
    entries = [e for e in spec["entries"] if not e[0].startswith("layers/batch_normalization_3/")]
    with pytest.raises(tinynet.WeightsError, match="missing tensor conv_dw_2_bn/moving_mean"):
        tinynet.load(keras_file(tmp_path / "m.keras", spec, entries=entries))


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b[:len(b) // 2], "damaged|not a"),
    (lambda b: b.replace(b"model.weights.h5", b"model.weightsXh5"), "needs config.json and model.weights.h5"),
])
def test_damaged_archives(spec, tmp_path, mangle, message):
    data = keras_file(tmp_path / "m.keras", spec).read_bytes()
    (tmp_path / "bad.keras").write_bytes(mangle(data))
    with pytest.raises(tinynet.WeightsError, match=message):
        tinynet.load(tmp_path / "bad.keras")


def test_random_corruption_is_a_clean_error(spec, tmp_path):
    data = keras_file(tmp_path / "m.keras", spec).read_bytes()
    rng = np.random.default_rng(13)  # seed 13's first file breaks the deflate stream itself (zlib.error), not only its CRC
    for trial in range(12):
        forged = bytearray(data)
        for pos in rng.integers(0, len(forged), rng.integers(1, 4)):
            forged[pos] = int(rng.integers(0, 256))
        (tmp_path / "bad.keras").write_bytes(bytes(forged))
        try:
            tinynet.load(tmp_path / "bad.keras")
        except tinynet.WeightsError as e:
            assert "\n" not in str(e)


def test_config_that_is_not_a_keras_model(spec, tmp_path):
    with pytest.raises(tinynet.WeightsError, match="model_config"):
        tinynet.load(keras_file(tmp_path / "m.keras", spec, config="[]"))
    with pytest.raises(tinynet.WeightsError, match="not valid JSON"):
        tinynet.load(keras_file(tmp_path / "n.keras", spec, config="{"))


def test_too_many_variables_in_a_group(spec, tmp_path):
    entries = spec["entries"] + [("layers/batch_normalization/vars/4", [8], "gamma")]
    with pytest.raises(tinynet.WeightsError, match="holds 5 variables"):
        tinynet.load(keras_file(tmp_path / "m.keras", spec, entries=entries))


def test_compression_bomb_is_refused_before_extraction(spec, tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", spec["config"])
        z.writestr("model.weights.h5", b"\0" * (50 << 20))
    with pytest.raises(tinynet.WeightsError, match="declares"):
        tinynet.load(path)
