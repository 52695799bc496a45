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

import time

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from xai_course import gradients, viz

from .base import Explorer, Result, _is_text

__all__ = [
    "MethodGrid",
    "NoiseExplorer",
    "PathExplorer",
    "BaselineExplorer",
    "LinearisationExplorer",
    "TokenExplorer",
    "IMAGE_MODELS",
]

IMAGE_MODELS = ["cluttered-digits", "digits", "resnet50-imagenet", "vgg16-imagenet"]
QUADRATURE_COLOURS = dict(zip(gradients.QUADRATURES,
                              ["#4477aa", "#66ccee", "#228833", "#ccbb44", "#ee6677"]))
WIDE = {"description_width": "initial"}


def _slider(kind, description, value, low, high, step=None, live=False, **more):
    step = {} if step is None else {"step": step}
    return kind(description=description, value=value, min=low, max=high,
                continuous_update=live, style=WIDE, **step, **more)


def _seeded(x: torch.Tensor, seed: int = 0) -> torch.Generator:
    """A fresh generator on the input's device: the same request gives the same noise."""
    return torch.Generator(device=x.device).manual_seed(seed)


def _add_image(fig: go.Figure, panel: go.Figure, row: int, col: int) -> None:
    """Copy an image / heatmap figure's traces into a subplot, with image-style axes."""
    for trace in panel.data:
        fig.add_trace(trace, row=row, col=col)
    anchor = fig.get_subplot(row, col).xaxis.plotly_name.replace("axis", "")
    fig.update_xaxes(visible=False, constrain="domain", row=row, col=col)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=anchor,
                     constrain="domain", row=row, col=col)


def _image(x: torch.Tensor) -> torch.Tensor:
    """An input (1, C, H, W) as a displayable image (C, H, W) in [0, 1]."""
    return x[0].detach().cpu().clamp(0, 1)


class _ImageExplorer(Explorer):
    """An explorer whose figures are images: refuses text models with a clear message."""

    def __init__(self, **kwargs):
        kwargs.setdefault("models", list(IMAGE_MODELS))
        super().__init__(methods=None, **kwargs)

    def _check_image(self, request) -> None:
        if _is_text(request.model):
            raise ValueError(f"{type(self).__name__} draws images; for the text model use "
                             f"TokenExplorer or MethodGrid")

    def _map(self, fig, image, attribution, row, col):
        normalize = None if self.normalize.value == "none" else self.normalize.value
        _add_image(fig, viz.heatmap_overlay(image, attribution, normalize=normalize,
                                            opacity=self.opacity.value, colorbar=False),
                   row, col)

    def status(self, result: Result) -> str:
        return super().status(result) + f" · computed in <b>{result.ms:.0f} ms</b>"


