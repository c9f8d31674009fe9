"""A one-line progress report on stderr: count, rate and, when the total is known, ETA."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def progress_line(
    done: int, published: int, elapsed: float, *, start: int = 0, expected: int | None = None
) -> str:
    """`done` counts from `start` (a resumed run): the rate is this run's own."""
    rate = (done - start) / elapsed if elapsed > 0 else 0.0
    parts = [f"{done:,} listed", f"{published:,} published", f"{rate:,.0f}/s", duration(elapsed)]
    if expected:
        parts[0] = f"{done:,}/{expected:,} listed ({min(1.0, done / expected):.0%})"
        left = max(0, expected - done)
        parts.append(f"ETA {duration(left / rate)}" if rate > 0 else "ETA ?")
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
        self._stream, self._clock = stream, clock
        self._tty = stream.isatty()
        # A terminal line is redrawn in place; a log file gets a line now and then.
        self._every = every if every is not None else (0.5 if self._tty else 10.0)
        self._began = clock()
        self._shown = float("-inf")
        self._last = ""

    def update(self, done: int, published: int, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._shown < self._every:
            return
        self._shown = now
        line = progress_line(
            done, published, now - self._began, start=self._start, expected=self._expected
        )
        if self._tty:
            self._stream.write("\r\x1b[K" + line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._last = line

    def close(self) -> None:
        if self._tty and self._last:
            self._stream.write("\n")
            self._stream.flush()
