"""torchvision SSD postprocessing against torchvision's own output (tests/fixtures/make_detection_fixtures.py)."""
from pathlib import Path

import numpy as np

from tinynet.detection.postprocess import torchvision_ssd

FIXTURE = Path(__file__).parent / "fixtures" / "detection_torchvision.npz"


def test_torchvision_ssd_postprocess_matches_torchvision():
    f = np.load(FIXTURE)
    boxes, scores, labels = torchvision_ssd(f["pp_logits"], f["pp_regression"], f["anchors_ssdlite320"], (320, 320),
                                            original_size=(240, 480))
    assert len(scores) == len(f["pp_scores"]) == 300
    np.testing.assert_allclose(scores, f["pp_scores"], rtol=1e-5)
    np.testing.assert_array_equal(labels, f["pp_labels"])
    np.testing.assert_allclose(boxes, f["pp_boxes"], atol=1e-3)


def test_nothing_above_threshold_gives_no_detections():
    logits = np.zeros((10, 3), dtype=np.float32)
    logits[:, 0] = 50.0  # all background
    boxes, scores, labels = torchvision_ssd(logits, np.zeros((10, 4), np.float32),
                                            np.tile([[0, 0, 10, 10]], (10, 1)).astype(np.float32), (320, 320))
    assert boxes.shape == (0, 4) and len(scores) == len(labels) == 0

