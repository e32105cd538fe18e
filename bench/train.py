"""`tinynet train`: wall time of a first run and of a re-run with cached features, and val accuracy on
two datasets, head only and with --fine-tune, beside scikit-learn's LogisticRegression on the same features.

    python bench/train.py [--shared ../shared] [--model FILE] [--fine-tune 1] [--sklearn-python PYTHON]

Datasets: <shared>/images/flowers5 (its train/ and val/ folders) and "imagenet6", six coarse groups of
ImageNet classes (bird, dog, food, insect/spider, reptile, sea life: 455 photos) from
<shared>/images/imagenet_val_1300, split by tinynet's default stratified 20% (seed 0): a second dataset,
so that nothing is tuned to flowers5's split.

Timing: `tinynet warmup` first (compiling is excluded), then `tinynet train` on flowers5 twice in a fresh
store, each in its own process: the first run computes every view's features, the second finds them
cached. The load average is printed: on a shared machine the figures move with it.

scikit-learn (not a tinynet dependency) runs in another interpreter, ``--sklearn-python`` (one with
scikit-learn installed); its rows are left out without it. It is fitted on exactly the features
tinynet.train used (read back from the feature cache): LogisticRegression on StandardScaler features,
balanced class weights, C=1 (its default), and LogisticRegressionCV over the C equivalent to
tinynet's L2 grid, both on the images only and on every augmented view.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GROUPS = {"bird": [(7, 24), (80, 100), (127, 146)], "dog": [(151, 268)], "food": [(924, 969)],
          "insect_spider": [(70, 79), (300, 326)], "reptile": [(33, 68)], "sea_life": [(0, 6), (107, 126)]}

SKLEARN = r"""
import json, sys
import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
d = np.load(sys.argv[1])
x, y, xv, yv, n_views, l2_grid = d["x"], d["y"], d["xv"], d["yv"], int(d["n_views"]), d["l2_grid"]
rows = {"images only": np.arange(len(y)) % n_views == 0, "all views": np.ones(len(y), bool)}
out = {}
for name, keep in rows.items():
    # tinynet's loss is mean CE + l2/2 |W|^2; scikit-learn's is C * sum CE + 1/2 |W|^2: C = 1 / (l2 n).
    cs = sorted(1.0 / (l2_grid * keep.sum()))
    models = {"C=1": LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000),
              "CV": LogisticRegressionCV(Cs=cs, cv=5, class_weight="balanced", max_iter=5000)}
    for label, model in models.items():
        fitted = make_pipeline(StandardScaler(), model).fit(x[keep], y[keep])
        out[f"{label}, {name}"] = float(fitted.score(xv, yv))
print(json.dumps(out))
"""


def imagenet6(shared, dest):
    """Folder per group of symlinks to the ImageNet val photos whose class falls in it."""
    val = shared / "images" / "imagenet_val_1300"
    for line in (val / "dataset.txt").read_text().splitlines():
        if not line.strip():
            continue
        name, label = (part.strip() for part in line.split(","))
        for group, ranges in GROUPS.items():
            if any(lo <= int(label) <= hi for lo, hi in ranges):
                (dest / group).mkdir(parents=True, exist_ok=True)
                (dest / group / Path(name).name).symlink_to(val / name)
    return dest


def timed_cli(args, env):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tinynet", *args], env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"tinynet {' '.join(args)} failed: {done.stderr.strip()}")
    return time.monotonic() - started, done.stdout


def timing(flowers, model, home):
    env = {**os.environ, "TINYNET_HOME": str(home), "TINYNET_PROGRESS": "0"}
    timed_cli(["warmup"], env)
    rows = []
    for run in ("first run", "cached re-run"):
        seconds, out = timed_cli(["train", str(flowers), "--model", model, "--out", "bench_flowers", "--json"], env)
        report = json.loads(out)
        rows.append((run, seconds, report["features"], report["fit"]["l2"], report["val"]["accuracy"]))
    return rows


def sklearn_scores(python, result, data, model):
    """scikit-learn's val accuracy on the features tinynet.train fitted its head on."""
    from tinynet import head, train as training
    names, files = training.class_folders(data)
    train_items, val_items = (files["train"], files["val"]) if "train" in files else \
        training.stratified_split(files["all"], 0.2, 0)
    views = result.report["views"]
    cache = training.FeatureCache(model)
    x, y, _ = cache.features(train_items, views, progress=False)
    xv, yv, _ = cache.features(val_items, ["orig"], progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "f.npz", x=x, y=y, xv=xv, yv=yv, n_views=len(views), l2_grid=np.array(head.L2_GRID))
        done = subprocess.run([python, "-c", SKLEARN, str(Path(tmp) / "f.npz")], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"scikit-learn run failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def main():
    default_shared = os.environ.get("TINYNET_SHARED", Path(__file__).resolve().parents[2] / "shared")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(default_shared))
    parser.add_argument("--model", help="base model (default: the shared V3-Large-minimalistic uint8 .tflite)")
    parser.add_argument("--fine-tune", type=int, default=1, metavar="N", help="blocks for the --fine-tune rows (0: none)")
    parser.add_argument("--sklearn-python", metavar="PYTHON", help="an interpreter with scikit-learn, for its rows")
    parser.add_argument("--no-timing", action="store_true", help="accuracy only")
    args = parser.parse_args()
    model_file = args.model or str(args.shared / "weights" / "tqminlo_mobilenetv3_by_c" / "v3-large-minimalistic_224_1.0_uint8.tflite")
    flowers = args.shared / "images" / "flowers5"
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores; figures move with it)")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ["TINYNET_HOME"] = str(home)
        if not args.no_timing:
            print("\n| flowers5, default settings | wall s | features computed / cached | chosen l2 | val accuracy |\n|---|---|---|---|---|")
            for run, seconds, features, l2, accuracy in timing(flowers, model_file, home):
                print(f"| {run} | {seconds:.1f} | {features['computed']} / {features['cached']} | {l2:g} | {accuracy:.3f} |")
        import tinynet
        from tinynet.train import train
        model = tinynet.load(model_file)
        print("\n| dataset | head | val accuracy |\n|---|---|---|")
        for name, data in (("flowers5", flowers), ("imagenet6", imagenet6(args.shared, Path(tmp) / "imagenet6"))):
            result = train(data, model, progress=False)
            fit = result.report["fit"]
            print(f"| {name} | tinynet, defaults (l2 {fit['l2']:g} by CV) | {result.report['val']['accuracy']:.3f} |", flush=True)
            if args.fine_tune:
                tuned = train(data, model, progress=False, fine_tune=args.fine_tune)
                print(f"| {name} | tinynet --fine-tune {args.fine_tune} | {tuned.report['val']['accuracy']:.3f} |", flush=True)
            if args.sklearn_python:
                for label, accuracy in sklearn_scores(args.sklearn_python, result, data, model).items():
                    print(f"| {name} | scikit-learn LogisticRegression {label} | {accuracy:.3f} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
