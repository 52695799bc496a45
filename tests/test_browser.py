"""The course as students and instructors meet it: every chapter in a real Chromium.

Each chapter notebook runs in JupyterLab (Run All Cells), and again in presentation mode
(`xai-course present`, Voila). On every page: each plotly figure has drawn its SVG, no widget
says "Error displaying widget" / "Failed to load model class", and no output holds a Python
traceback. Then the chapter's main explorer, by convention the first `Explorer` the notebook
displays (its root carries the DOM class `xai-explorer`), gets another sample from its sample
picker, and its figure must change. A screenshot of that explorer per chapter and page goes to
test-artifacts/browser/.

Chromium comes from the system (Debian: `apt-get install chromium`), driven by Playwright's
Python package; Playwright's own browser download is not needed. Without Chromium these tests
skip, except under CI (env CI set), where a missing browser is a failure. One JupyterLab
server and one browser serve all notebooks; servers and kernels inherit XAI_COURSE_FAST=1 and
the network block (conftest.py), and Chromium is started with its background traffic off.
New notebooks in notebooks/ are picked up without editing this file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = (os.environ.get("XAI_COURSE_CHROMIUM") or shutil.which("chromium")
            or shutil.which("chromium-browser"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
INSTALL_HINT = ("Chromium is not installed; install it with `apt-get install chromium` "
                "(Debian/Ubuntu), or point XAI_COURSE_CHROMIUM at a Chromium binary")
TOKEN = "xai-course-browser-test"
RUN_TIMEOUT = 600  # s for a whole notebook on a busy machine
DRAW_TIMEOUT = 120  # s for an explorer to draw after a change

# What the page must not show. The explorers' error area also folds a traceback.
BAD_TEXT = ["Error displaying widget", "Failed to load model class", "Traceback",
            "No renderer could be found", "There was an error when executing cell"]  # Voila

# In the page: how many plotly figures have drawn a trace into their SVG (a bar or line is a
# `.trace` group, a heatmap or image an <image>), and how many explorers' figures have.
TRACE = "svg.main-svg .trace, svg.main-svg .mlayer image"
FIGURES_JS = """trace => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const explorers = [...document.querySelectorAll('.xai-explorer')];
  return {
    plots: plots.length,
    drawn: plots.filter(p => p.querySelector(trace)).length,
    explorers: explorers.length,
    explorers_drawn: explorers.filter(e => e.querySelector('.js-plotly-plot')
      && e.querySelector('.js-plotly-plot').querySelector(trace)).length,
  };
}"""


# --------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 120,
                  statuses=(200,)) -> None:
    """Wait until `url` answers with one of `statuses`; fail with the server's log if the
    server dies or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = None
        if status in statuses:
            return
        time.sleep(0.5)
    pytest.fail(f"no answer from {url} after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """Stop a server and the kernels it started (its process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start(command: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "XAI_COURSE_FAST": "1"}
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a free localhost port with a token, on a copy of the notebooks (running
    them in the browser saves outputs, and the committed notebooks stay without)."""
    home = tmp_path_factory.mktemp("lab")
    notebooks = home / "notebooks"
    notebooks.mkdir()
    for path in NOTEBOOKS:
        shutil.copy(path, notebooks)
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # every cell stays in the page (no virtual scrolling), so that every figure can be checked
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # and JupyterLab does not offer to fetch its news from the internet
    news = home / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port = free_port()
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={notebooks}",
               f"--LabApp.user_settings_dir={home / 'settings'}",
               f"--LabApp.workspaces_dir={home / 'workspaces'}",
               "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = home / "server.log"
    process = start(command, log, notebooks)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/api/status?token={TOKEN}", process, log)
        yield SimpleNamespace(url=url, notebooks=notebooks)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT + " (CI is set: the browser tests must run)")
        pytest.skip(INSTALL_HINT)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A browser tab that can reach this machine only; it records what else it asked for."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.console_messages = []
    page.on("console", lambda m: page.console_messages.append(f"{m.type}: {m.text}"))
    page.external_requests = []

    def refuse(route):
        page.external_requests.append(route.request.url)
        route.abort()

    context.route(re.compile(r"^[a-z]+://(?!(127\.0\.0\.1|localhost)[:/])"), refuse)
    yield page
    context.close()


# --------------------------------------------------------------------------- checks
def wait_until_drawn(page, timeout: float = DRAW_TIMEOUT) -> dict:
    """Wait until every plotly figure and every explorer's figure has drawn its SVG."""
    deadline = time.monotonic() + timeout
    while True:
        counts = page.evaluate(FIGURES_JS, TRACE)
        done = (counts["drawn"] == counts["plots"]
                and counts["explorers_drawn"] == counts["explorers"])
        if done or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def check_page(page, where: str, outputs: str = ".jp-OutputArea") -> dict:
    """Every figure drawn, at least one explorer, no widget error, no traceback in the
    elements `outputs` selects."""
    counts = wait_until_drawn(page)
    assert counts["explorers"] >= 1, f"{where}: no explorer on the page ({counts})"
    assert counts["drawn"] == counts["plots"], f"{where}: plotly figures without SVG {counts}"
    assert counts["explorers_drawn"] == counts["explorers"], \
        f"{where}: explorers without a drawn figure {counts}"
    # the outputs (textContent: also what is folded away, such as an explorer's traceback)
    text = page.evaluate("""outputs => [...document.querySelectorAll(outputs)]
        .map(e => e.textContent).join('\\n')""", outputs)
    shown = [bad for bad in BAD_TEXT if bad in text]
    assert not shown, f"{where}: the outputs show {shown}; console: {page.console_messages[-20:]}"
    logged = [m for m in page.console_messages if any(bad in m for bad in BAD_TEXT)]
    assert not logged, f"{where}: the browser's console says {logged}"
    # nothing the course needs comes from the internet (Voila's page template links the
    # Font Awesome stylesheet from a CDN; Voila ships the same icons itself)
    external = [url for url in page.external_requests if "fontawesome" not in url]
    assert not external, f"{where}: the page asked the internet for {external}"
    return counts


def move_main_explorer(page, where: str, screenshot: Path, outputs: str = ".jp-OutputArea"):
    """Pick the next sample in the first explorer; its figure must change."""
    explorer = page.locator(".xai-explorer").first
    explorer.scroll_into_view_if_needed()
    figure = explorer.locator(".js-plotly-plot svg.main-svg").first  # the explorer's figure
    before = figure.inner_html()
    readout = explorer.locator(".xai-sample .widget-readout")
    value = int(readout.inner_text())
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value + 1))
    page.keyboard.press("Enter")
    try:
        page.wait_for_function("([svg, before]) => svg.innerHTML !== before",
                               arg=[figure.element_handle(), before],
                               timeout=DRAW_TIMEOUT * 1000)
    except Exception as error:
        errors = [m for m in page.console_messages if m.startswith("error")]
        raise AssertionError(f"{where}: the main explorer's figure did not change after "
                             f"moving its sample picker; console errors: {errors}") from error
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        explorer.screenshot(path=screenshot)
    assert int(readout.inner_text()) == value + 1, f"{where}: the sample picker did not move"
    check_page(page, f"{where}, after moving the sample picker", outputs)


