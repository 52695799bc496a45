"""Chapter 08 explorers: Shapley values, their estimates, and networks that explain themselves.

- `CoalitionGame`: the breast-cancer model's score on one patient as a game of six players
  (groups of measurements). Switch players in and out of a coalition S and read v(S) and what
  each player adds to it; step through the orders in which the players can join, each
  player's marginal contribution as it joins, and the running average over the orders that
  becomes the Shapley value after all d! of them (dashed: the exact values, as
  `exact_shapley` computes them).
- `Convergence`: `sampling_shapley` and `kernel_shap` against `exact_shapley`: the error
  against the number of model calls (log-log, with 1/sqrt(calls) for scale), and the
  estimates at one budget next to the exact values.
- `ShapNetLayers`: a deep ShapNet (`digits-shapnet`) explains a digit layer by layer; the
  pruning slider drops the weakest features before each layer and counts the modules each
  digit skips (`skipped_modules`) and how far the output moves.
- `Regularisation`: shallow ShapNets trained with the explanation regulariser
  (`explanation_l1`) at several strengths: the explanations' sparsity, their size and the
  test accuracy against the strength, and one patient's explanation without and with it.

Every number drawn comes from `xai_course.shapley`; the explorers only arrange and draw it.
"""

from __future__ import annotations

import dataclasses
import html
import itertools
import math
import os
import time

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from tqdm.auto import tqdm

from xai_course import shapley as S
from xai_course import viz, zoo
from xai_course.convention import Option
from xai_course.zoo.shapnets import fit_shapnet, logits_from_explanation

from .base import Explorer, Request, Result, seeded

__all__ = ["CoalitionGame", "Convergence", "ShapNetLayers", "Regularisation", "GROUPS",
           "MEASUREMENTS", "CALLS", "STRENGTHS", "player_groups", "coalition_values",
           "all_orders", "order_contributions", "RegularisedRun", "regularised_runs"]

FAST = os.environ.get("XAI_COURSE_FAST") == "1"
WIDE = {"description_width": "initial"}
# Paul Tol's bright colours: one per player, the same in every panel
COLOURS = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb",
           "#222222")
# The breast-cancer table has ten measurements of a cell nucleus, each three times (its mean,
# its standard error, its worst value). The coalition game plays them as six groups.
MEASUREMENTS = ("radius", "texture", "perimeter", "area", "smoothness", "compactness",
                "concavity", "concave points", "symmetry", "fractal dimension")
GROUPS = {"size": ("radius", "perimeter", "area"), "texture": ("texture",),
          "smoothness": ("smoothness",),
          "concavity": ("compactness", "concavity", "concave points"),
          "symmetry": ("symmetry",), "fractal dimension": ("fractal dimension",)}
MAX_ORDERS_PLAYERS = 8  # the coalition game enumerates all d! orders: 8! = 40,320
# The convergence explorer's budgets, in model calls (a sampled order costs d calls)
CALLS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
COARSE_CALLS = 512  # the first picture stops here
STRENGTHS = (0.0, 0.03, 0.1, 0.3)  # the regulariser's lambda, trained side by side
# What an absent measurement becomes: the estimates' declared option (the table is in z-scores,
# so 0 is the average patient)
BASELINE = S.kernel_shap.options["baseline"]


def _hide_what_is_not_picked(explorer: Explorer) -> None:
    """No image upload (these explorers play tables or their own digits), and no model
    picker when there is nothing to pick."""
    explorer.upload.layout.display = "none"
    if len(explorer.model_picker.options) <= 1:
        explorer.model_picker.layout.display = "none"


# --------------------------------------------------------------------------- the game
def _measurement(feature: str) -> str:
    """'mean radius', 'radius error', 'worst radius' -> 'radius'."""
    name = str(feature)
    for prefix in ("mean ", "worst "):
        name = name.removeprefix(prefix)
    return name.removesuffix(" error")


def player_groups(features, groups: dict[str, tuple[str, ...]] | None = None
                  ) -> tuple[torch.Tensor, list[str]]:
    """(player id of each column (D,), player names) for the breast-cancer table: by default
    one player per measurement (its mean, error and worst value together); `groups`
    ({name: measurements}) joins measurements into one player."""
    if features is None:
        raise ValueError("these explorers play the breast-cancer table's measurements: pick a "
                         "model of the breast-cancer data (its data set names its features)")
    groups = groups or {m: (m,) for m in MEASUREMENTS}
    player_of = {m: k for k, members in enumerate(groups.values()) for m in members}
    measurements = [_measurement(f) for f in features]
    unknown = sorted({m for m in measurements if m not in player_of})
    if unknown:
        raise ValueError(f"no player holds the measurements {unknown}: give every measurement "
                         f"of the table a group")
    return torch.tensor([player_of[m] for m in measurements]), list(groups)


