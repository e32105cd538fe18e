"""The thread count is honoured: tinynet.set_threads, Model(threads=), per calling Python thread; fewer threads
while other processes hold the cores (tinynet.contention).

Numba's thread count is per Python thread, so what matters is the count in force on the calling
thread when the kernels run. ``threads_used`` observes it the way the kernels would: a parallel loop
that records which of Numba's threads ran its iterations. The tests of the asked-for count turn the
adaptation off: other work on the test machine would otherwise lower the count they check.
"""
import subprocess
import sys
import threading
import time

import numba
import numpy as np
import pytest
from numba import njit, prange

import tinynet
from tinynet import contention, threads
from tinynet.errors import TinynetError

TWO = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs NUMBA_NUM_THREADS >= 2")


@njit(parallel=True)
def _thread_ids(n):
    ids = np.zeros(n, np.int64)
    for i in prange(n):
        ids[i] = numba.get_thread_id()
    return ids


def threads_used():
    """How many of Numba's threads a parallel loop started now on this Python thread runs on."""
    return len(set(_thread_ids(64 * numba.config.NUMBA_NUM_THREADS).tolist()))


@pytest.fixture(autouse=True)
def fixed_count(monkeypatch):
    monkeypatch.setattr(threads, "ADAPT", False)  # the ``busy`` fixture, requested after it, turns it back on


@pytest.fixture
def model_and_input():
    model = tinynet.create("mobilenet_v3_small", width=0.5, num_classes=10)
    x = np.random.default_rng(0).standard_normal((1, 64, 64, 3)).astype(np.float32)
    return model, x


@TWO
def test_set_threads_limits_the_pool_of_the_calling_thread(model_and_input):
    model, x = model_and_input
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert threads_used() == numba.config.NUMBA_NUM_THREADS  # the probe can see more than one thread
    try:
        tinynet.set_threads(1)
        assert tinynet.get_threads() == 1
        model.forward(x)
        assert threads_used() == 1
    finally:
        tinynet.set_threads(None)
    model.forward(x)
    assert threads_used() == numba.config.NUMBA_NUM_THREADS


@TWO
def test_model_threads_win_over_the_process_default_and_agree(model_and_input):
    model, x = model_and_input
    one = tinynet.Model(model.arch, model.layers, model.weights, threads=1)
    two = tinynet.Model(model.arch, model.layers, model.weights, threads=2)
    tinynet.set_threads(1)
    try:
        expected = one.forward(x)
        np.testing.assert_allclose(two.forward(x), expected, rtol=0, atol=1e-5 * np.abs(expected).max())
        assert threads_used() == 2
        one.forward(x)
        assert threads_used() == 1
    finally:
        tinynet.set_threads(None)


def test_model_threads_apply_in_the_calling_python_thread(model_and_input):
    """A forward from a new Python thread must still run on one thread when the model says threads=1."""
    model, x = model_and_input
    single = tinynet.Model(model.arch, model.layers, model.weights, threads=1)
    seen = []

    def work():
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        single.forward(x)
        seen.append(threads_used())

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen == [1]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, 10_000])
def test_invalid_thread_counts_are_rejected(bad, model_and_input):
    model, x = model_and_input
    with pytest.raises(TinynetError, match="threads must be an integer"):
        tinynet.set_threads(bad)
    with pytest.raises(TinynetError, match="threads must be an integer"):
        tinynet.Model(model.arch, model.layers, model.weights, threads=bad).forward(x)


@pytest.fixture
def busy(monkeypatch):
    """Pretend that other processes hold ``busy.cores`` cores of a 4-core machine."""
    state = type("Busy", (), {"cores": 0})()
    monkeypatch.setattr(contention, "cores", lambda: 4)
    monkeypatch.setattr(contention, "busy_cores", lambda: state.cores)
    monkeypatch.setattr(threads, "_probe", (float("-inf"), 1, 0))
    monkeypatch.setattr(threads, "ADAPT", True)
    monkeypatch.setattr(threads, "max_threads", lambda: 4)
    return state


def look_again():
    time.sleep(threads.PROBE_SECONDS * 2)


def test_a_call_takes_only_the_cores_other_processes_leave(busy):
    assert threads.resolve(None) == 4
    busy.cores = 3
    look_again()
    assert threads.resolve(None) == 4  # one look that sees them busy is not enough
    look_again()
    assert threads.resolve(None) == 1 and threads.resolve(3) == 1
    busy.cores = 1
    assert threads.resolve(None) == 1  # the last look is reused for PROBE_SECONDS
    look_again()
    assert threads.resolve(None) == 3 and threads.resolve(2) == 2  # fewer busy: at once
    busy.cores = 9
    look_again()
    assert threads.resolve(None) == 3  # the look before saw 1 busy
    look_again()
    assert threads.resolve(None) == 1  # never fewer than one


def test_a_core_busy_at_one_look_only_is_not_taken(busy):
    for seen in (0, 2, 0, 3, 0):
        busy.cores = seen
        look_again()
        assert threads.resolve(None) == 4


def test_adapting_can_be_turned_off(busy, monkeypatch):
    busy.cores = 3
    monkeypatch.setattr(threads, "ADAPT", False)
    assert threads.resolve(None) == 4 and threads.resolve(2) == 2


def test_a_kernel_thread_that_stops_spinning_during_the_look_is_not_a_neighbour(monkeypatch):
    # The caller and one spinning kernel thread are runnable when the machine's count is first read; the kernel
    # thread falls asleep before its own stat file is read. Nothing else runs.
    machine_counts = iter([2, 1])
    monkeypatch.setattr(contention, "_runnable_machine", lambda: next(machine_counts))
    monkeypatch.setattr(contention, "_runnable_own", lambda: 1)
    assert contention.busy_cores() == 0


def test_a_neighbour_runnable_on_both_sides_of_the_look_is_counted(monkeypatch):
    machine_counts = iter([4, 3])  # caller, neighbour, a kernel thread that falls asleep, one more neighbour
    monkeypatch.setattr(contention, "_runnable_machine", lambda: next(machine_counts))
    monkeypatch.setattr(contention, "_runnable_own", lambda: 1)
    assert contention.busy_cores() == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_a_busy_neighbour_process_is_seen_and_this_process_is_not():
    idle = [contention.busy_cores() for _ in range(20)]
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # past its start-up
        seen = [contention.busy_cores() for _ in range(20)]
    finally:
        neighbour.kill()
        neighbour.wait()
    # A CPU-bound neighbour is runnable at every sample; other work on the test machine can only add to it.
    assert min(seen) >= 1
    # This process's own runnable threads (the caller, spinning kernel threads) are not counted: samples taken
    # right after a 2-thread forward, whose workers still spin, do not see more than the idle samples did.
    model = tinynet.create("mobilenet_v3_small", width=0.5, num_classes=10)
    x = np.zeros((1, 64, 64, 3), np.float32)
    after_forward = []
    for _ in range(20):
        model.forward(x)
        after_forward.append(contention.busy_cores())
    assert min(after_forward) <= max(idle)
