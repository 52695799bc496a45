"""Chapter 02 explorers: from gradients to Integrated Gradients.

- `MethodGrid`: every method of the chapter on one input, side by side (images or text),
  with the difference from Captum per method when asked.
- `NoiseExplorer`: sigma and samples sliders for SmoothGrad, SmoothGrad-squared, VarGrad.
- `PathExplorer`: Integrated Gradients' path from the baseline to the input; an alpha slider
  shows the point on the path, the gradient there and the attribution gathered so far; the
  completeness gap against the number of steps, for each integration rule.
- `BaselineExplorer`: the same IG with a black, blurred, uniform-noise and mean baseline.
- `LinearisationExplorer`: the score along a line through the input against the gradient's
  straight line: where the gradient stops telling the truth.
- `TokenExplorer`: the methods on the review model, tokens coloured, deciding tokens marked.

Image explorers offer the embedded digit models and the ImageNet models (when their weights
are cached); `MethodGrid` and `NoiseExplorer` also take the text model.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from xai_course import gradients, viz, zoo
from xai_course.convention import Option, rows_per_pass

from .base import IMAGE_MODELS, UPLOAD, Explorer, Request, Result, seeded

__all__ = [
    "MethodGrid",
    "NoiseExplorer",
    "PathExplorer",
    "BaselineExplorer",
    "LinearisationExplorer",
    "TokenExplorer",
    "trusted_range",
]

QUADRATURE_COLOURS = dict(zip(gradients.QUADRATURES,
                              ["#4477aa", "#66ccee", "#228833", "#ccbb44", "#ee6677"]))
NOISE = gradients.smoothgrad.options  # samples, sigma_fraction, base
IG = gradients.integrated_gradients.options  # steps, method, baseline


def _image(x: torch.Tensor) -> torch.Tensor:
    """An input (1, C, H, W) as a displayable image (C, H, W) in [0, 1]."""
    return x[0].detach().cpu().clamp(0, 1)


def _token_rows(explorer: Explorer, request: Request, maps: dict, relevant=None) -> go.Figure:
    """One row of coloured tokens per map, titled with the map's name."""
    where, tokens = explorer.token_positions(request)
    fig = make_subplots(rows=len(maps), cols=1, subplot_titles=list(maps),
                        vertical_spacing=0.4 / len(maps))
    for i, m in enumerate(maps.values()):
        cells = viz.token_figure(tokens, m[where], relevant)
        for trace in cells.data:
            trace.showlegend = trace.showlegend and i == 0
        viz.add_panel(fig, cells, i + 1, 1, image=False)
        fig.update_yaxes(autorange="reversed", row=i + 1, col=1)
    return fig


class _ImageExplorer(Explorer):
    """An explorer whose figures are images: refuses text models with a clear message."""

    def __init__(self, **kwargs):
        kwargs.setdefault("models", list(IMAGE_MODELS))
        super().__init__(methods=None, **kwargs)

    def check_image(self, request) -> None:
        if zoo.is_text_model(request.model):
            raise ValueError(f"{type(self).__name__} draws images; for the text model use "
                             f"TokenExplorer or MethodGrid")

    def add_map(self, fig, image, attribution, row, col) -> None:
        """An attribution over an image into cell (row, col), with the display controls."""
        viz.add_panel(fig, viz.heatmap_overlay(image, attribution, colorbar=False,
                                               **self.overlay()), row, col)

    def status(self, result: Result) -> str:
        return super().status(result) + f" · computed in <b>{result.ms:.0f} ms</b>"


