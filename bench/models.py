"""tinynet against ONNX Runtime, LiteRT and PyTorch on MobileNet V1/V2/V3-Large/V3-Small, same weights.

    python bench/models.py                         # every model, batch 1 and 8, 1 and 2 threads
    python bench/models.py --models mobilenet_v2 --batches 1 --threads 2 --rounds 9
    python bench/models.py --batches 1 --threads 2 --contention 1     # with one busy neighbour process
    python bench/models.py --engines tinynet litert --variant fixed:TINYNET_ADAPT_THREADS=0   # A/B of a setting

Fairness:
- Same weights and the same function: every peer's model is exported from the tinynet model
  (``tinynet.create(arch)``, seed 0) by bench/exporters.py, and the logits of every engine are
  checked against tinynet's before anything is timed (max error <= 1e-4 of the largest logit).
- Each engine runs in its own worker process (so no two thread pools share a process: OpenMP,
  OpenBLAS and ONNX Runtime threads spinning next to each other ruin 2-thread figures), and only
  one worker works at a time.
- Engines alternate: each round visits the (model, batch) pairs in a shuffled order and, for each,
  the engines in a shuffled order; a worker runs ``--runs`` timed forwards per visit after a sleep
  that lets the previous engine's threads go idle. Reported: the median (and p10-p90) over all
  rounds, and tinynet's median divided by each peer's.
- ``--contention N`` starts N busy neighbour processes (``while True: pass``) before the workers and
  stops them after: the situation of a program that shares the machine.
- ``--variant NAME:VAR=VALUE,...`` adds a tinynet worker "tinynet[NAME]" with those environment
  variables, alternated with the others like any engine: an A/B of a setting in one run.
The load average is printed before and after each table: other work on the machine shows there.
Peers that are not installed are skipped with a note (pip install -e .[bench]).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

ARCHS = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
ENGINES = ["tinynet", "onnxruntime", "litert", "torch"]
TOLERANCE = 1e-4


def worker(engine, threads):
    """Serve requests on stdin, one JSON object per line: {"arch", "batch", "runs"} -> {"times"} or
    {"arch", "batch", "logits": true} -> {"logits"}."""
    import engines
    import tinynet

    runners = {}
    for line in sys.stdin:
        request = json.loads(line)
        key = (request["arch"], request["batch"])
        if key not in runners:
            runners[key] = engines.make(engine, tinynet.create(key[0]), key[1], threads)
            for _ in range(3):  # first runs: compilation, allocation, thread start
                runners[key][0]()
        run, logits = runners[key]
        if request.get("logits"):
            reply = {"logits": np.asarray(logits(), np.float64).tolist()}
        else:
            times = []
            for _ in range(request["runs"]):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            reply = {"times": times}
        print(json.dumps(reply), flush=True)


BUSY_LOOP = "while True: pass"


class Worker:
    """A worker process for one engine and thread count, with extra environment variables ``env``."""

    def __init__(self, engine, threads, env=None):
        self.engine = engine
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", engine, "--threads", str(threads)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, **(env or {})})

    def ask(self, **request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.engine} worker died (see its error above)")
        return json.loads(line)

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def check_logits(workers, arch, batch):
    """Every engine computes the same logits as tinynet (exporter and input-layout errors show here)."""
    reference = np.array(workers["tinynet"].ask(arch=arch, batch=batch, logits=True)["logits"])
    for name, w in workers.items():
        logits = np.array(w.ask(arch=arch, batch=batch, logits=True)["logits"])
        err = np.abs(logits - reference).max() / np.abs(reference).max()
        if not err <= TOLERANCE:
            raise SystemExit(f"{name} {arch} batch {batch}: logits differ from tinynet's by {err:.2g} (relative)")


def parse_variant(text):
    """"NAME:VAR=VALUE,..." -> ("tinynet[NAME]", {VAR: VALUE, ...})."""
    name, _, settings = text.partition(":")
    pairs = [item.partition("=") for item in settings.split(",") if item]
    if not name or not pairs or any(not var or not eq for var, eq, _ in pairs):
        raise SystemExit(f"--variant {text!r}: expected NAME:VAR=VALUE[,VAR=VALUE...]")
    return f"tinynet[{name}]", {var: value for var, _, value in pairs}


def load_average():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(engine_names, variants, archs, batches, threads, rounds, runs, gap):
    """{(arch, batch, engine): [seconds, ...]} for one thread count; ``variants``: {name: env} of tinynet workers."""
    workers = {e: Worker(e, threads) for e in engine_names}
    workers.update({name: Worker("tinynet", threads, env) for name, env in variants.items()})
    try:
        pairs = [(a, b) for a in archs for b in batches]
        for arch, batch in pairs:
            check_logits(workers, arch, batch)
        times = {}
        for _ in range(rounds):
            random.shuffle(pairs)
            for arch, batch in pairs:
                order = list(workers)
                random.shuffle(order)
                for name in order:
                    time.sleep(gap)
                    n = runs if batch == 1 else max(2, runs // 3)
                    times.setdefault((arch, batch, name), []).extend(workers[name].ask(arch=arch, batch=batch, runs=n)["times"])
        return times
    finally:
        for w in workers.values():
            w.close()


def report(times, engine_names, archs, batches, threads):
    """A markdown table: median ms (p10-p90) per engine, and tinynet / peer."""
    peers = [e for e in engine_names if e != "tinynet"]
    head = ["model", "batch", "threads"] + [f"{e} ms" for e in engine_names] + [f"tinynet/{p}" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arch in archs:
        for batch in batches:
            med = {e: np.median(times[(arch, batch, e)]) * 1e3 for e in engine_names}
            cells = [arch.replace("mobilenet_", ""), str(batch), str(threads)]
            for e in engine_names:
                p10, p90 = np.percentile(times[(arch, batch, e)], [10, 90]) * 1e3
                cells.append(f"{med[e]:.2f} ({p10:.2f}-{p90:.2f})")
            cells += [f"**{med['tinynet'] / med[p]:.2f}**" for p in peers]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=ARCHS, choices=ARCHS)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--engines", nargs="+", default=ENGINES, choices=ENGINES)
    parser.add_argument("--rounds", type=int, default=7, help="visits per (model, batch, engine)")
    parser.add_argument("--runs", type=int, default=10, help="timed forwards per visit at batch 1 (a third at batch 8)")
    parser.add_argument("--gap", type=float, default=0.1, help="seconds of idle before each visit")
    parser.add_argument("--contention", type=int, default=0, metavar="N",
                        help="busy neighbour processes to run during the measurement")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:VAR=VALUE,...",
                        help="also time tinynet with these environment variables, as engine tinynet[NAME]")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.threads[0])

    import engines

    missing = {e: why for e, why in engines.available().items() if why and e in args.engines}
    for e, why in missing.items():
        print(f"note: skipping {e}: {why}")
    names = [e for e in args.engines if e not in missing]
    if "tinynet" not in names:
        raise SystemExit("tinynet itself must be one of the engines")
    variants = dict(parse_variant(v) for v in args.variant)
    print(f"# {' '.join(sys.argv)}")
    print(f"# {load_average()} before", flush=True)
    neighbours = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.contention)]
    try:
        for threads in args.threads:
            times = measure(names, variants, args.models, args.batches, threads, args.rounds, args.runs, args.gap)
            print(report(times, names + list(variants), args.models, args.batches, threads), flush=True)
            print(f"# {load_average()}", flush=True)
    finally:
        for neighbour in neighbours:
            neighbour.kill()
            neighbour.wait()


if __name__ == "__main__":
    main()
