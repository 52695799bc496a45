"""Chapter 05 explorers: LIME, its surrogates, and tree regularisation.

- `LimeExplorer`: an image cut into superpixels (method and count), LIME's weight per
  superpixel, and the surrogate at work: click a superpixel (or type its id) to switch it
  off and see the model's score and the surrogate's prediction move together, or not. The
  kernel width says what "near" means; the surrogate is linear or a tree (depth slider);
  the fidelity (weighted R^2) against depth is drawn as a curve, and the tree itself with
  its splits named by superpixel.
- `TabularLime`: the same on the breast-cancer table: feature bars for linear LIME, the tree
  for tree LIME.
- `TreeRegularization`: the decision boundary of a network and of the tree that imitates it,
  trained without and with Wu et al.'s penalty on the tree's average path length.
- `tree_figure(tree, names)`: a fitted scikit-learn tree drawn in plotly.

The LIME explorers' controls are LIME's own declared options (`surrogates.lime.options`,
`surrogates.lime_tabular.options`), with the explorer's sample count as the default.
"""

from __future__ import annotations

import dataclasses
import html
import os
import time

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from xai_course import surrogates, viz
from xai_course.convention import Option

from .base import IMAGE_MODELS, Explorer, FigureWidget, Request, Result, seeded, update_figure

__all__ = ["LimeExplorer", "TabularLime", "TreeRegularization", "tree_figure",
           "fidelity_by_depth", "DEPTHS"]

WIDE = {"description_width": "initial"}
DEPTHS = (1, 2, 3, 4, 5, 6, 8)
FAST = os.environ.get("XAI_COURSE_FAST") == "1"


def _lime_controls(method, samples: int) -> tuple[Option, ...]:
    """A LIME method's declared options, with `samples` as the samples' default."""
    specs = dict(method.options)
    specs["samples"] = dataclasses.replace(specs["samples"], default=samples)
    return tuple(specs.values())


def _fewer_samples(request: Request, most: int) -> Request | None:
    if request.extras["samples"] <= most:
        return None
    return request.variant(f"{most} samples", extra=dict(samples=most))


# --------------------------------------------------------------------------- drawing a tree
def _split_text(feature: str, threshold: float, binary: bool) -> str:
    return f"{feature} off?" if binary else f"{feature} ≤ {threshold:.2f}?"


def tree_figure(tree, names, binary: bool = False, title: str | None = None,
                presentation: bool = False) -> go.Figure:
    """A fitted scikit-learn decision tree drawn top-down: each split names its feature
    ("superpixel 12 off?" for 0/1 features, "mean radius ≤ 0.31?" otherwise; the left
    branch is "yes"), each leaf shows its value and the share of the samples' weight."""
    t = tree.tree_
    x_of, depth_of = {}, {}
    leaves = iter(range(t.node_count))

    def place(node, depth):  # leaves left to right, parents centred above their children
        depth_of[node] = depth
        left, right = t.children_left[node], t.children_right[node]
        if left == -1:
            x_of[node] = float(next(leaves))
        else:
            place(left, depth + 1)
            place(right, depth + 1)
            x_of[node] = (x_of[left] + x_of[right]) / 2

    place(0, 0)
    edge_x, edge_y, label_x, label_y, label = [], [], [], [], []
    total = t.weighted_n_node_samples[0]
    nodes = sorted(x_of)
    text, colour = [], []
    for node in nodes:
        left, right = t.children_left[node], t.children_right[node]
        value = t.value[node, 0, 0] if t.value.shape[2] == 1 else t.value[node, 0].argmax()
        if left == -1:
            share = 100 * t.weighted_n_node_samples[node] / total
            text.append(f"{value:.2f}<br>{share:.0f}%")
        else:
            text.append(_split_text(names[t.feature[node]], t.threshold[node], binary))
            for child, word in ((left, "yes"), (right, "no")):
                edge_x += [x_of[node], x_of[child], None]
                edge_y += [-depth_of[node], -depth_of[child], None]
                label_x.append((x_of[node] + x_of[child]) / 2)
                label_y.append(-(depth_of[node] + depth_of[child]) / 2)
                label.append(word)
        colour.append(float(value))
    fig = go.Figure([
        go.Scatter(x=edge_x, y=edge_y, mode="lines", line=dict(color="#999"),
                   hoverinfo="skip", showlegend=False),
        go.Scatter(x=label_x, y=label_y, mode="text", text=label, hoverinfo="skip",
                   textfont=dict(color="#777"), showlegend=False),
        go.Scatter(x=[x_of[n] for n in nodes], y=[-depth_of[n] for n in nodes],
                   mode="markers+text", text=text, textposition="bottom center",
                   marker=dict(size=14, color=colour, colorscale=viz.DIVERGING,
                               line=dict(color="#333", width=1)),
                   hovertext=text, hoverinfo="text", showlegend=False, name="tree"),
    ], viz.layout(title, presentation))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, range=[-max(depth_of.values()) - 0.8, 0.5])
    return fig


