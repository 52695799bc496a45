"""Every explorer on a page, as a student sees it: its geometry, its controls, its timing.

test_browser.py opens each chapter in JupyterLab and in Voila; `inspect_explorers` then walks
every explorer on that page (no notebook is run again for this):

- geometry, after the first draw and after every control change: read from the page (one
  JavaScript function, MEASURE_JS, returns numbers) and judged in Python (`geometry_problems`):
  no two panels overlap, every image is drawn at its data's aspect ratio, no title overlaps
  another title, a panel or the mode bar, every tick label is inside its figure (not clipped);
- controls: the sample picker, every method of the method picker with the reference check
  ticked ("check against ..."), the mode switches (MODE_TOGGLES, MODE_CHECKBOXES), a real
  click on the image where the explorer reacts to one (CLICKS), and a change of model that
  changes the panels' shape (PREFERRED_MODELS); after each, the explorer's error area must
  stay empty;
- screenshots of every explorer at each of SIZES, as test-artifacts/browser/
  <page>-<notebook>-<explorer index>-<width>x<height>.png, with the geometry checked again;
- timing: a recorder in the page (RECORDER_JS, installed before the page loads) notes when
  each explorer's figure or status changes; each change reports the time to the first
  changed picture and to the final one (the status line no longer says "refining").

An "explorer" is an element with the DOM class `xai-explorer`, or a widget output that holds
a plotly figure without being one (such as chapter 05's tree regularisation). They are
numbered in page order; `explorer_names` names them from the notebook's code.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import nbformat

SIZES = [(1400, 900), (1280, 720)]  # a laptop, and a projector
SETTLE = 1  # seconds an explorer must stay unchanged to count as drawn ("refining": not yet)
CHANGE_TIMEOUT = 120  # a control change: the figure must change and settle within this
CLICK_TIMEOUT = 30  # a click on a figure: it must change within this
TOLERANCE_PX = 1  # overlaps and clipping up to this many pixels are not counted
ASPECT_TOLERANCE = 0.05  # an image's rendered aspect ratio, relative to its data's

# Controls by their description (ipywidgets' label). Mode switches change what an explorer
# draws (its panels), so every option of each is drawn once.
MODEL_PICKER = "model"
METHOD_PICKER = "method"
MODE_TOGGLES = ("view", "surrogate", "players")
MODE_CHECKBOXES = ("full occlusion map",)
CHECK_PREFIX = "check against"
# A change of model, preferring one whose panels differ in shape: the text model, then the
# 32x32 digits (after the 64x64 canvases). ImageNet models are left out: their weights may
# not be on the machine, and a photo takes long on a CPU.
PREFERRED_MODELS = ("reviews", "digits", "cluttered-digits", "shortcut-digits")
SKIPPED_MODELS = re.compile(r"imagenet", re.I)
# Errors that are an explorer's designed answer to a combination that cannot work (shown in
# its error area, as the chapter explains), not failures: CAM on a model without a global
# average pooling head (the digits model).
EXPECTED_ERRORS = re.compile(r"cam needs a global-average-pooling")
# Explorers that react to a click on their image: {chapter number: [explorer index, ...]}
# (01: the patch experiment, 05: LIME's superpixels).
CLICKS = {"01": [0], "05": [0]}

# --------------------------------------------------------------------------- in the page
# The explorers, in page order: elements with the class `xai-explorer`, and outermost widget
# views with a plotly figure that are not inside one (and hold none). Each gets the attribute
# data-xai-explorer="<index>", so that Playwright can find it.
EXPLORERS_JS = """() => {
  const tagged = [...document.querySelectorAll('.xai-explorer')];
  const views = [...document.querySelectorAll('.jupyter-widgets')].filter(v =>
    !v.parentElement.closest('.jupyter-widgets') && v.querySelector('.js-plotly-plot')
    && !v.closest('.xai-explorer') && !v.querySelector('.xai-explorer'));
  const all = [...tagged, ...views].sort((a, b) =>
    a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1);
  all.forEach((e, i) => e.setAttribute('data-xai-explorer', i));
  return all;
}"""

# Runs in every page from its start: every 200 ms it notes, per explorer, when its figures
# first showed a trace, and each time its figures or its text (status, errors) changed, and
# whether its status line says "refining" (the explorers draw coarse first, then refine).
RECORDER_JS = """(() => {
  const recorder = window.xaiRecorder = {explorers: []};
  const find = """ + EXPLORERS_JS + """;
  const tick = () => {
    let all;
    try { all = find(); } catch (error) { return; }
    const now = performance.now();
    all.forEach((e, i) => {
      const r = recorder.explorers[i] = recorder.explorers[i]
        || {signature: null, changes: [], firstDrawn: null, refining: false};
      const plots = [...e.querySelectorAll('.js-plotly-plot')];
      const svg = plots.map(p => (p.querySelector('svg.main-svg') || {}).outerHTML || '');
      const texts = [...e.querySelectorAll('.widget-html')].map(h => h.innerText).join('\\n');
      const signature = svg.join('') + '\\n' + texts;
      if (r.firstDrawn === null && plots.length
          && plots.every(p => p.querySelector('svg.main-svg .trace, svg.main-svg image')))
        r.firstDrawn = now;
      if (signature !== r.signature) {
        r.signature = signature;
        r.changes.push(now);
        if (r.changes.length > 200) r.changes.splice(1, 100);  // keep the first
      }
      r.refining = /\\brefining\\b/i.test(texts);
    });
  };
  setInterval(tick, 200);
})();"""

# Whether explorer `index` has changed since `since` (performance.now() ms), stayed unchanged
# for `settle` s and does not say "refining": then {first, final} in ms after `since`.
SETTLED_JS = """([index, since, settle]) => {
  const r = window.xaiRecorder.explorers[index];
  if (!r) return false;
  const after = r.changes.filter(t => t > since);
  const last = r.changes[r.changes.length - 1];
  if (!after.length || performance.now() - last < settle * 1000 || r.refining) return false;
  return {first: after[0] - since, final: last - since};
}"""

# The error an explorer shows: its error area (the message of a folded traceback, or a text in
# the error colour), and any traceback in its text.
ERRORS_JS = """index => {
  const e = document.querySelector(`[data-xai-explorer="${index}"]`);
  if (!e) return ['the explorer is gone from the page'];
  const shown = [...e.querySelectorAll('details')].map(d => d.parentElement.innerText)
    .concat([...e.querySelectorAll('[style*="b00020"]')].map(d => d.innerText))
    .map(t => t.trim().split('\\n')[0]).filter(Boolean);
  if (!shown.length && e.textContent.includes('Traceback'))
    shown.push(e.textContent.slice(e.textContent.indexOf('Traceback'), 300));
  return [...new Set(shown)];
}"""

# The rendered geometry of every plotly figure of explorer `index`, in page pixels (CSS px,
# relative to the viewport): the figure's SVG box and the box it is visible in (its clipping
# ancestors), each subplot's plotting area, each image's rendered size and its data's size,
# each title's box (figure title, annotations such as subplot titles, axis titles, legend),
# the mode bar's box, each tick label's box.
MEASURE_JS = """index => {
  const explorer = document.querySelector(`[data-xai-explorer="${index}"]`);
  const box = r => ({x: r.left, y: r.top, w: r.width, h: r.height});
  const figures = [...explorer.querySelectorAll('.js-plotly-plot')].map((gd, figure) => {
    const svg = gd.querySelector('svg.main-svg');
    const fl = gd._fullLayout;
    if (!svg || !fl) return {figure, drawn: false};
    const s = svg.getBoundingClientRect();
    // visible part: clipped by ancestors that do not let content overflow; vertically only
    // those inside the explorer (the page itself scrolls), horizontally all of them
    let clip = {left: s.left, top: s.top, right: s.right, bottom: s.bottom};
    clip.right = Math.min(clip.right, document.documentElement.clientWidth);
    clip.left = Math.max(clip.left, 0);
    for (let a = gd.parentElement; a && a !== document.documentElement; a = a.parentElement) {
      const style = getComputedStyle(a);
      const r = a.getBoundingClientRect();
      if (style.overflowX !== 'visible') {
        clip.left = Math.max(clip.left, r.left); clip.right = Math.min(clip.right, r.right);
      }
      if (style.overflowY !== 'visible' && explorer.contains(a)) {
        clip.top = Math.max(clip.top, r.top); clip.bottom = Math.min(clip.bottom, r.bottom);
      }
    }
    const panels = (fl._subplots.cartesian || []).map(id => fl._plots[id])
      .filter(p => p && !p.mainplot)  // an overlaid subplot shares its main plot's area
      .map(p => ({id: p.id, x: s.left + p.xaxis._offset, y: s.top + p.yaxis._offset,
                  w: p.xaxis._length, h: p.yaxis._length,
                  traces: gd._fullData.filter(t => t.visible !== false
                    && (t.xaxis || 'x') + (t.yaxis || 'y') === p.id).length}));
    const images = [...gd.querySelectorAll('g.im, g.hm')].map(g => {
      const cd = g.__data__ && g.__data__[0];
      const trace = cd && cd.trace;
      const element = g.querySelector('image');
      if (!trace || !element) return null;
      const r = element.getBoundingClientRect();
      const plot = fl._plots[(trace.xaxis || 'x') + (trace.yaxis || 'y')];
      const xa = plot.xaxis, ya = plot.yaxis;
      let dataW, dataH;
      if (trace.type === 'image') {
        dataW = cd.w * (trace.dx || 1); dataH = cd.h * (trace.dy || 1);
      } else {
        const xs = cd.x, ys = cd.y, z = cd.z || trace.z;
        dataW = xs && xs.length > 1 ? Math.abs(xs[xs.length - 1] - xs[0])
          : z[0].length * (trace.dx || 1);
        dataH = ys && ys.length > 1 ? Math.abs(ys[ys.length - 1] - ys[0])
          : z.length * (trace.dy || 1);
      }
      return {subplot: (trace.xaxis || 'x') + (trace.yaxis || 'y'), type: trace.type,
              name: trace.name || '', w: r.width, h: r.height, data_w: dataW, data_h: dataH,
              x_id: xa._id, scaleanchor: ya.scaleanchor || null,
              explicit_xy: trace.type === 'heatmap' && !!(trace.x || trace.y)};
    }).filter(Boolean);
    const titles = [...gd.querySelectorAll('.infolayer text')]
      .filter(t => !t.closest('.legend') && !t.closest('.colorbar') && t.textContent.trim())
      .map(t => {
        const group = t.closest('.annotation') ? 'annotation'
          : t.classList.contains('gtitle') ? 'figure title' : 'axis title';
        return {kind: group, text: t.textContent.trim(), ...box(t.getBoundingClientRect())};
      });
    gd.querySelectorAll('.legend').forEach(l => {
      const bg = l.querySelector('rect.bg') || l;
      titles.push({kind: 'legend', text: l.textContent.trim().slice(0, 60),
                   ...box(bg.getBoundingClientRect())});
    });
    // tick labels: g.xtick, g.x2tick, g.ytick, ... (one class per axis), and colour bars'
    const ticks = [...gd.querySelectorAll('g[class$="tick"] > text, .cbaxis text')]
      .filter(t => t.textContent.trim() && getComputedStyle(t).display !== 'none')
      .map(t => ({text: t.textContent.trim(), ...box(t.getBoundingClientRect())}));
    // the mode bar (zoom, pan, download...), shown at the top right on hover
    const bar = gd.querySelector('.modebar');
    const modebar = bar && bar.getBoundingClientRect().width ? box(bar.getBoundingClientRect())
      : null;
    return {figure, drawn: true, svg: box(s), modebar,
            clip: {x: clip.left, y: clip.top, w: clip.right - clip.left, h: clip.bottom - clip.top},
            panels, images, titles, ticks};
  });
  return figures;
}"""


# --------------------------------------------------------------------------- judging
def _overlap(a: dict, b: dict) -> tuple[float, float]:
    """How far two boxes {x, y, w, h} overlap, horizontally and vertically (px, >= 0)."""
    width = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    height = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    return max(0.0, width), max(0.0, height)


def _overlaps(a: dict, b: dict) -> str | None:
    """"W x H px" when the boxes overlap by more than TOLERANCE_PX both ways, else None."""
    width, height = _overlap(a, b)
    if width > TOLERANCE_PX and height > TOLERANCE_PX:
        return f"{width:.0f}x{height:.0f} px"
    return None


def _image_like(image: dict, images: list[dict]) -> bool:
    """An image (pixels that must stay square): an image trace, a heatmap in a subplot with an
    image, or a heatmap whose y axis is tied to its x axis (scaleanchor). Heatmaps of other
    data (the coloured words of a text, a decision region) may take any shape."""
    if image["type"] == "image":
        return True
    with_image = any(i["type"] == "image" and i["subplot"] == image["subplot"] for i in images)
    return with_image or image["scaleanchor"] == image["x_id"]


def geometry_problems(figures: list[dict]) -> list[str]:
    """What is wrong with the measured figures of one explorer (MEASURE_JS), as sentences."""
    problems = []
    for fig in figures:
        name = f"figure {fig['figure']}"
        if not fig["drawn"]:
            problems.append(f"{name} has not drawn (no SVG)")
            continue
        panels = fig["panels"]
        for i, a in enumerate(panels):
            for b in panels[i + 1:]:
                if (size := _overlaps(a, b)):
                    problems.append(f"{name}: panels {a['id']} and {b['id']} overlap by {size}")
        for image in fig["images"]:
            if not _image_like(image, fig["images"]):
                continue
            label = f"{name}: the {image['type']} {image['name']!r} in panel {image['subplot']}"
            if image["w"] < 1 or image["h"] < 1 or image["data_h"] <= 0:
                problems.append(f"{label} is drawn {image['w']:.0f}x{image['h']:.0f} px")
                continue
            drawn = image["w"] / image["h"]
            data = image["data_w"] / image["data_h"]
            if abs(drawn / data - 1) > ASPECT_TOLERANCE:
                problems.append(
                    f"{label} is drawn {image['w']:.0f}x{image['h']:.0f} px (aspect "
                    f"{drawn:.2f}) for data of {image['data_w']:g}x{image['data_h']:g} "
                    f"(aspect {data:.2f})")
        titles = fig["titles"]
        for i, a in enumerate(titles):
            for b in titles[i + 1:]:
                if (size := _overlaps(a, b)):
                    problems.append(f"{name}: the {a['kind']} {a['text']!r} and the {b['kind']} "
                                    f"{b['text']!r} overlap by {size}")
            if fig.get("modebar") and (size := _overlaps(a, fig["modebar"])):
                problems.append(f"{name}: the {a['kind']} {a['text']!r} is under the mode bar "
                                f"(zoom, pan, ...) by {size}")
            for panel in panels:
                if (size := _overlaps(a, panel)):
                    problems.append(f"{name}: the {a['kind']} {a['text']!r} overlaps the "
                                    f"plotting area of panel {panel['id']} by {size}")
        clip = fig["clip"]
        cut = [f"{t['kind']} {t['text'][:40]!r}" for t in titles
               if t["y"] < fig["svg"]["y"] - TOLERANCE_PX
               or t["x"] < fig["svg"]["x"] - TOLERANCE_PX]
        if cut:
            problems.append(f"{name}: titles start above or left of the figure's edge (cut "
                            f"off): {cut[:4]}")
        clipped = [t["text"] for t in fig["ticks"]
                   if t["x"] < clip["x"] - TOLERANCE_PX or t["y"] < clip["y"] - TOLERANCE_PX
                   or t["x"] + t["w"] > clip["x"] + clip["w"] + TOLERANCE_PX
                   or t["y"] + t["h"] > clip["y"] + clip["h"] + TOLERANCE_PX]
        if clipped:
            problems.append(f"{name}: {len(clipped)} tick labels are clipped (outside the "
                            f"figure's visible {clip['w']:.0f}x{clip['h']:.0f} px box): "
                            f"{clipped[:6]}")
    return problems


# --------------------------------------------------------------------------- the walk
@dataclasses.dataclass
class Explorer:
    """One explorer on the page: where it is, what it is called, what it took."""

    index: int
    name: str
    timings: list[str] = dataclasses.field(default_factory=list)

    def label(self, page_where: str) -> str:
        return f"{page_where}, explorer {self.index} ({self.name})"


@dataclasses.dataclass
class Report:
    """What the walk found: problems by kind, and the timing lines to print. A problem seen
    at several moments (first draw, after a change, at a size) is reported once, with them."""

    where: str
    problems: dict[str, dict[str, list[str]]] = dataclasses.field(default_factory=dict)
    lines: list[str] = dataclasses.field(default_factory=list)

    def add(self, kind: str, message: str, when: str | None = None) -> None:
        """Note a problem; the same problem (sizes aside) seen again adds only its moment."""
        same = re.sub(r" by \d+x\d+ px", "", message)
        known = self.problems.setdefault(kind, {})
        message = next((m for m in known if re.sub(r" by \d+x\d+ px", "", m) == same), message)
        moments = known.setdefault(message, [])
        if when and when not in moments:
            moments.append(when)

    def failure(self) -> str | None:
        """One message for all problems (None when there are none)."""
        count = sum(len(messages) for messages in self.problems.values())
        if not count:
            return None
        parts = [f"{self.where}: {count} problems"]
        for kind, messages in self.problems.items():
            parts.append(f"-- {kind} ({len(messages)}):")
            for message, moments in messages.items():
                seen = f" [{'; '.join(moments[:4])}{' ...' if len(moments) > 4 else ''}]" \
                    if moments else ""
                parts.append(f"   {message}{seen}")
        return "\n".join(parts)


def explorer_names(notebook: Path) -> list[str]:
    """The explorers a notebook displays, in order, as its code names them: the class built
    in a cell's last statement (`ZooTour(...)`, or `tour = ZooTour(...)` then `tour`)."""
    names = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        # the last statement starts at column 0 (not a continuation, comment or bracket)
        starts = [line for line in cell.source.splitlines()
                  if line.strip() and not line.startswith((" ", "\t", "#", ")", "]", "}"))]
        if not starts:
            continue
        built = dict(re.findall(r"^(\w+) = ([A-Z]\w*)\(", cell.source, re.M))
        if (match := re.match(r"^([A-Z]\w*)\(", starts[-1])):
            names.append(match.group(1))
        elif starts[-1].strip() in built:
            names.append(built[starts[-1].strip()])
    return names


