"""Live progress for a run: a bar with ETA, rows/s, errors and cache hits.

Template-owned. On a terminal the bar redraws in place; otherwise (CI, logs, `make` piped to a
file) it prints a plain line every few seconds, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """Counts done/errors/cache hits and renders them at most every `interval` seconds."""

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None, interval: float | None = None):
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.2 if self.tty else 5.0)
        self.done = self.errors = self.cache_hits = self.skipped = 0
        self.started = time.perf_counter()
        # A terminal shows the bar at once; a log gets its first line after `interval` (not a 0/N line).
        self._last_render = 0.0 if self.tty else self.started

    def skip(self, count: int, cache_hits: int = 0) -> None:
        """Rows that needed no computation (resumed or cache hits): not part of the rate."""
        if not count:
            return
        self.skipped += count
        self.update(done=count, cache_hits=cache_hits)

    def update(self, done: int = 0, errors: int = 0, cache_hits: int = 0) -> None:
        self.done += done
        self.errors += errors
        self.cache_hits += cache_hits
        now = time.perf_counter()
        if now - self._last_render >= self.interval:
            self._last_render = now
            self.render()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        rate = (self.done - self.skipped) / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - self.done) / rate if rate > 0 else 0.0
        eta = _duration(remaining) if rate > 0 or self.done >= self.total else "?"
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * 24)
        return (
            f"{self.label} [{bar:<24}] {self.done}/{self.total} {share:5.1%} "
            f"{rate:,.0f} rows/s ETA {eta} errors {self.errors} cache hits {self.cache_hits}"
        )

    def render(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")  # clear what a longer line left
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """The final line, always printed (a short run may have printed nothing else)."""
        self.render()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
