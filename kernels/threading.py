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
shares the cores, a spinning worker loses its core for whole scheduler slices. libgomp reads these
variables when it is loaded, so this module sets them before anything loads it; explicit
OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment always win.

Contention: a parallel region ends when every thread has done its static share, so with another
busy process on one of the 2 cores each region waits for a thread the OS has descheduled, 60 times
per forward. tinynet therefore takes, per call, no more threads than the cores other processes
leave free (tinynet.threads.resolve, tinynet.contention: an instant count of the machine's runnable
threads from /proc/loadavg minus this process's own, 1-25 us, looked at once per 5 ms at most), so
one busy neighbour means 1 thread on this machine. Measured A/B, each variant in its own process,
alternated (`python bench/models.py --batches 1 --threads 2 --engines tinynet onnxruntime litert
--variant fixed:TINYNET_ADAPT_THREADS=0 --variant passive:TINYNET_ADAPT_THREADS=0,OMP_WAIT_POLICY=passive
--rounds 5 --contention 1`), batch 1, median ms, V1 / V2 / V3-Large / V3-Small, on a machine other
work kept busy too (load average 1.7 -> 4.5):
- adaptive (the default):      32.0 / 19.4 / 22.7 / 7.1
- fixed 2 threads, spinning:   48.7 / 56.2 / 115.4 / 63.0
- fixed 2 threads, passive:    40.3 / 58.3 / 111.0 / 66.1
With 2 neighbours (load 4.5 -> 8.9): adaptive 51.9 / 46.9 / 49.6 / 21.4, fixed 44.7 / 109.8 / 85.4 / 105.1.
Also tried, in a lab of 56 GEMM calls of MobileNet shapes back to back (load 7-9): each thread
claiming tasks from an atomic counter (its own range first, then stealing from the back of the
other's, as pthreadpool does) instead of the static split: 77 ms against 110 static at 2 threads,
both behind 1 thread (63 ms); with OMP_WAIT_POLICY=passive, static and claimed 25 ms against 24 at
1 thread in one run, 31 and 27 against 75 in another (load 10): threads that sleep while they wait are
served first when they wake. On whole models, though, a passive wait at 2 threads lost to the adaptive
count (the table above: its 60 wake-ups per forward cost more than the small kernels take), so the split
stays static and the count adapts. LiteRT stays ahead under heavy load (V2 7.5 ms there): its worker
sleeps ~30 times per invoke and its 2 threads keep more than one core's share (bench/README.md,
"Under contention"). A lab that swapped claimed-task versions of the GEMM, depthwise and stem kernels
into whole plans (same task bodies, bit-identical logits) found claiming + OMP_WAIT_POLICY=passive the
fastest under contention and behind 1 thread without it (bench/README.md, "What was tried"); it needs
the passive wait process-wide, whose cost on a quiet machine is not measured yet, so it is not the
default.
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

from numba.np.ufunc.parallel import _iget_num_threads  # noqa: E402  (after the settings above, as libgomp's loading)


@numba.njit(cache=True, inline="always")
def one_thread():
    """Whether the calling thread runs Numba's kernels on one thread (numba.set_num_threads(1)). For parallel
    kernels only: they start the threading layer, whose thread count this reads.

    Kernels whose task bodies are explicit vector code (kernels.channel_rows) then run their tasks as a plain loop:
    entering a parallel region costs ~1 us even on one thread (the schedule, the gufunc call through the threading
    layer). The squeeze-and-excite kernel enters four: V3-Small's nine SE blocks in a plan at 1 thread, sum of each
    step's minimum over 300 forwards (load 9), 156 us with prange loops, 146 with its FCs as plain loops, 130 with
    every loop plain. Not for the GEMM and depthwise kernels: a parallel loop's body gets its arrays marked
    noalias, and without that their register tiles ran slower than the region costs (5x5 depthwise 1.2-1.4x,
    3136x16 -> 72 GEMM 56 -> 60 us in a plain loop).
    Through the intrinsic Numba's own parallel loops call: numba.get_num_threads() in a kernel reads a ctypes
    pointer, which keeps the kernel out of the on-disk cache.
    """
    return _iget_num_threads() == 1
