"""The course as students and instructors meet it: every chapter in a real Chromium.

Each chapter notebook runs in JupyterLab (Run All Cells), and again in presentation mode
(`xai-course present`, Voila). On every page: every widget output has been drawn, each plotly
figure has drawn its SVG, no widget says "Error displaying widget" / "Failed to load model
class", and no output holds a Python traceback. Then the chapter's main explorer, by
convention the first `Explorer` the notebook displays (its root carries the DOM class
`xai-explorer`), gets another sample from its sample picker, and its figure must change. A
screenshot of that explorer per chapter and page goes to test-artifacts/browser/ (and one of
the whole page when a test fails).

On the same pages, browser_explorers.py then walks every explorer: its geometry (no panels,
titles or tick labels over each other, images at their data's aspect ratio) after the first
draw and after control changes (every method with the reference check ticked, every mode, a
real click on the image where the explorer takes one, another model), screenshots of every
explorer at 1400x900 and 1280x720, and the time to each explorer's first and final picture.
Everything it finds is reported at once, at the end of the test. Presentation mode must show
its page (Voila's progress indicator) within seconds, even when the internet does not answer.

Chromium comes from the system (Debian: `apt-get install chromium`), driven by Playwright's
Python package; Playwright's own browser download is not needed. Without Chromium these tests
skip, except under CI (env CI set), where a missing browser is a failure. One JupyterLab
server and one browser serve all notebooks, one kernel at a time: after each notebook its
kernel is shut down. Servers and kernels inherit XAI_COURSE_FAST=1 and the network block
(conftest.py), and Chromium is started with its background traffic off. New notebooks in
notebooks/ are picked up without editing this file, and so are the students' exercise
notebooks in exercises/ (run unfilled in JupyterLab: drawn, without errors, every check
saying "not done yet", their explorers' layout measured).

Every wait has a time limit sized for a busy 2-core machine and ends with a message that says
what did not happen; a server is stopped with its whole process group and the kernels it
started.
"""

from __future__ import annotations

import contextlib
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

import browser_explorers as explorers
import nbformat
import psutil
import pytest

