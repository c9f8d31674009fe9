"""A stop that arrives before the event loop takes the signals over is kept, not lost.

A service's `__main__` calls `keep_early_signals()` before anything else (its imports take
about a second): Python's default action for SIGTERM would kill it mid-import, and as
PID 1 of a container it would not even see the signal. The runtime acts on what was kept
once its loop installs its own handlers (`dedup.runtime.stage.request_stop_on_signals`).
Only the standard library here: importing it costs nothing.
"""

import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# The stop signals that arrived before the event loop took them over.
_early: list[int] = []


def keep_early_signals() -> None:
    """Remember SIGTERM/SIGINT until the event loop's handler is installed."""

    def keep(signum: int, _frame: object) -> None:
        _early.append(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, keep)


def early_signal() -> signal.Signals | None:
    """The first stop signal that came before the loop's handler, if any."""
    return signal.Signals(_early[0]) if _early else None
