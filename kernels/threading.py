"""Pick Numba's threading layer before the first parallel kernel is compiled.

Measured on this project's 2-core machine (../shared/notes/numba-lab.md, section 4):
- ``workqueue`` costs ~60 us to enter each parallel region and aborts when two Python threads
  call parallel kernels at once, so it is never chosen;
- ``omp`` enters a region in ~1-3 us and gave 2.1x on a real call sequence at 2 threads;
  ``tbb`` gave 1.1x there, and a pip-installed tbb is usually not found by Numba anyway.
tinynet never calls OpenBLAS on its hot path, which is what makes ``omp`` safe here: OpenBLAS's
spinning threads next to libgomp's stall for milliseconds.

``omp`` is thread safe but not fork safe (GNU OpenMP): use the ``spawn`` start method for
multiprocessing, or set NUMBA_THREADING_LAYER=forksafe / tbb yourself. An explicit
NUMBA_THREADING_LAYER in the environment always wins.

OpenMP's threads wait for work passively (OMP_WAIT_POLICY=passive) unless the environment says
otherwise (OMP_WAIT_POLICY or GOMP_SPINCOUNT). Spinning saves a few microseconds per layer on an
idle machine (numba-lab section 4: 3.1 vs 8.7 us per region), but as soon as another process or the
host application's threads want the cores, a spinning barrier waits out the scheduler's time slice:
measured here with one other busy process on the 2 cores, an empty 2-thread parallel region took
8000 us with the default policy and 5 us passive. libgomp reads the variable when it is loaded,
so this module sets it before anything loads libgomp.
"""
import os

import numba

PREFERRED_LAYER = "omp"


def _omp_available():
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:
        return False
    return True


if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "passive"  # before _omp_available(): importing omppool loads libgomp
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = PREFERRED_LAYER if _omp_available() else "default"