def find_explorers(page, notebook: Path) -> list[Explorer]:
    """The explorers on the page, numbered and named (by the notebook when the counts agree)."""
    count = page.evaluate(f"() => ({EXPLORERS_JS})().length")
    names = explorer_names(notebook)
    if len(names) != count:
        names = ["?"] * count
    return [Explorer(i, names[i]) for i in range(count)]


def locate(page, explorer: Explorer):
    return page.locator(f'[data-xai-explorer="{explorer.index}"]')


def now_ms(page) -> float:
    return page.evaluate("() => performance.now()")


def wait_settled(page, explorer: Explorer, since: float, timeout: float) -> dict | None:
    """Wait until the explorer has changed after `since` and settled: {first, final} in ms,
    or None when it did not within `timeout` s."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        return page.wait_for_function(SETTLED_JS, arg=[explorer.index, since, SETTLE],
                                      timeout=timeout * 1000, polling=250).json_value()
    except PlaywrightTimeout:
        return None


def errors(page, explorer: Explorer) -> list[str]:
    return page.evaluate(ERRORS_JS, explorer.index)


def measure(page, explorer: Explorer) -> list[dict]:
    return page.evaluate(MEASURE_JS, explorer.index)


def check_geometry(page, explorer: Explorer, report: Report, when: str) -> list[dict]:
    """Measure the explorer's figures and note what is wrong with them."""
    figures = measure(page, explorer)
    for problem in geometry_problems(figures):
        report.add("geometry", f"{explorer.label(report.where)}: {problem}", when)
    return figures


