"""The first and the warm start of `tinynet classify IMAGE -m MODEL`, as a fresh install sees them.

    python bench/first_run.py                                   # 3 runs of the README's command
    python bench/first_run.py --against /work/main/.venv/bin/python --runs 2   # A/B with another checkout

Each run gives a new empty NUMBA_CACHE_DIR to a cold `tinynet classify` (it compiles the kernels), waits
``--settle`` seconds (a cold run may leave a niced background compile behind, tinynet.warmup.fusion_ready),
then times two warm runs on the same cache. With ``--against``, the runs alternate between the interpreters
(each with its own tinynet installed). Reported per interpreter: median wall seconds (min-max) and the
CPU-seconds of the process and the children it waited for: on a busy machine the CPU figure moves much less
than the wall time. The load average is printed before and after.
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
MODEL = SHARED / "weights" / "coral_test_data" / "mobilenet_v2_1.0_224_quant.tflite"


def timed(python, image, model, cache):
    """(wall s, CPU s) of one `tinynet classify` with NUMBA_CACHE_DIR=cache."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd: not a checkout, whose tinynet/ folder `python -m` would import instead of the interpreter's own
    subprocess.run([python, "-m", "tinynet", "classify", str(image.resolve()), "-m", str(model.resolve())], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cache,
                   env={**os.environ, "NUMBA_CACHE_DIR": cache, "TINYNET_PROGRESS": "0"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def summary(values):
    values = np.array(values)
    return f"{np.median(values):.2f} ({values.min():.2f}-{values.max():.2f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="cold runs per interpreter (each followed by 2 warm)")
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--against", metavar="PYTHON", help="another interpreter to alternate with (A/B)")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds between the cold and the warm runs")
    args = parser.parse_args()
    pythons = [sys.executable] + ([args.against] if args.against else [])
    print(f"# {' '.join(sys.argv)}")
    print("# load average before " + ", ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    results = {p: {"cold": [], "warm": []} for p in pythons}
    for _ in range(args.runs):
        for python in pythons:
            with tempfile.TemporaryDirectory(prefix="tinynet-cold-") as cache:
                results[python]["cold"].append(timed(python, args.image, args.model, cache))
                time.sleep(args.settle)
                results[python]["warm"] += [timed(python, args.image, args.model, cache) for _ in range(2)]
    print("| interpreter | cold wall s | cold CPU s | warm wall s | warm CPU s |")
    print("|---|---|---|---|---|")
    for python, runs in results.items():
        cells = [summary([r[i] for r in runs[kind]]) for kind in ("cold", "warm") for i in (0, 1)]
        print(f"| {python} | " + " | ".join(cells) + " |")
    print("# load average after " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
