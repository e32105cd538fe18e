"""``train``: a new classifier on a folder of images, on top of a frozen MobileNet backbone.

DATA_DIR holds one folder per class (``DATA_DIR/<class>/*.jpg``), optionally inside ``train/`` and
``val/``; otherwise a stratified, seeded split keeps ``val_split`` of each class for validation.
The backbone runs once per image and view (views: the image itself and, with ``augment``, a
horizontal flip and seeded random resized crops); the classifier's input (pooled features) is cached on disk under
``<store>/features/<base model hash>/`` keyed by the file's content hash and the view, so another
run with other settings computes nothing again. The head is tinynet.head (logistic regression).
"""
import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from tinynet import fine_tune as tuning, head, io, preprocess, store
from tinynet.errors import TinynetError
from tinynet.model import Model, softmax
from tinynet.progress import Progress
from tinynet.threads import check_threads
from tinynet.terminal import printable

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CROPS_PER_IMAGE = 2  # random resized crops per training image with augment=True (plus one flip)
CROP_SCALE = (0.5, 1.0)  # fraction of the image area a random crop keeps


@dataclass
class TrainResult:
    model: Model  # the base backbone with the new head, labels and metadata
    report: dict  # accuracies, per-class precision/recall, confusion matrices, images/s
    path: Path = None  # where it was stored (out=NAME), else None
    skipped: list = field(default_factory=list)  # files that could not be read