def change(page, explorer: Explorer, report: Report, what: str, action,
           timeout: float = CHANGE_TIMEOUT, kind: str = "controls") -> bool:
    """Do `action` (a control change), wait until the explorer has changed and settled, note
    its timing, its error area and its geometry. False when nothing changed in time."""
    since = now_ms(page)
    try:
        action()
    except Exception as error:  # a control that cannot be used is a finding, not a crash
        report.add(kind, f"{explorer.label(report.where)}: could not {what}: "
                         f"{str(error).splitlines()[0]}")
        return False
    timing = wait_settled(page, explorer, since, timeout)
    if timing is None:
        report.add(kind, f"{explorer.label(report.where)}: after '{what}' the explorer did not "
                         f"change and settle within {timeout:.0f} s; it shows errors: "
                         f"{errors(page, explorer)}")
        return False
    explorer.timings.append(f"{what}: {timing['first'] / 1000:.1f}/{timing['final'] / 1000:.1f} s")
    shown = [e for e in errors(page, explorer) if not EXPECTED_ERRORS.search(e)]
    if shown:
        report.add("errors" if kind == "controls" else kind,
                   f"{explorer.label(report.where)}: after '{what}' its error area shows "
                   f"{shown}")
    check_geometry(page, explorer, report, f"after '{what}'")
    return True


