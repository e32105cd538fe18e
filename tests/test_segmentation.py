"""Segmentation: torchvision's LR-ASPP against its own float64 outputs, and the banded mask against references."""
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinynet.kernels import resize_bilinear_nhwc_f32, resize_bilinear_rows_nhwc_f32
from tinynet.kernels.reference import argmax_channels_ref, resize_bilinear_nhwc_ref
from tinynet.tasks.segmentation import mask_from_logits

GOLDEN = Path(__file__).resolve().parents[1] / ".." / "shared" / "golden_dense"
LRASPP = GOLDEN / "tv_lraspp_mobilenet_v3_large"
needs_golden = pytest.mark.skipif(not (GOLDEN / "MANIFEST.json").exists(), reason="needs ../shared/golden_dense")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 40), st.integers(1, 40), st.integers(1, 5),
       st.integers(1, 13), st.booleans())
def test_resize_rows_is_that_band_of_the_whole_resize(h, w, out_h, out_w, channels, band, corners):
    x = np.random.default_rng(h * w + out_h).standard_normal((1, h, w, channels)).astype(np.float32)
    whole = resize_bilinear_nhwc_f32(x, np.empty((1, out_h, out_w, channels), np.float32), align_corners=corners,
                                     half_pixel_centers=not corners)
    for row0 in range(0, out_h, band):
        rows = min(band, out_h - row0)
        part = resize_bilinear_rows_nhwc_f32(x, np.empty((1, rows, out_w, channels), np.float32), out_h, row0,
                                             align_corners=corners, half_pixel_centers=not corners)
        np.testing.assert_array_equal(part, whole[:, row0:row0 + rows])


def test_resize_rows_refuses_a_band_outside_the_output():
    with pytest.raises(ValueError, match="band"):
        resize_bilinear_rows_nhwc_f32(np.zeros((1, 2, 2, 1), np.float32), np.empty((1, 3, 4, 1), np.float32), 4, 2)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 50), st.integers(1, 50), st.integers(1, 12),
       st.integers(1, 9))
def test_mask_from_logits_is_argmax_of_the_resized_logits(h, w, out_h, out_w, classes, band):
    # Logits on a coarse grid, so the float64 reference and the float32 kernel do not disagree on near ties.
    logits = np.random.default_rng(classes).integers(-50, 50, (h, w, classes)).astype(np.float32) / 4
    mask = mask_from_logits(logits, out_h, out_w, band_rows=band)
    ref = resize_bilinear_nhwc_ref(logits[None].astype(np.float64), (out_h, out_w), half_pixel_centers=True)[0]
    top2 = np.sort(ref, axis=-1)[..., -2:] if classes > 1 else None
    clear = np.ones(ref.shape[:2], bool) if top2 is None else top2[..., 1] - top2[..., 0] > 1e-4
    assert mask.dtype == np.uint8 and mask.shape == (out_h, out_w)
    np.testing.assert_array_equal(mask[clear], argmax_channels_ref(ref[None])[0][clear])


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 50), st.integers(1, 50), st.integers(2, 12),
       st.integers(1, 9))
def test_mask_from_logits_with_align_corners_and_a_grid_ties_to_the_lowest_class(h, w, out_h, out_w, classes, band):
    """The DeepLab TFLite convention: align_corners resize, then the uint8 grid the file's ARG_MAX reads, where
    classes that round to one level tie and the lowest id wins."""
    rng = np.random.default_rng(classes * 7 + h)
    logits = rng.integers(-40, 40, (h, w, classes)).astype(np.float32) / 8
    lo, step = -4.0, 0.25  # levels 0..31: values outside [-4, 3.75] clamp
    mask = mask_from_logits(logits, out_h, out_w, band_rows=band, align_corners=True,
                            half_pixel_centers=False, grid=(lo, step, 32))
    ref = resize_bilinear_nhwc_ref(logits[None].astype(np.float64), (out_h, out_w), align_corners=True)[0]
    level = np.clip((ref - lo) / step, 0, 31)
    clear = np.abs(level - np.floor(level) - 0.5) > 1e-3  # not at a rounding boundary, where float32 may differ
    snapped = np.rint(level)
    expected = np.argmax(snapped, axis=-1)
    np.testing.assert_array_equal(mask[clear.all(axis=-1)], expected[clear.all(axis=-1)])


