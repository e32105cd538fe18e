"""Feed hostile files to tinynet in a child interpreter that cannot take the test down, and check what
SECURITY.md promises about each: a named TinynetError (or a working model), no crash, no raw exception,
peak memory under 1 GB, nothing left behind in the store, the working directory or the temp folder.

    outcomes = feed(files, action="import")       # one Outcome per file, all in one child process
    expect_refused(files, WeightsError, "sparse")  # each file refused with that class and message

The child runs with an address-space limit (``resource.setrlimit(RLIMIT_AS)``), a file-size limit
(RLIMIT_FSIZE: a sparse or bomb member cannot fill the disk), a timeout, a fresh
TINYNET_HOME (the store), working directory and TMPDIR, and reports after each file its own peak RSS
(VmHWM, else ``ru_maxrss``): a file that made tinynet allocate gigabytes fails here even when the limit let it through.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO

ADDRESS_SPACE = 3 << 30  # Numba and NumPy reserve much more address space than they touch
MAX_RSS = 1 << 30  # SECURITY.md: peak memory under 1 GB for any file under 10 MB
MAX_FILE_WRITTEN = 256 << 20  # RLIMIT_FSIZE: no file a hostile input makes tinynet write may be larger

CHILD = """
import json, resource, signal, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
resource.setrlimit(resource.RLIMIT_FSIZE, ({file_limit}, {file_limit}))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing the child
import tinynet
from tinynet import store

def peak():
    # VmHWM: the peak RSS of this process image. ru_maxrss would do, but Linux carries it over from the
    # parent (pytest, which built the hostile files) across fork and exec.
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

action, paths = sys.argv[1], sys.argv[2:]
for path in paths:
    try:
        if action == "import":
            store.import_file(path, "hostile")
        else:
            tinynet.load(path)
        result = {{"status": "ok"}}
    except tinynet.TinynetError as e:
        result = {{"status": "refused", "error": type(e).__name__, "message": str(e)}}
    except BaseException as e:
        result = {{"status": "raised", "error": type(e).__name__, "message": str(e)[:500]}}
    result["peak_rss"] = peak()
    print(json.dumps(result), flush=True)
{after}
"""


@dataclass
class Outcome:
    status: str  # "ok", "refused" (a TinynetError), "raised" (any other exception), "crashed"
    error: str = ""  # the exception's class name
    message: str = ""
    peak_rss: int = 0  # the child's peak resident memory so far, bytes

    def __str__(self):
        return f"{self.status} {self.error}: {self.message[:300]} (peak RSS {self.peak_rss >> 20} MB)"


def feed(files, action="load", after="", timeout=600):
    """Load (``action="load"``: tinynet.load) or import (``"import"``: store.import_file) each path of ``files``
    in one child interpreter, then run the Python code ``after`` there (a check that prints its own result).

    Returns ``(outcomes, after_output)``. Asserts the store, the working directory and the temp folder are
    left empty and that nothing was written beside the files."""
    files = [Path(f) for f in files]
    beside = {f.parent: sorted(p.name for p in f.parent.iterdir()) for f in files}
    with tempfile.TemporaryDirectory() as scratch:
        home, cwd, tmp = (Path(scratch) / d for d in ("home", "cwd", "tmp"))
        for d in (cwd, tmp):
            d.mkdir()
        env = {**os.environ, "PYTHONPATH": str(REPO), "TINYNET_HOME": str(home), "TMPDIR": str(tmp)}
        env.pop("TINYNET_MODEL", None)
        code = CHILD.format(limit=ADDRESS_SPACE, file_limit=MAX_FILE_WRITTEN, after=after)
        done = subprocess.run([sys.executable, "-c", code, action, *map(str, files)], capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=cwd)
        lines = done.stdout.splitlines()
        outcomes = [Outcome(**json.loads(line)) for line in lines[:len(files)]]
        if len(outcomes) < len(files):
            outcomes.append(Outcome("crashed", f"exit status {done.returncode}", done.stderr[-500:]))
        left = [str(p.relative_to(home)) for p in home.rglob("*") if not p.name.startswith(".lock-")
                and p != home / "models"] if home.exists() else []
        assert not left, f"left in the store: {left}"
        assert not list(cwd.iterdir()) and not list(tmp.iterdir()), "files left in the working or temp directory"
    for folder, names in beside.items():
        assert sorted(p.name for p in folder.iterdir()) == names, f"files written beside the inputs in {folder}"
    return outcomes, "\n".join(lines[len(files):])


def check(outcome, error, match):
    """Assert ``outcome`` is a refusal by exactly the class ``error`` whose message matches ``match``, within
    the memory promise."""
    assert outcome.status == "refused", str(outcome)
    assert outcome.error == error.__name__, f"expected {error.__name__}, got {outcome}"
    assert re.search(match, outcome.message), f"message does not match {match!r}: {outcome}"
    assert "\n" not in outcome.message, f"not one line: {outcome}"
    assert outcome.peak_rss < MAX_RSS, f"peak RSS {outcome.peak_rss >> 20} MB: {outcome}"


def expect_refused(files, error, match, action="load"):
    """Each file of ``files`` is refused with ``error`` (a TinynetError subclass) and a message matching
    ``match``, in one child process; see ``feed`` for the rest that is checked."""
    outcomes, _ = feed(files, action)
    for path, outcome in zip(files, outcomes):
        try:
            check(outcome, error, match)
        except AssertionError as e:
            raise AssertionError(f"{Path(path).name}: {e}") from None
    assert len(outcomes) == len(files)
