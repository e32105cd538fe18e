"""From an image file (or a PIL image) to the float32 input a model was trained on.

Three presets, each the evaluation transform of the library the weights come from:

  torchvision  resize the shorter side to size / 0.875 (256 for 224), bilinear; centre crop size x size;
               (x / 255 - ImageNet mean) / ImageNet std. Pillow's resize is the one torchvision calls on
               PIL images (antialiased when shrinking), so the result matches torchvision exactly.
  timm         the same steps with timm's pretrained config for mobilenetv1_100.ra4_e3600_r224_in1k
               (timm/models/efficientnet.py, ``_cfg``): crop_pct 0.875, bicubic, mean = std = 0.5,
               i.e. x / 127.5 - 1. (Its optional test-time setting is size 256, crop_fraction 0.95.)
  tf           TF-slim's eval preprocessing: central crop of crop_fraction (87.5%) of the image, as
               tf.image.central_crop rounds it, then a bilinear resize to size x size (aspect ratio
               not kept), scaled to [-1, 1]. Pillow's bilinear uses half-pixel centres and
               antialiases when shrinking; TF1's resize_bilinear did neither, which shifts the image
               by under half a pixel at these sizes. Resizing happens in 8 bits, as for torchvision,
               where TF-slim resized floats: a difference below 1/255 per pixel.

A model's ``meta["preprocess"]`` names a preset plus overrides, e.g. {"preset": "tf", "size": 160} or
{"preset": "tf", "range": [0, 1]}; ``resolve`` turns that into one ``Preprocess``.

Image files are decoded by Pillow; see ``open_image`` for how modes, transparency, EXIF orientation and
oversized images are handled. Every problem with an image raises tinynet.ImageError naming the file.
"""
import functools
import io
import math
import os
import re
import threading
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from tinynet import quiet_libtiff
from tinynet.errors import ImageError, TinynetError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)  # mean = std = 0.5 maps [0, 1] to [-1, 1]
INTERPOLATIONS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
BACKGROUND = (255, 255, 255)  # transparent pixels are shown on white, as browsers and viewers do
MAX_SIZE = 2048  # MobileNets are trained at 96..320; a weight file must not ask for a 100000-pixel input
MIN_CROP_FRACTION = 0.05  # models keep 0.875 to 1; a crop of 1e-308 would resize the image to infinity
MAX_RESIZED_PIXELS = 1 << 24  # 64 MB of RGB: above this, resize only the part the centre crop keeps
RESIZE_BUDGET = 1 << 24  # in RGB pixels (64 MB): the most memory one resize may take (see _resize_cost)
REDUCE_GAP = 4  # an over-budget resize is first box-reduced by whole factors to at least 4 pixels per output pixel
FILTER_SUPPORT = {Image.Resampling.NEAREST: 0.5, Image.Resampling.BILINEAR: 1, Image.Resampling.BICUBIC: 2,
                  Image.Resampling.LANCZOS: 3}  # Pillow's filter radii (Resample.c), in output pixels
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
ROW_COST_PIXELS = 2  # Pillow keeps an 8-byte pointer per image row: a row costs 2 RGB pixels more than its pixels
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