@pytest.fixture(scope="module")
def lraspp():
    import tinynet
    return tinynet.load(f"{LRASPP}.pth")


@needs_golden
def test_lraspp_forward_matches_torchvision_float64(lraspp):
    manifest = json.loads((GOLDEN / "MANIFEST.json").read_text())["models"]["tv_lraspp_mobilenet_v3_large"]
    x = np.ascontiguousarray(np.load(f"{LRASPP}.input.npy").transpose(0, 2, 3, 1))
    out = lraspp.forward(x)
    assert out.shape == (1, *x.shape[1:3], 21)
    start, stop = manifest["window"]
    window = np.load(f"{LRASPP}.out_window_f64.npy").transpose(0, 2, 3, 1)
    assert np.abs(out[:, start:stop, start:stop] - window).max() <= 1e-4 * np.abs(window).max()
    expected = np.load(f"{LRASPP}.out_argmax.npy").reshape(out.shape[:3])
    assert (out.argmax(-1) == expected).mean() >= 0.9999
    low = np.load(f"{LRASPP}.low_res_out_f64.npy").transpose(0, 2, 3, 1)
    assert np.abs(lraspp.low_res_logits(x) - low).max() <= 1e-4 * np.abs(low).max()


@needs_golden
def test_lraspp_segment_gives_a_mask_at_the_photo_size(lraspp):
    from PIL import Image
    photo = Image.open(f"{LRASPP}.image.png")
    result = lraspp.segment(photo)
    assert result.mask.shape == (photo.height, photo.width) and result.mask.dtype == np.uint8
    assert result.labels[0] == "__background__" and result.labels[15] == "person" and len(result.labels) == 21
    assert result.counts.sum() == photo.width * photo.height
    np.testing.assert_array_equal(result.counts, np.bincount(result.mask.ravel(), minlength=21))
    # The photo is what the fixture's input was made from: the preprocessing must reproduce that input.
    x, size = lraspp.preprocess_with_size(photo)
    np.testing.assert_allclose(x, np.load(f"{LRASPP}.input.npy").transpose(0, 2, 3, 1), atol=1e-6)
    assert size == (photo.height, photo.width)
    assert len(lraspp.segment([photo, photo])) == 2


