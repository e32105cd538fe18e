"""Images/s of one `tinynet classify` process against tinynet.distributed on a LocalCluster of 1 and 2 workers.

    python bench/distributed.py --model PATH_OR_NAME [--images DIR] [--limit N] [--rounds R]

Each engine runs in its own process (a new interpreter per run, cluster start-up included, as a user meets it),
the runs alternated round by round; the table shows the median of each and its ratio to the single process.
Start-up (spawning workers, loading the model, the workers' first kernel loads) is part of every figure,
so small --limit values favour the single process.
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


def single_process(model, files):
    return [sys.executable, "-m", "tinynet", "classify", "--json", "--model", model, *files]


def cluster(model, files, workers, out):
    code = ("import sys; from tinynet.distributed import classify_files; "
            "classify_files(sys.argv[3:], sys.argv[1], sys.argv[2], workers=%d, progress=False)" % workers)
    return [sys.executable, "-c", code, model, out, *files]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a weight file or store name every worker can read")
    parser.add_argument("--images", type=Path, default=SHARED / "images" / "imagenet_val_1300" / "data")
    parser.add_argument("--limit", type=int, default=1300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files = sorted(str(p) for p in args.images.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:args.limit]
    if not files:
        raise SystemExit(f"no images under {args.images}")
    engines = {"tinynet classify (1 process)": lambda out: single_process(args.model, files),
               "LocalCluster, 1 worker": lambda out: cluster(args.model, files, 1, out),
               "LocalCluster, 2 workers": lambda out: cluster(args.model, files, 2, out)}
    seconds = {name: [] for name in engines}
    for _ in range(args.rounds):
        for name, command in engines.items():
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                subprocess.run(command(str(Path(out) / "predictions.parquet")), check=True, capture_output=True)
                seconds[name].append(time.perf_counter() - start)
    base = statistics.median(seconds["tinynet classify (1 process)"])
    print(f"{len(files)} images, {args.rounds} rounds, median of each\n")
    print(f"| engine | seconds | images/s | speed vs 1 process |\n|---|---|---|---|")
    for name, times in seconds.items():
        median = statistics.median(times)
        print(f"| {name} | {median:.1f} | {len(files) / median:.0f} | {base / median:.2f} |")


if __name__ == "__main__":
    main()
