"""The real command line, run as a subprocess (``python -m tinynet``) with its own store in a tmp folder."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli as run, shared_path
REAL_MODEL = ("weights", "coral_test_data", "mobilenet_v2_1.0_224_quant.tflite")


@pytest.fixture(scope="module")
def store_with_real_model(tmp_path_factory):
    """A store holding a real pretrained MobileNet V2 (TF-slim, quantized .tflite) as "mobilenet_v2"."""
    home = tmp_path_factory.mktemp("home")
    result = run("import", shared_path(*REAL_MODEL), "--name", "mobilenet_v2", home=home)
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout and "mobilenet_v2" in result.stdout
    return home


def test_classify_names_the_photo(store_with_real_model):
    result = run("classify", shared_path("images", "grace_hopper.jpg"), "--model", "mobilenet_v2", "--top", "3",
                 home=store_with_real_model)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].endswith("grace_hopper.jpg") and len(lines) == 4
    assert lines[1].split("%", 1)[1].strip() == "military uniform"


def test_json_lines_parse_and_follow_the_input_order(store_with_real_model):
    photos = [shared_path("images", name) for name in ("coffee.png", "hot_dog.jpg", "parrot.jpg")]
    result = run("classify", *photos, "--model", "mobilenet_v2", "--json", "--top", "5", "--batch", "2",
                 home=store_with_real_model)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["image"] for r in records] == [str(p) for p in photos]
    assert [r["predictions"][0]["label"] for r in records] == ["espresso", "hotdog", "macaw"]
    for record in records:
        probabilities = [p["probability"] for p in record["predictions"]]
        assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-6


def test_folder_with_a_bad_image_reports_it_and_classifies_the_rest(store_with_real_model, tmp_path):
    folder = tmp_path / "photos" / "nested"
    folder.mkdir(parents=True)
    (folder / "cat.jpg").symlink_to(shared_path("images", "cat_720p.jpg"))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("not an image, not even looked at")
    result = run("classify", tmp_path / "photos", "--model", "mobilenet_v2", "--json", home=store_with_real_model)
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    classified = [r for r in records if "predictions" in r]
    assert [Path(r["image"]).name for r in classified] == ["cat.jpg"]
    assert classified[0]["predictions"][0]["label"] in ("Egyptian cat", "tabby", "tiger cat")
    assert [Path(r["image"]).name for r in records if "error" in r] == ["broken.jpg"]  # a record, not only stderr
    errors = result.stderr.strip().splitlines()
    assert any("broken.jpg" in line for line in errors) and "Traceback" not in result.stderr


def test_default_model_is_the_only_stored_one(store_with_real_model):
    result = run("classify", shared_path("images", "hot_dog.jpg"), "--top", "1", home=store_with_real_model)
    assert result.returncode == 0, result.stderr
    assert "hotdog" in result.stdout and "using mobilenet_v2" in result.stderr


def test_models_marks_what_is_stored(store_with_real_model):
    result = run("models", home=store_with_real_model)
    assert result.returncode == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("mobilenet")}
    assert {"mobilenet_v3_large", "mobilenet_v3_small", "mobilenet_v2", "mobilenet_v1", "mobilenet_v2_tf"} <= set(rows)
    assert rows["mobilenet_v2"].split()[-1] == "yes" and rows["mobilenet_v3_large"].split()[-1] == "-"
    assert "75.3%" in rows["mobilenet_v3_large"] and "prefix 5c1a4163" in rows["mobilenet_v3_large"]


@pytest.mark.parametrize("arch, published_macs", [("mobilenet_v3_large", 0.217e9), ("mobilenet_v2", 0.301e9),
                                                   ("mobilenet_v3_small", 0.057e9)])
def test_info_totals_match_torchvision_published_cost(tmp_path, arch, published_macs):
    result = run("info", arch, home=tmp_path)
    assert result.returncode == 0, result.stderr
    total = next(line for line in result.stdout.splitlines() if line.split()[:1] == ["total"])
    params, macs = (int(n.replace(",", "")) for n in total.split()[1:])
    assert abs(macs - published_macs) / published_macs < 0.01  # torchvision's "_ops" (GFLOPS = GMACs)
    assert 1e6 < params < 6e6


def test_eval_reports_accuracy(store_with_real_model):
    folder = shared_path("images", "imagenet_val_1300")
    result = run("eval", "mobilenet_v2", "--images", folder, "--labels", folder / "dataset.txt", "--limit", "40",
                 home=store_with_real_model)
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    assert "on 40 images" in result.stdout
    assert float(words[words.index("top-1") + 1].rstrip("%")) >= 60  # 79.8 % over all 1300 (SOURCES.md)


def test_warmup(tmp_path):
    result = run("warmup", home=tmp_path)
    assert result.returncode == 0 and "kernels ready" in result.stdout


@pytest.mark.parametrize("command", ["classify", "models", "info", "pull", "import", "eval", "warmup", "train"])
def test_every_command_has_help_with_an_example(tmp_path, command):
    result = run(command, "--help", home=tmp_path)
    assert result.returncode == 0 and "example:" in result.stdout and "tinynet " + command in result.stdout


@pytest.mark.parametrize("args", [
    ["classify"],  # no images
    ["classify", "x.jpg", "--top", "0"],
    ["classify", "x.jpg", "--batch", "many"],
    ["classify", "x.jpg", "--threads", "100000"],
    ["frobnicate"],
    ["pull"],
    ["eval", "mobilenet_v2", "--images", "."],  # --labels missing
    ["info", "a", "b"],
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, args):
    result = run(*args, home=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--help" in result.stderr


@pytest.mark.parametrize("args, words", [
    (["classify", "photo.jpg", "--model", "nonexistent_model"], "`tinynet models`"),
    (["info", "nonexistent_model"], "`tinynet pull NAME`"),
    (["import", "missing.pth"], "no such file"),
    (["pull", "nonexistent_model"], "unknown model"),
])
def test_failures_exit_1_with_one_line(tmp_path, args, words):
    (tmp_path / "photo.jpg").write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "tinynet", *args], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "TINYNET_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)},
                            timeout=300)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


def test_progress_bar_is_on_stderr_only(store_with_real_model):
    photos = [shared_path("images", name) for name in ("coffee.png", "hot_dog.jpg", "parrot.jpg")]
    args = ("classify", *photos, "--model", "mobilenet_v2", "--json", "--batch", "1")
    shown = run(*args, home=store_with_real_model, env={"TINYNET_PROGRESS": "1"})
    hidden = run(*args, home=store_with_real_model)  # stderr is a pipe here: no bar unless forced
    assert shown.returncode == hidden.returncode == 0
    assert "3/3 images" in shown.stderr and hidden.stderr == ""
    assert shown.stdout == hidden.stdout and len(shown.stdout.splitlines()) == 3


def test_json_carries_class_indices_and_a_record_per_failed_image(store_with_real_model, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    photo = shared_path("images", "grace_hopper.jpg")
    result = run("classify", photo, broken, "--model", "mobilenet_v2", "--json", "--top", "2",
                 home=store_with_real_model)
    assert result.returncode != 0 and "broken.jpg" in result.stderr
    records = {r["image"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert "cannot" in records[str(broken)]["error"] or "not an image" in records[str(broken)]["error"]
    first = records[str(photo)]["predictions"][0]
    assert first["label"] == "military uniform" and first["index"] == 652  # its ImageNet index: this file has 1000 outputs