# =========================================================================== all methods
class MethodGrid(Explorer):
    """Every method of the chapter on one input, side by side, with Captum's difference."""

    def __init__(self, samples: int = 16, steps: int = 32, **kwargs):
        kwargs.setdefault("models", IMAGE_MODELS + ["reviews"])
        controls = (
            Option("samples", "int", samples, "SmoothGrad's noisy copies", low=1, high=100),
            Option("steps", "int", steps, "Integrated Gradients' steps", low=2, high=200),
            Option("check", "bool", False, "check each method against Captum"),
        )
        view = (Option("absolute", "bool", False, "draw |map|", expensive=False),)
        super().__init__(methods=None, controls=controls, view_controls=view, **kwargs)
        self.extra_widgets["check"].description = "check against Captum"

    @staticmethod
    def calls(extra: dict, text: bool = False) -> dict[str, tuple]:
        """{name: (method, options)} for one request. Guided Backprop only where there are
        nn.ReLU modules to guide (the text model's LSTM has none: it would be the gradient)."""
        noise = dict(samples=extra["samples"], sigma_fraction=0.15)
        calls = {
            "gradient": (gradients.gradient, {}),
            "input × gradient": (gradients.input_x_gradient, {}),
            "SmoothGrad": (gradients.smoothgrad, noise),
            "SmoothGrad²": (gradients.smoothgrad_sq, noise),
            "VarGrad": (gradients.vargrad, noise),
            "Integrated Gradients": (gradients.integrated_gradients,
                                     dict(steps=extra["steps"])),
            "Guided Backprop": (gradients.guided_backprop, {}),
        }
        if text:
            del calls["Guided Backprop"]
        return calls

    def coarse(self, request: Request) -> Request | None:
        e = request.extras
        samples, steps = min(e["samples"], 4), min(e["steps"], 8)
        if (samples, steps) == (e["samples"], e["steps"]):
            return None
        return request.variant(f"{samples} samples, {steps} IG steps",
                               extra=dict(samples=samples, steps=steps, check=False))

    def compute(self, request) -> Result:
        result = self.predict(request)
        model, x, extra = request.model, request.x, request.extras
        maps, ms, errors = {}, {}, {}
        for name, (method, opts) in self.calls(extra, zoo.is_text_model(model)).items():
            start = time.perf_counter()
            a = self.attribute(method, model, x, result.target,
                               self.with_generator(method, opts, x.device))
            maps[name] = a[0].detach().cpu()
            ms[name] = (time.perf_counter() - start) * 1000
            if extra["check"]:
                ref = self.attribute(method.reference, model, x, result.target,
                                     self.with_generator(method, opts, x.device))
                errors[name] = (maps[name] - ref[0].detach().cpu()).abs().max().item()
        result.ms = sum(ms.values())
        result.extra.update(maps=maps, ms=ms, errors=errors)
        return result

    def render(self, result: Result) -> go.Figure:
        request, e = result.request, result.extra
        maps = {name: (m.abs() if self.value("absolute") else m)
                for name, m in e["maps"].items()}
        titles = {name: f"{name} · {e['ms'][name]:.0f} ms" + (
            f" · Δ {e['errors'][name]:.0e}" if name in e["errors"] else "") for name in maps}
        classes = getattr(request.data, "classes", None)
        title = f"target: {self.class_name(result.target, classes)}"
        if zoo.is_text_model(request.model):
            where, _ = self.token_positions(request)
            relevant = getattr(request.data, "relevant", None)
            if relevant is not None:
                relevant = relevant[request.sample][where]
            fig = _token_rows(self, request, dict(zip(titles.values(), maps.values())),
                              relevant)
            return viz.style(fig, title, self.presentation, height=130 * len(maps) + 90)
        return viz.method_grid(_image(request.x), dict(zip(titles.values(), maps.values())),
                               title=title, presentation=self.presentation, **self.overlay())

    def status(self, result: Result) -> str:
        worst = max(result.extra["errors"].values(), default=None)
        check = "" if worst is None else f" · largest |ours − Captum| <b>{worst:.1e}</b>"
        return super().status(result) + f" · all methods in <b>{result.ms:.0f} ms</b>" + check


