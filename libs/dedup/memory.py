"""Give large freed blocks back to the system at once (glibc malloc), so that a service's
resident memory follows what it holds now, not the most it ever held.

glibc serves a block above its mmap threshold by mmap and unmaps it on free, but the
threshold is dynamic: freeing one such block raises it to that block's size (up to
32 MiB), and from then on a full-size image's blocks (Pillow allocates 16 MiB at a time)
come from the per-thread heaps, which keep them after free. Four decoding threads then
each keep the most they once decoded: the decode budget bounds what is held, not what is
resident. A fixed threshold turns the dynamic one off.

It turns glibc's dynamic trim threshold off too, back to 128 KiB: every free that leaves
more than that at the top of a heap gives it back, and the next array there faults its
pages in again (zeroed by the kernel, counted as the process's CPU): the hasher's
features make and drop several arrays of a few MiB an image, and paid more for the page
faults than for the arithmetic (bench/README.md, hasher_throughput). So the trim
threshold is fixed where glibc's dynamic rule puts it, at twice the mmap threshold: a
heap keeps at most that much free at its top.
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import Final

M_TRIM_THRESHOLD: Final = -1  # <malloc.h>
M_MMAP_THRESHOLD: Final = -3
# Blocks of this size or more are mmapped: the full-size decodes, never the many small
# objects (whose mmap would cost a system call each).
MMAP_THRESHOLD_BYTES: Final = 4 << 20


def return_large_blocks(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold, and its trim threshold at twice that (before threads
    start); False off glibc."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, 2 * threshold)
        )
    return False


__all__ = ["return_large_blocks"]
