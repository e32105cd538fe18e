"""Issue 10, classes 7 and 8: a file in the working directory never shadows the store; labels, sources and
file names cannot forge lines of CLI output; registry values of the wrong type, odd tensor geometry and a
weight file truncated after loading give one-line errors or correct results, never a raw exception or a crash.
"""
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tinynet
from tinynet import registry, store
from tinynet.errors import TinynetError, WeightsError
from tinynet.terminal import printable

from conftest import REPO, run_cli
from weight_files import run_isolated

FORGED = "cat\n 99.00%  forged line\x1b[2J\x1b[31m\u2028\u202e"


def small_file(path, arch="mobilenet_v1", labels=None, source=None, classes=3):
    model = tinynet.create(arch, width=0.25 if arch == "mobilenet_v1" else 0.5, num_classes=classes)
    if labels is not None:
        model.meta["labels"] = labels
    if source is not None:
        model.meta["source"] = source
    tinynet.save(model, path)
    return path


def cli(*args, cwd, home, env=None):
    environment = {**os.environ, "TINYNET_PROGRESS": "0", "TINYNET_HOME": str(home), "PYTHONPATH": str(REPO),
                   **(env or {})}
    environment.pop("TINYNET_MODEL", None)
    return subprocess.run([sys.executable, "-m", "tinynet", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=environment, timeout=300)


# ---------------------------------------------------------------------------------------------
# Class 7: a bare name means the store; a path is a path

@pytest.fixture
def shadowed(tmp_path, monkeypatch):
    """A store holding "mobilenet_v3_large" (labels s0..s2) and, in the working directory, a different
    model in a file of that very name (labels w0..w2)."""
    home, cwd = tmp_path / "home", tmp_path / "work"
    cwd.mkdir()
    monkeypatch.setenv("TINYNET_HOME", str(home))
    stored = store.path_of("mobilenet_v3_large")
    stored.parent.mkdir(parents=True)
    small_file(stored, "mobilenet_v3_small", labels=["s0", "s1", "s2"])
    small_file(cwd / "mobilenet_v3_large", labels=["w0", "w1", "w2"])
    monkeypatch.chdir(cwd)
    return home, cwd


def test_python_load_of_a_bare_name_reads_the_store(shadowed):
    assert tinynet.load("mobilenet_v3_large").meta["labels"] == ["s0", "s1", "s2"]
    assert tinynet.load("./mobilenet_v3_large").meta["labels"] == ["w0", "w1", "w2"]
    assert tinynet.load(Path("mobilenet_v3_large")).meta["labels"] == ["w0", "w1", "w2"]  # a Path is a path


def test_python_load_of_a_bare_name_missing_from_the_store_names_the_local_file(shadowed):
    home, _ = shadowed
    store.path_of("mobilenet_v3_large").unlink()
    with pytest.raises(TinynetError, match=r"not downloaded yet.*\./mobilenet_v3_large"):
        tinynet.load("mobilenet_v3_large")
    with pytest.raises(TinynetError, match="no such weight file"):
        tinynet.load("./nothing_here")


def test_cli_without_a_model_reads_the_store_not_the_working_directory(shadowed):
    home, cwd = shadowed
    Image.new("RGB", (40, 40), (9, 90, 200)).save(cwd / "photo.png")
    done = cli("classify", "photo.png", "--top", "3", cwd=cwd, home=home)
    assert done.returncode == 0, done.stderr
    assert set(re.findall(r"%  (\w+)", done.stdout)) == {"s0", "s1", "s2"}
    done = cli("classify", "photo.png", "--top", "3", "--model", "./mobilenet_v3_large", cwd=cwd, home=home)
    assert set(re.findall(r"%  (\w+)", done.stdout)) == {"w0", "w1", "w2"}


# ---------------------------------------------------------------------------------------------
# Class 8: text from files cannot forge CLI output

def test_printable_escapes_what_acts_on_a_terminal():
    assert printable("plain é 猫 name") == "plain é 猫 name"
    escaped = printable(FORGED)
    assert escaped.isprintable() and "\x1b" not in escaped and "\n" not in escaped
    assert escaped == "cat\\n 99.00%  forged line\\x1b[2J\\x1b[31m\\u2028\\u202e"


def test_labels_sources_and_file_names_cannot_forge_output_lines(tmp_path):
    model = small_file(tmp_path / "m.safetensors", labels=[FORGED, "b\r\nc", "d"], source=FORGED)
    image = tmp_path / "photo\n  100.00%  forged.png"
    Image.new("RGB", (40, 40), (200, 90, 9)).save(image, "PNG")
    done = run_cli("classify", image, "--model", model, "--top", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.rstrip("\n").split("\n")
    assert len(lines) == 4, lines  # the image, then exactly one line per prediction
    assert lines[0] == printable(image)
    assert all(re.fullmatch(r"  +\d+\.\d\d%  \S.*", line) for line in lines[1:]), lines
    assert "\x1b" not in done.stdout + done.stderr and "\u2028" not in done.stdout
    records = run_cli("classify", image, "--model", model, "--json").stdout.splitlines()
    assert len(records) == 1 and json.loads(records[0])["predictions"][0]["label"] in (FORGED, "b\r\nc", "d")
    info = run_cli("info", model)
    assert info.returncode == 0 and f"source: {printable(FORGED)}\n" in info.stdout


def test_error_messages_naming_hostile_files_stay_one_line(tmp_path):
    missing = tmp_path / "no\nsuch\x1b[2J.png"
    broken = tmp_path / "broken\n tinynet: all fine.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    model = small_file(tmp_path / "m.safetensors")
    done = run_cli("classify", missing, broken, "--model", model)
    assert done.returncode == 1
    assert "\x1b" not in done.stderr
    assert all(line.startswith("tinynet: ") for line in done.stderr.splitlines()), done.stderr
    assert len(done.stderr.splitlines()) == 3  # the missing file, the broken one, the count
    done = run_cli("info", tmp_path / "gone\nfile.pth")
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1 and "\\n" in done.stderr


# ---------------------------------------------------------------------------------------------
# Class 8: registry values of the wrong type

GOOD_ENTRY = {"name": "mine", "arch": "mobilenet_v2", "url": "https://example.invalid/mine.pth", "file": "mine.pth",
              "license": "MIT", "top1": 70.0, "preprocess": {"preset": "torchvision"}}


@pytest.mark.parametrize("change", [
    {"top1": "70"}, {"top1": None}, {"top1": float("nan")}, {"width": "1.0"}, {"width": 0}, {"width": 1e300},
    {"num_classes": 2.5}, {"num_classes": True}, {"num_classes": 0}, {"preprocess": "tf"}, {"preprocess": None},
    {"preprocess": {"size": 10 ** 9}}, {"preprocess": {"crop_fraction": 1e-308}}, {"arch": ["mobilenet_v2"]},
    {"arch": "resnet"}, {"name": 5}, {"name": "../escape"}, {"name": "a\nb"}, {"url": 5}, {"file": "../../x.pth"},
    {"file": None}, {"license": {}}, {"member": 3}, {"sha256": "xyz"}, {"sha256": 12}, {"sha256_prefix": "not hex"},
    {"hf_repo": []}, {"notes": None}, {"notes": "line\nforged"},
], ids=lambda change: "-".join(f"{k}={str(v)[:12]}" for k, v in change.items()))
def test_registry_values_of_the_wrong_type_are_one_line_errors(tmp_path, change):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps([{**GOOD_ENTRY, **change}]))
    with pytest.raises(TinynetError) as caught:
        registry.load(str(path))
    assert "\n" not in str(caught.value) and next(iter(change)) in str(caught.value)


def test_a_good_registry_entry_loads_and_lists(tmp_path):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps([GOOD_ENTRY]))
    assert registry.load(str(path))["mine"].top1 == 70.0
    done = run_cli("models", home=tmp_path / "home", env={"TINYNET_REGISTRY": str(path)})
    assert done.returncode == 0 and "mine" in done.stdout