@dataclass(frozen=True)
class Preprocess:
    """How to turn an RGB image into a (size, size, 3) float32 array.

    size           output height and width
    crop_fraction  share of the image kept by the centre crop [0.05, 1]
    crop_first     False: resize the shorter side to size / crop_fraction, then crop size x size
                   (torchvision, timm). True: crop crop_fraction of each side, then resize to
                   size x size (TF-slim)
    interpolation  "bilinear", "bicubic", "nearest" or "lanczos" (Pillow's filters)
    mean, std      per channel, applied to pixel / 255: (x - mean) / std
    """
    size: int = 224
    crop_fraction: float = 0.875
    crop_first: bool = False
    interpolation: str = "bilinear"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def __post_init__(self):
        if not isinstance(self.size, int) or isinstance(self.size, bool) or not 1 <= self.size <= MAX_SIZE:
            raise TinynetError(f"preprocess size must be a whole number from 1 to {MAX_SIZE}, got {self.size!r}")
        if not (isinstance(self.crop_fraction, (int, float)) and MIN_CROP_FRACTION <= self.crop_fraction <= 1):
            raise TinynetError(f"preprocess crop_fraction must be in [{MIN_CROP_FRACTION}, 1], got {self.crop_fraction!r}")
        if not isinstance(self.crop_first, bool):
            raise TinynetError(f"preprocess crop_first must be true or false, got {self.crop_first!r}")
        if not isinstance(self.interpolation, str) or self.interpolation not in INTERPOLATIONS:
            raise TinynetError(f"preprocess interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if not _valid_mean_std(self.mean, self.std):
            raise TinynetError(f"preprocess mean and std need 3 finite values each, std non-zero; got {self.mean}, {self.std}")


def _valid_mean_std(mean, std):
    """Three finite numbers each, std non-zero, checked as the float32 values the arithmetic uses (a std of
    1e-50 is 0 there, 1e300 is infinite, and a NaN would poison every output)."""
    try:
        with np.errstate(over="ignore"):
            values = np.array([mean, std], np.float32)  # (2, 3)
    except (TypeError, ValueError):
        return False
    return values.shape == (2, 3) and bool(np.isfinite(values).all()) and 0 not in values[1]


PRESETS = {
    "torchvision": Preprocess(),
    "timm": Preprocess(interpolation="bicubic", mean=HALF, std=HALF),
    "tf": Preprocess(crop_first=True, mean=HALF, std=HALF),
}
OVERRIDES = {f.name for f in fields(Preprocess)} | {"range"}


def resolve(spec=None):
    """A ``Preprocess`` from a preset spec: None (torchvision at 224), a Preprocess (returned as is), or a
    dict {"preset": name, **overrides} with overrides among the Preprocess fields plus "range": [lo, hi],
    the interval pixel values 0..255 are mapped to (it replaces mean and std)."""
    if isinstance(spec, Preprocess):
        return spec
    if spec is not None and not isinstance(spec, dict):
        raise TinynetError(f"a preprocess spec is a dict such as {{'preset': 'tf'}}, got a {type(spec).__name__}")
    spec = dict(spec or {})
    name = spec.pop("preset", "torchvision")
    if not isinstance(name, str) or name not in PRESETS:
        raise TinynetError(f"unknown preprocess preset {name!r}; known: {', '.join(PRESETS)}")
    unknown = sorted(set(spec) - OVERRIDES)
    if unknown:
        raise TinynetError(f"unknown preprocess setting {unknown[0]!r}; known: preset, {', '.join(sorted(OVERRIDES))}")
    if "range" in spec:
        if "mean" in spec or "std" in spec:
            raise TinynetError("preprocess 'range' replaces mean and std: give one or the other")
        spec["mean"], spec["std"] = _mean_std_for_range(spec.pop("range"))
    for key, convert in (("mean", _floats), ("std", _floats), ("crop_fraction", float)):
        if key in spec:
            try:
                spec[key] = convert(spec[key])
            except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit integer
                raise TinynetError(f"preprocess {key} must be numeric, got {spec[key]!r}") from None
    return replace(PRESETS[name], **spec)


def _floats(values):
    return tuple(float(v) for v in values)


def for_model(model):
    """The ``Preprocess`` a model expects (its meta["preprocess"]; torchvision at 224 when it has none)."""
    return resolve(model.meta.get("preprocess"))


def _mean_std_for_range(value):
    """[lo, hi] (or the string "lo,hi", brackets optional) -> mean, std with (x - mean) / std in [lo, hi]."""
    if isinstance(value, str):
        value = re.sub(r"[\[\]()\s]", "", value).split(",")
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError, OverflowError):
        raise TinynetError(f"preprocess range must be two numbers [lo, hi], got {value!r}") from None
    if hi <= lo:
        raise TinynetError(f"preprocess range needs lo < hi, got [{lo}, {hi}]")
    scale = hi - lo
    return ((0 - lo) / scale,) * 3, (1 / scale,) * 3


