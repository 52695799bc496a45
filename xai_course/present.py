"""Presentation mode: one chapter's notebook as a standalone page for a projector, in Voila.

    xai-course present 03          # or: cam, 03_cam, 03_cam.ipynb

Voila runs the notebook in a fresh kernel and shows only its outputs (the prose, the figures
and the explorers; no code cells) on this machine only (127.0.0.1). The kernel inherits
XAI_COURSE_PRESENTATION=1, so every explorer draws large figures with large fonts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["chapters", "find_chapter", "voila_command", "present"]

CHAPTER = re.compile(r"^(\d\d)_(.+)\.ipynb$")


def chapters(notebooks: Path) -> dict[str, Path]:
    """The chapter notebooks, {"03_cam": path, ...}, in order."""
    return {p.stem: p for p in sorted(Path(notebooks).glob("[0-9][0-9]_*.ipynb"))}


def find_chapter(chapter: str, notebooks: Path) -> Path:
    """The notebook a chapter names: its number ("03"), its name ("cam"), or its file name."""
    found = chapters(notebooks)
    if not found:
        raise ValueError(f"no chapter notebooks (NN_name.ipynb) in {notebooks}")
    wanted = chapter.removesuffix(".ipynb")
    for stem, path in found.items():
        number, name = CHAPTER.match(path.name).groups()
        if wanted in (stem, number, name, str(int(number))):
            return path
    raise ValueError(f"unknown chapter {chapter!r}; choose from {', '.join(found)} "
                     f"(by number, name or file name)")


def voila_command(notebook: Path, port: int, open_browser: bool = True) -> list[str]:
    """The command that serves `notebook` with Voila on 127.0.0.1:`port`."""
    return [sys.executable, "-m", "voila", str(Path(notebook).resolve()), f"--port={port}",
            "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
            *([] if open_browser else ["--no-browser"])]


def present(chapter: str, notebooks: Path = Path("notebooks"), port: int = 8866,
            open_browser: bool = True) -> int:
    """Serve a chapter in presentation mode until Ctrl+C; returns Voila's exit status."""
    notebook = find_chapter(chapter, notebooks)
    try:
        import voila  # noqa: F401
    except ImportError as e:
        raise RuntimeError("presentation mode needs Voila: pip install voila") from e
    print(f"presenting {notebook.name} at http://127.0.0.1:{port}/ (Ctrl+C stops it)",
          flush=True)
    env = {**os.environ, "XAI_COURSE_PRESENTATION": "1"}
    try:
        return subprocess.call(voila_command(notebook, port, open_browser), env=env,
                               cwd=notebook.parent)
    except KeyboardInterrupt:
        return 0
