"""``model.detect(list)`` and ``tinynet detect`` with many images: batches through one forward each, results the same
as one image at a time; an unreadable image in a batch takes its place as an error."""
import json
import sys
from pathlib import Path

import pytest

import tinynet
from conftest import run_cli, shared_path

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_detection_example import write_example, write_photos  # noqa: E402


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The README's seeded 7-class SSDLite, its photo and four of other sizes (each resized differently)."""
    folder = tmp_path_factory.mktemp("example")
    photo, weights = write_example(folder)
    return tinynet.load(weights), [photo, *write_photos(folder)], weights


def forward_batches(model, monkeypatch):
    """The batch sizes of the model's forward calls, as they happen."""
    sizes, forward = [], model.forward
    monkeypatch.setattr(model, "forward", lambda x: sizes.append(len(x)) or forward(x))
    return sizes


def test_a_list_runs_in_batches_and_matches_one_by_one(example, monkeypatch):
    model, photos, _ = example
    one_by_one = [model.detect(p, score_threshold=0.05) for p in photos]
    sizes = forward_batches(model, monkeypatch)
    assert model.detect(photos, score_threshold=0.05, batch_size=2) == one_by_one
    assert sizes == [2, 2, 1]
    sizes.clear()
    assert model.detect(photos + photos, score_threshold=0.05) == one_by_one + one_by_one
    assert sizes == [8, 2]  # DETECT_BATCH = 8
    assert all(one_by_one) and one_by_one[0] != one_by_one[1]  # not vacuous: boxes found, and they differ


def test_an_unreadable_image_keeps_its_place(example, tmp_path):
    model, photos, _ = example
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(tinynet.ImageError, match="broken.png"):
        model.detect([photos[0], broken])
    results = model.detect([photos[0], broken, photos[1]], top=3, batch_size=2, errors="return")
    assert isinstance(results[1], tinynet.ImageError)
    assert results[0] == model.detect(photos[0], top=3) and results[2] == model.detect(photos[1], top=3)
    with pytest.raises(tinynet.TinynetError, match="batch_size"):
        model.detect(photos, batch_size=0)


def test_tflite_detector_batches_match_one_by_one(monkeypatch):
    model = tinynet.load(shared_path("weights", "edje_tflite_od", "ssd_mobilenet_v1.tflite"))
    photos = [shared_path("images", name) for name in ("pets.jpg", "grace_hopper.jpg", "parrot.jpg")]
    one_by_one = [model.detect(p, score_threshold=0.3) for p in photos]
    sizes = forward_batches(model, monkeypatch)
    assert model.detect(photos, score_threshold=0.3) == one_by_one
    assert sizes == [3] and all(one_by_one)


def test_cli_many_images_in_batches(example, tmp_path):
    _, photos, weights = example
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    images = [photos[0], broken, *photos[1:]]
    result = run_cli("detect", *images, "--model", weights, "--top", "4", "--json", "--batch", "3")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [r["image"] for r in records] == [str(p) for p in images]
    assert "error" in records[1] and "broken.jpg" in result.stderr
    single = run_cli("detect", photos[3], "--model", weights, "--top", "4", "--json")
    assert json.loads(single.stdout) == records[4] and len(records[4]["detections"]) == 4
