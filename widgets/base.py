"""The explorer frame every chapter view is composed from.

    from xai_course import gradients
    from xai_course.widgets.base import Explorer
    Explorer(gradients.gradient)          # a whole explorer in one line (display it to start)

What it shows, top to bottom:

    pickers    model, data set, sample, target class, device, "your image" upload
    controls   method picker; the method's declared options (`method.options`); the
               explorer's own controls (declared as `Option`s too); display controls
               (opacity, normalisation, and the explorer's own view controls)
    figure     a plotly FigureWidget (a new one when the figure's structure changes)
    status     device, milliseconds the method took, max |ours - reference| when asked
    note/error notes (e.g. weights not cached) and the last exception, traceback folded

How it works. Every control is built from an `Option` by `option_widget`. A change of a
method option or of an explorer control calls `update()`: it builds a `Request` (what to
compute), takes it from the cache or runs `compute(request)` on one worker thread, and the
result is drawn on the kernel's event loop (widgets are not thread-safe). A change of a view
control calls `redraw()`: the result on screen is drawn again, nothing is computed. Each
request gets a generation number; a result whose generation is no longer the newest is
dropped, so a slow computation for an old slider value never overwrites a newer one. With
`sync=True` (headless tests, notebook execution) everything runs in the caller's thread.

Quick answers: for a multi-pass method the frame first computes a cheaper variant of the
request (`coarse(request)`: fewer IG steps, fewer samples, a coarser occlusion stride ...),
draws it with "coarse: ... — refining…" in the status line, then computes and draws the full
one. Only the full result is cached. In sync mode only the full result is computed, unless
`coarse_first=True`.

Construction does not compute: `start()` loads the first model and draws the first figure,
and displaying the explorer calls it. A chapter's explorer passes its controls to
`Explorer.__init__` and overrides only public hooks:

    compute(request)        -> Result  (start with `self.predict(request)`)
    render(result)          -> go.Figure
    status(result)          -> the status line (HTML)
    coarse(request)         -> a cheaper Request for the first picture, or None
    model_changed(name)     a new model was picked (e.g. refresh a layer list)
    clicked(trace, x, y)    a click on a trace named in `clickable`
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import copy
import dataclasses
import html
import inspect
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from xai_course import viz, zoo
from xai_course.convention import Option, model_device
from xai_course.fast import for_many_passes
from xai_course.images import read_image

__all__ = ["Explorer", "Request", "Result", "option_widget", "update_figure", "seeded",
           "coarse_options", "UPLOAD", "IMAGE_MODELS", "OPACITY", "NORMALISE"]

UPLOAD = "your image"  # the data picker's entry for an uploaded image
TARGETS = [("label", "label"), ("prediction", "prediction")]
# The zoo's image models; an explorer that cannot take one of them leaves it out.
IMAGE_MODELS = ["cluttered-digits", "digits", "shortcut-digits", "resnet50-imagenet",
                "vgg16-imagenet"]
# The frame's display controls: they only redraw.
OPACITY = Option("opacity", "float", viz.OPACITY, "opacity of the map over the image",
                 low=0.0, high=1.0, step=0.05, expensive=False)
NORMALISE = Option("normalise", "choice", "percentile", "how the map is scaled for display: "
                   "by its largest |value|, by its 99th percentile (a few extreme pixels do "
                   "not wash out the rest), or not at all",
                   choices=("percentile", "maxabs", "none"), expensive=False)


# --------------------------------------------------------------------------- requests
@dataclasses.dataclass(frozen=True)
class Request:
    """Everything one computation needs. `key` (the first nine fields) names it in the cache.

    coarse: for the cheap first picture of a multi-pass method, what it is ("8 steps").
    """

    model_name: str
    data_name: str
    sample: int  # the sample's index (for an upload: which upload)
    target: Any  # "label", "prediction" or a class index
    method_name: str | None
    options: tuple  # ((option name, value), ...) of the method
    device: str
    check: bool  # also compute the reference and the difference
    extra: tuple  # ((control name, value), ...) of the explorer's own controls
    model: nn.Module = dataclasses.field(compare=False, repr=False, default=None)
    method: Callable | None = dataclasses.field(compare=False, repr=False, default=None)
    x: torch.Tensor = dataclasses.field(compare=False, repr=False, default=None)  # (1, ...)
    label: int | None = dataclasses.field(compare=False, default=None)
    data: Any = dataclasses.field(compare=False, repr=False, default=None)  # the data set
    coarse: str | None = dataclasses.field(compare=False, default=None)

    @property
    def key(self) -> tuple:
        return (self.model_name, self.data_name, self.sample, self.target, self.method_name,
                self.options, self.device, self.check, self.extra)

    @property
    def opts(self) -> dict:
        return dict(self.options)

    @property
    def extras(self) -> dict:
        return dict(self.extra)

    def variant(self, coarse: str, options: Mapping | None = None, extra: Mapping | None = None,
                **fields) -> Request:
        """A cheaper copy of this request for the first picture: some options or controls
        changed (`options`, `extra`), no reference check, described by `coarse`."""
        changes = dict(fields, coarse=coarse, check=False)
        if options is not None:
            changes["options"] = tuple(sorted({**self.opts, **options}.items()))
        if extra is not None:
            changes["extra"] = tuple(sorted({**self.extras, **extra}.items()))
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass
class Result:
    """What `compute` returns. attribution: on the CPU, without the batch axis."""

    request: Request
    attribution: torch.Tensor | None
    target: int
    probabilities: torch.Tensor  # (classes,)
    ms: float  # time the method took
    reference_error: float | None = None  # max |ours - reference|
    extra: dict = dataclasses.field(default_factory=dict)  # anything an explorer adds


def seeded(device: torch.device | str, seed: int = 0) -> torch.Generator:
    """A fresh generator on `device`: the same request then always draws the same noise
    (and the cache stays truthful)."""
    return torch.Generator(device=device).manual_seed(seed)


# --------------------------------------------------------------------------- controls
_WIDE = {"description_width": "initial"}


def option_widget(spec: Option) -> widgets.Widget:
    """A control for one declared option; its `.value` is the option's value.

    int/float -> slider (log slider if `spec.log`, for ints through the round numbers 1, 2,
    5, 10, 20, 25, 50 ... and a geometric series; a text box when unbounded); choice ->
    toggle buttons (up to 4 short choices) or a dropdown; bool -> checkbox. Expensive options
    update when the slider is released (`continuous_update=False`). Widths follow the text,
    so no label is cut short.
    """
    common = dict(description=spec.name.replace("_", " "), tooltip=spec.help or None,
                  style=dict(_WIDE))
    live = dict(continuous_update=not spec.expensive)
    slider = widgets.Layout(width="26em", min_width="20em")
    if spec.kind == "bool":
        return widgets.Checkbox(value=bool(spec.default), indent=False,  # room on its right
                                layout=widgets.Layout(width="auto", margin="2px 1.5em 2px 0"),
                                **common)
    if spec.kind == "choice":
        labelled = [("none" if c is None else str(c), c) for c in spec.choices]
        if len(labelled) <= 4 and all(len(label) <= 16 for label, _ in labelled):
            common["style"]["button_width"] = "auto"
            return widgets.ToggleButtons(options=labelled, value=spec.default, **common)
        return widgets.Dropdown(options=labelled, value=spec.default,
                                layout=widgets.Layout(width="auto", min_width="16em"), **common)
    if spec.low is None or spec.high is None:
        text = widgets.IntText if spec.kind == "int" else widgets.FloatText
        return text(value=spec.default, layout=widgets.Layout(width="14em"), **common, **live)
    if spec.log and spec.low > 0:
        if spec.kind == "float":
            return widgets.FloatLogSlider(value=spec.default, base=10, min=np.log10(spec.low),
                                          max=np.log10(spec.high), layout=slider, **common,
                                          **live)
        values = set(np.geomspace(spec.low, spec.high, 25).round().astype(int).tolist())
        round_ones = {int(m * 10 ** e) for e in range(7) for m in (1, 2, 2.5, 5)}  # 1, 2, 5 ...
        values |= {v for v in round_ones if spec.low <= v <= spec.high} | {int(spec.default)}
        values = sorted(values)
        return widgets.SelectionSlider(options=values, value=int(spec.default), layout=slider,
                                       **common, **live)
    if spec.kind == "int":
        return widgets.IntSlider(value=spec.default, min=spec.low, max=spec.high,
                                 step=spec.step or 1, layout=slider, **common, **live)
    return widgets.FloatSlider(value=spec.default, min=spec.low, max=spec.high,
                               step=spec.step or (spec.high - spec.low) / 100,
                               readout_format=".3g", layout=slider, **common, **live)


# --------------------------------------------------------------------------- quick answers
def _at_most(name: str, most: int, unit: str) -> Callable[[dict], tuple[dict, str] | None]:
    def rule(options):
        if options.get(name, most + 1) <= most:
            return None
        return {**options, name: most}, f"{most} {unit}"
    return rule


def _tiles(options: dict) -> tuple[dict, str] | None:
    """Occlusion: windows side by side (stride = window) instead of overlapping."""
    window, stride = options.get("window", 8), options.get("stride", 4)
    if not isinstance(window, int) or not isinstance(stride, int) or stride >= window:
        return None
    return {**options, "stride": window}, f"stride {window}"


# The cheap first picture of each multi-pass method, by the method's name:
# rule(options) -> (cheaper options, what they are) or None (the options are cheap already).
COARSE = {
    "integrated_gradients": _at_most("steps", 8, "steps"),
    "smoothgrad": _at_most("samples", 4, "samples"),
    "smoothgrad_sq": _at_most("samples", 4, "samples"),
    "vargrad": _at_most("samples", 4, "samples"),
    "occlusion": _tiles,
    "lime": _at_most("samples", 60, "samples"),
    "lime_tabular": _at_most("samples", 100, "samples"),
    "meaningful_perturbation": _at_most("steps", 10, "steps"),
    "extremal_perturbation": _at_most("steps", 10, "steps"),
}


def coarse_options(method: Callable | None, options: dict) -> tuple[dict, str] | None:
    """Cheaper options for a first picture of `method`, and what they are; None when the
    method has no cheaper variant. A method may carry its own rule as `method.coarse`."""
    rule = getattr(method, "coarse", None) or COARSE.get(getattr(method, "__name__", ""))
    return None if rule is None else rule(options)


# --------------------------------------------------------------------------- figures
def figure_structure(fig: go.Figure) -> tuple:
    """What a plotly view cannot change in place reliably: the traces (type, axes, and the
    size of an image or heatmap: a 32 x 32 digit after a 64 x 64 canvas), the layout's axes,
    and the numbers of annotations, shapes and images."""
    traces = tuple((t.type, getattr(t, "xaxis", None), getattr(t, "yaxis", None),
                    np.shape(t.z)[:2] if t.type in ("image", "heatmap") and t.z is not None
                    else None)
                   for t in fig.data)
    axes = tuple(sorted(k for k in fig.layout.to_plotly_json()
                        if k.startswith(("xaxis", "yaxis"))))
    return (traces, axes, len(fig.layout.annotations), len(fig.layout.shapes),
            len(fig.layout.images))


class FigureWidget(go.FigureWidget):
    """plotly's FigureWidget, its front-end model made with the figure already in it.

    plotly's FigureWidget opens its comm (the browser's copy of the widget) empty and sends
    the figure in a second message. plotly's views draw what the copy holds when they are
    made, then only listen to edits: a view made between the two messages (a busy browser,
    an explorer drawing while it is displayed) showed empty axes for good. This one opens
    its comm once the figure is in it.
    """

    _building = False

    def __init__(self, *args, **kwargs):
        self._building = True
        try:
            super().__init__(*args, **kwargs)
        finally:
            self._building = False
        self.open()

    def open(self) -> None:
        if not self._building:
            super().open()


def update_figure(widget: go.FigureWidget, fig: go.Figure) -> go.FigureWidget:
    """Show `fig`: in `widget`, updated in place, when both have the same structure
    (`figure_structure`); else in a new `FigureWidget`, which the caller puts in place of
    the old one. Returns the widget that shows `fig`.

    In place, every trace and the layout get `fig`'s properties (those `fig` does not set are
    reset), in one message to the views. plotly's edits reach only the views that exist and
    are listening: the widget's state, which a view made later starts from (Voila's page,
    the explorer displayed again, a reloaded page), is brought up to date too.
    """
    if figure_structure(widget) != figure_structure(fig):
        return FigureWidget(fig)
    with widget.batch_update():
        for old, new in zip(widget.data, fig.data, strict=True):
            new_json = new.to_plotly_json()
            gone = {k: None for k in old.to_plotly_json()
                    if k not in new_json and k not in ("type", "uid")}
            old.update(gone)
            old.update(new_json, overwrite=True)
        new_layout = fig.layout.to_plotly_json()
        widget.layout.update({k: None for k in widget.layout.to_plotly_json()
                              if k not in new_layout})
        widget.layout.update(new_layout, overwrite=True)
    # plotly refreshes the state when the widget itself is displayed; an explorer displays
    # its box, so ask for that refresh here
    widget._repr_mimebundle_()
    return widget


def _default_devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _default_sync() -> bool:
    """Synchronous unless inside a Jupyter kernel, or when XAI_COURSE_SYNC=1."""
    if os.environ.get("XAI_COURSE_SYNC", "") not in ("", "0"):
        return True
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    shell = get_ipython()
    return shell is None or not hasattr(shell, "kernel")


def _default_presentation() -> bool:
    """Large figures when XAI_COURSE_PRESENTATION=1 (`xai-course present` sets it)."""
    return os.environ.get("XAI_COURSE_PRESENTATION", "") not in ("", "0")


def _in_voila() -> bool:
    """Whether this kernel runs a notebook for Voila (Voila sets VOILA_KERNEL_ID in it)."""
    return "VOILA_KERNEL_ID" in os.environ


# --------------------------------------------------------------------------- the explorer
class Explorer:
    """An explorer: pickers, a method's controls, a figure, a status line, an error area.

    methods: {name: method} (or one method, or None when the explorer computes by itself);
        each `method(model, inputs, target, **options) -> Tensor` with `method.options`.
    models: None (the zoo's image and text models), a list of zoo names, or {name: nn.Module}.
    data: None (each zoo model's own data set), a data set (`.x`, `.y`, `.classes`, ...) or
        {name: data set}; given data sets are offered for every model.
    model, device: the initial choices. devices: the device picker's list (default: cpu,
        and cuda when available). check: compute the reference and show the difference.
    presentation: large figure and fonts for a projector (default: when the environment
        variable XAI_COURSE_PRESENTATION=1, which `xai-course present` sets). sync: compute
        in the caller's thread (default: only outside a Jupyter kernel). n_samples: zoo
        samples offered.
    controls: the explorer's own `Option`s whose change recomputes (values in
        `request.extras`). view_controls: `Option`s whose change only redraws (values by
        `self.value(name)`). fixed_options: method options given a value and no control.
    overlay: show the opacity and normalisation controls. clickable: names of traces whose
        clicks go to `clicked`. coarse_first: draw a coarse picture first (default: unless
        sync).
    """

    cache_size = 64

    def __init__(self, methods: Mapping[str, Callable] | Callable | None = None, *,
                 models: list[str] | Mapping[str, nn.Module] | None = None, data=None,
                 model: str | None = None, device: str | torch.device | None = None,
                 devices: list[str] | None = None, check: bool = False,
                 presentation: bool | None = None, sync: bool | None = None,
                 n_samples: int = 64, controls: Iterable[Option] = (),
                 view_controls: Iterable[Option] = (), fixed_options: Mapping | None = None,
                 overlay: bool = True, clickable: Iterable[str] = (),
                 coarse_first: bool | None = None):
        if callable(methods):
            methods = {getattr(methods, "__name__", "method"): methods}
        self.methods = dict(methods or {})
        self._modules = dict(models) if isinstance(models, Mapping) else {}
        self._model_names = list(self._modules) or list(models or [  # images and texts
            m for m in zoo.models() if not (getattr(zoo.model_info(m), "tabular", False)
                                            or getattr(zoo.model_info(m), "generator", False)
                                            or getattr(zoo.model_info(m), "explains", None))])
        if model is not None and model not in self._model_names:
            raise ValueError(f"unknown model {model!r}; choose from {self._model_names}")
        self._data = ({getattr(data, "name", "data"): data} if hasattr(data, "x")
                      else dict(data or {}))
        self.presentation = _default_presentation() if presentation is None else presentation
        self.sync = _default_sync() if sync is None else sync
        self.coarse_first = (not self.sync) if coarse_first is None else coarse_first
        self.n_samples = n_samples
        self.fixed_options = dict(fixed_options or {})
        self.clickable = set(clickable)
        self.result: Result | None = None  # the result on screen
        self.last_error: BaseException | None = None
        self._loaded: dict[tuple[str, str], nn.Module] = {}
        self._datasets: dict[str, Any] = {}
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.RLock()
        self._generation = 0
        self._hold = 0  # > 0: updates are held (see `holding`)
        self._quiet = 0  # > 0: the frame changes its own pickers, handlers do not run
        self._started = False
        self._executor = None
        self._future = None
        # The thread that builds the explorer, and its event loop in a Jupyter kernel: results
        # computed on the worker thread are drawn there (see `_hand_over`).
        self._home = threading.get_ident()
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop runs here (a script, the tests)
            self._loop = None
        self._upload: tuple[int, str, bytes] | None = None  # (id, file name, bytes)
        self._option_widgets: dict[str, dict[str, widgets.Widget]] = {}
        self.extra_widgets: dict[str, widgets.Widget] = {}  # recompute
        self.view_widgets: dict[str, widgets.Widget] = {}  # redraw only

        self._build_widgets(devices, device, check)
        self._overlay = overlay
        self.opacity = self.add_control(OPACITY, redraw_only=True)
        self.normalize = self.add_control(NORMALISE, redraw_only=True)
        self._show_overlay(overlay)
        for spec in controls:
            self.add_control(spec)
        for spec in view_controls:
            self.add_control(spec, redraw_only=True)
        if model is not None:
            with self.quietly():
                self.model_picker.value = model
        self._on_method()

    # ----------------------------------------------------------------- hooks
    def compute(self, request: Request) -> Result:
        """Run the method on the request's input (on the worker thread); return a `Result`."""
        result = self.predict(request)
        method, x = request.method, request.x
        if method is None:
            return result
        start = time.perf_counter()
        attribution = self.attribute(method, request.model, x, result.target,
                                     self.with_generator(method, request.opts, x.device))
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        result.ms = (time.perf_counter() - start) * 1000
        result.reference_error = self.reference_error(request, attribution, request.model, x,
                                                      result.target, request.opts)
        result.attribution = attribution[0].detach().cpu()
        return result

    def render(self, result: Result) -> go.Figure:
        """The figure for a result: the attribution over the image, or coloured tokens."""
        request = result.request
        classes = getattr(request.data, "classes", None)
        title = f"{request.method_name or request.model_name} · target: " \
                f"{self.class_name(result.target, classes)}"
        if zoo.is_text_model(request.model):
            where, tokens = self.token_positions(request)
            scores = (result.attribution[where] if result.attribution is not None
                      else torch.zeros(len(tokens)))
            relevant = getattr(request.data, "relevant", None)
            if relevant is not None and request.data_name != UPLOAD:
                relevant = relevant[request.sample][where]
            return viz.token_figure(tokens, scores, relevant, title=title,
                                    presentation=self.presentation)
        return viz.heatmap_overlay(request.x[0].detach().cpu(), result.attribution,
                                   title=title, presentation=self.presentation,
                                   **self.overlay())

    def status(self, result: Result) -> str:
        """The status line: device, time, label / prediction, and the reference check."""
        request = result.request
        classes = getattr(request.data, "classes", None)
        p = result.probabilities
        predicted = int(p.argmax())
        parts = [f"device <b>{request.device}</b>"]
        if request.method_name is not None:
            parts.append(f"{html.escape(request.method_name)} <b>{result.ms:.1f} ms</b>")
        if request.label is not None:
            parts.append(f"label {html.escape(self.class_name(request.label, classes))}")
        parts.append(f"predicted {html.escape(self.class_name(predicted, classes))} "
                     f"({100 * p[predicted].item():.1f}%)")
        if result.reference_error is not None:
            name = html.escape(getattr(request.method, "reference_name", "reference"))
            parts.append(f"max |ours − {name}| = <b>{result.reference_error:.2g}</b>")
        return " · ".join(parts)

    def coarse(self, request: Request) -> Request | None:
        """A cheaper request for a first picture, or None. Default: the method's rule in
        `COARSE` (fewer IG steps, fewer samples, occlusion windows side by side ...)."""
        cheaper = coarse_options(request.method, request.opts)
        if cheaper is None:
            return None
        options, what = cheaper
        return request.variant(what, options=options)

    def model_changed(self, model_name: str) -> None:
        """Called when a model has been picked and loaded, before computing; controls set
        here do not trigger computations of their own."""

    def clicked(self, trace_name: str, x, y) -> None:
        """Called with the data coordinates of a click on a trace named in `clickable`."""

    # ----------------------------------------------------------------- helpers for hooks
    def predict(self, request: Request) -> Result:
        """The shared opening of `compute`: one forward pass, the class probabilities and the
        target the request asks for; a `Result` with nothing attributed yet."""
        with torch.no_grad():
            probabilities = torch.softmax(request.model(request.x).float(), dim=1)[0].cpu()
        return Result(request, None, self.resolve_target(request, probabilities),
                      probabilities, 0.0)

    def reference_error(self, request: Request, attribution: torch.Tensor, model: nn.Module,
                        x: torch.Tensor, target: int, options: dict) -> float | None:
        """max |attribution - reference| for the same call of the request's method (the same
        seeded noise on both sides, so randomised methods can be compared); None when the
        check is not asked for or the method has no reference."""
        reference = getattr(request.method, "reference", None)
        if not request.check or reference is None:
            return None
        ref = self.attribute(reference, model, x, target,
                             self.with_generator(request.method, options, x.device))
        return (attribution.detach() - ref.detach().to(attribution.device)).abs().max().item()

    def attribute(self, method: Callable, model: nn.Module, x: torch.Tensor, target: int,
                  options: dict) -> torch.Tensor:
        """Call `method` by the convention; text models: on the embeddings, summed per token."""
        if zoo.is_text_model(model):
            embedded = model.embedding(x).detach()
            return method(model.encoder, embedded, target, **options).sum(-1)
        return method(model, x, target, **options)

    @staticmethod
    def with_generator(method: Callable, options: dict, device: torch.device) -> dict:
        """The options, plus a generator seeded with 0 (`seeded`) for a method that takes
        one: the same request then always draws the same noise."""
        if "generator" not in inspect.signature(method).parameters:
            return options
        return {**options, "generator": seeded(device)}

    @staticmethod
    def resolve_target(request: Request, probabilities: torch.Tensor) -> int:
        """The class index the request asks for ("label" falls back to the prediction)."""
        if request.target == "label" and request.label is not None:
            return int(request.label)
        if request.target in ("label", "prediction"):
            return int(probabilities.argmax())
        return int(request.target)

    @staticmethod
    def class_name(index: int, classes) -> str:
        return f"{index} ({classes[index]})" if classes and index < len(classes) else str(index)

    def token_positions(self, request: Request) -> tuple[slice, list[str]]:
        """Which positions of the token ids are words (padding left out), and the words."""
        data, ids = request.data, request.x[0].tolist()
        vocab = getattr(data, "vocab", None)
        words = [vocab[i] for i in ids] if vocab else [str(i) for i in ids]
        tokens = getattr(data, "tokens", None)
        if not tokens or request.data_name == UPLOAD:
            return slice(0, len(ids)), words
        tokens = list(tokens[request.sample])
        padded_in_front = words[:len(tokens)] != tokens and words[-len(tokens):] == tokens
        start = len(ids) - len(tokens) if padded_in_front else 0
        return slice(start, start + len(tokens)), tokens

    def value(self, name: str):
        """The current value of the explorer's control or view control `name`."""
        return (self.view_widgets.get(name) or self.extra_widgets[name]).value

    def overlay(self) -> dict:
        """The display controls as `viz.heatmap_overlay` / `viz.method_grid` arguments."""
        normalize = self.normalize.value
        return dict(normalize=None if normalize == "none" else normalize,
                    opacity=self.opacity.value)

    def model(self, name: str | None = None, device: str | None = None) -> nn.Module:
        """The model `name` (default: the one picked) on `device` (default: the one picked),
        loaded once (zoo) or copied once (given modules), and prepared for many passes
        (`fast.for_many_passes`: the same function, faster; a given module stays as it is)."""
        name = name or self.model_picker.value
        device = device or self.device_picker.value
        if (name, device) not in self._loaded:
            if name in self._modules:
                module = self._modules[name]
                if model_device(module) != torch.device(device):
                    module = copy.deepcopy(module).to(device)
            else:
                module = zoo.load_model(name, device)
            example = self._dataset(self._data_names(name)[0]).x[:1].to(device)
            self._loaded[(name, device)] = for_many_passes(module, example)
        return self._loaded[(name, device)]

    def input_shape(self, model_name: str | None = None) -> tuple[int, ...]:
        """The shape of one input of the model's data set, without the batch axis."""
        model_name = model_name or self.model_picker.value
        return tuple(self._dataset(self._data_names(model_name)[0]).x.shape[1:])

    def option_widgets(self, method_name: str) -> dict[str, widgets.Widget]:
        """The controls of a method's declared options, {option name: widget}, built once."""
        if method_name not in self._option_widgets:
            method = self.methods.get(method_name)
            built = {}
            for name, spec in getattr(method, "options", {}).items():
                if name in self.fixed_options:
                    continue
                built[name] = option_widget(spec)
                self._observe(built[name], self.update)
            self._option_widgets[method_name] = built
        return self._option_widgets[method_name]

    def add_control(self, control: Option | widgets.Widget, redraw_only: bool = False,
                    name: str | None = None) -> widgets.Widget:
        """Add a control of the explorer, declared as an `Option` (built by `option_widget`;
        the name is the option's) or, for what an Option cannot say (free text), a widget.
        Its value goes into `request.extras` and a change recomputes; redraw_only: a change
        only redraws (`self.value(name)`). Returns the widget."""
        if isinstance(control, Option):
            name, widget = control.name, option_widget(control)
        else:
            name, widget = name or control.description, control
        if redraw_only:
            self.view_widgets[name] = widget
            self.display_box.children = (*self.display_box.children, widget)
            self._observe(widget, self.redraw)
        else:
            self.extra_widgets[name] = widget
            self.extra_box.children = (*self.extra_box.children, widget)
            self._observe(widget, self.update)
        return widget

    @contextlib.contextmanager
    def holding(self):
        """Change several controls with one computation: none until the block ends (the
        next change then computes)."""
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1

    # ----------------------------------------------------------------- widgets
    def _build_widgets(self, devices, device, check) -> None:
        self.model_picker = widgets.Dropdown(description="model", options=self._model_names,
                                             style=_WIDE, layout=widgets.Layout(width="auto"))
        self.data_picker = widgets.Dropdown(description="data", style=_WIDE,
                                            layout=widgets.Layout(width="auto"))
        self.sample_picker = widgets.IntSlider(description="sample", min=0, max=0,
                                               continuous_update=False, style=_WIDE,
                                               layout=widgets.Layout(width="24em"))
        self.target_picker = widgets.Dropdown(description="target", options=TARGETS,
                                              value="label", style=_WIDE,
                                              layout=widgets.Layout(width="auto"))
        devices = list(devices or _default_devices())
        device = torch.device(device or zoo.default_device()).type
        self.device_picker = widgets.Dropdown(
            description="device", options=devices,
            value=device if device in devices else devices[0], style=_WIDE,
            layout=widgets.Layout(width="auto"))
        self.upload = widgets.FileUpload(accept=".png,.jpg,.jpeg,image/png,image/jpeg",
                                         multiple=False, description="your image")
        names = list(self.methods)
        if len(names) <= 4 and all(len(n) <= 24 for n in names):
            self.method_picker = widgets.ToggleButtons(
                description="method", options=names or [""],
                style=dict(_WIDE, button_width="auto"))
        else:
            self.method_picker = widgets.Dropdown(description="method", options=names,
                                                  style=_WIDE,
                                                  layout=widgets.Layout(width="auto"))
        self.method_picker.layout.display = None if len(names) > 1 else "none"
        self.check_box = widgets.Checkbox(description="check against the reference",
                                          value=check, indent=False,
                                          layout=widgets.Layout(width="auto"))
        row = widgets.Layout(flex_flow="row wrap", align_items="center")
        self.options_box = widgets.HBox(layout=row)
        self.extra_box = widgets.HBox(layout=row)
        self.display_box = widgets.HBox(layout=row)
        self.figure_box = widgets.Box([FigureWidget(layout=viz.layout(
            presentation=self.presentation))], layout=widgets.Layout(width="100%"))
        self.status_line = widgets.HTML()
        self.note = widgets.HTML()
        self.error = widgets.HTML()
        self.widget = widgets.VBox([
            widgets.HBox([self.model_picker, self.data_picker, self.device_picker], layout=row),
            widgets.HBox([self.sample_picker, self.target_picker, self.upload], layout=row),
            widgets.HBox([self.method_picker, self.check_box], layout=row),
            self.options_box,
            self.extra_box,
            self.display_box,
            self.figure_box, self.status_line, self.note, self.error,
        ])
        # DOM classes, so that a browser test finds the explorer and its sample picker
        self.widget.add_class("xai-explorer")
        self.sample_picker.add_class("xai-sample")
        self._observe(self.model_picker, self._on_model)
        self._observe(self.data_picker, self._on_data)
        self._observe(self.method_picker, self._on_method)
        self._observe(self.upload, self._on_upload)
        for w in (self.sample_picker, self.target_picker, self.device_picker, self.check_box):
            self._observe(w, self.update)

    @property
    def figure(self) -> go.FigureWidget:
        """The FigureWidget on screen (a new one each time the figure's structure changes)."""
        return self.figure_box.children[0]

    def show_figure(self, fig: go.Figure) -> None:
        """Show `fig`: in the FigureWidget on screen, or in a new one put in its place
        (`update_figure`); clicks on the traces named in `clickable` go to `clicked`."""
        self._put(update_figure(self.figure, fig))

    def _put(self, shown: go.FigureWidget) -> None:
        """Put `shown` on screen in place of the FigureWidget there (closed), unless it is
        that one; clicks on the traces named in `clickable` go to `clicked`."""
        old = self.figure
        if shown is not old:
            self.figure_box.children = (shown,)
            old.close()
        for trace in shown.data:
            if trace.name in self.clickable:
                trace.on_click(self._on_click)

    def _on_click(self, trace, points, state=None) -> None:
        if points.xs:
            self._guard(self.clicked)(trace.name, points.xs[0], points.ys[0])

    def _show_overlay(self, visible: bool) -> None:
        for w in (self.opacity, self.normalize):
            w.layout.display = None if visible else "none"

    def _observe(self, widget: widgets.Widget, handler: Callable) -> None:
        """Call `handler` when the user changes `widget` (not while the frame sets it)."""
        guarded = self._guard(handler)
        widget.observe(lambda change: None if self._quiet else guarded(change), names="value")

    def _guard(self, handler: Callable) -> Callable:
        """Wrap a callback: an exception goes to the error area, the explorer stays usable."""
        def guarded(*args):
            try:
                handler(*args)
            except Exception as e:  # shown to the user, not swallowed
                self._fail(e)
        return guarded

    @contextlib.contextmanager
    def quietly(self):
        """Set controls from code (the frame its pickers, an explorer its playback slider):
        no update and no redraw for these changes."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def show_error(self, error: BaseException) -> None:
        """Show an exception (type, message, folded traceback) in the error area."""
        self.last_error = error
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.error.value = (
            f'<div style="color:#b00020"><b>{html.escape(type(error).__name__)}</b>: '
            f"{html.escape(str(error))}<details><summary>traceback</summary>"
            f"<pre>{html.escape(tb)}</pre></details></div>")

    def clear_error(self) -> None:
        self.last_error = None
        self.error.value = ""

    def _fail(self, error: BaseException) -> None:
        """Show the error, and no stale picture: the figure says that it has none."""
        self.show_error(error)
        self.result = None
        self.status_line.value = ""
        try:
            self.show_figure(viz.blank_figure(
                f"no picture: {type(error).__name__} (see below)", self.presentation))
        except Exception:  # the error area already says what went wrong
            pass

    # ----------------------------------------------------------------- models and data
    def _data_names(self, model_name: str) -> list[str]:
        return list(self._data) or [zoo.model_info(model_name).dataset]

    def _dataset(self, name: str):
        if name not in self._datasets:
            given = self._data.get(name)
            self._datasets[name] = given if given is not None else zoo.dataset(
                name, n=self.n_samples)
        return self._datasets[name]

    def start(self) -> Explorer:
        """Load the first model that loads (ImageNet weights may be missing) and draw the first
        figure; once (displaying the explorer calls it). Returns the explorer."""
        if self._started:
            return self
        self._started = True
        # Under Voila the first figure is computed in the notebook's cell, not on the worker
        # thread: Voila's page fetches the widgets' state once the notebook has run, and an
        # update that arrives while it does so is lost (the figure would stay empty).
        # (in one go: no coarse picture that nobody would see)
        voila = _in_voila()
        sync, coarse_first = self.sync, self.coarse_first
        self.sync, self.coarse_first = sync or voila, coarse_first and not voila
        try:
            self._guard(self._on_model)()
        finally:
            self.sync, self.coarse_first = sync, coarse_first
        return self

    def _on_model(self, change=None) -> None:
        """Load the chosen model; if its weights are not on this machine, note it, fall back."""
        notes = []
        while True:
            name = self.model_picker.value
            try:
                self.model(name)
                break
            except zoo.WeightsNotCached as e:
                notes.append(f"<b>{html.escape(name)}</b> is not available: {html.escape(str(e))}")
                with self.quietly():
                    self.model_picker.options = [m for m in self.model_picker.options
                                                 if m != name]
                if not self.model_picker.options:
                    self.note.value = "<br>".join(notes)
                    raise RuntimeError("no model could be loaded; see the notes above") from e
        if notes:
            self.note.value = "<br>".join(notes + [f"Showing <b>{html.escape(name)}</b>."])
        text = zoo.is_text_model(self.model(name))
        self.upload.disabled = text
        self._show_overlay(self._overlay and not text)
        with self.quietly():
            names = self._data_names(name)
            if self._upload is not None and not text:
                names.append(UPLOAD)
            previous = self.data_picker.value
            self.data_picker.options = names
            self.data_picker.value = previous if previous in names else names[0]
        with self.holding():
            self._on_data()
            self.model_changed(name)
        self.update()

    def _on_data(self, change=None) -> None:
        """A new data set: the sample range and the class names of the target picker."""
        name = self.data_picker.value
        with self.quietly():
            if name == UPLOAD:
                self.sample_picker.disabled = True
                classes = self._dataset(self._data_names(self.model_picker.value)[0]).classes
            else:
                data = self._dataset(name)
                self.sample_picker.disabled = False
                self.sample_picker.max = len(data) - 1
                classes = data.classes
            options = TARGETS + [(f"{i}: {c}", i) for i, c in enumerate(classes)]
            previous = self.target_picker.value
            self.target_picker.options = options
            self.target_picker.value = previous if previous in [v for _, v in options] \
                else "label"
        self.update()

    def _on_method(self, change=None) -> None:
        """Show the chosen method's option controls (built once, values kept)."""
        name = self.method_picker.value
        method = self.methods.get(name)
        self.options_box.children = list(self.option_widgets(name).values()) if name else []
        has_reference = getattr(method, "reference", None) is not None
        self.check_box.layout.display = None if has_reference else "none"
        if has_reference:
            self.check_box.description = f"check against {method.reference_name}"
        self.update()

    def _on_upload(self, change=None) -> None:
        """Read the uploaded file (refusals show in the error area) and select it."""
        files = self.upload.value
        if not files:
            return
        name, data = files[-1]["name"], bytes(files[-1]["content"])
        with self.quietly():
            self.upload.value = ()  # so that the same file can be uploaded again
        try:
            self._read_upload(data, self.model_picker.value)
        except ValueError as refused:  # the picture on screen is still the one asked for
            self.show_error(refused)
            return
        previous = self._upload[0] if self._upload else 0
        self._upload = (previous + 1, name, data)
        with self.quietly():
            if UPLOAD not in self.data_picker.options:
                self.data_picker.options = [*self.data_picker.options, UPLOAD]
            self.data_picker.value = UPLOAD
        self._on_data()

    def _read_upload(self, data: bytes, model_name: str) -> torch.Tensor:
        channels, height, width = self.input_shape(model_name)
        return read_image(data, size=(height, width), channels=channels)

    # ----------------------------------------------------------------- requests
    def request(self) -> Request:
        """The request the controls describe now."""
        model_name, device = self.model_picker.value, self.device_picker.value
        model = self.model(model_name, device)
        data_name = self.data_picker.value
        if data_name == UPLOAD:
            uid, _, content = self._upload
            x, label, sample = self._read_upload(content, model_name), None, uid
            data = self._dataset(self._data_names(model_name)[0])
        else:
            data, sample = self._dataset(data_name), self.sample_picker.value
            x, label = data.x[sample:sample + 1], int(data.y[sample])
        method_name = self.method_picker.value or None
        options = {n: w.value for n, w in self._option_widgets.get(method_name, {}).items()}
        method = self.methods.get(method_name)
        options.update({k: v for k, v in self.fixed_options.items()
                        if k in getattr(method, "options", {})})
        return Request(
            model_name=model_name, data_name=data_name, sample=sample,
            target=self.target_picker.value, method_name=method_name,
            options=tuple(sorted(options.items())), device=device,
            check=self.check_box.value,
            extra=tuple(sorted((n, w.value) for n, w in self.extra_widgets.items())),
            model=model, method=method, x=x.to(device), label=label, data=data,
        )

    def update(self, change=None) -> None:
        """Compute and draw what the controls show (from the cache when it is there)."""
        if self._hold or not self._started:
            return
        request = self.request()
        with self._lock:
            self._generation += 1
            generation = self._generation
            cached = self._cache.get(request.key)
            if cached is not None:
                self._cache.move_to_end(request.key)
                self._deliver(generation, cached)
                return
        coarse = self.coarse(request) if self.coarse_first else None
        if self.sync:
            self._run(generation, request, coarse)
        else:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="xai-explorer")
            self._future = self._executor.submit(self._run, generation, request, coarse)

    def _run(self, generation: int, request: Request, coarse: Request | None = None) -> None:
        """Compute the coarse request (if any) and the full one, unless stale; cache the full
        one; deliver each. Never raises."""
        for step in (coarse, request):
            if step is None:
                continue
            if generation != self._generation:
                return  # a newer request is waiting behind this one
            try:
                result = self.compute(step)
            except Exception as e:  # delivered to the error area
                self._hand_over(generation, error=e)
                return
            if step is request:
                with self._lock:
                    self._cache[request.key] = result
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
            self._hand_over(generation, result)

    def _hand_over(self, generation: int, result=None, error: BaseException | None = None):
        """Deliver from the worker thread on the kernel's event loop, not here: widgets are not
        thread-safe. While the kernel applies a message from a figure's view (plotly's view
        reports back after each draw), traitlets holds the widget's change notifications, and
        plotly's one-shot messages to the view (set, then reset to None) changed meanwhile from
        another thread reach the view as None: the figure would stay as it was."""
        if self._loop is None or threading.get_ident() == self._home:
            self._deliver(generation, result, error)
            return
        try:
            self._loop.call_soon_threadsafe(self._deliver, generation, result, error)
        except RuntimeError:  # the loop has closed (the kernel is shutting down)
            pass

    def _deliver(self, generation: int, result=None, error: BaseException | None = None):
        """Draw a result, or show its error, if it is still the newest request."""
        with self._lock:
            if generation != self._generation:
                return  # stale: a newer request has been made since
            if error is not None:
                self._fail(error)
                return
            try:
                self._draw(result)
            except Exception as e:  # a bug in render: shown, not raised
                self._fail(e)

    def _draw(self, result: Result) -> None:
        self.show_figure(self.render(result))
        self.result = result
        status = self.status(result)
        if result.request.coarse:
            status = f"<b>coarse: {html.escape(result.request.coarse)} — refining…</b> · {status}"
        self.status_line.value = status
        self.clear_error()

    def redraw(self, change=None) -> None:
        """Draw the current result again (display controls such as opacity)."""
        with self._lock:
            if self.result is not None:
                self._draw(self.result)

    def wait(self, timeout: float | None = 30.0) -> None:
        """Block until the pending computations are done (a no-op in sync mode). In a kernel
        their results are drawn on its event loop, once the running cell has finished."""
        if self._future is not None:
            self._future.result(timeout)

    def close(self) -> None:
        """Stop the worker thread and close the widgets."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.widget.close()

    # ----------------------------------------------------------------- display
    def _ipython_display_(self) -> None:
        from IPython.display import display

        self.start()
        display(self.widget)
