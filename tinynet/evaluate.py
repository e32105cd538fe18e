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

from tinynet.errors import ImageError, TinynetError
from tinynet.labels import IMAGENET_CLASSES
from tinynet.prefetch import prefetched
from tinynet.preprocess import for_model, to_array

LINE = re.compile(r"^(?P<path>.+?)[\s,]+(?P<label>-?\d+)\s*$")
TOP_K = 5


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


def evaluate(model, labels_file, images_dir=None, batch_size=32, progress=None, workers=2):
    """Top-1 and top-5 accuracy of ``model`` on the images listed in ``labels_file``.

    Returns {"top1", "top5" (fractions in [0, 1] of the images read), "images" (how many were read),
    "skipped" ([(path, message)] for images that could not be read: left out, not counted as wrong),
    "seconds" (wall time, decoding included), "images_per_second"}. ``progress(done, total)`` is called before the first batch and after each.
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
            raise TinynetError(f"{path} has label {label}, but the model has only {classes} classes (0..{classes - 1})")
    preprocess = for_model(model)
    k = min(TOP_K, classes)
    top1 = top5 = done = 0
    if progress:
        progress(0, len(samples))
    start = time.perf_counter()
    skipped = []
    for chunk, x, failures in _batches(samples, batch_size, preprocess, workers):
        skipped.extend(failures)
        done += len(failures)
        if x is None:
            continue
        scores = model.forward(x)[:, offset:]  # (n, classes)
        labels = np.array([label for _, label in chunk])  # (n,)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (n, k), unordered
        top1 += int(np.sum(np.argmax(scores, axis=1) == labels))
        top5 += int(np.sum(np.any(top == labels[:, None], axis=1)))
        done += len(chunk)
        if progress:
            progress(done, len(samples))
    seconds = time.perf_counter() - start
    n = len(samples) - len(skipped)
    if n == 0:
        raise TinynetError(f"none of the {len(samples)} images could be read, first: {skipped[0][1]}")
    return {"top1": top1 / n, "top5": top5 / n, "images": n, "skipped": skipped, "seconds": seconds,
            "images_per_second": n / seconds}


def _batches(samples, batch_size, preprocess, workers):
    """(readable samples, (n, size, size, 3) float32 or None, [(path, message)] unreadable) for each batch, in
    order; ``workers`` threads prepare that many batches ahead."""

    def prepare(chunk):
        readable, arrays, failures = [], [], []
        for path, label in chunk:
            try:
                arrays.append(to_array(path, preprocess))
                readable.append((path, label))
            except ImageError as e:
                failures.append((path, str(e)))
        return readable, (np.stack(arrays) if arrays else None), failures

    chunks = [samples[i:i + batch_size] for i in range(0, len(samples), batch_size)]
    return (prepared for _, prepared in prefetched(chunks, prepare, workers))
