"""CPU threads fitted to a container's CPU quota, read from fake cgroup files."""

import pytest
import torch

from xai_course.threads import cpu_quota, match_cpu_quota


@pytest.fixture
def threads():
    """Put torch's thread count back after the test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def cgroup_v2(tmp_path, text):
    (tmp_path / "cpu.max").write_text(text)
    return tmp_path


def cgroup_v1(tmp_path, quota, period):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
    return tmp_path


def test_the_quota_is_read_from_cgroup_v2_and_v1(tmp_path):
    for name in "abcd":
        (tmp_path / name).mkdir()
    assert cpu_quota(cgroup_v2(tmp_path / "a", "150000 100000\n")) == 1.5
    assert cpu_quota(cgroup_v2(tmp_path / "b", "max 100000\n")) is None
    assert cpu_quota(cgroup_v1(tmp_path / "c", 200000, 100000)) == 2.0
    assert cpu_quota(cgroup_v1(tmp_path / "d", -1, 100000)) is None
    assert cpu_quota(tmp_path / "nothing-here") is None


def test_torch_gets_no_more_threads_than_the_quota(tmp_path, threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(8)
    assert match_cpu_quota(cgroup_v2(tmp_path, "100000 100000")) == 1
    assert torch.get_num_threads() == 1


def test_a_quota_above_torchs_threads_or_a_users_choice_is_left_alone(tmp_path, threads,
                                                                      monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    root = cgroup_v1(tmp_path, 400000, 100000)  # 4 CPUs
    torch.set_num_threads(2)
    assert match_cpu_quota(root) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "8")  # the user chose
    torch.set_num_threads(8)
    assert match_cpu_quota(cgroup_v2(tmp_path, "100000 100000")) == 8