def class_folders(data_dir, min_classes=2):
    """(class names sorted, {split: [(path, class index), ...]}) with split "train" and maybe "val", or
    "all" when there is no train/ folder. A class folder's subfolders are part of that class."""
    root = Path(data_dir)
    if not root.is_dir():
        raise TinynetError(f"not a folder: {data_dir}")
    if (root / "train").is_dir():
        splits = {"train": root / "train"}
        if (root / "val").is_dir():
            splits["val"] = root / "val"
    else:
        splits = {"all": root}
    names = sorted(p.name for p in splits.get("train", root).iterdir() if p.is_dir())
    if len(names) < min_classes:
        hint = f" ({names[0]!r}: is DATA_DIR one folder too high?)" if len(names) == 1 else ""
        raise TinynetError(f"{splits.get('train', root)}: need at least {min_classes} class folders, found {len(names)}{hint}")
    files = {}
    for split, folder in splits.items():
        files[split] = []
        for index, name in enumerate(names):
            if not (folder / name).is_dir():
                raise TinynetError(f"{folder}: no folder for class {name!r}")
            # Subfolders of a class folder belong to that class (photos sorted by date, by camera, ...).
            images = sorted(p for p in (folder / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise TinynetError(f"{folder / name}: no images (expected .jpg, .png, ...)")
            files[split].extend((p, index) for p in images)
    return names, files


def stratified_split(items, val_split, seed):
    """Per class, a seeded shuffle keeps round(val_split * n) (at least 1) files for validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted({c for _, c in items}):
        members = [item for item in items if item[1] == label]
        if len(members) < 2:
            raise TinynetError(f"class folder {members[0][0].parent} has one image: need at least 2 to split")
        order = rng.permutation(len(members))
        n_val = min(len(members) - 1, max(1, round(val_split * len(members))))
        val += [members[i] for i in order[:n_val]]
        train += [members[i] for i in order[n_val:]]
    return train, val


def model_identity(model):
    """A hash of everything that decides a model's features: weights, architecture, padding, preprocessing."""
    h = hashlib.sha256()
    h.update(json.dumps(["classifier_input", model.arch, model.padding, model.quantized_activations, model.meta.get("preprocess"),
                         model.meta.get("activation_grid")], sort_keys=True, default=str).encode())
    for name in sorted(model.weights):
        if model.layers[-1].name not in name:  # the classifier does not change the pooled features
            h.update(name.encode())
            h.update(np.ascontiguousarray(model.weights[name]).tobytes())
    return h.hexdigest()[:32]


def views_for(augment, seed):
    """View descriptions: "orig", and with augment "flip" and seeded crops "crop<seed>-<i>"."""
    views = ["orig"]
    if augment:
        views.append("flip")
        views += [f"crop{seed}-{i}" for i in range(CROPS_PER_IMAGE)]
    return views


def render_view(image, view, content_hash):
    """The PIL image for ``view`` of a decoded file: crops are seeded by the view name and the file's content."""
    if view == "flip":
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if view.startswith("crop"):
        rng = np.random.default_rng(int(hashlib.sha256((view + content_hash).encode()).hexdigest()[:15], 16))
        w, h = image.size
        area = rng.uniform(*CROP_SCALE) * w * h
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = min(w, round(np.sqrt(area * aspect))), min(h, round(np.sqrt(area / aspect)))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return image.crop((left, top, left + cw, top + ch))
    return image


class FeatureCache:
    """Pooled features of ``model`` per (file content, view), one .npy file each under the store."""

    # Views per forward pass. Batch 1 was 9x slower per image on the busy 2-core machine: each pass is ~50
    # parallel regions, each waiting for both threads. A view's features do not depend on its batch (tested).
    BATCH = 16

    def __init__(self, model, root=None, tap=None):
        self.model, self.tap = model, tap  # tap: cache that layer's output instead (the input to fine-tuned blocks)
        self.dir = Path(root or store.home() / "features") / model_identity(model) / (tap or "")
        self.hits = self.misses = 0

    def features(self, items, views, progress=True):
        """(features (len(items) * len(views), C) float32, labels, skipped paths), views of one file adjacent.
        A file is decoded once for all its missing views; those are computed BATCH at a time."""
        bar = Progress("features", len(items) * len(views), "images", enabled=None if progress else False)
        spec = preprocess.for_model(self.model)
        rows, labels, skipped, pending = [], [], [], []  # pending: (row index, cache file, preprocessed view)
        for path, label in items:
            try:
                content = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                files = [self.dir / content[:2] / f"{content}.{view}.npy" for view in views]
                cached = [self._load(file) for file in files]
                image = preprocess.open_image(path) if any(feature is None for feature in cached) else None
                missing = [(len(rows) + i, file, preprocess.to_array(render_view(image, view, content), spec))
                           for i, (file, view, feature) in enumerate(zip(files, views, cached)) if feature is None]
            except (OSError, TinynetError) as e:  # unreadable or not an image: list it, go on
                skipped.append((str(path), " ".join(str(e).split())))
                bar.update(len(views))
                continue
            pending += missing
            rows += cached
            labels += [label] * len(views)
            if len(pending) >= self.BATCH:
                self._compute(pending, rows)
            bar.update(len(views))
        self._compute(pending, rows)
        bar.close()
        if not rows:
            raise TinynetError("no readable images")
        return np.stack(rows), np.asarray(labels), skipped

    def _load(self, file):
        """The cached feature, or None; a damaged cache entry is computed again, not an error."""
        if file.is_file():
            try:
                feature = np.load(file)
                self.hits += 1
                return feature
            except (OSError, ValueError):
                pass
        return None

    def _compute(self, pending, rows):
        """Run the backbone on the pending views, store each result in ``rows`` and on disk; empties ``pending``."""
        if not pending:
            return
        x = np.stack([view for _, _, view in pending])
        out = self.model.tap(x, [self.tap])[self.tap] if self.tap else self.model.classifier_input(x)
        for (row, file, _), feature in zip(pending, out):
            rows[row] = feature
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_name(f".{file.name}.{time.monotonic_ns()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, feature)
            tmp.replace(file)  # atomic: a concurrent run never reads half a file
        self.misses += len(pending)
        pending.clear()


def with_head(base, w, b, labels, meta, tuned=None):
    """``base``'s backbone with its classifier replaced by (w (D, K), b (K,)) and the new labels; ``tuned``:
    {weight name: array} replacing fine-tuned backbone weights."""
    last = base.layers[-1]
    if last.op != "fc" or w.shape[0] != last.cin:
        raise TinynetError(f"base model's last layer is {last.op} with {last.cin} inputs, not a classifier over the features")
    layers = base.layers[:-1] + (replace(last, cout=w.shape[1], act=None),)
    weights = dict(base.weights)
    weights.update({name: np.ascontiguousarray(value, dtype=np.float32) for name, value in (tuned or {}).items()})
    weights[f"{last.name}.w"] = np.ascontiguousarray(w, dtype=np.float32)
    weights[f"{last.name}.b"] = np.ascontiguousarray(b, dtype=np.float32)
    meta = {**{k: v for k, v in base.meta.items() if k in ("preprocess", "activation_grid")}, **meta, "labels": list(labels)}
    return Model(base.arch, layers, weights, base.padding, meta, base.threads)


def scores(y_true, y_pred, names):
    """Accuracy, per-class precision and recall, the confusion matrix (rows: true, columns: predicted) and
    how many predictions were "unknown" (-1: below the threshold; they count as wrong)."""
    k = len(names)
    confusion = np.zeros((k, k), dtype=np.int64)
    known = y_pred >= 0
    np.add.at(confusion, (y_true[known], y_pred[known]), 1)
    predicted = confusion.sum(axis=0)
    diag = np.diag(confusion)
    actual = np.bincount(y_true, minlength=k)
    return {"accuracy": float(diag.sum() / max(1, len(y_true))), "unknown": int((~known).sum()),
            "per_class": {n: {"precision": float(diag[i] / predicted[i]) if predicted[i] else 0.0,
                              "recall": float(diag[i] / actual[i]) if actual[i] else 0.0, "support": int(actual[i])}
                          for i, n in enumerate(names)},
            "confusion": confusion.tolist()}


def predict(features, w, b, unknown_threshold=None):
    """Class indices for features (N, D); -1 where the top probability is below ``unknown_threshold``."""
    p = softmax(features.astype(np.float64) @ w + b)
    pred = p.argmax(axis=1)
    if unknown_threshold is not None:
        pred[p.max(axis=1) < unknown_threshold] = -1
    return pred


def train(data_dir, base, out=None, epochs=500, val_split=0.2, augment=True, seed=0, l2=None,
          class_weights="balanced", unknown_threshold=None, progress=True, cache_dir=None, fine_tune=0, threads=None):
    """Train a new head on the images in ``data_dir`` over the backbone of ``base`` (a Model, a weight
    file or a store name). ``epochs`` bounds the L-BFGS iterations (full batch: one iteration sees every
    image). ``l2``: the penalty; None picks it from head.L2_GRID by cross-validation on the training images
    alone (an image's views kept in one fold). ``fine_tune``: also train the backbone's last N blocks
    (tinynet.fine_tune). ``threads``: compute threads for the features (default: the base model's).
    ``out``: store the result under that name. Returns a TrainResult."""
    if out is not None:
        store.path_of(out)  # an invalid name fails now, not after the features are computed
    if epochs < 1:
        raise TinynetError(f"epochs must be at least 1, got {epochs}")
    if not 0 < val_split < 1:
        raise TinynetError(f"val_split must be between 0 and 1, got {val_split}")
    names, files = class_folders(data_dir)
    model = base if isinstance(base, Model) else io.load(base)
    if threads is not None:  # on a copy: the caller's model keeps its own setting
        model = Model(model.arch, model.layers, model.weights, model.padding, model.meta, check_threads(threads))
    if "all" in files:
        train_items, val_items = stratified_split(files["all"], val_split, seed)
    else:
        train_items, val_items = files["train"], files.get("val", [])
    tail = None
    if fine_tune:
        tap, tail_layers = tuning.tail_of(model, fine_tune)
        tail = tuning.Tail(tail_layers, model.weights, model.padding)
    cache = FeatureCache(model, cache_dir, tap if tail else None)
    started = time.monotonic()
    x_train, y_train, skipped = cache.features(train_items, views_for(augment, seed), progress)
    x_val, y_val, skipped_val = cache.features(val_items, ["orig"], progress) if val_items else (None, None, [])
    feature_seconds = time.monotonic() - started
    if tail:  # the pretrained tail's features, for the head to start from
        tail_inputs = (x_train.astype(np.float64), None if x_val is None else x_val.astype(np.float64))
        x_train = tail.forward(tail_inputs[0])[0]
    if len(np.unique(y_train)) < len(names):
        raise TinynetError("some class has no readable training image")
    cv = None
    problem = head.StandardisedProblem(x_train, y_train, len(names), class_weights)
    if l2 is None:
        n_views = len(views_for(augment, seed))  # the views of one file are adjacent rows, "orig" first
        rows = np.arange(len(y_train))
        l2, cv = head.choose_l2(problem, rows // n_views, rows % n_views == 0, max_iter=epochs)
    w, b, fit_info, _ = problem.fit(l2, max_iter=epochs)
    fit_info = {**fit_info, "l2": l2, "l2_cv": {str(k): v for k, v in (cv or {}).items()}}
    if tail:
        weights = head.class_weights(y_train, len(names), class_weights)
        w, b, losses = tuning.train_tail(tail, tail_inputs[0], y_train, weights, w, b, l2)
        fit_info["fine_tune"] = {"blocks": fine_tune, "layers": [layer.name for layer in tail.layers],
                                 "loss_before": losses[0], "loss_after": losses[-1], "steps": len(losses)}
        x_train = tail.forward(tail_inputs[0])[0]
        if x_val is not None:
            x_val = tail.forward(tail_inputs[1])[0]
    report = {"classes": names, "train_images": len(train_items), "val_images": len(val_items),
              "views": views_for(augment, seed), "fit": fit_info,
              "features": {"computed": cache.misses, "cached": cache.hits,
                           "images_per_s": cache.misses / feature_seconds if cache.misses and feature_seconds > 0 else None},
              "train": scores(y_train, predict(x_train, w, b, unknown_threshold), names)}
    if x_val is not None:
        report["val"] = scores(y_val, predict(x_val, w, b, unknown_threshold), names)
    settings = {"data_dir": str(data_dir), "epochs": epochs, "val_split": val_split, "augment": augment, "seed": seed,
                "l2": l2, "class_weights": class_weights, "unknown_threshold": unknown_threshold, "fine_tune": fine_tune,
                "base": model.meta.get("source", model.arch)}
    meta = {"source": f"tinynet train on {model.meta.get('source', model.arch)}", "training": settings,
            "scores": {s: report[s]["accuracy"] for s in ("train", "val") if s in report}}
    if unknown_threshold is not None:
        meta["unknown_threshold"] = unknown_threshold
    trained = with_head(model, w, b, names, meta, tail.params if tail else None)
    path = store.save(trained, out) if out else None
    return TrainResult(trained, report, path, skipped + skipped_val)


def format_report(report):
    """The report as text: accuracies, per-class precision/recall, confusion matrix."""
    names = [printable(n) for n in report["classes"]]  # folder names: escaped so that none can forge a line
    lines = [f"classes: {len(names)}  train images: {report['train_images']}  val images: {report['val_images']}"]
    rate = report["features"]["images_per_s"]
    lines.append(f"features: {report['features']['computed']} computed, {report['features']['cached']} cached"
                 + (f", {rate:.1f} images/s" if rate else ""))
    for split in ("train", "val"):
        if split in report:
            lines.append(f"{split} accuracy: {report[split]['accuracy']:.3f}")
    split = "val" if "val" in report else "train"
    lines.append(format_scores(report[split], names, split))
    return "\n".join(lines)


def format_scores(split_scores, names, split):
    """Per-class precision/recall and the confusion matrix of one split, as text."""
    width = max(9, *(len(n) for n in names))
    lines = [f"{split}: {'class':<{width}} precision recall"]
    for n, s in split_scores["per_class"].items():
        lines.append(f"  {printable(n):<{width}} {s['precision']:9.3f} {s['recall']:6.3f}")
    lines.append(f"confusion ({split}; rows true, columns predicted):")
    lines.append("  " + " " * width + " " + " ".join(f"{i:>4}" for i in range(len(names))))
    for i, (n, row) in enumerate(zip(names, split_scores["confusion"])):
        lines.append(f"  {printable(n):<{width}} " + " ".join(f"{v:>4}" for v in row) + f"   ({i})")
    return "\n".join(lines)
