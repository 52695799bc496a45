"""The `xai-course` command line: help, bad names, bench output, fetch-weights offline."""

import os
import subprocess
import sys

import pytest

from xai_course import cli


def run(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "xai_course.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("lab", "train", "fetch-weights", "bench"):
        assert command in out.stdout


def test_unknown_model_is_refused_with_the_valid_names():
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "no-such-model"])
    assert exit_info.value.code == 2


def test_fetch_weights_offline_fails_clearly(tmp_path):
    env = dict(os.environ, TORCH_HOME=str(tmp_path))
    out = run("fetch-weights", "resnet50-imagenet", env=env)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "needs the internet" in out.stderr
    assert not list(tmp_path.rglob("*.pth"))  # nothing half-downloaded left behind


def test_bench_prints_ours_reference_ratio_and_difference():
    out = run("bench", "local-global", "--quick", "--repeat", "1", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith(("gradient",
                                                                           "occlusion"))]
    assert len(lines) == 4
    for line in lines:
        fields = line.split()
        diff = float(next(f for f in fields if "e" in f and f[0].isdigit()))
        assert diff <= 1e-5, line
    assert "ratio" in out.stdout


def test_bench_takes_the_best_of_repeat_runs_unless_a_case_says_otherwise():
    import torch

    from xai_course import bench

    calls = []

    def counted(tag, value):
        def run():
            calls.append(tag)
            return torch.tensor([value])
        return run

    cases = [bench.Case("a", counted("a", 1.0), counted("A", 1.5), "ref"),
             bench.Case("b", counted("b", 2.0), counted("B", 2.0), "ref", repeat=1)]
    rows = bench.run(cases, repeat=3, out=lambda *args: None)
    assert calls.count("a") == calls.count("A") == 3
    assert calls.count("b") == calls.count("B") == 1
    assert calls[:6] == ["a", "A", "A", "a", "a", "A"]  # in turns, alternating who goes first
    assert [row["max_abs_diff"] for row in rows] == [0.5, 0.0]
    assert all(row["ratio"] > 0 for row in rows)
