import ctypes

from dedup.memory import MMAP_THRESHOLD_BYTES, return_large_blocks


def test_the_threshold_is_set_on_glibc() -> None:
    # This test machine runs glibc (Debian); elsewhere the call is a harmless False.
    assert return_large_blocks() is True


_MALLINFO2 = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2.split()]


def test_a_freed_block_under_the_threshold_stays_in_the_heap() -> None:
    # The trim threshold is fixed too: a freed top block under it is kept for the next
    # array (glibc's default of 128 KiB would give it back, and its pages fault in again).
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    assert return_large_blocks() is True
    size = MMAP_THRESHOLD_BYTES // 2
    block = libc.malloc(ctypes.c_size_t(size))
    libc.free(ctypes.c_void_p(block))
    assert libc.mallinfo2().keepcost >= size
