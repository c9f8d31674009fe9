"""A one-line progress bar on stderr: phase, count, share, rate and ETA; and the same
counts handed to a callback (the Python API's `progress`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from dedup.progress import StatusLine, clock_text

WIDTH = 24
# (done, total, phase): called when a phase starts (done 0) and after each of its files.
ProgressCallback = Callable[[int, int, str], None]


def progress_line(label: str, done: int, total: int, elapsed: float) -> str:
    share = done / total if total else 1.0
    filled = int(WIDTH * share)
    bar = "#" * filled + "." * (WIDTH - filled)
    rate = done / elapsed if elapsed > 0 else 0.0
    left = f"ETA {clock_text((total - done) / rate)}" if rate > 0 and done < total else ""
    if done >= total:
        left = f"in {clock_text(elapsed)}"
    return f"{label:9s} [{bar}] {done}/{total} {share:4.0%}  {rate:6.1f} img/s  {left}".rstrip()


class Progress:
    """Redrawn in place on a terminal (at most every `every` s); plain lines now and then
    elsewhere (a log file, a test); nothing at all when not `enabled`. `report`, if given,
    gets every count, whether or not a line is drawn."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        report: ProgressCallback | None = None,
    ) -> None:
        self._label, self._total = label, total
        self._enabled = enabled
        self._line = StatusLine(stream or sys.stderr, every=every, clock=clock)
        self._report = report
        self.done = 0
        if report is not None:
            report(0, total, label)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._report is not None:
            self._report(self.done, self._total, self._label)
        now = self._line.now()
        if self._line.due(now):
            self._show(now)

    def close(self) -> None:
        self._show(self._line.now(), last=True)

    def _show(self, now: float, last: bool = False) -> None:
        if self._enabled:
            elapsed = now - self._line.began
            self._line.show(
                progress_line(self._label, self.done, self._total, elapsed), now, last=last
            )
