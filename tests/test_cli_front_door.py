"""The command line's inputs and outputs, as a user meets them (subprocesses): CSV, class names, the store's
rm and --force, eval's per-image file and index-base warning, the decompression-bomb limit, --help, progress."""
import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

import tinynet
from conftest import run_cli as run, shared_path

REAL_MODEL = ("weights", "coral_test_data", "mobilenet_v2_1.0_224_quant.tflite")  # 1000 outputs, ImageNet names
VAL = ("images", "imagenet_val_1300")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A store holding the real quantized MobileNet V2 as "v2"."""
    home = tmp_path_factory.mktemp("home")
    result = run("import", shared_path(*REAL_MODEL), "--name", "v2", home=home)
    assert result.returncode == 0, result.stderr
    return home


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small random model file (3 classes, 64x64 input): for what does not need real weights."""
    model = tinynet.create("mobilenet_v3_small", width=0.5, num_classes=3, seed=0)
    model.meta["preprocess"] = {"preset": "torchvision", "size": 64}
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    tinynet.save(model, path)
    return path


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_csv_has_a_row_per_prediction_and_per_failure_in_input_order(home, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    photos = [shared_path("images", "grace_hopper.jpg"), broken, shared_path("images", "hot_dog.jpg")]
    result = run("classify", *photos, tmp_path / "nowhere.jpg", "--model", "v2", "--format", "csv", "--top", "2",
                 "--batch", "8", home=home)
    assert result.returncode == 1 and "broken.jpg" in result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["image", "rank", "index", "label", "probability", "error"]
    assert [(r["image"], r["rank"]) for r in rows] == [
        (str(tmp_path / "nowhere.jpg"), ""), (str(photos[0]), "1"), (str(photos[0]), "2"), (str(broken), ""),
        (str(photos[2]), "1"), (str(photos[2]), "2")]
    assert (rows[1]["index"], rows[1]["label"]) == ("652", "military uniform")
    assert float(rows[1]["probability"]) > float(rows[2]["probability"]) > 0
    assert rows[4]["label"] == "hotdog" and "broken.jpg" in rows[3]["error"] and rows[0]["error"]


@pytest.mark.parametrize("args", [["--json", "--format", "csv"], ["--distributed", "--format", "csv"],
                                  ["--distributed", "--labels", "names.txt"]])
def test_contradictory_output_options_are_usage_errors(tmp_path, args):
    result = run("classify", "photo.jpg", *args, home=tmp_path)
    assert result.returncode == 2 and "tinynet classify: error:" in one_error_line(result)


def test_labels_lists_the_classes_and_is_a_labels_file(home, tmp_path):
    listed = run("labels", "v2", home=home)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 1000 and lines[0] == "0\ttench" and lines[652] == "652\tmilitary uniform"
    names = tmp_path / "names.txt"
    names.write_text(listed.stdout.replace("\tmilitary uniform\n", "\tnavy dress\n"))
    photo = shared_path("images", "grace_hopper.jpg")
    renamed = run("classify", photo, "--model", "v2", "--labels", names, "--top", "1", "--json", home=home)
    assert renamed.returncode == 0, renamed.stderr
    # v2 is the uint8 file, run on its integer graph: LiteRT's uint8 softmax gives this photo 184 / 256
    assert json.loads(renamed.stdout)["predictions"][0] == {"index": 652, "label": "navy dress",
                                                           "probability": 184 / 256}
    short = tmp_path / "short.txt"
    short.write_text("cat\ndog\n")
    refused = run("classify", photo, "--model", "v2", "--labels", short, home=home)
    assert refused.returncode == 1 and "2 class names, the model has 1000 outputs" in one_error_line(refused)


def test_import_with_labels_stores_them(tiny_model, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("daisy\nrose\ntulip\n")
    result = run("import", tiny_model, "--name", "flowers", "--labels", names, home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    listed = run("labels", "flowers", home=tmp_path / "home")
    assert listed.stdout == "0\tdaisy\n1\trose\n2\ttulip\n"


def test_import_refuses_to_overwrite_without_force_and_rm_removes(tiny_model, tmp_path):
    home = tmp_path / "home"
    assert run("import", tiny_model, "--name", "m", home=home).returncode == 0
    again = run("import", tiny_model, "--name", "m", home=home)
    assert again.returncode == 1 and "already in the store" in one_error_line(again) and "--force" in again.stderr
    forced = run("import", tiny_model, "--name", "m", "--force", home=home)
    assert forced.returncode == 0, forced.stderr
    removed = run("rm", "m", home=home)
    assert removed.returncode == 0 and "removed m" in removed.stdout
    assert not (home / "models" / "m.safetensors").exists()
    gone = run("rm", "m", home=home)
    assert gone.returncode == 1 and "no stored model named 'm'" in one_error_line(gone)


def test_eval_per_image_csv_and_json(home, tmp_path):
    folder = shared_path(*VAL)
    truth = [line.rsplit(",", 1) for line in (folder / "dataset.txt").read_text().splitlines()[:6]]
    as_csv, as_json = tmp_path / "per_image.csv", tmp_path / "per_image.jsonl"
    for out in (as_csv, as_json):
        result = run("eval", "v2", "--images", folder, "--labels", folder / "dataset.txt", "--limit", "6",
                     "--batch", "4", "--per-image", out, home=home)
        assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(as_csv.open()))
    records = [json.loads(line) for line in as_json.read_text().splitlines()]
    assert [r["image"].rsplit("/", 1)[1] for r in rows] == [p.rsplit("/", 1)[1] for p, _ in truth]
    assert [int(r["true_index"]) for r in rows] == [r["true_index"] for r in records] == [int(t) for _, t in truth]
    for row, record in zip(rows, records):
        assert int(row["index"]) == record["predictions"][0]["index"] == int(row["top5"].split()[0])
        assert row["correct"] == str(int(record["correct"])) and row["label"] == record["predictions"][0]["label"]
        assert record["correct"] == (record["predictions"][0]["index"] == record["true_index"])
        assert len(record["predictions"]) == 5
    top1 = float(result.stdout.split()[1].rstrip("%"))
    assert top1 == pytest.approx(100 * np.mean([r["correct"] for r in records]), abs=0.01)


def test_eval_warns_when_labels_are_numbered_from_one(home, tmp_path):
    folder = shared_path(*VAL)
    lines = (folder / "dataset.txt").read_text().splitlines()[:40]
    shifted = tmp_path / "tf_numbering.txt"  # TensorFlow's 1001-class numbering (0 = background) on a 1000-class model
    shifted.write_text("".join(f"{path}, {int(label) + 1}\n" for path, label in (line.rsplit(",", 1) for line in lines)))
    result = run("eval", "v2", "--images", folder, "--labels", shifted, home=home)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split()[1].rstrip("%")) < 10
    warning = one_error_line(result)
    assert warning.startswith("tinynet: warning: top-1 would be") and "if every label were one less" in warning


def test_max_pixels_sets_the_decompression_bomb_limit(tiny_model, tmp_path):
    photo = tmp_path / "big.png"
    Image.new("RGB", (1100, 1000), (200, 100, 50)).save(photo)  # 1,100,000 pixels
    refused = run("classify", photo, "--model", tiny_model, env={"TINYNET_MAX_PIXELS": "1099999"})
    assert refused.returncode == 1 and "1,099,999" in refused.stderr
    assert "--max-pixels" in refused.stderr and "Traceback" not in refused.stderr
    # The budget counts each row's pointer as 2 pixels (tinynet.preprocess.ROW_COST_PIXELS): 1,102,000 for this one.
    allowed = run("classify", photo, "--model", tiny_model, "--max-pixels", "1102000",
                  env={"TINYNET_MAX_PIXELS": "1099999"})  # the option wins over the environment
    assert allowed.returncode == 0, allowed.stderr
    assert run("classify", photo, "--model", tiny_model, env={"TINYNET_MAX_PIXELS": "1102000"}).returncode == 0
    assert run("classify", photo, "--model", tiny_model, env={"TINYNET_MAX_PIXELS": "1101999"}).returncode == 1
    for value in ("lots", "1000"):
        bad = run("classify", photo, "--model", tiny_model, env={"TINYNET_MAX_PIXELS": value})
        assert bad.returncode == 2 and "TINYNET_MAX_PIXELS" in one_error_line(bad)
    too_low = run("classify", photo, "--model", tiny_model, "--max-pixels", "999999")
    assert too_low.returncode == 2 and "at least 1,000,000" in one_error_line(too_low)


@pytest.mark.parametrize("resolution", ["16", "31"])
def test_info_below_the_minimum_resolution(resolution, tmp_path):
    result = run("info", "mobilenet_v3_small", "--resolution", resolution, home=tmp_path)
    assert result.returncode == 1 and "at least 32" in one_error_line(result)


def test_help_lists_the_environment_and_the_real_default_model(tmp_path):
    plain = run("--help", home=tmp_path)
    for variable in ("TINYNET_HOME", "TINYNET_MODEL", "TINYNET_PROGRESS", "TINYNET_MAX_PIXELS", "TINYNET_REGISTRY"):
        assert variable in plain.stdout
    classify = run("classify", "--help", home=tmp_path, env={"TINYNET_MODEL": "my_flowers"})
    assert "default: my_flowers (from $TINYNET_MODEL)" in " ".join(classify.stdout.split())
    assert "TINYNET_MAX_PIXELS" in classify.stdout
    unset = run("classify", "--help", home=tmp_path)
    assert "mobilenet_v3_large" in unset.stdout and "my_flowers" not in unset.stdout


def test_progress_bars_show_rate_and_eta_for_eval_classify_and_train(home, tiny_model, tmp_path):
    folder = shared_path(*VAL)
    forced = {"TINYNET_PROGRESS": "1"}
    evaluating = run("eval", "v2", "--images", folder, "--labels", folder / "dataset.txt", "--limit", "24",
                     "--batch", "4", home=home, env=forced)
    photos = [shared_path("images", name) for name in ("coffee.png", "hot_dog.jpg", "parrot.jpg")]
    classifying = run("classify", *photos, "--model", "v2", "--batch", "1", home=home, env=forced)
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(data / name / f"{i}.png")
    training = run("train", data, "--model", tiny_model, "--out", "t", "--epochs", "3", home=tmp_path / "home",
                   env=forced)
    for result, label in ((evaluating, "evaluating ["), (classifying, "classifying ["), (training, "features [")):
        assert result.returncode == 0, result.stderr
        assert label in result.stderr and "images/s" in result.stderr and "ETA" in result.stderr, result.stderr
        assert "\x1b" not in result.stdout