def coalition_values(model, x: torch.Tensor, target: int, groups: torch.Tensor,
                     baseline: float = 0.0) -> torch.Tensor:
    """v(S) = f_c(h_S(x)) on all 2^d coalitions of one input x (1, ...), in one batch:
    (2^d,) float64, row s the coalition of `shapley.all_coalitions` (the bits of s)."""
    g, d = S.players(x, groups)
    z = S.all_coalitions(d, x.device)
    b = torch.full_like(x[0], baseline)
    with torch.no_grad():
        return model(S.coalition_inputs(x[0], b, g[0], z))[:, target].double()


def all_orders(d: int) -> torch.Tensor:
    """(d!, d): every order in which d players can join, one per row."""
    if d > MAX_ORDERS_PLAYERS:
        raise ValueError(f"all orders of {d} players are {math.factorial(d):,}: at most "
                         f"{MAX_ORDERS_PLAYERS} players")
    return torch.tensor(list(itertools.permutations(range(d))))


def order_contributions(v: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """(P, d): player i's marginal contribution in order p, v(Pre_i u {i}) - v(Pre_i), read
    from the game's values v on every coalition (2^d,). Adding an order's players one by one,
    the coalition after k of them is the sum of their bits."""
    joined = torch.cat([torch.zeros_like(orders[:, :1]), (2 ** orders).cumsum(dim=1)], dim=1)
    steps = v[joined]  # (P, d + 1): v of the first k players of each order
    gains = steps[:, 1:] - steps[:, :-1]  # what the k-th player of each order adds
    return torch.zeros_like(gains).scatter_(1, orders, gains)


class CoalitionGame(Explorer):
    """A patient's score as a game of a few players (see the module's docstring).

    groups: {player name: the measurements it holds} (default `GROUPS`: six players). models:
    classifiers of the breast-cancer table (default: `breast-cancer`, `breast-cancer-shapnet`).
    The baseline (what an absent measurement becomes) is a control, 0 by default: the average
    patient, the table being in z-scores. Other keyword arguments: see `Explorer`.
    """

    def __init__(self, groups: dict[str, tuple[str, ...]] | None = None, **kwargs):
        kwargs.setdefault("models", ["breast-cancer", "breast-cancer-shapnet"])
        self.groups = dict(groups or GROUPS)
        d = len(self.groups)
        self.orders = math.factorial(d)
        controls = (BASELINE, Option("seed", "int", 0, "the random sequence in which the "
                                     "orders are taken (each order once)", low=0, high=9))
        view = (Option("order", "int", 1, f"which of the {self.orders} orders is shown: its "
                       f"players join one by one", low=1, high=self.orders, expensive=False),)
        super().__init__(methods=None, controls=controls, view_controls=view, overlay=False,
                         **kwargs)
        _hide_what_is_not_picked(self)
        self.members = {}
        for k, name in enumerate(self.groups):
            toggle = widgets.ToggleButton(value=k % 2 == 0, description=name,
                                          tooltip=f"{name} in the coalition S, or out",
                                          layout=widgets.Layout(width="auto"))
            self.members[name] = self.add_control(toggle, redraw_only=True,
                                                  name=f"player {name}")
        toggles = tuple(self.members.values())  # the coalition's buttons last, after a label
        others = tuple(w for w in self.display_box.children if w not in toggles)
        self.display_box.children = (*others, widgets.HTML("<b>coalition S:</b>"), *toggles)

    def coalition(self) -> list[int]:
        """The players switched into S."""
        return [k for k, w in enumerate(self.members.values()) if w.value]

    def compute(self, request: Request) -> Result:
        result = self.predict(request)
        groups, names = player_groups(getattr(request.data, "features", None), self.groups)
        start = time.perf_counter()
        v = coalition_values(request.model, request.x, result.target, groups,
                             request.extras["baseline"])
        result.ms = (time.perf_counter() - start) * 1000
        shuffle = torch.randperm(self.orders, generator=seeded("cpu", request.extras["seed"]))
        orders = all_orders(len(names))[shuffle]
        contributions = order_contributions(v.cpu(), orders)
        steps = torch.arange(1, len(orders) + 1, dtype=v.dtype)[:, None]
        result.extra.update(v=v.cpu(), names=names, orders=orders, contributions=contributions,
                            running=contributions.cumsum(dim=0) / steps,
                            phi=S.shapley_from_values(v.cpu()))
        return result

    def render(self, result: Result) -> go.Figure:
        e = result.extra
        v, names, d = e["v"], e["names"], len(e["names"])
        inside = self.coalition()
        s = sum(2 ** k for k in inside)
        adds = [(v[s] - v[s ^ 2 ** k]) if k in inside else (v[s | 2 ** k] - v[s])
                for k in range(d)]
        shown = self.value("order") - 1
        order = e["orders"][shown].tolist()
        titles = (viz.wrap(f"your coalition: v(S) = {v[s]:.2f}; what each player adds to it "
                           f"(faded: not in S)", 40),
                  viz.wrap(f"order {shown + 1} of {len(e['orders'])}: the players join one by "
                           f"one, from v(∅) to v(N)", 40),
                  "each player's average contribution over the first n orders "
                  "(dashed: the Shapley value)")
        fig = make_subplots(rows=2, cols=2, specs=[[{}, {}], [{"colspan": 2}, None]],
                            subplot_titles=titles,
                            vertical_spacing=0.3 if self.presentation else 0.2,
                            horizontal_spacing=0.16 if self.presentation else 0.1)
        fig.add_trace(go.Bar(x=names, y=[float(a) for a in adds], showlegend=False,
                             marker=dict(color=list(COLOURS[:d]),
                                         opacity=[1.0 if k in inside else 0.3
                                                  for k in range(d)]),
                             hovertemplate="%{x}: %{y:.3f}<extra></extra>", name="adds"),
                      row=1, col=1)
        # a waterfall in the players' colours: each bar starts where the last one ended
        level, bars = v[0].item(), []
        for k, player in enumerate(order):
            after = v[sum(2 ** p for p in order[:k + 1])].item()
            bars.append((player, level, after - level))
            level = after
        fig.add_trace(go.Bar(x=["v(∅)"] + [f"+ {names[p]}" for p, _, _ in bars] + ["v(N)"],
                             y=[v[0].item()] + [g for _, _, g in bars] + [v[-1].item()],
                             base=[0.0] + [b for _, b, _ in bars] + [0.0],
                             marker_color=["#999999"] + [COLOURS[p] for p, _, _ in bars]
                             + ["#999999"], showlegend=False, name="order",
                             hovertemplate="%{x}: %{y:+.3f}<extra></extra>"), row=1, col=2)
        n = torch.arange(1, len(e["orders"]) + 1).tolist()
        for k, name in enumerate(names):
            colour = COLOURS[k]
            fig.add_trace(go.Scatter(x=n, y=e["running"][:, k].tolist(), mode="lines",
                                     name=name, line=dict(color=colour, width=2)),
                          row=2, col=1)
            fig.add_trace(go.Scatter(x=[1, n[-1]], y=[e["phi"][k].item()] * 2, mode="lines",
                                     name=f"φ {name}", showlegend=False, hoverinfo="skip",
                                     line=dict(color=colour, dash="dash", width=1)),
                          row=2, col=1)
        low, high = e["running"].min().item(), e["running"].max().item()
        fig.add_trace(go.Scatter(x=[shown + 1] * 2, y=[low, high], mode="lines", name="shown",
                                 showlegend=False, hoverinfo="skip",
                                 line=dict(color="#888888", dash="dot", width=1)), row=2, col=1)
        fig.update_xaxes(type="log", title_text="orders averaged", row=2, col=1)
        fig.update_yaxes(title_text="contribution", row=2, col=1)
        fig.update_yaxes(title_text="score", row=1, col=2)
        classes = getattr(result.request.data, "classes", None)
        title = f"the score of {self.class_name(result.target, classes)} as a game"
        height = 2 * viz.ROW_HEIGHT[bool(self.presentation)] + (360 if self.presentation else 260)
        return viz.legend_below(viz.style(fig, title, self.presentation, height=height))

    def status(self, result: Result) -> str:
        e, b = result.extra, result.request.extras["baseline"]
        v, phi = e["v"], e["phi"]
        empty = "the average patient" if b == 0 else f"every measurement at z = {b:g}"
        return (f"{super().status(result)} · {len(v)} coalitions in <b>{result.ms:.1f} ms</b> · "
                f"v(∅) = {v[0]:.3f} ({empty}), v(N) = {v[-1]:.3f} · Σφ = "
                f"<b>{phi.sum():.3f}</b> = v(N) − v(∅)")


# --------------------------------------------------------------------------- convergence
def _rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).pow(2).mean().sqrt().item()


