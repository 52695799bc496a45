"""Chapter 09 explorers: evaluating explanations.

- `ToyROAR`: ROAR on the 16-d toy set where the truth is known (`evaluation.toy_roar`): test
  accuracy against the features removed, for the true, random and inverted rankings, with
  and without retraining (mean over the seeds, the band their range). Toggles pick the
  curves; the seeds and the examples are sliders (the sweep takes a second or two).
- `SanityGallery`: cascading randomisation (`evaluation.sanity_check`) on one canvas: the
  map of the trained model, then after each layer is re-initialised from the top, in a row,
  and the Spearman rank correlation and SSIM with the first map, layer by layer. Gradient
  maps fall apart; Guided Backprop's barely change.
- `ROARCurves`: ROAR / KAR curves from tidy sweep tables (accuracy against the fraction
  removed or kept, mean over seeds with their range), the retrained sweep beside the one
  without retraining, estimator toggles, and a "retrain this point" button that runs
  `evaluation.roar` for one estimator, fraction and seed and adds the point.
- `Leaderboard`: the localisation scores of every method of the course on
  `cluttered-digits` (`evaluation.localisation_scores`): the shipped table for all, and the
  cheap methods recomputed live on the canvases picked, side by side, sorted by a score.

Every number drawn comes from `xai_course.evaluation`; the explorers only arrange and draw it.
"""

from __future__ import annotations

import html
import time

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from xai_course import cam, evaluation, gradients, viz
from xai_course.convention import Option

from .base import Explorer, Request, Result, seeded

__all__ = ["ToyROAR", "SanityGallery", "ROARCurves", "Leaderboard", "RANKINGS",
           "SANITY_METHODS", "CONTROLS", "RETRAINABLE", "SCORES", "roar_curves"]

WIDE = {"description_width": "initial"}
# Paul Tol's bright colours
COLOURS = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb",
           "#222222", "#ee7733", "#009988", "#cc3311", "#33bbee", "#ee3377", "#0077bb")
RANKINGS = {"true": COLOURS[1], "random": COLOURS[6], "inverted": COLOURS[0]}
SANITY_METHODS = {"gradient": gradients.gradient, "Guided Backprop": gradients.guided_backprop,
                  "Integrated Gradients": gradients.integrated_gradients,
                  "SmoothGrad": gradients.smoothgrad, "Grad-CAM": cam.grad_cam}
CONTROLS = ("random", "sobel", "oracle")  # `roar`'s built-in estimators
CONTROL_DASH = {"random": "dash", "sobel": "dot", "oracle": "dashdot"}  # told from estimators
# The estimators whose point a click retrains: one pass per canvas, so that explaining the
# 4,500 canvases of `evaluation.sweep_data` takes about half a minute, and the retraining
# another (the others take many minutes: `evaluation.canvas_sweeps` runs them)
RETRAINABLE = (*CONTROLS, "GRAD", "GB", "GRAD-CAM")
SCORES = {"energy in mask": "energy_in_mask", "pointing game": "pointing_game",
          "effective heat ratio": "effective_heat_ratio"}


def _hide_pickers(explorer: Explorer, keep: tuple[str, ...] = ()) -> None:
    """Hide the frame's pickers these explorers do not use (all but `keep`)."""
    pickers = dict(model=explorer.model_picker, data=explorer.data_picker,
                   sample=explorer.sample_picker, target=explorer.target_picker,
                   device=explorer.device_picker, upload=explorer.upload)
    for name, w in pickers.items():
        if name not in keep or (name == "model" and len(w.options) <= 1):
            w.layout.display = "none"


def _band(fig, x, low, high, colour: str, name: str, visible: bool, row=None, col=None):
    """The range between `low` and `high` as a filled band (two traces: its upper edge and
    its lower edge filled up to it)."""
    where = {} if row is None else dict(row=row, col=col)
    fig.add_trace(go.Scatter(x=x, y=high, mode="lines", line=dict(width=0), hoverinfo="skip",
                             showlegend=False, name=f"{name} high", visible=visible), **where)
    fig.add_trace(go.Scatter(x=x, y=low, mode="lines", line=dict(width=0), fill="tonexty",
                             fillcolor=_faint(colour), hoverinfo="skip", showlegend=False,
                             name=f"{name} low", visible=visible), **where)


