"""Chapter 07 explorers: information bottlenecks.

- `IBAPlayback`: IBA on a cluttered digit, played back. Pick the layer and beta; the step
  slider (or play) moves through the optimisation: the capacity map of each step, in bits per
  pixel on one colour scale for all steps, next to the loss, its cross-entropy and its
  information term with the step marked. The digit's ground-truth mask is outlined.
- `LayerFailures`: IBA at an early, a middle and a late layer of the same model on the same
  canvas, side by side: the share of each map's energy inside the digit's mask
  (`evaluation.energy_in_mask`) and how coarse the map is (`evaluation.correlation_length`,
  in pixels).
  The late layer's map is blurry (8 x 8 places upsampled); the early layer's loses part of
  the digit.
- `InputIBAStages`: InputIBA's three stages on one canvas (the feature bottleneck's map, the
  GAN's mask with its training curves, the input bottleneck's lambda) beside the Readout
  Bottleneck's map, computed in one pass, with each one's time.
- `TextBottleneck`: a review's tokens shaded by lambda, from IBA at the embedding and from
  InputIBA (its GAN's mask and its input bottleneck), the tokens known to decide the label
  marked.

Every number drawn comes from `xai_course.bottleneck` and `xai_course.evaluation`; the
explorers only arrange and draw it.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import os
import time

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from xai_course import viz, zoo
from xai_course.bottleneck import (
    FeatureStats,
    feature_stats,
    iba,
    input_iba,
    readout_bottleneck,
    smooth,
)
from xai_course.convention import Option
from xai_course.evaluation import correlation_length, energy_in_mask

from .base import Explorer, Request, Result, seeded

__all__ = ["IBAPlayback", "LayerFailures", "InputIBAStages", "TextBottleneck", "LAYERS",
           "COMPARED", "TEXT_SETTINGS", "training_stats", "token_lambda"]

FAST = os.environ.get("XAI_COURSE_FAST") == "1"
# mu_R and sigma_R from this many training examples (the authors warn below 1,000)
STATS_SAMPLES = 400 if FAST else 1000
# cluttered-digits' ReLUs: 64 x 64, 32 x 32, 16 x 16, 16 x 16 and 8 x 8 places
LAYERS = ("features.relu1", "features.relu2", "features.relu3", "features.relu4",
          "features.relu5")
COMPARED = ("features.relu1", "features.relu3", "features.relu5")  # early, middle, late
# InputIBA on text: the authors' settings for text (their configs), as `input_iba` says
TEXT_SETTINGS = dict(feature_beta=15, beta=30, steps=30, lr=0.5, sigma=0)
# the first, quick picture of InputIBA: the tests' small run
COARSE = dict(epochs=2, steps=25, samples=5)
MASK_COLOUR = "#44ddff"
COLOURS = ("#4477aa", "#ee6677", "#228833", "#ccbb44")
WIDE = {"description_width": "initial"}


# --------------------------------------------------------------------------- shared pieces
@functools.lru_cache(maxsize=4)
def _training_data(name: str, n: int):
    return zoo.dataset(name, split="train", n=n)


def training_stats(model, layer: str, data_name: str, device,
                   n: int = STATS_SAMPLES) -> FeatureStats:
    """`feature_stats` of `layer` over the first n training examples of `data_name`, on
    `device`. A text model's "embedding" is a layer of the model (token ids in); any other
    layer of a text model is one of its encoder, over the embedded reviews (as `input_iba`
    on text needs). Cached by `feature_stats` itself."""
    x = _training_data(data_name, n).x.to(device)
    if zoo.is_text_model(model) and layer != "embedding":
        with torch.no_grad():
            return feature_stats(model.encoder, layer, model.embedding(x))
    return feature_stats(model, layer, x)


def token_lambda(alpha: torch.Tensor, sigma: float | None) -> torch.Tensor:
    """IBA's lambda = smooth(sigmoid(alpha)) for a sequence layer (N, L, D), averaged over
    the D channels: how much of each token's features passes, in [0, 1] (N, L)."""
    return smooth(torch.sigmoid(alpha), sigma).mean(dim=2)


def _mask(request: Request) -> torch.Tensor:
    """The digit's ground-truth mask (H, W) of the request's sample."""
    mask = getattr(request.data, "mask", None)
    if mask is None:
        raise ValueError(f"{request.data_name} has no ground-truth masks: pick "
                         f"'cluttered-digits', whose digits come with theirs")
    return mask[request.sample] > 0