# =========================================================================== noise
class NoiseExplorer(Explorer):
    """SmoothGrad, SmoothGrad² and VarGrad: move sigma and the number of samples.

    The controls are SmoothGrad's own options (`gradients.smoothgrad.options`); the base
    method is one of the cheap ones (IG on every noisy copy would take a while).
    """

    def __init__(self, samples: int = 25, **kwargs):
        kwargs.setdefault("models", list(IMAGE_MODELS))
        controls = (dataclasses.replace(NOISE["samples"], default=samples),
                    NOISE["sigma_fraction"],
                    dataclasses.replace(NOISE["base"], choices=gradients.BASE_CHOICES[:3]))
        super().__init__(methods=None, controls=controls, **kwargs)

    def coarse(self, request: Request) -> Request | None:
        if request.extras["samples"] <= 4:
            return None
        return request.variant("4 samples", extra=dict(samples=4))

    def compute(self, request) -> Result:
        result = self.predict(request)
        e, x = request.extras, request.x
        start = time.perf_counter()
        model, inputs = request.model, x
        text = zoo.is_text_model(model)
        if text:
            model, inputs = model.encoder, model.embedding(x).detach()
        base = gradients.BASE_METHODS[e["base"]]
        mean, mean_sq = gradients.noise_moments(
            model, inputs, result.target, base, samples=e["samples"],
            sigma_fraction=e["sigma_fraction"], generator=seeded(x.device))
        plain = base(model, inputs, result.target)
        sigma = gradients.noise_level(inputs, sigma_fraction=e["sigma_fraction"])
        noisy = inputs + sigma.view(-1, *[1] * (inputs.ndim - 1)) * torch.randn(
            inputs.shape, generator=seeded(x.device, 1), device=x.device, dtype=inputs.dtype)
        maps = {e["base"]: plain, f"{e['base']} of the noisy copy": base(model, noisy,
                                                                          result.target),
                "SmoothGrad": mean, "SmoothGrad²": mean_sq, "VarGrad": mean_sq - mean ** 2}
        if text:
            maps = {name: m.sum(-1) for name, m in maps.items()}
        result.extra.update(maps={k: v[0].detach().cpu() for k, v in maps.items()},
                            noisy=noisy[0].detach().cpu(), sigma=sigma[0].item())
        result.ms = (time.perf_counter() - start) * 1000
        return result

    def render(self, result: Result) -> go.Figure:
        request, e = result.request, result.extra
        title = (f"sigma = {e['sigma']:.3g} ({request.extras['sigma_fraction']:.0%} of the "
                 f"range), {request.extras['samples']} samples")
        if zoo.is_text_model(request.model):
            fig = _token_rows(self, request, e["maps"])
            return viz.style(fig, title, self.presentation, height=130 * len(e["maps"]) + 90)
        names = ["the input + noise"] + list(e["maps"])
        fig = make_subplots(rows=2, cols=3, subplot_titles=[viz.wrap(n, 30) for n in names],
                            horizontal_spacing=0.03, vertical_spacing=0.12)
        viz.add_panel(fig, viz.heatmap_overlay(e["noisy"].clamp(0, 1), colorbar=False), 1, 1)
        for i, m in enumerate(e["maps"].values(), start=1):
            row, col = divmod(i, 3)
            viz.add_panel(fig, viz.heatmap_overlay(_image(request.x), m, colorbar=False,
                                                   **self.overlay()), row + 1, col + 1)
        return viz.style(fig, title, self.presentation,
                         height=2 * viz.ROW_HEIGHT[bool(self.presentation)] + 150)

    def status(self, result: Result) -> str:
        return super().status(result) + f" · computed in <b>{result.ms:.0f} ms</b>"


