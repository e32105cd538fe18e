"""Kernel compilation ahead of time, and a notice when a forward pass has to compile.

Numba compiles each kernel the first time it is called with a new signature and keeps the machine
code in its on-disk cache (``__pycache__`` beside kernels/, or NUMBA_CACHE_DIR); later processes load
it in milliseconds. Compiling everything takes tens of seconds of one core, so:

- ``warmup()`` compiles the kernels by running the kernel calls of the tiny plans of tinynet.kernel_registry
  (one per classifier family, one graph with every head node kind). The kernels see the same dtypes, dimensions and memory layouts as in real
  runs (tinynet.plan normalises every array it passes), so the signatures, and therefore the cache
  entries, are the ones real runs use. When the cache is cold it splits the kernels between this
  process and worker processes (``compile_kernels``), one per core: Numba compiles on one thread, so
  two cores halve the wait.
- ``compile_notice(plan)`` wraps the first forward pass of a process. A cold cache (no entry for this
  CPU in the cache index of a kernel the plan calls) is announced on stderr and filled by
  ``warmup(kernels=...)`` first, for the plan's kernels only: the quantized V2 classifier calls 5 of
  the 12 kernels, 16 CPU-seconds of compiling instead of 36 on this project's machine
  (bench/README.md, "Start-up"). Should Numba still compile during the pass (a cache miss it
  reports), a watcher thread says so.
- ``fusion_ready()``: the fused expand + depthwise kernel is the costliest to compile (6 of the 17
  CPU-seconds of a V2 classifier's kernels), and a plan computes the same logits without it, bit
  for bit (the expand and depthwise convs as two kernels, ~5 % slower). So a process that finds it
  missing from the cache plans without it, and after its first forward pass compiles it in a
  background process (niced, detached) for the next runs. That process's plans stay unfused.
"""
import json
import os
import subprocess
import sys
import threading
import time
import weakref
from contextlib import contextmanager


from tinynet.kernel_registry import COMPILE_SECONDS, dispatchers, engine_kernels, plan_steps, requantization, tiny_plans

POLL_SECONDS = 0.1
DEFERRED = "expand_dwconv2d_nhwc_f32"  # compiled after a cold first run, not before it (fusion_ready)
NOTICE = ("tinynet: compiling the kernels for this machine (first run; they are cached on disk "
          "afterwards, and `tinynet warmup` does this ahead of time)...")

_all_ready = False  # a call without a plan has warmed every kernel
_ready_plans = weakref.WeakSet()  # plans whose kernels are warm
_deferred_started = False


def compiling():
    """Whether Numba has had to compile (not load from its cache) any kernel in this process."""
    return any(sum(kernel.stats.cache_misses.values()) for kernel in engine_kernels().values())


def plan_kernels(plan):
    """Names of the engine kernels a Plan or GraphPlan calls (directly or through a kernel's wrapper)."""
    return {d.__name__ for kernel, _ in plan_steps(plan) for d in dispatchers(kernel)} & set(engine_kernels())


def cache_is_cold(names=None):
    """Whether some engine kernel (of ``names``; default all) has no on-disk cache entry for this CPU (or none for
    its current source)."""
    try:
        for name, kernel in engine_kernels().items():
            if names is not None and name not in names:
                continue
            target = kernel.targetctx.codegen().magic_tuple()
            if not any(key[1] == target for key in kernel._cache._cache_file._load_index()):
                return True
        return False
    except (AttributeError, OSError):  # Numba internals moved, or an unreadable cache: assume it must compile
        return True


def compile_kernels(names, requantizations=None):
    """Call every tiny-plan step whose kernel (or a kernel it wraps) is named in ``names``: it compiles (the values
    do not matter). ``requantizations``: of the integer kernels' steps, those of these arithmetics only
    (kernels.int8_requant type names; default all)."""
    for plan, x in tiny_plans():
        inputs = getattr(plan, "backbone", plan).input_view
        for i, (kernel, args) in enumerate(plan_steps(plan)):
            wanted = requantizations is None or requantization(args) in (None, *requantizations)
            if wanted and any(d.__name__ in names for d in dispatchers(kernel)):
                kernel(*([x.reshape(inputs[i]), *args[1:]] if i in inputs else args))