def _outline(mask: torch.Tensor) -> go.Contour:
    """The mask's outline as a contour line at 0.5 (no fill, no colour scale)."""
    return go.Contour(z=mask.float().numpy(), contours=dict(start=0.5, end=0.5, size=1,
                                                            coloring="none"),
                      line=dict(color=MASK_COLOUR, width=1.5), showscale=False,
                      hoverinfo="skip", name="digit mask", showlegend=False)


def _map_panel(fig, image, value, row: int, col: int, mask=None, zmax=None) -> None:
    """A map over the canvas in cell (row, col), unnormalised (so the numbers drawn are the
    map's own), the colour scale from 0 to `zmax` (default: the map's maximum), the digit's
    mask outlined."""
    panel = viz.heatmap_overlay(image, value, signed=False, normalize=None, colorbar=False)
    if zmax is not None:
        panel.data[-1].update(zmax=float(zmax) or 1.0)
    if mask is not None:
        panel.add_trace(_outline(mask))
    viz.add_panel(fig, panel, row, col)


def _only_the_canvases(explorer: Explorer) -> None:
    """No upload (an image of your own has no mask), no model picker with one model."""
    explorer.upload.layout.display = "none"
    if len(explorer.model_picker.options) <= 1:
        explorer.model_picker.layout.display = "none"


def _iba_options(**fixed) -> dict:
    """IBA's declared options the explorers give no control: Adam's rate and the noise draws
    (the authors' 1 and 10), unless given."""
    return {"lr": iba.options["lr"].default, "samples": iba.options["samples"].default, **fixed}


# --------------------------------------------------------------------------- IBA played back
class IBAPlayback(Explorer):
    """IBA's optimisation on one canvas, step by step (see the module's docstring).

    Controls: the layer (`LAYERS`), and IBA's beta, steps and sigma (its declared options).
    The step slider and the play button only redraw: every step's map is recorded by
    `iba(..., history=True)`. models: cluttered-digits (the masks). Other keyword arguments:
    see `Explorer`.
    """

    def __init__(self, layer: str = "features.relu3", **kwargs):
        kwargs.setdefault("models", ["cluttered-digits"])
        controls = (Option("layer", "choice", layer, "where the bottleneck sits: relu1 has "
                           "64 x 64 places, relu3 16 x 16, relu5 8 x 8", choices=LAYERS),)
        steps = iba.options["steps"].default
        view = (Option("step", "int", steps, "the optimisation step shown (1: the start, "
                       "lambda = 0.993 everywhere)", low=1, high=steps, expensive=False),)
        super().__init__(methods={"IBA": iba}, controls=controls, view_controls=view,
                         fixed_options=_iba_options(), overlay=False, **kwargs)
        _only_the_canvases(self)
        # the play button drives the step slider in the browser; the slider redraws
        self.play = widgets.Play(value=steps, min=1, max=steps, interval=500,
                                 description="play", tooltip="play the optimisation back")
        widgets.jslink((self.play, "value"), (self.view_widgets["step"], "value"))
        self.display_box.children = (self.play, *self.display_box.children)

    def compute(self, request: Request) -> Result:
        result = self.predict(request)
        layer, x = request.extras["layer"], request.x
        stats = training_stats(request.model, layer, request.data_name, x.device)
        start = time.perf_counter()
        maps, history = iba(request.model, x, result.target, layer, stats=stats,
                            generator=seeded(x.device), history=True, **request.opts)
        result.ms = (time.perf_counter() - start) * 1000
        result.attribution = maps[0].cpu()
        mask = _mask(request)
        result.extra.update(
            layer=layer, mask=mask, maps=history.maps[:, 0].cpu(),
            loss=history.loss[:, 0].cpu(), ce=history.ce[:, 0].cpu(),
            information=history.information[:, 0].cpu(),
            energy=energy_in_mask(history.maps[:, 0].cpu(), mask.expand(len(history.maps), -1,
                                                                          -1)))
        return result

    def render(self, result: Result) -> go.Figure:
        e, request = result.extra, result.request
        steps = len(e["maps"])
        slider = self.view_widgets["step"]
        if result is not self.result:  # a new run (not a redraw): show its last step
            with self.quietly():
                slider.max = self.play.max = steps
                slider.value = steps
        s = min(slider.value, steps)
        beta = request.opts["beta"]
        titles = (viz.wrap(f"capacity at step {s}: {e['maps'][s - 1].sum():.0f} bits, "
                           f"{e['energy'][s - 1]:.0%} in the digit's mask", 40),
                  f"the loss, step by step (β = {beta:g})")
        fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55],
                            horizontal_spacing=0.12, subplot_titles=titles)
        _map_panel(fig, request.x[0].cpu(), e["maps"][s - 1], 1, 1, e["mask"],
                   zmax=e["maps"].max())
        every = list(range(1, steps + 1))
        for name, values, colour in (("loss", e["loss"], COLOURS[0]),
                                     ("cross-entropy", e["ce"], COLOURS[1]),
                                     ("β · information", beta * e["information"], COLOURS[2])):
            fig.add_trace(go.Scatter(x=every, y=values.tolist(), mode="lines+markers",
                                     name=name, line=dict(color=colour, width=2)), row=1, col=2)
        fig.add_vline(x=s, line=dict(color="#888888", dash="dot", width=1), row=1, col=2)
        # half a step of room at either end: the first and last step's tick labels fit
        fig.update_xaxes(title_text="step", range=[0.5, steps + 0.5], row=1, col=2)
        classes = getattr(request.data, "classes", None)
        title = (f"IBA at {e['layer']} explaining {self.class_name(result.target, classes)}: "
                 f"bits per pixel, one colour scale for every step")
        return viz.legend_below(viz.style(fig, title, self.presentation))

    def status(self, result: Result) -> str:
        e = result.extra
        p = float(torch.exp(-e["ce"][-1]))
        return (f"{super().status(result)} · {len(e['maps'])} steps · at the last: "
                f"{e['maps'][-1].sum():.0f} bits, <b>{e['energy'][-1]:.0%}</b> "
                f"inside the mask (its area {e['mask'].float().mean():.0%}); p(target) with "
                f"the bottleneck {p:.2f}")


