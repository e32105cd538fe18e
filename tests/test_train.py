"""tinynet.train and `tinynet train` on real photos (the shared flowers5 set, CC BY 2.0: copied only into
temporary folders, never into the repository) with real pretrained backbones."""
import json
import shutil

import numpy as np
import pytest

import tinynet
from tinynet import train as training
from tinynet.errors import TinynetError

from conftest import run_cli, shared_path

FLOWERS = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
SMALL_BASE = ("coral_test_data", "mobilenet_v1_0.25_128_quant.tflite")  # fastest real classifier
STRONG_BASE = ("tqminlo_mobilenetv3_by_c", "v3-large-minimalistic_224_1.0_uint8.tflite")


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def small_folder(dest, classes=FLOWERS[:3], per_class=4):
    """``dest/<class>/`` with the first ``per_class`` flowers5 training photos of each class."""
    source = shared_path("images", "flowers5", "train")
    for name in classes:
        (dest / name).mkdir(parents=True)
        for photo in sorted((source / name).iterdir())[:per_class]:
            shutil.copy(photo, dest / name / photo.name)
    return dest


@pytest.fixture(scope="module")
def small_base():
    return tinynet.load(shared_path("weights", *SMALL_BASE))


def test_second_run_computes_no_features(tmp_path, small_base):
    data = small_folder(tmp_path / "data")
    first = training.train(data, small_base, augment=False, progress=False)
    assert first.report["features"] == {**first.report["features"], "computed": 12, "cached": 0}
    threads = small_base.threads
    second = training.train(data, small_base, l2=1.0, augment=False, seed=0, progress=False, threads=1)
    assert second.report["features"]["computed"] == 0 and second.report["features"]["cached"] == 12
    assert small_base.threads == threads  # threads= runs a copy; the caller's model is left as it was
    # A renamed copy has the same content: still cached.
    (data / "daisy" / sorted((data / "daisy").iterdir())[0].name).rename(data / "daisy" / "renamed copy é.jpg")
    assert training.train(data, small_base, augment=False, progress=False).report["features"]["computed"] == 0
    # A damaged cache entry is computed again.
    next((tmp_path / "home" / "features").rglob("*.npy")).write_bytes(b"garbage")
    assert training.train(data, small_base, augment=False, progress=False).report["features"]["computed"] == 1


def test_augment_views_are_cached_separately_and_deterministic(tmp_path, small_base):
    data = small_folder(tmp_path / "data", per_class=3)
    first = training.train(data, small_base, augment=True, seed=3, progress=False)
    views = 2 + training.CROPS_PER_IMAGE
    assert first.report["features"]["computed"] == first.report["train_images"] * views + first.report["val_images"]
    again = training.train(data, small_base, augment=True, seed=3, progress=False)
    assert again.report["features"]["computed"] == 0
    items = [(p, 0) for p in sorted((data / "roses").iterdir())]
    x1, _, _ = training.FeatureCache(small_base).features(items, training.views_for(True, 3), progress=False)
    # Different views give different features; the flip is not the original.
    assert not np.allclose(x1[0], x1[1]) and not np.allclose(x1[2], x1[3])


def test_batched_features_are_each_views_own_forward_pass(tmp_path, small_base, monkeypatch):
    # Views are computed FeatureCache.BATCH at a time, mixed with cached ones and a skipped file: every row
    # must still be its own view's features, as one forward pass of that view alone gives them.
    data = small_folder(tmp_path / "data", classes=FLOWERS[:2], per_class=2)
    (data / "daisy" / "broken.jpg").write_bytes(b"not a jpeg")
    items = [(p, 0) for p in sorted(data.rglob("*.jpg"))]
    views = training.views_for(True, 0)
    cache = training.FeatureCache(small_base, tmp_path / "cache")
    cache.features(items[::3], views[:2], progress=False)  # some files' first views cached beforehand
    monkeypatch.setattr(training.FeatureCache, "BATCH", 3)  # batches that straddle files
    x, labels, skipped = cache.features(items, views, progress=False)
    assert [path for path, _ in skipped] == [str(data / "daisy" / "broken.jpg")] and len(x) == 4 * (len(items) - 1)
    spec = training.preprocess.for_model(small_base)
    readable = [path for path, _ in items if path.name != "broken.jpg"]
    for row, (path, view) in enumerate((p, v) for p in readable for v in views):
        content = training.hashlib.sha256(path.read_bytes()).hexdigest()
        image = training.render_view(training.preprocess.open_image(path), view, content)
        np.testing.assert_array_equal(x[row], small_base.classifier_input(training.preprocess.to_array(image, spec)[None])[0])


