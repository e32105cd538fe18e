"""`tinynet import` (a subprocess, as a user runs it) recognises the new formats by content: a Hugging Face
transformers folder, a Keras 3 .keras file, an ONNX file with external data; a bad one is one line, exit 1."""
import json
from pathlib import Path

import pytest

from conftest import run_cli
from test_hub_checkpoints import write_folder
from test_onnx import model_folder

FIXTURES = Path(__file__).parent / "fixtures"


def test_import_a_transformers_folder(tmp_path):
    spec = json.loads((FIXTURES / "format_hf_mobilenet_v2_035_finegrained.json").read_text())
    folder = write_folder(spec, tmp_path / "hf-mobilenet")
    done = run_cli("import", folder, "--name", "hf", home=tmp_path / "store")
    assert done.returncode == 0, done.stderr
    assert "as hf (mobilenet_v2, 3 classes)" in done.stdout


def test_import_onnx_with_external_data(tmp_path):
    path, _ = model_folder(FIXTURES / "onnx_tv_v3_small_050_op17.json", tmp_path / "m")
    done = run_cli("import", path, home=tmp_path / "store")
    assert done.returncode == 0, done.stderr
    assert "as model (mobilenet_v3_small, 10 classes)" in done.stdout


def test_import_keras3(tmp_path):
    pytest.importorskip("h5py", reason="reading .keras files needs h5py (the keras extra)")
    from test_keras3 import keras_file
    spec = json.loads((FIXTURES / "keras3_mobilenet_025_96.json").read_text())
    done = run_cli("import", keras_file(tmp_path / "v1.keras", spec), home=tmp_path / "store")
    assert done.returncode == 0, done.stderr
    assert "as v1 (mobilenet_v1, 7 classes)" in done.stdout


def test_import_a_broken_onnx_file_is_one_line(tmp_path):
    path, _ = model_folder(FIXTURES / "onnx_tv_v2_035_op11.json", tmp_path / "m")
    (path.parent / "weights.bin").unlink()
    done = run_cli("import", path, home=tmp_path / "store")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "weights.bin" in done.stderr