# --------------------------------------------------------------------------- two failures
class LayerFailures(Explorer):
    """IBA at an early, a middle and a late layer side by side (see the module's docstring).

    layers: the three layers (default `COMPARED`). Controls: IBA's beta, steps and sigma,
    the same for the three. models: cluttered-digits (the masks). Other keyword arguments:
    see `Explorer`.
    """

    def __init__(self, layers: tuple[str, ...] = COMPARED, **kwargs):
        kwargs.setdefault("models", ["cluttered-digits"])
        self.layers = tuple(layers)
        super().__init__(methods={"IBA": iba}, fixed_options=_iba_options(), overlay=False,
                         **kwargs)
        _only_the_canvases(self)

    def compute(self, request: Request) -> Result:
        result = self.predict(request)
        x, mask = request.x, _mask(request)
        maps, seconds, places = {}, {}, {}
        for layer in self.layers:
            stats = training_stats(request.model, layer, request.data_name, x.device)
            places[layer] = " x ".join(str(s) for s in stats.mean.shape[1:])  # h x w
            start = time.perf_counter()
            maps[layer] = iba(request.model, x, result.target, layer, stats=stats,
                              generator=seeded(x.device), **request.opts)[0].cpu()
            seconds[layer] = time.perf_counter() - start
        result.ms = 1000 * sum(seconds.values())
        stacked = torch.stack(list(maps.values()))
        result.extra.update(
            maps=maps, mask=mask, places=places,
            energy=dict(zip(self.layers, energy_in_mask(
                stacked, mask.expand(len(stacked), -1, -1)).tolist())),
            length=dict(zip(self.layers, correlation_length(stacked).tolist())))
        return result

    def render(self, result: Result) -> go.Figure:
        e, request = result.extra, result.request
        n = len(self.layers)
        titles = [viz.wrap(f"{layer} ({e['places'][layer]} places): {e['energy'][layer]:.0%} "
                           f"in the mask", 30) for layer in self.layers]
        titles += ["energy in the mask", "correlation length (px)"]
        # a grid of 2n columns: n maps of two columns each above, two charts of n below
        specs = [[{"colspan": 2}, None] * n, [{"colspan": n}] + [None] * (n - 1)
                 + [{"colspan": n}] + [None] * (n - 1)]
        fig = make_subplots(rows=2, cols=2 * n, specs=specs, subplot_titles=titles,
                            row_heights=[0.6, 0.4], vertical_spacing=0.2,
                            horizontal_spacing=0.08)
        image = request.x[0].cpu()
        for k, layer in enumerate(self.layers):
            _map_panel(fig, image, e["maps"][layer], 1, 2 * k + 1, e["mask"])
        names = list(self.layers)
        fig.add_trace(go.Bar(x=names, y=[e["energy"][k] for k in names], name="energy in mask",
                             marker_color=COLOURS[0], showlegend=False,
                             hovertemplate="%{x}: %{y:.1%}<extra></extra>"), row=2, col=1)
        area = e["mask"].float().mean().item()
        fig.add_hline(y=area, line=dict(color="#888888", dash="dash", width=1), row=2, col=1)
        fig.update_yaxes(tickformat=".0%", range=[0, 1], row=2, col=1)
        fig.add_trace(go.Bar(x=names, y=[e["length"][k] for k in names],
                             name="correlation length", marker_color=COLOURS[1],
                             showlegend=False, hovertemplate="%{x}: %{y:.1f} px<extra></extra>"),
                      row=2, col=n + 1)
        classes = getattr(request.data, "classes", None)
        title = (f"IBA early, middle and late, explaining "
                 f"{self.class_name(result.target, classes)} (dashed: the mask's area)")
        height = 2 * viz.ROW_HEIGHT[bool(self.presentation)] + 200
        return viz.style(fig, title, self.presentation, height=height)

    def status(self, result: Result) -> str:
        e = result.extra
        parts = [f"{html.escape(layer)}: <b>{e['energy'][layer]:.0%}</b> in the mask, "
                 f"correlation {e['length'][layer]:.1f} px" for layer in self.layers]
        return (f"{super().status(result)} (three layers) · {' · '.join(parts)} · mask area "
                f"{e['mask'].float().mean():.0%}")


