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


if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = PREFERRED_LAYER if _omp_available() else "default"
