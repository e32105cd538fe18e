"""How many of this machine's cores other processes are using right now (Linux; elsewhere: none known).

Linux counts every runnable thread of the machine in /proc/loadavg (its fourth field, "running/total", is an
instant count, not an average). Subtracting this process's own runnable threads (state R in
/proc/self/task/*/stat: the caller, and OpenMP workers still spinning after the last kernel) leaves the threads of
other processes that want a core at this moment. A CPU-bound neighbour is runnable all the time, so one sample sees
it; a process that mostly sleeps is seen about as often as it runs.

/proc/loadavg stays open and is re-read with pread (a procfs file regenerates its text at offset 0): ~1 us; the
threads' stat files, read only when the machine has more than one runnable thread, 5-8 us per thread of this
process, and /proc/loadavg once more after them (see busy_cores).
"""
import os

_loadavg = None  # open descriptor of /proc/loadavg


def _runnable_machine():
    """Runnable threads on the whole machine, this process's included."""
    global _loadavg
    if _loadavg is None:
        _loadavg = os.open("/proc/loadavg", os.O_RDONLY)
    return int(os.pread(_loadavg, 128, 0).split()[3].split(b"/")[0])


def _runnable_own():
    """Runnable threads of this process (the caller is one)."""
    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            fd = os.open(f"/proc/self/task/{tid}/stat", os.O_RDONLY)
        except OSError:  # the thread ended since listdir: not runnable
            continue
        try:
            stat = os.read(fd, 512)
        finally:
            os.close(fd)
        count += stat[stat.rindex(b")") + 2] == ord("R")  # "pid (comm) S ...": comm may hold spaces or ")"
    return count


def busy_cores():
    """Threads of other processes that are runnable now (0 where /proc cannot tell).

    The machine's count is read on both sides of this process's own: a kernel thread that stops spinning between
    the two reads (runnable in the first, asleep in its stat file) would otherwise count as another process's. On
    a quiet machine that race made a quarter of the looks between back-to-back 2-thread forwards see a busy core
    (LR-ASPP at 520x520: p90 63 ms against a p50 of 34). Taking the lower machine count can miss a neighbour for
    one look, and the next look sees it again."""
    try:
        before = _runnable_machine()
        if before <= 1:  # only the caller runs
            return 0
        own = _runnable_own()
        return max(0, min(before, _runnable_machine()) - own)
    except (OSError, ValueError, IndexError):
        return 0


def cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