# --------------------------------------------------------------------------- InputIBA
class InputIBAStages(Explorer):
    """InputIBA's three stages beside the Readout Bottleneck (see the module's docstring).

    The layer is the readout's (`cluttered-digits-readout`: features.relu3), so that the
    feature bottleneck of stage 1 and the readout explain at the same place. Controls:
    InputIBA's beta, steps and GAN epochs (its declared options; epochs: its default 20, or
    `epochs`). A first picture comes from a small run (`COARSE`: 2 epochs, 25 steps of 5
    noise draws, ~2 s on a CPU core), then the full one (~15 s with 20 epochs); each is
    cached. models: cluttered-digits. Other keyword arguments: see `Explorer`.
    """

    readout_name = "cluttered-digits-readout"

    def __init__(self, epochs: int | None = None, **kwargs):
        kwargs.setdefault("models", ["cluttered-digits"])
        super().__init__(methods={"InputIBA": input_iba}, overlay=False, **kwargs)
        _only_the_canvases(self)
        if epochs is not None:
            with self.quietly():
                self.option_widgets("InputIBA")["epochs"].value = epochs
        self._readouts: dict[str, torch.nn.Module] = {}

    def readout(self, device: str):
        """The shipped readout network, on `device`, loaded once."""
        if device not in self._readouts:
            self._readouts[device] = zoo.load_model(self.readout_name, device)
        return self._readouts[device]

    def coarse(self, request: Request) -> Request | None:
        opts = request.opts
        if opts["epochs"] <= COARSE["epochs"] and opts["steps"] <= COARSE["steps"]:
            return None
        small = {k: min(v, opts.get(k, v)) for k, v in COARSE.items()}
        return request.variant(f"{small['epochs']} GAN epochs, {small['steps']} steps",
                               options=small)

    def compute(self, request: Request) -> Result:
        result = self.predict(request)
        x, model, mask = request.x, request.model, _mask(request)
        readout = self.readout(request.device)
        stats = training_stats(model, readout.bottleneck, request.data_name, x.device)
        start = time.perf_counter()
        stages = input_iba(model, x, result.target, readout.bottleneck, stats=stats,
                           stages=True, generator=seeded(x.device), **request.opts)
        result.ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        one_pass = readout_bottleneck(model, x, result.target, readout)
        readout_ms = (time.perf_counter() - start) * 1000
        maps = {"feature": stages.feature_map[0], "prior": stages.prior[0],
                "input": stages.input_map[0], "readout": one_pass[0]}
        maps = {k: v.cpu() for k, v in maps.items()}
        stacked = torch.stack(list(maps.values()))
        energy = energy_in_mask(stacked, mask.expand(len(stacked), -1, -1))
        result.attribution = maps["input"]
        result.extra.update(
            maps=maps, mask=mask, layer=readout.bottleneck, readout_ms=readout_ms,
            energy=dict(zip(maps, energy.tolist())), seconds=dict(stages.seconds),
            critic_loss=stages.critic_loss[0].cpu(), generator_loss=stages.generator_loss[0].cpu(),
            loss=stages.loss[:, 0].cpu())
        return result

    def render(self, result: Result) -> go.Figure:
        e, request = result.extra, result.request
        seconds, energy = e["seconds"], e["energy"]
        titles = [
            viz.wrap(f"1 · feature IBA at {e['layer']}, bits: {energy['feature']:.0%} in "
                     f"the mask ({seconds['feature IBA']:.1f} s)", 20),
            viz.wrap(f"2 · the GAN's mask λ_G: {energy['prior']:.0%} ({seconds['GAN']:.1f} s)",
                     20),
            viz.wrap(f"3 · InputIBA's λ: {energy['input']:.0%} ({seconds['input IBA']:.1f} s)",
                     20),
            viz.wrap(f"Readout Bottleneck, one pass, bits: {energy['readout']:.0%} "
                     f"({e['readout_ms']:.0f} ms)", 20),
            "2 · the GAN's training: Wasserstein losses",
            "3 · the input bottleneck's loss",
        ]
        specs = [[{}, {}, {}, {}], [{"colspan": 2}, None, {"colspan": 2}, None]]
        fig = make_subplots(rows=2, cols=4, specs=specs, subplot_titles=titles,
                            row_heights=[0.55, 0.45], vertical_spacing=0.24,
                            horizontal_spacing=0.1)
        image = request.x[0].cpu()
        for col, key in enumerate(("feature", "prior", "input", "readout"), 1):
            zmax = 1.0 if key in ("prior", "input") else None  # lambda: on [0, 1]
            _map_panel(fig, image, e["maps"][key], 1, col, e["mask"], zmax=zmax)
        critic, generator = e["critic_loss"], e["generator_loss"]
        every = len(critic) / max(1, len(generator))  # critic steps per generator step
        fig.add_trace(go.Scatter(x=list(range(1, len(critic) + 1)), y=critic.tolist(),
                                 mode="lines", name="critic", line=dict(color=COLOURS[0])),
                      row=2, col=1)
        fig.add_trace(go.Scatter(x=[1 + round(k * every) for k in range(len(generator))],
                                 y=generator.tolist(), mode="lines", name="generator",
                                 line=dict(color=COLOURS[1])), row=2, col=1)
        fig.update_xaxes(title_text="critic step", row=2, col=1)
        fig.add_trace(go.Scatter(x=list(range(1, len(e["loss"]) + 1)), y=e["loss"].tolist(),
                                 mode="lines", name="input bottleneck",
                                 line=dict(color=COLOURS[2])), row=2, col=3)
        fig.update_xaxes(title_text="step", row=2, col=3)
        classes = getattr(request.data, "classes", None)
        title = (f"InputIBA's three stages and the Readout Bottleneck, explaining "
                 f"{self.class_name(result.target, classes)}")
        height = 2 * viz.ROW_HEIGHT[bool(self.presentation)] + 260
        return viz.legend_below(viz.style(fig, title, self.presentation, height=height))

    def status(self, result: Result) -> str:
        e = result.extra
        stages = " · ".join(f"{html.escape(k)} {v:.1f} s" for k, v in e["seconds"].items())
        return (f"{super().status(result)} · {stages} · readout <b>{e['readout_ms']:.0f} ms</b>"
                f" · in the mask: InputIBA "
                f"{e['energy']['input']:.0%}, readout {e['energy']['readout']:.0%} (mask "
                f"area {e['mask'].float().mean():.0%})")


