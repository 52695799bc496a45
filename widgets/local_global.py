"""Chapter 01 explorers: local vs global explanations.

- `PatchExperiment`: hide one grey patch (sliders, or click on the image) and watch the class
  probability; tick "full map" to slide the patch everywhere (`perturbation.occlusion`).
- `ShortcutDemo`: the same canvas explained for a model that learned a shortcut and for one
  that did not; move the mark and watch the shortcut model fail.
- `PreferredInput`: a first global view, a class's preferred input by gradient ascent.
The gradient saliency map needs no class of its own: `Explorer(gradients.gradient)`.
"""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from xai_course import activation_max, gradients, local_global, perturbation, viz, zoo

from .base import Explorer, Result
from .welcome import top_classes

__all__ = ["PatchExperiment", "ShortcutDemo", "PreferredInput"]


def _image_panel(fig: go.Figure, image_fig: go.Figure, col: int) -> None:
    """Copy the traces of an image figure into column `col` of a subplot figure."""
    for trace in image_fig.data:
        fig.add_trace(trace, row=1, col=col)
    fig.update_xaxes(visible=False, row=1, col=col)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{col}" if col > 1
                     else "x", row=1, col=col)


class PatchExperiment(Explorer):
    """Zeiler & Fergus's experiment by hand: where does a grey patch hurt the prediction?"""

    def __init__(self, **kwargs):
        kwargs.setdefault("models", ["cluttered-digits", "digits"])
        self._clickable = None  # the image trace that listens for clicks
        super().__init__(methods=None, **kwargs)

    def extra_controls(self) -> dict[str, widgets.Widget]:
        live = dict(continuous_update=True, style={"description_width": "initial"})
        return {
            "size": widgets.IntSlider(description="patch size", value=12, min=2, max=32,
                                      **live),
            "top": widgets.IntSlider(description="top", value=20, min=0, max=63, **live),
            "left": widgets.IntSlider(description="left", value=20, min=0, max=63, **live),
            "full map": widgets.Checkbox(description="full occlusion map", value=False,
                                         indent=False),
        }

    def compute(self, request) -> Result:
        result = super().compute(request)  # probabilities and the target
        x, extra = request.x, request.extras
        height, width = x.shape[-2:]
        size = min(extra["size"], height, width)
        top, left = min(extra["top"], height - size), min(extra["left"], width - size)
        before, after = local_global.patch_effect(request.model, x, result.target, top, left,
                                                  size)
        hidden = perturbation.occlude(x, (0, top, left), (x.shape[1], size, size), 0.5)
        with torch.no_grad():
            p_hidden = request.model(hidden).softmax(dim=1)[0].cpu()
        result.extra.update(before=before.item(), after=after.item(), hidden=hidden[0].cpu(),
                            p_hidden=p_hidden, patch=(top, left, size))
        if extra["full map"]:
            result.attribution = perturbation.occlusion(
                request.model, x, result.target, window=size, stride=max(1, size // 2),
                baseline=0.5, output="probability")[0].cpu()
        return result

    def render(self, result: Result) -> go.Figure:
        e = result.extra
        classes = getattr(result.request.data, "classes", None)
        name = self.class_name(result.target, classes)
        fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.1,
                            subplot_titles=(
                                "occlusion map: probability drop" if result.attribution
                                is not None else "the image with the patch (click to move)",
                                f"p({name}) {100 * e['before']:.1f}% → {100 * e['after']:.1f}%"))
        if result.attribution is not None:
            panel = viz.heatmap_overlay(result.request.x[0].cpu(), result.attribution,
                                        opacity=self.opacity.value, colorbar=False)
        else:
            panel = viz.heatmap_overlay(e["hidden"], colorbar=False)
        _image_panel(fig, panel, 1)
        top, left, size = e["patch"]
        fig.add_shape(type="rect", x0=left - 0.5, y0=top - 0.5, x1=left + size - 0.5,
                      y1=top + size - 0.5, line=dict(color="#ffcc00", width=2), row=1, col=1)
        shown = top_classes(result.probabilities, classes, k=5)
        names = [n for n, _ in shown]
        index = [classes.index(n) if classes else int(n) for n in names]
        fig.add_trace(go.Bar(y=names, x=[p for _, p in shown], orientation="h",
                             name="without patch", marker_color="#4477aa"), row=1, col=2)
        fig.add_trace(go.Bar(y=names, x=e["p_hidden"][index].tolist(), orientation="h",
                             name="with patch", marker_color="#ee6677"), row=1, col=2)
        fig.update_yaxes(autorange="reversed", row=1, col=2)
        fig.update_xaxes(range=[0, 1], title_text="probability", row=1, col=2)
        fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.15))
        return viz.style(fig, None, self.presentation)

    def _draw(self, result) -> None:
        super()._draw(result)
        image_trace = self.figure.data[0] if self.figure.data else None
        if image_trace is not None and image_trace is not self._clickable:
            image_trace.on_click(self._guard(self.on_click))
            self._clickable = image_trace

    def on_click(self, trace, points, selector=None) -> None:
        """Centre the patch where the image was clicked."""
        if not points.xs:
            return
        size = self.extra_widgets["size"].value
        with self._holding():
            self.extra_widgets["left"].value = max(0, int(points.xs[0]) - size // 2)
            self.extra_widgets["top"].value = max(0, int(points.ys[0]) - size // 2)
        self.update()


class ShortcutDemo(Explorer):
    """One canvas, two models: which one looks at the digit, which one at the mark?"""

    MODELS = ("shortcut-digits", "cluttered-digits")

    def __init__(self, n_samples: int = 64, **kwargs):
        data = {"mark in place": zoo.dataset("shortcut-digits", split="test", n=n_samples),
                "mark moved": zoo.dataset("shortcut-digits", split="moved", n=n_samples)}
        kwargs.setdefault("models", list(self.MODELS))
        methods = {"gradient": gradients.gradient, "occlusion": perturbation.occlusion}
        super().__init__(methods=methods, data=data, **kwargs)
        self.model_picker.layout.display = "none"  # both models are shown side by side

    def compute(self, request) -> Result:
        result = super().compute(request)
        for name in self.MODELS:
            model = self._model(name, request.device)
            with torch.no_grad():
                p = model(request.x).softmax(dim=1)[0].cpu()
            target = request.label if request.target == "label" else result.target
            attribution = self.attribute(request.method, model, request.x, target,
                                         request.opts)
            result.extra[name] = (attribution[0].cpu(), p)
        return result

    def render(self, result: Result) -> go.Figure:
        classes = result.request.data.classes
        maps, titles = {}, []
        for name in self.MODELS:
            attribution, p = result.extra[name]
            predicted = int(p.argmax())
            titles.append(f"{name}: predicts {classes[predicted]} ({100 * p[predicted]:.0f}%)")
            maps[titles[-1]] = attribution
        return viz.method_grid(result.request.x[0].cpu(), maps, opacity=self.opacity.value,
                               normalize=None if self.normalize.value == "none"
                               else self.normalize.value,
                               title=f"{result.request.method_name} · label "
                                     f"{classes[result.request.label]}",
                               presentation=self.presentation)


class PreferredInput(Explorer):
    """A global view: the input the model scores highest for a class (gradient ascent)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("models", ["digits", "cluttered-digits"])
        super().__init__(methods=None, **kwargs)
        self.display_box.layout.display = "none"

    def extra_controls(self) -> dict[str, widgets.Widget]:
        fixed = dict(continuous_update=False, style={"description_width": "initial"})
        return {
            "steps": widgets.IntSlider(description="steps", value=60, min=1, max=300, **fixed),
            "l2": widgets.FloatLogSlider(description="L2 weight", value=1e-3, min=-5, max=0,
                                         **fixed),
        }

    def compute(self, request) -> Result:
        result = super().compute(request)
        generator = torch.Generator(device=request.x.device).manual_seed(0)
        x, scores = activation_max.gradient_ascent(
            request.model, result.target, tuple(request.x.shape[1:]),
            steps=request.extras["steps"], l2=request.extras["l2"], generator=generator,
            return_history=True)
        with torch.no_grad():
            p = request.model(x).softmax(dim=1)[0, result.target].item()
        result.extra.update(image=x[0].cpu(), scores=scores, p=p)
        return result

    def render(self, result: Result) -> go.Figure:
        e = result.extra
        name = self.class_name(result.target, result.request.data.classes)
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
            f"preferred input for {name}: p = {100 * e['p']:.1f}%", "class score while climbing"))
        _image_panel(fig, viz.heatmap_overlay(e["image"], colorbar=False), 1)
        fig.add_trace(go.Scatter(y=e["scores"], mode="lines", name="score"), row=1, col=2)
        fig.update_xaxes(title_text="step", row=1, col=2)
        return viz.style(fig, None, self.presentation)
