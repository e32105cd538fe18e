"""Issue 14's baseline, reproduced: scikit-learn's LogisticRegression (its defaults) on features that LiteRT
extracts from a quantized .tflite file, for flowers5's train/ -> val/ split, with and without flipped copies of
the training photos, and 5-fold cross-validation on all 200 photos. A table per model file.

    /work/fxenv/bin/python bench/train_baseline.py [--shared ../shared] [--model FILE ...]

Needs ai-edge-litert, scikit-learn and Pillow (not tinynet: this is the peer's side). LiteRT runs its builtin
kernels (no XNNPACK delegate), the only way it keeps intermediate tensors; its default XNNPACK kernels round
differently (tinynet's integer path matches those, and bench/train.py fits scikit-learn on them).

Features ("tap"): each tensor of shape (1, 1, 1, C) or (1, C) the graph computes: for MobileNet V3 the pooled
960, the 1280-wide output of the last 1x1 conv (and its average pool, the same values), the 1001 logits and the
softmax. Input preprocessing ("prep"): the resized photo's own bytes fed to the uint8 input, resized as
  tf-crop      TF-slim's eval transform as tinynet's "tf" preset does it: central 87.5% crop, bilinear to 224
  resize       the whole photo, bilinear to 224x224 (aspect ratio not kept)
  resize-256   shorter side to 256 bilinear, centre 224 crop (torchvision's order)
"""
import argparse
import os
import warnings
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from PIL import Image, ImageOps
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CROP_FRACTION = 0.875


def central_crop(image):
    """tf.image.central_crop's box (as tinynet.preprocess rounds it)."""
    w, h = image.size
    top, left = int((h - h * CROP_FRACTION) / 2), int((w - w * CROP_FRACTION) / 2)
    return image.crop((left, top, w - left, h - top))


def resized(image, prep, size):
    if prep == "tf-crop":
        return central_crop(image).resize((size, size), Image.Resampling.BILINEAR)
    if prep == "resize":
        return image.resize((size, size), Image.Resampling.BILINEAR)
    w, h = image.size  # resize-256
    scale = round(size / CROP_FRACTION) / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
    left, top = (image.size[0] - size) // 2, (image.size[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def litert_features(model_file, files, preps):
    """{(prep, tap name): (len(files), 2, C) float32}, views: the photo and its horizontal flip."""
    interpreter = Interpreter(model_path=str(model_file), experimental_preserve_all_tensors=True, num_threads=1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    if source["dtype"] != np.uint8:
        raise SystemExit(f"{model_file}: this script feeds uint8 bytes; the input is {source['dtype']}")
    size = int(source["shape"][1])
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    taps = {}
    for op in interpreter._get_ops_details():
        for index in op["outputs"]:
            shape = tuple(tensors[index]["shape"])
            if (len(shape) == 4 and shape[1:3] == (1, 1)) or len(shape) == 2:
                taps[f"{op['op_name']} {tensors[index]['name'].split(';')[0]} ({shape[-1]})"] = index
    out = {(prep, tap): [] for prep in preps for tap in taps}
    for path in files:
        photo = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        for prep in preps:
            for view in (photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)):
                interpreter.set_tensor(source["index"], np.asarray(resized(view, prep, size), dtype=np.uint8)[None])
                interpreter.invoke()
                for tap, index in taps.items():
                    scale, zero_point = tensors[index]["quantization"]
                    value = interpreter.get_tensor(index).reshape(-1).astype(np.float32)
                    out[prep, tap].append((value - zero_point) * scale if scale else value)
    return {key: np.stack(values).reshape(len(files), 2, -1) for key, values in out.items()}


def scores(x, y, train, scaled):
    """Val accuracy trained on the photos, on photos + flips; 5-fold CV accuracy on all photos (no flips)."""
    make = (lambda: make_pipeline(StandardScaler(), LogisticRegression())) if scaled else LogisticRegression
    val = ~train
    photos = make().fit(x[train, 0], y[train]).score(x[val, 0], y[val])
    flips = make().fit(np.concatenate([x[train, 0], x[train, 1]]), np.concatenate([y[train], y[train]]))
    return photos, flips.score(x[val, 0], y[val]), cross_val_score(make(), x[:, 0], y, cv=5).mean()


def main():
    default_shared = os.environ.get("TINYNET_SHARED", Path(__file__).resolve().parents[2] / "shared")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(default_shared))
    parser.add_argument("--model", type=Path, nargs="*")
    parser.add_argument("--preps", default="tf-crop,resize,resize-256")
    args = parser.parse_args()
    weights = args.shared / "weights"
    models = args.model or [weights / "tqminlo_mobilenetv3_by_c" / "v3-large-minimalistic_224_1.0_uint8.tflite",
                            weights / "coral_test_data" / "mobilenet_v2_1.0_224_quant.tflite"]
    root = args.shared / "images" / "flowers5"
    files = sorted(p for p in root.glob("*/*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    classes = sorted({p.parent.name for p in files})
    y = np.array([classes.index(p.parent.name) for p in files])
    train = np.array([p.parent.parent.name == "train" for p in files])
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # the defaults' 100 iterations, as the issue ran them
    print(f"load average: {os.getloadavg()[0]:.2f}; flowers5: {train.sum()} train, {(~train).sum()} val photos")
    for model_file in models:
        print(f"\n{model_file.name}: LogisticRegression() (C=1, lbfgs, 100 iterations), LiteRT builtin kernels\n")
        print("| prep | tap | features | val, photos | val, photos + flips | 5-fold CV, all 200 |\n|---|---|---|---|---|---|")
        for (prep, tap), x in litert_features(model_file, files, args.preps.split(",")).items():
            if x.shape[2] <= 1 or "RESHAPE" in tap or "SOFTMAX" in tap:
                continue
            for scaled in (False, True):
                cells = " | ".join(f"{v:.3f}" for v in scores(x, y, train, scaled))
                print(f"| {prep} | {tap} | {'StandardScaler' if scaled else 'raw'} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
