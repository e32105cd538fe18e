"""How many threads tinynet's kernels use.

The kernels run on Numba's thread pool (OpenMP layer, see kernels/threading.py). Numba's
``set_num_threads`` is per calling Python thread, so tinynet does not rely on it persisting: every
``Model.forward`` sets the count for the thread that calls it, from (in this order) the model's own
``threads``, the process default set with ``set_threads``, or all of Numba's threads
(NUMBA_NUM_THREADS, by default the number of cores). The plan of each input shape is made for its
thread count (its GEMM tiles split the work for that many threads).
"""
import numba

from tinynet.errors import TinynetError

_default = None


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


def resolve(threads):
    """The thread count for one call: a model's own ``threads`` if set, else the process default."""
    return check_threads(threads) if threads is not None else get_threads()
