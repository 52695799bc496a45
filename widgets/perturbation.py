"""Chapter 04 explorers: perturbation.

- `PerturbationExplorer`: occlusion, meaningful perturbation and extremal perturbation on
  one image. Occlusion: window and stride sliders, and the forward passes each setting
  costs (counted, not computed by formula). The two optimisations are played back: the
  `step` slider moves through the optimisation's steps (the masks recorded every few
  steps), next to the loss terms as curves with the step marked; l1 / tv / perturbation
  type (meaningful), area and preserve / delete (extremal) are the method's own controls.
- `cost_comparison`: passes and milliseconds of a gradient, occlusion, meaningful and
  extremal perturbation on the same image, and `cost_figure` to draw them.
"""

from __future__ import annotations

import bisect
import html
import time

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from xai_course import perturbation, viz
from xai_course.convention import Option
from xai_course.gradients import gradient

from .base import IMAGE_MODELS, Explorer, Request, Result

__all__ = ["PerturbationExplorer", "METHODS", "cost_comparison", "cost_figure"]

METHODS = {
    "occlusion": perturbation.occlusion,
    "meaningful perturbation": perturbation.meaningful_perturbation,
    "extremal perturbation": perturbation.extremal_perturbation,
}
TERMS = {  # the loss terms each optimisation records, as drawn
    perturbation.meaningful_perturbation: ("score", "l1", "tv", "total"),
    perturbation.extremal_perturbation: ("score", "area", "total"),
}


class PerturbationExplorer(Explorer):
    """Occlusion, Meaningful Perturbation and extremal perturbation, with their costs.

    methods: {name: method} from `xai_course.perturbation` (default: the three of the
    chapter). Other keyword arguments: see `Explorer` (models default to image models).
    """

    def __init__(self, methods=None, **kwargs):
        kwargs.setdefault("models", list(IMAGE_MODELS))
        step = Option("step", "int", 0, "the optimisation step shown", low=0, high=0,
                      expensive=False)
        super().__init__(methods=methods or dict(METHODS), view_controls=(step,), **kwargs)
        self.view_widgets["step"].layout.display = "none"  # only for the optimisations

    # ----------------------------------------------------------------- compute and draw
    def compute(self, request: Request) -> Result:
        result = self.predict(request)
        model, x, method, target = request.model, request.x, request.method, result.target
        options = self.with_generator(method, request.opts, x.device)
        optimised = method in TERMS
        start = time.perf_counter()
        with perturbation.count_passes(model) as passes:
            if optimised:
                attribution, history = method(model, x, target, history=True, **options)
            else:
                attribution, history = method(model, x, target, **options), None
        result.ms = (time.perf_counter() - start) * 1000
        result.reference_error = self.reference_error(request, attribution, model, x, target,
                                                      request.opts)
        result.attribution = attribution[0].detach().cpu()
        result.extra.update(history=history, passes=passes)
        return result

    def render(self, result: Result) -> go.Figure:
        history = result.extra["history"]
        slider = self.view_widgets["step"]
        slider.layout.display = "none" if history is None else None
        if history is None:
            return super().render(result)
        steps = history.steps  # the recorded step numbers, e.g. 0, 10, ..., 300
        if result is not self.result:  # a new run (not a redraw): show its last step
            with self.quietly():
                slider.max = steps[-1]
                slider.step = steps[1] - steps[0] if len(steps) > 1 else 1
                slider.value = steps[-1]
        index = max(0, bisect.bisect_right(steps, slider.value) - 1)
        step = steps[index]
        request, method = result.request, result.request.method
        mask = history.masks[index, 0]
        size = tuple(request.x.shape[-2:])
        if tuple(mask.shape) != size:  # meaningful perturbation records its coarse mask
            mask = torch.nn.functional.interpolate(mask[None, None], size=size,
                                                   mode="bilinear", align_corners=False)[0, 0]
        meaningful = method is perturbation.meaningful_perturbation
        shown = 1 - mask if meaningful else mask  # meaningful: what is deleted
        what = ("deleted, 1 − m" if meaningful else
                "kept region" if request.opts.get("variant") == "preserve" else "deleted region")
        fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.1,
                            subplot_titles=(f"{what} at step {step}", "loss terms"))
        viz.add_panel(fig, viz.heatmap_overlay(request.x[0].cpu(), shown, signed=False,
                                               normalize=None, opacity=self.opacity.value,
                                               colorbar=False), 1, 1)
        every = list(range(history.total.shape[0]))
        for name in TERMS[method]:
            values = getattr(history, name)[:, 0]
            fig.add_trace(go.Scatter(x=every, y=values.tolist(), mode="lines", name=name),
                          row=1, col=2)
        fig.add_vline(x=step, line_dash="dot", row=1, col=2)
        fig.update_xaxes(title_text="step", row=1, col=2)
        classes = getattr(request.data, "classes", None)
        title = f"{request.method_name} · target {self.class_name(result.target, classes)}"
        return viz.style(fig, title, self.presentation)

    def status(self, result: Result) -> str:
        passes = result.extra["passes"]
        cost = f"<b>{passes.forward}</b> forward passes"
        if passes.backward:
            cost += f" and <b>{passes.backward}</b> backward"
        history = result.extra["history"]
        if history is not None:
            final = {name: getattr(history, name)[-1, 0].item() for name in
                     TERMS[result.request.method]}
            cost += " · final " + ", ".join(f"{html.escape(k)} {v:.3g}" for k, v in final.items())
        return f"{super().status(result)} · {cost}"


# --------------------------------------------------------------------------- cost
def cost_comparison(model, x: torch.Tensor, target: int, window: int = 8, stride: int = 4,
                    steps: tuple[int, int] = (150, 300)) -> list[dict]:
    """Passes (counted by a forward hook) and milliseconds of each method on one image x.

    steps: of meaningful and of extremal perturbation. Returns rows {method, forward,
    backward, ms}.
    """
    runs = {
        "gradient": lambda: gradient(model, x, target),
        f"occlusion {window}/{stride}": lambda: perturbation.occlusion(
            model, x, target, window=window, stride=stride),
        f"meaningful ({steps[0]} steps)": lambda: perturbation.meaningful_perturbation(
            model, x, target, steps=steps[0]),
        f"extremal ({steps[1]} steps)": lambda: perturbation.extremal_perturbation(
            model, x, target, steps=steps[1]),
    }
    rows = []
    for name, run in runs.items():
        start = time.perf_counter()
        with perturbation.count_passes(model) as passes:
            run()
        rows.append(dict(method=name, forward=passes.forward, backward=passes.backward,
                         ms=(time.perf_counter() - start) * 1000))
    return rows


def cost_figure(rows: list[dict], presentation: bool = False) -> go.Figure:
    """Two bar charts side by side: passes (forward, backward) and milliseconds, log scale."""
    names = [r["method"] for r in rows]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("passes (log scale)", "milliseconds (log scale)"))
    for kind in ("forward", "backward"):
        fig.add_trace(go.Bar(x=names, y=[max(r[kind], 1e-1) for r in rows], name=kind,
                             text=[r[kind] for r in rows]), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=[r["ms"] for r in rows], name="ms", showlegend=False,
                         text=[f"{r['ms']:.0f}" for r in rows]), row=1, col=2)
    fig.update_yaxes(type="log")
    return viz.style(fig, "the cost of one explanation", presentation)
