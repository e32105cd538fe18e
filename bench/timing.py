"""Engines timed side by side, each in a worker process of its own, alternated over rounds (models.py, detect.py,
detect_tflite.py).

A benchmark script is both the parent and its workers: run as ``script --worker ENGINE --threads N ...`` it calls
``serve(make)``, where ``make(case)`` builds that engine's ``(run, output)`` callables for one case (a JSON object:
{"arch", "batch"}, {"model"}, ...). The parent starts one ``Worker`` per engine (with the interpreter that engine
needs: the peers of detect.py live in another virtual environment), and ``alternate`` asks them for timings:

- one engine per process, one process working at a time: no two thread pools share a process or spin side by side;
- each round visits the cases in a shuffled order and, for each, the engines in a shuffled order, after a pause
  (``gap``) that lets the previous engine's threads go idle, so that drifts in machine load fall on every engine;
- each case is run for a while (``WARM_SECONDS``) before its first timed call: right after a pause, waking a thread
  pool on this VM costs milliseconds (bench/README.md, "How idle threads wait").

``table`` prints medians (p10-p90) over all rounds and tinynet's median over each peer's and over the best peer's.
"""
import json
import random
import subprocess
import sys
import time

import numpy as np

WARM_CALLS = 3  # first calls: compilation, allocation, thread start
WARM_SECONDS = 0.05  # then at least this long before each visit's timed calls


def serve(make):
    """Worker side: answer requests on stdin, one JSON object per line.
    {"case": case, "runs": n} -> {"times": [seconds, ...]};  {"case": case, "output": true} -> {"output": [...]}."""
    runners = {}
    for line in sys.stdin:
        request = json.loads(line)
        key = json.dumps(request["case"], sort_keys=True)
        if key not in runners:
            runners[key] = make(request["case"])
            for _ in range(WARM_CALLS):
                runners[key][0]()
        run, output = runners[key]
        if request.get("output"):
            reply = {"output": np.asarray(output(), np.float64).ravel().tolist()}
        else:
            start = time.perf_counter()
            while time.perf_counter() - start < WARM_SECONDS:
                run()
            times = []
            for _ in range(request["runs"]):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            reply = {"times": times}
        print(json.dumps(reply), flush=True)


class Worker:
    """A worker process for one engine and thread count: ``command`` starts it (``script --worker ...``)."""

    def __init__(self, engine, command):
        self.engine = engine
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, **request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.engine} worker died (its error is above)")
        return json.loads(line)

    def output(self, case):
        return np.array(self.ask(case=case, output=True)["output"])

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def check_outputs(workers, case, tolerance, what):
    """Every engine computes tinynet's outputs for ``case`` within ``tolerance`` of their largest absolute value (an
    exporter or input-layout error shows here, before anything is timed)."""
    reference = workers["tinynet"].output(case)
    for name, worker in workers.items():
        err = np.abs(worker.output(case) - reference).max() / np.abs(reference).max()
        if not err <= tolerance:
            raise SystemExit(f"{name} {what}: outputs differ from tinynet's by {err:.2g} (relative)")


def alternate(workers, cases, rounds, runs, gap):
    """{(case index, engine): [seconds, ...]}: ``rounds`` visits of every (case, engine), ``runs(case)`` timed calls
    per visit, in shuffled orders."""
    times = {}
    order = list(range(len(cases)))
    for _ in range(rounds):
        random.shuffle(order)
        for i in order:
            engines = list(workers)
            random.shuffle(engines)
            for name in engines:
                time.sleep(gap)
                times.setdefault((i, name), []).extend(workers[name].ask(case=cases[i], runs=runs(cases[i]))["times"])
    return times


def table(times, engines, rows):
    """A markdown table. ``rows``: [(cells, case index)], ``cells`` {column: text} naming the case (the same columns
    in every row). Per engine its median ms (p10-p90), then tinynet's median over each other engine's and over the
    best peer's; engines named tinynet[...] (tinynet under other settings) are not peers."""
    others = [e for e in engines if e != "tinynet"]
    peers = [e for e in others if not e.startswith("tinynet")]
    head = list(rows[0][0]) + [f"{e} ms" for e in engines] + [f"tinynet / {p}" for p in others]
    if len(peers) > 1:
        head.append("tinynet / best peer")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cells, i in rows:
        median = {e: np.median(times[(i, e)]) * 1e3 for e in engines}
        row = list(cells.values())
        for e in engines:
            p10, p90 = np.percentile(times[(i, e)], [10, 90]) * 1e3
            row.append(f"{median[e]:.2f} ({p10:.2f}-{p90:.2f})")
        row += [f"{median['tinynet'] / median[p]:.2f}" for p in others]
        if len(peers) > 1:
            row.append(f"**{median['tinynet'] / min(median[p] for p in peers):.2f}**")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def run_all(commands, cases, threads_list, rounds, runs, gap, describe, check=None):
    """For each thread count: start ``commands(engine, threads)`` workers, ``check(workers, case)`` each case, time
    them alternately and print the table (``describe(case, threads)`` -> its naming cells). ``commands``: {engine:
    function of threads -> argv}."""
    for threads in threads_list:
        workers = {engine: Worker(engine, command(threads)) for engine, command in commands.items()}
        try:
            if check is not None:
                for case in cases:
                    check(workers, case)
            times = alternate(workers, cases, rounds, runs, gap)
        finally:
            for worker in workers.values():
                worker.close()
        print(table(times, list(commands), [(describe(case, threads), i) for i, case in enumerate(cases)]), flush=True)


def worker_command(script, engine, threads, python=None, extra=()):
    """argv of ``script``'s worker for ``engine`` at ``threads`` (in ``python``, default this interpreter)."""
    return [python or sys.executable, str(script), "--worker", engine, "--threads", str(threads), *extra]
