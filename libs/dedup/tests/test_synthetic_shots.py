"""The look-alike generators: other shots of one scene, light/dark designs."""

import numpy as np
import pytest

from dedup import synthetic


def test_a_scene_is_the_same_for_the_same_seed_and_view() -> None:
    assert np.array_equal(np.asarray(synthetic.scene(4)), np.asarray(synthetic.scene(4)))


def test_another_view_shifts_near_objects_more_than_the_background() -> None:
    a = np.asarray(synthetic.scene(4, view=0, noise_seed=1), np.float32)
    b = np.asarray(synthetic.scene(4, view=30, noise_seed=1), np.float32)
    assert a.shape == b.shape and np.abs(a - b).mean() > 5
    # Another exposure of the same view differs only by sensor noise.
    c = np.asarray(synthetic.scene(4, view=0, noise_seed=2), np.float32)
    assert np.abs(a - c).mean() < 6


def test_a_view_beyond_the_scene_is_refused() -> None:
    with pytest.raises(ValueError, match="too far"):
        synthetic.scene(1, view=1000)


def test_burst_frames_differ_and_frame_zero_is_the_scene() -> None:
    zero = np.asarray(synthetic.burst(2, 0))
    assert np.array_equal(zero, np.asarray(synthetic.scene(2)))
    assert not np.array_equal(zero, np.asarray(synthetic.burst(2, 1)))


def test_the_dark_wallpaper_is_dark_where_the_light_one_is_light() -> None:
    light = np.asarray(synthetic.wallpaper(5).convert("L"), np.float32)
    dark = np.asarray(synthetic.wallpaper(5, dark=True).convert("L"), np.float32)
    assert light.mean() > 150 > 80 > dark.mean()
