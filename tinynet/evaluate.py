"""Top-1 / top-5 accuracy of a model over a labelled folder of images.

A labels file has one image per line, the image path then its class index, separated by a comma or
whitespace:

  ./data/ILSVRC2012_val_00000347.JPEG, 472     (imagenet_val_1300/dataset.txt)
  ILSVRC2012_val_00000001.JPEG 65              (caffe's val.txt)

Blank lines and lines starting with "#" are skipped. Relative paths are taken from ``images_dir`` when
given (falling back to the bare file name inside it), else from the labels file's folder.

Class indices are 0-based. For a model with 1001 outputs (TensorFlow's, output 0 = "background") the
labels are read as the 1000 ImageNet classes: label k is output k + 1, and the background output is
never a prediction.
"""
import re
import time
from pathlib import Path

import numpy as np

from tinynet.errors import TinynetError
from tinynet.labels import IMAGENET_CLASSES
from tinynet.prefetch import image_batches
from tinynet.preprocess import for_model

LINE = re.compile(r"^(?P<path>.+?)[\s,]+(?P<label>-?\d+)\s*$")
TOP_K = 5
SHIFT_WARNING_MIN = 0.05  # a shifted top-1 below this is noise, not a sign of shifted labels


def read_labels(labels_file, images_dir=None, limit=None):
    """[(image path, class index)] from a labels file; every listed image must exist. ``limit``: only the first
    ``limit`` entries are read and checked."""
    labels_file = Path(labels_file)
    try:
        text = labels_file.read_text(encoding="utf-8")
    except OSError as e:
        raise TinynetError(f"cannot read labels file {labels_file}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise TinynetError(f"labels file {labels_file} is not UTF-8 text") from None
    base = Path(images_dir) if images_dir is not None else labels_file.parent
    samples, missing = [], []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = LINE.match(line)
        if match is None or int(match["label"]) < 0:
            raise TinynetError(f"{labels_file}:{number}: expected '<image path> <class index>' or "
                               f"'<image path>, <class index>', got {line[:80]!r}")
        path = _locate(match["path"].strip(), base, images_dir is not None)
        (samples if path.is_file() else missing).append((path, int(match["label"])))
        if limit is not None and len(samples) + len(missing) >= limit:
            break
    if missing:
        raise TinynetError(f"{len(missing)} of {len(samples) + len(missing)} images listed in {labels_file} "
                           f"are missing, first: {missing[0][0]}")
    if not samples:
        raise TinynetError(f"{labels_file} lists no images")
    return samples


def _locate(entry, base, by_name):
    path = base / entry
    if by_name and not path.is_file() and (base / Path(entry).name).is_file():
        return base / Path(entry).name
    return path


def evaluate(model, labels_file, images_dir=None, batch_size=32, progress=None, workers=2, on_image=None):
    """Top-1 and top-5 accuracy of ``model`` on the images listed in ``labels_file``.

    Returns {"top1", "top5" (fractions in [0, 1] of the images read), "images" (how many were read),
    "skipped" ([(path, message)] for images that could not be read: left out, not counted as wrong),
    "seconds" (wall time, decoding included), "images_per_second", "index_base" (None, or a one-line warning
    when the labels look numbered from another base than the model's outputs, see ``index_base_warning``)}.
    ``progress(done, total)`` is called before the first batch and after each.
    ``on_image(record)`` is called for each image, in the labels file's order: {"image", "label", "top":
    [(class index, probability), ...] best first} or {"image", "label", "error"}; class indices are the labels
    file's (for a 1001-output model, output k + 1 is class k).
    ``workers`` threads decode and preprocess the next batches while the model runs (0: no threads);
    on a 2-core machine 2 workers gave 3-24% more images/s than none (bench/evaluate_overlap.py).
    """
    if batch_size < 1:
        raise TinynetError(f"batch_size must be at least 1, got {batch_size}")
    samples = read_labels(labels_file, images_dir)
    offset = 1 if model.num_classes == IMAGENET_CLASSES + 1 else 0
    classes = model.num_classes - offset
    for path, label in samples:
        if label >= classes:
            one_based = " (labels 1..N look numbered from 1: subtract 1 from each)" if label == classes else ""
            raise TinynetError(f"{path} has label {label}, but the model has only {classes} classes "
                               f"(0..{classes - 1}){one_based}")
    k = min(TOP_K, classes)
    top1 = top5 = done = 0
    shifted = {-1: 0, 1: 0}  # images whose top-1 is label - 1 or label + 1: a labels file numbered from another base
    if progress:
        progress(0, len(samples))
    start = time.perf_counter()
    skipped = []
    for chunk, x, errors in image_batches(samples, for_model(model), batch_size, workers, image_of=lambda s: s[0]):
        read = [sample for sample, error in zip(chunk, errors) if error is None]
        skipped.extend((path, error) for (path, _), error in zip(chunk, errors) if error is not None)
        if x is not None:
            probabilities = model.probabilities(x)
            scores = probabilities[:, offset:]  # (n, classes)
            labels = np.array([label for _, label in read])  # (n,)
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (n, k), best first
            top1 += int(np.sum(top[:, 0] == labels))
            top5 += int(np.sum(np.any(top == labels[:, None], axis=1)))
            for shift in shifted:
                shifted[shift] += int(np.sum(top[:, 0] == labels + shift))
        if on_image:  # in the labels file's order: x's rows are the read images, in chunk order
            # over every output, as `classify` computes them, then the labels' classes
            probabilities, row = (probabilities[:, offset:] if x is not None else None), 0
            for (path, label), error in zip(chunk, errors):
                if error is not None:
                    on_image({"image": path, "label": label, "error": error})
                    continue
                on_image({"image": path, "label": label,
                          "top": [(int(i), float(probabilities[row, i])) for i in top[row]]})
                row += 1
        done += len(chunk)
        if progress:
            progress(done, len(samples))
    seconds = time.perf_counter() - start
    n = len(samples) - len(skipped)
    if n == 0:
        raise TinynetError(f"none of the {len(samples)} images could be read, first: {skipped[0][1]}")
    return {"top1": top1 / n, "top5": top5 / n, "images": n, "skipped": skipped, "seconds": seconds,
            "images_per_second": n / seconds,
            "index_base": index_base_warning(top1 / n, {s: hits / n for s, hits in shifted.items()}, model.num_classes)}


def index_base_warning(top1, shifted_top1, outputs):
    """A warning when the labels fit the model far better shifted by one (``shifted_top1``: {-1, +1: top-1 if the
    model's answer were compared with label - 1, label + 1}), as 1-based labels (TensorFlow's 1001-class files,
    0 = background) give on a 1000-class model: an accuracy near 0 that is not the model's. None otherwise."""
    shift, best = max(shifted_top1.items(), key=lambda item: item[1])
    if best < max(SHIFT_WARNING_MIN, 2 * top1):
        return None
    fix = "one less" if shift == -1 else "one more"
    return (f"top-1 would be {100 * best:.2f}%, not {100 * top1:.2f}%, if every label were {fix}: the labels file "
            f"looks numbered from another base than this model's {outputs} outputs (class indices are 0-based; "
            f"for a 1001-output model, label k is output k + 1)")