def fidelity_by_depth(fit: surrogates.Surrogate, depths=DEPTHS) -> dict[str, list[float]]:
    """Weighted R^2 of trees of each depth fitted to the same samples: on the samples, and
    on the fresh samples the fit never saw (when the fit has them)."""
    curves: dict[str, list[float]] = {"on the samples": [], "on fresh samples": []}
    for depth in depths:
        tree = surrogates.fit_surrogate(fit.z, fit.y, fit.weights, "tree", max_depth=depth)
        curves["on the samples"].append(tree.fidelity)
        if fit.fresh_z is not None:
            curves["on fresh samples"].append(surrogates.weighted_r2(
                fit.fresh_y, tree.predict(fit.fresh_z), fit.fresh_weights))
    if not curves["on fresh samples"]:
        del curves["on fresh samples"]
    return curves


# --------------------------------------------------------------------------- images
class LimeExplorer(Explorer):
    """LIME on superpixels, with its surrogate in the open (see the module's docstring).

    samples: perturbed images per explanation (default 500; 100 under XAI_COURSE_FAST=1).
    Other keyword arguments: see `Explorer` (models default to the zoo's image models).
    """

    def __init__(self, samples: int | None = None, **kwargs):
        kwargs.setdefault("models", list(IMAGE_MODELS))
        self.default_samples = samples or (100 if FAST else 500)
        controls = (
            Option("segmenter", "choice", "slic", "how the image is cut into superpixels",
                   choices=surrogates.SEGMENTERS),
            Option("n", "int", 30, "about how many superpixels", low=4, high=120),
            *_lime_controls(surrogates.lime, self.default_samples),
        )
        super().__init__(methods=None, controls=controls, overlay=False,
                         clickable=["superpixels"], **kwargs)
        # free text: the superpixels switched off (clicks write here too)
        self.add_control(widgets.Text(description="switched off", style=WIDE,
                                      placeholder="click, or e.g. 3, 7",
                                      continuous_update=False), name="off")
        self._fits: dict[tuple, tuple] = {}

    # ------------------------------------------------------------------ switching off
    def switched_off(self) -> list[int]:
        """The superpixel ids typed in (or clicked) to switch off; bad entries are refused."""
        text = self.extra_widgets["off"].value.replace(",", " ").split()
        try:
            return sorted({int(v) for v in text})
        except ValueError:
            raise ValueError(f"switched off: type superpixel ids separated by commas, e.g. "
                             f"'3, 7'; got {self.extra_widgets['off'].value!r}") from None

    def toggle(self, segment: int) -> None:
        """Switch superpixel `segment` off, or back on (what a click on the image does)."""
        off = set(self.switched_off()) ^ {int(segment)}
        self.extra_widgets["off"].value = ", ".join(map(str, sorted(off)))

    def clicked(self, trace_name, x, y) -> None:
        if self.result is not None:
            self.toggle(int(self.result.extra["segments"][int(y), int(x)]))

    def coarse(self, request: Request) -> Request | None:
        return _fewer_samples(request, 60)

    # ------------------------------------------------------------------ compute
    def compute(self, request) -> Result:
        e, model, x = request.extras, request.model, request.x
        if x.ndim != 4:
            raise ValueError("LimeExplorer explains images; for a table use TabularLime")
        result = self.predict(request)
        target = result.target
        key = (request.key[:4], target, e["segmenter"], e["n"], e["samples"],
               e["kernel_width"], e["baseline"], e["surrogate"], e["max_depth"], request.device)
        start = time.perf_counter()
        if key not in self._fits:
            segments = surrogates.superpixels(x[0], e["segmenter"], e["n"])
            attribution, (fit,) = surrogates.lime(
                model, x, target, segments=segments, samples=e["samples"],
                kernel_width=e["kernel_width"], baseline=e["baseline"],
                surrogate=e["surrogate"], max_depth=e["max_depth"], generator=seeded(x.device),
                return_surrogate=True)
            curves = fidelity_by_depth(fit)
            linear = fit if fit.kind == "linear" else surrogates.fit_surrogate(
                fit.z, fit.y, fit.weights, "linear")
            self._fits[key] = (segments, attribution[0].cpu(), fit, curves, linear.fidelity)
            while len(self._fits) > 16:
                self._fits.pop(next(iter(self._fits)))
        segments, attribution, fit, curves, linear_fidelity = self._fits[key]
        result.ms = (time.perf_counter() - start) * 1000
        k = fit.z.shape[1]
        off = [s for s in self.switched_off() if 0 <= s < k]
        z = torch.ones(1, k, device=x.device)
        z[0, off] = 0
        base = surrogates.baseline_image(x[0], segments, e["baseline"])
        shown = surrogates.perturbed_images(x[0], base, segments, z)
        with torch.no_grad():
            model_score = model(shown)[0, target].item()
        result.attribution = attribution
        result.extra.update(
            segments=segments.cpu(), fit=fit, curves=curves, off=off, shown=shown[0].cpu(),
            model_score=model_score, surrogate_score=fit.predict(z).item(),
            original_score=fit.y[0].item(), linear_fidelity=linear_fidelity)
        return result

    # ------------------------------------------------------------------ draw
    def render(self, result: Result) -> go.Figure:
        e, request = result.extra, result.request
        fit, segments = e["fit"], e["segments"]
        tree = fit.kind == "tree"
        titles = (viz.wrap("click a superpixel to switch it off", 24), f"LIME weights ({fit.kind})",
                  "score: model vs surrogate", viz.wrap("fidelity (weighted R²) by tree depth",
                                                        24),
                  f"the tree (depth ≤ {request.extras['max_depth']})" if tree
                  else "pick the tree surrogate to see a tree")
        specs = [[{}, {}, {}], [{}, {"colspan": 2}, None]]
        fig = make_subplots(rows=2, cols=3, specs=specs, subplot_titles=titles,
                            vertical_spacing=0.14, horizontal_spacing=0.08)
        h, w = segments.shape
        ids = segments.numpy()
        edges = np.zeros((h, w), bool)
        edges[:-1] |= ids[:-1] != ids[1:]
        edges[:, :-1] |= ids[:, :-1] != ids[:, 1:]
        image = viz.heatmap_overlay(e["shown"], colorbar=False)
        image.add_trace(go.Heatmap(z=edges.astype(float), showscale=False, zmin=0, zmax=1,
                                   colorscale=[[0, "rgba(0,0,0,0)"], [1, "yellow"]],
                                   hoverinfo="skip"))
        # on top: an invisible heatmap that names the superpixel under the mouse and takes
        # the clicks (plotly reports clicks only on traces with hover information)
        image.add_trace(go.Heatmap(z=ids, opacity=0.0, showscale=False, name="superpixels",
                                   hovertemplate="superpixel %{z}<extra>click: switch it "
                                                 "off or on</extra>"))
        viz.add_panel(fig, image, 1, 1)
        viz.add_panel(fig, viz.heatmap_overlay(request.x[0].cpu(), result.attribution,
                                               colorbar=False), 1, 2)
        scores = (e["original_score"], e["model_score"], e["surrogate_score"])
        fig.add_trace(go.Bar(
            x=["model,<br>all on", "model,<br>now", "surrogate,<br>now"], y=list(scores),
            marker_color=["#bbbbbb", "#4477aa", "#ee6677"],
            text=[f"{v:.2f}" for v in scores], textposition="auto", showlegend=False),
            row=1, col=3)
        for name, values in e["curves"].items():
            fig.add_trace(go.Scatter(x=list(DEPTHS), y=values, mode="lines+markers", name=name),
                          row=2, col=1)
        fig.add_trace(go.Scatter(x=[DEPTHS[0], DEPTHS[-1]], y=[e["linear_fidelity"]] * 2,
                                 mode="lines", line=dict(dash="dash", color="#888"),
                                 name="linear, on the samples"), row=2, col=1)
        fig.update_xaxes(title_text="depth", row=2, col=1)
        fig.update_yaxes(range=[min(0.0, *[min(v) for v in e["curves"].values()]), 1.02],
                         row=2, col=1)
        if tree:
            drawn = tree_figure(fit.tree, [f"sp {j}" for j in range(fit.z.shape[1])],
                                binary=True)
            viz.add_panel(fig, drawn, 2, 2, image=False)
            fig.update_yaxes(range=drawn.layout.yaxis.range, row=2, col=2)
        classes = getattr(request.data, "classes", None)
        title = f"LIME · target {self.class_name(result.target, classes)}"
        height = 2 * viz.ROW_HEIGHT[bool(self.presentation)] + 300
        return viz.legend_below(viz.style(fig, title, self.presentation, height=height))

    def status(self, result: Result) -> str:
        e, fit = result.extra, result.extra["fit"]
        return (f"{super().status(result)} · {fit.z.shape[1]} superpixels · fidelity R² "
                f"<b>{fit.fidelity:.3f}</b> on the samples, <b>{fit.fidelity_fresh:.3f}</b> on "
                f"fresh ones · switched off: {html.escape(str(e['off']) if e['off'] else '-')}"
                f" · model {e['model_score']:.2f} vs surrogate {e['surrogate_score']:.2f}")


