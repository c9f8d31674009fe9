from dedup.memory import return_large_blocks


def test_the_threshold_is_set_on_glibc() -> None:
    # This test machine runs glibc (Debian); elsewhere the call is a harmless False.
    assert return_large_blocks() is True
