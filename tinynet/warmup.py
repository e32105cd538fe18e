"""Kernel compilation ahead of time, and a notice when a forward pass has to compile.

Numba compiles each kernel the first time it is called with a new signature and keeps the machine
code in its on-disk cache (``__pycache__`` beside kernels/, or NUMBA_CACHE_DIR); later processes load
it in milliseconds. Compiling everything takes tens of seconds of one core, so:

- ``warmup()`` compiles the kernels by running the kernel calls of the tiny plans of tinynet.kernel_registry
  (one per classifier family, one graph with every head node kind). The kernels see the same dtypes, dimensions
  and memory layouts as in real runs (tinynet.plan normalises every array it passes), so the signatures, and
  therefore the cache entries, are the ones real runs use. When the cache is cold it splits the work between this
  process and worker processes, one per core: Numba compiles on one thread, so two cores halve the wait.
- ``compile_notice(plan)`` wraps the first forward pass of a process. A cold cache (no entry for this
  CPU in the cache index for a signature the plan calls) is announced on stderr and filled by
  ``warmup(calls=plan_calls(plan))`` first: the signatures the plan's steps call and no others (a uint8 file's
  integer kernels for its weight and requantization kinds: 5 compiles, 8 CPU-seconds, instead of every tiny
  call's 12 and 25), split between the processes by their measured compile time. Should Numba still compile
  during the pass (a cache miss it reports), a watcher thread says so.
- ``fusion_ready()``: the fused expand + depthwise kernel and the squeeze-and-excite kernel are the costliest to
  compile (6-7 and 3 CPU-seconds), and a plan computes the same logits without them, bit for bit (expand and
  depthwise convs as two kernels, ~5 % slower; squeeze-and-excite as the global pool and GEMM kernels every
  classifier calls anyway, plus a channel scaling of 0.5 s to compile). So a process that finds them missing
  from the cache plans without them, and after its first forward pass compiles them in a background process
  (niced, detached) for the next runs. That process's plans stay unfused.
"""
import collections
import functools
import os
import pickle
import subprocess
import sys
import threading
import time
import weakref
from contextlib import contextmanager

import numba
import numpy as np
from numba.core.registry import CPUDispatcher

from tinynet.kernel_registry import COMPILE_SECONDS, dispatchers, engine_kernels, plan_steps, tiny_plans

POLL_SECONDS = 0.1
# compiled after a cold first run, not before it (fusion_ready)
DEFERRED = ("expand_dwconv2d_nhwc_f32", "squeeze_excite_nhwc_f32")
NOTICE = ("tinynet: compiling the kernels for this machine (first run; they are cached on disk "
          "afterwards, and `tinynet warmup` does this ahead of time)...")

_all_ready = False  # a call without a plan has warmed every kernel
_ready_plans = weakref.WeakSet()  # plans whose kernels are warm
_deferred_started = False
_waiting_workers = []  # compile workers started ahead of a first forward pass (start_workers), waiting for calls
WORKER = "from tinynet.warmup import compile_calls_from_stdin; compile_calls_from_stdin()"


def compiling():
    """Whether Numba has had to compile (not load from its cache) any kernel in this process."""
    return any(sum(kernel.stats.cache_misses.values()) for kernel in engine_kernels().values())


def plan_kernels(plan):
    """Names of the engine kernels a Plan or GraphPlan calls (directly or through a kernel's wrapper)."""
    return {d.__name__ for kernel, _ in plan_steps(plan) for d in dispatchers(kernel)} & set(engine_kernels())


def plan_calls(plan):
    """What compiling ``plan``'s kernels takes: (kernel name, argument types) per signature of the engine kernels its
    steps call, and (kernel name, None) for those it calls through a Python wrapper (whose arguments are not the
    step's: all the tiny plans' calls of them compile). Numba compiles a kernel once per signature, so a file's
    integer kernels compile for its own requantization and weight kinds only."""
    known = engine_kernels()
    inputs = getattr(getattr(plan, "backbone", plan), "input_view", {})
    calls = {}
    for i, (kernel, args) in enumerate(plan_steps(plan)):
        if isinstance(kernel, CPUDispatcher) and kernel.__name__ in known and args is not None:
            if i in inputs:  # the network input, bound per call: float32 of the view's dimensions
                args = [np.empty((0,) * len(inputs[i]), np.float32), *args[1:]]
            calls[kernel.__name__, tuple(numba.typeof(a) for a in args)] = None
        else:
            calls.update(((d.__name__, None), None) for d in dispatchers(kernel) if d.__name__ in known)
    return list(calls)


def _index(kernel):
    """(argument types, target) of the entries of ``kernel``'s on-disk cache index (none for an old source)."""
    return {key[:2] for key in kernel._cache._cache_file._load_index()}


def uncached(calls):
    """The ``calls`` (as plan_calls gives them) with no entry in the on-disk cache for this CPU; a (name, None) call
    counts as cached when any signature of that kernel is."""
    kernels = engine_kernels()
    try:
        missing = []
        for name, signature in calls:
            kernel = kernels[name]
            target = kernel.targetctx.codegen().magic_tuple()
            index = _index(kernel)
            if (signature, target) not in index if signature is not None else all(t != target for _, t in index):
                missing.append((name, signature))
        return missing
    except (AttributeError, OSError):  # Numba internals moved, or an unreadable cache: assume all must compile
        return list(calls)