# =========================================================================== all methods
class MethodGrid(Explorer):
    """Every method of the chapter on one input, side by side, with Captum's difference."""

    def __init__(self, samples: int = 16, steps: int = 32, **kwargs):
        self._defaults = dict(samples=samples, steps=steps)
        self.absolute = widgets.Checkbox(description="|map|", value=False, indent=False)
        kwargs.setdefault("models", IMAGE_MODELS + ["reviews"])
        super().__init__(methods=None, **kwargs)
        self.extra_box.children = [*self.extra_box.children, self.absolute]
        self._observe(self.absolute, self.redraw)  # drawing only

    def extra_controls(self) -> dict[str, widgets.Widget]:
        return {
            "samples": _slider(widgets.IntSlider, "SmoothGrad samples",
                               self._defaults["samples"], 1, 100),
            "steps": _slider(widgets.IntSlider, "IG steps", self._defaults["steps"], 2, 200),
            "check": widgets.Checkbox(description="check against Captum", value=False,
                                      indent=False),
        }

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

    def compute(self, request) -> Result:
        result = super().compute(request)
        model, x, extra = request.model, request.x, request.extras
        maps, ms, errors = {}, {}, {}
        for name, (method, opts) in self.calls(extra, _is_text(model)).items():
            randomised = "samples" in opts
            kw = dict(opts, generator=_seeded(x)) if randomised else opts
            start = time.perf_counter()
            maps[name] = self.attribute(method, model, x, result.target, kw)[0].detach().cpu()
            ms[name] = (time.perf_counter() - start) * 1000
            if extra["check"]:
                kw = dict(opts, generator=_seeded(x)) if randomised else opts
                ref = self.attribute(method.reference, model, x, result.target, kw)
                errors[name] = (maps[name] - ref[0].detach().cpu()).abs().max().item()
        result.ms = sum(ms.values())
        result.extra.update(maps=maps, ms=ms, errors=errors)
        return result

    def render(self, result: Result) -> go.Figure:
        request, e = result.request, result.extra
        maps = {name: (m.abs() if self.absolute.value else m)
                for name, m in e["maps"].items()}
        titles = {name: f"{name} · {e['ms'][name]:.0f} ms" + (
            f" · Δ {e['errors'][name]:.0e}" if name in e["errors"] else "") for name in maps}
        classes = getattr(request.data, "classes", None)
        title = f"target: {self.class_name(result.target, classes)}"
        if _is_text(request.model):
            where, tokens = self.token_positions(request)
            relevant = getattr(request.data, "relevant", None)
            if relevant is not None:
                relevant = relevant[request.sample][where]
            fig = make_subplots(rows=len(maps), cols=1, subplot_titles=list(titles.values()),
                                vertical_spacing=0.35 / len(maps))
            for i, m in enumerate(maps.values()):
                for trace in viz.token_figure(tokens, m[where], relevant).data:
                    trace.showlegend = trace.showlegend and i == 0
                    fig.add_trace(trace, row=i + 1, col=1)
                fig.update_xaxes(visible=False, row=i + 1, col=1)
                fig.update_yaxes(visible=False, autorange="reversed", row=i + 1, col=1)
            return viz.style(fig, title, self.presentation, height=120 * len(maps) + 80)
        normalize = None if self.normalize.value == "none" else self.normalize.value
        return viz.method_grid(_image(request.x), dict(zip(titles.values(), maps.values())),
                               normalize=normalize, opacity=self.opacity.value, title=title,
                               presentation=self.presentation)

    def status(self, result: Result) -> str:
        worst = max(result.extra["errors"].values(), default=None)
        check = "" if worst is None else f" · largest |ours − Captum| <b>{worst:.1e}</b>"
        return super().status(result) + f" · all methods in <b>{result.ms:.0f} ms</b>" + check