# --- the controls, found by their description inside the explorer
def _labelled(page, explorer: Explorer, widget_classes: str, label: str):
    """The visible widgets of `widget_classes` (a CSS selector list) described `label`, in
    page order (a method's option may share its description with a picker of the frame,
    which comes first)."""
    return locate(page, explorer).locator(f":is({widget_classes}):visible").filter(
        has=page.locator(f'label.widget-label:text-is("{label}")'))


def choices(page, explorer: Explorer, label: str):
    """The first visible picker described `label` (dropdown or toggle buttons): its options,
    its value, and a function that picks an option; None when the explorer shows none."""
    found = _labelled(page, explorer, ".widget-dropdown, .widget-toggle-buttons", label)
    if not found.count():
        return None
    picker = found.first
    if picker.evaluate("e => e.classList.contains('widget-dropdown')"):
        select = picker.locator("select")
        options = [o.strip() for o in select.locator("option").all_inner_texts()]
        value = select.evaluate("s => s.options[s.selectedIndex] ? "
                                "s.options[s.selectedIndex].text.trim() : null")
        return options, value, lambda option: select.select_option(label=option)
    buttons = picker.locator("button")
    texts = [t.strip() for t in buttons.all_inner_texts()]
    active = [b.evaluate("b => b.classList.contains('mod-active')") for b in buttons.all()]
    value = texts[active.index(True)] if True in active else None
    return texts, value, lambda option: buttons.nth(texts.index(option)).click()


