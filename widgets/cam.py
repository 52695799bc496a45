"""Chapter 03 explorers: class activation maps.

- `CamExplorer`: pick a layer (the dropdown shows each layer's map size), a target class and
  a method (CAM, Grad-CAM, Grad-CAM++, Score-CAM); three views of one computation:
    "map"                  the class activation map over the image;
    "how it is made"       the channel maps A_k with the largest terms, each with its weight
                           alpha_k, and their weighted sum: the formula happening;
    "coarse vs upsampled"  the raw h x w map, drawn as blocks, and bilinearly upsampled.
  Score-CAM costs one forward pass per channel: a first picture scores only 8 channels
  (`cam.score_cam_topk`), then the full map follows.
- `CamLayers`: one method at an early, middle and late layer side by side, so the trade
  between resolution (early) and class-specific meaning (late) is seen at once.
"""

from __future__ import annotations

import html
import time

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from xai_course import cam, viz
from xai_course.convention import Option

from .base import IMAGE_MODELS, Explorer, Request, Result

__all__ = ["CamExplorer", "CamLayers", "METHODS", "WEIGHT_NAMES"]

METHODS = {"CAM": cam.cam, "Grad-CAM": cam.grad_cam, "Grad-CAM++": cam.grad_cam_pp,
           "Score-CAM": cam.score_cam}
WEIGHT_NAMES = {  # what alpha_k is, per method
    cam.cam: "classifier weight w_k / hw",
    cam.grad_cam: "mean gradient",
    cam.grad_cam_pp: "Grad-CAM++ weight",
    cam.score_cam: "Score-CAM score (softmax)",
    cam.score_cam_topk: "Score-CAM score (top-k)",
}
MAP_OPTIONS = ("relu", "upsample", "normalize")  # how the weighted sum becomes a map
# The display's "normalise" control scales the map: the methods' own `normalize` stays None.
FIXED = {"normalize": None}
VIEWS = ("map", "how it is made", "coarse vs upsampled")
COARSE_CHANNELS = 8  # Score-CAM's first picture scores this many channels


def _coarse_score_cam(request: Request) -> Request | None:
    """Score-CAM's first picture: only the 8 most active channels scored (score_cam_topk)."""
    if request.method is not cam.score_cam:
        return None
    return request.variant(f"{COARSE_CHANNELS} channels scored", method=cam.score_cam_topk,
                           options=dict(k=COARSE_CHANNELS, rank="activation"))


class _LayerList:
    """The conv layers of each model (by name), listed once."""

    def __init__(self, explorer: Explorer):
        self.explorer, self.known = explorer, {}

    def __call__(self, model_name: str) -> list[cam.Layer]:
        if model_name not in self.known:
            e = self.explorer
            self.known[model_name] = cam.conv_layers(e.model(model_name),
                                                     e.input_shape(model_name))
        return self.known[model_name]