def _faint(colour: str, alpha: float = 0.18) -> str:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _toggle(name: str, value: bool = True, tooltip: str = "") -> widgets.ToggleButton:
    return widgets.ToggleButton(value=value, description=name, tooltip=tooltip or name,
                                layout=widgets.Layout(width="auto"))


# --------------------------------------------------------------------------- the toy set
class ToyROAR(Explorer):
    """ROAR on the 16-d toy set (see the module's docstring).

    Controls: the seeds (each a fresh train and test set and a fresh random ranking) and the
    examples per set, recomputed; the rankings and retrained / not retrained, redrawn. The
    first picture is one seed. The frame's model and data pickers are hidden: the toy set has
    its own least-squares classifier (the model loaded is not used). Other keyword
    arguments: see `Explorer`.
    """

    def __init__(self, seeds: int = 5, examples: int = 10_000, **kwargs):
        kwargs.setdefault("models", ["cluttered-digits"])
        kwargs.setdefault("n_samples", 1)
        controls = (
            Option("seeds", "int", seeds, "fresh train and test sets (and a fresh random "
                   "ranking) per seed", low=1, high=10),
            Option("examples", "int", examples, "examples in each of the train and test "
                   "sets", low=100, high=20_000, log=True),
        )
        super().__init__(methods=None, controls=controls, overlay=False, **kwargs)
        _hide_pickers(self)
        for name in RANKINGS:
            self.add_control(_toggle(f"{name} ranking"), redraw_only=True, name=name)
        self.add_control(_toggle("retrained"), redraw_only=True, name="retrained")
        self.add_control(_toggle("not retrained"), redraw_only=True, name="not retrained")

    def coarse(self, request: Request) -> Request | None:
        if request.extras["seeds"] <= 1:
            return None
        return request.variant("1 seed", extra={"seeds": 1})

    def compute(self, request: Request) -> Result:
        e = request.extras
        start = time.perf_counter()
        table = evaluation.toy_roar(n_train=e["examples"], n_test=e["examples"],
                                    seeds=e["seeds"])
        ms = (time.perf_counter() - start) * 1000
        curves = table.groupby(["retrained", "ranking", "removed"]).accuracy.agg(
            ["mean", "min", "max"])
        result = Result(request, None, -1, torch.ones(1), ms)
        result.extra.update(table=table, curves=curves)
        return result

    def render(self, result: Result) -> go.Figure:
        curves = result.extra["curves"]
        fig = go.Figure()
        for retrained, dash in ((True, "solid"), (False, "dash")):
            shown = self.value("retrained" if retrained else "not retrained")
            for ranking, colour in RANKINGS.items():
                visible = shown and self.value(ranking)
                c = curves.loc[(retrained, ranking)]
                label = f"{ranking}, {'retrained' if retrained else 'not retrained'}"
                removed = c.index.tolist()
                _band(fig, removed, c["min"].tolist(), c["max"].tolist(), colour, label,
                      visible)
                fig.add_trace(go.Scatter(x=removed, y=c["mean"].tolist(),
                                         mode="lines+markers", name=label, visible=visible,
                                         line=dict(color=colour, dash=dash, width=2)))
        fig.update_xaxes(title_text="features removed (of 16)", range=[-0.3, 16.3], dtick=2)
        fig.update_yaxes(title_text="test accuracy", range=[0.45, 1.0], tickformat=".0%")
        seeds = result.request.extras["seeds"]
        title = (f"ROAR on the toy set: accuracy as features are removed (solid: retrained, "
                 f"dashed: not; mean of {seeds} seed{'s' if seeds > 1 else ''}, band: range)")
        height = viz.HEIGHT[bool(self.presentation)] + 60
        return viz.legend_below(viz.style(fig, title, self.presentation, height=height), rows=2)

    def status(self, result: Result) -> str:
        mean = result.extra["curves"]["mean"]
        full = mean[True, "true", 0]
        return (f"{result.request.extras['seeds']} seeds × {result.request.extras['examples']:,}"
                f" examples in <b>{result.ms:.0f} ms</b> · all 16 features: {full:.1%} · "
                f"retrained, 12 removed: inverted <b>{mean[True, 'inverted', 12]:.1%}</b>, "
                f"true {mean[True, 'true', 12]:.1%} · not retrained, 12 removed: inverted "
                f"<b>{mean[False, 'inverted', 12]:.1%}</b>")