class Convergence(Explorer):
    """Permutation sampling and KernelSHAP against the exact values (see the module's
    docstring). For each budget of model calls C in `calls`: `sampling_shapley` with
    (C - 1) // d orders (1 + orders * d calls) and `kernel_shap` with C samples, both with
    the seed and the baseline of the sliders; the error is the root mean square over the
    players.

    models: classifiers of the breast-cancer table (default: `breast-cancer`). Other keyword
    arguments: see `Explorer`.
    """

    def __init__(self, calls: tuple[int, ...] = CALLS, **kwargs):
        kwargs.setdefault("models", ["breast-cancer"])
        self.calls = tuple(sorted(calls))
        controls = (
            Option("players", "choice", "10 measurements", "the game's players: the ten "
                   "measurements, or six groups of them", choices=("10 measurements",
                                                                   "6 groups")),
            BASELINE,
            Option("seed", "int", 0, "the random draws of both estimates", low=0, high=9),
        )
        super().__init__(methods=None, controls=controls, overlay=False, **kwargs)
        _hide_what_is_not_picked(self)
        budget = widgets.SelectionSlider(description="model calls", options=self.calls,
                                         value=self.calls[len(self.calls) // 2], style=WIDE,
                                         layout=widgets.Layout(width="26em"))
        self.add_control(budget, redraw_only=True, name="calls")

    def coarse(self, request: Request) -> Request | None:
        """The first picture: the budgets up to COARSE_CALLS model calls."""
        if self.calls[-1] <= COARSE_CALLS:
            return None
        return request.variant(f"up to {COARSE_CALLS} calls",
                               extra={"most calls": COARSE_CALLS})

    def budgets(self, request: Request) -> tuple[int, ...]:
        """The budgets computed for this request (all, or the coarse picture's)."""
        most = request.extras.get("most calls", self.calls[-1])
        return tuple(c for c in self.calls if c <= most) or self.calls[:1]

    def compute(self, request: Request) -> Result:
        result = self.predict(request)
        e, model, x, target = request.extras, request.model, request.x, result.target
        groups, names = player_groups(getattr(request.data, "features", None),
                                      None if e["players"] == "10 measurements" else GROUPS)
        d, seed, baseline = len(names), e["seed"], e["baseline"]
        times = {}
        start = time.perf_counter()
        exact = S.player_values(S.exact_shapley(model, x, baseline, target, groups), groups)[0]
        times["exact"] = time.perf_counter() - start
        runs = {"sampling_shapley": [], "kernel_shap": []}
        for method in (S.sampling_shapley, S.kernel_shap):
            start = time.perf_counter()
            for calls in self.budgets(request):
                if method is S.sampling_shapley:
                    samples = max(1, (calls - 1) // d)
                    used = 1 + samples * d
                else:
                    samples = used = calls
                estimate = S.player_values(method(model, x, target, baseline, samples=samples,
                                                  groups=groups,
                                                  generator=seeded(x.device, seed)), groups)[0]
                runs[method.__name__].append(dict(calls=used, samples=samples,
                                                  estimate=estimate.cpu(),
                                                  error=_rms(estimate, exact)))
            times[method.__name__] = time.perf_counter() - start
        result.ms = sum(times.values()) * 1000
        result.extra.update(exact=exact.cpu(), runs=runs, names=names, times=times,
                            exact_calls=2 ** d)
        return result

    def render(self, result: Result) -> go.Figure:
        e = result.extra
        k = min(self.calls.index(self.value("calls")), len(e["runs"]["kernel_shap"]) - 1)
        colours = {"sampling_shapley": "#4477aa", "kernel_shap": "#ee6677", "exact": "#222222"}
        titles = ("error against model calls (log-log)",
                  viz.wrap(f"the values at about {self.calls[k]} calls", 40))
        fig = make_subplots(rows=1, cols=2, subplot_titles=titles, column_widths=[0.5, 0.5],
                            horizontal_spacing=0.16 if self.presentation else 0.12)
        errors = []
        for name, runs in e["runs"].items():
            x, y = [r["calls"] for r in runs], [r["error"] for r in runs]
            errors += y
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name,
                                     line=dict(color=colours[name], width=2)), row=1, col=1)
            fig.add_trace(go.Scatter(x=[x[k]], y=[y[k]], mode="markers", showlegend=False,
                                     hoverinfo="skip", name=f"{name} shown",
                                     marker=dict(size=14, color="rgba(0,0,0,0)",
                                                 line=dict(color=colours[name], width=2))),
                          row=1, col=1)
        first = e["runs"]["sampling_shapley"][0]
        scale = first["error"] * math.sqrt(first["calls"])
        ends = [min(self.calls[0], first["calls"]), e["runs"]["kernel_shap"][-1]["calls"]]
        fig.add_trace(go.Scatter(x=ends, y=[scale / math.sqrt(c) for c in ends], mode="lines",
                                 name="∝ 1/√calls", line=dict(color="#999999", dash="dot")),
                      row=1, col=1)
        low, high = min(errors), max(max(errors), scale / math.sqrt(ends[0]))
        fig.add_trace(go.Scatter(x=[e["exact_calls"]] * 2, y=[low, high], mode="lines",
                                 name=f"exact: 2^{len(e['names'])} = {e['exact_calls']} calls",
                                 line=dict(color=colours["exact"], dash="dash", width=1)),
                      row=1, col=1)
        fig.update_xaxes(type="log", title_text="model calls", row=1, col=1)
        fig.update_yaxes(type="log", title_text="rms error", row=1, col=1)
        bars = {"exact": ("exact", e["exact"])}
        for name, runs in e["runs"].items():
            bars[f"{name} ({runs[k]['calls']} calls)"] = (name, runs[k]["estimate"])
        for label, (name, values) in bars.items():
            fig.add_trace(go.Bar(x=e["names"], y=values.tolist(), name=label,
                                 marker_color=colours[name]), row=1, col=2)
        fig.update_xaxes(tickangle=-45, row=1, col=2)
        fig.update_yaxes(title_text="φ", row=1, col=2)
        classes = getattr(result.request.data, "classes", None)
        title = (f"estimating the Shapley values of {self.class_name(result.target, classes)} "
                 f"(seed {result.request.extras['seed']})")
        height = viz.ROW_HEIGHT[bool(self.presentation)] + 260
        return viz.legend_below(viz.style(fig, title, self.presentation, height=height), rows=2)

    def status(self, result: Result) -> str:
        e = result.extra
        times = " · ".join(f"{html.escape(name)} <b>{1000 * t:.0f} ms</b>"
                           for name, t in e["times"].items())
        last = {name: runs[-1] for name, runs in e["runs"].items()}
        errors = ", ".join(f"{name} {r['error']:.2g}" for name, r in last.items())
        most = last["kernel_shap"]["calls"]
        return (f"{super().status(result)} · {times} · at {most} calls the rms error "
                f"is {errors} (largest |φ| {e['exact'].abs().max():.3f})")


