"""Coverage-guided fuzzing of each weight-file reader: atheris (libFuzzer) when it is installed (the optional
``fuzz`` extra), else a seeded random mutation fuzzer over the same entry points.

    python tests/fuzz_readers.py TARGET CORPUS_DIR RUNS [--random]

TARGET is one of ENTRY_POINTS; CORPUS_DIR holds the seed files (tests/test_fuzz_readers.py writes them).
Prints one JSON line: {"engine", "executions", "crashes": [one line per crash]}. An entry point may
only return or raise a TinynetError: any other exception is a crash, and so is peak memory over 1 GB
(libFuzzer's -rss_limit_mb; the random fuzzer runs under RLIMIT_AS, where a runaway allocation becomes
a MemoryError) and an input that takes longer than 60 s (libFuzzer's -timeout).
"""
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy  # noqa: F401  (imported before instrumentation: only tinynet's own code is instrumented)
import numba  # noqa: F401

RSS_LIMIT_MB = 1024
TIMEOUT_S = 60
EDGES = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2 ** 63 - 1, 2 ** 64 - 1]
SCRATCH = None  # a temporary folder for the files entry points read: set by main()


def _file(data, name):
    path = SCRATCH / name
    path.write_bytes(data)
    return path


def torch_zip(data):
    from tinynet.formats import torch_zip
    torch_zip.read(_file(data, "f.pth"))


def safetensors(data):
    from tinynet.formats import safetensors
    safetensors.read(_file(data, "f.safetensors"))


def tflite(data):
    from tinynet.formats import tflite
    tflite.load(_file(data, "f.tflite"))


def tar(data):
    from tinynet import archive
    path = _file(data, "f.tgz")
    if archive.is_archive(path):
        archive.extract(path, lambda name: name.endswith(".tflite"), SCRATCH / "member")


def native(data):
    import tinynet
    tinynet.load(_file(data, "f.safetensors"))


ENTRY_POINTS = {f.__name__: f for f in (torch_zip, safetensors, tflite, tar, native)}


def one_input(entry, data):
    """Run ``entry`` on ``data``: None when it loads or is refused, else a one-line description of the crash."""
    from tinynet.errors import TinynetError
    try:
        entry(data)
    except TinynetError as e:
        if "\n" in str(e):
            return f"TinynetError message of several lines: {str(e)[:200]!r}"
    except Exception as e:  # noqa: BLE001 - every other exception is what the fuzzer looks for
        return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
    return None


def run_atheris(target, corpus, runs):
    """libFuzzer in a child (it exits the process when done): returns (executions, crashes)."""
    (SCRATCH / "artifacts").mkdir()
    done = subprocess.run([sys.executable, sys.argv[0], target, str(corpus), str(runs), "--atheris-child"],
                          capture_output=True, text=True, cwd=SCRATCH)
    found = re.findall(r"Done (\d+) runs", done.stderr)
    executions = int(found[-1]) if found else int(max(re.findall(r"#(\d+)", done.stderr) or ["0"], key=int))
    crashes = [line.strip() for line in done.stderr.splitlines()
               if line.startswith(("CRASH ", "==")) and ("ERROR" in line or line.startswith("CRASH"))]
    if done.returncode != 0 and not crashes:
        crashes = [f"exit status {done.returncode}: {done.stderr.strip()[-300:]}"]
    return executions, crashes


def atheris_child(target, corpus, runs):
    import atheris

    with atheris.instrument_imports(include=["tinynet"]):
        import tinynet  # noqa: F401
        from tinynet import archive, io  # noqa: F401
        from tinynet.formats import safetensors, tflite, torch_zip  # noqa: F401
    entry = ENTRY_POINTS[target]

    def test_one_input(data):
        crash = one_input(entry, data)
        if crash is not None:
            print(f"CRASH {crash}", file=sys.stderr, flush=True)
            raise RuntimeError(crash)  # libFuzzer records the input and stops

    atheris.Setup([sys.argv[0], f"-runs={runs}", f"-rss_limit_mb={RSS_LIMIT_MB}", f"-timeout={TIMEOUT_S}",
                   f"-artifact_prefix={SCRATCH / 'artifacts'}/", "-print_final_stats=1", str(corpus)],
                  test_one_input)
    atheris.Fuzz()


def mutate(rng, data):
    """``data`` after 1 to 8 random edits, most of them near the start (where headers are)."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not data:
            data += bytes([rng.randrange(256)])
        span = len(data) if rng.random() < 0.3 else min(len(data), 4096)
        at = rng.randrange(span)
        choice = rng.random()
        if choice < 0.35:
            data[at] = rng.randrange(256)
        elif choice < 0.6:
            width = rng.choice((2, 4, 8))
            data[at:at + width] = (rng.choice(EDGES) % (1 << 8 * width)).to_bytes(width, "little")
        elif choice < 0.75:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif choice < 0.9:
            del data[at:at + rng.randint(1, 64)]
        else:
            del data[at:]
    return bytes(data)


def run_random(target, corpus, runs, seed=0):
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    import tinynet  # noqa: F401
    entry, rng = ENTRY_POINTS[target], random.Random(seed)
    seeds = [p.read_bytes() for p in sorted(Path(corpus).iterdir())]
    crashes = []
    for _ in range(runs):
        crash = one_input(entry, mutate(rng, rng.choice(seeds)))
        if crash is not None:
            crashes.append(crash)
    return runs, crashes


def main(argv):
    global SCRATCH
    target, corpus, runs = argv[0], Path(argv[1]).resolve(), int(argv[2])
    if "--atheris-child" in argv:
        SCRATCH = Path.cwd()  # the parent's folder, which it removes
        return atheris_child(target, corpus, runs)
    SCRATCH = Path(tempfile.mkdtemp(prefix="tinynet-fuzz-"))
    try:
        run(target, corpus, runs, "--random" in argv)
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)


def run(target, corpus, runs, random_only):
    try:
        import atheris  # noqa: F401
        engine = "random" if random_only else "atheris"
    except ImportError:
        engine = "random"
    executions, crashes = (run_atheris if engine == "atheris" else run_random)(target, corpus, runs)
    print(json.dumps({"engine": engine, "executions": executions, "crashes": crashes}))


if __name__ == "__main__":
    main(sys.argv[1:])
