"""Chapter 06 explorers: activation maximisation, from pixel "snow" to a generator as the prior.

- `FourPriors`: one unit (a class score, or a channel of a conv layer) maximised four ways side
  by side: no prior (snow), hand-made priors (the L2, total variation, jitter and blur
  sliders), the Fourier parametrisation, and the generator `digits-gan` as the prior (its
  latent decay as a slider). Each panel carries the verdict of an independent judge
  (`activation_max.digit_judge`): the digit it reads, its confidence, and whether the image
  is as close to real digits as real digits are. Press play (or move the snapshot slider) to
  watch the four searches step by step; the curves below show the objective climbing, next
  to its mean on the real test digits.
- `LatentWalk`: the codes the generator prior found for two classes, and the straight line
  between them, drawn by G, next to a plain cross-fade of the two images in pixel space; the
  model's probabilities along both paths, and the judge's verdict on every frame.
- `GeneratorSamples`: what the prior can draw at all: G's own samples, with the spread of the
  codes as a slider (G was trained on z ~ N(0, I)), and how many of each digit it draws.

The searches' controls are the methods' declared options (`activation_max.maximize.options`,
`activation_max.maximize_latent.options`), with the hand-made priors switched on by default.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import inspect
import os
import time

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from xai_course import activation_max, cam, viz, zoo
from xai_course.convention import Option

from .base import Explorer, Request, Result, seeded

__all__ = ["FourPriors", "LatentWalk", "GeneratorSamples", "PANELS", "verdicts", "gallery",
           "mosaic"]

FAST = os.environ.get("XAI_COURSE_FAST") == "1"
GENERATOR = "digits-gan"
DIGIT = (1, 32, 32)  # what G draws, and what the explorers' models must take
COARSE_STEPS = 25  # the first picture of a search: this many steps, then the full search
SNAPSHOTS = activation_max.HISTORY_SNAPSHOTS - 1  # the snapshot slider runs 0..20
# The four ways of the chapter, as `FourPriors` draws them left to right.
PANELS = ("no prior", "hand-made priors", "Fourier", "generator prior")
COLOURS = dict(zip(PANELS, ("#bbbbbb", "#4477aa", "#ccbb44", "#ee6677"), strict=True))
# The settings of the panels without sliders: from noise, as the hand-made priors' panel.
NO_PRIOR = dict(init="noise")
FOURIER = dict(parametrization="fourier", jitter=2, init="noise")
GOOD, BAD = "#228833", "#cc3311"  # the judge recognises the image, or does not
# the same on the digits' black background
GOOD_ON_BLACK, BAD_ON_BLACK = "#66ee88", "#ff6655"


def _declared(method, defaults: dict, high: dict | None = None) -> tuple[Option, ...]:
    """Some of a method's declared options, with other defaults (and upper ends)."""
    specs = []
    for name, default in defaults.items():
        spec = dataclasses.replace(method.options[name], default=default)
        if high and name in high:
            spec = dataclasses.replace(spec, high=high[name])
        specs.append(spec)
    return tuple(specs)


SEED = Option("seed", "int", 0, "the random start of every search (and its jitter)", low=0,
              high=9)
# The hand-made priors as the chapter's test sets them: each on, none too strong.
PRIORS = _declared(activation_max.maximize, dict(l2=0.05, tv=0.5, jitter=2, blur_every=4,
                                                 blur_sigma=0.5))


# The generator prior's latent decay, with the method's own default (the slider shows the
# trade: weak decay reaches higher scores with codes, and digits, that are not typical).
Z_L2 = _declared(activation_max.maximize_latent, dict(
    z_l2=inspect.signature(activation_max.maximize_latent).parameters["z_l2"].default))


def _steps(method, steps: int | None) -> Option:
    """The method's declared `steps`, with this default (200; 50 under XAI_COURSE_FAST=1)."""
    default = steps or (50 if FAST else 200)
    return _declared(method, dict(steps=default), high=dict(steps=max(500, default)))[0]


# --------------------------------------------------------------------------- shared helpers
@functools.cache
def _generator_net(device: str) -> nn.Module:
    """G, `digits-gan`, loaded once per device."""
    return zoo.load_model(GENERATOR, device)