def test_result_model_has_new_head_labels_and_metadata(tmp_path, small_base):
    data = small_folder(tmp_path / "data")
    result = training.train(data, small_base, out="mini", seed=1, progress=False)
    stored = tinynet.load("mini")
    assert stored.num_classes == 3 and stored.meta["labels"] == list(FLOWERS[:3])
    assert stored.meta["preprocess"] == small_base.meta["preprocess"]
    assert stored.meta["training"]["seed"] == 1 and "train" in stored.meta["scores"]
    photo = next((data / "roses").iterdir())
    x = stored.preprocess(photo)
    # The stored model's logits are the head applied to the backbone's features.
    features = small_base.classifier_input(x)
    w, b = stored.weights[stored.layers[-1].name + ".w"], stored.weights[stored.layers[-1].name + ".b"]
    np.testing.assert_allclose(stored.forward(x), features @ w + b, rtol=1e-4, atol=1e-4)
    assert result.report["train"]["accuracy"] == 1.0


@pytest.mark.slow  # 575 backbone runs: 40-100 s on the shared 2-core machine
def test_flowers5_val_accuracy_well_above_chance():
    result = training.train(shared_path("images", "flowers5"), shared_path("weights", *STRONG_BASE), progress=False)
    # Measured: 0.813 (head only, default settings: flips and crops, L2 by cross-validation); chance is 0.2.
    assert result.report["val"]["accuracy"] > 0.7
    assert result.report["fit"]["l2"] in training.head.L2_GRID and len(result.report["views"]) == 4
    assert result.report["val_images"] == 75 and result.report["fit"]["grad_norm"] < 1e-5


def test_cli_train_then_classify_prints_a_flower(tmp_path, store):
    data = small_folder(tmp_path / "data")
    done = run_cli("train", data, "--model", shared_path("weights", *SMALL_BASE), "--out", "mini", "--json", home=store)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["classes"] == list(FLOWERS[:3]) and "confusion" in report["train"]
    photo = next((data / "daisy").iterdir())
    shown = run_cli("classify", photo, "--model", "mini", "--top", "1", home=store)
    assert shown.returncode == 0, shown.stderr
    assert any(name in shown.stdout for name in FLOWERS[:3])
    text = run_cli("train", data, "--model", shared_path("weights", *SMALL_BASE), "--out", "mini2", "--threads", "1", home=store)
    assert "train accuracy" in text.stdout and "confusion" in text.stdout and "0 computed" in text.stdout


def test_unreadable_files_are_skipped_and_listed(tmp_path, small_base):
    data = small_folder(tmp_path / "data")
    (data / "roses" / "broken.jpg").write_bytes(b"not a jpeg at all")
    result = training.train(data, small_base, progress=False)
    assert [path for path, _ in result.skipped] == [str(data / "roses" / "broken.jpg")]


@pytest.mark.parametrize("case, message", [
    ("empty class", "no images"),
    ("one image", "one image"),
    ("val lacks a class", "no folder for class"),
    ("one class", "at least 2 class folders"),
])
def test_bad_folders_are_one_line_errors(tmp_path, small_base, case, message):
    data = small_folder(tmp_path / "data", per_class=3)
    if case == "empty class":
        (data / "empty").mkdir()
    elif case == "one image":
        for photo in sorted((data / "roses").iterdir())[1:]:
            photo.unlink()
    elif case == "val lacks a class":
        shutil.move(str(data), str(tmp_path / "train"))
        data = tmp_path
        (tmp_path / "val").mkdir()
        shutil.copytree(tmp_path / "train" / "roses", tmp_path / "val" / "roses")
        shutil.rmtree(tmp_path / "home", ignore_errors=True)
    elif case == "one class":
        for name in FLOWERS[1:3]:
            shutil.rmtree(data / name)
    with pytest.raises(TinynetError, match=message):
        training.train(data, small_base, progress=False)


