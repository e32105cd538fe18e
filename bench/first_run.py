"""The first and the warm start of `tinynet classify IMAGE [-m MODEL]`, as a fresh install sees them.

    python bench/first_run.py                                   # 3 runs of each model below
    python bench/first_run.py --models default uint8 --runs 1   # some of them
    python bench/first_run.py --against /work/main/.venv/bin/python --runs 2   # A/B with another checkout

Models (``--models``, default all): ``default``, `tinynet classify photo.jpg` with no --model (the store's
mobilenet_v3_large, imported into a temporary $TINYNET_HOME from the torchvision file the ``float`` case runs);
``float``, that torchvision .pth file; ``uint8``, a quantized uint8 .tflite (the int8 path, per-tensor weights);
``int8``, an int8 .tflite with per-channel weights. Each run gives a new empty NUMBA_CACHE_DIR to a cold
`tinynet classify` (it compiles the kernels), waits ``--settle`` seconds (a cold run may leave a niced background
compile behind, tinynet.warmup.fusion_ready), then times two warm runs on the same cache. With ``--against``, the
runs alternate between the interpreters (each with its own tinynet installed). Reported per interpreter and model:
median wall seconds (min-max) and the CPU-seconds of the process and the children it waited for (the compile
workers; not the detached background compile): on a busy machine the CPU figure moves much less than the wall
time. The load average is printed before and after.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"
IMAGE = SHARED / "images" / "grace_hopper.jpg"
FLOAT = SHARED / "golden" / "tv_mobilenet_v3_large.pth"
MODELS = {"default": None, "float": FLOAT,
          "uint8": SHARED / "weights" / "coral_test_data" / "mobilenet_v2_1.0_224_quant.tflite",
          "int8": SHARED / "weights" / "coral_test_data" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"}
DEFAULT_NAME = "mobilenet_v3_large"  # tinynet.registry.DEFAULT_MODEL


def timed(python, image, model, cache, home):
    """(wall s, CPU s) of one `tinynet classify` with NUMBA_CACHE_DIR=cache (model None: the store's default)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd: not a checkout, whose tinynet/ folder `python -m` would import instead of the interpreter's own
    subprocess.run([python, "-m", "tinynet", "classify", str(image.resolve())] +
                   ([] if model is None else ["-m", str(model.resolve())]), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cache,
                   env={**os.environ, "NUMBA_CACHE_DIR": cache, "TINYNET_PROGRESS": "0", "TINYNET_HOME": home})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def summary(values):
    values = np.array(values)
    return f"{np.median(values):.2f} ({values.min():.2f}-{values.max():.2f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="cold runs per interpreter and model (each followed by 2 warm)")
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--against", metavar="PYTHON", help="another interpreter to alternate with (A/B)")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds between the cold and the warm runs")
    args = parser.parse_args()
    pythons = [sys.executable] + ([args.against] if args.against else [])
    print(f"# {' '.join(sys.argv)}")
    print("# load average before " + ", ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    results = {(p, m): {"cold": [], "warm": []} for m in args.models for p in pythons}
    with tempfile.TemporaryDirectory(prefix="tinynet-home-") as home:
        if "default" in args.models:  # the store's default model, as `tinynet pull` would leave it
            subprocess.run([sys.executable, "-m", "tinynet", "import", str(FLOAT), "--name", DEFAULT_NAME], check=True,
                           stdout=subprocess.DEVNULL, cwd=home, env={**os.environ, "TINYNET_HOME": home})
        for _ in range(args.runs):
            for (python, model), runs in results.items():
                with tempfile.TemporaryDirectory(prefix="tinynet-cold-") as cache:
                    runs["cold"].append(timed(python, args.image, MODELS[model], cache, home))
                    time.sleep(args.settle)
                    runs["warm"] += [timed(python, args.image, MODELS[model], cache, home) for _ in range(2)]
    print("| interpreter | model | cold wall s | cold CPU s | warm wall s | warm CPU s |")
    print("|---|---|---|---|---|---|")
    for (python, model), runs in results.items():
        cells = [summary([r[i] for r in runs[kind]]) for kind in ("cold", "warm") for i in (0, 1)]
        print(f"| {python} | {model} | " + " | ".join(cells) + " |")
    print("# load average after " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
