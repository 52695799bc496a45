"""Chapter 03 explorers: class activation maps.

- `CamExplorer`: pick a layer (the dropdown shows each layer's map size), a target class and
  a method (CAM, Grad-CAM, Grad-CAM++, Score-CAM); three views of one computation:
    "map"                  the class activation map over the image;
    "how it is made"       the channel maps A_k with the largest terms, each with its weight
                           alpha_k, and their weighted sum: the formula happening;
    "coarse vs upsampled"  the raw h x w map, drawn as blocks, and bilinearly upsampled.
  Score-CAM shows a progress bar: it is one forward pass per channel.
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

from .base import Explorer, Request, Result

__all__ = ["CamExplorer", "CamLayers", "METHODS", "WEIGHT_NAMES", "IMAGE_MODELS"]

METHODS = {"CAM": cam.cam, "Grad-CAM": cam.grad_cam, "Grad-CAM++": cam.grad_cam_pp,
           "Score-CAM": cam.score_cam}
WEIGHT_NAMES = {  # what alpha_k is, per method
    cam.cam: "classifier weight w_k / hw",
    cam.grad_cam: "mean gradient",
    cam.grad_cam_pp: "Grad-CAM++ weight",
    cam.score_cam: "Score-CAM score (softmax)",
    cam.score_cam_topk: "Score-CAM score (top-k)",
}
# Image models only: the text model has no feature maps (the notebook shows the error).
IMAGE_MODELS = ["cluttered-digits", "digits", "shortcut-digits", "resnet50-imagenet",
                "vgg16-imagenet"]
DISPLAY_OPTIONS = ("relu", "upsample", "normalize")
VIEWS = ["map", "how it is made", "coarse vs upsampled"]


def _layer_options(layers: list[cam.Layer]) -> list[tuple[str, str]]:
    return [(str(layer), layer.name) for layer in layers if layer.height * layer.width > 1]


class _LayersMixin:
    """The layer list of the model on screen, refreshed when the model changes."""

    def _layers(self, model_name: str) -> list[cam.Layer]:
        key = model_name
        if key not in self._layer_cache:
            model = self._model(model_name, self.device_picker.value)
            self._layer_cache[key] = cam.conv_layers(model, self._input_shape(model_name))
        return self._layer_cache[key]

    def _on_model(self, change=None) -> None:
        """Load the model (the frame falls back if its weights are missing), list its layers."""
        with self._holding():
            super()._on_model(change)
            self._refresh_layers()
        self.update()

    def _refresh_layers(self) -> None:
        pass


class CamExplorer(_LayersMixin, Explorer):
    """CAM, Grad-CAM, Grad-CAM++ and Score-CAM at a layer of your choice, and how each is made.

    methods: {name: method} from `xai_course.cam` (default: the four of the chapter).
    Other keyword arguments: see `Explorer` (models default to the zoo's image models).
    """

    def __init__(self, methods=None, **kwargs):
        kwargs.setdefault("models", list(IMAGE_MODELS))
        self._layer_cache: dict[str, list[cam.Layer]] = {}
        self.view = widgets.ToggleButtons(description="view", options=VIEWS,
                                          style={"description_width": "initial"})
        self.top_k = widgets.IntSlider(description="channels shown", value=6, min=1, max=10,
                                       style={"description_width": "initial"})
        self.progress = widgets.IntProgress(description="Score-CAM", value=0, min=0, max=1,
                                            layout=widgets.Layout(display="none"))
        super().__init__(methods=methods or dict(METHODS), **kwargs)
        self.display_box.children = (*self.display_box.children, self.view, self.top_k)
        self.widget.children = (*self.widget.children, self.progress)
        for w in (self.view, self.top_k):
            self._observe(w, self.redraw)

    def extra_controls(self) -> dict[str, widgets.Widget]:
        return {"layer": widgets.Dropdown(description="layer", options=[("", "")],
                                          style={"description_width": "initial"},
                                          layout=widgets.Layout(width="26em"))}

    def _refresh_layers(self) -> None:
        """The layer dropdown of the model now picked; keep the layer if it has it."""
        layers = self._layers(self.model_picker.value)
        dropdown = self.extra_widgets["layer"]
        options = _layer_options(layers)
        previous = dropdown.value
        dropdown.options = options
        names = [name for _, name in options]
        dropdown.value = previous if previous in names else cam.default_layer(
            layers, self._model(self.model_picker.value, self.device_picker.value)).name

    def _progress(self, done: int, total: int) -> None:
        self.progress.max = total
        self.progress.value = done

    # ----------------------------------------------------------------- compute and draw
    def compute(self, request: Request) -> Result:
        model, x, method = request.model, request.x, request.method
        with torch.no_grad():
            probabilities = torch.softmax(model(x).float(), dim=1)[0].cpu()
        target = self.resolve_target(request, probabilities)
        layer = request.extras["layer"] or None
        opts = request.opts
        display = {k: opts[k] for k in DISPLAY_OPTIONS if k in opts}
        weight_options = {k: v for k, v in opts.items() if k not in DISPLAY_OPTIONS}
        scored = method.masked_passes  # Score-CAM: C forward passes, show progress
        if scored:
            weight_options["progress"] = self._progress
            self.progress.value, self.progress.layout.display = 0, None
        else:
            self.progress.layout.display = "none"
        start = time.perf_counter()
        maps = cam.layer_maps(model, x, target, layer, gradients=method.uses_gradients)
        weights = method.channel_weights(model, x, maps, **weight_options)
        attribution = cam.weighted_sum(weights, maps, **display)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        ms = (time.perf_counter() - start) * 1000
        error = None
        if request.check and getattr(method, "reference", None) is not None:
            ref = method.reference(model, x, target, maps.layer, **opts)
            error = (attribution - ref).abs().max().item()
        coarse = cam.weighted_sum(weights, maps, relu=False, upsample=None)
        extra = dict(layer=maps.layer, activations=maps.activations[0].cpu(),
                     weights=weights[0].cpu(), coarse=coarse[0].cpu(),
                     relu=display.get("relu", True))
        return Result(request, attribution[0].detach().cpu(), target, probabilities, ms, error,
                      extra)

    def _overlay_map(self, result: Result) -> torch.Tensor:
        """The map at the image's size: a raw (upsample=None) map is drawn as blocks."""
        a = result.attribution
        size = tuple(result.request.x.shape[2:])
        if tuple(a.shape) != size:
            a = cam.upsample_map(a[None], size, "nearest")[0]
        return a

    def _normalize(self) -> str | None:
        return None if self.normalize.value == "none" else self.normalize.value

    def render(self, result: Result) -> go.Figure:
        view = self.view.value
        if view == "how it is made":
            return self._render_terms(result)
        if view == "coarse vs upsampled":
            return self._render_coarse(result)
        request = result.request
        classes = getattr(request.data, "classes", None)
        h, w = result.extra["coarse"].shape
        title = (f"{request.method_name} at {result.extra['layer']} ({h}x{w}) · target "
                 f"{self.class_name(result.target, classes)}")
        return viz.heatmap_overlay(request.x[0].cpu(), self._overlay_map(result),
                                   normalize=self._normalize(), opacity=self.opacity.value,
                                   title=title, presentation=self.presentation)

    def _render_terms(self, result: Result) -> go.Figure:
        """Top row: the k maps with the largest terms |alpha_k| mean(A_k), titled with
        alpha_k. Bottom row: sum_k alpha_k A_k over all K maps; after ReLU; on the image."""
        e, request = result.extra, result.request
        A, alpha = e["activations"], e["weights"]
        k = min(self.top_k.value, len(alpha))
        terms = (alpha * A.mean(dim=(1, 2))).abs()
        top = terms.topk(k).indices.tolist()
        cols = max(k, 3)
        name = WEIGHT_NAMES.get(request.method, "weight")
        titles = [f"A_{c} · α={alpha[c].item():.3g}" for c in top] + [""] * (cols - k)
        titles += [f"Σ α_k A_k, all {len(alpha)}",
                   "after ReLU" if e["relu"] else "(no ReLU)", "upsampled, on the image"]
        fig = make_subplots(rows=2, cols=cols, subplot_titles=titles, vertical_spacing=0.12,
                            horizontal_spacing=0.02)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        for i, c in enumerate(top):
            viz.add_panel(fig, viz.heatmap_overlay(None, A[c], colorbar=False), 1, i + 1, cols)
        coarse = e["coarse"]
        viz.add_panel(fig, viz.heatmap_overlay(None, coarse, colorbar=False), 2, 1, cols)
        viz.add_panel(fig, viz.heatmap_overlay(None, coarse.clamp(min=0) if e["relu"] else coarse,
                                               colorbar=False), 2, 2, cols)
        viz.add_panel(fig, viz.heatmap_overlay(request.x[0].cpu(), self._overlay_map(result),
                                               normalize=self._normalize(),
                                               opacity=self.opacity.value, colorbar=False),
                      2, 3, cols)
        title = (f"{request.method_name} at {e['layer']}: the {k} largest of {len(alpha)} terms "
                 f"α_k A_k; α_k = {name}")
        return viz.style(fig, title, self.presentation,
                         height=int(viz.HEIGHT[bool(self.presentation)] * 1.1))

    def _render_coarse(self, result: Result) -> go.Figure:
        e, request = result.extra, result.request
        coarse = e["coarse"].clamp(min=0) if e["relu"] else e["coarse"]
        h, w = coarse.shape
        size = tuple(request.x.shape[2:])
        blocks = cam.upsample_map(coarse[None], size, "nearest")[0]
        smooth = cam.upsample_map(coarse[None], size, "bilinear")[0]
        fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.03, subplot_titles=(
            f"the map as computed: {h}x{w}", f"{h}x{w} cells on the {size[0]}x{size[1]} image",
            "bilinearly upsampled"))
        viz.add_panel(fig, viz.heatmap_overlay(None, coarse, colorbar=False), 1, 1, 3)
        for col, m in ((2, blocks), (3, smooth)):
            overlay = viz.heatmap_overlay(request.x[0].cpu(), m, normalize=self._normalize(),
                                          opacity=self.opacity.value, colorbar=False)
            viz.add_panel(fig, overlay, 1, col, 3)
        return viz.style(fig, f"{request.method_name} at {e['layer']}", self.presentation)

    def status(self, result: Result) -> str:
        A = result.extra["activations"]
        layer = (f"layer {html.escape(result.extra['layer'])}: {A.shape[0]} maps of "
                 f"{A.shape[1]}x{A.shape[2]}")
        return f"{super().status(result)} · {layer}"


