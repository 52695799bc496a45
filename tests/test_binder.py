"""The Binder / JupyterHub image (binder/), checked as far as a machine without internet can.

What repo2docker reads: with a binder/ folder it reads only that folder; runtime.txt names the
Python (`python-X.Y`), requirements.txt is installed with pip from the repository's root (so
`.` installs the course itself; a pyproject.toml is not installed by itself), and postBuild
runs once after the install; only `set -e` makes it stop at a failing command.

Then the real thing: a fresh virtual environment built from binder/requirements.txt alone
(without its CPU-index lines, which need the internet: the torch of this machine's package
index instead) executes every chapter notebook top to bottom headless, with the network
blocked: no error output, no traceback, and each notebook's kernel under 1.5 GB of peak
resident memory (Binder guarantees 1 GB and kills at 2 GB). The peaks are printed per
notebook. This is the course's headless run of the notebooks (one run, in the environment
students get; the browser tests run them again in JupyterLab and Voila). New notebooks are
picked up without editing this file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import nbformat
import psutil
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from packaging.requirements import Requirement

from xai_course import zoo

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MEMORY_LIMIT = 1.5e9  # bytes of peak resident memory per notebook kernel

# Files that repo2docker would read instead of, or besides, ours: an environment.yml switches
# to conda and ignores runtime.txt; the others pick other build packs.
OTHER_BUILD_FILES = ["environment.yml", "Pipfile", "Pipfile.lock", "setup.py", "Project.toml",
                     "REQUIRE", "install.R", "DESCRIPTION", "Dockerfile", "default.nix"]


def requirement_lines() -> list[str]:
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def makefile_pin(package: str) -> str:
    """The version the Makefile installs (the one the course is tested with)."""
    return re.search(rf"\b{package}==([0-9][^\s\"+]*)", (ROOT / "Makefile").read_text()).group(1)


def test_the_makefile_tries_the_cpu_build_of_the_same_versions_first():
    """Without an NVIDIA GPU, `make` tries PyTorch's CPU-only build of the pinned versions,
    then falls back to the default build."""
    text = (ROOT / "Makefile").read_text()
    cpu = re.search(r"^TORCH_CPU\s*:=\s*(.+)$", text, re.M).group(1).split()
    assert cpu == [f"torch=={makefile_pin('torch')}+cpu",
                   f"torchvision=={makefile_pin('torchvision')}+cpu"], cpu
    assert "nvidia-smi" in text and "$(TORCH_CPU_INDEX) $(TORCH_CPU)" in text


def test_binder_folder_holds_what_repo2docker_reads():
    names = {p.name for p in BINDER.iterdir()}
    assert {"requirements.txt", "runtime.txt", "postBuild"} <= names
    assert not names & set(OTHER_BUILD_FILES), names & set(OTHER_BUILD_FILES)
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+)\.(\d+)", runtime)
    assert match, f"runtime.txt must read python-X.Y, not {runtime!r}"
    assert (int(match[1]), int(match[2])) >= (3, 10)  # pyproject's requires-python


def test_requirements_install_the_course_and_cpu_torch():
    lines = requirement_lines()
    options = [line for line in lines if line.startswith("-")]
    assert options == ["--extra-index-url https://download.pytorch.org/whl/cpu"], options
    assert "." in lines, "the repository itself (.) must be installed: pyproject.toml is not"
    pins = {}
    for line in lines:
        if line.startswith("-") or line == ".":
            continue
        requirement = Requirement(line)  # raises on a line pip would not read
        pins[requirement.name] = str(requirement.specifier)
    # the CPU builds of the versions the course is tested with (Binder has no GPU)
    assert pins == {"torch": f"=={makefile_pin('torch')}+cpu",
                    "torchvision": f"=={makefile_pin('torchvision')}+cpu"}, pins


def run_post_build(tmp_path: Path, fail_on: str | None) -> tuple[subprocess.CompletedProcess,
                                                                 list[str]]:
    """Run binder/postBuild with a stand-in `xai-course` that logs its arguments and fails
    when asked to fetch `fail_on`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    stand_in = bin_dir / "xai-course"
    stand_in.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n'
                        f'[ "$2" != "{fail_on}" ]\n')
    stand_in.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(BINDER / "postBuild")], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    return done, calls.read_text().splitlines() if calls.exists() else []