# =========================================================================== noise
class NoiseExplorer(Explorer):
    """SmoothGrad, SmoothGrad² and VarGrad: move sigma and the number of samples."""

    def __init__(self, samples: int = 25, **kwargs):
        self._samples = samples
        kwargs.setdefault("models", list(IMAGE_MODELS))
        super().__init__(methods=None, **kwargs)

    def extra_controls(self) -> dict[str, widgets.Widget]:
        return {
            "sigma_fraction": _slider(widgets.FloatSlider, "sigma / (max − min)", 0.15, 0.0,
                                      0.5, step=0.01),
            "samples": widgets.SelectionSlider(
                description="samples", options=sorted({1, 2, 5, 10, 25, 50, 100,
                                                       self._samples}),
                value=self._samples, continuous_update=False, style=WIDE),
            "base": widgets.Dropdown(description="base method",
                                     options=list(gradients.BASE_CHOICES[:3]),
                                     value="gradient", style=WIDE),
        }

    def compute(self, request) -> Result:
        result = super().compute(request)
        e, x = request.extras, request.x
        start = time.perf_counter()
        model, inputs = request.model, x
        if _is_text(model):
            model, inputs = model.encoder, model.embedding(x).detach()
        base = gradients.BASE_METHODS[e["base"]]
        mean, mean_sq = gradients.noise_moments(
            model, inputs, result.target, base, samples=e["samples"],
            sigma_fraction=e["sigma_fraction"], generator=_seeded(x))
        plain = base(model, inputs, result.target)
        sigma = gradients.noise_level(inputs, sigma_fraction=e["sigma_fraction"])
        noisy = inputs + sigma.view(-1, *[1] * (inputs.ndim - 1)) * torch.randn(
            inputs.shape, generator=_seeded(x, 1), device=x.device, dtype=inputs.dtype)
        maps = {e["base"]: plain, f"{e['base']} of the noisy copy": base(model, noisy,
                                                                          result.target),
                "SmoothGrad": mean, "SmoothGrad²": mean_sq, "VarGrad": mean_sq - mean ** 2}
        if _is_text(request.model):
            maps = {name: m.sum(-1) for name, m in maps.items()}
        result.extra.update(maps={k: v[0].detach().cpu() for k, v in maps.items()},
                            noisy=noisy[0].detach().cpu(), sigma=sigma[0].item())
        result.ms = (time.perf_counter() - start) * 1000
        return result

    def render(self, result: Result) -> go.Figure:
        request, e = result.request, result.extra
        title = (f"sigma = {e['sigma']:.3g} ({request.extras['sigma_fraction']:.0%} of the "
                 f"range), {request.extras['samples']} samples")
        if _is_text(request.model):
            where, tokens = self.token_positions(request)
            fig = make_subplots(rows=len(e["maps"]), cols=1, subplot_titles=list(e["maps"]))
            for i, m in enumerate(e["maps"].values()):
                for trace in viz.token_figure(tokens, m[where]).data[:1]:
                    fig.add_trace(trace, row=i + 1, col=1)
                fig.update_xaxes(visible=False, row=i + 1, col=1)
                fig.update_yaxes(visible=False, autorange="reversed", row=i + 1, col=1)
            return viz.style(fig, title, self.presentation, height=110 * len(e["maps"]) + 80)
        fig = make_subplots(rows=2, cols=3, subplot_titles=["the input + noise"] + list(
            e["maps"]), horizontal_spacing=0.02, vertical_spacing=0.08)
        _add_image(fig, viz.heatmap_overlay(e["noisy"].clamp(0, 1), colorbar=False), 1, 1)
        normalize = None if self.normalize.value == "none" else self.normalize.value
        for i, m in enumerate(e["maps"].values(), start=1):
            row, col = divmod(i, 3)
            _add_image(fig, viz.heatmap_overlay(_image(request.x), m, normalize=normalize,
                                                opacity=self.opacity.value, colorbar=False),
                       row + 1, col + 1)
        return viz.style(fig, title, self.presentation,
                         height=int(1.6 * viz.HEIGHT[bool(self.presentation)]))

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
        self.alpha = _slider(widgets.FloatSlider, "alpha", 0.5, 0.0, 1.0, step=1 / grid,
                             live=True)
        super().__init__(**kwargs)
        self.extra_box.children = [*self.extra_box.children, self.alpha]
        self._observe(self.alpha, self.redraw)  # drawing only: the whole path is computed

    def extra_controls(self) -> dict[str, widgets.Widget]:
        return {"baseline": widgets.ToggleButtons(description="baseline",
                                                  options=list(gradients.BASELINES),
                                                  value="black", style=WIDE)}

    def compute(self, request) -> Result:
        result = super().compute(request)
        self._check_image(request)
        start = time.perf_counter()
        model, x, t = request.model, request.x, result.target
        baseline = request.extras["baseline"]
        x_base = gradients.make_baseline(x, baseline, _seeded(x))
        # the path on a fine midpoint grid: gradients and scores at alpha_j = (j + 1/2) / G
        alphas = (torch.arange(self.grid, device=x.device, dtype=x.dtype) + 0.5) / self.grid
        points = x_base + alphas.view(-1, 1, 1, 1) * (x - x_base)
        rows = gradients.auto_batch_size(x, self.grid)
        grads = torch.cat([gradients.gradient(model, points[i:i + rows], t)
                           for i in range(0, self.grid, rows)])
        running = torch.cumsum(grads, 0) / self.grid * (x - x_base)  # up to (j + 1) / G
        with torch.no_grad():
            ends = model(torch.cat([x_base, x]))[:, t]
            path_scores = torch.cat([model(points[i:i + rows])[:, t]
                                     for i in range(0, self.grid, rows)])
        change = (ends[1] - ends[0]).item()
        steps = self.steps_list
        if x[0].numel() > self.large:  # e.g. a 224 x 224 photo: spare the CPU
            steps = tuple(n for n in steps if n <= 16) or steps[:1]
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
        j = min(self.grid - 1, max(0, round(self.alpha.value * self.grid - 0.5)))
        alpha, upto = e["alphas"][j].item(), (j + 1) / self.grid
        fig = make_subplots(
            rows=2, cols=3, specs=[[{}, {}, {}], [{}, {"colspan": 2}, None]],
            horizontal_spacing=0.06, vertical_spacing=0.12, subplot_titles=(
                f"x' + α (x − x'), α = {alpha:.3f}", f"gradient at α = {alpha:.3f}",
                f"attribution gathered from 0 to α = {upto:.3f}",
                "score along the path", "completeness gap vs steps"))
        _add_image(fig, viz.heatmap_overlay(e["points"][j, 0].clamp(0, 1), colorbar=False), 1, 1)
        self._map(fig, e["points"][j, 0].clamp(0, 1), e["grads"][j, 0], 1, 2)
        self._map(fig, _image(result.request.x), e["running"][j, 0], 1, 3)
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
        return viz.style(fig, None, self.presentation,
                         height=int(1.7 * viz.HEIGHT[bool(self.presentation)]))