class CamExplorer(Explorer):
    """CAM, Grad-CAM, Grad-CAM++ and Score-CAM at a layer of your choice, and how each is made.

    methods: {name: method} from `xai_course.cam` (default: the four of the chapter).
    Other keyword arguments: see `Explorer` (models default to the zoo's image models).
    """

    def __init__(self, methods=None, **kwargs):
        kwargs.setdefault("models", list(IMAGE_MODELS))
        view = (Option("view", "choice", "map", "what to draw", choices=VIEWS,
                       expensive=False),
                Option("channels shown", "int", 6, "maps A_k drawn in 'how it is made'",
                       low=1, high=10, expensive=False))
        super().__init__(methods=methods or dict(METHODS), view_controls=view,
                         fixed_options=FIXED, **kwargs)
        # the layers are known once a model is loaded: a dropdown filled by `model_changed`
        self.add_control(widgets.Dropdown(description="layer", style={"description_width":
                                                                      "initial"},
                                          layout=widgets.Layout(width="auto")), name="layer")
        self.layers = _LayerList(self)

    def model_changed(self, model_name: str) -> None:
        """The layer dropdown of the model now picked; keep the layer if it has it."""
        layers = self.layers(model_name)
        dropdown = self.extra_widgets["layer"]
        options = [(str(layer), layer.name) for layer in layers
                   if layer.height * layer.width > 1]
        previous = dropdown.value
        dropdown.options = options
        names = [name for _, name in options]
        dropdown.value = previous if previous in names else cam.default_layer(
            layers, self.model(model_name)).name

    def coarse(self, request: Request) -> Request | None:
        return _coarse_score_cam(request)

    # ----------------------------------------------------------------- compute and draw
    def compute(self, request: Request) -> Result:
        result = self.predict(request)
        model, x, method, target = request.model, request.x, request.method, result.target
        layer = request.extras["layer"] or None
        opts = request.opts
        display = {k: opts[k] for k in MAP_OPTIONS if k in opts}
        weight_options = {k: v for k, v in opts.items() if k not in MAP_OPTIONS}
        start = time.perf_counter()
        maps = cam.layer_maps(model, x, target, layer, gradients=method.uses_gradients)
        weights = method.channel_weights(model, x, maps, **weight_options)
        attribution = cam.weighted_sum(weights, maps, **display)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        result.ms = (time.perf_counter() - start) * 1000
        result.reference_error = self.reference_error(request, attribution, model, x, target,
                                                      {**opts, "layer": maps.layer})
        coarse = cam.weighted_sum(weights, maps, relu=False, upsample=None)
        result.attribution = attribution[0].detach().cpu()
        result.extra.update(layer=maps.layer, activations=maps.activations[0].cpu(),
                            weights=weights[0].cpu(), coarse=coarse[0].cpu(),
                            relu=display.get("relu", True))
        return result

    @staticmethod
    def overlay_map(result: Result) -> torch.Tensor:
        """The map at the image's size: a raw (upsample=None) map is drawn as blocks."""
        a = result.attribution
        size = tuple(result.request.x.shape[2:])
        if tuple(a.shape) != size:
            a = cam.upsample_map(a[None], size, "nearest")[0]
        return a

    def render(self, result: Result) -> go.Figure:
        view = self.value("view")
        if view == "how it is made":
            return self.render_terms(result)
        if view == "coarse vs upsampled":
            return self.render_coarse(result)
        request = result.request
        classes = getattr(request.data, "classes", None)
        h, w = result.extra["coarse"].shape
        title = (f"{request.method_name} at {result.extra['layer']} ({h}x{w}) · target "
                 f"{self.class_name(result.target, classes)}")
        return viz.heatmap_overlay(request.x[0].cpu(), self.overlay_map(result), title=title,
                                   presentation=self.presentation, **self.overlay())

    def render_terms(self, result: Result) -> go.Figure:
        """Top row: the k maps with the largest terms |alpha_k| mean(A_k), titled with
        alpha_k. Bottom row: sum_k alpha_k A_k over all K maps; after ReLU; on the image.
        The grid has 3k columns: a top panel spans 3, a bottom one k."""
        e, request = result.extra, result.request
        A, alpha = e["activations"], e["weights"]
        k = min(self.value("channels shown"), len(alpha))
        terms = (alpha * A.mean(dim=(1, 2))).abs()
        top = terms.topk(k).indices.tolist()
        name = WEIGHT_NAMES.get(request.method, "weight")
        titles = [f"A_{c}<br>α={alpha[c].item():.3g}" for c in top]
        titles += [f"Σ α_k A_k, all {len(alpha)}",
                   "after ReLU" if e["relu"] else "(no ReLU)", "upsampled, on the image"]
        specs = [[{"colspan": 3}, None, None] * k,
                 ([{"colspan": k}] + [None] * (k - 1)) * 3]
        fig = make_subplots(rows=2, cols=3 * k, specs=specs, subplot_titles=titles,
                            row_heights=[0.4, 0.6], vertical_spacing=0.14,
                            horizontal_spacing=min(0.02, 1 / (3 * k)))
        for i, c in enumerate(top):
            viz.add_panel(fig, viz.heatmap_overlay(None, A[c], colorbar=False), 1, 3 * i + 1)
        coarse = e["coarse"]
        relu = coarse.clamp(min=0) if e["relu"] else coarse
        viz.add_panel(fig, viz.heatmap_overlay(None, coarse, colorbar=False), 2, 1)
        viz.add_panel(fig, viz.heatmap_overlay(None, relu, colorbar=False), 2, k + 1)
        viz.add_panel(fig, viz.heatmap_overlay(request.x[0].cpu(), self.overlay_map(result),
                                               colorbar=False, **self.overlay()), 2, 2 * k + 1)
        title = (f"{request.method_name} at {e['layer']}: the {k} largest of {len(alpha)} terms "
                 f"α_k A_k; α_k = {name}")
        rows = viz.ROW_HEIGHT[bool(self.presentation)]
        return viz.style(fig, title, self.presentation, height=int(1.8 * rows) + 170)

    def render_coarse(self, result: Result) -> go.Figure:
        e, request = result.extra, result.request
        coarse = e["coarse"].clamp(min=0) if e["relu"] else e["coarse"]
        h, w = coarse.shape
        size = tuple(request.x.shape[2:])
        blocks = cam.upsample_map(coarse[None], size, "nearest")[0]
        smooth = cam.upsample_map(coarse[None], size, "bilinear")[0]
        fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.03, subplot_titles=(
            f"the map as computed: {h}x{w}",
            viz.wrap(f"{h}x{w} cells on the {size[0]}x{size[1]} image", 30),
            "bilinearly upsampled"))
        viz.add_panel(fig, viz.heatmap_overlay(None, coarse, colorbar=False), 1, 1)
        for col, m in ((2, blocks), (3, smooth)):
            viz.add_panel(fig, viz.heatmap_overlay(request.x[0].cpu(), m, colorbar=False,
                                                   **self.overlay()), 1, col)
        return viz.style(fig, f"{request.method_name} at {e['layer']}", self.presentation)

    def status(self, result: Result) -> str:
        A = result.extra["activations"]
        layer = (f"layer {html.escape(result.extra['layer'])}: {A.shape[0]} maps of "
                 f"{A.shape[1]}x{A.shape[2]}")
        return f"{super().status(result)} · {layer}"


