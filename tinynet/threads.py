"""How many threads tinynet's kernels use.

The kernels run on Numba's thread pool (OpenMP layer, see kernels/threading.py). Numba's
``set_num_threads`` is per calling Python thread, so tinynet does not rely on it persisting: every
``Model.forward`` sets the count for the thread that calls it, from (in this order) the model's own
``threads``, the process default set with ``set_threads``, or all of Numba's threads
(NUMBA_NUM_THREADS, by default the number of cores). The plan of each input shape is made for its
thread count (its GEMM tiles split the work for that many threads).

That count is the most a call uses: each call takes no more threads than there are cores that other processes
leave free at that moment (tinynet.contention; looked at again at most every PROBE_SECONDS), and at least one. A
parallel kernel ends only when all its threads have done their share, so one thread that waits for a core
another process holds stalls every kernel: on this project's 2 cores with one busy neighbour, 2 threads made V2
5-10x slower than 1 (figures in kernels/threading.py). TINYNET_ADAPT_THREADS=0 turns this off (always the count
asked for), for benchmarks of the fixed count.
"""
import os
import threading
import time

import numba

from tinynet import contention
from tinynet.errors import TinynetError

ADAPT = os.environ.get("TINYNET_ADAPT_THREADS", "1") != "0"
PROBE_SECONDS = 0.005  # V3-Small takes ~1.2 ms: a probe (1-25 us) every few forwards at most

_default = None
_probe = (float("-inf"), 1, 0)  # (time.monotonic() of the last look, cores taken to be free then, busy cores seen)
_probe_lock = threading.Lock()


def max_threads():
    """The most threads tinynet can use: Numba's pool size (NUMBA_NUM_THREADS)."""
    return numba.config.NUMBA_NUM_THREADS


def set_threads(n):
    """Use ``n`` threads in every model that was not given its own ``threads``; None restores the default."""
    global _default
    _default = None if n is None else check_threads(n)


def get_threads():
    """The process-wide thread count used by models without their own ``threads``."""
    return _default or max_threads()


def check_threads(n):
    """``n`` as an int in 1..max_threads(), or a TinynetError saying what is allowed."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= max_threads():
        raise TinynetError(f"threads must be an integer from 1 to {max_threads()} (NUMBA_NUM_THREADS), got {n!r}")
    return n


def free_cores():
    """Cores that other processes leave free now, at least 1 (the last look, if it is under PROBE_SECONDS old or
    another Python thread is looking).

    A core counts as taken only when two looks in a row see it busy: a CPU-bound neighbour is runnable at every
    look, while threads this process cannot see (other containers' and the kernel's, which /proc/loadavg counts)
    are runnable for moments. On a quiet 2-core machine one look in eight between back-to-back forwards of V2 int8
    saw such a thread, and each cost the next PROBE_SECONDS of forwards their second thread."""
    global _probe
    if time.monotonic() - _probe[0] > PROBE_SECONDS and _probe_lock.acquire(blocking=False):
        try:
            busy = contention.busy_cores()
            _probe = (time.monotonic(), max(1, contention.cores() - min(busy, _probe[2])), busy)
        finally:
            _probe_lock.release()
    return _probe[1]


def resolve(threads):
    """The thread count for one call: a model's own ``threads`` if set, else the process default; fewer when
    other processes hold cores (unless TINYNET_ADAPT_THREADS=0)."""
    wanted = check_threads(threads) if threads is not None else get_threads()
    return min(wanted, free_cores()) if ADAPT and wanted > 1 else wanted