def checkbox(page, explorer: Explorer, starts_with: str):
    """The visible checkbox whose description starts with `starts_with`, or None."""
    boxes = locate(page, explorer).locator(".widget-checkbox:visible").filter(
        has=page.locator("span", has_text=re.compile("^" + re.escape(starts_with))))
    return boxes.first.locator("input") if boxes.count() else None


def move_sample(page, explorer: Explorer, report: Report) -> None:
    readout = locate(page, explorer).locator(".xai-sample:visible .widget-readout")
    if not readout.count():
        return
    value = int(readout.inner_text())

    def act():
        readout.click()
        readout.press("Control+A")
        readout.press_sequentially(str(value + 1))
        readout.press("Enter")

    change(page, explorer, report, f"sample {value + 1}", act)


def every_method_checked(page, explorer: Explorer, report: Report) -> None:
    """Tick the reference check, then draw every method of the method picker with it."""
    box = checkbox(page, explorer, CHECK_PREFIX)
    if box is not None and not box.is_checked():
        change(page, explorer, report, "tick the reference check", box.check, kind="checks")
    methods = choices(page, explorer, METHOD_PICKER)
    if methods is None:
        return
    options, current, pick = methods
    for option in options:
        if option != current:
            change(page, explorer, report, f"method {option}" + (" (checked)" if box else ""),
                   lambda option=option: pick(option),
                   kind="checks" if box is not None else "controls")
            # a method may have no reference: the check box then hides
            box = box if box is None else checkbox(page, explorer, CHECK_PREFIX)