# =========================================================================== baselines
class BaselineExplorer(_ImageExplorer):
    """One input, four baselines: what x' is, what S(x') is, and the IG map it gives."""

    def __init__(self, steps: int = 32, **kwargs):
        self._steps = steps
        super().__init__(**kwargs)

    def extra_controls(self) -> dict[str, widgets.Widget]:
        return {
            "steps": _slider(widgets.IntSlider, "steps", self._steps, 2, 200),
            "method": widgets.Dropdown(description="rule", options=list(gradients.QUADRATURES),
                                       value="gausslegendre", style=WIDE),
        }

    def compute(self, request) -> Result:
        result = super().compute(request)
        self._check_image(request)
        start = time.perf_counter()
        model, x, t = request.model, request.x, result.target
        rows = {}
        for baseline in gradients.BASELINES:
            x_base = gradients.make_baseline(x, baseline, _seeded(x))
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
            f"IG from {b}: Σ = {r['total']:.2f}, δ = {r['delta']:.1e}" for b, r in rows.items()]
        fig = make_subplots(rows=2, cols=len(rows), subplot_titles=titles,
                            horizontal_spacing=0.02, vertical_spacing=0.1)
        for col, r in enumerate(rows.values(), start=1):
            _add_image(fig, viz.heatmap_overlay(r["x_base"].clamp(0, 1), colorbar=False), 1, col)
            self._map(fig, _image(result.request.x), r["attr"], 2, col)
        classes = getattr(result.request.data, "classes", None)
        title = f"Integrated Gradients for {self.class_name(result.target, classes)}, " \
                f"four baselines"
        return viz.style(fig, title, self.presentation,
                         height=int(1.4 * viz.HEIGHT[bool(self.presentation)]))


# =========================================================================== linearisation
def trusted_range(ts: torch.Tensor, exact: torch.Tensor, linear: torch.Tensor,
                  tolerance: float = 0.1) -> tuple[float, float]:
    """The interval of t around 0 where the gradient predicts the change within `tolerance`.

    Predicted change linear(t) - S(x0), actual exact(t) - S(x0); trusted while
    |actual - predicted| <= tolerance * |predicted| (and at t = 0), walking out from t = 0.
    """
    start = linear[ts.abs().argmin()]
    error = (exact - linear).abs()
    ok = error <= tolerance * (linear - start).abs() + 1e-9
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


