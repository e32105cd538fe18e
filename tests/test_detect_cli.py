"""`tinynet detect`: table, JSON lines, --draw (the README's example), and refusals."""
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import REPO, run_cli

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_detection_example import write_example  # noqa: E402

README_DRAWING = REPO / "docs" / "photo.png"


def test_readme_example_draws_what_is_committed(tmp_path):
    photo, weights = write_example(tmp_path / "example")
    result = run_cli("detect", photo, "--model", weights, "--top", "5", "--draw", tmp_path / "drawn")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{photo}  (5 boxes)")
    drawn = np.asarray(Image.open(tmp_path / "drawn" / "photo.png"))
    assert drawn.shape == np.asarray(Image.open(photo)).shape
    assert np.array_equal(drawn, np.asarray(Image.open(README_DRAWING)))  # docs/photo.png is this command's output


def test_json_lines_have_the_api_fields(tmp_path):
    photo, weights = write_example(tmp_path)
    result = run_cli("detect", photo, photo, "--model", weights, "--threshold", "0.9", "--top", "3", "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(records) == 2 and records[0] == records[1]
    for d in records[0]["detections"]:
        assert set(d) == {"label", "class_id", "score", "box"} and d["score"] >= 0.9 and len(d["box"]) == 4
        assert d["label"] == f"class {d['class_id']}"


def test_detect_on_a_classifier_names_the_task(tmp_path):
    import tinynet

    path = tmp_path / "classifier.tinynet"
    tinynet.save(tinynet.create("mobilenet_v3_small", 0.35, 4), path)
    photo, _ = write_example(tmp_path)
    result = run_cli("detect", photo, "--model", path)
    assert result.returncode == 1
    assert "is a classification model" in result.stderr and "Traceback" not in result.stderr
