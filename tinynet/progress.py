"""A one-line progress bar on stderr, drawn only for a person watching.

Shown when stderr is a terminal; TINYNET_PROGRESS=1 forces it (logs, tests), TINYNET_PROGRESS=0 hides it.
Output written to stdout while a bar is showing should call ``clear()`` first so lines do not mix.
"""
import os
import sys
import time

BAR_WIDTH = 24
REDRAW_SECONDS = 0.1


def wanted(stream=None):
    """Whether to draw progress on ``stream`` (default stderr)."""
    forced = os.environ.get("TINYNET_PROGRESS", "")
    if forced in ("0", "1"):
        return forced == "1"
    stream = stream or sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()


class Progress:
    """``label [#####-----] done/total unit  rate unit/s  ETA m:ss``; ``total=None`` shows the count and rate only.

    ``unit="B"`` formats counts as bytes (KB, MB). A disabled bar (``enabled=False``) does nothing.
    """

    def __init__(self, label, total=None, unit="", enabled=None, stream=None):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream or sys.stderr
        self.enabled = wanted(self.stream) if enabled is None else enabled
        self.done = 0
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._visible = False

    def start(self, total):
        """Set the total once it is known (a download learns it from Content-Length)."""
        self.total = total
        self.started = time.monotonic()
        self._draw(force=True)

    def update(self, n=1):
        self.done += n
        self._draw()

    def clear(self):
        """Erase the bar so that the caller can print; the next update draws it again."""
        if self._visible:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._visible = False

    def close(self):
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self._visible = False

    @property
    def rate(self):
        """Units per second since ``start``."""
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def _draw(self, force=False):
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn_at < REDRAW_SECONDS):
            return
        self._drawn_at = now
        count = f"{self._fmt(self.done)}/{self._fmt(self.total)}" if self.total else self._fmt(self.done)
        bar = ""
        if self.total:
            filled = min(BAR_WIDTH, BAR_WIDTH * self.done // self.total)
            bar = "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "] "
        unit = "" if self.unit == "B" else f" {self.unit}" if self.unit else ""
        self.stream.write(f"\r\x1b[2K{self.label} {bar}{count}{unit}  {self._fmt(self.rate)}{unit}/s{self._eta()}")
        self.stream.flush()
        self._visible = True

    def _eta(self):
        """``  ETA m:ss`` while a total is known and not reached (from the rate so far), else nothing."""
        rate = self.rate
        if not self.total or self.done >= self.total or rate <= 0:
            return ""
        minutes, seconds = divmod(round((self.total - self.done) / rate), 60)
        return f"  ETA {minutes}:{seconds:02d}"

    def _fmt(self, n):
        if self.unit != "B":
            return f"{n:.1f}" if isinstance(n, float) else str(n)
        for scale, suffix in ((1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB")):
            if n >= scale:
                return f"{n / scale:.1f} {suffix}"
        return f"{int(n)} B"
