"""tinynet against ONNX Runtime, LiteRT and PyTorch on MobileNet V1/V2/V3-Large/V3-Small, same weights.

    python bench/models.py                         # every model, batch 1 and 8, 1 and 2 threads
    python bench/models.py --models mobilenet_v2 --batches 1 --threads 2 --rounds 9

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
  rounds, and tinynet's median divided by each peer's and by the best peer's. (The workers, the
  alternation and the table are bench/timing.py's, shared with detect.py and detect_tflite.py.)
- ``--contention N`` starts N busy neighbour processes (``while True: pass``) before the workers and
  stops them after: the situation of a program that shares the machine.
- ``--variant NAME:VAR=VALUE,...`` adds a tinynet worker "tinynet[NAME]" with those environment
  variables, alternated with the others like any engine: an A/B of a setting in one run.
The load average is printed before and after each table: other work on the machine shows there.
Peers that are not installed are skipped with a note (pip install -e .[bench]).
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import timing  # noqa: E402  (bench/, on the path just above)

ARCHS = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
ENGINES = ["tinynet", "onnxruntime", "litert", "torch"]
TOLERANCE = 1e-4
BUSY_LOOP = "while True: pass"


def make_runner(engine, threads):
    """The worker's ``make`` (bench/timing.serve): case {"arch", "batch"} -> (run, logits)."""
    import engines
    import tinynet

    return lambda case: engines.make(engine, tinynet.create(case["arch"]), case["batch"], threads)


def parse_variant(text):
    """"NAME:VAR=VALUE,..." -> ("tinynet[NAME]", {VAR: VALUE, ...})."""
    name, _, settings = text.partition(":")
    pairs = [item.partition("=") for item in settings.split(",") if item]
    if not name or not pairs or any(not var or not eq for var, eq, _ in pairs):
        raise SystemExit(f"--variant {text!r}: expected NAME:VAR=VALUE[,VAR=VALUE...]")
    return f"tinynet[{name}]", {var: value for var, _, value in pairs}


def load_average():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


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
        return timing.serve(make_runner(args.worker, args.threads[0]))

    import engines

    missing = {e: why for e, why in engines.available().items() if why and e in args.engines}
    for e, why in missing.items():
        print(f"note: skipping {e}: {why}")
    names = [e for e in args.engines if e not in missing]
    if "tinynet" not in names:
        raise SystemExit("tinynet itself must be one of the engines")
    print(f"# {' '.join(sys.argv)}")
    cases = [{"arch": a, "batch": b} for a in args.models for b in args.batches]
    commands = {e: (lambda threads, e=e: timing.worker_command(__file__, e, threads)) for e in names}
    for name, env in dict(parse_variant(v) for v in args.variant).items():  # tinynet under other settings
        settings = [f"{var}={value}" for var, value in env.items()]
        commands[name] = lambda threads, s=settings: ["env", *s, *timing.worker_command(__file__, "tinynet", threads)]
    check = lambda workers, case: timing.check_outputs(workers, case, TOLERANCE, f"{case['arch']} batch {case['batch']}")
    describe = lambda case, threads: {"model": case["arch"].replace("mobilenet_", ""), "batch": str(case["batch"]),
                                      "threads": str(threads)}
    print(f"# {load_average()} before", flush=True)
    neighbours = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.contention)]
    try:
        timing.run_all(commands, cases, args.threads, args.rounds,
                       lambda case: args.runs if case["batch"] == 1 else max(2, args.runs // 3), args.gap, describe,
                       check)
    finally:
        for neighbour in neighbours:
            neighbour.kill()
            neighbour.wait()
    print(f"# {load_average()} after", flush=True)


if __name__ == "__main__":
    main()
