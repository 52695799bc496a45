"""`xai-course present CHAPTER`: which notebook a chapter names, and clean errors.

The page itself (Voila, large figures, no code, its progress indicator within seconds even
when the internet does not answer) is checked in a real browser in test_browser.py; here:
that Voila is told to use the course's page template, and finds and compiles it.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xai_course import present

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run(*args):
    return subprocess.run([sys.executable, "-m", "xai_course.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("name", ["03", "3", "cam", "03_cam", "03_cam.ipynb"])
def test_a_chapter_is_named_by_number_name_or_file(name):
    assert present.find_chapter(name, NOTEBOOKS) == NOTEBOOKS / "03_cam.ipynb"


def test_every_chapter_notebook_can_be_presented():
    found = present.chapters(NOTEBOOKS)
    assert list(found) == sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    for stem, path in found.items():
        assert present.find_chapter(stem[:2], NOTEBOOKS) == path


def test_unknown_chapter_lists_the_valid_ones():
    out = run("present", "no-such-chapter", "--no-browser")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "unknown chapter 'no-such-chapter'" in out.stderr
    for stem in present.chapters(NOTEBOOKS):
        assert stem in out.stderr


def test_missing_notebooks_folder_is_a_clean_error(tmp_path):
    out = run("present", "03", "--notebooks", str(tmp_path / "nowhere"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "no chapter notebooks" in out.stderr


def test_voila_serves_on_localhost_without_opening_a_browser():
    command = present.voila_command(NOTEBOOKS / "03_cam.ipynb", 9999, open_browser=False)
    assert command[:3] == [sys.executable, "-m", "voila"]
    assert str((NOTEBOOKS / "03_cam.ipynb").resolve()) in command
    assert {"--port=9999", "--Voila.ip=127.0.0.1", "--no-browser"} <= set(command)
    assert "--no-browser" not in present.voila_command(NOTEBOOKS / "03_cam.ipynb", 9999)


def test_voila_uses_the_course_template():
    command = present.voila_command(NOTEBOOKS / "03_cam.ipynb", 9999, open_browser=False)
    assert f"--template={present.TEMPLATE}" in command


def test_the_template_links_nothing_on_the_internet_and_voila_finds_it(tmp_path):
    """Voila's "lab" page minus its CDN stylesheets: no address outside this machine, and
    Voila's template search (the Jupyter data directories) finds it first, on top of "lab"."""
    import jinja2
    from jupyter_core.paths import jupyter_path
    from voila.paths import collect_template_paths

    folder = present.write_template(tmp_path)
    assert folder == tmp_path / "voila" / "templates" / present.TEMPLATE
    assert json.loads((folder / "conf.json").read_text()) == {"base_template": "lab"}
    page = (folder / "index.html.j2").read_text()
    assert "http" not in page and "super.super()" in page
    paths = collect_template_paths(["voila", "nbconvert"], present.TEMPLATE, prune=True,
                                   root_dirs=[str(tmp_path), *jupyter_path()])
    assert Path(paths[0]) == folder
    assert any(Path(p).parts[-2:] == ("templates", "lab") for p in paths[1:])
    # Voila's own "lab" page still has the links the course's page leaves out
    lab = next(Path(p) / "index.html.j2" for p in paths[1:]
               if Path(p).parts[-3:] == ("voila", "templates", "lab"))
    assert "cdn.jsdelivr.net" in lab.read_text()
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(paths))
    environment.get_template("index.html.j2")  # compiles (the page it extends is found later)


def test_a_view_made_later_starts_from_the_figure_shown():
    """Voila draws a widget after the notebook has run, from the widget's state (what
    `get_state()` sends a new view); so does a reloaded page. `update_figure` keeps that state
    up to date when it updates in place, and a new widget starts from its figure."""
    import numpy as np
    import plotly.graph_objects as go

    from xai_course.widgets.base import FigureWidget, update_figure

    def later_view(widget):  # the traces and layout a view made now starts from
        state = widget.get_state()
        return state["_widget_data"], state["_widget_layout"]

    widget = update_figure(FigureWidget(), go.Figure(go.Heatmap(z=np.eye(3)),
                                                     layout=dict(title="first")))
    data, layout = later_view(widget)
    assert [t["type"] for t in data] == ["heatmap"] and layout["title"]["text"] == "first"
    np.testing.assert_array_equal(np.asarray(data[0]["z"]), np.eye(3))
    same = update_figure(widget, go.Figure(go.Heatmap(z=2 * np.eye(3)),
                                           layout=dict(title="second")))
    assert same is widget  # in place, and the state follows
    data, layout = later_view(widget)
    np.testing.assert_array_equal(np.asarray(data[0]["z"]), 2 * np.eye(3))
    assert layout["title"]["text"] == "second"
    widget = update_figure(widget, go.Figure([go.Bar(y=[1, 2]), go.Scatter(y=[3, 1])]))
    assert [t["type"] for t in later_view(widget)[0]] == ["bar", "scatter"]
    bigger = update_figure(widget, go.Figure([go.Bar(y=[1, 2]), go.Scatter(y=[3, 1]),
                                              go.Scatter(y=[0, 1])]))
    assert bigger is not widget and len(later_view(bigger)[0]) == 3

