import subprocess
import sys

from dedup.memory import return_large_blocks


def test_the_threshold_is_set_on_glibc() -> None:
    # This test machine runs glibc (Debian); elsewhere the call is a harmless False.
    assert return_large_blocks() is True


# In a fresh process (a long-lived one's heap has free chunks a block may come from
# instead of its top): a freed block under the thresholds stays at the top of the heap
# (mallinfo2's keepcost) for the next array; with glibc's default trim threshold of
# 128 KiB it would go back to the kernel and its pages fault in again.
_KEEPS_A_FREED_BLOCK = """
import ctypes
from dedup.memory import MMAP_THRESHOLD_BYTES, return_large_blocks

FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS.split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
assert return_large_blocks()
size = MMAP_THRESHOLD_BYTES // 2
libc.free(ctypes.c_void_p(libc.malloc(ctypes.c_size_t(size))))
print(libc.mallinfo2().keepcost >= size)
"""


def test_a_freed_block_under_the_threshold_stays_in_the_heap() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _KEEPS_A_FREED_BLOCK], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"