def cache_is_cold(names=None):
    """Whether some engine kernel (of ``names``; default all) has no on-disk cache entry for this CPU (or none for
    its current source)."""
    return bool(uncached([(name, None) for name in (engine_kernels() if names is None else names)]))


@functools.cache
def tiny_signatures():
    """{kernel name: signatures the tiny plans compile of it} (at least 1: those called through wrappers)."""
    signed = {call for plan, _ in tiny_plans() for call in plan_calls(plan) if call[1] is not None}
    return {**dict.fromkeys(engine_kernels(), 1), **collections.Counter(name for name, _ in signed)}


def compile_kernels(names):
    """Call every tiny-plan step whose kernel (or a kernel it wraps) is named in ``names``: it compiles (the values
    do not matter)."""
    for plan, x in tiny_plans():
        inputs = getattr(plan, "backbone", plan).input_view
        for i, (kernel, args) in enumerate(plan_steps(plan)):
            if any(d.__name__ in names for d in dispatchers(kernel)):
                kernel(*([x.reshape(inputs[i]), *args[1:]] if i in inputs else args))


def compile_calls(calls):
    """Compile (or load from the on-disk cache) ``calls``, as plan_calls gives them."""
    kernels = engine_kernels()
    for name, signature in calls:
        if signature is not None:
            kernels[name].compile(signature)
    compile_kernels({name for name, signature in calls if signature is None})


def compile_calls_from_stdin():
    """A worker of ``warmup``: compile the pickled calls it is sent (none: its stdin closed unused)."""
    payload = sys.stdin.buffer.read()
    if payload:
        compile_calls(pickle.loads(payload))


def start_workers(processes=None):
    """On a fresh install (no engine kernel in the on-disk cache), start the compile workers the first forward pass
    will want, ahead of it: their start-up (Python, NumPy, Numba, ~0.4 s) then overlaps the loading of the model and
    the images instead of delaying the compile. They wait for calls on stdin, and exit when it closes unused (at
    the latest when this process exits). ``processes`` as warmup's."""
    processes = processes or min(4, os.cpu_count() or 1)
    if not _waiting_workers and processes > 1 and len(uncached([(name, None) for name in engine_kernels()])) == \
            len(engine_kernels()):
        _waiting_workers.extend(_worker() for _ in range(processes - 1))


def _worker():
    return subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE)


def _release_workers():
    while _waiting_workers:
        _waiting_workers.pop().stdin.close()


def fusion_ready():
    """Whether plans may fuse expand + depthwise convs and squeeze-and-excite layers: the fused kernels are compiled
    here or cached on disk."""
    kernels = engine_kernels()
    return all(kernels[name].signatures for name in DEFERRED) or not cache_is_cold(DEFERRED)


def compile_deferred():
    """Start compiling the fused kernels in a background process that outlives this one, unless it is ready or this
    process has started one already."""
    global _deferred_started
    if _deferred_started or fusion_ready():
        return
    _deferred_started = True
    code = f"import os; os.nice(10); from tinynet.warmup import compile_kernels; compile_kernels({set(DEFERRED)!r})"
    subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)


def split(processes, calls):
    """``calls`` (as plan_calls gives them) in ``processes`` groups of about equal compile time (longest first, to
    the lightest group), the lightest group first (warmup compiles it in the process that also has to run)."""
    groups = [[] for _ in range(processes)]
    load = [0.0] * processes
    timed = [(call, COMPILE_SECONDS.get(call[0], 1.0) * (1 if call[1] is not None else tiny_signatures()[call[0]]))
             for call in calls]
    for call, seconds in sorted(timed, key=lambda item: -item[1]):
        lightest = load.index(min(load))
        groups[lightest].append(call)
        load[lightest] += seconds
    return [group for _, group in sorted(((total, group) for total, group in zip(load, groups) if group),
                                         key=lambda pair: pair[0])]


def warmup(progress=None, processes=None, calls=None):
    """Compile, or load from the on-disk cache, every kernel signature tinynet runs (or ``calls``, as plan_calls
    gives them). Returns the seconds taken.

    progress:  None, or an object with ``start(total)`` and ``update(n)`` (tinynet.progress.Progress),
               advanced once per architecture family (not used with ``calls``).
    processes: processes that share a cold compile, this one included (default: one per core, at most 4).
    """
    start = time.perf_counter()
    processes = processes or min(4, os.cpu_count() or 1)
    missing = uncached([(name, None) for name in engine_kernels()] if calls is None else calls)
    if processes > 1 and missing:
        mine, *theirs = split(processes, missing)
        workers = [_waiting_workers.pop() if _waiting_workers else _worker() for _ in theirs]
        for worker, group in zip(workers, theirs):
            worker.stdin.write(pickle.dumps(group))  # a few kB: the pipe holds it while a new worker starts
            worker.stdin.close()
        compile_calls(mine)  # while the workers compile theirs: one start-up of Python and Numba fewer
        for worker in workers:
            worker.wait()
    _release_workers()
    if calls is not None:
        compile_calls(calls)  # loads what the workers compiled
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
    needed = None if plan is None else plan_calls(plan)
    if uncached([(name, None) for name in engine_kernels()] if needed is None else needed):
        print(NOTICE, file=stream, flush=True)
        shown.append(True)
        warmup(calls=needed)
    _release_workers()  # started ahead by start_workers, for a forward pass that has nothing to compile
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