class LinearisationExplorer(_ImageExplorer):
    """S(x0 + t d) against the gradient's line S(x0) + t d . grad S(x0), for a direction d.

    Directions (unit length): "gradient" (steepest ascent), "to black" (towards the black
    image; t = |x0| reaches it), "random" (a random direction, seeded). The shaded band is
    where the gradient predicts the change within 10%; the t slider shows the input there.
    """

    DIRECTIONS = ("gradient", "to black", "random")

    def __init__(self, points: int = 41, **kwargs):
        self.points = points
        self.t = _slider(widgets.FloatSlider, "t / reach", 0.5, -1.0, 1.0, step=0.05,
                         live=True)
        super().__init__(**kwargs)
        self.extra_box.children = [*self.extra_box.children, self.t]
        self._observe(self.t, self.redraw)

    def extra_controls(self) -> dict[str, widgets.Widget]:
        return {
            "direction": widgets.ToggleButtons(description="direction",
                                               options=list(self.DIRECTIONS),
                                               value="gradient", style=WIDE),
            "reach": widgets.FloatLogSlider(description="reach (× |x|)", value=0.3, min=-3,
                                            max=0.5, continuous_update=False, style=WIDE),
        }

    @staticmethod
    def direction(model, x, target, name: str) -> torch.Tensor:
        """A unit-length direction d (per example, L2 over all features)."""
        if name == "gradient":
            d = gradients.gradient(model, x, target)
        elif name == "to black":
            d = -x
        elif name == "random":
            d = torch.randn(x.shape, generator=_seeded(x), device=x.device, dtype=x.dtype)
        else:
            raise ValueError(f"direction must be one of {LinearisationExplorer.DIRECTIONS}")
        return d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)

    def compute(self, request) -> Result:
        result = super().compute(request)
        self._check_image(request)
        start = time.perf_counter()
        model, x, t = request.model, request.x, result.target
        d = self.direction(model, x, t, request.extras["direction"])
        reach = request.extras["reach"] * x.flatten(1).norm().item()
        ts = torch.linspace(-reach, reach, self.points, device=x.device, dtype=x.dtype)
        exact, linear = gradients.taylor_line(model, x, t, d, ts)
        result.extra.update(d=d.cpu(), ts=ts.cpu(), exact=exact[:, 0].cpu(),
                            linear=linear[:, 0].cpu(), reach=reach,
                            trusted=trusted_range(ts.cpu(), exact[:, 0].cpu(),
                                                  linear[:, 0].cpu()))
        result.ms = (time.perf_counter() - start) * 1000
        return result

    def render(self, result: Result) -> go.Figure:
        e, x = result.extra, result.request.x.cpu()
        t_now = self.t.value * e["reach"]
        low, high = e["trusted"]
        fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38],
                            horizontal_spacing=0.08, subplot_titles=(
                                f"score along t · d ({result.request.extras['direction']})",
                                f"x0 + t d at t = {t_now:.3g}"))
        fig.add_vrect(x0=low, x1=high, fillcolor="#228833", opacity=0.12, line_width=0,
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=e["ts"], y=e["exact"], name="S(x0 + t d): the model",
                                 mode="lines", line_color="#222222"), row=1, col=1)
        fig.add_trace(go.Scatter(x=e["ts"], y=e["linear"], name="S(x0) + t d·∇S: the gradient",
                                 mode="lines", line=dict(color="#ee6677", dash="dash")),
                      row=1, col=1)
        fig.add_vline(x=t_now, line=dict(color="#999999", dash="dot"), row=1, col=1)
        fig.update_xaxes(title_text="t", row=1, col=1)
        fig.update_yaxes(title_text="class score (logit)", row=1, col=1)
        _add_image(fig, viz.heatmap_overlay((x + t_now * e["d"])[0].clamp(0, 1),
                                            colorbar=False), 1, 2)
        fig.update_layout(legend=dict(orientation="h", y=-0.15))
        title = f"the gradient is right within 10% for t in [{low:.3g}, {high:.3g}]"
        return viz.style(fig, title, self.presentation)


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
                request.data_name in self._data_names(request.model_name):
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
