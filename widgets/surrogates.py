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
"""

from __future__ import annotations

import html
import os
import time

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from xai_course import surrogates, viz

from .base import Explorer, Result, update_figure

__all__ = ["LimeExplorer", "TabularLime", "TreeRegularization", "tree_figure",
           "fidelity_by_depth", "DEPTHS", "IMAGE_MODELS"]

IMAGE_MODELS = ["cluttered-digits", "digits", "shortcut-digits", "resnet50-imagenet",
                "vgg16-imagenet"]
WIDE = {"description_width": "initial"}
DEPTHS = (1, 2, 3, 4, 5, 6, 8)
FAST = os.environ.get("XAI_COURSE_FAST") == "1"


def _seeded(device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(0)


def _add(fig: go.Figure, panel: go.Figure, row: int, col: int, image: bool = False) -> None:
    """Copy a figure's traces into cell (row, col); image panels get image-style axes."""
    for trace in panel.data:
        fig.add_trace(trace, row=row, col=col)
    if image:
        anchor = fig.get_subplot(row, col).xaxis.plotly_name.replace("axis", "")
        fig.update_xaxes(visible=False, constrain="domain", row=row, col=col)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=anchor,
                         constrain="domain", row=row, col=col)


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
        self._fits: dict[tuple, tuple] = {}
        super().__init__(methods=None, **kwargs)
        self.display_box.layout.display = "none"

    def extra_controls(self) -> dict[str, widgets.Widget]:
        wide = dict(style=WIDE, continuous_update=False)
        return {
            "segmenter": widgets.Dropdown(description="superpixels",
                                          options=list(surrogates.SEGMENTERS), value="slic",
                                          style=WIDE),
            "n": widgets.IntSlider(description="how many", value=30, min=4, max=120, **wide),
            "samples": widgets.IntSlider(description="samples", value=self.default_samples,
                                         min=20, max=2000, step=20, **wide),
            "kernel_width": widgets.FloatLogSlider(description="kernel width", value=0.25,
                                                   base=10, min=-2, max=0.5, **wide),
            "baseline": widgets.Dropdown(description="switched off shows",
                                         options=[("its mean colour", "mean"),
                                                  ("a blur", "blur"), ("black", 0.0)],
                                         style=WIDE),
            "surrogate": widgets.ToggleButtons(description="surrogate",
                                               options=list(surrogates.SURROGATES),
                                               style=WIDE),
            "max_depth": widgets.IntSlider(description="tree depth", value=3, min=1, max=8,
                                           **wide),
            "off": widgets.Text(description="switched off", placeholder="click, or e.g. 3, 7",
                                style=WIDE, continuous_update=False),
        }

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

    def _on_click(self, trace, points, selector) -> None:
        if not points.xs or self.result is None:
            return
        segments = self.result.extra["segments"]
        self.toggle(int(segments[int(points.ys[0]), int(points.xs[0])]))

    def _draw(self, result) -> None:
        super()._draw(result)
        for trace in self.figure.data:
            if trace.name == "superpixels":
                trace.on_click(self._guard(self._on_click))

    # ------------------------------------------------------------------ compute
    def compute(self, request) -> Result:
        e, model, x = request.extras, request.model, request.x
        if x.ndim != 4:
            raise ValueError("LimeExplorer explains images; for a table use TabularLime")
        with torch.no_grad():
            probabilities = torch.softmax(model(x).float(), dim=1)[0].cpu()
        target = self.resolve_target(request, probabilities)
        key = (request.key[:4], target, e["segmenter"], e["n"], e["samples"],
               e["kernel_width"], e["baseline"], e["surrogate"], e["max_depth"], request.device)
        start = time.perf_counter()
        if key not in self._fits:
            segments = surrogates.superpixels(x[0], e["segmenter"], e["n"])
            attribution, (fit,) = surrogates.lime(
                model, x, target, segments=segments, samples=e["samples"],
                kernel_width=e["kernel_width"], baseline=e["baseline"],
                surrogate=e["surrogate"], max_depth=e["max_depth"], generator=_seeded(x.device),
                return_surrogate=True)
            curves = fidelity_by_depth(fit)
            linear = fit if fit.kind == "linear" else surrogates.fit_surrogate(
                fit.z, fit.y, fit.weights, "linear")
            self._fits[key] = (segments, attribution[0].cpu(), fit, curves, linear.fidelity)
            while len(self._fits) > 16:
                self._fits.pop(next(iter(self._fits)))
        segments, attribution, fit, curves, linear_fidelity = self._fits[key]
        ms = (time.perf_counter() - start) * 1000
        k = fit.z.shape[1]
        off = [s for s in self.switched_off() if 0 <= s < k]
        z = torch.ones(1, k, device=x.device)
        z[0, off] = 0
        base = surrogates.baseline_image(x[0], segments, e["baseline"])
        shown = surrogates.perturbed_images(x[0], base, segments, z)
        with torch.no_grad():
            model_score = model(shown)[0, target].item()
        return Result(request, attribution, target, probabilities, ms, extra=dict(
            segments=segments.cpu(), fit=fit, curves=curves, off=off, shown=shown[0].cpu(),
            model_score=model_score, surrogate_score=fit.predict(z).item(),
            original_score=fit.y[0].item(), linear_fidelity=linear_fidelity))

    # ------------------------------------------------------------------ draw
    def render(self, result: Result) -> go.Figure:
        e, request = result.extra, result.request
        fit, segments = e["fit"], e["segments"]
        tree = fit.kind == "tree"
        titles = ("click a superpixel to switch it off", f"LIME weights ({fit.kind})",
                  "score: model vs surrogate", "fidelity (weighted R²) by tree depth",
                  f"the tree (depth ≤ {request.extras['max_depth']})" if tree
                  else "pick the tree surrogate to see a tree")
        specs = [[{}, {}, {}], [{}, {"colspan": 2}, None]]
        fig = make_subplots(rows=2, cols=3, specs=specs, subplot_titles=titles,
                            vertical_spacing=0.14, horizontal_spacing=0.06)
        image = viz.heatmap_overlay(e["shown"], colorbar=False)
        _add(fig, image, 1, 1, image=True)
        h, w = segments.shape
        ids = segments.numpy()
        edges = np.zeros((h, w), bool)
        edges[:-1] |= ids[:-1] != ids[1:]
        edges[:, :-1] |= ids[:, :-1] != ids[:, 1:]
        fig.add_trace(go.Heatmap(z=edges.astype(float), showscale=False, zmin=0, zmax=1,
                                 colorscale=[[0, "rgba(0,0,0,0)"], [1, "yellow"]],
                                 hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Heatmap(z=ids, opacity=0.0, showscale=False, name="superpixels",
                                 hovertemplate="superpixel %{z}<extra></extra>"), row=1, col=1)
        _add(fig, viz.heatmap_overlay(request.x[0].cpu(), result.attribution, colorbar=False,
                                      opacity=0.6), 1, 2, image=True)
        fig.add_trace(go.Bar(
            x=["model, original", "model, now", "surrogate, now"],
            y=[e["original_score"], e["model_score"], e["surrogate_score"]],
            marker_color=["#bbbbbb", "#4477aa", "#ee6677"],
            text=[f"{v:.2f}" for v in (e["original_score"], e["model_score"],
                                       e["surrogate_score"])], textposition="auto",
            showlegend=False), row=1, col=3)
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
            _add(fig, drawn, 2, 2)
            fig.update_xaxes(visible=False, row=2, col=2)
            fig.update_yaxes(visible=False, row=2, col=2)
        classes = getattr(request.data, "classes", None)
        title = f"LIME · target {self.class_name(result.target, classes)}"
        height = int(viz.HEIGHT[bool(self.presentation)] * 1.7)
        return viz.style(fig, title, self.presentation, height=height).update_layout(
            legend=dict(orientation="h", y=-0.05))

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
        super().__init__(methods=None, **kwargs)
        self.display_box.layout.display = "none"
        self.upload.layout.display = "none"

    def extra_controls(self) -> dict[str, widgets.Widget]:
        wide = dict(style=WIDE, continuous_update=False)
        return {
            "samples": widgets.IntSlider(description="samples", value=self.default_samples,
                                         min=20, max=5000, step=20, **wide),
            "kernel_width": widgets.FloatLogSlider(description="kernel width", value=4.1,
                                                   base=10, min=-1, max=1.3, **wide),
            "surrogate": widgets.ToggleButtons(description="surrogate",
                                               options=list(surrogates.SURROGATES),
                                               style=WIDE),
            "max_depth": widgets.IntSlider(description="tree depth", value=3, min=1, max=8,
                                           **wide),
            "top": widgets.IntSlider(description="features shown", value=12, min=3, max=30,
                                     **wide),
        }

    def background(self, request) -> torch.Tensor:
        if self._background is not None:
            return self._background.to(request.x.device)
        from xai_course import zoo

        return zoo.dataset(request.data_name, "train").x.to(request.x.device)

    def compute(self, request) -> Result:
        e, model, x = request.extras, request.model, request.x
        if x.ndim != 2:
            raise ValueError("TabularLime explains rows of a table (N, features); for images "
                             "use LimeExplorer")
        with torch.no_grad():
            probabilities = torch.softmax(model(x).float(), dim=1)[0].cpu()
        target = self.resolve_target(request, probabilities)
        start = time.perf_counter()
        attribution, (fit,) = surrogates.lime_tabular(
            model, x, target, self.background(request), samples=e["samples"],
            kernel_width=e["kernel_width"], surrogate=e["surrogate"], max_depth=e["max_depth"],
            generator=_seeded(x.device), return_surrogate=True)
        ms = (time.perf_counter() - start) * 1000
        return Result(request, attribution[0].cpu(), target, probabilities, ms,
                      extra=dict(fit=fit))

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
        top = a.abs().argsort(descending=True)[: request.extras["top"]].flip(0).tolist()
        value = request.x[0].cpu()
        fig = go.Figure(go.Bar(
            x=a[top].tolist(), y=[f"{names[j]} = {value[j]:.2f}" for j in top],
            orientation="h", marker_color=["#ee6677" if a[j] > 0 else "#4477aa" for j in top]))
        fig.update_xaxes(title_text="coefficient: score per standard deviation")
        return viz.style(fig, title, self.presentation)

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
        self.figure = go.FigureWidget(layout=dict(height=viz.HEIGHT[bool(presentation)],
                                                  template=viz.TEMPLATE))
        self.status_line, self.error = widgets.HTML(), widgets.HTML()
        self.widget = widgets.VBox([widgets.HBox([self.strength, self.button]), self.figure,
                                    self.status_line, self.error])
        self.runs: dict[float, surrogates.TreeRegularized] = {}
        self.button.on_click(lambda _: self.train())
        self.train()

    def run(self, strength: float) -> surrogates.TreeRegularized:
        if strength not in self.runs:
            self.runs[strength] = surrogates.tree_regularized_training(
                self.x, self.y, strength=strength, steps=self.steps, test=self.test,
                generator=torch.Generator().manual_seed(0))
        return self.runs[strength]

    def train(self) -> None:
        try:
            runs = {0.0: self.run(0.0), self.strength.value: self.run(self.strength.value)}
            update_figure(self.figure, self.render(runs))
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
            titles += [f"network, strength {s:g} (test acc {r.test_accuracy:.2f})",
                       f"its tree: path length {r.path_length:.2f}"]
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