# =========================================================================== IG's path
class PathExplorer(_ImageExplorer):
    """Integrated Gradients step by step: the path, the gradient on it, the running sum.

    Top: the point x' + alpha (x - x') of the path, the gradient there, and the attribution
    gathered from 0 to alpha, (x - x') int_0^alpha grad (a fine midpoint sum over `grid`
    points). Bottom left: the score along the path, and S(x') plus the running sum of the
    attribution (the two meet at alpha = 1 when completeness holds). Bottom right: the
    completeness gap |delta| / |S(x) - S(x')| against the number of steps, for each rule
    (up to 16 steps only for inputs of more than `large` values, such as ImageNet photos).
    """

    large = 50_000

    def __init__(self, steps=(2, 4, 8, 16, 32, 64), grid: int = 32, **kwargs):
        self.steps_list, self.grid = tuple(steps), grid
        alpha = Option("alpha", "float", 0.5, "the point on the path", low=0.0, high=1.0,
                       step=1 / grid, expensive=False)
        super().__init__(controls=(IG["baseline"],), view_controls=(alpha,), **kwargs)

    def coarse(self, request: Request) -> Request | None:
        """The gaps for up to 4 steps first."""
        if max(self.steps_list) <= 4:
            return None
        return request.variant("gaps up to 4 steps", extra=dict(quick=True))

    def compute(self, request) -> Result:
        result = self.predict(request)
        self.check_image(request)
        start = time.perf_counter()
        model, x, t = request.model, request.x, result.target
        x_base = gradients.make_baseline(x, request.extras["baseline"], seeded(x.device))
        # the path on a fine midpoint grid: gradients and scores at alpha_j = (j + 1/2) / G
        alphas = (torch.arange(self.grid, device=x.device, dtype=x.dtype) + 0.5) / self.grid
        points = x_base + alphas.view(-1, 1, 1, 1) * (x - x_base)
        rows = rows_per_pass(x, self.grid)
        grads = torch.cat([gradients.gradient(model, points[i:i + rows], t)
                           for i in range(0, self.grid, rows)])
        running = torch.cumsum(grads, 0) / self.grid * (x - x_base)  # up to (j + 1) / G
        rows = rows_per_pass(x, self.grid, backward=False)
        with torch.no_grad():
            ends = model(torch.cat([x_base, x]))[:, t]
            path_scores = torch.cat([model(points[i:i + rows])[:, t]
                                     for i in range(0, self.grid, rows)])
        change = (ends[1] - ends[0]).item()
        steps = self.steps_list
        if x[0].numel() > self.large:  # e.g. a 224 x 224 photo: spare the CPU
            steps = tuple(n for n in steps if n <= 16) or steps[:1]
        if request.extras.get("quick"):
            steps = tuple(n for n in steps if n <= 4) or steps[:1]
        gaps = {}
        for method in gradients.QUADRATURES:
            gaps[method] = [abs(gradients.integrated_gradients(
                model, x, t, baseline=x_base, steps=n, method=method,
                return_delta=True)[1].item()) / max(abs(change), 1e-12) for n in steps]
        result.extra.update(
            x_base=x_base[0].cpu(), points=points.cpu(), grads=grads.cpu(),
            running=running.cpu(), alphas=alphas.cpu(), path_scores=path_scores.cpu(),
            ends=ends.cpu(), gaps=gaps, steps=steps)
        result.ms = (time.perf_counter() - start) * 1000
        return result

    def render(self, result: Result) -> go.Figure:
        e = result.extra
        j = min(self.grid - 1, max(0, round(self.value("alpha") * self.grid - 0.5)))
        alpha, upto = e["alphas"][j].item(), (j + 1) / self.grid
        fig = make_subplots(
            rows=2, cols=3, specs=[[{}, {}, {}], [{}, {"colspan": 2}, None]],
            horizontal_spacing=0.15, vertical_spacing=0.14, row_heights=[0.5, 0.5],
            subplot_titles=(
                viz.wrap(f"x' + α (x − x'), α = {alpha:.3f}", 22),
                viz.wrap(f"gradient at α = {alpha:.3f}", 22),
                viz.wrap(f"attribution from 0 to α = {upto:.3f}", 22),
                "score along the path", "completeness gap vs steps"))
        viz.add_panel(fig, viz.heatmap_overlay(e["points"][j, 0].clamp(0, 1), colorbar=False),
                      1, 1)
        self.add_map(fig, e["points"][j, 0].clamp(0, 1), e["grads"][j, 0], 1, 2)
        self.add_map(fig, _image(result.request.x), e["running"][j, 0], 1, 3)
        s_base, s_x = e["ends"].tolist()
        a = e["alphas"].numpy()
        gathered = s_base + e["running"].flatten(2).sum(2)[:, 0].numpy()
        fig.add_trace(go.Scatter(x=a, y=e["path_scores"].numpy(), name="S(x' + α(x − x'))",
                                 mode="lines", line_color="#222222"), row=2, col=1)
        fig.add_trace(go.Scatter(x=(np.arange(self.grid) + 1) / self.grid, y=gathered,
                                 name="S(x') + attribution so far", mode="lines",
                                 line=dict(color="#ee6677", dash="dash")), row=2, col=1)
        fig.add_trace(go.Scatter(x=[0, 1], y=[s_base, s_x], mode="markers", name="S(x'), S(x)",
                                 marker=dict(color="#222222", size=9)), row=2, col=1)
        fig.add_vline(x=alpha, line=dict(color="#999999", dash="dot"), row=2, col=1)
        fig.update_xaxes(title_text="α", row=2, col=1)
        for method, gap in e["gaps"].items():
            fig.add_trace(go.Scatter(
                x=list(e["steps"]), y=np.maximum(gap, 1e-7), mode="lines+markers",
                name=method, line_color=QUADRATURE_COLOURS[method]), row=2, col=2)
        fig.update_xaxes(type="log", title_text="steps", row=2, col=2)
        fig.update_yaxes(type="log", title_text="|δ| / |S(x) − S(x')|", row=2, col=2)
        fig.add_hline(y=0.01, line=dict(color="#999999", dash="dot"), row=2, col=2)
        return viz.legend_below(viz.style(
            fig, None, self.presentation,
            height=2 * viz.ROW_HEIGHT[bool(self.presentation)] + 260), rows=2)