# --------------------------------------------------------------------------- JupyterLab
def run_all_in_lab(page, url: str, name: str, timeout: float = RUN_TIMEOUT) -> None:
    page.goto(f"{url}/lab/tree/{name}?reset&token={TOKEN}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=120_000)
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    # done when no cell is queued or running ([*]) and the kernel is idle
    page.wait_for_function("""() => {
        const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
            .map(p => p.textContent);
        return prompts.some(p => /\\[\\d+\\]/.test(p)) && !prompts.some(p => p.includes('*'))
            && document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']");
    }""", timeout=timeout * 1000, polling=1000)
    not_run = page.evaluate("""() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
        .map((p, i) => [i, p.textContent]).filter(([i, t]) => !/\\[\\d+\\]/.test(t))""")
    assert not not_run, f"{name}: cells that did not run (after an error?): {not_run}"


def shut_down_kernels(url: str) -> None:
    """Free the memory of the notebooks' kernels (one notebook at a time)."""
    headers = {"Authorization": f"token {TOKEN}"}
    request = urllib.request.Request(f"{url}/api/kernels", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        kernels = json.load(response)
    for kernel in kernels:
        urllib.request.urlopen(urllib.request.Request(
            f"{url}/api/kernels/{kernel['id']}", method="DELETE", headers=headers), timeout=60)


def test_there_are_chapter_notebooks():
    assert {"00_welcome.ipynb", "01_local_vs_global.ipynb"} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_in_jupyterlab(path, page, lab):  # page first: no browser, no server
    where = f"{path.name} in JupyterLab"
    try:
        run_all_in_lab(page, lab.url, path.name)
        counts = check_page(page, where)
        move_main_explorer(page, where, ARTIFACTS / f"lab-{path.stem}.png")
        print(f"{where}: {counts['plots']} plotly figures drawn, {counts['explorers']} explorers")
    finally:
        shut_down_kernels(lab.url)


def test_the_checks_catch_an_error_in_the_outputs(page, lab):
    """A notebook whose last cell raises: the page check must fail on its traceback."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from xai_course.widgets.base import Explorer\n"
                                  "from xai_course import gradients\n"
                                  "Explorer(gradients.gradient, models=['digits'])"),
        nbformat.v4.new_code_cell("raise ValueError('broken on purpose')"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}})
    nbformat.write(nb, lab.notebooks / "broken.ipynb")
    try:
        run_all_in_lab(page, lab.url, "broken.ipynb", timeout=180)
        with pytest.raises(AssertionError, match="Traceback"):
            check_page(page, "broken.ipynb")
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / "lab-broken.png")
        shut_down_kernels(lab.url)


# --------------------------------------------------------------------------- Voila
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_in_presentation_mode(path, page, tmp_path):
    where = f"{path.name} in presentation mode (Voila)"
    port = free_port()
    log = tmp_path / "present.log"
    # the course's own command, as an instructor runs it (the number picks the chapter)
    process = start([sys.executable, "-m", "xai_course.cli", "present", path.name[:2],
                     "--notebooks", str(path.parent), f"--port={port}", "--no-browser"],
                    log, ROOT)
    try:
        url = f"http://127.0.0.1:{port}/"
        # any answer will do: the page itself would start the notebook's kernel
        wait_for_http(f"{url}voila/static/none", process, log, statuses=range(200, 500))
        assert f"presenting {path.name} at {url}" in log.read_text()
        page.goto(url, timeout=RUN_TIMEOUT * 1000)
        page.wait_for_selector(".xai-explorer", timeout=RUN_TIMEOUT * 1000)
        # Voila renders the outputs as the kernel produces them; done when the page stops
        # growing: the last cell's output is there
        page.wait_for_function(
            "() => !document.querySelector('#loading') && document.readyState === 'complete'",
            timeout=RUN_TIMEOUT * 1000)
        counts = check_page(page, where, outputs="body")  # Voila shows no code
        code = [c.source.splitlines()[0] for c in nbformat.read(path, as_version=4).cells
                if c.cell_type == "code" and c.source.strip()]
        text = page.inner_text("body")
        shown = [line for line in code if len(line) > 8 and line in text]
        assert not page.locator(".jp-InputArea-editor").count() and not shown, \
            f"{where}: code cells are shown: {shown}"
        large = page.evaluate("""() => Math.max(...[...document.querySelectorAll(
            '.xai-explorer .js-plotly-plot svg.main-svg')].map(
            s => s.getBoundingClientRect().height))""")
        assert large >= 600, f"{where}: explorer figures are {large}px high, not projector size"
        move_main_explorer(page, where, ARTIFACTS / f"present-{path.stem}.png", "body")
        print(f"{where}: {counts['plots']} plotly figures drawn, {counts['explorers']} explorers")
    finally:
        stop(process)
