"""Progress on stderr, one line: redrawn in place on a terminal, a plain line now and then
elsewhere (a log file, a test). The commands format their own lines; this draws them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


def clock_text(seconds: float) -> str:
    """3725 -> 1:02:05, 65 -> 1:05."""
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StatusLine:
    """Draws a line at most every `every` seconds (by default `tty_every` on a terminal,
    10 s elsewhere), or whenever told to; the last one stays."""

    def __init__(
        self,
        stream: TextIO,
        *,
        every: float | None = None,
        tty_every: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._every = every if every is not None else (tty_every if self._tty else 10.0)
        self._clock = clock
        self.began = clock()
        self._shown = self.began
        self._open = False  # a terminal line drawn and not yet ended

    def now(self) -> float:
        return self._clock()

    def due(self, now: float) -> bool:
        return now - self._shown >= self._every

    def show(self, line: str, now: float, *, last: bool = False) -> None:
        self._shown = now
        if self._tty:
            self._stream.write("\r\x1b[K" + line + ("\n" if last else ""))
            self._open = not last
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def end(self) -> None:
        """End a terminal line drawn in place (nothing to do elsewhere)."""
        if self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False