class CamLayers(_LayersMixin, Explorer):
    """One method at several depths: the last layer of each resolution, early to late."""

    def __init__(self, methods=None, **kwargs):
        kwargs.setdefault("models", list(IMAGE_MODELS))
        self._layer_cache: dict[str, list[cam.Layer]] = {}
        methods = methods or {k: v for k, v in METHODS.items() if k != "CAM"}
        super().__init__(methods=methods, **kwargs)

    def depths(self, model_name: str) -> list[str]:
        """The last layer of each map resolution (larger than 1 x 1), early to late."""
        last: dict[tuple[int, int], str] = {}
        for layer in self._layers(model_name):
            if layer.height * layer.width > 1:
                last.pop((layer.height, layer.width), None)
                last[(layer.height, layer.width)] = layer.name
        return list(last.values())

    def compute(self, request: Request) -> Result:
        model, x = request.model, request.x
        with torch.no_grad():
            probabilities = torch.softmax(model(x).float(), dim=1)[0].cpu()
        target = self.resolve_target(request, probabilities)
        maps = {}
        start = time.perf_counter()
        for name in self.depths(request.model_name):
            maps[name] = request.method(model, x, target, layer=name, **request.opts)[0].cpu()
        ms = (time.perf_counter() - start) * 1000
        return Result(request, maps[name], target, probabilities, ms, extra=dict(maps=maps))

    def render(self, result: Result) -> go.Figure:
        layers = {layer.name: layer for layer in self._layers(result.request.model_name)}
        maps = {}
        for name, m in result.extra["maps"].items():
            layer = layers[name]
            if tuple(m.shape) != tuple(result.request.x.shape[2:]):
                m = cam.upsample_map(m[None], result.request.x.shape[2:], "nearest")[0]
            maps[f"{name} ({layer.height}x{layer.width})"] = m
        classes = getattr(result.request.data, "classes", None)
        return viz.method_grid(
            result.request.x[0].cpu(), maps, opacity=self.opacity.value,
            normalize=None if self.normalize.value == "none" else self.normalize.value,
            title=f"{result.request.method_name} from early to late layers · target "
                  f"{self.class_name(result.target, classes)}",
            presentation=self.presentation)