def test_voc_palette_has_the_published_first_colours():
    from tinynet.segmentation.render import voc_palette
    palette = voc_palette()
    assert palette[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert palette[15].tolist() == [192, 128, 128]  # person
    assert len({tuple(c) for c in palette}) == 256


@needs_golden
def test_cli_segment_writes_palette_masks_overlays_and_fractions(lraspp, tmp_path, capsys):
    from PIL import Image
    from tinynet.cli import main
    photo = Path(f"{LRASPP}.image.png")
    assert main(["segment", str(photo), "--model", f"{LRASPP}.pth", "--out", str(tmp_path), "--overlay",
                 "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    mask = Image.open(record["mask"])
    assert mask.mode == "P"
    np.testing.assert_array_equal(np.asarray(mask), lraspp.segment(photo).mask)
    overlay = Image.open(record["overlay"])
    assert overlay.mode == "RGB" and overlay.size == mask.size
    assert abs(sum(record["classes"].values()) - 1) < 1e-4 and "person" in record["classes"]


def test_cli_segment_refuses_a_classification_model_in_one_line(tmp_path, capsys, monkeypatch):
    from PIL import Image
    from tinynet import cli

    class Classifier:
        task, arch = "classification", "mobilenet_v3_large"

    monkeypatch.setattr(cli, "open_model", lambda name, threads: Classifier())
    Image.new("RGB", (40, 30)).save(tmp_path / "photo.png")
    assert cli.main(["segment", str(tmp_path / "photo.png"), "--out", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "classification model" in error and len(error.strip().splitlines()) == 1


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "segmentation_torchvision.npz"
CASES = ("deeplabv3_aux_5", "lraspp_3_batch2")


@pytest.mark.parametrize("case", CASES)
def test_other_sizes_and_class_counts_match_torchvision_float64(case):
    from synthetic_weights import input_batch, state_dict
    from tinynet.segmentation.load import segmentation_from_torchvision
    fixture = np.load(FIXTURES)
    seed = int(fixture[f"{case}.seed"])
    tensors = state_dict(json.loads(str(fixture[f"{case}.tensors"])), seed)
    model = segmentation_from_torchvision(tensors, Path(f"{case}.pth"))
    assert model.arch == str(fixture[f"{case}.constructor"])
    x = np.ascontiguousarray(input_batch(tuple(fixture[f"{case}.input_shape"]), seed + 1).transpose(0, 2, 3, 1))
    expected = fixture[f"{case}.out"].transpose(0, 2, 3, 1)
    out = model.forward(x)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 1e-4 * np.abs(expected).max()
    assert (out.argmax(-1) == expected.argmax(-1)).mean() >= 0.9999
    assert model.num_classes == expected.shape[-1]


def test_deeplabv3_refuses_a_tensor_it_has_no_place_for():
    from synthetic_weights import state_dict
    from tinynet.errors import WeightsError
    from tinynet.segmentation.load import segmentation_from_torchvision
    fixture = np.load(FIXTURES)
    tensors = state_dict(json.loads(str(fixture["deeplabv3_aux_5.tensors"])), 0)
    tensors["classifier.5.weight"] = np.zeros((5, 5, 1, 1), np.float32)
    with pytest.raises(WeightsError, match="classifier.5.weight"):
        segmentation_from_torchvision(tensors, Path("x.pth"))


def test_overlay_blends_only_the_foreground():
    from PIL import Image
    from tinynet.segmentation.render import overlay_image, voc_palette
    photo = Image.fromarray(np.full((2, 3, 3), 100, np.uint8))
    mask = np.array([[0, 1, 15], [0, 0, 2]], np.uint8)
    out = np.asarray(overlay_image(photo, mask)).astype(int)
    assert (out[mask == 0] == 100).all()
    expected = (100 + voc_palette()[mask[mask > 0]].astype(int)) / 2
    assert np.abs(out[mask > 0] - expected).max() <= 1


MEMORY_PROBE = """
import sys
import numpy as np
from PIL import Image
import tinynet
from tinynet.segmentation.render import overlay_image
model = tinynet.load(sys.argv[1])
photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
result = model.segment(photo)
overlay_image(photo, result.mask)
# VmHWM, not ru_maxrss, which Linux carries over from the parent (pytest) across fork and exec
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(result.mask.shape, peak_kb // 1024)
"""


@needs_golden
def test_a_12_megapixel_photo_is_segmented_and_overlaid_under_600_mb():
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, f"{LRASPP}.pth"], capture_output=True, text=True,
                          check=True)
    shape, peak_mb = done.stdout.rsplit(maxsplit=1)
    assert shape == "(3000, 4000)" and int(peak_mb) < 600


@needs_golden
def test_info_counts_at_the_size_count_defaults_to(lraspp):
    """`tinynet info` and tinynet.count agree: both at the model's own input size (520, torchvision's preset)."""
    import tinynet
    from conftest import run_cli
    result = run_cli("info", f"{LRASPP}.pth")
    assert result.returncode == 0, result.stderr
    assert "input 520x520" in result.stdout and f"{tinynet.count(lraspp)['macs']:,}" in result.stdout
