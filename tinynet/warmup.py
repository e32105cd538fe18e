"""Kernel compilation ahead of time, and a notice when a forward pass has to compile.

Numba compiles each kernel the first time it is called with a new signature and keeps the machine
code in its on-disk cache (``__pycache__`` beside kernels/, or NUMBA_CACHE_DIR); later processes load
it in milliseconds. Compiling everything takes tens of seconds of one core, so:

- ``warmup()`` compiles the kernels by running the kernel calls of one tiny forward pass of each
  architecture family. The kernels see the same dtypes, dimensions and memory layouts as in real
  runs (tinynet.plan normalises every array it passes), so the signatures, and therefore the cache
  entries, are the ones real runs use. When the cache is cold it splits the kernels between
  worker processes (``compile_kernels``), one per core: Numba compiles on one thread, so two cores
  halve the wait.
- ``compile_notice()`` wraps the first forward pass of a process. A cold cache (no entry for this
  CPU in a kernel's cache index) is announced on stderr and filled by ``warmup()`` first; should
  Numba still compile during the pass (a cache miss it reports), a watcher thread says so.
"""
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np

from tinynet import kernels
from tinynet.kernels.fake_quant import fake_quantize_f32

# One family per kernel path: V1 (plain depthwise-separable), V2 (residuals, expand + depthwise fused), V3-Large
# (5x5 depthwise, squeeze-excite, h-swish, hidden FC), V3-Small.
FAMILIES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")
# The kernels MobileNets run, with their compile time in seconds on the project machine (for the split).
ENGINE_KERNELS = {kernels.expand_dwconv2d_nhwc_f32: 7.4, kernels.dwconv2d_nhwc_f32: 4.2, kernels.conv2d_nhwc_f32: 4.2,
                  kernels.squeeze_excite_nhwc_f32: 4.0, kernels.gemm_bias_act_f32: 2.6,
                  kernels.global_avg_pool_nhwc_f32: 0.7, fake_quantize_f32: 0.5}
POLL_SECONDS = 0.1
NOTICE = ("tinynet: compiling the kernels for this machine (first run; they are cached on disk "
          "afterwards, and `tinynet warmup` does this ahead of time)...")

_first_run_done = False


def compiling():
    """Whether Numba has had to compile (not load from its cache) any kernel in this process."""
    return any(sum(kernel.stats.cache_misses.values()) for kernel in ENGINE_KERNELS)


def cache_is_cold():
    """Whether some engine kernel has no on-disk cache entry for this CPU (or none for its current source)."""
    try:
        for kernel in ENGINE_KERNELS:
            target = kernel.targetctx.codegen().magic_tuple()
            if not any(key[1] == target for key in kernel._cache._cache_file._load_index()):
                return True
        return False
    except (AttributeError, OSError):  # Numba internals moved, or an unreadable cache: assume it must compile
        return True


def _tiny_plans():
    """Plans of tiny models of every family: their steps are the engine's kernel calls, with its argument types
    (every expand and depthwise pair fused, as large models fuse some: see tinynet.plan.fuse_expand_depthwise)."""
    from tinynet.model import create
    from tinynet.plan import Plan

    x = np.zeros((1, 32, 32, 3), np.float32)
    for arch in FAMILIES:
        model = create(arch, width=0.25, num_classes=8)
        grid = {"00.conv": (0.0, 0.1, 256)} if arch == FAMILIES[0] else None  # quantization-aware-trained files
        yield Plan(model.layers, model.weights, model.padding, x.shape, 2, grid, fuse_min_floats=0), x


def compile_kernels(names):
    """Call every tiny-plan step whose kernel is named in ``names`` (the values do not matter: it compiles)."""
    for plan, x in _tiny_plans():
        for i, (kernel, args) in enumerate(plan.steps):
            if kernel.__name__ in names:
                kernel(*([x.reshape(plan.input_view[i]), *args[1:]] if i in plan.input_view else args))


def split(processes):
    """Kernel names in ``processes`` groups of about equal compile time (longest first, to the lightest group)."""
    groups = [[] for _ in range(processes)]
    load = [0.0] * processes
    for kernel, seconds in sorted(ENGINE_KERNELS.items(), key=lambda item: -item[1]):
        lightest = load.index(min(load))
        groups[lightest].append(kernel.__name__)
        load[lightest] += seconds
    return [g for g in groups if g]


def warmup(progress=None, processes=None):
    """Compile, or load from the on-disk cache, every kernel signature tinynet runs. Returns the seconds taken.

    progress:  None, or an object with ``start(total)`` and ``update(n)`` (tinynet.progress.Progress),
               advanced once per architecture family.
    processes: worker processes for a cold cache (default: one per core, at most 4); 1 compiles here.
    """
    start = time.perf_counter()
    processes = processes or min(4, os.cpu_count() or 1)
    if processes > 1 and cache_is_cold():
        code = "import sys; from tinynet.warmup import compile_kernels; compile_kernels(set(sys.argv[1:]))"
        workers = [subprocess.Popen([sys.executable, "-c", code, *group]) for group in split(processes)]
        for worker in workers:
            worker.wait()
    if progress is not None:
        progress.start(len(FAMILIES))
    for plan, x in _tiny_plans():
        plan.run(x)  # loads what the workers compiled (or compiles, with processes=1)
        if progress is not None:
            progress.update(1)
    return time.perf_counter() - start


@contextmanager
def compile_notice(stream=None):
    """Around the first forward pass of the process: warm a cold cache first, saying so on stderr.

    Later calls cost one flag test.
    """
    global _first_run_done
    if _first_run_done:
        yield
        return
    stream = stream or sys.stderr
    started = time.perf_counter()
    shown = []
    if cache_is_cold():
        print(NOTICE, file=stream, flush=True)
        shown.append(True)
        warmup()
    done = threading.Event()

    def watch():
        while not done.wait(POLL_SECONDS):
            if not shown and compiling():
                print(NOTICE, file=stream, flush=True)
                shown.append(True)
                return

    watcher = threading.Thread(target=watch, name="tinynet-compile-notice", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        _first_run_done = True
        if shown:
            print(f"tinynet: kernels ready ({time.perf_counter() - started:.0f} s)", file=stream, flush=True)