# --------------------------------------------------------------------------- tables
class TabularLime(Explorer):
    """LIME on a row of a table: feature bars (linear) or the tree (tree), with fidelity.

    background: the rows that set each feature's scale (default: the model's train split).
    """

    def __init__(self, samples: int | None = None, background=None, **kwargs):
        kwargs.setdefault("models", ["breast-cancer"])
        self.default_samples = samples or (200 if FAST else 1000)
        self._background = background
        view = (Option("features shown", "int", 12, "bars drawn, largest first", low=3,
                       high=30, expensive=False),)
        super().__init__(methods=None, overlay=False, view_controls=view,
                         controls=_lime_controls(surrogates.lime_tabular,
                                                 self.default_samples), **kwargs)
        self.upload.layout.display = "none"

    def background(self, request) -> torch.Tensor:
        if self._background is not None:
            return self._background.to(request.x.device)
        from xai_course import zoo

        return zoo.dataset(request.data_name, "train").x.to(request.x.device)

    def coarse(self, request: Request) -> Request | None:
        return _fewer_samples(request, 100)

    def compute(self, request) -> Result:
        e, model, x = request.extras, request.model, request.x
        if x.ndim != 2:
            raise ValueError("TabularLime explains rows of a table (N, features); for images "
                             "use LimeExplorer")
        result = self.predict(request)
        start = time.perf_counter()
        attribution, (fit,) = surrogates.lime_tabular(
            model, x, result.target, self.background(request), samples=e["samples"],
            kernel_width=e["kernel_width"], surrogate=e["surrogate"], max_depth=e["max_depth"],
            generator=seeded(x.device), return_surrogate=True)
        result.ms = (time.perf_counter() - start) * 1000
        result.attribution = attribution[0].cpu()
        result.extra["fit"] = fit
        return result

    def render(self, result: Result) -> go.Figure:
        request, fit = result.request, result.extra["fit"]
        names = getattr(request.data, "features", None) or [
            f"feature {j}" for j in range(len(result.attribution))]
        classes = getattr(request.data, "classes", None)
        title = f"LIME ({fit.kind}) · target {self.class_name(result.target, classes)}"
        if fit.kind == "tree":
            return tree_figure(fit.tree, names, title=title + " · splits in z-scores",
                               presentation=self.presentation)
        a = result.attribution
        shown = self.value("features shown")
        top = a.abs().argsort(descending=True)[:shown].flip(0).tolist()
        value = request.x[0].cpu()
        fig = go.Figure(go.Bar(
            x=a[top].tolist(), y=[f"{names[j]} = {value[j]:.2f}" for j in top],
            orientation="h", marker_color=["#ee6677" if a[j] > 0 else "#4477aa" for j in top]))
        fig.update_xaxes(title_text="coefficient (score per std)")
        return viz.style(fig, title, self.presentation, height=28 * len(top) + 160)

    def status(self, result: Result) -> str:
        fit = result.extra["fit"]
        return (f"{super().status(result)} · fidelity R² <b>{fit.fidelity:.3f}</b> on the "
                f"samples, <b>{fit.fidelity_fresh:.3f}</b> on fresh ones")