def fusion_ready():
    """Whether plans may fuse expand + depthwise convs: the fused kernel is compiled here or cached on disk."""
    kernel = engine_kernels()[DEFERRED]
    return bool(kernel.signatures) or not cache_is_cold({DEFERRED})


def compile_deferred():
    """Start compiling the fused kernel in a background process that outlives this one, unless it is ready or this
    process has started one already."""
    global _deferred_started
    if _deferred_started or fusion_ready():
        return
    _deferred_started = True
    code = f"import os; os.nice(10); from tinynet.warmup import compile_kernels; compile_kernels({{{DEFERRED!r}}})"
    subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)


def split(processes, names=None):
    """Kernel names (``names``; default all) in ``processes`` groups of about equal compile time (longest first, to
    the lightest group), the lightest group first (warmup compiles it in the process that also has to run)."""
    groups = [[] for _ in range(processes)]
    load = [0.0] * processes
    timed = {name: COMPILE_SECONDS.get(name, 1.0) for name in (engine_kernels() if names is None else names)}
    for name, seconds in sorted(timed.items(), key=lambda item: -item[1]):
        lightest = load.index(min(load))
        groups[lightest].append(name)
        load[lightest] += seconds
    return sorted((g for g in groups if g), key=lambda g: sum(timed[name] for name in g))


def warmup(progress=None, processes=None, kernels=None, requantizations=None):
    """Compile, or load from the on-disk cache, every kernel signature tinynet runs (of the kernels named in
    ``kernels``, if given; of their integer signatures, those of ``requantizations``, as compile_kernels). Returns
    the seconds taken.

    progress:  None, or an object with ``start(total)`` and ``update(n)`` (tinynet.progress.Progress),
               advanced once per architecture family (not used with ``kernels``).
    processes: processes that share a cold compile, this one included (default: one per core, at most 4).
    """
    start = time.perf_counter()
    processes = processes or min(4, os.cpu_count() or 1)
    if processes > 1 and cache_is_cold(kernels):
        code = "import sys, json; from tinynet.warmup import compile_kernels; compile_kernels(*json.loads(sys.argv[1]))"
        mine, *theirs = split(processes, kernels)
        arithmetics = None if requantizations is None else sorted(requantizations)
        workers = [subprocess.Popen([sys.executable, "-c", code, json.dumps([group, arithmetics])]) for group in theirs]
        compile_kernels(set(mine), requantizations)  # while the workers compile theirs: one Python start-up fewer
        for worker in workers:
            worker.wait()
    if kernels is not None:
        compile_kernels(kernels, requantizations)  # loads what the workers compiled
        return time.perf_counter() - start
    plans = list(tiny_plans())
    if progress is not None:
        progress.start(len(plans))
    for plan, x in plans:
        plan.run(x)  # loads what the workers compiled (or compiles, with processes=1)
        if progress is not None:
            progress.update(1)
    return time.perf_counter() - start


@contextmanager
def compile_notice(plan=None, stream=None):
    """Around the first forward pass of the process: warm a cold cache first (for ``plan``'s kernels; without a plan
    all of them), saying so on stderr.

    Later calls (for the same plan, or any after a call without one) cost a flag test.
    """
    global _all_ready
    if _all_ready or plan in _ready_plans:
        yield
        return
    stream = stream or sys.stderr
    started = time.perf_counter()
    shown = []
    needed = None if plan is None else plan_kernels(plan)
    if cache_is_cold(needed):
        print(NOTICE, file=stream, flush=True)
        shown.append(True)
        warmup(kernels=needed, requantizations=getattr(plan, "requantizations", None))
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
        if plan is None:
            _all_ready = True
        else:
            _ready_plans.add(plan)
            compile_deferred()
        if shown:
            print(f"tinynet: kernels ready ({time.perf_counter() - started:.0f} s)", file=stream, flush=True)
