"""Chapter 01 explorers: local vs global explanations.

- `PatchExperiment`: hide one black patch (sliders, or click on the image) and watch the class
  probability; tick "full occlusion map" to slide the patch everywhere (`perturbation.occlusion`).
- `ShortcutDemo`: the same canvas explained for a model that learned a shortcut and for one
  that did not; move the mark and watch the shortcut model fail.
- `PreferredInput`: a first global view, a class's preferred input by gradient ascent.
The gradient saliency map needs no class of its own: `Explorer(gradients.gradient)`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from xai_course import activation_max, gradients, local_global, perturbation, viz, zoo
from xai_course.convention import Option

from .base import Explorer, Request, Result, seeded
from .welcome import top_classes

__all__ = ["PatchExperiment", "ShortcutDemo", "PreferredInput"]

PATCH_CONTROLS = (
    Option("size", "int", 12, "side of the black patch, in pixels", low=2, high=32,
           expensive=False),
    Option("top", "int", 20, "the patch's top row", low=0, high=63, expensive=False),
    Option("left", "int", 20, "the patch's left column", low=0, high=63, expensive=False),
    Option("full occlusion map", "bool", False, "slide the patch everywhere"),
)


def click_target(height: int, width: int, what: str) -> go.Heatmap:
    """An invisible heatmap over an image panel that receives clicks: plotly reports clicks
    only on traces with hover information, and the image itself has none."""
    return go.Heatmap(z=np.zeros((height, width)), opacity=0.0, showscale=False, name="click",
                      hovertemplate=f"x %{{x}}, y %{{y}}<extra>{what}</extra>")


class PatchExperiment(Explorer):
    """Zeiler & Fergus's experiment by hand: where does a hidden patch hurt the prediction?
    The patch is black, occlusion's default fill (chapter 04 compares fills)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("models", ["cluttered-digits", "digits"])
        super().__init__(methods=None, controls=PATCH_CONTROLS, clickable=["click"], **kwargs)

    def coarse(self, request: Request) -> Request | None:
        """The full map with patches side by side first (a quarter of the passes)."""
        if not request.extras["full occlusion map"]:
            return None
        return request.variant("patches side by side", extra={"tiles": True})

    def compute(self, request) -> Result:
        result = self.predict(request)
        x, extra = request.x, request.extras
        height, width = x.shape[-2:]
        size = min(extra["size"], height, width)
        top, left = min(extra["top"], height - size), min(extra["left"], width - size)
        before, after = local_global.patch_effect(request.model, x, result.target, top, left,
                                                  size)
        hidden = perturbation.occlude(x, (0, top, left), (x.shape[1], size, size))
        with torch.no_grad():
            p_hidden = request.model(hidden).softmax(dim=1)[0].cpu()
        result.extra.update(before=before.item(), after=after.item(), hidden=hidden[0].cpu(),
                            p_hidden=p_hidden, patch=(top, left, size))
        if extra["full occlusion map"]:
            stride = size if extra.get("tiles") else max(1, size // 2)
            result.attribution = perturbation.occlusion(
                request.model, x, result.target, window=size, stride=stride,
                output="probability")[0].cpu()
        return result

    def render(self, result: Result) -> go.Figure:
        e, request = result.extra, result.request
        classes = getattr(request.data, "classes", None)
        name = self.class_name(result.target, classes)
        fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.06,
                            subplot_titles=(
                                "occlusion map: probability drop" if result.attribution
                                is not None else "click the image to move the patch",
                                f"p({name}): {100 * e['before']:.1f}% → "
                                f"{100 * e['after']:.1f}%"))
        if result.attribution is not None:
            panel = viz.heatmap_overlay(request.x[0].cpu(), result.attribution, colorbar=False,
                                        **self.overlay())
        else:
            panel = viz.heatmap_overlay(e["hidden"], colorbar=False)
        height, width = request.x.shape[-2:]
        panel.add_trace(click_target(height, width, "click: move the patch here"))
        viz.add_panel(fig, panel, 1, 1)
        top, left, size = e["patch"]
        fig.add_shape(type="rect", x0=left - 0.5, y0=top - 0.5, x1=left + size - 0.5,
                      y1=top + size - 0.5, line=dict(color="#ffcc00", width=2), row=1, col=1)
        shown = top_classes(result.probabilities, classes, k=5)
        names = [n for n, _ in shown]
        index = [classes.index(n) if classes else int(n) for n in names]
        viz.probability_bars(fig, names, {"without the patch": [p for _, p in shown],
                                          "with the patch": e["p_hidden"][index].tolist()},
                             1, 2)
        return viz.style(fig, None, self.presentation)

    def clicked(self, trace_name, x, y) -> None:
        """Centre the patch where the image was clicked."""
        size = self.extra_widgets["size"].value
        with self.holding():
            self.extra_widgets["left"].value = max(0, int(x) - size // 2)
            self.extra_widgets["top"].value = max(0, int(y) - size // 2)
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
        """Both models' maps; with the reference check ticked, the largest difference from
        the reference over both."""
        result = self.predict(request)
        method, x = request.method, request.x
        for name in self.MODELS:
            model = self.model(name, request.device)
            with torch.no_grad():
                p = model(x).softmax(dim=1)[0].cpu()
            target = request.label if request.target == "label" else result.target
            attribution = self.attribute(method, model, x, target, request.opts)
            result.extra[name] = (attribution[0].cpu(), p)
            error = self.reference_error(request, attribution, model, x, target, request.opts)
            if error is not None:
                result.reference_error = max(result.reference_error or 0.0, error)
        return result

    def render(self, result: Result) -> go.Figure:
        classes = result.request.data.classes
        maps = {}
        for name in self.MODELS:
            attribution, p = result.extra[name]
            predicted = int(p.argmax())
            maps[f"{name}: predicts {classes[predicted]} ({100 * p[predicted]:.0f}%)"] = \
                attribution
        return viz.method_grid(result.request.x[0].cpu(), maps, **self.overlay(),
                               title=f"{result.request.method_name} · label "
                                     f"{classes[result.request.label]}",
                               presentation=self.presentation)


class PreferredInput(Explorer):
    """A global view: the input the model scores highest for a class (gradient ascent)."""

    CONTROLS = (
        Option("steps", "int", 60, "gradient ascent steps", low=1, high=300),
        Option("l2", "float", 1e-3, "weight of the penalty on |x - 0.5|²", low=1e-5, high=1.0,
               log=True),
    )

    def __init__(self, **kwargs):
        kwargs.setdefault("models", ["digits", "cluttered-digits"])
        super().__init__(methods=None, controls=self.CONTROLS, overlay=False, **kwargs)

    def compute(self, request) -> Result:
        result = self.predict(request)
        x, scores = activation_max.gradient_ascent(
            request.model, result.target, tuple(request.x.shape[1:]),
            steps=request.extras["steps"], l2=request.extras["l2"],
            generator=seeded(request.x.device), return_history=True)
        with torch.no_grad():
            p = request.model(x).softmax(dim=1)[0, result.target].item()
        result.extra.update(image=x[0].cpu(), scores=scores, p=p)
        return result

    def render(self, result: Result) -> go.Figure:
        e = result.extra
        name = self.class_name(result.target, result.request.data.classes)
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.18, subplot_titles=(
            f"preferred input for {name}: p = {100 * e['p']:.1f}%", "class score while climbing"))
        viz.add_panel(fig, viz.heatmap_overlay(e["image"], colorbar=False), 1, 1)
        fig.add_trace(go.Scatter(y=e["scores"], mode="lines", name="score", showlegend=False),
                      row=1, col=2)
        fig.update_xaxes(title_text="step", row=1, col=2)
        fig.update_yaxes(title_text="class score (logit)", row=1, col=2)
        return viz.style(fig, None, self.presentation)
