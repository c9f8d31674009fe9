"""A one-line progress report on stderr: count, rate and, when the total is known, ETA."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from dedup.progress import StatusLine, clock_text


def progress_line(
    done: int, published: int, elapsed: float, *, start: int = 0, expected: int | None = None
) -> str:
    """`done` counts from `start` (a resumed run): the rate is this run's own."""
    rate = (done - start) / elapsed if elapsed > 0 else 0.0
    parts = [f"{done:,} listed", f"{published:,} published", f"{rate:,.0f}/s", clock_text(elapsed)]
    if expected:
        parts[0] = f"{done:,}/{expected:,} listed ({min(1.0, done / expected):.0%})"
        left = max(0, expected - done)
        parts.append(f"ETA {clock_text(left / rate)}" if rate > 0 else "ETA ?")
    return "  ".join(parts)


class Progress:
    """Redraws at most every `every` seconds (and at close); a terminal line or plain lines."""

    def __init__(
        self,
        *,
        start: int = 0,
        expected: int | None = None,
        stream: TextIO = sys.stderr,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._start, self._expected = start, expected
        # A terminal line is redrawn in place; a log file gets a line now and then.
        self._line = StatusLine(stream, every=every, tty_every=0.5, clock=clock)
        self._drawn = False

    def update(self, done: int, published: int, *, force: bool = False) -> None:
        now = self._line.now()
        if not force and self._drawn and not self._line.due(now):
            return
        self._drawn = True
        elapsed = now - self._line.began
        line = progress_line(done, published, elapsed, start=self._start, expected=self._expected)
        self._line.show(line, now)

    def close(self) -> None:
        self._line.end()
