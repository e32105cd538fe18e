"""Long and parallel runs (issue 6): one model shared by 8 threads gives bitwise the results of
sequential runs, and `tinynet classify` over thousands of images keeps a flat memory profile.

The full sizes (2,000 inferences; 5,000 images) are marked slow; the default run does smaller ones.
Run the slow ones with their numbers shown: pytest tests/test_long_runs.py -m slow -s
"""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

import tinynet
from weight_files import REPO

# ---------------------------------------------------------------------------------------------
# One model, eight threads


def inputs_for(sizes, seed=0):
    """One float32 batch (n, s, s, 3) per (n, s): several shapes, so threads also race for plans."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, s, s, 3)).astype(np.float32) for n, s in sizes]


def run_threads(model, inputs, n_threads, per_thread):
    """``per_thread`` forward passes in each of ``n_threads`` threads started together, cycling through
    ``inputs`` from a different place in each thread. Returns [(input index, logits)] and the errors."""
    barrier = threading.Barrier(n_threads)
    results, errors = [[] for _ in range(n_threads)], []

    def work(t):
        try:
            barrier.wait()
            for i in range(per_thread):
                k = (3 * t + i) % len(inputs)
                results[t].append((k, model.forward(inputs[k])))
        except Exception as e:  # reported by the caller: an exception in a thread would otherwise be lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r for per in results for r in per], errors


def check_bitwise(model, inputs, n_threads, per_thread):
    expected = [model.forward(x) for x in inputs]  # sequential, one at a time
    results, errors = run_threads(model, inputs, n_threads, per_thread)
    assert not errors, errors[0]
    assert len(results) == n_threads * per_thread
    mismatches = [k for k, logits in results if not np.array_equal(logits, expected[k])]
    assert not mismatches, f"{len(mismatches)} of {len(results)} results differ from the sequential ones"


def test_eight_threads_give_bitwise_the_sequential_results():
    model = tinynet.create("mobilenet_v3_small", width=0.35, num_classes=10, seed=1)
    check_bitwise(model, inputs_for([(1, 64), (2, 64), (1, 96), (3, 72), (1, 33)]), n_threads=8, per_thread=40)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mobilenet_v3_large", "mobilenet_v2"])
def test_eight_threads_two_thousand_inferences(arch):
    model = tinynet.create(arch, seed=2)
    check_bitwise(model, inputs_for([(1, 224), (2, 224), (1, 192), (4, 160)]), n_threads=8, per_thread=250)


# ---------------------------------------------------------------------------------------------
# tinynet classify over thousands of images


def make_images(folder, n, seed=0):
    """``n`` JPEG and PNG files of varied sizes (48..1000 x 48..800), cut from one noise image (cheap)."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (800, 1000, 3), dtype=np.uint8))
    for i in range(n):
        w, h = int(rng.integers(48, 1001)), int(rng.integers(48, 801))
        x, y = int(rng.integers(0, 1001 - w)), int(rng.integers(0, 801 - h))
        crop = base.crop((x, y, x + w, y + h))
        crop.save(folder / f"{i:05d}.png") if i % 10 == 0 else crop.save(folder / f"{i:05d}.jpg", quality=85)


def rss_bytes(pid):
    """Resident set size of process ``pid`` (VmRSS in /proc/<pid>/status), or None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next(line for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024


def classify_memory_profile(folder, model_file, n, batch=8, interval=0.05):
    """Run `tinynet classify folder --json` and sample its RSS while it prints. Returns the RSS (bytes) after
    the first batch's results, at each quarter of the images, at the end (the last sample before the last
    results, while the process is still at work) and the peak, plus the number of result lines."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TINYNET_PROGRESS": "0", "TINYNET_HOME": str(folder.parent / "home")}
    process = subprocess.Popen([sys.executable, "-m", "tinynet", "classify", str(folder), "--model", str(model_file),
                                "--json", "--batch", str(batch)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    lines, samples, done = [], [], threading.Event()

    def sample():
        while not done.is_set():
            rss = rss_bytes(process.pid)
            if rss is not None and process.poll() is None:
                samples.append((len(lines), rss))
            time.sleep(interval)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for line in process.stdout:
            lines.append(line)
        stderr = process.stderr.read()
        process.wait(timeout=600)
    finally:
        done.set()
        sampler.join()
    assert process.returncode == 0, stderr[-2000:]
    first = next(rss for count, rss in samples if count >= batch)
    quarters = [next(rss for count, rss in samples if count >= q * n // 4) for q in (1, 2, 3)]
    end = [rss for count, rss in samples if count < n][-1]
    return {"first_batch": first, "quarters": quarters, "end": end,
            "peak": max(rss for _, rss in samples), "lines": len(lines), "samples": len(samples),
            "records": [json.loads(line) for line in lines[:3]]}


@pytest.fixture(scope="module")
def classify_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "v3small.tinynet"
    tinynet.save(tinynet.create("mobilenet_v3_small", width=0.35, num_classes=1000, seed=4), path)
    return path


MB = 1 << 20


def check_flat_memory(tmp_path, model_file, n, growth_limit):
    folder = tmp_path / "images"
    folder.mkdir()
    make_images(folder, n)
    start = time.perf_counter()
    profile = classify_memory_profile(folder, model_file, n)
    seconds = time.perf_counter() - start
    summary = (f"{n} images in {seconds:.1f} s: RSS after the first batch {profile['first_batch'] / MB:.1f} MB, "
               f"at 1/4, 1/2, 3/4 {', '.join(f'{q / MB:.1f}' for q in profile['quarters'])} MB, "
               f"end {profile['end'] / MB:.1f} MB, peak {profile['peak'] / MB:.1f} MB ({profile['samples']} samples)")
    print(summary)
    assert profile["lines"] == n
    assert profile["end"] - profile["first_batch"] < growth_limit, summary
    # A leak grows with the images classified; a plateau does not: the second half may not add what the
    # first half's tail (decode buffers, allocator arenas settling) may.
    assert profile["end"] - profile["quarters"][1] < growth_limit / 2, summary


# The bound: after the first batch the CLI holds the model, one plan for (8, 224, 224, 3) (all batches
# have that shape when n is a multiple of 8) and at most two batches of decoded images in flight (up to
# 1000 x 800 RGB each: 2.4 MB, ~40 MB for 16) whose memory the allocator may keep for reuse. A leak of
# just 10 KB per image would add 50 MB over 5,000 images.
def test_classify_memory_is_flat_over_hundreds_of_images(tmp_path, classify_model):
    check_flat_memory(tmp_path, classify_model, n=296, growth_limit=48 * MB)


@pytest.mark.slow
def test_classify_memory_is_flat_over_five_thousand_images(tmp_path, classify_model):
    check_flat_memory(tmp_path, classify_model, n=5000, growth_limit=48 * MB)