# A chapter's test runs its notebook and walks all its explorers: longer than the suite's
# default limit per test on a busy 2-core machine.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))  # the students' notebooks
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = (os.environ.get("XAI_COURSE_CHROMIUM") or shutil.which("chromium")
            or shutil.which("chromium-browser"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
INSTALL_HINT = ("Chromium is not installed; install it with `apt-get install chromium` "
                "(Debian/Ubuntu), or point XAI_COURSE_CHROMIUM at a Chromium binary")
TOKEN = "xai-course-browser-test"
WIDGET = "application/vnd.jupyter.widget-view+json"  # the mime type of a widget output

# Time limits, in seconds, for a busy 2-core machine (on an idle one a chapter runs in ~40 s)
RUN_TIMEOUT = 600  # a whole notebook
START_TIMEOUT = 300  # a server, a kernel, a page's first load
DRAW_TIMEOUT = 120  # the figures, after the notebook has run or a control has moved
ACTION_TIMEOUT = 60  # a click, a key press, a screenshot
SETTLE = 2  # the page must stay unchanged this long to count as drawn
FIRST_CONTENT = 10  # presentation mode: its page (a progress indicator) shows within this
OFFLINE_DELAY = 30  # ... while a request to the internet waits this long for no answer
VIEWPORT = {"width": 1400, "height": 900}

# What the page must not show. The explorers' error area also folds a traceback.
BAD_TEXT = ["Error displaying widget", "Failed to load model class", "Traceback",
            "No renderer could be found", "There was an error when executing cell"]  # Voila

# In the page: how many widget outputs have been drawn (a widget view not inside another),
# how many plotly figures have drawn a trace into their SVG (a bar or line is a `.trace`
# group, a heatmap or image an <image>), and how many explorers' figures have.
TRACE = "svg.main-svg .trace, svg.main-svg .mlayer image"
FIGURES_JS = """trace => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const explorers = [...document.querySelectorAll('.xai-explorer')];
  const drawn = plot => !!(plot && plot.querySelector(trace));
  return {
    views: [...document.querySelectorAll('.jupyter-widgets')]
      .filter(view => !view.parentElement.closest('.jupyter-widgets')).length,
    plots: plots.length,
    drawn: plots.filter(drawn).length,
    explorers: explorers.length,
    explorers_drawn: explorers.filter(e => drawn(e.querySelector('.js-plotly-plot'))).length,
  };
}"""
# For a failure message: what each explorer whose figure has not drawn shows (status, errors).
UNDRAWN_JS = """trace => [...document.querySelectorAll('.xai-explorer')].map((e, i) => {
  const plot = e.querySelector('.js-plotly-plot');
  return plot && plot.querySelector(trace) ? null
    : `explorer ${i}: ${plot ? 'figure without a trace' : 'no figure'}; it shows: `
      + e.innerText.replace(/\\s+/g, ' ').slice(-400);
}).filter(Boolean)"""
# Drawn: every widget output is there, every figure has drawn, and nothing has changed for
# SETTLE seconds (widgets inside a box and plotly draw asynchronously, one after another).
DRAWN_JS = f"""([trace, views, settle]) => {{
  const counts = ({FIGURES_JS})(trace);
  const key = JSON.stringify(counts);
  if (window.xaiCounts !== key) {{ window.xaiCounts = key; window.xaiSince = Date.now(); }}
  return counts.views === views && counts.drawn === counts.plots
    && counts.explorers_drawn === counts.explorers && Date.now() - window.xaiSince >= settle * 1000;
}}"""


# --------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT,
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


def start(command: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    """Start a server in a process group of its own (stop() ends the whole group)."""
    env = {**os.environ, "XAI_COURSE_FAST": "1"}
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """Stop a server, its process group, and the kernels it started: Jupyter starts each
    kernel in a session (and group) of its own, so a server killed before it could shut its
    kernels down would leave them running."""
    try:
        family = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # a Jupyter server shuts its kernels down
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for child in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(family, timeout=10)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(alive, timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a free localhost port with a token, on a copy of the notebooks (running
    them in the browser saves outputs, and the committed notebooks stay without)."""
    home = tmp_path_factory.mktemp("lab")
    notebooks = home / "notebooks"
    notebooks.mkdir()
    for path in NOTEBOOKS:
        shutil.copy(path, notebooks)
    (notebooks / "exercises").mkdir()  # beside the chapters, as in the repository
    for path in EXERCISES:
        shutil.copy(path, notebooks / "exercises")
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
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               # window.jupyterapp: the test reads the notebook's kernel and outputs from it
               "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = home / "server.log"
    process = start(command, log, notebooks)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/api/status?token={TOKEN}", process, log)
        yield SimpleNamespace(url=url, notebooks=notebooks, log=log)
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
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     timeout=START_TIMEOUT * 1000)
        yield chromium
        chromium.close()


def screenshot_if_failed(page, request, failures_before: int) -> None:
    """A screenshot of the page, when the test has failed (the session counts one more)."""
    if request.session.testsfailed > failures_before and not page.is_closed():
        name = re.sub(r"[^\w.-]+", "-", request.node.name)
        with contextlib.suppress(Exception):  # the failure itself is what matters
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=ARTIFACTS / f"failed-{name}.png")


@pytest.fixture
def page(browser, request):
    """A browser tab that can reach this machine only; it records what else it asked for.
    Such requests are refused at once, or, while `page.offline_delay` is set (seconds), held
    unanswered (`release_external` refuses them after that long): a classroom network that
    drops them. The tab runs the explorers' recorder (browser_explorers.RECORDER_JS)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(ACTION_TIMEOUT * 1000)
    context.set_default_navigation_timeout(START_TIMEOUT * 1000)
    context.add_init_script(explorers.RECORDER_JS)
    page = context.new_page()
    page.console_messages = []
    page.on("console", lambda m: page.console_messages.append(f"{m.type}: {m.text}"))
    page.external_requests = []
    page.offline_delay = None
    page.held = []  # (when, route) of the requests held unanswered

    def refuse(route):
        page.external_requests.append(route.request.url)
        if page.offline_delay:
            page.held.append((time.monotonic(), route))
        else:
            route.abort()

    context.route(re.compile(r"^[a-z]+://(?!(127\.0\.0\.1|localhost)[:/])"), refuse)
    failures = request.session.testsfailed
    yield page
    screenshot_if_failed(page, request, failures)
    context.close()


def release_external(page, everything: bool = False) -> None:
    """Refuse the held requests to the internet that have waited `page.offline_delay` s (or
    all of them)."""
    now = time.monotonic()
    for held in list(page.held):
        if everything or now - held[0] >= page.offline_delay:
            page.held.remove(held)
            with contextlib.suppress(Exception):  # the page may have given up on it
                held[1].abort()


@pytest.fixture
def lab_page(page, lab, request):
    """A tab for JupyterLab. Afterwards the tab is closed first (it would answer its kernel's
    end), then every kernel is shut down: the next notebook starts with their memory free."""
    failures = request.session.testsfailed
    yield page
    screenshot_if_failed(page, request, failures)
    page.context.close()
    shut_down_kernels(lab.url)


# --------------------------------------------------------------------------- checks
def wait_until_drawn(page, views: int) -> dict:
    """Wait until the page shows `views` widget outputs, every figure has drawn, and nothing
    has changed for SETTLE seconds; the counts then (check_page says what is missing)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(DRAWN_JS, arg=[TRACE, views, SETTLE],
                               timeout=DRAW_TIMEOUT * 1000, polling=500)
    return page.evaluate(FIGURES_JS, TRACE)


def check_page(page, where: str, views: int, outputs: str = ".jp-OutputArea") -> dict:
    """All `views` widget outputs drawn, every figure drawn, at least one explorer, no widget
    error, no traceback in the elements `outputs` selects."""
    counts = wait_until_drawn(page, views)
    assert counts["views"] == views, \
        f"{where}: {counts['views']} of the {views} widget outputs drawn after " \
        f"{DRAW_TIMEOUT} s ({counts}); console: {page.console_messages[-20:]}"
    assert counts["explorers"] >= 1, f"{where}: no explorer on the page ({counts})"
    assert counts["drawn"] == counts["plots"], \
        f"{where}: plotly figures without SVG {counts}: {page.evaluate(UNDRAWN_JS, TRACE)}"
    assert counts["explorers_drawn"] == counts["explorers"], \
        f"{where}: explorers without a drawn figure {counts}: {page.evaluate(UNDRAWN_JS, TRACE)}"
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


MAIN_FIGURE = ".xai-explorer .js-plotly-plot svg.main-svg"  # the first: the main explorer's
# The main explorer's figure, once it has not changed for SETTLE seconds (plotly may still
# resize it after a draw): a later change is the one the test makes.
STILL_JS = """([selector, settle]) => {
  const svg = document.querySelector(selector);
  const html = svg ? svg.outerHTML : '';
  if (window.xaiFigure !== html) { window.xaiFigure = html; window.xaiFigureSince = Date.now(); }
  return svg && Date.now() - window.xaiFigureSince >= settle * 1000 && html;
}"""


def slider_moved_to(handle, value: int, timeout: float = 10.0) -> bool:
    """Whether the slider whose handle this is has the value `value` within `timeout`
    seconds (its handle's aria-valuenow); True when the slider has no such handle."""
    if not handle.count():
        return True
    deadline = time.monotonic() + timeout
    while True:
        now = handle.first.get_attribute("aria-valuenow")
        if now is not None and float(now) == value:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


def move_main_explorer(page, where: str, screenshot: Path, views: int,
                       outputs: str = ".jp-OutputArea") -> None:
    """Pick the next sample in the first explorer; its figure must change. An explorer that
    takes no sample (it searches for inputs, as in chapter 06) moves its first integer
    slider instead."""
    explorer = page.locator(".xai-explorer").first
    explorer.scroll_into_view_if_needed()
    before = page.wait_for_function(STILL_JS, arg=[MAIN_FIGURE, SETTLE], polling=500,
                                    timeout=DRAW_TIMEOUT * 1000).json_value()
    readout = explorer.locator(".xai-sample:visible .widget-readout")
    if not readout.count():
        readouts = explorer.locator(".widget-readout:visible")
        readout = next((readouts.nth(i) for i in range(readouts.count())
                        if readouts.nth(i).inner_text().strip().isdigit()), None)
        assert readout is not None, f"{where}: the main explorer has no integer slider to move"
    value = int(readout.inner_text())
    handle = readout.locator("xpath=..").locator(".noUi-handle[aria-valuenow]")
    for _ in range(2):  # an edit of the readout was once lost on a busy page: type it again
        readout.click()
        readout.press("Control+A")
        readout.press_sequentially(str(value + 1))
        readout.press("Enter")
        if slider_moved_to(handle, value + 1):
            break
    try:
        # queried anew each time: plotly may replace the SVG element when it redraws
        page.wait_for_function("""([selector, before]) => {
            const svg = document.querySelector(selector);
            return svg && svg.outerHTML !== before;
        }""", arg=[MAIN_FIGURE, before], timeout=DRAW_TIMEOUT * 1000, polling=500)
    except Exception as error:
        errors = [m for m in page.console_messages if m.startswith("error")]
        raise AssertionError(f"{where}: the main explorer's figure did not change within "
                             f"{DRAW_TIMEOUT} s after moving its sample picker to {value + 1}; "
                             f"console errors: {errors}") from error
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        explorer.screenshot(path=screenshot)
    assert int(readout.inner_text()) == value + 1, f"{where}: the sample picker did not move"
    check_page(page, f"{where}, after moving the sample picker", views, outputs)


# --------------------------------------------------------------------------- JupyterLab
# The notebook `name` as JupyterLab's own objects see it: its kernel's status, the cells'
# prompts ("[ ]:", "[*]:", "[3]:"), how many widget outputs it holds, and any open dialog.
NOTEBOOK_JS = f"""name => {{
  const dialog = document.querySelector('.jp-Dialog');
  const state = {{dialog: dialog && dialog.innerText, kernel: 'no notebook', prompts: [],
                 views: 0}};
  const app = window.jupyterapp;
  const panel = app && [...app.shell.widgets('main')]
    .find(w => w.context && w.context.path === name);
  if (!panel) return state;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  state.kernel = !kernel ? 'no kernel'
    : kernel.connectionStatus === 'connected' ? kernel.status : kernel.connectionStatus;
  state.prompts = [...panel.content.node.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .map(p => p.textContent.trim());
  const cells = panel.model.cells;
  for (let i = 0; i < cells.length; i++) {{
    const outputs = cells.get(i).outputs;  // none in a markdown cell
    for (let j = 0; outputs && j < outputs.length; j++)
      if ('{WIDGET}' in outputs.get(j).data) state.views++;
  }}
  return state;
}}"""
RAN = r"/\[\d+\]/.test(p)"  # a prompt of a cell that has run


def wait_in_lab(page, name: str, condition: str, timeout: float, what: str) -> dict:
    """Wait until `condition` (JavaScript on the notebook's state `s`) holds; fail at once
    when JupyterLab opens a dialog (it would wait for an answer), or after `timeout` s."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    wait = f"name => {{ const s = ({NOTEBOOK_JS})(name); return (s.dialog || {condition}) && s; }}"
    try:
        state = page.wait_for_function(wait, arg=name, timeout=timeout * 1000,
                                       polling=500).json_value()
    except PlaywrightTimeout:
        state = page.evaluate(NOTEBOOK_JS, name)
        pytest.fail(f"{name}: waited {timeout:.0f} s for {what}; the kernel is "
                    f"{state['kernel']}, the prompts {state['prompts']}")
    if state["dialog"]:
        pytest.fail(f"{name}: JupyterLab asks, instead of {what}: {state['dialog']!r}")
    return state


def run_all_in_lab(page, url: str, name: str, timeout: float = RUN_TIMEOUT) -> dict:
    """Open the notebook, Run All Cells, wait until every cell has run; the notebook's state.
    Sets page.run_all_at (performance.now() in the page at Run All) and page.run_all_seconds
    (how long Run All took)."""
    page.goto(f"{url}/lab/tree/{name}?reset&token={TOKEN}")
    # Not the toolbar's kernel indicator: it reads "idle" before the notebook has a kernel,
    # and Run All Cells then opens a kernel dialog and runs nothing (seen on a busy machine).
    wait_in_lab(page, name, "s.kernel === 'idle'", START_TIMEOUT, "its kernel to start")
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    # when Run All starts, in the page's clock (the explorers' recorder uses it) and ours
    page.run_all_at, started = page.evaluate("() => performance.now()"), time.monotonic()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    wait_in_lab(page, name, f"s.prompts.some(p => p.includes('*') || {RAN})", ACTION_TIMEOUT,
                "Run All Cells to start the cells")
    # done when some cell has run, none is queued or running ([*]), and the kernel is idle
    state = wait_in_lab(
        page, name, f"s.kernel === 'idle' && s.prompts.some(p => {RAN}) "
                    "&& !s.prompts.some(p => p.includes('*'))", timeout, "every cell to run")
    page.run_all_seconds = time.monotonic() - started
    not_run = [(i, p) for i, p in enumerate(state["prompts"]) if not re.search(r"\[\d+\]", p)]
    assert not not_run, f"{name}: cells that did not run (after an error?): {not_run}"
    return state


def api(url: str, path: str, method: str = "GET"):
    """A call to the Jupyter server's REST API; its JSON answer (None when empty)."""
    request = urllib.request.Request(f"{url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=START_TIMEOUT) as response:
        body = response.read()
    return json.loads(body) if body else None


def shut_down_kernels(url: str) -> None:
    """End every notebook's session and kernel (the server answers once the kernel has
    exited), so that one notebook's kernel at a time holds memory."""
    for session in api(url, "sessions"):
        api(url, f"sessions/{session['id']}", method="DELETE")
    for kernel in api(url, "kernels"):  # one without a session, if any
        api(url, f"kernels/{kernel['id']}", method="DELETE")
    assert api(url, "kernels") == [], "kernels still running after their shutdown"


def test_there_are_chapter_notebooks():
    assert {"00_welcome.ipynb", "01_local_global.ipynb"} <= {p.name for p in NOTEBOOKS}


def walk_explorers(page, where: str, path: Path, page_name: str, pictures: list[dict],
                   start_ms: float, full: bool, report: explorers.Report | None = None) -> None:
    """Walk every explorer on the page (browser_explorers.inspect_explorers), print the
    timings, and fail with everything that was found."""
    report = report or explorers.Report(where)
    explorers.inspect_explorers(page, report, path, page_name, ARTIFACTS, pictures,
                                start_ms=start_ms, full=full)
    print("\n".join(report.lines))
    failure = report.failure()
    assert failure is None, failure


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_in_jupyterlab(path, lab_page, lab):
    where = f"{path.name} in JupyterLab"
    state = run_all_in_lab(lab_page, lab.url, path.name)
    print(f"\n{where}: Run All took {lab_page.run_all_seconds:.1f} s")
    counts = check_page(lab_page, where, state["views"])
    pictures = explorers.recorded_pictures(lab_page)
    move_main_explorer(lab_page, where, ARTIFACTS / f"lab-{path.stem}.png", state["views"])
    print(f"{where}: {counts['views']} widget outputs, {counts['plots']} plotly figures drawn, "
          f"{counts['explorers']} explorers")
    walk_explorers(lab_page, where, path, "lab", pictures, lab_page.run_all_at, full=True)


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.stem)
def test_exercises_in_jupyterlab(path, lab_page, lab):
    """A student's exercise notebook as it is handed out, blanks unfilled: Run All Cells, the
    page as for a chapter (every widget and figure drawn, no error), every check cell says
    "not done yet", the first explorer answers its sample picker, and every explorer's
    layout is measured at both screen sizes. The explorers' controls are walked in the
    chapters' tests (the same classes)."""
    from xai_course.exercises import NOT_DONE

    name, where = f"exercises/{path.name}", f"exercises/{path.name} in JupyterLab"
    state = run_all_in_lab(lab_page, lab.url, name)
    print(f"\n{where}: Run All took {lab_page.run_all_seconds:.1f} s")
    check_page(lab_page, where, state["views"])
    questions = nbformat.read(path, as_version=4).metadata["otter"]["tests"]
    said = lab_page.evaluate("""() => [...document.querySelectorAll('.jp-CodeCell')]
        .filter(c => /grader\\.check\\(/.test(c.querySelector('.jp-InputArea').textContent))
        .map(c => c.querySelector('.jp-OutputArea').textContent)""")
    assert len(said) == len(questions), f"{where}: {len(said)} check cells, {len(questions)} tests"
    silent = [text[-300:] for text in said if NOT_DONE not in text]
    assert not silent, f"{where}: checks that do not say {NOT_DONE!r}: {silent}"
    move_main_explorer(lab_page, where, ARTIFACTS / f"lab-exercises-{path.stem}.png",
                       state["views"])
    report = explorers.Report(where)
    found = explorers.find_explorers(lab_page, path)
    for explorer in found:
        explorers.check_geometry(lab_page, explorer, report, "as first drawn")
    explorers.screenshots(lab_page, found, report, "lab", f"exercises-{path.stem}", ARTIFACTS)
    print("\n".join(report.lines))
    failure = report.failure()
    assert failure is None, failure


def test_the_checks_catch_an_error_in_the_outputs(lab_page, lab):
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
        state = run_all_in_lab(lab_page, lab.url, "broken.ipynb", timeout=180)
        with pytest.raises(AssertionError, match="Traceback"):
            check_page(lab_page, "broken.ipynb", state["views"])
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        lab_page.screenshot(path=ARTIFACTS / "lab-broken.png")


def jumbled_and_tidy_figures():
    """Two figures of two panels each: a jumble (the first panel over the second, an image
    stretched, subplot titles over each other, a note over a panel, the title under the mode
    bar, a note above the figure's top edge; in a box that cuts off its tick labels), and the
    same content laid out properly (its title wrapped onto two lines, as the course wraps it)."""
    import numpy as np
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from xai_course import viz

    image = np.zeros((8, 8, 3), dtype=np.uint8)
    jumble = make_subplots(rows=1, cols=2, subplot_titles=("a long title over there", "and"))
    jumble.add_trace(go.Image(z=image), row=1, col=1)
    jumble.add_trace(go.Bar(x=[1, 2], y=["a very long category name", "another one"],
                            orientation="h"), row=1, col=2)
    jumble.update_layout(width=500, height=300, margin=dict(l=0, r=0, t=30, b=0),
                         xaxis=dict(domain=[0, 0.9]), xaxis2=dict(domain=[0.3, 1]),
                         yaxis=dict(scaleanchor="x2"))  # square pixels on the wrong axis
    jumble.layout.annotations[1].update(x=0.1, y=1.0)  # the second title over the first
    jumble.add_annotation(text="a note", x=0.5, y=0.5, xref="paper", yref="paper",
                          showarrow=False)
    jumble.add_annotation(text="cut off at the top", x=0.2, y=1.6, xref="paper", yref="paper",
                          showarrow=False)
    jumble.update_layout(title=dict(text="a centred title that runs under the mode bar",
                                    x=0.6, xanchor="center"))
    tidy = make_subplots(rows=1, cols=2, subplot_titles=("the image", "the bars"),
                         horizontal_spacing=0.3)
    tidy.add_trace(go.Image(z=image), row=1, col=1)
    tidy.add_trace(go.Bar(x=[1, 2], y=["short", "names"], orientation="h"), row=1, col=2)
    tidy.update_yaxes(scaleanchor="x", row=1, col=1)
    course = viz.layout("a title as the course places it, long as they get, and wrapped "
                        "onto a second line")
    tidy.update_layout(width=700, height=300, margin_t=90,  # the course's title and mode bar
                       title=course["title"], modebar=course["modebar"])
    return jumble, tidy


def test_the_geometry_checks_catch_a_jumble(page):
    """The measurement (browser_explorers.MEASURE_JS) and its judgement on two figures drawn
    by plotly.js in the browser: the jumble shows each kind of problem, the tidy one none."""
    import plotly.io

    jumble, tidy = jumbled_and_tidy_figures()
    # plotly.js itself comes along with the first figure (the page may reach no server)
    divs = [plotly.io.to_html(fig, include_plotlyjs=first, full_html=False)
            for fig, first in ((jumble, True), (tidy, False))]
    # the jumble in a box narrower than the figure, which cuts off its right side
    boxes = ['<div class="xai-explorer" style="width: 400px; overflow: hidden">',
             '<div class="xai-explorer">']
    page.set_content("<html><body>" + "".join(f"{box}{div}</div>" for box, div
                                              in zip(boxes, divs, strict=True))
                     + "</body></html>", timeout=START_TIMEOUT * 1000)
    page.wait_for_function("() => [...document.querySelectorAll('.xai-explorer .js-plotly-plot')]"
                           ".filter(gd => gd._fullLayout && gd.querySelector('.trace')).length"
                           " === 2", timeout=DRAW_TIMEOUT * 1000)
    page.evaluate(explorers.EXPLORERS_JS)
    found = {}
    for index in (0, 1):
        found[index] = explorers.geometry_problems(page.evaluate(explorers.MEASURE_JS, index))
    jumbled = "\n".join(found[0])
    for expected in ("panels xy and x2y2 overlap", "the image 'trace 0' in panel xy is drawn",
                     "overlap by", "overlaps the plotting area of panel",
                     "tick labels are clipped", "is under the mode bar",
                     "titles start above or left of the figure's edge"):
        assert expected in jumbled, f"the jumble's problems miss {expected!r}:\n{jumbled}"
    assert found[1] == [], f"a tidy figure has problems: {found[1]}"


# --------------------------------------------------------------------------- Voila
def widget_outputs(html: str) -> int:
    """How many widget outputs a Voila page holds: Voila sends each output of the executed
    notebook as JSON in a <script> and draws it in the page."""
    scripts = re.findall(r'<script type="application/vnd\.voila\.cell-output\+json">(.*?)'
                         r"</script>", html, re.S)
    return sum(WIDGET in json.loads(script).get("data", {}) for script in scripts)


# What the page shows so far: the time of its first paint with content (ms after the
# navigation started; null before), and its text (Voila's progress indicator, then the page).
FIRST_CONTENT_JS = """() => {
  const paint = performance.getEntriesByType('paint')
    .find(e => e.name === 'first-contentful-paint');
  return {ms: paint ? paint.startTime : null,
          text: document.body ? document.body.innerText.trim().slice(0, 80) : ''};
}"""


def wait_for_first_content(page, timeout: float) -> tuple[float | None, str]:
    """Wait until the page has painted some text; (seconds after navigation, the text), or
    (None, text) after `timeout` s. Meanwhile held requests to the internet are refused
    once they have waited page.offline_delay s, as a network that drops them would."""
    deadline = time.monotonic() + timeout
    shown = {"ms": None, "text": ""}
    while time.monotonic() < deadline:
        release_external(page)
        with contextlib.suppress(Exception):  # the document may be between states
            shown = page.evaluate(FIRST_CONTENT_JS)
        if shown["ms"] is not None and shown["text"]:
            return shown["ms"] / 1000, shown["text"]
        page.wait_for_timeout(250)  # (lets Playwright answer the page's requests meanwhile)
    return None, shown["text"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_in_presentation_mode(path, page, tmp_path):
    where = f"{path.name} in presentation mode (Voila)"
    report = explorers.Report(where)
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
        # Voila runs the notebook while it sends the page: its progress indicator must show
        # at once, also in a classroom whose network drops requests to the internet
        page.offline_delay = OFFLINE_DELAY
        started = time.monotonic()
        response = page.goto(url, wait_until="commit", timeout=START_TIMEOUT * 1000)
        first, text = wait_for_first_content(page, FIRST_CONTENT + OFFLINE_DELAY + 30)
        release_external(page, everything=True)
        page.offline_delay = None
        print(f"\n{where}: first visible content after "
              f"{'never' if first is None else f'{first:.1f} s'}: {text!r}")
        if first is None or first > FIRST_CONTENT:
            report.add("presentation", f"the page showed nothing for "
                       f"{'ever' if first is None else f'{first:.0f} s'} (limit "
                       f"{FIRST_CONTENT} s; requests to the internet: "
                       f"{page.external_requests})")
        # loaded means every cell has run
        try:
            page.wait_for_load_state("load", timeout=RUN_TIMEOUT * 1000)
        except Exception as error:
            raise AssertionError(f"{where}: the page did not load within {RUN_TIMEOUT} s; "
                                 f"Voila's log:\n{log.read_text()[-3000:]}") from error
        print(f"{where}: the notebook ran and the page loaded in "
              f"{time.monotonic() - started:.1f} s")
        views = widget_outputs(response.text())
        assert views >= 1, f"{where}: the page holds no widget output"
        # Voila's spinner goes when its script shows the outputs; the widgets follow
        page.wait_for_function("() => !document.querySelector('#loading')",
                               timeout=DRAW_TIMEOUT * 1000)
        counts = check_page(page, where, views, outputs="body")  # Voila shows no code
        pictures = explorers.recorded_pictures(page)
        if page.external_requests:
            report.add("presentation", f"the page asked the internet for "
                                       f"{page.external_requests}")
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
        move_main_explorer(page, where, ARTIFACTS / f"present-{path.stem}.png", views, "body")
        print(f"{where}: {counts['views']} widget outputs, {counts['plots']} plotly figures "
              f"drawn, {counts['explorers']} explorers")
        walk_explorers(page, where, path, "present", pictures, 0.0, full=False, report=report)
    finally:
        stop(process)