def verdicts(images: torch.Tensor) -> list[dict]:
    """The chapter's independent judge (`activation_max.digit_judge`) on each image
    (N, 1, 32, 32): [{label, confidence, typical}, ...]."""
    v = activation_max.digit_judge()(images.detach().cpu())
    return [dict(label=int(label), confidence=float(confidence), typical=bool(typical))
            for label, confidence, typical in zip(v.label.tolist(), v.confidence.tolist(),
                                                  v.typical.tolist(), strict=True)]


def recognised(verdict: dict, target: int | None) -> bool:
    """Recognised as `target`: the judge reads that digit, and the image looks like real digits
    do (typical). With no target (a channel), only typicality counts."""
    return verdict["typical"] and (target is None or verdict["label"] == target)


def verdict_text(verdict: dict, target: int | None) -> str:
    """"reads 3 · 99%", then "✓ recognised" / "✗ not typical" / "✗ not a 3" in colour."""
    first = f"reads {verdict['label']} · {100 * verdict['confidence']:.0f}%"
    if recognised(verdict, target):
        second = "✓ typical" if target is None else "✓ recognised"
    elif not verdict["typical"]:
        second = "✗ not typical"
    else:
        second = f"✗ not a {target}"
    colour = GOOD if second.startswith("✓") else BAD
    return f"{first}<br><span style='color:{colour}'>{second}</span>"