# --------------------------------------------------------------------------- sanity checks
class SanityGallery(Explorer):
    """Cascading randomisation on one canvas (see the module's docstring).

    methods: {name: method} (default `SANITY_METHODS`), each with its declared options.
    Controls: the seed of the re-initialised weights, and whether maps are compared as |a|
    (the paper's figures) or signed. Every layer with parameters is randomised, from the
    output down (`evaluation.randomisable_layers`; the explorer's model has its BatchNorms
    folded into the convolutions, so the layers are the convolutions and the classifier).
    models: cluttered-digits, digits. Other keyword arguments: see `Explorer`.
    """

    def __init__(self, methods=None, **kwargs):
        kwargs.setdefault("models", ["cluttered-digits", "digits"])
        controls = (
            Option("seed", "int", 0, "the random draws of the re-initialised weights", low=0,
                   high=9),
            Option("absolute", "bool", True, "compare |a| summed over channels (the paper's "
                   "figures) rather than the signed sum"),
        )
        super().__init__(methods=methods or dict(SANITY_METHODS), controls=controls,
                         fixed_options={"normalize": None}, **kwargs)
        self.upload.layout.display = "none"

    def compute(self, request: Request) -> Result:
        result = self.predict(request)
        x, method, absolute = request.x, request.method, request.extras["absolute"]
        maps = []

        def recorded(model, inputs, target):
            """The method, with fresh noise each call (the same draws at every step), its
            map recorded as `sanity_check` compares it; the trained model's map is checked
            against the method's reference when asked."""
            options = self.with_generator(method, request.opts, inputs.device)
            a = method(model, inputs, target, **options).detach()
            if not maps:  # the trained model
                result.reference_error = self.reference_error(request, a, model, inputs, target,
                                                              request.opts)
            m = a.abs() if absolute else a
            maps.append((m.sum(1) if m.ndim == 4 else m)[0].cpu())
            return a

        start = time.perf_counter()
        table = evaluation.sanity_check(request.model, recorded, x, result.target,
                                        absolute=absolute,
                                        generator=seeded("cpu", request.extras["seed"]))
        result.ms = (time.perf_counter() - start) * 1000
        result.attribution = maps[0]
        result.extra.update(table=table, maps=maps)
        return result

    def render(self, result: Result) -> go.Figure:
        e, request = result.extra, result.request
        table, maps = e["table"], e["maps"]
        steps = table.groupby("step", sort=True).agg(layer=("layer", "first"),
                                                     spearman=("spearman", "mean"),
                                                     ssim=("ssim", "mean"))
        cols = len(maps)
        layers = [layer.removeprefix("features.") for layer in steps["layer"].iloc[1:]]
        titles = ["trained"] + [viz.wrap(f"{layer} and above", 12) for layer in layers]
        titles.append("similarity to the trained model's map, layer by layer")
        specs = [[{}] * cols, [{"colspan": cols}] + [None] * (cols - 1)]
        fig = make_subplots(rows=2, cols=cols, specs=specs, subplot_titles=titles,
                            row_heights=[0.4, 0.6], vertical_spacing=0.2,
                            horizontal_spacing=0.02)
        image = request.x[0].cpu()
        for k, m in enumerate(maps):
            viz.add_panel(fig, viz.heatmap_overlay(image, m, colorbar=False, **self.overlay()),
                          1, k + 1)
        labels = ["trained"] + [f"+ {layer}" for layer in layers]
        for name, colour in (("spearman", COLOURS[0]), ("ssim", COLOURS[1])):
            fig.add_trace(go.Scatter(x=steps.index.tolist(), y=steps[name].tolist(),
                                     mode="lines+markers", name="Spearman" if name ==
                                     "spearman" else "SSIM", line=dict(color=colour, width=2),
                                     customdata=labels,
                                     hovertemplate="%{customdata}: %{y:.3f}<extra></extra>"),
                          row=2, col=1)
        fig.update_xaxes(tickvals=steps.index.tolist(), ticktext=labels,
                         range=[-0.3, len(steps) - 0.7], title_text="randomised from the top",
                         row=2, col=1)
        fig.update_yaxes(range=[min(-0.1, steps[["spearman", "ssim"]].min().min() - 0.05),
                                1.05], row=2, col=1)
        classes = getattr(request.data, "classes", None)
        title = (f"{request.method_name}, explaining {self.class_name(result.target, classes)}:"
                 f" the map as the model's layers are re-initialised from the top")
        height = viz.ROW_HEIGHT[bool(self.presentation)] + 340  # the maps' row is narrow
        return viz.legend_below(viz.style(fig, title, self.presentation, height=height))

    def status(self, result: Result) -> str:
        table = result.extra["table"]
        last = table[table.step == table.step.max()]
        return (f"{super().status(result)} · {int(table.step.max())} layers randomised · at "
                f"the end: Spearman <b>{last.spearman.mean():.2f}</b>, SSIM "
                f"<b>{last.ssim.mean():.2f}</b>")


