"""`xai-course present CHAPTER`: which notebook a chapter names, and clean errors.

The page itself (Voila, large figures, no code) is checked in a real browser in
test_browser.py.
"""

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


def test_figure_state_follows_updates_for_views_made_later():
    """Voila draws a widget after the notebook has run, from the widget's state: the state
    must hold the traces added and restyled since the widget was built."""
    import numpy as np
    import plotly.graph_objects as go

    from xai_course.widgets.base import update_figure

    widget = go.FigureWidget()
    update_figure(widget, go.Figure(go.Heatmap(z=np.eye(3)), layout=dict(title="first")))
    update_figure(widget, go.Figure(go.Heatmap(z=2 * np.eye(3)), layout=dict(title="second")))
    assert [t["type"] for t in widget._widget_data] == ["heatmap"]
    np.testing.assert_array_equal(widget._widget_data[0]["z"], 2 * np.eye(3))
    assert widget._widget_layout["title"]["text"] == "second"
    update_figure(widget, go.Figure([go.Bar(y=[1, 2]), go.Scatter(y=[3, 1])]))
    assert [t["type"] for t in widget._widget_data] == ["bar", "scatter"]