# --------------------------------------------------------------------------- text
class TextBottleneck(Explorer):
    """A review's tokens shaded by lambda (see the module's docstring).

    Rows: IBA at the embedding (one place per token; lambda averaged over its channels,
    `token_lambda`), InputIBA's GAN mask lambda_G and its input bottleneck's lambda (the
    encoder's LSTM as its feature layer, the authors' text settings `TEXT_SETTINGS`). The
    tokens known to decide the label are bold, with a triangle. Controls: InputIBA's GAN
    epochs (its default 20, or `epochs`). models: reviews. Other keyword arguments: see
    `Explorer`.
    """

    def __init__(self, epochs: int | None = None, **kwargs):
        kwargs.setdefault("models", ["reviews"])
        spec = input_iba.options["epochs"]
        if epochs is not None:
            spec = dataclasses.replace(spec, default=epochs)
        super().__init__(methods=None, controls=(spec,), overlay=False, **kwargs)
        _only_the_canvases(self)

    def coarse(self, request: Request) -> Request | None:
        if request.extras["epochs"] <= COARSE["epochs"]:
            return None
        return request.variant(f"{COARSE['epochs']} GAN epochs",
                               extra={"epochs": COARSE["epochs"]})

    def compute(self, request: Request) -> Result:
        result = self.predict(request)
        model, x = request.model, request.x
        if not zoo.is_text_model(model):
            raise ValueError(f"{request.model_name} is not a text model: pick 'reviews'")
        start = time.perf_counter()
        stats = training_stats(model, "embedding", request.data_name, x.device)
        sigma = iba.options["sigma"].default
        _, history = iba(model, x, result.target, "embedding", stats=stats, sigma=sigma,
                         generator=seeded(x.device), history=True)
        iba_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        with torch.no_grad():
            embedded = model.embedding(x)
        lstm = training_stats(model, "lstm", request.data_name, x.device)
        stages = input_iba(model.encoder, embedded, result.target, "lstm", stats=lstm,
                           stages=True, epochs=request.extras["epochs"],
                           generator=seeded(x.device), **TEXT_SETTINGS)
        result.ms = (time.perf_counter() - start) * 1000
        where, tokens = self.token_positions(request)
        rows = {"IBA at the embedding: λ": token_lambda(history.alpha, sigma)[0],
                "InputIBA stage 2, the GAN's mask: λ_G": stages.prior[0],
                "InputIBA stage 3, the input bottleneck: λ": stages.input_map[0]}
        relevant = request.data.relevant[request.sample][where].bool()
        result.extra.update(rows={k: v[where].cpu() for k, v in rows.items()}, tokens=tokens,
                            relevant=relevant, iba_ms=iba_ms)
        return result

    def render(self, result: Result) -> go.Figure:
        e = result.extra
        rel = e["relevant"]
        titles = [f"{name} (known tokens {lam[rel].mean():.2f}, others {lam[~rel].mean():.2f})"
                  if rel.any() and (~rel).any() else name for name, lam in e["rows"].items()]
        per_row = 12
        lines = -(-len(e["tokens"]) // per_row)
        fig = make_subplots(rows=len(titles), cols=1, subplot_titles=titles,
                            vertical_spacing=0.6 / len(titles))
        for r, lam in enumerate(e["rows"].values(), 1):
            panel = viz.token_figure(e["tokens"], lam, rel.int(), per_row=per_row,
                                     normalize=None)
            panel.data[0].update(zmin=-1.0, zmax=1.0)  # lambda in [0, 1]: white to red
            for key in ("z", "customdata"):  # the empty cells after the last word: gaps
                values = np.asarray(panel.data[0][key], dtype=float)  # (NaN: not JSON)
                panel.data[0][key] = np.where(np.isnan(values), None, values)
            panel.data[1].update(showlegend=r == 1 and bool(rel.any()))
            viz.add_panel(fig, panel, r, 1, image=False)
            fig.update_yaxes(autorange="reversed", row=r, col=1)
        classes = getattr(result.request.data, "classes", None)
        title = (f"how much of each token passes, explaining "
                 f"{self.class_name(result.target, classes)} (white 0, red 1)")
        row_height = (70 if self.presentation else 48) * lines + 80
        return viz.legend_below(viz.style(fig, title, self.presentation,
                                          height=len(titles) * row_height + 60))

    def status(self, result: Result) -> str:
        e = result.extra
        return (f"{super().status(result)} · IBA <b>{e['iba_ms']:.0f} ms</b> · InputIBA "
                f"<b>{result.ms / 1000:.1f} s</b> ({result.request.extras['epochs']} GAN "
                f"epochs) · {int(e['relevant'].sum())} known tokens of {len(e['tokens'])}")
