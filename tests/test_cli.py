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
    for command in ("lab", "train", "fetch-weights", "bench", "roar", "present"):
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
    out = run("bench", "local_global", "--quick", "--repeat", "1", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith(("gradient",
                                                                           "occlusion"))]
    assert len(lines) == 4
    for line in lines:
        fields = line.split()
        diff = float(next(f for f in fields if "e" in f and f[0].isdigit()))
        assert diff <= 1e-5, line
    assert "ratio" in out.stdout


def test_bench_alternates_runs_and_compares_medians():
    import torch

    from xai_course import bench

    calls = []

    def counted(tag, value, seconds):
        times = iter(seconds)

        def run():
            calls.append(tag)
            bench_clock.append(next(times))
            return torch.tensor([value])
        return run

    bench_clock = []
    real_timed = bench.timed

    def fake_timed(fn):  # the run's "seconds" are the ones the case was given
        result = fn()
        return bench_clock.pop(), result

    cases = [bench.Case("a", counted("a", 1.0, [9, 1, 5, 3]), counted("A", 1.5, [9, 2, 2, 8]),
                        "ref", target=1.1),
             bench.Case("b", counted("b", 2.0, [4]), counted("B", 2.0, [2]), "ref", repeat=1)]
    bench.timed = fake_timed
    try:
        rows = bench.run(cases, repeat=3, out=lambda *args: None)
    finally:
        bench.timed = real_timed
    assert calls[:8] == ["a", "A", "a", "A", "a", "A", "a", "A"]  # warm-up, then A B A B
    assert calls[8:] == ["b", "B"]  # one run a side, no warm-up
    assert rows[0]["ours_s"] == 3 and rows[0]["reference_s"] == 2  # medians of 1 5 3, 2 2 8
    assert rows[0]["ratio"] == 1.5 and rows[0]["target"] == 1.1
    assert rows[1]["ratio"] == 2.0
    assert [row["max_abs_diff"] for row in rows] == [0.5, 0.0]


def test_lab_passes_allow_root_only_as_root(monkeypatch, tmp_path):
    from xai_course import cli

    seen = []
    monkeypatch.setattr(cli.subprocess, "call", lambda command: seen.append(command) or 0)
    for uid in (0, 1000):
        monkeypatch.setattr(cli.os, "geteuid", lambda uid=uid: uid)
        assert cli.main(["lab", "--notebooks", str(tmp_path)]) == 0
    assert "--allow-root" in seen[0] and "--allow-root" not in seen[1]
    assert f"--notebook-dir={tmp_path}" in seen[1]


def test_bench_explorers_times_the_first_and_final_picture():
    """An explorer built as chapter 01 builds it: opening it, switching to occlusion (a coarse
    picture first: windows side by side) and a new sample, each timed to both pictures."""
    import torch

    from xai_course import bench

    lines = []
    rows = bench.explorer_times(torch.device("cpu"), only="01 gradient / occlusion",
                                out=lines.append)
    changes = [row["change"] for row in rows]
    assert changes == ["open", "next sample (gradient)", "method: occlusion",
                       "next sample (occlusion)"], changes
    for row in rows:
        assert 0 < row["first_s"] <= row["final_s"] < 60, row
    occluded = [row for row in rows if "occlusion" in row["change"]]
    assert all(row["coarse"] and row["first_s"] < row["final_s"] for row in occluded), occluded
    assert not any(row["coarse"] for row in rows if "gradient" in row["change"])
    assert "first (s)" in lines[0] and len(lines) == 1 + len(rows)


def test_bench_notebooks_runs_each_notebook_at_full_size(tmp_path, monkeypatch):
    import nbformat

    from xai_course import bench

    cells = ["import os, time\nfast = os.environ.get('XAI_COURSE_FAST')",
             "time.sleep(0.3)", "assert fast is None, fast  # full size: the switch is off"]
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]),
                   tmp_path / "07_tiny.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "not_a_chapter.ipynb")
    monkeypatch.setenv("XAI_COURSE_FAST", "1")
    lines = []
    rows = bench.notebook_times(str(tmp_path), out=lines.append)
    assert [row["notebook"] for row in rows] == ["07_tiny.ipynb"]
    assert 0.3 < rows[0]["seconds"] < 120
    assert "[1] 0.3 s" in lines[0] or "[1] 0.4 s" in lines[0], lines
    assert os.environ["XAI_COURSE_FAST"] == "1"  # given back
    with pytest.raises(FileNotFoundError, match="no chapter notebooks"):
        bench.notebook_times(str(tmp_path / "nowhere"))



def test_roar_writes_the_three_sweeps_and_resumes(tmp_path, monkeypatch):
    """`xai-course roar` on a tiny configuration (16 + 8 canvases, the gradient and the three
    controls, each job's retraining replaced by a recorder): the three tables are written,
    and a second run finds every job done."""
    import functools

    import pandas as pd

    from xai_course import evaluation, zoo

    monkeypatch.setattr(evaluation, "sweep_data", lambda: (
        zoo.dataset("cluttered-digits", split="train", n=16), zoo.dataset("cluttered-digits", n=8)))
    monkeypatch.setattr(evaluation, "course_estimators", lambda: {
        "GRAD": evaluation.paper_estimators()["GRAD"]})
    monkeypatch.setattr(evaluation, "train_canvas_model", functools.partial(
        evaluation.train_canvas_model, epochs=1, width=8))
    jobs = []
    monkeypatch.setattr(evaluation, "_roar_point", lambda *args: jobs.append(args) or (0.5, 1.0))
    assert cli.main(["roar", "--seeds", "2", "--out", str(tmp_path)]) == 0
    assert len(jobs) == 4 * 5 * 2 + 4 * 5 + 4 * 5  # ROAR with 2 seeds, KAR, no retraining
    assert cli.main(["roar", "--seeds", "2", "--out", str(tmp_path)]) == 0
    assert len(jobs) == 80  # nothing left to run
    for sweep, rows in (("roar", 40), ("kar", 20), ("no-retrain", 20)):
        assert len(pd.read_csv(tmp_path / f"{sweep}-cluttered-digits.csv")) == rows
