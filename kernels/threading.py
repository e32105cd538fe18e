"""Pick Numba's threading layer, and how its idle threads wait, before the first parallel kernel is compiled.

Layer, measured on this project's 2-core machine (../shared/notes/numba-lab.md, section 4):
- ``workqueue`` costs ~60 us to enter each parallel region and aborts when two Python threads
  call parallel kernels at once, so it is never chosen;
- ``omp`` enters a region in ~2 us and gave 2.1x on a real call sequence at 2 threads;
  ``tbb`` gave 1.1x there, and a pip-installed tbb is usually not found by Numba anyway.
tinynet never calls OpenBLAS on its hot path, which is what makes ``omp`` safe here: OpenBLAS's
spinning threads next to libgomp's stall for milliseconds.

``omp`` is thread safe but not fork safe (GNU OpenMP): use the ``spawn`` start method for
multiprocessing, or set NUMBA_THREADING_LAYER=forksafe / tbb yourself. An explicit
NUMBA_THREADING_LAYER in the environment always wins.

Waiting: a forward pass is 30-70 parallel regions back to back, and between two of them the worker
threads wait. One that has gone to sleep costs ~30 us to wake on this VM (a halted virtual CPU), and
much more right after the process has been idle: for the next ~20 ms every wake-up can cost
milliseconds (likely the hypervisor's halt polling, which shrinks for a vCPU that has slept long). tinynet therefore lets the
workers spin for GOMP_SPINCOUNT = SPIN_COUNT iterations before sleeping, which is 160-320 us here
(bench/README.md): long enough to bridge every gap inside a forward pass, short enough to give the
core back soon after it. Measured with 2 threads, batch 1, V3-Small, 20 forwards after each 0.1 s
pause (as bench/models.py runs them): p50 / p90 1.35-1.50 / 7.5 ms spinning 2000 iterations (~25 us),
1.27-1.31 / 1.6-1.7 ms with 20000, 1.24-1.56 / 1.6-1.8 ms spinning for ever (OMP_WAIT_POLICY=active).
The price: the workers burn up to ~0.3 ms of CPU after each forward, and when another busy process
shares the cores, a spinning worker loses its core for whole scheduler slices. On a loaded machine
use 1 thread (``tinynet.set_threads(1)``, ``--threads 1``) or set OMP_WAIT_POLICY=passive. libgomp
reads these variables when it is loaded, so this module sets them before anything loads it;
explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment always win.
"""
import os

import numba

PREFERRED_LAYER = "omp"
SPIN_COUNT = 20000


def _omp_available():
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:
        return False
    return True


if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)  # before _omp_available(): importing omppool loads libgomp
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = PREFERRED_LAYER if _omp_available() else "default"
