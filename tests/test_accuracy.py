"""ImageNet accuracy of every real pretrained file against the reference runtime (slow: ~4 minutes).

Issue 3's criterion: top-1 on <shared>/images/imagenet_val_1300 no more than 1.5 points below the LiteRT
figure that <shared>/weights/SOURCES.md gives for the same file. Run with ``pytest -m slow``.
"""
import sys
from pathlib import Path

import pytest

import tinynet
from conftest import shared_path
from tinynet.evaluate import evaluate

sys.path.append(str(Path(__file__).resolve().parents[1] / "bench"))  # appended: bench/distributed.py must not shadow Dask
from accuracy import reference_rows  # noqa: E402  (the parser bench/accuracy.py uses for weights/README.md)

ALLOWED_DROP = 0.015


def reference_table():
    path = shared_path("weights", "SOURCES.md")
    return list(reference_rows(path))


@pytest.mark.slow
def test_reference_table_is_complete():
    assert len(reference_table()) == 11  # ten .tflite files and one .h5


@pytest.mark.slow
@pytest.mark.parametrize("index", range(11))
def test_top1_within_allowed_drop_of_litert(index):
    rel, litert_top1, _ = reference_table()[index]
    model = tinynet.load(shared_path("weights", *rel.split("/")))
    val = shared_path("images", "imagenet_val_1300")
    result = evaluate(model, val / "dataset.txt", images_dir=val)
    assert result["images"] == 1300
    assert result["top1"] >= litert_top1 - ALLOWED_DROP, (rel, result["top1"], litert_top1)