def mosaic(images: torch.Tensor, cols: int, gap: int = 2, fill: float = 0.5) -> torch.Tensor:
    """Images (N, C, H, W) tiled into one (C, rows * (H + gap) - gap, ...) image, row by row,
    `gap` pixels of grey between them (empty tiles grey too)."""
    n, c, h, w = images.shape
    rows = -(-n // cols)
    out = torch.full((c, rows * (h + gap) - gap, cols * (w + gap) - gap), fill)
    for i, image in enumerate(images.detach().cpu()):
        top, left = (i // cols) * (h + gap), (i % cols) * (w + gap)
        out[:, top:top + h, left:left + w] = image
    return out


def _tile_labels(n: int, cols: int, size: int, gap: int, texts: list[str],
                 colours: list[str]) -> go.Scatter:
    """Text in the top-left corner of each tile of a `mosaic` (the judge's reading)."""
    where = [((i % cols) * (size + gap) + 1, (i // cols) * (size + gap) + 1) for i in range(n)]
    return go.Scatter(x=[x for x, _ in where], y=[y for _, y in where], mode="text",
                      text=texts, textposition="bottom right",
                      textfont=dict(color=colours, size=12, weight="bold"), hoverinfo="skip",
                      showlegend=False)


def gallery(rows: dict[str, torch.Tensor], targets: list[int] | None = None,
            title: str | None = None, presentation: bool = False) -> go.Figure:
    """Rows of images, one row per entry {name: images (N, 1, H, W)}, each image with the
    judge's reading in its corner: green when it is recognised (typical, and the digit of
    `targets[i]` when targets are given), red when not."""
    fig = make_subplots(rows=len(rows), cols=1, subplot_titles=list(rows),
                        vertical_spacing=min(0.3, 0.5 / len(rows)))
    for row, images in enumerate(rows.values(), 1):
        n, _, size, _ = images.shape
        judged = verdicts(images)
        hits = [recognised(v, None if targets is None else targets[i])
                for i, v in enumerate(judged)]
        panel = viz.heatmap_overlay(mosaic(images, cols=n), colorbar=False)
        panel.add_trace(_tile_labels(n, n, size, 2, [str(v["label"]) for v in judged],
                                     [GOOD_ON_BLACK if hit else BAD_ON_BLACK for hit in hits]))
        viz.add_panel(fig, panel, row, 1)
    per_row = 220 if presentation else 150
    return viz.style(fig, title, presentation, height=per_row * len(rows) + 40)


def _check_takes_digits(request: Request) -> None:
    """The explorers compare with the generator prior: the model must take G's images."""
    shape = tuple(request.x.shape[1:])
    if shape != DIGIT:
        raise ValueError(f"{request.model_name} takes inputs of shape {shape}, but the "
                         f"generator prior draws digits of shape {DIGIT}: pick a classifier of "
                         f"the zoo's digits (e.g. 'digits')")


def _hide_sample_pickers(explorer: Explorer) -> None:
    """These explorers search for inputs; they do not take a sample, target or upload."""
    for w in (explorer.data_picker, explorer.sample_picker, explorer.target_picker,
              explorer.upload):
        w.layout.display = "none"
    if len(explorer.model_picker.options) <= 1:
        explorer.model_picker.layout.display = "none"


def _fewer_steps(request: Request) -> Request | None:
    """The first picture: a search of COARSE_STEPS steps (None when the search is that short)."""
    if request.extras["steps"] <= COARSE_STEPS:
        return None
    return request.variant(f"{COARSE_STEPS} steps", extra={"steps": COARSE_STEPS})


# --------------------------------------------------------------------------- four priors
def _conv_layers(model: nn.Module, shape: tuple[int, ...]) -> list[cam.Layer]:
    """The model's conv layers (every layer with feature maps when it has none)."""
    layers = cam.conv_layers(model, shape)
    convs = [layer for layer in layers if isinstance(layer.module, nn.Conv2d)]
    return convs or layers


class FourPriors(Explorer):
    """One unit maximised with no prior, hand-made priors, the Fourier parametrisation and the
    generator prior, side by side, each judged; play the searches step by step.

    steps: the searches' default length (200; 50 under XAI_COURSE_FAST=1). models:
    classifiers of 1 x 32 x 32 digits, the generator's images (default: `digits`). Other
    keyword arguments: see `Explorer`.
    """

    def __init__(self, steps: int | None = None, **kwargs):
        kwargs.setdefault("models", ["digits"])
        kwargs.setdefault("n_samples", None)  # every test digit: the objective's real level
        controls = (SEED, _steps(activation_max.maximize, steps), *PRIORS, *Z_L2)
        view = (Option("snapshot", "int", SNAPSHOTS, "which moment of the searches to show: 0 "
                       "the start, 20 the end (press play to run through them)", low=0,
                       high=SNAPSHOTS, expensive=False),)
        super().__init__(methods=None, controls=(), view_controls=view, overlay=False,
                         **kwargs)
        _hide_sample_pickers(self)
        # What to maximise: the picker's list depends on the model (`model_changed`), and the
        # slider's range on the pick; its range is set before the frame recomputes.
        unit = widgets.Dropdown(description="maximise", style={"description_width": "initial"},
                                options=[("class score", "class")],
                                layout=widgets.Layout(width="auto"))
        index = widgets.IntSlider(description="class / channel", value=3, min=0, max=9,
                                  continuous_update=False, style={"description_width": "initial"},
                                  layout=widgets.Layout(width="24em"))
        unit.observe(lambda change: self._fit_index(), names="value")
        self.add_control(unit, name="unit")
        self.add_control(index, name="index")
        for spec in controls:
            self.add_control(spec)
        # the play button drives the snapshot slider in the browser; the slider redraws
        play = widgets.Play(value=SNAPSHOTS, min=0, max=SNAPSHOTS, interval=400,
                            description="play", tooltip="run through the searches")
        widgets.jslink((play, "value"), (self.view_widgets["snapshot"], "value"))
        self.display_box.children = (play, *self.display_box.children)
        self._units: dict[str, dict[str, int]] = {}  # model -> {unit: how many to choose from}
        self._runs: dict[tuple, tuple] = {}  # one search's (images, History, seconds)
        self._real: dict[tuple, float] = {}  # the objective's mean on the real test digits

    # ----------------------------------------------------------------- what to maximise
    def model_changed(self, model_name: str) -> None:
        """The model's class score and conv layers, in the "maximise" picker."""
        model, shape = self.model(model_name), self.input_shape(model_name)
        if model_name not in self._units:
            with torch.no_grad():
                classes = model(torch.zeros(1, *shape, device=next(model.parameters()).device))
            units = {"class": classes.shape[1]}
            units.update({layer.name: layer.channels for layer in _conv_layers(model, shape)})
            self._units[model_name] = units
        units, unit = self._units[model_name], self.extra_widgets["unit"]
        with self.quietly():
            previous = unit.value
            unit.options = [("class score", "class")] + [
                (f"a channel of {name} ({n} maps)", name) for name, n in units.items()
                if name != "class"]
            unit.value = previous if previous in units else "class"
        self._fit_index()

    def _fit_index(self) -> None:
        """The class / channel slider's range for the unit picked (before the recompute)."""
        units = self._units.get(self.model_picker.value)
        if units is not None:
            with self.quietly():
                self.extra_widgets["index"].max = units[self.extra_widgets["unit"].value] - 1

    @staticmethod
    def objective(request: Request) -> tuple:
        """("class", c) or ("channel", layer, k), from the controls."""
        e = request.extras
        return ("class", e["index"]) if e["unit"] == "class" else ("channel", e["unit"],
                                                                   e["index"])

    # ----------------------------------------------------------------- compute
    def coarse(self, request: Request) -> Request | None:
        return _fewer_steps(request)

    def search(self, panel: str, request: Request) -> tuple:
        """One panel's search (images, History, seconds), cached by what it depends on."""
        e, model, device = request.extras, request.model, request.x.device
        objective, shape = self.objective(request), tuple(request.x.shape[1:])
        common = dict(steps=e["steps"], history=True)
        if panel == "no prior":
            options = dict(NO_PRIOR)
        elif panel == "hand-made priors":
            options = dict(l2=e["l2"], tv=e["tv"], jitter=e["jitter"],
                           blur_every=e["blur_every"], blur_sigma=e["blur_sigma"], init="noise")
        elif panel == "Fourier":
            options = dict(FOURIER)
        else:
            options = dict(z_l2=e["z_l2"])
        key = (request.model_name, request.device, panel, objective, e["seed"],
               tuple(sorted({**common, **options}.items())))
        if key not in self._runs:
            generator = seeded(device, e["seed"])
            start = time.perf_counter()
            if panel == "generator prior":
                images, trace = activation_max.maximize_latent(
                    model, _generator_net(request.device), objective, generator=generator,
                    **common, **options)
            else:
                images, trace = activation_max.maximize(model, objective, shape,
                                                        generator=generator, **common,
                                                        **options)
            self._runs[key] = (images.cpu(), trace, time.perf_counter() - start)
            while len(self._runs) > 64:
                self._runs.pop(next(iter(self._runs)))
        return self._runs[key]

    def real_level(self, request: Request) -> float:
        """The objective's mean on the real test digits (those of the class, for a class)."""
        objective = self.objective(request)
        key = (request.model_name, request.device, objective)
        if key not in self._real:
            x, y = request.data.x.to(request.x.device), request.data.y.to(request.x.device)
            if objective[0] == "class":
                with torch.no_grad():
                    values = request.model(x)[y == objective[1], objective[1]]
            else:
                kept = {}
                layer = dict(request.model.named_modules())[objective[1]]
                handle = layer.register_forward_hook(
                    lambda module, args, output: kept.update(A=output))
                try:
                    with torch.no_grad():
                        request.model(x)
                finally:
                    handle.remove()
                values = kept["A"][:, objective[2]]  # (N, h, w): the channel's maps
            self._real[key] = values.mean().item()
        return self._real[key]

    def compute(self, request: Request) -> Result:
        _check_takes_digits(request)
        objective = self.objective(request)
        target = objective[1] if objective[0] == "class" else None
        runs, judged = {}, {}
        for panel in PANELS:
            images, trace, seconds = self.search(panel, request)
            runs[panel] = (trace, seconds)
            # the judge on every snapshot: when does the image become a recognisable digit?
            judged[panel] = verdicts(trace.images[:, 0])
        result = Result(request, None, -1 if target is None else target, torch.zeros(0),
                        sum(seconds for _, seconds in runs.values()) * 1000)
        result.extra.update(runs=runs, judged=judged, objective=objective, target=target,
                            real=self.real_level(request))
        return result

    # ----------------------------------------------------------------- draw
    def shown(self, result: Result) -> int:
        """The snapshot drawn: the slider's position among the run's snapshots."""
        trace = next(iter(result.extra["runs"].values()))[0]
        return round(self.value("snapshot") * (len(trace.steps) - 1) / SNAPSHOTS)

    def render(self, result: Result) -> go.Figure:
        e, s = result.extra, self.shown(result)
        target, runs = e["target"], e["runs"]
        steps = runs[PANELS[0]][0].steps
        titles = [f"<b>{panel}</b><br>{verdict_text(e['judged'][panel][s], target)}"
                  for panel in PANELS]
        titles.append(f"the objective while climbing (dotted: step {steps[s]} of {steps[-1]})")
        fig = make_subplots(rows=2, cols=4, specs=[[{}, {}, {}, {}], [{"colspan": 4}, None,
                                                                       None, None]],
                            subplot_titles=titles, horizontal_spacing=0.03,
                            vertical_spacing=0.12, row_heights=[0.55, 0.45])
        for col, panel in enumerate(PANELS, 1):
            trace, _ = runs[panel]
            image = trace.images[s, 0]
            viz.add_panel(fig, viz.heatmap_overlay(image, colorbar=False), 1, col)
            # a thin frame: an image gone all white still shows where it ends
            fig.add_shape(type="rect", x0=-0.5, y0=-0.5, x1=image.shape[-1] - 0.5,
                          y1=image.shape[-2] - 0.5, line=dict(color="#999999", width=1),
                          row=1, col=col)
            values = trace.objective[:, 0].tolist()
            fig.add_trace(go.Scatter(x=list(range(len(values))), y=values, mode="lines",
                                     name=panel, line=dict(color=COLOURS[panel], width=2)),
                          row=2, col=1)
        last = len(runs[PANELS[0]][0].objective) - 1
        objective = e["objective"]
        real = (f"real test {objective[1]}s (mean)" if objective[0] == "class"
                else "real test digits (mean)")
        fig.add_trace(go.Scatter(x=[0, last], y=[e["real"]] * 2, mode="lines", name=real,
                                 line=dict(color="#222222", dash="dash", width=1)), row=2, col=1)
        values = torch.cat([runs[p][0].objective[:, 0] for p in PANELS])
        low, high = min(values.min().item(), e["real"]), max(values.max().item(), e["real"])
        fig.add_trace(go.Scatter(x=[steps[s]] * 2, y=[low, high], mode="lines", name="shown",
                                 showlegend=False, hoverinfo="skip",
                                 line=dict(color="#888888", dash="dot", width=1)), row=2, col=1)
        fig.update_xaxes(title_text="step", row=2, col=1)
        fig.update_yaxes(title_text=self.objective_name(objective), row=2, col=1)
        title = self.objective_name(objective)  # short: a wrapped title would cost a line
        height = viz.ROW_HEIGHT[bool(self.presentation)] * 2 + 200
        return viz.legend_below(viz.style(fig, title, self.presentation, height=height))

    @staticmethod
    def objective_name(objective: tuple) -> str:
        if objective[0] == "class":
            return f"the logit of class {objective[1]}"
        return f"channel {objective[2]} of {objective[1]}"

    def status(self, result: Result) -> str:
        e = result.extra
        times = " · ".join(f"{html.escape(panel)} <b>{seconds:.1f} s</b>"
                           for panel, (_, seconds) in e["runs"].items())
        final = [recognised(e["judged"][panel][-1], e["target"]) for panel in PANELS]
        what = "recognised" if e["target"] is not None else "typical"
        return (f"device <b>{result.request.device}</b> · {times} · the judge: "
                f"<b>{sum(final)} of {len(PANELS)}</b> {what} at the end")


# --------------------------------------------------------------------------- latent walk
class LatentWalk(Explorer):
    """From the generator prior's image of one class to another's: through G, and in pixels.

    The codes z_a, z_b come from `maximize_latent` for the classes "from" and "to"; the frames
    are G((1 - t) z_a + t z_b) and (1 - t) G(z_a) + t G(z_b) for t from 0 to 1.
    steps: the latent search's default length (200; 50 under XAI_COURSE_FAST=1). models:
    digit classifiers (default: `digits`). Other keyword arguments: see `Explorer`.
    """

    def __init__(self, steps: int | None = None, **kwargs):
        kwargs.setdefault("models", ["digits"])
        digits = tuple(range(10))
        controls = (
            Option("from", "choice", 1, "the class at t = 0", choices=digits),
            Option("to", "choice", 0, "the class at t = 1", choices=digits),
            Option("frames", "int", 9, "frames along each path", low=3, high=13),
            _steps(activation_max.maximize_latent, steps),
            SEED,
        )
        super().__init__(methods=None, controls=controls, overlay=False, **kwargs)
        _hide_sample_pickers(self)
        self._codes: dict[tuple, tuple] = {}

    def coarse(self, request: Request) -> Request | None:
        return _fewer_steps(request)

    def codes(self, request: Request) -> tuple[torch.Tensor, float]:
        """z_a, z_b (2, latent_dim) of the two classes, and the seconds the search took."""
        e = request.extras
        key = (request.model_name, request.device, e["from"], e["to"], e["steps"], e["seed"])
        if key not in self._codes:
            start = time.perf_counter()
            _, trace = activation_max.maximize_latent(
                request.model, _generator_net(request.device),
                [("class", e["from"]), ("class", e["to"])], steps=e["steps"],
                generator=seeded(request.x.device, e["seed"]), history=True)
            self._codes[key] = (trace.latents[-1], time.perf_counter() - start)
            while len(self._codes) > 32:
                self._codes.pop(next(iter(self._codes)))
        return self._codes[key]

    def compute(self, request: Request) -> Result:
        _check_takes_digits(request)
        e, model = request.extras, request.model
        z, seconds = self.codes(request)
        G = _generator_net(request.device)
        t = torch.linspace(0, 1, e["frames"], device=z.device)[:, None]
        with torch.no_grad():
            through_g = G((1 - t) * z[0] + t * z[1])
            ends = G(z)
            blend = (1 - t[:, :, None, None]) * ends[0] + t[:, :, None, None] * ends[1]
            paths = {"through G": through_g, "pixel blend": blend}
            p = {name: model(x).softmax(1).cpu() for name, x in paths.items()}
        result = Result(request, None, e["to"], p["through G"][-1], seconds * 1000)
        result.extra.update(t=t[:, 0].cpu(), images={n: x.cpu() for n, x in paths.items()},
                            p=p, judged={n: verdicts(x) for n, x in paths.items()})
        return result

    def render(self, result: Result) -> go.Figure:
        e, request = result.extra, result.request
        a, b = request.extras["from"], request.extras["to"]
        frames, size, gap = len(e["t"]), 32, 2
        titles = (f"through the generator: G((1−t)·z{a} + t·z{b}), t = 0 … 1",
                  f"in pixel space: (1−t)·G(z{a}) + t·G(z{b})",
                  f"the model's p({a}) and p({b}) along each path<br>● the judge finds the frame "
                  f"typical, ○ not")
        fig = make_subplots(rows=3, cols=1, subplot_titles=titles,
                            row_heights=[0.25, 0.25, 0.5], vertical_spacing=0.12)
        for row, name in enumerate(("through G", "pixel blend"), 1):
            strip = mosaic(e["images"][name], cols=frames, gap=gap)
            panel = viz.heatmap_overlay(strip, colorbar=False)
            judged = e["judged"][name]
            panel.add_trace(_tile_labels(
                frames, frames, size, gap, [str(v["label"]) for v in judged],
                [GOOD_ON_BLACK if v["typical"] else BAD_ON_BLACK for v in judged]))
            viz.add_panel(fig, panel, row, 1)
        t = e["t"].tolist()
        for name, dash in (("through G", "solid"), ("pixel blend", "dash")):
            typical = [v["typical"] for v in e["judged"][name]]
            for c, colour in ((a, "#4477aa"), (b, "#ee6677")):
                fig.add_trace(go.Scatter(
                    x=t, y=e["p"][name][:, c].tolist(), mode="lines+markers",
                    name=f"p({c}) {name}", line=dict(color=colour, dash=dash),
                    marker=dict(size=8, color=colour,
                                symbol=["circle" if k else "circle-open" for k in typical])),
                    row=3, col=1)
        fig.update_xaxes(title_text="t", range=[-0.03, 1.03], row=3, col=1)
        fig.update_yaxes(title_text="probability", range=[-0.03, 1.03], row=3, col=1)
        height = viz.ROW_HEIGHT[bool(self.presentation)] * 2 + 140
        title = f"from {a} to {b} through G"
        return viz.legend_below(viz.style(fig, title, self.presentation, height=height), rows=2)

    def status(self, result: Result) -> str:
        e = result.extra
        typical = " · ".join(f"{name}: <b>{sum(v['typical'] for v in judged)} of "
                             f"{len(judged)}</b> frames typical"
                             for name, judged in e["judged"].items())
        return (f"device <b>{result.request.device}</b> · latent search "
                f"<b>{result.ms / 1000:.1f} s</b> · {typical}")


# --------------------------------------------------------------------------- G's samples
class GeneratorSamples(Explorer):
    """What the generator prior can draw: its samples G(z), z ~ N(0, s² I), read by the judge.

    shown: samples drawn in the mosaic; counted: samples behind the bars (both from the same
    seeded draw). models: the classifier whose confidence the status line reports (default:
    `digits`). Other keyword arguments: see `Explorer`.
    """

    def __init__(self, shown: int = 32, counted: int = 500, **kwargs):
        kwargs.setdefault("models", ["digits"])
        self.shown, self.counted = shown, max(counted, shown)
        controls = (
            Option("z scale", "float", 1.0, "the spread s of the codes, z ~ N(0, s² I): G was "
                   "trained on s = 1", low=0.25, high=4.0, log=True),
            Option("seed", "int", 0, "which codes are drawn", low=0, high=99),
        )
        super().__init__(methods=None, controls=controls, overlay=False, **kwargs)
        _hide_sample_pickers(self)

    def compute(self, request: Request) -> Result:
        _check_takes_digits(request)
        e, model = request.extras, request.model
        G = _generator_net(request.device)
        start = time.perf_counter()
        where = request.x.device
        z = torch.randn((self.counted, G.latent_dim), generator=seeded(where, e["seed"]),
                        device=where) * e["z scale"]
        with torch.no_grad():
            images = G(z)
            p = model(images).softmax(1).cpu()
        ms = (time.perf_counter() - start) * 1000
        judged = verdicts(images)
        result = Result(request, None, -1, p.mean(0), ms)
        result.extra.update(images=images[:self.shown].cpu(), judged=judged, p=p)
        return result

    def render(self, result: Result) -> go.Figure:
        e = result.extra
        cols, size, gap = 8, 32, 2
        judged = e["judged"]
        fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.1,
                            subplot_titles=(
                                viz.wrap(f"{self.shown} samples; the judge's reading (red: not "
                                         f"typical)", 40),
                                viz.wrap(f"what G draws, over {self.counted} samples", 28)))
        panel = viz.heatmap_overlay(mosaic(e["images"], cols, gap), colorbar=False)
        panel.add_trace(_tile_labels(
            len(e["images"]), cols, size, gap, [str(v["label"]) for v in judged[:self.shown]],
            [GOOD_ON_BLACK if v["typical"] else BAD_ON_BLACK for v in judged[:self.shown]]))
        viz.add_panel(fig, panel, 1, 1)
        classes = [str(c) for c in range(10)]
        typical = np.zeros(10, int)
        other = np.zeros(10, int)
        for v in judged:
            (typical if v["typical"] else other)[v["label"]] += 1
        fig.add_trace(go.Bar(x=classes, y=typical.tolist(), name="typical", marker_color=GOOD),
                      row=1, col=2)
        fig.add_trace(go.Bar(x=classes, y=other.tolist(), name="not typical", marker_color=BAD),
                      row=1, col=2)
        fig.update_layout(barmode="stack", legend_traceorder="normal")
        fig.update_xaxes(title_text="the judge reads", type="category", row=1, col=2)
        # no y-axis title: the panel's title names the count, and in a projector's narrow
        # figure a title there would sit on the mosaic
        title = f"G's own samples, z ~ N(0, {result.request.extras['z scale']:.2g}² I)"
        height = viz.ROW_HEIGHT[bool(self.presentation)] + 220
        return viz.legend_below(viz.style(fig, title, self.presentation, height=height))

    def status(self, result: Result) -> str:
        e = result.extra
        typical = sum(v["typical"] for v in e["judged"]) / len(e["judged"])
        confident = (e["p"].max(1).values > 0.9).float().mean().item()
        drawn = len({v["label"] for v in e["judged"] if v["typical"]})
        return (f"device <b>{result.request.device}</b> · {self.counted} samples in "
                f"<b>{result.ms:.0f} ms</b> · the judge finds <b>{100 * typical:.0f}%</b> "
                f"typical, {drawn} of 10 digits among them · {result.request.model_name} is "
                f"confident (p > 0.9) on <b>{100 * confident:.0f}%</b>")
