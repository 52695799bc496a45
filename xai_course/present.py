"""Presentation mode: one chapter's notebook as a standalone page for a projector, in Voila.

    xai-course present 03          # or: cam, 03_cam, 03_cam.ipynb

Voila runs the notebook in a fresh kernel and shows only its outputs (the prose, the figures
and the explorers; no code cells) on this machine only (127.0.0.1). The kernel inherits
XAI_COURSE_PRESENTATION=1, so every explorer draws large figures with large fonts.

While the notebook runs (up to a minute), the page shows Voila's progress indicator
("Executing 5 of 23") at once. Voila's own "lab" page links two Font Awesome stylesheets from
a CDN in its <head>; a stylesheet holds the page back until it arrives, so in a classroom
whose network drops requests to the internet the page stayed blank until the request timed
out. Presentation mode therefore uses the page template "xai-course": Voila's "lab" page
without those links (the icons the widgets use come with Voila and ipywidgets). The template
is written to a temporary Jupyter data directory for the time Voila runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["chapters", "find_chapter", "voila_command", "write_template", "present"]

CHAPTER = re.compile(r"^(\d\d)_(.+)\.ipynb$")
TEMPLATE = "xai-course"
# Voila's "lab" page, its stylesheet block without the CDN links (`super.super()` renders the
# block of the page Voila's own extends, skipping Voila's).
TEMPLATE_FILES = {
    "conf.json": json.dumps({"base_template": "lab"}),
    "index.html.j2": """\
{#- Voila's "lab" page without its stylesheet links to a CDN (xai_course/present.py) -#}
{%- extends 'voila/templates/lab/index.html.j2' -%}
{% import "spinner.macro.html.j2" as spinner %}

{%- block notebook_css -%}
  {% if frontend == "voila" %}
    {{ resources.include_js("static/voila-style.js") }}
  {% endif %}
  {{ spinner.css() }}
  <style>
    /* Hide empty cells */
    .jp-mod-noOutputs.jp-mod-noInput {
      display: none;
    }
  </style>
  {{ super.super() }}
{%- endblock notebook_css -%}
""",
}


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
    """The command that serves `notebook` with Voila on 127.0.0.1:`port`, with the page
    template "xai-course" (Voila finds it in JUPYTER_PATH: see `write_template`)."""
    return [sys.executable, "-m", "voila", str(Path(notebook).resolve()), f"--port={port}",
            "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", f"--template={TEMPLATE}",
            *([] if open_browser else ["--no-browser"])]


def write_template(data_dir: Path) -> Path:
    """Write the page template "xai-course" into the Jupyter data directory `data_dir`
    (data_dir/voila/templates/xai-course/); returns its folder. Voila finds it when
    `data_dir` is in JUPYTER_PATH."""
    folder = Path(data_dir) / "voila" / "templates" / TEMPLATE
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in TEMPLATE_FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


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
    with tempfile.TemporaryDirectory(prefix="xai-course-voila-") as data_dir:
        write_template(Path(data_dir))
        paths = [data_dir, *filter(None, os.environ.get("JUPYTER_PATH", "").split(os.pathsep))]
        env = {**os.environ, "XAI_COURSE_PRESENTATION": "1",
               "JUPYTER_PATH": os.pathsep.join(paths)}
        try:
            return subprocess.call(voila_command(notebook, port, open_browser), env=env,
                                   cwd=notebook.parent)
        except KeyboardInterrupt:
            return 0