def to_array(image, preprocess=None):
    """One image (anything ``open_image`` takes) preprocessed: (size, size, 3) float32, HWC, RGB.

    ``preprocess``: a Preprocess, a preset dict (see ``resolve``) or None for torchvision at 224.
    """
    p = resolve(preprocess)
    opened = open_image(image)
    try:
        rgb = _resize_and_crop(opened, p)  # (size, size) RGB
    except MemoryError:
        raise ImageError(f"{_name(image)}: not enough memory to resize this image") from None
    x = np.asarray(rgb, dtype=np.float32)  # (size, size, 3), 0..255
    # Same float32 operations, in the same order, as torchvision's ToTensor + Normalize.
    x /= np.float32(255)
    x -= np.asarray(p.mean, dtype=np.float32)
    x /= np.asarray(p.std, dtype=np.float32)
    return x


def normalise_rows_f32(x, mean, std):
    """x (H, W, 3) float32, C-contiguous, in place: (x - mean) / std per channel, the same float32 operation on each
    value as broadcasting against (3,), but as rows of W x 3 values against mean (std) repeated W times: the
    broadcast's inner loop of 3 does not vectorise (a 720p photo: 46 -> 8 ms for the detection transform)."""
    rows = x.reshape(x.shape[0], -1)
    rows -= np.tile(np.asarray(mean, dtype=np.float32), x.shape[1])
    rows /= np.tile(np.asarray(std, dtype=np.float32), x.shape[1])
    return x


