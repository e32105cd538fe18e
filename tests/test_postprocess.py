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


def test_tflite_fast_nms_is_class_agnostic_and_bounded():
    from tinynet.detection.postprocess import tflite_fast_nms
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 0.9], [2, 2, 3, 3], [5, 5, 5, 6], [7, 7, 8, 8]], dtype=np.float32)
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.7], [0.0, 0.6], [0.3, 0.1]], dtype=np.float32)
    out_boxes, classes, best = tflite_fast_nms(boxes, scores, max_detections=3, nms_score_threshold=0.35,
                                               nms_iou_threshold=0.6)
    # Box 1 (class 1) overlaps box 0 (class 0) at IoU 0.9: suppressed across classes; box 3 has no area, kept;
    # box 4 is under the score threshold.
    assert classes[:, 0].tolist() == [0, 1, 1]
    np.testing.assert_allclose(best[:, 0], [0.9, 0.7, 0.6])
    np.testing.assert_array_equal(out_boxes, boxes[[0, 2, 3]])
    assert tflite_fast_nms(boxes, scores, 2, 0.35, 0.6)[1][:, 0].tolist() == [0, 1]
    assert tflite_fast_nms(boxes, scores, 3, 0.35, 0.95)[0].shape == (3, 4)  # box 1 now survives NMS, the cap holds
