from pathlib import Path

import pytest

from dedup import cpus
from dedup.cpus import available_cpus, cgroup_quota, quota_v1, quota_v2


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path) == 1.5


def test_cgroup_v2_without_a_limit_falls_through(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path) is None


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path) == 2.0


def test_cgroup_v1_unlimited(tmp_path: Path) -> None:
    (tmp_path / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path) is None


@pytest.mark.parametrize("text", [None, "", "garbage", "0 100000", "100 0", "1 2 3"])
def test_bad_v2_lines_mean_no_quota(text: str | None) -> None:
    assert quota_v2(text) is None


def test_bad_v1_values_mean_no_quota() -> None:
    assert quota_v1("x", "100000") is None
    assert quota_v1(None, None) is None


def test_quota_rounds_up_and_affinity_bounds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpus, "affinity_count", lambda: 8)
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert available_cpus(tmp_path) == 2  # 1.5 CPUs: two threads keep the quota busy
    (tmp_path / "cpu.max").write_text("3200000 100000\n")
    assert available_cpus(tmp_path) == 8  # 32 CPUs of quota, but pinned to 8
    (tmp_path / "cpu.max").write_text("1000 100000\n")
    assert available_cpus(tmp_path) == 1  # never zero


def test_no_cgroup_files_use_the_affinity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus, "affinity_count", lambda: 3)
    assert available_cpus(tmp_path / "missing") == 3