def every_mode(page, explorer: Explorer, report: Report) -> None:
    """Draw every option of each mode switch once."""
    for label in MODE_TOGGLES:
        if (found := choices(page, explorer, label)) is None:
            continue
        options, current, pick = found
        for option in options:
            if option != current:
                change(page, explorer, report, f"{label} {option}",
                       lambda option=option, pick=pick: pick(option))
    for label in MODE_CHECKBOXES:
        box = checkbox(page, explorer, label)
        if box is not None:
            change(page, explorer, report, f"{'untick' if box.is_checked() else 'tick'} "
                                           f"{label}", lambda box=box: box.click())


def another_model(page, explorer: Explorer, report: Report) -> None:
    """Pick another model, preferring one whose panels have another shape."""
    found = choices(page, explorer, MODEL_PICKER)
    if found is None:
        return
    options, current, pick = found
    others = [o for o in options if o != current and not SKIPPED_MODELS.search(o)]
    if not others:
        return
    ranked = sorted(others, key=lambda o: PREFERRED_MODELS.index(o)
                    if o in PREFERRED_MODELS else len(PREFERRED_MODELS))
    change(page, explorer, report, f"model {ranked[0]}", lambda: pick(ranked[0]))


def click_image(page, explorer: Explorer, report: Report) -> None:
    """Click into the first image panel of the explorer's figure; the figure must change."""
    plot = locate(page, explorer).locator(".js-plotly-plot").first
    plot.scroll_into_view_if_needed()
    figure = measure(page, explorer)[0]
    with_image = {i["subplot"] for i in figure.get("images", [])}
    panels = [p for p in figure.get("panels", []) if p["id"] in with_image]
    if not panels:
        report.add("clicks", f"{explorer.label(report.where)}: no image panel to click")
        return
    panel = min(panels, key=lambda p: (p["y"], p["x"]))
    x, y = panel["x"] + 0.62 * panel["w"], panel["y"] + 0.62 * panel["h"]
    change(page, explorer, report, f"click the image at ({x:.0f}, {y:.0f}) in panel "
                                   f"{panel['id']}", lambda: page.mouse.click(x, y),
           timeout=CLICK_TIMEOUT, kind="clicks")