# --------------------------------------------------------------------------- ShapNet layers
def _at_pixels(value: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A map of players (h, w) repeated to the image's pixels (H, W)."""
    h, w = value.shape
    return value.repeat_interleave(size[0] // h, 0).repeat_interleave(size[1] // w, 1)


class ShapNetLayers(Explorer):
    """A deep convolutional ShapNet's explanation layer by layer, and per-instance pruning.

    Top: the digit, the size (L1 norm over the channels) of each hidden layer's Shapley
    representation per player, and the last layer's values for the target class, all over
    the digit. The prune slider is `explain(x, prune=...)`'s option: 0 skips only the modules
    whose inputs are all black; a fraction p also drops the share p of each digit's players
    with the smallest representation before every layer after the first. Bottom: for every
    digit of the picker's set, the modules it skips (`skipped_modules`) against how far its
    logits move; and the chosen digit's logits with and without pruning.

    models: `DeepConvShapNet`s of the zoo (default: `digits-shapnet`). Other keyword
    arguments: see `Explorer` (n_samples: the digits counted, default 32).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("models", ["digits-shapnet"])
        kwargs.setdefault("n_samples", 32)
        controls = (Option("prune", "float", 0.0, "the share of each digit's players dropped "
                           "before each layer after the first (0: only modules whose inputs "
                           "are all black are skipped, and the output stays the same)",
                           low=0.0, high=0.9, step=0.05),)
        super().__init__(methods=None, controls=controls, overlay=False, **kwargs)
        _hide_what_is_not_picked(self)
        self._sets: dict[tuple, dict] = {}  # `pruned`: the whole set, per prune

    def pruned(self, request: Request) -> dict:
        """The whole set of digits explained with the request's pruning, once per model, data
        set, device and prune: every layer's representation, the logits with and without
        pruning, the modules each digit skips, and how many modules there are."""
        model, data, prune = request.model, request.data, request.extras["prune"]
        key = (request.model_name, request.data_name, request.device, len(data.x), prune)
        if key not in self._sets:
            batch = data.x.to(request.x.device)
            with torch.no_grad():
                layers, bias = model.explain(batch, layers=True, prune=prune)
                self._sets[key] = dict(
                    layers=[h.cpu() for h in layers], full=model(batch).cpu(),
                    pruned=logits_from_explanation(layers[-1], bias).cpu(),
                    skipped=model.skipped_modules(batch, prune=prune).cpu(),
                    modules=int(model.skipped_modules(torch.zeros_like(batch[:1]))[0]))  # all
            while len(self._sets) > 16:
                self._sets.pop(next(iter(self._sets)))
        return self._sets[key]

    def compute(self, request: Request) -> Result:
        result = self.predict(request)
        if not isinstance(request.model, S.DeepConvShapNet):
            raise ValueError(f"{request.model_name} is not a convolutional deep ShapNet; pick "
                             f"'digits-shapnet'")
        start = time.perf_counter()
        digits = self.pruned(request)
        result.ms = (time.perf_counter() - start) * 1000
        full, pruned, n = digits["full"], digits["pruned"], request.sample
        result.extra.update(
            layers=[h[n] for h in digits["layers"]], skipped=digits["skipped"],
            modules=digits["modules"], change=(pruned - full).abs().max(dim=1).values,
            kept=pruned.argmax(1) == full.argmax(1), full=full[n], pruned=pruned[n],
            prune=request.extras["prune"])
        return result

    def render(self, result: Result) -> go.Figure:
        e, request = result.extra, result.request
        image = request.x[0].cpu()
        size = tuple(image.shape[-2:])
        c, layers = result.target, e["layers"]
        maps = [_at_pixels(h.abs().sum(dim=0), size) for h in layers[:-1]]
        maps.append(_at_pixels(layers[-1][c], size))
        cols = len(layers) + 1
        titles = ["the digit"] + [f"layer {k + 1}: |h| per player" for k in range(cols - 2)]
        titles += [f"layer {cols - 1}: φ for class {c}",
                   viz.wrap(f"{len(e['skipped'])} digits: modules skipped, logits moved", 40),
                   viz.wrap(f"this digit's logits, prune = {e['prune']:g}", 40)]
        half = cols // 2
        specs = [[{}] * cols, [{"colspan": half}] + [None] * (half - 1)
                 + [{"colspan": cols - half}] + [None] * (cols - half - 1)]
        fig = make_subplots(rows=2, cols=cols, specs=specs, subplot_titles=titles,
                            vertical_spacing=0.2, horizontal_spacing=0.06,
                            row_heights=[0.5, 0.5])
        viz.add_panel(fig, viz.heatmap_overlay(image, colorbar=False), 1, 1)
        for k, value in enumerate(maps):
            signed = k == len(maps) - 1
            viz.add_panel(fig, viz.heatmap_overlay(image, value, signed=signed,
                                                   colorbar=False), 1, k + 2)
        kept = e["kept"].tolist()
        fig.add_trace(go.Scatter(
            x=e["skipped"].tolist(), y=e["change"].tolist(), mode="markers", name="digits",
            showlegend=False, text=[f"digit {i}" for i in range(len(kept))],
            marker=dict(size=8, color=["#228833" if k else "#cc3311" for k in kept]),
            hovertemplate="%{text}: %{x} skipped, logits moved %{y:.2g}<extra></extra>"),
            row=2, col=1)
        n = request.sample
        fig.add_trace(go.Scatter(x=[int(e["skipped"][n])], y=[float(e["change"][n])],
                                 mode="markers", name="this digit", showlegend=False,
                                 hoverinfo="skip", marker=dict(size=16, color="rgba(0,0,0,0)",
                                                               line=dict(color="#222222",
                                                                         width=2))),
                      row=2, col=1)
        fig.update_xaxes(title_text=f"modules skipped (of {e['modules']})",
                         range=[-0.5, max(1, int(e["skipped"].max())) + 0.5], row=2, col=1)
        fig.update_yaxes(title_text="max |Δ logit|", row=2, col=1)
        classes = [str(k) for k in range(len(e["full"]))]
        for label, values, colour in (("not pruned", e["full"], "#bbbbbb"),
                                      ("pruned", e["pruned"], "#4477aa")):
            fig.add_trace(go.Bar(x=classes, y=values.tolist(), name=label,
                                 marker_color=colour), row=2, col=half + 1)
        fig.update_xaxes(title_text="class", type="category", row=2, col=half + 1)
        title = "a deep ShapNet explains itself layer by layer"
        height = 2 * viz.ROW_HEIGHT[bool(self.presentation)] + 200
        return viz.legend_below(viz.style(fig, title, self.presentation, height=height))

    def status(self, result: Result) -> str:
        e, n = result.extra, result.request.sample
        return (f"{super().status(result)} · prune {e['prune']:g}: this digit skips "
                f"<b>{int(e['skipped'][n])} of {e['modules']}</b> modules, its logits move by "
                f"{float(e['change'][n]):.2g} · over {len(e['skipped'])} digits: "
                f"{e['skipped'].float().mean():.1f} skipped on average, the class kept for "
                f"<b>{e['kept'].float().mean():.0%}</b> · {result.ms:.0f} ms")


# --------------------------------------------------------------------------- regularisation
@dataclasses.dataclass
class RegularisedRun:
    """One shallow ShapNet trained with the explanation regulariser at `strength`."""

    strength: float
    model: S.ShallowShapNet
    sparsity: float  # explanation_sparsity on the test split
    l1: float  # explanation_l1 on the test split
    accuracy: float  # on the test split
    seconds: float


def regularised_runs(strengths=STRENGTHS, epochs: int | None = None, seed: int = 0,
                     device: str | torch.device = "cpu", progress: bool = True
                     ) -> dict[float, RegularisedRun]:
    """Train one shallow ShapNet per strength lambda of `explanation_l1` on the breast-cancer
    train split (`zoo.shapnets.fit_shapnet`: Adam, full batches, the same seed), with a
    Shapley module on each pair of `butterfly_wiring(30, 2)` (30 pairs), and measure each on
    the test split. epochs: 20 (8 under XAI_COURSE_FAST=1)."""
    epochs = epochs or (8 if FAST else 20)
    train = zoo.dataset("breast-cancer", "train")
    test = zoo.dataset("breast-cancer", "test")
    train = dataclasses.replace(train, x=train.x.to(device), y=train.y.to(device))
    subsets = [s for modules in S.butterfly_wiring(train.x.shape[1], 2) for s in modules]
    runs = {}
    for strength in tqdm(strengths, desc="regularised ShapNets", disable=not progress):
        start = time.perf_counter()
        torch.manual_seed(seed)
        model = S.ShallowShapNet(train.x.shape[1], 2, hidden=8, subsets=subsets).to(device)
        fit_shapnet(model, train, epochs=epochs, lr=2e-2, l1=strength,
                    batch_size=len(train.x), progress=False)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            phi, _ = model.explain(test.x.to(device))
        runs[strength] = RegularisedRun(strength, model, S.explanation_sparsity(phi),
                                        S.explanation_l1(phi).item(),
                                        zoo.accuracy(model, test), seconds)
    return runs


class Regularisation(Explorer):
    """The explanation regulariser's strength against sparsity, size and accuracy.

    runs: {strength: RegularisedRun} from `regularised_runs` (computed once in the notebook);
    None: they are trained when the explorer opens (`strengths`, `epochs`; a few seconds).
    The strength slider picks the run whose explanation of the chosen patient is drawn next
    to the unregularised one (the smallest strength), which also gives the prediction in the
    status line and the target. models: the frame's model only picks the data set (default:
    `breast-cancer`). Other keyword arguments: see `Explorer`.
    """

    def __init__(self, runs: dict[float, RegularisedRun] | None = None, strengths=STRENGTHS,
                 epochs: int | None = None, shown: int = 12, **kwargs):
        kwargs.setdefault("models", ["breast-cancer"])
        self.runs = dict(runs or {})
        self.strengths = tuple(sorted(self.runs)) if runs else tuple(sorted(strengths))
        self.epochs, self.shown = epochs, shown
        super().__init__(methods=None, overlay=False, **kwargs)
        _hide_what_is_not_picked(self)
        picker = widgets.SelectionSlider(description="strength λ", options=self.strengths,
                                         value=self.strengths[min(2, len(self.strengths) - 1)],
                                         style=WIDE, layout=widgets.Layout(width="26em"))
        self.add_control(picker, redraw_only=True, name="strength")

    def compute(self, request: Request) -> Result:
        missing = [s for s in self.strengths if s not in self.runs]
        start = time.perf_counter()
        if missing:
            self.runs.update(regularised_runs(missing, self.epochs, device=request.device))
        ms = (time.perf_counter() - start) * 1000
        runs = {s: self.runs[s] for s in self.strengths}
        x = request.x.to(next(runs[self.strengths[0]].model.parameters()).device)
        with torch.no_grad():
            # the prediction and the target: the unregularised network's
            probabilities = runs[self.strengths[0]].model(x).softmax(dim=1)[0].cpu()
            target = self.resolve_target(request, probabilities)
            phi = {s: run.model.explain(x)[0][0, :, target].cpu() for s, run in runs.items()}
        result = Result(request, None, target, probabilities, ms)
        result.extra.update(phi=phi, runs=runs)
        return result

    def render(self, result: Result) -> go.Figure:
        e, request = result.extra, result.request
        chosen, plain = self.value("strength"), self.strengths[0]
        runs = list(e["runs"].values())
        labels = [f"{r.strength:g}" for r in runs]
        titles = (viz.wrap("sparsity: share of |φ| below 5% of the largest", 30),
                  "mean L1 of φ", "test accuracy",
                  f"this patient's largest values, λ = {plain:g} and λ = {chosen:g}")
        fig = make_subplots(rows=2, cols=3, specs=[[{}, {}, {}], [{"colspan": 3}, None, None]],
                            subplot_titles=titles, vertical_spacing=0.2,
                            horizontal_spacing=0.1, row_heights=[0.4, 0.6])
        k = self.strengths.index(chosen)
        for col, (name, values, colour, form) in enumerate((
                ("sparsity", [r.sparsity for r in runs], "#4477aa", ".1%"),
                ("mean L1 of φ", [r.l1 for r in runs], "#ee6677", ".3~g"),
                ("test accuracy", [r.accuracy for r in runs], "#228833", ".1%")), 1):
            # the strengths evenly spaced at 0, 1, 2, ..., labelled with their values (an axis
            # of type "category" came back linear after an update in place)
            fig.add_trace(go.Scatter(x=list(range(len(runs))), y=values, mode="lines+markers",
                                     name=name, showlegend=False, customdata=labels,
                                     line=dict(color=colour, width=2),
                                     hovertemplate=f"λ = %{{customdata}}: %{{y:{form}}}"
                                                   "<extra></extra>"),
                          row=1, col=col)
            fig.add_vline(x=k, line=dict(color="#888888", dash="dot", width=1), row=1, col=col)
            fig.update_xaxes(title_text="strength λ", tickvals=list(range(len(runs))),
                             ticktext=labels, range=[-0.5, len(runs) - 0.5], row=1, col=col)
            fig.update_yaxes(tickformat=form, row=1, col=col)
        names = getattr(request.data, "features", None) or [
            f"feature {j}" for j in range(len(e["phi"][plain]))]
        both = e["phi"][plain].abs() + e["phi"][chosen].abs()
        top = both.argsort(descending=True)[:self.shown].flip(0).tolist()
        for strength, colour in ((plain, "#bbbbbb"), (chosen, "#ee6677")):
            fig.add_trace(go.Bar(x=e["phi"][strength][top].tolist(),
                                 y=[str(names[j]) for j in top], orientation="h",
                                 name=f"φ with λ = {strength:g}", marker_color=colour),
                          row=2, col=1)
        fig.update_layout(barmode="group")
        fig.update_xaxes(title_text="φ (logit)", row=2, col=1)
        classes = getattr(request.data, "classes", None)
        title = (f"the explanation regulariser: explaining "
                 f"{self.class_name(result.target, classes)}")
        height = viz.ROW_HEIGHT[bool(self.presentation)] + 28 * self.shown + 260
        return viz.legend_below(viz.style(fig, title, self.presentation, height=height))

    def status(self, result: Result) -> str:
        chosen = self.value("strength")
        run, phi = result.extra["runs"][chosen], result.extra["phi"][chosen]
        small = (phi.abs() <= 0.05 * phi.abs().max()).sum().item()
        trained = sum(r.seconds for r in result.extra["runs"].values())
        return (f"{super().status(result)} · λ = {chosen:g}: sparsity <b>{run.sparsity:.0%}</b>, "
                f"test accuracy <b>{run.accuracy:.1%}</b>; this patient: {small} of {len(phi)} "
                f"values below 5% of the largest · {len(result.extra['runs'])} networks trained "
                f"in {trained:.1f} s")