def test_post_build_prefetches_the_imagenet_weights(tmp_path):
    mode = (BINDER / "postBuild").stat().st_mode
    assert mode & stat.S_IXUSR, "postBuild must be executable (repo2docker runs it directly)"
    assert (BINDER / "postBuild").read_text().startswith("#!")
    done, calls = run_post_build(tmp_path, fail_on=None)
    assert done.returncode == 0, done.stderr
    fetchable = [m for m in zoo.models() if zoo.model_info(m).load is not None]
    assert calls == [f"fetch-weights {name}" for name in fetchable], calls
    assert not any("train" in call for call in calls), "the embedded models ship trained"


def test_post_build_stops_at_the_first_failure(tmp_path):
    fetchable = [m for m in zoo.models() if zoo.model_info(m).load is not None]
    done, calls = run_post_build(tmp_path, fail_on=fetchable[0])
    assert done.returncode != 0, "postBuild went on after a failing command (set -e?)"
    assert calls == [f"fetch-weights {fetchable[0]}"], calls


# --------------------------------------------------------------------------- a fresh venv
@pytest.fixture(scope="module")
def binder_python(tmp_path_factory):
    """A fresh venv with binder/requirements.txt installed (pip runs from a copy of the
    repository, as repo2docker runs it from the repository's root)."""
    home = tmp_path_factory.mktemp("binder")
    repo = home / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(
        ".venv", ".git", "test-artifacts", "build", "*.egg-info", "__pycache__", ".*_cache"))
    # without the CPU index (it needs the internet): torch from this machine's index
    offline = [line.replace("+cpu", "") for line in requirement_lines()
               if not line.startswith("-")]
    requirements = home / "requirements.txt"
    requirements.write_text("\n".join(offline) + "\n")
    version = (BINDER / "runtime.txt").read_text().strip().removeprefix("python-")
    base = shutil.which(f"python{version}")
    assert base, f"runtime.txt asks for Python {version}, which this machine does not have"
    venv = home / "venv"
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # the one step that needs the package index: pip runs without the network block
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
                             cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    where = subprocess.run([str(python), "-c", "import xai_course; print(xai_course.__file__)"],
                           capture_output=True, text=True, check=True, cwd=home).stdout
    assert str(venv) in where, f"the course was not installed into the venv: {where}"
    return python


def kernel_tree_peak(pid: int) -> int:
    """Peak resident memory (VmHWM, bytes) of a process plus its children's peaks."""
    total = 0
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:  # a child that has ended
            continue
        total += int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)[1]) * 1024
    return total


@pytest.fixture(scope="module")
def binder_kernels(binder_python, tmp_path_factory):
    """A kernel spec "binder" that starts the Binder venv's Python: its folder."""
    kernels = tmp_path_factory.mktemp("kernels")
    (kernels / "binder").mkdir()
    (kernels / "binder" / "kernel.json").write_text(json.dumps({
        "argv": [str(binder_python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "binder", "language": "python"}))
    return kernels


@pytest.mark.browser
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_headless_in_the_binder_environment_within_memory(path, binder_kernels,
                                                                        tmp_path, monkeypatch):
    """The chapter runs top to bottom with no browser, in the Binder venv, offline, with no
    error output and no traceback, under the memory limit."""
    assert os.environ.get("XAI_COURSE_FAST") == "1"  # conftest.py: the notebooks' quick sizes
    # explorers compute inside their cell, so the memory read after the last cell is the peak
    monkeypatch.setenv("XAI_COURSE_SYNC", "1")
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="binder",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(binder_kernels)]))
    client = NotebookClient(nb, km=km, timeout=600,
                            resources={"metadata": {"path": str(path.parent)}})
    peak = 0

    def measure(cell, cell_index):
        nonlocal peak  # VmHWM only grows: the value after the last cell is the notebook's peak
        peak = kernel_tree_peak(km.provisioner.process.pid)

    client.on_cell_complete = measure
    try:
        client.execute()
    finally:  # the client shuts down only the kernels (and channels) it made itself
        if client.kc is not None:
            client.kc.stop_channels()
        km.shutdown_kernel(now=True)
        nbformat.write(nb, tmp_path / path.name)  # the executed copy, to read on a failure
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors}"
    texts = " ".join(o.get("text", "") for o in outputs)
    assert "Traceback" not in texts, f"{path.name} printed a traceback: {texts[-2000:]}"
    print(f"{path.name}: peak resident memory of the kernel {peak / 2**20:.0f} MiB")
    assert peak < MEMORY_LIMIT, f"{path.name}: {peak / 2**30:.2f} GiB of peak memory, over " \
                                f"{MEMORY_LIMIT / 1e9} GB"
