"""evaluate() on small synthetic labelled folders: label files, counting, top-1/top-5 and the 1001-class offset."""
import numpy as np
import pytest
from PIL import Image

import tinynet
from conftest import shared_path
from tinynet.errors import TinynetError
from tinynet.evaluate import evaluate, read_labels
from tinynet.preprocess import batch, for_model

N_IMAGES = 11  # with batch_size 4: two full batches and a partial one
SIZE = 64


def small_model(num_classes=10):
    model = tinynet.create("mobilenet_v2", width=0.35, num_classes=num_classes, seed=3)
    model.meta["preprocess"] = {"preset": "torchvision", "size": SIZE}
    return model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder with data/img_XX.png: random pictures of varied sizes and modes."""
    root = tmp_path_factory.mktemp("labelled")
    (root / "data").mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        h, w = rng.integers(48, 120, 2)
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        image.convert("L" if i % 4 == 3 else "RGB").save(root / "data" / f"img_{i:02d}.png")
    return root


def paths(folder):
    return sorted((folder / "data").glob("img_*.png"))


def scores(model, folder):
    """The model's logits for the folder's images, computed here without evaluate: (N, classes)."""
    return model.forward(batch(paths(folder), for_model(model)))


def write_dataset(folder, labels, name="dataset.txt"):
    """The imagenet_val_1300 layout: "./data/<file>, <label>" relative to the labels file."""
    lines = [f"./data/{p.name}, {label}" for p, label in zip(paths(folder), labels)]
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder / name


@pytest.mark.parametrize("workers", [0, 2])
def test_labels_equal_to_own_argmax_score_perfectly(folder, workers):
    model = small_model()
    labels = np.argmax(scores(model, folder), axis=1)
    calls = []
    result = evaluate(model, write_dataset(folder, labels), batch_size=4, workers=workers,
                      progress=lambda done, total: calls.append((done, total)))
    assert result["images"] == N_IMAGES
    assert result["top1"] == 1.0 and result["top5"] == 1.0
    assert result["seconds"] > 0 and result["images_per_second"] == pytest.approx(N_IMAGES / result["seconds"])
    assert calls == [(0, N_IMAGES), (4, N_IMAGES), (8, N_IMAGES), (N_IMAGES, N_IMAGES)]


def test_top5_counts_ranks_two_to_five_and_nothing_lower(folder):
    model = small_model()
    order = np.argsort(-scores(model, folder), axis=1)  # (N, 10), best first
    fifth = evaluate(model, write_dataset(folder, order[:, 4], "fifth.txt"), batch_size=4)
    assert fifth["top1"] == 0.0 and fifth["top5"] == 1.0
    sixth = evaluate(model, write_dataset(folder, order[:, 5], "sixth.txt"), batch_size=4)
    assert sixth["top1"] == 0.0 and sixth["top5"] == 0.0
    mixed_labels = np.where(np.arange(N_IMAGES) % 2 == 0, order[:, 0], order[:, 9])
    mixed = evaluate(model, write_dataset(folder, mixed_labels, "mixed.txt"), batch_size=3)
    assert mixed["top1"] == mixed["top5"] == pytest.approx(6 / N_IMAGES)


def test_random_labels_give_consistent_counts(folder):
    labels = np.random.default_rng(1).integers(0, 10, N_IMAGES)
    result = evaluate(small_model(), write_dataset(folder, labels, "random.txt"), batch_size=5)
    assert result["images"] == N_IMAGES
    assert 0 <= result["top1"] <= result["top5"] <= 1


def test_model_with_background_output_reads_thousand_class_labels(folder):
    model = small_model(num_classes=1001)
    logits = scores(model, folder)
    labels = np.argmax(logits[:, 1:], axis=1)  # dataset labels 0..999 = outputs 1..1000
    assert evaluate(model, write_dataset(folder, labels, "tf.txt"), batch_size=4)["top1"] == 1.0


def test_plain_and_caffe_formats_with_images_dir(folder, tmp_path):
    model = small_model()
    labels = np.argmax(scores(model, folder), axis=1)
    listing = tmp_path / "val.txt"  # caffe style: bare file names, images found in images_dir
    listing.write_text("# file label\n\n" + "".join(f"{p.name} {label}\n" for p, label in zip(paths(folder), labels)))
    assert evaluate(model, listing, images_dir=folder / "data")["top1"] == 1.0
    # dataset.txt's "./data/..." entries with images_dir pointing at data/ itself: found by file name
    assert evaluate(model, write_dataset(folder, labels), images_dir=folder / "data")["top1"] == 1.0


def test_read_labels_resolves_paths_and_keeps_order(folder):
    samples = read_labels(write_dataset(folder, range(N_IMAGES), "ordered.txt"))
    assert [label for _, label in samples] == list(range(N_IMAGES))
    assert [path.name for path, _ in samples] == [p.name for p in paths(folder)]
    assert all(path.is_file() for path, _ in samples)


def test_imagenet_val_1300_listing():
    samples = read_labels(shared_path("images", "imagenet_val_1300", "dataset.txt"))
    assert len(samples) == 1300
    assert samples[0][0].name == "ILSVRC2012_val_00000347.JPEG" and samples[0][1] == 472
    assert all(0 <= label < 1000 for _, label in samples)


@pytest.mark.parametrize("content, message", [
    ("./data/img_00.png, 1\n./data/nowhere.png, 2\n", "1 of 2 images"),
    ("./data/img_00.png\n", ":1: expected"),
    ("./data/img_00.png, -3\n", ":1: expected"),
    ("# nothing here\n", "lists no images"),
])
def test_bad_label_files(folder, content, message):
    path = folder / "bad.txt"
    path.write_text(content)
    with pytest.raises(TinynetError, match=message):
        evaluate(small_model(), path)


def test_label_beyond_the_model_classes(folder):
    with pytest.raises(TinynetError, match="only 10 classes"):
        evaluate(small_model(), write_dataset(folder, [3] * (N_IMAGES - 1) + [10], "big.txt"))


def test_missing_labels_file(tmp_path):
    with pytest.raises(TinynetError, match="cannot read labels file"):
        evaluate(small_model(), tmp_path / "labels.txt")


def test_batch_size_must_be_positive(folder):
    with pytest.raises(TinynetError, match="batch_size"):
        evaluate(small_model(), write_dataset(folder, [0] * N_IMAGES, "zero.txt"), batch_size=0)


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_images_are_skipped_and_reported(folder, tmp_path, workers):
    model = small_model()
    labels = np.argmax(scores(model, folder), axis=1)
    listing = write_dataset(folder, labels, f"with_broken_{workers}.txt")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with open(listing, "a") as f:
        f.write(f"{broken}, 0\n")
    result = evaluate(model, listing, batch_size=4, workers=workers)
    assert result["images"] == N_IMAGES and result["top1"] == 1.0  # the broken image is not counted as wrong
    assert [path for path, _ in result["skipped"]] == [broken] and "broken.png" in result["skipped"][0][1]


def test_no_readable_image_is_one_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"junk")
    (tmp_path / "labels.txt").write_text("a.png 0\n")
    with pytest.raises(TinynetError, match="none of the 1 images could be read"):
        evaluate(small_model(), tmp_path / "labels.txt")


def test_limit_checks_only_the_images_it_uses(folder):
    listing = write_dataset(folder, [0] * N_IMAGES, "then_missing.txt")
    with open(listing, "a") as f:
        f.write("./data/no_such_image.png, 0\n")
    assert len(read_labels(listing, limit=N_IMAGES)) == N_IMAGES
    with pytest.raises(TinynetError, match="missing"):
        read_labels(listing)


def test_each_image_is_reported_in_order_with_its_top_five(folder, tmp_path):
    model = small_model()
    logits = scores(model, folder)
    labels = np.argmax(logits, axis=1)
    listing = write_dataset(folder, labels, "per_image.txt")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with open(listing, "a") as f:
        f.write(f"{broken}, 4\n")
    records = []
    evaluate(model, listing, batch_size=4, on_image=records.append)
    assert [r["image"].name for r in records] == [p.name for p in paths(folder)] + ["broken.png"]
    assert records[-1]["label"] == 4 and "broken.png" in records[-1]["error"]
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = z / z.sum(axis=1, keepdims=True)  # softmax written out here, not tinynet's
    for record, row, label in zip(records, probabilities, labels):
        indices = [i for i, _ in record["top"]]
        assert record["label"] == label and indices == list(np.argsort(-row)[:5])
        assert np.allclose([p for _, p in record["top"]], row[indices], atol=1e-6)


def test_labels_numbered_from_one_are_named(folder):
    model = small_model()
    best = np.argmax(scores(model, folder), axis=1)
    one_based = evaluate(model, write_dataset(folder, np.minimum(best + 1, 9), "plus_one.txt"), batch_size=4)
    assert one_based["index_base"] is not None and "if every label were one less" in one_based["index_base"]
    assert one_based["top1"] < 0.2
    minus = evaluate(model, write_dataset(folder, np.maximum(best - 1, 0), "minus_one.txt"), batch_size=4)
    assert "if every label were one more" in minus["index_base"]
    assert evaluate(model, write_dataset(folder, best, "own.txt"), batch_size=4)["index_base"] is None


def test_a_label_equal_to_the_class_count_suggests_one_based_labels(folder):
    with pytest.raises(TinynetError, match="look numbered from 1: subtract 1"):
        evaluate(small_model(), write_dataset(folder, [3] * (N_IMAGES - 1) + [10], "ten.txt"))


def test_per_image_indices_of_a_background_first_model_are_the_labels_classes(folder):
    model = small_model(num_classes=1001)
    logits = scores(model, folder)
    records = []
    evaluate(model, write_dataset(folder, np.argmax(logits[:, 1:], axis=1), "tf_per_image.txt"), batch_size=4,
             on_image=records.append)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = z / z.sum(axis=1, keepdims=True)  # over all 1001 outputs, as classify reports them
    for record, row in zip(records, probabilities):
        best, p = record["top"][0]
        assert best == record["label"] == np.argmax(row[1:]) and p == pytest.approx(row[1 + best], abs=1e-6)