# =========================================================================== baselines
class BaselineExplorer(_ImageExplorer):
    """One input, four baselines: what x' is, what S(x') is, and the IG map it gives."""

    def __init__(self, steps: int = 32, **kwargs):
        controls = (dataclasses.replace(IG["steps"], default=steps), IG["method"])
        super().__init__(controls=controls, **kwargs)

    def coarse(self, request: Request) -> Request | None:
        if request.extras["steps"] <= 4:
            return None
        return request.variant("4 steps", extra=dict(steps=4))

    def compute(self, request) -> Result:
        result = self.predict(request)
        self.check_image(request)
        start = time.perf_counter()
        model, x, t = request.model, request.x, result.target
        rows = {}
        for baseline in gradients.BASELINES:
            x_base = gradients.make_baseline(x, baseline, seeded(x.device))
            attr, delta = gradients.integrated_gradients(
                model, x, t, baseline=x_base, steps=request.extras["steps"],
                method=request.extras["method"], return_delta=True)
            with torch.no_grad():
                p = model(x_base).softmax(1)[0, t].item()
            rows[baseline] = dict(x_base=x_base[0].cpu(), attr=attr[0].cpu(), p=p,
                                  total=attr.sum().item(), delta=delta.item())
        result.extra["rows"] = rows
        result.ms = (time.perf_counter() - start) * 1000
        return result

    def render(self, result: Result) -> go.Figure:
        rows = result.extra["rows"]
        titles = [f"{b}: p(target) = {r['p']:.2f}" for b, r in rows.items()] + [
            viz.wrap(f"IG from {b}: Σ = {r['total']:.2f}, δ = {r['delta']:.1e}", 22)
            for b, r in rows.items()]
        fig = make_subplots(rows=2, cols=len(rows), subplot_titles=titles,
                            horizontal_spacing=0.03, vertical_spacing=0.16)
        for col, r in enumerate(rows.values(), start=1):
            viz.add_panel(fig, viz.heatmap_overlay(r["x_base"].clamp(0, 1), colorbar=False),
                          1, col)
            self.add_map(fig, _image(result.request.x), r["attr"], 2, col)
        classes = getattr(result.request.data, "classes", None)
        title = f"Integrated Gradients for {self.class_name(result.target, classes)}, " \
                f"four baselines"
        return viz.style(fig, title, self.presentation,
                         height=2 * viz.ROW_HEIGHT[bool(self.presentation)] + 170)