# --------------------------------------------------------------------------- ROAR curves
def roar_curves(table):
    """Per estimator and fraction of a tidy ROAR / KAR table (`evaluation.roar`): the mean
    test accuracy over the seeds, its minimum and maximum, and the number of seeds."""
    return (table.groupby(["estimator", "fraction"], sort=False).accuracy
            .agg(mean="mean", low="min", high="max", seeds="count").reset_index())


class ROARCurves(Explorer):
    """ROAR and KAR curves from sweep tables, with a point retrained on demand (see the
    module's docstring).

    roar, kar, no_retrain: tidy tables of `evaluation.roar` (estimator, fraction, seed, keep,
    accuracy, loss) with retraining (ROAR), keeping instead of removing (KAR), and removal
    without retraining; None: the shipped ones (`evaluation.shipped_table`). The left panel
    shows ROAR or KAR ("curves"), the right removal without retraining.

    The button retrains one point: `evaluation.roar` for the picked estimator, fraction and
    seed, on `sweep` ((train, test); None: `evaluation.sweep_data()`) with `train_fn` (None:
    `evaluation.train_canvas_model`), the estimators explaining `model` (None: trained once by
    `train_fn(train, 0)`, as the shipped sweeps did). estimators: name -> method (None:
    `evaluation.course_estimators()`); `retrainable`: those offered (default `RETRAINABLE`,
    the one-pass ones). It runs in the kernel (about a minute; the explorer waits), its
    stages in the progress bar. Other keyword arguments: see `Explorer`.
    """

    def __init__(self, roar=None, kar=None, no_retrain=None, *, sweep=None, train_fn=None,
                 model=None, estimators=None, retrainable=RETRAINABLE, **kwargs):
        kwargs.setdefault("models", ["cluttered-digits"])
        kwargs.setdefault("n_samples", 1)
        self.tables = {
            "ROAR": roar if roar is not None else evaluation.shipped_table("roar-cluttered-digits"),
            "KAR": kar if kar is not None else evaluation.shipped_table("kar-cluttered-digits"),
            "not retrained": no_retrain if no_retrain is not None else evaluation.shipped_table(
                "no-retrain-cluttered-digits"),
        }
        self.estimator_names = list(dict.fromkeys(
            name for table in self.tables.values() for name in table["estimator"]))
        self.fractions = sorted(set(self.tables["ROAR"]["fraction"]))
        self._sweep, self._model = sweep, model
        self.train_fn = train_fn or evaluation.train_canvas_model
        self.estimators = estimators if estimators is not None else \
            evaluation.course_estimators()
        self.added: list[dict] = []  # the points retrained here
        self._ranks: dict[str, dict] = {}
        view = (Option("curves", "choice", "ROAR", "retrained after removing the top "
                       "fraction (ROAR) or after keeping only it (KAR)",
                       choices=("ROAR", "KAR"), expensive=False),)
        super().__init__(methods=None, view_controls=view, overlay=False, **kwargs)
        _hide_pickers(self)
        for name in self.estimator_names:
            self.add_control(_toggle(name, tooltip=f"show {name}"),
                             redraw_only=True, name=f"show {name}")
        offered = [name for name in self.estimator_names
                   if name in retrainable and (name in CONTROLS or name in self.estimators)]
        self.retrain_estimator = widgets.Dropdown(description="retrain", options=offered,
                                                  style=WIDE,
                                                  layout=widgets.Layout(width="auto"))
        self.retrain_fraction = widgets.SelectionSlider(
            description="fraction", options=self.fractions,
            value=self.fractions[len(self.fractions) // 2], style=WIDE,
            layout=widgets.Layout(width="20em"))
        self.retrain_seed = widgets.BoundedIntText(description="seed", value=len(set(
            self.tables["ROAR"]["seed"])), min=0, max=99, style=WIDE,
            layout=widgets.Layout(width="9em"))
        self.button = widgets.Button(description="retrain this point", button_style="primary",
                                     tooltip="remove (or keep) the fraction by the estimator "
                                     "in every train and test canvas, train a new model, test")
        self.progress = widgets.IntProgress(value=0, min=0, max=2,
                                            layout=widgets.Layout(width="12em"))
        self.progress_text = widgets.HTML()
        self.button.on_click(self._on_button)
        self.display_box.children = (*self.display_box.children, widgets.HBox(
            [self.retrain_estimator, self.retrain_fraction, self.retrain_seed, self.button,
             self.progress, self.progress_text],
            layout=widgets.Layout(flex_flow="row wrap", align_items="center")))

    # ----------------------------------------------------------------- compute and draw
    def compute(self, request: Request) -> Result:
        start = time.perf_counter()
        curves = {sweep: roar_curves(table) for sweep, table in self.tables.items()}
        result = Result(request, None, -1, torch.ones(1), (time.perf_counter() - start) * 1000)
        result.extra["curves"] = curves
        return result

    def render(self, result: Result) -> go.Figure:
        curves, left = result.extra["curves"], self.value("curves")
        removed = "kept" if left == "KAR" else "removed"
        titles = (f"{left}: retrained after the top fraction is {removed}",
                  "ROAR's removal, not retrained")
        fig = make_subplots(rows=1, cols=2, subplot_titles=titles, shared_yaxes=True,
                            horizontal_spacing=0.08)
        for col, sweep in ((1, left), (2, "not retrained")):
            c = curves[sweep]
            for k, name in enumerate(self.estimator_names):
                colour = COLOURS[k % len(COLOURS)]
                visible = self.value(f"show {name}")
                one = c[c.estimator == name]
                fraction = one.fraction.tolist()
                _band(fig, fraction, one.low.tolist(), one.high.tolist(), colour,
                      f"{name} {sweep}", visible, row=1, col=col)
                fig.add_trace(go.Scatter(
                    x=fraction, y=one["mean"].tolist(), mode="lines+markers", visible=visible,
                    name=name if col == 1 else f"{name} ({sweep})", showlegend=col == 1,
                    legendgroup=name, line=dict(color=colour, width=2, dash=CONTROL_DASH.get(name)),
                    customdata=one.seeds.tolist(),
                    hovertemplate=f"{html.escape(name)}: %{{y:.1%}} at %{{x}} "
                                  f"(%{{customdata}} seeds)<extra></extra>"), row=1, col=col)
        added = [p for p in self.added if p["sweep"] == left]
        fig.add_trace(go.Scatter(
            x=[p["fraction"] for p in added], y=[p["accuracy"] for p in added],
            mode="markers", name="retrained here",
            marker=dict(symbol="star", size=14, color="#222222"),
            customdata=[f"{p['estimator']}, seed {p['seed']}" for p in added],
            hovertemplate="%{customdata}: %{y:.1%}<extra>retrained here</extra>"), row=1, col=1)
        what = "kept" if left == "KAR" else "removed"
        fig.update_xaxes(title_text=f"fraction {what}", row=1, col=1)
        fig.update_xaxes(title_text="fraction removed", row=1, col=2)
        fig.update_yaxes(title_text="test accuracy", tickformat=".0%", row=1, col=1)
        title = ("ROAR and KAR on cluttered-digits: the accuracy of a model retrained on what "
                 "each estimator leaves (mean over seeds, band: their range)")
        rows = -(-(len(self.estimator_names) + 1) // 6)
        height = viz.HEIGHT[bool(self.presentation)] + 40
        return viz.legend_below(viz.style(fig, title, self.presentation, height=height),
                                rows=rows)

    def status(self, result: Result) -> str:
        roar = result.extra["curves"]["ROAR"]
        top = roar[roar.fraction == roar.fraction.max()].sort_values("mean")
        order = ", ".join(f"{html.escape(n)} {a:.0%}" for n, a in zip(top.estimator, top["mean"]))
        text = f"ROAR at {top.fraction.iloc[0]:g} removed, lowest first: {order}"
        if self.added:
            p = self.added[-1]
            text += (f" · retrained here: {html.escape(p['estimator'])} at {p['fraction']:g} "
                     f"({p['sweep']}, seed {p['seed']}): <b>{p['accuracy']:.1%}</b> in "
                     f"{p['seconds']:.0f} s")
        return text

    # ----------------------------------------------------------------- retraining
    def sweep_data(self):
        """The (train, test) canvases a point is retrained on."""
        if self._sweep is None:
            self._sweep = evaluation.sweep_data()
        return self._sweep

    def explained_model(self):
        """The model the estimators explain: given, or trained once from seed 0."""
        if self._model is None:
            self._model = self.train_fn(self.sweep_data()[0], 0)
        return self._model

    def _on_button(self, button=None) -> None:
        """Retrain the point the pickers name; a failure shows in the error area."""
        try:
            self.retrain(self.retrain_estimator.value, self.retrain_fraction.value,
                         self.retrain_seed.value)
        except Exception as error:  # shown to the user, the explorer stays usable
            self._stage(0, "")
            self.show_error(error)

    def retrain(self, estimator: str, fraction: float, seed: int) -> dict:
        """`evaluation.roar` for one estimator, fraction and seed, ROAR or KAR as the left
        panel shows; the point is added to the figure and returned (sweep, estimator,
        fraction, seed, accuracy, loss, seconds)."""
        sweep = self.value("curves")
        start = time.perf_counter()
        self.button.disabled = True
        try:
            self.clear_error()
            data = self.sweep_data()
            controls = (estimator,) if estimator in CONTROLS else ()
            chosen = {} if controls else {estimator: self.estimators[estimator]}
            model = self.explained_model() if chosen else None
            self._stage(0, f"explaining {len(data[0]) + len(data[1]):,} canvases by "
                           f"{html.escape(estimator)}…")
            if estimator not in self._ranks:
                self._ranks[estimator] = evaluation.rank_features(chosen, data, model,
                                                                  controls=controls,
                                                                  progress=False)
            self._stage(1, f"retraining from seed {seed}…")
            table = evaluation.roar(chosen, data, self.train_fn, fractions=(fraction,),
                                    seeds=(seed,), keep=sweep == "KAR", model=model,
                                    controls=controls, ranks=self._ranks[estimator],
                                    progress=False)
        finally:
            self.button.disabled = False
        row = table.iloc[0]
        point = dict(sweep=sweep, estimator=estimator, fraction=float(fraction), seed=int(seed),
                     accuracy=float(row.accuracy), loss=float(row.loss),
                     seconds=time.perf_counter() - start)
        self.added.append(point)
        self._stage(2, f"done: {point['accuracy']:.1%} in {point['seconds']:.0f} s")
        self.redraw()
        return point

    def _stage(self, value: int, text: str) -> None:
        self.progress.value = value
        self.progress_text.value = text


# --------------------------------------------------------------------------- leaderboard
class Leaderboard(Explorer):
    """The localisation scores of every method of the course (see the module's docstring).

    table: the scores of every method (`evaluation.localisation_scores`; None: the shipped
    `localisation-cluttered-digits`). methods: name -> method (None:
    `evaluation.leaderboard_methods()`); those whose `passes` estimate is at most `cheap`
    are offered live, each a toggle. The live scores are computed on `canvases` test canvases
    from the one picked (the shipped table's canvases are the first ones of the same split).
    The first picture scores one canvas. models: cluttered-digits. Other keyword arguments:
    see `Explorer`.
    """

    def __init__(self, table=None, methods=None, cheap: int = 100, canvases: int = 4,
                 **kwargs):
        kwargs.setdefault("models", ["cluttered-digits"])
        self.table = table if table is not None else evaluation.shipped_table(
            "localisation-cluttered-digits")
        methods = methods if methods is not None else evaluation.leaderboard_methods()
        self.live = {name: m for name, m in methods.items()
                     if getattr(m, "passes", cheap + 1) <= cheap}
        controls = (Option("canvases", "int", canvases, "canvases scored live, from the one "
                           "picked", low=1, high=16),)
        view = (Option("sort by", "choice", "energy in mask", "the score the methods are "
                       "ordered by", choices=tuple(SCORES), expensive=False),)
        super().__init__(methods=None, controls=controls, view_controls=view, overlay=False,
                         **kwargs)
        _hide_pickers(self, keep=("model", "sample"))
        for name in self.live:
            self.add_control(_toggle(name, tooltip=f"score {name} live"), name=f"live {name}")

    def coarse(self, request: Request) -> Request | None:
        if request.extras["canvases"] <= 1:
            return None
        return request.variant("1 canvas", extra={"canvases": 1})

    def compute(self, request: Request) -> Result:
        result = self.predict(request)
        data, first = request.data, request.sample
        canvases = data[first:first + request.extras["canvases"]]
        chosen = {name: m for name, m in self.live.items() if request.extras[f"live {name}"]}
        start = time.perf_counter()
        live = evaluation.localisation_scores(chosen, request.model, canvases, progress=False)
        result.ms = (time.perf_counter() - start) * 1000
        result.extra.update(live=live, first=first, count=len(canvases),
                            area=canvases.mask.float().mean().item())
        return result

    def render(self, result: Result) -> go.Figure:
        e = result.extra
        score = SCORES[self.value("sort by")]
        shipped = self.table.sort_values(score)  # the best on top: last in a bar chart
        order = shipped.method.tolist() + [m for m in e["live"].method if m not in
                                           set(shipped.method)]
        last = e["first"] + e["count"] - 1
        titles = (f"shipped: every method, {int(shipped.n.max())} canvases",
                  viz.wrap(f"live: canvases {e['first']}–{last}", 40))
        fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=titles,
                            horizontal_spacing=0.06)
        for col, (table, colour) in enumerate(((shipped, COLOURS[0]), (e["live"], COLOURS[1])),
                                              1):
            hover = [f"{m}: pointing {p:.2f}, energy {en:.2f}, EHR {h:.2f}, {s * 1000:.0f} ms"
                     for m, p, en, h, s in zip(table.method, table.pointing_game,
                                               table.energy_in_mask,
                                               table.effective_heat_ratio, table.seconds)]
            fig.add_trace(go.Bar(x=table[score].tolist(), y=table.method.tolist(),
                                 orientation="h", marker_color=colour, showlegend=False,
                                 name="shipped" if col == 1 else "live", hovertext=hover,
                                 hoverinfo="text"), row=1, col=col)
            fig.update_xaxes(title_text=self.value("sort by"), range=[0, 1], row=1, col=col)
        fig.update_yaxes(categoryorder="array", categoryarray=order, row=1, col=1)
        title = (f"localisation on cluttered-digits: how much of each map is on the digit, "
                 f"sorted by {self.value('sort by')}")
        height = 22 * len(order) + 180
        return viz.style(fig, title, self.presentation, height=height)

    def status(self, result: Result) -> str:
        live, score = result.extra["live"], SCORES[self.value("sort by")]
        if live.empty:
            best = "no method live: switch one on"
        else:
            top = live.sort_values(score).iloc[-1]
            best = (f"best live by {self.value('sort by')}: <b>{html.escape(top.method)}</b> "
                    f"{top[score]:.2f}")
        return (f"{super().status(result)} · {len(live)} methods on {result.extra['count']} "
                f"canvases in <b>{result.ms / 1000:.1f} s</b> · {best} · the digits cover "
                f"{result.extra['area']:.0%} of these canvases: a map spread evenly has that "
                f"much of its energy in the mask")
