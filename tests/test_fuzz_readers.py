"""Coverage-guided fuzzing of every weight-file reader (issue 10): torch zip/pickle, safetensors, TFLite,
tar/tgz and tinynet's own format, each from seeds written here. tests/fuzz_readers.py runs atheris when
it is installed (``pip install -e ".[fuzz]"``), else its seeded random mutation fuzzer; any outcome but a
clean load or a one-line TinynetError, peak memory over 1 GB or an input over 60 s is a crash.

The default run gives each reader a few random mutations, to keep the harness working; ``-m slow`` runs
each for SLOW_RUNS executions with the best engine available.
"""
import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import tinynet
from conftest import REPO
from tinynet.formats import safetensors
from weight_files import tflite_bytes, torch_checkpoint

HARNESS = REPO / "tests" / "fuzz_readers.py"
SMOKE_RUNS, SLOW_RUNS = 10, 10000


def tgz(members, format=tarfile.GNU_FORMAT):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=format) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def seeds(target, tmp_path):
    """Small, valid files for ``target``: the fuzzer mutates these."""
    tflite = tflite_bytes()
    if target == "torch_zip":
        return [torch_checkpoint({"a.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
                                  "a.bias": np.zeros(2, np.float32), "n": np.array(3, np.int64)})]
    if target == "safetensors":
        path = tmp_path / "seed.safetensors"
        safetensors.write(path, {"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)}, {"k": "v"})
        return [path.read_bytes()]
    if target == "tflite":  # a classifier, and the atrous depthwise conv of a segmentation graph
        from test_tflite_segmentation import space_to_batch_tflite
        return [tflite, space_to_batch_tflite()[0]]
    if target == "tar":
        long_name = "d/" * 80 + "model.tflite"  # a GNU long name, and a pax header in the second seed
        return [tgz([("info.txt", b"hello"), ("model.tflite", tflite[:2048])]),
                tgz([(long_name, b"TFL3" * 64)], tarfile.PAX_FORMAT)]
    if target == "native":
        path = tmp_path / "seed.safetensors"
        source = tmp_path / "seed.tflite"
        source.write_bytes(tflite)
        tinynet.save(tinynet.load(source), path)
        return [path.read_bytes()]
    raise ValueError(target)


def fuzz(target, tmp_path, runs, random_only):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, data in enumerate(seeds(target, tmp_path)):
        (corpus / f"seed{i}").write_bytes(data)
    args = [sys.executable, str(HARNESS), target, str(corpus), str(runs)] + (["--random"] if random_only else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


TARGETS = ["torch_zip", "safetensors", "tflite", "tar", "native"]


@pytest.mark.parametrize("target", TARGETS)
def test_random_mutations_of_each_reader_load_or_are_refused(tmp_path, target):
    result = fuzz(target, tmp_path, SMOKE_RUNS, random_only=True)
    assert result["executions"] == SMOKE_RUNS and result["crashes"] == [], result


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_fuzzing_each_reader_finds_no_crash(tmp_path, target):
    result = fuzz(target, tmp_path, SLOW_RUNS, random_only=False)
    print(f"{target}: {result['executions']} executions with {result['engine']}")
    assert result["executions"] >= SLOW_RUNS // 2 and result["crashes"] == [], result


PLANTED = """
import sys
sys.path.insert(0, {tests!r})
import fuzz_readers

def planted(data):
    raise ValueError("a planted bug")

fuzz_readers.ENTRY_POINTS["planted"] = planted
fuzz_readers.main(sys.argv[1:])
"""


@pytest.mark.parametrize("engine", ["random", "atheris"])
def test_the_harness_reports_a_planted_crash(tmp_path, engine):
    if engine == "atheris":
        pytest.importorskip("atheris", reason="atheris not installed (pip install -e '.[fuzz]')")
    script = tmp_path / "planted.py"
    script.write_text(PLANTED.format(tests=str(HARNESS.parent)))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed").write_bytes(b"anything")
    args = [sys.executable, str(script), "planted", str(corpus), "5"] + (["--random"] if engine == "random" else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["engine"] == engine and result["crashes"], result
    assert any("a planted bug" in crash for crash in result["crashes"]), result
