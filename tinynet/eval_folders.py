"""Accuracy of a model on a folder-per-class tree (``DIR/<label>/*.jpg``): no labels file, the folder names
are the model's label names (as `tinynet train` stores them). Predictions outside the folders' classes, or
below the model's ``unknown_threshold``, count as wrong ("other")."""
import time

import numpy as np

from tinynet.errors import TinynetError
from tinynet.labels import labels_for
from tinynet.preprocess import for_model, to_array
from tinynet.progress import Progress
from tinynet.train import class_folders, scores


def evaluate_folders(model, images_dir, batch_size=32, unknown_threshold=None, progress=True):
    """{"accuracy", "per_class", "confusion", "unknown", "classes", "images", "skipped" [(path, reason)],
    "seconds", "images_per_second"} of ``model`` on the class folders in ``images_dir``."""
    names, files = class_folders(images_dir, min_classes=1)
    samples = files.get("val") or files.get("all") or files["train"]
    outputs = labels_for(model)
    index = {name: i for i, name in enumerate(outputs)}
    missing = [name for name in names if name not in index]
    if missing:
        raise TinynetError(f"class folder {missing[0]!r} is not one of the model's labels "
                           f"(it has {len(outputs)}, e.g. {outputs[:3]})")
    threshold = model.meta.get("unknown_threshold") if unknown_threshold is None else unknown_threshold
    to_folder = np.full(len(outputs), -1)
    to_folder[[index[name] for name in names]] = np.arange(len(names))
    spec = for_model(model)
    bar = Progress("evaluating", len(samples), "img", enabled=None if progress else False)
    truth, predicted, skipped = [], [], []
    started = time.monotonic()
    for start in range(0, len(samples), batch_size):
        arrays, labels = [], []
        for path, label in samples[start:start + batch_size]:
            try:
                arrays.append(to_array(path, spec))
                labels.append(label)
            except (OSError, TinynetError) as e:  # unreadable or not an image: list it, go on
                skipped.append((str(path), " ".join(str(e).split())))
        if arrays:
            p = model.probabilities(np.stack(arrays))
            pred = to_folder[p.argmax(axis=1)]
            if threshold is not None:
                pred[p.max(axis=1) < threshold] = -1
            truth += labels
            predicted += pred.tolist()
        bar.update(len(samples[start:start + batch_size]))
    bar.close()
    seconds = time.monotonic() - started
    if not truth:
        raise TinynetError(f"none of the {len(samples)} images in {images_dir} could be read")
    report = scores(np.asarray(truth), np.asarray(predicted), names)
    return {**report, "classes": names, "images": len(truth), "skipped": skipped, "seconds": seconds,
            "images_per_second": len(truth) / seconds if seconds > 0 else None}
