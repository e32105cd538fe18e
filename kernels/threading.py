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

Waiting: a forward pass is 30-70 parallel regions back to back. Between two of them an OpenMP worker
that has gone to sleep costs ~50 us to wake on this VM (a halted virtual CPU), more than many of
the regions take, so tinynet lets the workers spin for GOMP_SPINCOUNT = SPIN_COUNT iterations
(about 25 us here) before sleeping: long enough to bridge the gaps inside a forward pass, short
enough to give the core back soon after it. Measured with 2 threads, batch 1, idle machine
(bench/README.md): V3-Small 1.33 ms with this setting, 4.5 ms with passive waiting (slower than
1 thread, 1.65 ms), 1.27 ms spinning 10x longer. The price: when another busy process shares the
cores, a spinning worker loses its core for whole scheduler slices (V3-Small at 2 threads: 5 ms,
against 1.9 ms with passive waiting and 1.6 ms on 1 thread). On a loaded machine use 1 thread
(``tinynet.set_threads(1)``, ``--threads 1``) or set OMP_WAIT_POLICY=passive. libgomp reads these
variables when it is loaded, so this module sets them before anything loads it; explicit
OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment always win.
"""
import os

import numba

PREFERRED_LAYER = "omp"
SPIN_COUNT = 2000


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
