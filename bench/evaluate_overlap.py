"""Does decoding images in threads while the model runs speed up ``tinynet.evaluate``?

Runs evaluate on a labelled folder with several (decode workers, kernel threads) settings, interleaved
round after round so that background load hits every setting alike, and prints the best and median
images/s of each. Usage:

  python bench/evaluate_overlap.py [MODEL] [LABELS_FILE] [--rounds 3] [--batch 32]

Defaults: ../shared/golden/tv_mobilenet_v3_small.pth on ../shared/images/imagenet_val_1300/dataset.txt
(TINYNET_SHARED overrides the shared folder, as in the tests).
"""
import argparse
import os
import statistics
from pathlib import Path

import numba

import tinynet
from tinynet.evaluate import evaluate

SHARED = Path(os.environ.get("TINYNET_SHARED", Path(__file__).resolve().parents[2] / "shared"))
# (decode workers, kernel threads; None = all cores)
SETTINGS = [(0, None), (1, None), (2, None), (1, 1), (2, 1)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=SHARED / "golden/tv_mobilenet_v3_small.pth")
    parser.add_argument("labels", nargs="?", default=SHARED / "images/imagenet_val_1300/dataset.txt")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    print(f"{numba.config.NUMBA_NUM_THREADS} cores, threading layer {numba.config.THREADING_LAYER}, batch {args.batch}")
    models = {}
    for workers, threads in SETTINGS:
        model = tinynet.load(args.model)
        model.threads = threads
        evaluate(model, args.labels, batch_size=args.batch, workers=workers)  # warm-up: JIT, plans, file cache
        models[workers, threads] = model
    rates = {setting: [] for setting in SETTINGS}
    for _ in range(args.rounds):
        for (workers, threads), model in models.items():
            result = evaluate(model, args.labels, batch_size=args.batch, workers=workers)
            rates[workers, threads].append(result["images_per_second"])
    for (workers, threads), values in rates.items():
        print(f"workers={workers} threads={threads or 'all'}: best {max(values):6.1f}  median {statistics.median(values):6.1f} images/s")


if __name__ == "__main__":
    main()
