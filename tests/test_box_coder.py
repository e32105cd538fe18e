"""Box decoding against torchvision's BoxCoder output and a scalar float64 reference."""
import math
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.detection.box_coder import decode_tflite, decode_torchvision

FIXTURE = Path(__file__).parent / "fixtures" / "detection_torchvision.npz"


def decode_torchvision_ref(code, anchor):
    dx, dy, dw, dh = code[0] / 10, code[1] / 10, min(code[2] / 5, math.log(1000 / 16)), min(code[3] / 5, math.log(1000 / 16))
    w, h = anchor[2] - anchor[0], anchor[3] - anchor[1]
    cx, cy = anchor[0] + w / 2 + dx * w, anchor[1] + h / 2 + dy * h
    pw, ph = math.exp(dw) * w, math.exp(dh) * h
    return [cx - pw / 2, cy - ph / 2, cx + pw / 2, cy + ph / 2]


def decode_tflite_ref(enc, anchor, scales):
    yc = enc[0] / scales[0] * anchor[2] + anchor[0]
    xc = enc[1] / scales[1] * anchor[3] + anchor[1]
    h, w = math.exp(enc[2] / scales[2]) * anchor[2], math.exp(enc[3] / scales[3]) * anchor[3]
    return [yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2]


def test_matches_torchvision_box_coder():
    f = np.load(FIXTURE)
    got = decode_torchvision(f["codes"], f["boxes"])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, f["decoded"], rtol=1e-5, atol=1e-3)


finite = st.floats(-20, 20, allow_nan=False)
anchor_xyxy = st.tuples(st.floats(0, 300), st.floats(0, 300), st.floats(0, 100), st.floats(0, 100)).map(
    lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.tuples(finite, finite, st.floats(-200, 200), st.floats(-200, 200)), anchor_xyxy), max_size=8))
def test_torchvision_decode_matches_reference(pairs):
    codes = np.array([c for c, _ in pairs], dtype=np.float64).reshape(-1, 4)
    anchors = np.array([a for _, a in pairs], dtype=np.float64).reshape(-1, 4)
    want = np.array([decode_torchvision_ref(c, a) for c, a in pairs]).reshape(-1, 4)
    np.testing.assert_allclose(decode_torchvision(codes, anchors), want, rtol=1e-12, atol=1e-9)


anchor_yxhw = st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.tuples(finite, finite, finite, finite), anchor_yxhw), max_size=8),
       st.tuples(*[st.floats(0.5, 20)] * 4))
def test_tflite_decode_matches_reference(pairs, scales):
    enc = np.array([e for e, _ in pairs], dtype=np.float64).reshape(-1, 4)
    anchors = np.array([a for _, a in pairs], dtype=np.float64).reshape(-1, 4)
    want = np.array([decode_tflite_ref(e, a, scales) for e, a in pairs]).reshape(-1, 4)
    np.testing.assert_allclose(decode_tflite(enc, anchors, *scales), want, rtol=1e-12, atol=1e-9)
