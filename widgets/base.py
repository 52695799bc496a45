"""The explorer frame every chapter view is composed from.

    from xai_course import gradients
    from xai_course.widgets.base import Explorer
    Explorer(methods={"gradient": gradients.gradient})     # a whole explorer in one line

What it shows, top to bottom:

    pickers    model, data set, sample, target class, device, "your image" upload
    controls   method picker, the method's declared options (built from `method.options`),
               the extra controls of a subclass, display controls (opacity, normalisation)
    figure     a plotly FigureWidget, updated in place
    status     device, milliseconds the method took, max |ours - reference| when asked
    note/error notes (e.g. weights not cached) and the last exception, traceback folded

How it works: every control calls `update()`. It builds a `Request` (what to compute), looks
it up in the cache, and otherwise runs `compute(request)` on one worker thread; in a kernel the
result is drawn on the kernel's event loop (widgets are not thread-safe). Each request
gets a generation number; a result whose generation is no longer the newest is dropped, so a
slow computation for an old slider value never overwrites a newer one. With `sync=True`
(headless tests, notebook execution) everything runs in the caller's thread.

A chapter overrides only what differs, as each CAM in pytorch-grad-cam's `base_cam.py`:

    extra_controls()  -> {name: widget}: more controls; their values arrive in request.extra
    compute(request)  -> result (default: the method's attribution, as a `Result`)
    render(result)    -> go.Figure to show (or None after drawing into self.figure)
    status(result)    -> the status line (HTML)
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
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from xai_course import viz, zoo
from xai_course.convention import MODEL_LOCK, Option, model_device, traced_graph
from xai_course.images import read_image

__all__ = ["Explorer", "Request", "Result", "option_widget", "update_figure", "UPLOAD"]

UPLOAD = "your image"  # the data picker's entry for an uploaded image
TARGETS = [("label", "label"), ("prediction", "prediction")]


# --------------------------------------------------------------------------- requests
@dataclasses.dataclass(frozen=True)
class Request:
    """Everything one computation needs. `key` (the first nine fields) names it in the cache."""

    model_name: str
    data_name: str
    sample: int  # the sample's index (for an upload: which upload)
    target: Any  # "label", "prediction" or a class index
    method_name: str | None
    options: tuple  # ((option name, value), ...) of the method
    device: str
    check: bool  # also compute the reference and the difference
    extra: tuple  # ((control name, value), ...) of a subclass's extra controls
    model: nn.Module = dataclasses.field(compare=False, repr=False, default=None)
    method: Callable | None = dataclasses.field(compare=False, repr=False, default=None)
    x: torch.Tensor = dataclasses.field(compare=False, repr=False, default=None)  # (1, ...)
    label: int | None = dataclasses.field(compare=False, default=None)
    data: Any = dataclasses.field(compare=False, repr=False, default=None)  # the data set

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


@dataclasses.dataclass
class Result:
    """What the default `compute` returns. attribution: on the CPU, without the batch axis."""

    request: Request
    attribution: torch.Tensor | None
    target: int
    probabilities: torch.Tensor  # (classes,)
    ms: float  # time the method took
    reference_error: float | None = None  # max |ours - reference|
    extra: dict = dataclasses.field(default_factory=dict)  # anything a subclass adds


# --------------------------------------------------------------------------- pieces
def option_widget(spec: Option) -> widgets.Widget:
    """A control for one declared option; its `.value` is the option's value.

    int/float -> slider (log slider if `spec.log`; a text box when unbounded); choice ->
    toggle buttons (up to 4 choices) or a dropdown; bool -> checkbox. Expensive options
    update when the slider is released (`continuous_update=False`).
    """
    common = dict(description=spec.name, tooltip=spec.help or None,
                  style={"description_width": "initial"})
    live = dict(continuous_update=not spec.expensive)
    if spec.kind == "bool":
        return widgets.Checkbox(value=bool(spec.default), indent=False, **common)
    if spec.kind == "choice":
        labelled = [(str(c), c) for c in spec.choices]
        short = len(labelled) <= 4 and all(len(label) <= 16 for label, _ in labelled)
        kind = widgets.ToggleButtons if short else widgets.Dropdown
        return kind(options=labelled, value=spec.default, **common)
    if spec.low is None or spec.high is None:
        text = widgets.IntText if spec.kind == "int" else widgets.FloatText
        return text(value=spec.default, **common, **live)
    if spec.log and spec.low > 0:
        if spec.kind == "float":
            return widgets.FloatLogSlider(value=spec.default, base=10, min=np.log10(spec.low),
                                          max=np.log10(spec.high), **common, **live)
        values = np.geomspace(spec.low, spec.high, 25).round().astype(int).tolist()
        values = sorted(set(values) | {int(spec.default)})
        return widgets.SelectionSlider(options=values, value=int(spec.default), **common, **live)
    if spec.kind == "int":
        return widgets.IntSlider(value=spec.default, min=spec.low, max=spec.high,
                                 step=spec.step or 1, **common, **live)
    return widgets.FloatSlider(value=spec.default, min=spec.low, max=spec.high,
                               step=spec.step or (spec.high - spec.low) / 100,
                               readout_format=".3g", **common, **live)


def update_figure(widget: go.FigureWidget, fig: go.Figure) -> None:
    """Show `fig` in `widget` in place: restyle traces of the same kind, else replace them."""
    with widget.batch_update():
        if [t.type for t in widget.data] == [t.type for t in fig.data]:
            for old, new in zip(widget.data, fig.data, strict=True):
                new_json = new.to_plotly_json()
                gone = {k: None for k in old.to_plotly_json() if k not in new_json
                        and k not in ("type", "uid")}
                old.update(gone)
                old.update(new_json)
        else:
            widget.data = ()
            widget.add_traces(fig.data)
        widget.layout = fig.layout
    # The updates above reach only the views that exist now. A view made later (Voila shows the
    # page after the notebook has run; an output drawn again) starts from the widget's state,
    # which plotly sets only when the widget is built or displayed by itself: keep it current.
    widget._widget_data = copy.deepcopy(widget._data)
    widget._widget_layout = copy.deepcopy(widget._layout_obj._props)


def _is_text(model: nn.Module) -> bool:
    """Text models of the course embed token ids; methods run on `model.encoder`."""
    return hasattr(model, "embedding") and hasattr(model, "encoder")


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

    methods: {name: method} (or one method, or None when a subclass computes by itself); each
        `method(model, inputs, target, **options) -> Tensor` with `method.options` declared.
    models: None (the zoo's image and text models), a list of zoo names, or {name: nn.Module}.
    data: None (each zoo model's own data set), a data set (`.x`, `.y`, `.classes`, ...) or
        {name: data set}; given data sets are offered for every model.
    model, device: the initial choices. devices: the device picker's list (default: cpu,
        and cuda when available). check: compute the reference and show the difference.
    presentation: large figure and fonts for a projector (default: when the environment
        variable XAI_COURSE_PRESENTATION=1, which `xai-course present` sets). sync: compute
        in the caller's thread (default: only outside a Jupyter kernel). n_samples: zoo
        samples offered.
    """

    cache_size = 64

    def __init__(self, methods: Mapping[str, Callable] | Callable | None = None, *,
                 models: list[str] | Mapping[str, nn.Module] | None = None, data=None,
                 model: str | None = None, device: str | torch.device | None = None,
                 devices: list[str] | None = None, check: bool = False,
                 presentation: bool | None = None, sync: bool | None = None,
                 n_samples: int = 64):
        if callable(methods):
            methods = {getattr(methods, "__name__", "method"): methods}
        self.methods = dict(methods or {})
        self._modules = dict(models) if isinstance(models, Mapping) else {}
        self._model_names = list(self._modules) or list(models or [  # images and texts
            m for m in zoo.models() if not getattr(zoo.model_info(m), "tabular", False)])
        if model is not None and model not in self._model_names:
            raise ValueError(f"unknown model {model!r}; choose from {self._model_names}")
        self._data = ({getattr(data, "name", "data"): data} if hasattr(data, "x")
                      else dict(data or {}))
        self.presentation = _default_presentation() if presentation is None else presentation
        self.sync = _default_sync() if sync is None else sync
        self.n_samples = n_samples
        self.result = None  # the result on screen
        self.last_error: BaseException | None = None
        self.timings: dict[str, float] = {}
        self._loaded: dict[tuple[str, str], nn.Module] = {}
        self._datasets: dict[str, Any] = {}
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.RLock()
        self._generation = 0
        self._hold = 0
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

        self._build_widgets(devices, device, check)
        self.extra_widgets = dict(self.extra_controls())
        self.extra_box.children = list(self.extra_widgets.values())
        self._wire()
        self._guard(self._start)(model)

    # ----------------------------------------------------------------- subclass hooks
    def extra_controls(self) -> dict[str, widgets.Widget]:
        """More controls for a subclass: {name: widget}; their values go into request.extra."""
        return {}

    def compute(self, request: Request) -> Result:
        """Run the method on the request's input (on the worker thread); return a `Result`."""
        model, x = request.model, request.x
        with torch.no_grad():
            probabilities = torch.softmax(model(x).float(), dim=1)[0].cpu()
        target = self.resolve_target(request, probabilities)
        if request.method is None:
            return Result(request, None, target, probabilities, 0.0)
        start = time.perf_counter()
        attribution = self.attribute(request.method, model, x, target,
                                     self.seeded(request.method, request.opts, x.device))
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        ms = (time.perf_counter() - start) * 1000
        error = None
        if request.check and getattr(request.method, "reference", None) is not None:
            # the same seeded noise on both sides, so randomised methods can be compared
            ref = self.attribute(request.method.reference, model, x, target,
                                 self.seeded(request.method, request.opts, x.device))
            error = (attribution.detach() - ref.detach()).abs().max().item()
        return Result(request, attribution[0].detach().cpu(), target, probabilities, ms, error)

    def render(self, result: Result) -> go.Figure | None:
        """The figure for a result: the attribution over the image, or coloured tokens."""
        request = result.request
        classes = getattr(request.data, "classes", None)
        title = f"{request.method_name or request.model_name} · target: " \
                f"{self.class_name(result.target, classes)}"
        if _is_text(request.model):
            where, tokens = self.token_positions(request)
            scores = (result.attribution[where] if result.attribution is not None
                      else torch.zeros(len(tokens)))
            relevant = getattr(request.data, "relevant", None)
            if relevant is not None and request.data_name != UPLOAD:
                relevant = relevant[request.sample][where]
            return viz.token_figure(tokens, scores, relevant, title=title,
                                    presentation=self.presentation)
        normalize = None if self.normalize.value == "none" else self.normalize.value
        return viz.heatmap_overlay(request.x[0].detach().cpu(), result.attribution,
                                   normalize=normalize, opacity=self.opacity.value, title=title,
                                   presentation=self.presentation)

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

    # ----------------------------------------------------------------- helpers for hooks
    def attribute(self, method: Callable, model: nn.Module, x: torch.Tensor, target: int,
                  options: dict) -> torch.Tensor:
        """Call `method` by the convention; text models: on the embeddings, summed per token."""
        if _is_text(model):
            embedded = model.embedding(x).detach()
            return method(model.encoder, embedded, target, **options).sum(-1)
        return method(model, x, target, **options)

    @staticmethod
    def seeded(method: Callable, options: dict, device: torch.device) -> dict:
        """The options, plus a generator seeded with 0 for a method that takes one: the same
        request then always draws the same noise (and the cache stays truthful)."""
        if "generator" not in inspect.signature(method).parameters:
            return options
        return {**options, "generator": torch.Generator(device=device).manual_seed(0)}

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
        if not tokens:
            return slice(0, len(ids)), words
        tokens = list(tokens[request.sample])
        padded_in_front = words[:len(tokens)] != tokens and words[-len(tokens):] == tokens
        start = len(ids) - len(tokens) if padded_in_front else 0
        return slice(start, start + len(tokens)), tokens

    # ----------------------------------------------------------------- widgets
    def _build_widgets(self, devices, device, check) -> None:
        wide = {"description_width": "initial"}
        self.model_picker = widgets.Dropdown(description="model", options=self._model_names,
                                             style=wide)
        self.data_picker = widgets.Dropdown(description="data", style=wide)
        self.sample_picker = widgets.IntSlider(description="sample", min=0, max=0,
                                               continuous_update=False, style=wide)
        self.target_picker = widgets.Dropdown(description="target", options=TARGETS,
                                              value="label", style=wide)
        devices = list(devices or _default_devices())
        device = torch.device(device or zoo.default_device()).type
        self.device_picker = widgets.Dropdown(
            description="device", options=devices,
            value=device if device in devices else devices[0], style=wide)
        self.upload = widgets.FileUpload(accept=".png,.jpg,.jpeg,image/png,image/jpeg",
                                         multiple=False, description="your image")
        names = list(self.methods)
        picker = widgets.ToggleButtons if len(names) <= 4 else widgets.Dropdown
        self.method_picker = picker(description="method", options=names or [""], style=wide)
        self.method_picker.layout.display = None if len(names) > 1 else "none"
        self.check_box = widgets.Checkbox(description="check against the reference",
                                          value=check, indent=False)
        self.options_box = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.extra_box = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.opacity = widgets.FloatSlider(description="opacity", value=0.5, min=0, max=1,
                                           step=0.05, style=wide)
        self.normalize = widgets.Dropdown(description="normalise",
                                          options=["maxabs", "percentile", "none"], style=wide)
        self.figure = go.FigureWidget(layout=dict(
            height=viz.HEIGHT[bool(self.presentation)], template=viz.TEMPLATE))
        self.display_box = widgets.HBox([self.opacity, self.normalize])
        self.status_line = widgets.HTML()
        self.note = widgets.HTML()
        self.error = widgets.HTML()
        row = widgets.Layout(flex_flow="row wrap")
        self.widget = widgets.VBox([
            widgets.HBox([self.model_picker, self.data_picker, self.device_picker], layout=row),
            widgets.HBox([self.sample_picker, self.target_picker, self.upload], layout=row),
            widgets.HBox([self.method_picker, self.check_box], layout=row),
            self.options_box,
            self.extra_box,
            self.display_box,
            self.figure, self.status_line, self.note, self.error,
        ])
        # DOM classes, so that a browser test finds the explorer and its sample picker
        self.widget.add_class("xai-explorer")
        self.sample_picker.add_class("xai-sample")

    def _wire(self) -> None:
        self._observe(self.model_picker, self._on_model)
        self._observe(self.data_picker, self._on_data)
        self._observe(self.method_picker, self._on_method)
        self._observe(self.upload, self._on_upload)
        for w in (self.sample_picker, self.target_picker, self.device_picker, self.check_box,
                  *self.extra_widgets.values()):
            self._observe(w, self.update)
        for w in (self.opacity, self.normalize):
            self._observe(w, self.redraw)

    def _observe(self, widget: widgets.Widget, handler: Callable) -> None:
        """Call `handler` when the user changes `widget` (not while the explorer holds)."""
        guarded = self._guard(handler)
        widget.observe(lambda change: None if self._hold else guarded(change), names="value")

    def _guard(self, handler: Callable) -> Callable:
        """Wrap a callback: an exception goes to the error area, the explorer stays usable."""
        def guarded(*args):
            try:
                handler(*args)
            except Exception as e:  # shown to the user, not swallowed
                self.show_error(e)
        return guarded

    @contextlib.contextmanager
    def _holding(self):
        """Change several controls without an update per change."""
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1

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

    # ----------------------------------------------------------------- models and data
    def _model(self, name: str, device: str) -> nn.Module:
        """The model `name` on `device`, loaded once (zoo) or copied once (given modules)."""
        if (name, device) not in self._loaded:
            if name in self._modules:
                module = self._modules[name]
                if model_device(module) != torch.device(device):
                    module = copy.deepcopy(module).to(device)
            else:
                module = zoo.load_model(name, device)
            self._loaded[(name, device)] = module
        return self._loaded[(name, device)]

    def _data_names(self, model_name: str) -> list[str]:
        return list(self._data) or [zoo.model_info(model_name).dataset]

    def _dataset(self, name: str):
        if name not in self._datasets:
            given = self._data.get(name)
            self._datasets[name] = given if given is not None else zoo.dataset(
                name, n=self.n_samples)
        return self._datasets[name]

    def _input_shape(self, model_name: str) -> tuple[int, ...]:
        return tuple(self._dataset(self._data_names(model_name)[0]).x.shape[1:])

    def _start(self, model: str | None) -> None:
        """Pick the first model that loads (ImageNet weights may be missing) and draw."""
        with self._holding():
            self._on_method()
            if model is not None:
                self.model_picker.value = model
        # Under Voila the first figure is computed in the notebook's cell, not on the worker
        # thread: Voila's page fetches the widgets' state once the notebook has run, and an
        # update that arrives while it does so is lost (the figure would stay empty).
        sync, self.sync = self.sync, self.sync or _in_voila()
        try:
            self._on_model()
        finally:
            self.sync = sync

    def _on_model(self, change=None) -> None:
        """Load the chosen model; if its weights are not on this machine, note it, fall back."""
        notes = []
        while True:
            name = self.model_picker.value
            try:
                self._model(name, self.device_picker.value)
                break
            except zoo.WeightsNotCached as e:
                notes.append(f"<b>{html.escape(name)}</b> is not available: {html.escape(str(e))}")
                with self._holding():
                    self.model_picker.options = [m for m in self.model_picker.options
                                                 if m != name]
                if not self.model_picker.options:
                    self.note.value = "<br>".join(notes)
                    raise RuntimeError("no model could be loaded; see the notes above") from e
        if notes:
            self.note.value = "<br>".join(notes + [f"Showing <b>{html.escape(name)}</b>."])
        text = _is_text(self._model(name, self.device_picker.value))
        self.upload.disabled = text
        self.display_box.layout.display = "none" if text else None
        with self._holding():
            names = self._data_names(name)
            if self._upload is not None and not text:
                names.append(UPLOAD)
            previous = self.data_picker.value
            self.data_picker.options = names
            self.data_picker.value = previous if previous in names else names[0]
            self._on_data()
        self.update()

    def _on_data(self, change=None) -> None:
        """A new data set: the sample range and the class names of the target picker."""
        name = self.data_picker.value
        with self._holding():
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
        if name and name not in self._option_widgets:
            built = {n: option_widget(spec)
                     for n, spec in getattr(method, "options", {}).items()}
            for w in built.values():
                self._observe(w, self.update)
            self._option_widgets[name] = built
        self.options_box.children = list(self._option_widgets.get(name, {}).values())
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
        with self._holding():
            self.upload.value = ()  # so that the same file can be uploaded again
        self._read_upload(data, self.model_picker.value)  # raises a ValueError if refused
        previous = self._upload[0] if self._upload else 0
        self._upload = (previous + 1, name, data)
        with self._holding():
            if UPLOAD not in self.data_picker.options:
                self.data_picker.options = [*self.data_picker.options, UPLOAD]
            self.data_picker.value = UPLOAD
            self._on_data()
        self.update()

    def _read_upload(self, data: bytes, model_name: str) -> torch.Tensor:
        channels, height, width = self._input_shape(model_name)
        return read_image(data, size=(height, width), channels=channels)

    # ----------------------------------------------------------------- requests
    def request(self) -> Request:
        """The request the controls describe now."""
        model_name, device = self.model_picker.value, self.device_picker.value
        model = self._model(model_name, device)
        # torch.fx graph for the methods' faster copies, traced here on the main thread: the
        # worker that computes may not trace (see convention.traced_graph)
        traced_graph(model, wait=False)
        data_name = self.data_picker.value
        if data_name == UPLOAD:
            uid, _, content = self._upload
            x, label, sample = self._read_upload(content, model_name), None, uid
            data = self._dataset(self._data_names(model_name)[0])
        else:
            data, sample = self._dataset(data_name), self.sample_picker.value
            x, label = data.x[sample:sample + 1], int(data.y[sample])
        method_name = self.method_picker.value or None
        option_widgets = self._option_widgets.get(method_name, {})
        return Request(
            model_name=model_name, data_name=data_name, sample=sample,
            target=self.target_picker.value, method_name=method_name,
            options=tuple(sorted((n, w.value) for n, w in option_widgets.items())),
            device=device, check=self.check_box.value,
            extra=tuple(sorted((n, w.value) for n, w in self.extra_widgets.items())),
            model=model, method=self.methods.get(method_name), x=x.to(device), label=label,
            data=data,
        )

    def update(self, change=None) -> None:
        """Compute and draw what the controls show (from the cache when it is there)."""
        if self._hold:
            return
        request = self.request()
        with self._lock:
            self._generation += 1
            generation = self._generation
            cached = self._cache.get(request.key)
            if cached is not None:
                self._cache.move_to_end(request.key)
                self.timings["compute_ms"] = 0.0
                self._deliver(generation, cached)
                return
        if self.sync:
            self._run(generation, request)
        else:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="xai-explorer")
            self._future = self._executor.submit(self._run, generation, request)

    def _run(self, generation: int, request: Request) -> None:
        """Compute (unless already stale), cache, and deliver. Never raises."""
        if generation != self._generation:
            return  # a newer request is waiting behind this one
        try:
            with MODEL_LOCK:  # one computation at a time in the process (see convention)
                start = time.perf_counter()
                result = self.compute(request)
                self.timings["compute_ms"] = (time.perf_counter() - start) * 1000
        except Exception as e:  # delivered to the error area
            self._hand_over(generation, error=e)
            return
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
                self.show_error(error)
                return
            try:
                self._draw(result)
            except Exception as e:  # a bug in render: shown, not raised
                self.show_error(e)

    def _draw(self, result) -> None:
        start = time.perf_counter()
        fig = self.render(result)
        if fig is not None:
            update_figure(self.figure, fig)
        self.result = result
        self.status_line.value = self.status(result)
        self.clear_error()
        self.timings["render_ms"] = (time.perf_counter() - start) * 1000

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

        display(self.widget)
