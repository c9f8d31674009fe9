import cv2
import numpy as np
import pytest

from dedup.imaging import luminance


# The last two hold more rows than one strip (LUMA_STRIP_BYTES) does.
@pytest.mark.parametrize("shape", [(7, 5), (300, 200), (767, 1023), (1500, 90)])
def test_luma_in_strips_equals_one_conversion(shape: tuple[int, int]) -> None:
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    whole = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2GRAY)
    assert np.array_equal(luminance(rgb), whole)