# =========================================================================== linearisation
def trusted_range(ts: torch.Tensor, exact: torch.Tensor, linear: torch.Tensor,
                  tolerance: float = 0.1) -> tuple[float, float]:
    """The interval of t around 0 where the gradient predicts the change within `tolerance`.

    Predicted change linear(t) - S(x0), actual exact(t) - S(x0); trusted while
    |actual - predicted| <= tolerance * |predicted| (and at t = 0, where both are 0 up to
    float rounding), walking out from t = 0.
    """
    at_zero = ts.abs().argmin()
    start = linear[at_zero]
    error = (exact - linear).abs()
    rounding = 1e-5 * (1 + start.abs())  # float32 scores differ in their last digits
    ok = error <= tolerance * (linear - start).abs() + rounding
    ok[at_zero] = True
    low = high = 0.0
    for i in torch.argsort(ts).tolist():  # outwards to the right
        if ts[i] >= 0:
            if not ok[i]:
                break
            high = ts[i].item()
    for i in torch.argsort(ts, descending=True).tolist():  # outwards to the left
        if ts[i] <= 0:
            if not ok[i]:
                break
            low = ts[i].item()
    return low, high


def line_points(reach: float, points: int) -> torch.Tensor:
    """t in [-reach, reach], `points` values, dense near 0 (where the gradient holds) and
    sparse far out: ±reach * 10^(-3 ... 0) and 0."""
    half = reach * torch.logspace(-3, 0, points // 2, dtype=torch.float64)
    return torch.cat([-half.flip(0), torch.zeros(1, dtype=torch.float64), half])


class LinearisationExplorer(_ImageExplorer):
    """S(x0 + t d) against the gradient's line S(x0) + t d . grad S(x0), for a direction d.

    Directions (unit length): "gradient" (steepest ascent), "to black" (towards the black
    image; t = |x0| reaches it), "random" (a random direction, seeded). The shaded band is
    where the gradient predicts the change within 10%; the t slider shows the input there.
    The t values are dense near 0, so that the band is measured where it is narrow.
    """

    DIRECTIONS = ("gradient", "to black", "random")

    def __init__(self, points: int = 61, **kwargs):
        self.points = points
        controls = (
            Option("direction", "choice", "gradient", "the direction d of the line",
                   choices=self.DIRECTIONS),
            Option("reach", "float", 0.03, "how far the line goes, times |x0|", low=1e-3,
                   high=3.0, log=True),
        )
        view = (Option("t / reach", "float", 0.5, "where on the line to look", low=-1.0,
                       high=1.0, step=0.05, expensive=False),)
        super().__init__(controls=controls, view_controls=view, **kwargs)

    @staticmethod
    def direction(model, x, target, name: str) -> torch.Tensor:
        """A unit-length direction d (per example, L2 over all features)."""
        if name == "gradient":
            d = gradients.gradient(model, x, target)
        elif name == "to black":
            d = -x
        elif name == "random":
            d = torch.randn(x.shape, generator=seeded(x.device), device=x.device, dtype=x.dtype)
        else:
            raise ValueError(f"direction must be one of {LinearisationExplorer.DIRECTIONS}")
        return d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)

    def compute(self, request) -> Result:
        result = self.predict(request)
        self.check_image(request)
        start = time.perf_counter()
        model, x, t = request.model, request.x, result.target
        d = self.direction(model, x, t, request.extras["direction"])
        reach = request.extras["reach"] * x.flatten(1).norm().item()
        ts = line_points(reach, self.points).to(device=x.device, dtype=x.dtype)
        exact, linear = gradients.taylor_line(model, x, t, d, ts)
        result.extra.update(d=d.cpu(), ts=ts.cpu(), exact=exact[:, 0].cpu(),
                            linear=linear[:, 0].cpu(), reach=reach,
                            trusted=trusted_range(ts.cpu(), exact[:, 0].cpu(),
                                                  linear[:, 0].cpu()))
        result.ms = (time.perf_counter() - start) * 1000
        return result

    def render(self, result: Result) -> go.Figure:
        e, x = result.extra, result.request.x.cpu()
        t_now = self.value("t / reach") * e["reach"]
        low, high = e["trusted"]
        fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38],
                            horizontal_spacing=0.1, subplot_titles=(
                                f"score along t · d ({result.request.extras['direction']})",
                                f"x0 + t d at t = {t_now:.3g}"))
        ts = e["ts"].numpy()
        fig.add_trace(go.Scatter(x=ts, y=e["exact"].numpy(), name="S(x0 + t d): the model",
                                 mode="lines", line_color="#222222"), row=1, col=1)
        fig.add_trace(go.Scatter(x=ts, y=e["linear"].numpy(), name="S(x0) + t d·∇S: the gradient",
                                 mode="lines", line=dict(color="#ee6677", dash="dash")),
                      row=1, col=1)
        # after the curves: plotly adds a shape to a row / col only once it holds data
        fig.add_vrect(x0=low, x1=high, fillcolor="#228833", opacity=0.25, line_width=0,
                      layer="below", row=1, col=1)
        fig.add_vline(x=t_now, line=dict(color="#999999", dash="dot"), row=1, col=1)
        fig.update_xaxes(title_text="t", row=1, col=1)
        fig.update_yaxes(title_text="class score (logit)", row=1, col=1)
        viz.add_panel(fig, viz.heatmap_overlay((x + t_now * e["d"])[0].clamp(0, 1),
                                               colorbar=False), 1, 2)
        title = f"the gradient is right within 10% for t in [{low:.3g}, {high:.3g}] (green)"
        return viz.legend_below(viz.style(fig, title, self.presentation,
                                          height=viz.HEIGHT[bool(self.presentation)] + 60))