@pytest.mark.parametrize("arguments, message", [
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"val_split": 1.5}, "val_split must be between 0 and 1"),
    ({"out": "no/such name"}, "invalid model name"),
])
def test_bad_arguments_fail_before_any_work(tmp_path, arguments, message):
    with pytest.raises(TinynetError, match=message):
        training.train(tmp_path, "no-such-model", **arguments)


def test_class_names_with_spaces_and_non_ascii_become_labels(tmp_path, small_base):
    data = small_folder(tmp_path / "data", per_class=3)
    (data / "roses").rename(data / "wild rosés")
    result = training.train(data, small_base, out="accents", progress=False)
    assert tinynet.load("accents").meta["labels"] == ["daisy", "dandelion", "wild rosés"]
    assert result.report["classes"] == ["daisy", "dandelion", "wild rosés"]


def test_unknown_threshold_marks_unsure_predictions():
    names = ["a", "b"]
    w, b = np.eye(2), np.zeros(2)
    features = np.array([[3.0, 0.0], [0.1, 0.0], [0.0, 3.0]])  # sure a, unsure, sure b
    predicted = training.predict(features, w, b, unknown_threshold=0.9)
    assert predicted.tolist() == [0, -1, 1]
    report = training.scores(np.array([0, 0, 1]), predicted, names)
    assert report["unknown"] == 1 and report["accuracy"] == pytest.approx(2 / 3)
    assert report["confusion"] == [[1, 0], [0, 1]] and report["per_class"]["a"]["recall"] == 0.5


def test_subfolders_of_a_class_folder_belong_to_that_class(tmp_path, small_base):
    data = small_folder(tmp_path / "data", per_class=3)
    (data / "roses" / "2023 trip").mkdir()
    photo = next(p for p in (data / "roses").iterdir() if p.is_file())
    photo.rename(data / "roses" / "2023 trip" / photo.name)
    names, files = training.class_folders(data)
    assert names == list(FLOWERS[:3]) and sum(1 for _, c in files["all"] if c == 2) == 3


def test_one_wrapper_folder_too_many_is_explained(tmp_path):
    data = small_folder(tmp_path / "outer" / "flowers", per_class=1)
    with pytest.raises(TinynetError, match="one folder too high"):
        training.class_folders(data.parent)


def test_eval_on_class_folders_matches_the_training_report(tmp_path, store):
    data = small_folder(tmp_path / "data", per_class=3)
    base = shared_path("weights", *SMALL_BASE)
    trained = run_cli("train", data, "--model", base, "--out", "mini", "--no-augment", "--l2", "0.1", "--json", home=store)
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["fit"]["l2"] == 0.1
    (data / "roses" / "notes.jpg").write_text("not a photo")
    done = run_cli("eval", "mini", "--images", data, "--json", "--plot", tmp_path / "c.png", home=store)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["classes"] == list(FLOWERS[:3]) and result["images"] == 9
    assert [p for p, _ in result["skipped"]] == [str(data / "roses" / "notes.jpg")]
    assert sum(map(sum, result["confusion"])) == 9
    from PIL import Image
    assert Image.open(tmp_path / "c.png").format == "PNG"
    text = run_cli("eval", "mini", "--images", data, home=store)
    assert "accuracy" in text.stdout and "confusion" in text.stdout


@pytest.mark.parametrize("case, message", [
    ("class not in the model", "not one of the model's labels"),
    ("--limit without labels", "--limit needs --labels"),
])
def test_eval_on_class_folders_bad_input_is_one_line(tmp_path, store, small_base, case, message):
    data = small_folder(tmp_path / "data", per_class=2)
    training.train(data, small_base, out="mini", augment=False, l2=0.1, progress=False)
    extra = []
    if case == "class not in the model":
        shutil.copytree(data / "roses", data / "orchids")
    else:
        extra = ["--limit", "3"]
    done = run_cli("eval", "mini", "--images", data, *extra, home=store)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr
