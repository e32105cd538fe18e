"""Where a detector's or a segmentation model's time goes: each kernel call of its plan (backbone layers and head
nodes), its postprocess and its preprocessing, in this process.

    python bench/graph_steps.py [MODEL] [--photo IMAGE] [--threads 2] [--runs 50] [--top 20]

MODEL: a weight file or a stored name (default: the shared SSDLite320; the shared LR-ASPP, or a DeepLabv3 .pth,
for segmentation). Every step of the plan ``forward`` uses is wrapped in a timer, and ``forward`` runs ``--runs``
times on the photo: the table gives each step's best time (a step's minimum over the runs is its cost without the
noise of other jobs), its node or layer, its kernel and the shape it reads, then the sums per kernel and the medians
of the whole forward, the postprocess (detection: at the default score threshold and at the CLI's 0.3;
segmentation: the mask at the photo's size from the low-resolution logits, as ``segment``) and the preprocessing.
A segmentation model's output node writes a new array per run (tinynet.graph.GraphPlan ``fresh``), outside the
plan's steps: its time (the final resize to the input size) is the forward's minus the steps'. Times of kernels
called one after another add up to less than a forward at 2 threads: the gaps (fork and join of the thread pool,
Python between calls) are in the forward's median only.
"""
import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
SHARED = HERE.parents[1] / "shared"
DEFAULT_MODEL = SHARED / "golden_dense" / "tv_ssdlite320_mobilenet_v3_large.pth"
DEFAULT_PHOTO = SHARED / "images" / "grace_hopper.jpg"


def timed_plan(model, x):
    """The plan ``model.forward(x)`` uses, its steps wrapped to record their times: (plan, [(name, kernel, args)],
    times) with times[i] the list of step i's durations."""
    model.forward(x)
    plan = next(plans[0] for key, plans in model._idle_plans.items() if plans)
    names = [("backbone", n) for n in plan.backbone.step_layers] + [("head", n) for n in plan.step_nodes]
    steps = [(where, name, kernel, args) for (where, name), (kernel, args) in
             zip(names, list(plan.backbone.steps) + list(plan.steps))]
    times = [[] for _ in steps]

    def timer(i, kernel):
        def run(*args):
            start = time.perf_counter()
            kernel(*args)
            times[i].append(time.perf_counter() - start)
        run.__name__ = getattr(kernel, "__name__", str(kernel))
        return run

    n_backbone = len(plan.backbone.steps)
    plan.backbone.steps = [(timer(i, k), a) for i, (k, a) in enumerate(plan.backbone.steps)]
    plan.steps = [(timer(n_backbone + i, k), a) for i, (k, a) in enumerate(plan.steps)]
    return steps, times


def best_ms(function, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times), 1e3 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=str(DEFAULT_MODEL), help="weight file or stored model name")
    parser.add_argument("--photo", default=str(DEFAULT_PHOTO))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--top", type=int, default=20, help="slowest steps listed")
    args = parser.parse_args()
    import tinynet

    model = tinynet.load(args.model)
    model.threads = args.threads
    segmentation = model.task == "segmentation"
    prepare = model.preprocess_with_size if segmentation else model.preprocess_with_geometry
    x, geometry = prepare(args.photo)
    steps, times = timed_plan(model, x)
    forward = []
    for _ in range(args.runs):
        start = time.perf_counter()
        out = model.forward(x)
        forward.append(time.perf_counter() - start)
    best = [1e6 * min(t) for t in times]
    print(f"# {model.arch}, {args.threads} threads, {args.runs} runs; step times: best, us")
    print("| step | part | node or layer | kernel | reads | best us |")
    print("|---|---|---|---|---|---|")
    for i in sorted(range(len(steps)), key=lambda i: -best[i])[:args.top]:
        where, name, kernel, kernel_args = steps[i]
        reads = next((a.shape for a in kernel_args if isinstance(a, np.ndarray)), "")  # the network input: ""
        print(f"| {i} | {where} | {name} | {getattr(kernel, '__name__', kernel)} | {reads} | "
              f"{best[i]:.1f} |")
    by_kernel = defaultdict(lambda: [0, 0.0])
    for (where, _, kernel, _), b in zip(steps, best):
        entry = by_kernel[(where, getattr(kernel, "__name__", str(kernel)))]
        entry[0] += 1
        entry[1] += b
    print("\n| part | kernel | steps | sum of best us |")
    print("|---|---|---|---|")
    for (where, name), (count, total) in sorted(by_kernel.items(), key=lambda kv: -kv[1][1]):
        print(f"| {where} | {name} | {count} | {total:.0f} |")
    print(f"\nforward: median {1e3 * np.median(forward):.2f} ms, best {1e3 * min(forward):.2f} ms; "
          f"sum of the steps' best: {sum(best) / 1e3:.2f} ms")
    if segmentation:
        from tinynet.tasks.segmentation import mask_from_logits
        logits = model.low_res_logits(x)[0]
        low, median = best_ms(lambda: mask_from_logits(logits, *geometry, **dict(model.resize)), max(3, args.runs // 5))
        print(f"mask at {geometry[0]}x{geometry[1]} from the logits: best {low:.2f} ms, median {median:.2f} ms")
    else:
        one = {name: array[0] for name, array in out.items()}
        for threshold in (None, 0.3):
            low, median = best_ms(lambda: model.detections(one, geometry, threshold), max(3, args.runs // 5))
            print(f"postprocess at score threshold {threshold or 'default'}: best {low:.2f} ms, median {median:.2f} ms")
    low, median = best_ms(lambda: prepare(args.photo), max(3, args.runs // 5))
    print(f"preprocess of {Path(args.photo).name}: best {low:.2f} ms, median {median:.2f} ms")


if __name__ == "__main__":
    main()