# --------------------------------------------------------------------------- tree regularisation
def _boundary(predict, lo, hi, grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys = np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid)
    points = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)
    return xs, ys, predict(points).reshape(grid, grid)


class TreeRegularization:
    """Two networks on the same two moons with the same seed, one trained plainly and one
    with the tree penalty (`strength` slider, "train" button): each network's decision
    regions, the regions of the tree fitted to it, its average path length and accuracy."""

    def __init__(self, steps: int | None = None, grid: int = 60, presentation: bool = False):
        self.steps = steps or (120 if FAST else 300)
        self.grid, self.presentation = grid, presentation
        self.x, self.y = surrogates.two_moons(300, seed=0)
        self.test = surrogates.two_moons(1000, seed=1)
        self.strength = widgets.FloatLogSlider(description="penalty strength", value=3.0,
                                               base=10, min=-1, max=1, style=WIDE,
                                               continuous_update=False)
        self.button = widgets.Button(description="train", button_style="primary")
        self.figure_box = widgets.Box([FigureWidget(layout=viz.layout(
            presentation=presentation))], layout=widgets.Layout(width="100%"))
        self.status_line, self.error = widgets.HTML(), widgets.HTML()
        self.widget = widgets.VBox([widgets.HBox([self.strength, self.button]),
                                    self.figure_box, self.status_line, self.error])
        self.runs: dict[float, surrogates.TreeRegularized] = {}
        self.button.on_click(lambda _: self.train())
        self.train()

    @property
    def figure(self) -> go.FigureWidget:
        return self.figure_box.children[0]

    def run(self, strength: float) -> surrogates.TreeRegularized:
        if strength not in self.runs:
            self.runs[strength] = surrogates.tree_regularized_training(
                self.x, self.y, strength=strength, steps=self.steps, test=self.test,
                generator=seeded("cpu"))
        return self.runs[strength]

    def train(self) -> None:
        try:
            runs = {0.0: self.run(0.0), self.strength.value: self.run(self.strength.value)}
            shown = update_figure(self.figure, self.render(runs))
            if shown is not self.figure:  # a new structure: a new widget in its place
                old, self.figure_box.children = self.figure, (shown,)
                old.close()
            self.status_line.value = " · ".join(
                f"strength {s:g}: path length <b>{r.path_length:.2f}</b>, test accuracy "
                f"<b>{r.test_accuracy:.3f}</b>" for s, r in runs.items())
            self.error.value = ""
        except Exception as error:  # shown, the widget stays usable
            self.error.value = f'<span style="color:#b00020">{html.escape(repr(error))}</span>'

    def render(self, runs: dict) -> go.Figure:
        lo, hi = self.x.min(0).values.numpy() - 0.5, self.x.max(0).values.numpy() + 0.5
        titles = []
        for s, r in runs.items():
            titles += [viz.wrap(f"network, strength {s:g} (test acc {r.test_accuracy:.2f})", 24),
                       viz.wrap(f"its tree: path length {r.path_length:.2f}", 24)]
        fig = make_subplots(rows=1, cols=4, subplot_titles=titles, horizontal_spacing=0.03)
        points = self.x.numpy()
        for i, r in enumerate(runs.values()):
            def network(p, model=r.model):
                with torch.no_grad():
                    return model(torch.from_numpy(p)).argmax(1).numpy()

            for j, predict in enumerate((network, r.tree.predict)):
                xs, ys, z = _boundary(predict, lo, hi, self.grid)
                col = 2 * i + j + 1
                fig.add_trace(go.Heatmap(x=xs, y=ys, z=z, showscale=False, opacity=0.5,
                                         colorscale=[[0, "#4477aa"], [1, "#ee6677"]],
                                         hoverinfo="skip"), row=1, col=col)
                fig.add_trace(go.Scatter(x=points[:, 0], y=points[:, 1], mode="markers",
                                         marker=dict(size=4, color=self.y.numpy(),
                                                     colorscale=[[0, "#224477"],
                                                                 [1, "#992233"]]),
                                         showlegend=False, hoverinfo="skip"), row=1, col=col)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return viz.style(fig, "tree regularisation: the network and the tree that imitates it",
                         self.presentation)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