class CamLayers(Explorer):
    """One method at several depths: the last layer of each resolution, early to late."""

    def __init__(self, methods=None, **kwargs):
        kwargs.setdefault("models", list(IMAGE_MODELS))
        methods = methods or {k: v for k, v in METHODS.items() if k != "CAM"}
        super().__init__(methods=methods, fixed_options=FIXED, **kwargs)
        self.layers = _LayerList(self)

    def depths(self, model_name: str) -> list[str]:
        """The last layer of each map resolution (larger than 1 x 1), early to late."""
        last: dict[tuple[int, int], str] = {}
        for layer in self.layers(model_name):
            if layer.height * layer.width > 1:
                last.pop((layer.height, layer.width), None)
                last[(layer.height, layer.width)] = layer.name
        return list(last.values())

    def coarse(self, request: Request) -> Request | None:
        return _coarse_score_cam(request)

    def compute(self, request: Request) -> Result:
        result = self.predict(request)
        maps = {}
        start = time.perf_counter()
        for name in self.depths(request.model_name):
            maps[name] = request.method(request.model, request.x, result.target, layer=name,
                                        **request.opts)[0].cpu()
        result.ms = (time.perf_counter() - start) * 1000
        errors = [self.reference_error(request, m, request.model, request.x, result.target,
                                       {**request.opts, "layer": name})
                  for name, m in maps.items()]
        result.reference_error = None if None in errors else max(errors)  # over the layers
        result.attribution = maps[name]
        result.extra["maps"] = maps
        return result

    def render(self, result: Result) -> go.Figure:
        layers = {layer.name: layer for layer in self.layers(result.request.model_name)}
        maps = {}
        for name, m in result.extra["maps"].items():
            layer = layers[name]
            if tuple(m.shape) != tuple(result.request.x.shape[2:]):
                m = cam.upsample_map(m[None], result.request.x.shape[2:], "nearest")[0]
            maps[f"{name} ({layer.height}x{layer.width})"] = m
        classes = getattr(result.request.data, "classes", None)
        return viz.method_grid(
            result.request.x[0].cpu(), maps, **self.overlay(),
            title=f"{result.request.method_name} from early to late layers · target "
                  f"{self.class_name(result.target, classes)}",
            presentation=self.presentation)
