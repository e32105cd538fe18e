"""Anchors against torchvision's DefaultBoxGenerator output (tests/fixtures/make_detection_fixtures.py)."""
from pathlib import Path

import numpy as np

from tinynet.detection.anchors import default_boxes_xyxy

FIXTURE = Path(__file__).parent / "fixtures" / "detection_torchvision.npz"


def test_ssdlite320_anchors_match_torchvision():
    want = np.load(FIXTURE)["anchors_ssdlite320"]
    got = default_boxes_xyxy([(g, g) for g in (20, 10, 5, 3, 2, 1)], 320, 320)
    assert got.shape == want.shape == (3234, 4)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_non_square_grids_and_image_match_torchvision():
    want = np.load(FIXTURE)["anchors_odd"]
    got = default_boxes_xyxy([(7, 9), (4, 5), (2, 3)], 97, 130)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