@pytest.mark.parametrize("text", ["[{", "\xff\xfe", "[" * 100000])
def test_a_broken_registry_file_is_one_line(tmp_path, text):
    path = tmp_path / "registry.json"
    path.write_bytes(text.encode("latin-1"))
    done = run_cli("models", home=tmp_path / "home", env={"TINYNET_REGISTRY": str(path)})
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1 and "registry" in done.stderr


# ---------------------------------------------------------------------------------------------
# Class 8: odd tensor geometry, and a file truncated after it was loaded

def _rewritten(path, out, edit):
    blob = path.read_bytes()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length])
    edit(header)
    text = json.dumps(header).encode()
    out.write_bytes(struct.pack("<Q", len(text)) + text + blob[8 + length:])
    return out


@pytest.mark.parametrize("name", ["00.conv.w", "01.pw.w", "15.fc.w"])
@pytest.mark.parametrize("shape", [[], [1]])
def test_a_weight_without_dimensions_is_a_weights_error(tmp_path, name, shape):
    genuine = small_file(tmp_path / "m.safetensors")

    def edit(header):
        begin = header[name]["data_offsets"][0]
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [begin, begin + 4]}

    with pytest.raises(WeightsError):
        tinynet.load(_rewritten(genuine, tmp_path / "odd.safetensors", edit))


TRUNCATE_AFTER_LOAD = """
import os, sys
import numpy as np
import tinynet
path = sys.argv[1]
model = tinynet.load(path)
x = np.random.default_rng(0).standard_normal((1, 32, 32, 3)).astype(np.float32)
os.truncate(path, 100)  # another process cuts the file short
print(model.forward(x).tolist())
"""


def test_a_file_truncated_after_loading_does_not_crash_the_next_forward(tmp_path):
    path = small_file(tmp_path / "m.safetensors")
    expected = tinynet.load(path).forward(np.random.default_rng(0).standard_normal((1, 32, 32, 3)).astype(np.float32))
    done = run_isolated(TRUNCATE_AFTER_LOAD, path)
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-500:]}"  # -7 was SIGBUS
    assert np.array_equal(np.array(json.loads(done.stdout)), expected)
    assert path.stat().st_size == 100