# =========================================================================== text
class TokenExplorer(Explorer):
    """The chapter's methods on the review model: tokens coloured, deciding tokens marked.

    The status line adds the share of the map's absolute mass that falls on the tokens known
    to decide the label, against the share of the text they make up.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("models", ["reviews"])
        methods = {"integrated_gradients": gradients.integrated_gradients,
                   "gradient": gradients.gradient,
                   "input_x_gradient": gradients.input_x_gradient,
                   "smoothgrad": gradients.smoothgrad}
        super().__init__(methods=kwargs.pop("methods", methods), **kwargs)

    def compute(self, request) -> Result:
        result = super().compute(request)
        relevant = getattr(request.data, "relevant", None)
        if relevant is not None and result.attribution is not None and \
                request.data_name != UPLOAD:
            where, tokens = self.token_positions(request)
            a = result.attribution[where].abs()
            r = relevant[request.sample][where].float()
            result.extra.update(share=(a * r).sum().item() / max(a.sum().item(), 1e-12),
                                part=r.mean().item())
        return result

    def status(self, result: Result) -> str:
        text = super().status(result)
        if "share" in result.extra:
            text += (f" · {100 * result.extra['share']:.0f}% of |attribution| on the deciding "
                     f"tokens ({100 * result.extra['part']:.0f}% of the words)")
        return text