def batch(images, preprocess=None):
    """Several images preprocessed into one batch: (N, size, size, 3) float32."""
    p = resolve(preprocess)
    images = list(images)
    out = np.empty((len(images), p.size, p.size, 3), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = to_array(image, p)
    return out


def geometry(original_size, preprocess=None):
    """The tinynet.geometry.Geometry ``to_array`` applies to an image of ``original_size`` (height, width): where
    each original pixel lands in the (size, size) input, to map results back onto the photo."""
    from tinynet.geometry import Geometry

    p = resolve(preprocess)
    h, w = original_size
    if p.crop_first:  # crop (top, left margins) then resize the crop to size x size
        top, left = _central_crop_margins(w, h, p)
        sy, sx = p.size / (h - 2 * top), p.size / (w - 2 * left)
        return Geometry((h, w), (p.size, p.size), (sy, sx), (-top * sy, -left * sx))
    new_w, new_h, top, left = _resize_then_crop_layout(w, h, p)
    return Geometry((h, w), (p.size, p.size), (new_h / h, new_w / w), (-top, -left))


def _central_crop_margins(w, h, p):
    # tf.image.central_crop: offset truncated toward zero, then the same margin on both sides.
    return int((h - h * p.crop_fraction) / 2), int((w - w * p.crop_fraction) / 2)


def _resize_then_crop_layout(w, h, p):
    """torchvision's Resize(shorter side) + CenterCrop: (resized width, height, crop top, left)."""
    # The 1e-9 keeps a ratio such as 224/232 written with rounding from landing one pixel short.
    shorter = math.floor(p.size / p.crop_fraction + 1e-9)
    # torchvision's resize: the longer side is truncated, not rounded.
    if w <= h:
        new_w, new_h = shorter, int(shorter * h / w)
    else:
        new_w, new_h = int(shorter * w / h), shorter
    # torchvision's center_crop rounds the offset with Python's round (half to even).
    return new_w, new_h, int(round((new_h - p.size) / 2.0)), int(round((new_w - p.size) / 2.0))


def _resize_and_crop(image, p):
    """RGB PIL image -> (p.size, p.size) RGB PIL image, following torchvision's or TF-slim's order."""
    resample = INTERPOLATIONS[p.interpolation]
    w, h = image.size
    if p.crop_first:
        top, left = _central_crop_margins(w, h, p)
        # Crop first: resize(box=...) would let the filter reach pixels outside the box, TF's does not.
        return _resize(image, (p.size, p.size), resample, box=(left, top, w - left, h - top))
    new_w, new_h, top, left = _resize_then_crop_layout(w, h, p)
    if new_w * new_h > MAX_RESIZED_PIXELS:  # an extreme aspect ratio: a 1 x 100000 strip would resize to 20 GB
        return _resized_window(image, (new_w, new_h), (left, top), p.size, resample)
    image = _resize(image, (new_w, new_h), resample)
    return image.crop((left, top, left + p.size, top + p.size))


def _resize(image, size, resample, box=None):
    """``image.crop(box).resize(size, resample)``, exactly, unless Pillow would need more than
    RESIZE_BUDGET of memory for it (a 1-pixel-wide strip 80 million pixels tall costs 3 GB
    in filter coefficients alone): then the box is first shrunk by whole factors with ``Image.reduce``
    (a box average, whose memory is its output's), keeping at least REDUCE_GAP source pixels per output
    pixel so that the filter still antialiases, and the rest is resized as usual."""
    box = box or (0, 0, *image.size)
    box_size = (box[2] - box[0], box[3] - box[1])
    if _resize_cost(box_size, size, resample) <= RESIZE_BUDGET:
        cropped = image if box == (0, 0, *image.size) else image.crop(box)
        return cropped if cropped.size == tuple(size) else cropped.resize(size, resample)
    factors = tuple(max(1, have // (REDUCE_GAP * want)) for have, want in zip(box_size, size))
    return image.reduce(factors, box).resize(size, resample)


def _resize_cost(box_size, size, resample):
    """Memory of Pillow's two-pass resize of a ``box_size`` region to ``size``, in RGB pixels (4 bytes): the
    horizontal pass's output (out_w x box_h) plus the filter coefficients, about 2 * support doubles per
    source pixel of each axis (Resample.c, precompute_coeffs)."""
    (box_w, box_h), (out_w, out_h) = box_size, size
    return out_w * box_h + 4 * FILTER_SUPPORT[resample] * (max(box_w, out_w) + max(box_h, out_h))


def _resized_window(image, new_size, corner, size, resample):
    """The size x size window at ``corner`` of ``image`` resized to ``new_size``, without making the whole
    resized image: Pillow's two passes (horizontal, then vertical, through 8 bits) run one at a time on
    only the rows and columns the window needs. Filter positions are then computed from fractional
    window edges, so a pixel may differ from resize-then-crop by up to 2 levels (nearest: pick the
    neighbouring pixel); Pillow's own 2-D ``resize(box=...)`` is up to 20 levels off (bicubic, Pillow 13)."""
    (w, h), (new_w, new_h), (left, top) = image.size, new_size, corner
    sx, sy = w / new_w, h / new_h
    # Source pixels a filter reaches beyond the window (Lanczos: 3 output pixels), on each axis: only that
    # region is copied (a 100000 x 1 strip would otherwise be copied whole).
    reach_x, reach_y = 3 * max(sx, 1) + 1, 3 * max(sy, 1) + 1
    x0, x1 = max(0, math.floor(left * sx - reach_x)), min(w, math.ceil((left + size) * sx + reach_x))
    y0, y1 = max(0, math.floor(top * sy - reach_y)), min(h, math.ceil((top + size) * sy + reach_y))
    window = image.crop((x0, y0, x1, y1))
    rows = window.resize((size, y1 - y0), resample, box=(left * sx - x0, 0, (left + size) * sx - x0, y1 - y0))
    return rows.resize((size, size), resample, box=(0, top * sy - y0, size, (top + size) * sy - y0))


# ----------------------------------------------------------------------------------------------
# Decoding


_OPEN_LOCK = threading.Lock()  # warnings.catch_warnings is process-wide state: one opener at a time
# Pillow opens EPS by running Ghostscript on the file: a PostScript interpreter, whose sandbox has been
# escaped many times, is no place for an untrusted image. Every other format is decoded in-process.
EXTERNAL_PROGRAM_FORMATS = frozenset({"EPS"})


@functools.cache
def _decodable_formats():
    Image.init()  # registers every plugin, so that the list is complete
    quiet_libtiff.silence()  # a bad TIFF is reported once, by tinynet, not also by libtiff on stderr
    return tuple(f for f in Image.OPEN if f not in EXTERNAL_PROGRAM_FORMATS)


def open_image(source):
    """An RGB PIL image from a path, a PIL image, a NumPy array, bytes or a binary file object, ready to
    preprocess. The one entry point for images: every API and CLI path goes through it.

    - NumPy arrays are HWC RGB (or HW grayscale): uint8 is taken as 0..255; float arrays must hold values
      in [0, 1] (skimage's convention), anything else is refused rather than guessed. Other shapes, such as
      CHW, are refused with a hint.
    - bytes (or bytearray, memoryview) and binary file objects (anything with ``read``) hold an encoded
      image file (JPEG, PNG, ...), decoded as a file on disk would be.

    - EXIF orientation is applied (the pixels are rotated/flipped as a viewer would show them).
    - Grayscale, 1-bit, palette, CMYK and YCbCr images are converted to RGB (CMYK naively, without
      an ICC profile). 16-bit images (I;16, I;16B, I) are scaled from 0..65535 to 0..255.
    - Transparent images (RGBA, LA, PA, palette or grayscale with a transparent colour) are composited
      on white.
    - Animated images (GIF, APNG, WebP) give their first frame.
    - Formats Pillow decodes by running another program (EPS: Ghostscript) are not opened.
    - Images larger than Pillow's decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS``
      (89,478,485 pixels by default, about 9459 x 9459), are refused before decoding. Raise that
      limit, or set it to None, to accept larger trusted files.

    Raises tinynet.ImageError, naming the file, for anything that cannot be read.
    """
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", "") or "<PIL image>"

        def prepare():
            source.load()  # an image from Image.open is decoded lazily: surface its errors here
            return _normalised(source, owned=False)

        return _guarded(name, prepare)
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("<bytes>: empty (0 bytes)")
        return _guarded("<bytes>", lambda: _decode(io.BytesIO(bytes(source))))
    if hasattr(source, "read"):
        return _guarded(str(getattr(source, "name", "") or "<file object>"), lambda: _decode(source))
    try:
        path = Path(os.fspath(source))
    except TypeError:
        raise ImageError(f"expected an image path, PIL image, NumPy array, bytes or binary file object, "
                         f"got {type(source).__name__}") from None
    name = str(path)
    if not path.exists():
        raise ImageError(f"{name}: no such file")
    if path.is_dir():
        raise ImageError(f"{name}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")

    return _guarded(name, lambda: _decode(path))


def _decode(file):
    """A path or binary file object -> normalised RGB image (errors left to ``_guarded``)."""
    with _OPEN_LOCK, warnings.catch_warnings():
        # Pillow warns between MAX_IMAGE_PIXELS and twice that, and raises above; refuse both.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        opened = Image.open(file, formats=_decodable_formats())
    with opened:  # closes the file (kept open by multi-frame formats); decoded pixels stay usable
        _check_decode_budget(opened.size, rows=opened.size[1])  # before decoding
        opened.load()
        if opened.getexif().get(ExifTags.Base.Orientation, 1) in TRANSPOSING_ORIENTATIONS:
            _check_decode_budget(opened.size, rows=opened.size[0])  # before exif_transpose makes the transposed copy
        return _normalised(opened, owned=True)


def _check_decode_budget(size, rows):
    """Refuse an image whose rows cost more than the pixels Pillow's limit allows: Pillow's check counts
    pixels, but each row also takes an 8-byte pointer, so a 1 x 89,000,000 strip under the limit takes
    2 GB decoded and converted. ``rows``: the image's rows (as decoded, or as EXIF will transpose it)."""
    limit = Image.MAX_IMAGE_PIXELS
    (w, h), cost = size, size[0] * size[1] + ROW_COST_PIXELS * rows
    if limit is not None and cost > limit:
        raise ImageError(f"image is {w:,} x {h:,} pixels, which with one row pointer per row cost as much memory "
                         f"as {cost:,} pixels, over the decompression-bomb limit of {limit:,} "
                         "(PIL.Image.MAX_IMAGE_PIXELS, on the command line --max-pixels or TINYNET_MAX_PIXELS; "
                         "raise it if you trust the file)")


def _name(source):
    """How messages name an image source."""
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<PIL image>"
    if isinstance(source, np.ndarray):
        return "<array>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if hasattr(source, "read"):
        return str(getattr(source, "name", "") or "<file object>")
    return str(source)


def _from_array(array):
    """HWC RGB (or HW gray) uint8 0..255 or float [0, 1] -> RGB PIL image; anything else refused."""
    shape = array.shape
    if not (array.ndim == 2 or (array.ndim == 3 and shape[-1] == 3)):
        hint = " (this looks like CHW: use x.transpose(1, 2, 0))" if array.ndim == 3 and shape[0] == 3 else ""
        raise ImageError(f"<array>: expected an image array (H, W, 3) RGB or (H, W) gray, got shape {shape}{hint}")
    if 0 in shape:
        raise ImageError(f"<array>: empty image array, shape {shape}")
    if array.dtype == np.uint8:
        pixels = array
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ImageError("<array>: float image arrays must hold values in [0, 1] "
                             "(for 0..255 values pass x.astype(np.uint8))")
        pixels = np.rint(array.astype(np.float64) * 255).astype(np.uint8)
    else:
        raise ImageError(f"<array>: image arrays must be uint8 (0..255) or float (0..1), got {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(pixels), "L" if pixels.ndim == 2 else "RGB").convert("RGB")


def _guarded(name, decode):
    """Run ``decode``; turn whatever Pillow raises on a bad file into one ImageError line."""
    try:
        return decode()
    except ImageError as e:
        raise ImageError(f"{name}: {e}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        limit = Image.MAX_IMAGE_PIXELS
        raise ImageError(f"{name}: image is larger than {limit:,} pixels, the decompression-bomb limit "
                         "(PIL.Image.MAX_IMAGE_PIXELS, on the command line --max-pixels or TINYNET_MAX_PIXELS; "
                         "raise it if you trust the file)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file Pillow can read") from None
    except PermissionError:
        raise ImageError(f"{name}: permission denied") from None
    except MemoryError:
        raise ImageError(f"{name}: not enough memory to decode this image") from None
    # How Pillow reports malformed or truncated data: OSError and ValueError from decoders (the only two
    # seen in 6000 fuzzed PNG/JPEG/GIF/BMP/TIFF/WebP files), SyntaxError, EOFError and struct.error from
    # format plugins' parsers; fuzzing every format Pillow writes (tests/test_fuzz.py) added
    # NotImplementedError (DDS pixel formats, BLP encodings) and RuntimeError (AVIF). With some forty
    # plugins, any exception raised while decoding this file's bytes means the same: it cannot be decoded.
    except Exception as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise ImageError(f"{name}: cannot decode image ({reason})") from None


def _normalised(image, owned):
    """EXIF orientation applied, then converted to RGB. ``owned``: the image may be modified in place."""
    if owned:
        ImageOps.exif_transpose(image, in_place=True)
    elif image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        image = ImageOps.exif_transpose(image)
    return _to_rgb(image)


def _to_rgb(image):
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "I" or mode.startswith("I;16"):
        return _sixteen_bit_to_rgb(image)
    if mode in ALPHA_MODES or "transparency" in image.info:
        # Composited on white inside the one RGB copy: white pasted through the inverted alpha is the same
        # blend as the image pasted on white through its alpha, without a second full-size RGB(A) image.
        # The inverted alpha is made first, so that the RGBA copy some modes need is gone before the RGB one exists.
        has_alpha = mode in ("RGBA", "LA")
        clear = (image if has_alpha else image.convert("RGBA")).getchannel("A").point(lambda a: 255 - a)
        colours_direct = has_alpha or mode in ("P", "L", "RGB", "1")  # to RGB without an RGBA copy
        rgb = (image if colours_direct else image.convert("RGBA")).convert("RGB")
        rgb.paste(BACKGROUND, mask=clear)
        return rgb
    if mode in ("L", "1", "P", "CMYK", "YCbCr"):
        return image.convert("RGB")
    raise ImageError(f"unsupported image mode {mode}")


def _sixteen_bit_to_rgb(image):
    """16-bit grayscale (0..65535; mode I is taken to hold the same range) -> 8-bit RGB."""
    values = np.asarray(image).astype(np.int32)  # (H, W); in place from here: 4 bytes a pixel, once
    np.clip(values, 0, 65535, out=values)
    values += 128
    values //= 257  # = round(v / 257) for whole v (no ties: v / 257 is never k + 1/2); 65535 / 257 = 255
    gray = values.astype(np.uint8)
    return Image.fromarray(gray, "L").convert("RGB")
