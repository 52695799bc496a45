"""Every chapter notebook is committed without outputs.

They execute top to bottom headless in test_binder.py, in the environment Binder builds (one
headless run per notebook), and again in JupyterLab and Voila in test_browser.py. New
notebooks in notebooks/ are picked up without editing this file.
"""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_chapter_notebooks():
    names = [nb.name for nb in NOTEBOOKS]
    assert "00_welcome.ipynb" in names and "01_local_global.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code cells"
    assert not any(c.get("outputs") for c in code), f"{path.name} has stored outputs"
    assert not any(c.get("execution_count") for c in code)
    assert "widgets" not in nb.get("metadata", {}), f"{path.name} stores widget state"