def wait_still(page, timeout: float = 60) -> None:
    """Wait until no explorer has changed for SETTLE s (after a resize plotly redraws)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    since = now_ms(page)
    try:
        page.wait_for_function("""([since, settle]) => {
            const all = window.xaiRecorder.explorers;
            const last = Math.max(since, ...all.map(r => r.changes[r.changes.length - 1] || 0));
            return performance.now() - last >= settle * 1000 && !all.some(r => r.refining);
        }""", arg=[since, SETTLE], timeout=timeout * 1000, polling=250)
    except PlaywrightTimeout:
        pass  # measured as it is; a figure still moving shows in the geometry


def screenshots(page, explorers: list[Explorer], report: Report, page_name: str,
                notebook: str, artifacts: Path) -> None:
    """At each of SIZES: check every explorer's geometry again, and take a screenshot of the
    window with the explorer scrolled to its top (what a projector shows of it)."""
    artifacts.mkdir(parents=True, exist_ok=True)
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        wait_still(page)
        for explorer in explorers:
            check_geometry(page, explorer, report, f"at {width}x{height}")
            try:
                locate(page, explorer).evaluate("e => e.scrollIntoView({block: 'start'})")
                page.wait_for_timeout(300)  # (JupyterLab may draw what scrolled into view)
                page.screenshot(path=artifacts / f"{page_name}-{notebook}-{explorer.index}-"
                                                 f"{width}x{height}.png")
            except Exception as error:
                report.add("screenshots", f"{explorer.label(report.where)}: no screenshot at "
                                          f"{width}x{height}: {str(error).splitlines()[0]}")


def recorded_pictures(page) -> list[dict]:
    """Per explorer (by index), from the page's recorder: when its figure first showed a
    trace, and when it last changed (performance.now() ms). Read it once every explorer has
    drawn, before the test changes any of them."""
    return page.evaluate("() => window.xaiRecorder.explorers.map(r => "
                         "({first: r.firstDrawn, last: r.changes[r.changes.length - 1]}))")


def first_pictures(explorers: list[Explorer], recorded: list[dict], start_ms: float) -> None:
    """Note each explorer's time to its first picture and to its final one (its last change
    before it settled), after `start_ms` (Run All, or the page's navigation)."""
    for explorer in explorers:
        r = recorded[explorer.index] if explorer.index < len(recorded) else None
        if r and r["first"] is not None:
            explorer.timings.insert(0, f"first picture {(r['first'] - start_ms) / 1000:.1f} s, "
                                       f"final {(r['last'] - start_ms) / 1000:.1f} s")


def inspect_explorers(page, report: Report, notebook: Path, page_name: str, artifacts: Path,
                      pictures: list[dict], start_ms: float = 0.0,
                      full: bool = True) -> list[Explorer]:
    """Walk every explorer on the page (see the module's docstring). `pictures`: what
    `recorded_pictures` read once the page had drawn, `start_ms` when the page started to
    run the notebook. `full`: every method with its reference check and every mode too
    (else the first draw, the clicks and a change of model). Problems go to `report`;
    returns the explorers with their timings."""
    explorers = find_explorers(page, notebook)
    first_pictures(explorers, pictures, start_ms)
    for explorer in explorers:
        check_geometry(page, explorer, report, "as first drawn")
    for explorer in explorers:
        locate(page, explorer).scroll_into_view_if_needed()
        if not page.evaluate("i => !!document.querySelector(`[data-xai-explorer='${i}'] "
                             ".xai-sample, [data-xai-explorer='${i}'].xai-explorer`)",
                             explorer.index):
            continue  # not an Explorer (no controls of the frame): geometry only
        if full:
            if explorer.index > 0:  # the test has moved the first explorer's sample
                move_sample(page, explorer, report)
            every_method_checked(page, explorer, report)
            every_mode(page, explorer, report)
        if explorer.index in CLICKS.get(notebook.stem[:2], []):
            click_image(page, explorer, report)
        another_model(page, explorer, report)
    started = time.monotonic()
    screenshots(page, explorers, report, page_name, notebook.stem, artifacts)
    for explorer in explorers:
        report.lines.append(f"{explorer.label(report.where)}: "
                            + "; ".join(explorer.timings or ["no timing"]))
    report.lines.append(f"{report.where}: screenshots and geometry at {SIZES} in "
                        f"{time.monotonic() - started:.0f} s")
    return explorers
