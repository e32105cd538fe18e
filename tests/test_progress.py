"""The progress bar's line: count, rate and ETA, computed from a clock the test controls."""
import io

import pytest

from tinynet import progress as progress_module
from tinynet.progress import Progress


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: now[0])
    return now


def last_line(stream):
    return stream.getvalue().split("\r\x1b[2K")[-1]


def test_rate_and_eta_from_the_time_so_far(clock):
    stream = io.StringIO()
    bar = Progress("evaluating", total=100, unit="images", enabled=True, stream=stream)
    clock[0] += 10
    bar.update(25)  # 2.5 images/s, 75 to go: 30 s
    assert last_line(stream) == "evaluating [######------------------] 25/100 images  2.5 images/s  ETA 0:30"
    clock[0] += 290
    bar.update(25)  # 50 in 300 s, 50 to go: 300 s
    assert last_line(stream).endswith("50/100 images  0.2 images/s  ETA 5:00")


def test_no_eta_once_done_or_without_a_total(clock):
    stream = io.StringIO()
    bar = Progress("classifying", total=4, unit="images", enabled=True, stream=stream)
    clock[0] += 2
    bar.update(4)
    bar.close()
    assert stream.getvalue().endswith("4/4 images  2.0 images/s\n")
    counting = io.StringIO()
    open_ended = Progress("downloading", unit="B", enabled=True, stream=counting)
    clock[0] += 1
    open_ended.update(3 << 20)
    assert "ETA" not in counting.getvalue() and "3.0 MB" in counting.getvalue()
