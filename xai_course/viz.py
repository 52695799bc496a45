"""Turning attributions into plotly figures, for the notebooks and the explorers alike.

    heatmap_overlay(image, attribution)   an image with its attribution map on top
    method_grid(image, {"name": map})     several methods side by side
    token_figure(tokens, scores)          words coloured by their score
    line_figure(x, {"name": ys})          curves (convergence, deletion, ROAR ...)
    normalize_map(attr, mode)             the normalisation they use

Colours follow one rule: a signed map (it has negative values) is drawn on a diverging
scale centred at 0 (red: pushes the score up, blue: pushes it down), an unsigned map on a
sequential one. Over an image, the diverging scale is transparent at 0, so that the image shows
where the map is near 0 and the strong values stay saturated.

Subplot figures keep every image at the data's aspect ratio (`add_panel`: y anchored to x,
the domain shrinks to fit), keep tick labels inside the figure (`automargin`), and give each
row of panels a fixed height, so that panels and titles do not overlap at any width.

Every function returns a plain `go.Figure`; the explorers show it in their `FigureWidget`.
`presentation=True` makes the fonts and the figure large for a projector.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

__all__ = [
    "DIVERGING",
    "SEQUENTIAL",
    "normalize_map",
    "heatmap_overlay",
    "add_panel",
    "probability_bars",
    "blank_figure",
    "legend_below",
    "wrap",
    "method_grid",
    "token_figure",
    "line_figure",
    "layout",
    "style",
]

DIVERGING = "RdBu_r"  # signed maps: blue < 0 < red
# the same over an image: transparent at 0, so that the image shows through
OVERLAY_DIVERGING = [[0.0, "rgba(5,48,97,1)"], [0.25, "rgba(67,147,195,0.85)"],
                     [0.5, "rgba(247,247,247,0)"], [0.75, "rgba(214,96,77,0.85)"],
                     [1.0, "rgba(103,0,31,1)"]]
# Inferno over an image: transparent at 0, opaque where the map is large
OVERLAY_SEQUENTIAL = [[0.0, "rgba(0,0,4,0)"], [0.1, "rgba(27,12,65,0.15)"],
                      [0.2, "rgba(74,12,107,0.35)"], [0.3, "rgba(120,28,109,0.55)"],
                      [0.4, "rgba(165,44,96,0.7)"], [0.5, "rgba(207,68,70,0.8)"],
                      [0.6, "rgba(237,105,37,0.9)"], [0.8, "rgba(247,209,61,0.95)"],
                      [1.0, "rgba(252,255,164,1)"]]
OPACITY = 0.8  # of a map over an image (its colour scales are transparent at 0)
SEQUENTIAL = "Inferno"  # unsigned maps: dark = 0, bright = large
FONT_SIZE = {False: 13, True: 22}
MODEBAR_REMOVED = ["pan", "select", "lasso", "zoomin", "zoomout", "autoscale"]
# Characters of a title line that stay clear of the mode bar in a figure 700 px wide (plotly's
# width where the page gives it none); longer titles are wrapped.
TITLE_CHARS = {False: 56, True: 32}
HEIGHT = {False: 420, True: 720}
ROW_HEIGHT = {False: 260, True: 420}  # one row of image panels in a subplot figure
# A light look like plotly's "plotly_white", kept small: the full template is slow to apply.
_GRID = dict(gridcolor="#EBF0F8", zerolinecolor="#EBF0F8", automargin=True)
TEMPLATE = go.layout.Template(layout=dict(
    paper_bgcolor="white", plot_bgcolor="white", font=dict(color="#2a3f5f"),
    xaxis=_GRID, yaxis=_GRID,
))


def _numpy(a, name: str) -> np.ndarray:
    """A float64 numpy copy of a tensor / array / nested list."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def layout(title: str | None = None, presentation: bool = False, height: int | None = None,
           **more) -> dict:
    """The course's look as a layout dict: light template, title (wrapped to TITLE_CHARS),
    font and height."""
    size = FONT_SIZE[bool(presentation)]
    if title:
        title = "<br>".join(wrap(part, TITLE_CHARS[bool(presentation)])
                            for part in title.split("<br>"))
    extra_lines = title.count("<br>") if title else 0
    return dict(
        template=TEMPLATE,
        # on the left: the mode bar (zoom, pan, download) shows at the top right
        # plotly lifts a title of several lines, anchored at the top, by one line (measured
        # in Chromium): the pad puts its first line back where a one-line title starts
        title=dict(text=title, x=0, xref="container", xanchor="left", y=1, yref="container",
                   yanchor="top", pad=dict(t=8 + (size if extra_lines else 0), l=10))
        if title else None,
        font=dict(size=size),
        # a wrapped title's lines are added to the height: the panels keep their size
        height=(height or HEIGHT[bool(presentation)]) + int(extra_lines * size * 1.8),
        margin=dict(l=10, r=10, t=(60 + int(extra_lines * size * 1.8)) if title else 30, b=10),
        # a short mode bar: download, zoom, reset (the title on the left stays clear of it)
        modebar=dict(remove=MODEBAR_REMOVED),
        **more,
    )


def style(fig: go.Figure, title: str | None = None, presentation: bool = False,
          height: int | None = None) -> go.Figure:
    """Apply `layout(...)` to a figure made elsewhere (e.g. by plotly express or
    `make_subplots`). The top margin makes room for the title and for the subplot titles of
    the top row (one line each, 20 px at the normal font size), so that they never meet."""
    fig.update_layout(layout(title, presentation, height))
    titles = [a for a in fig.layout.annotations if a.yref == "paper" and a.y is not None
              and a.yanchor == "bottom" and a.text and not a.showarrow]
    for a in titles:  # subplot titles: a few pixels above their panel, not touching it
        a.yshift = 4
    top = [a.text for a in titles if a.y >= 0.999]
    if top:
        size = FONT_SIZE[bool(presentation)] * 1.6
        lines = max(text.count("<br>") + 1 for text in top)
        title_lines = (fig.layout.title.text or "").count("<br>") + 1 if title else 0
        # without a title, room above the subplot titles for the mode bar (about 26 px)
        fig.update_layout(margin_t=int((size * 1.5 * title_lines if title else 20)
                                       + size * lines + 14))
    return fig


# --------------------------------------------------------------------------- maps
def normalize_map(attr, mode: str | None = "maxabs", percentile: float = 99.0) -> np.ndarray:
    """Scale an attribution map for display.

    mode=None: unchanged. "maxabs": a / max|a|, so the map lies in [-1, 1] (an all-zero map
    stays zero). "percentile": a / q clipped to [-1, 1], q the `percentile`-th percentile of
    |a|, so a few extreme pixels do not wash out the rest.
    """
    a = _numpy(attr, "attribution")
    if mode is None:
        return a
    if mode == "maxabs":
        scale = np.abs(a).max(initial=0.0)
    elif mode == "percentile":
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        scale = np.percentile(np.abs(a), percentile) if a.size else 0.0
    else:
        raise ValueError(f"normalize must be 'maxabs', 'percentile' or None, got {mode!r}")
    if scale == 0:
        return np.zeros_like(a)
    return np.clip(a / scale, -1.0, 1.0)


def _image_rgb(image) -> np.ndarray:
    """(C, H, W) or (H, W) in [0, 1] (a leading batch of one is allowed) -> uint8 (H, W, 3)."""
    a = _numpy(image, "image")
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        raise ValueError(f"image must have shape (C, H, W) with C = 1 or 3, or (H, W); got "
                         f"{tuple(np.shape(image))}")
    if a.shape[0] == 1:
        a = np.repeat(a, 3, axis=0)
    return (np.clip(a, 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)


def _map_2d(attribution, shape: tuple[int, int] | None) -> np.ndarray:
    """(H, W), (C, H, W) or (1, C, H, W) -> (H, W), summed over channels; checks the size."""
    a = _numpy(attribution, "attribution")
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:
        a = a.sum(axis=0)
    if a.ndim != 2:
        raise ValueError(f"attribution must have shape (H, W) or (C, H, W), got "
                         f"{tuple(np.shape(attribution))}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"attribution is {a.shape[0]}x{a.shape[1]} but the image is "
                         f"{shape[0]}x{shape[1]}; upsample the map to the input size first")
    return a


def _map_traces(image, attribution, signed, normalize, percentile, opacity, colorbar):
    """The image trace and the attribution heatmap trace for one panel."""
    traces, shape = [], None
    if image is not None:
        rgb = _image_rgb(image)
        shape = rgb.shape[:2]
        traces.append(go.Image(z=rgb, hoverinfo="skip", name="image"))
    if attribution is not None:
        raw = _map_2d(attribution, shape)
        z = normalize_map(raw, normalize, percentile)
        if signed is None:
            signed = bool((raw < 0).any())
        if signed:
            scale = dict(colorscale=DIVERGING if image is None else OVERLAY_DIVERGING, zmid=0.0)
            if normalize is not None:  # in [-1, 1]: a colour means the same in every panel
                scale.update(zmin=-1.0, zmax=1.0)
        else:
            scale = dict(colorscale=SEQUENTIAL if image is None else OVERLAY_SEQUENTIAL,
                         zmin=0.0, zmax=float(z.max()) or 1.0)
        traces.append(go.Heatmap(
            z=z, **scale, opacity=opacity if image is not None else 1.0, showscale=colorbar,
            name="attribution", hovertemplate="x %{x}, y %{y}: %{z:.3g}<extra></extra>",
        ))
    return traces


def _image_axes(anchor: str = "x") -> tuple[dict, dict]:
    """Image-style x and y axes: y grows downwards, square pixels, no ticks."""
    return (dict(visible=False, constrain="domain"),
            dict(visible=False, autorange="reversed", scaleanchor=anchor, constrain="domain"))


def heatmap_overlay(image=None, attribution=None, signed: bool | None = None,
                    normalize: str | None = "maxabs", percentile: float = 99.0,
                    opacity: float = OPACITY, title: str | None = None, colorbar: bool = True,
                    presentation: bool = False, height: int | None = None) -> go.Figure:
    """An image with an attribution map drawn over it.

    image: (C, H, W) or (H, W) in [0, 1], grey or RGB (None: the map alone).
    attribution: (H, W), or (C, H, W) summed over channels, at the image's resolution.
    signed: diverging scale centred at 0 (True) or sequential (False); None decides from
    the data (signed if any value is negative). normalize / percentile: see `normalize_map`.
    """
    if image is None and attribution is None:
        raise ValueError("give an image, an attribution, or both")
    traces = _map_traces(image, attribution, signed, normalize, percentile, opacity, colorbar)
    xaxis, yaxis = _image_axes()
    return go.Figure(traces, layout(title, presentation, height, xaxis=xaxis, yaxis=yaxis))


def add_panel(fig: go.Figure, panel: go.Figure, row: int, col: int, image: bool = True) -> None:
    """Copy a figure's traces into cell (row, col) of a `make_subplots` figure (any grid,
    also with colspans). image=True: image-style axes (hidden, y downwards, square pixels:
    y is anchored to the cell's own x axis and the domain shrinks to the data's aspect ratio).
    image=False: the axes are hidden, the traces drawn as they are (a tree, token cells)."""
    for trace in panel.data:
        fig.add_trace(trace, row=row, col=col)
    if not image:
        fig.update_xaxes(visible=False, row=row, col=col)
        fig.update_yaxes(visible=False, row=row, col=col)
        return
    anchor = fig.get_subplot(row, col).xaxis.plotly_name.replace("axis", "")
    xaxis, yaxis = _image_axes(anchor)
    fig.update_xaxes(xaxis, row=row, col=col)
    fig.update_yaxes(yaxis, row=row, col=col)


def probability_bars(fig: go.Figure, names: Sequence[str], series: Mapping[str, Sequence[float]],
                     row: int, col: int, colours: Sequence[str] = ("#4477aa", "#ee6677")) -> None:
    """Horizontal probability bars in cell (row, col), most probable on top, each class's name
    written above its bars inside the cell (long ImageNet names never run under the panel to
    the left, as y tick labels would). series: {legend name: one probability per class}."""
    k, n = len(names), len(series)
    width = 0.5 / n
    for j, (label, values) in enumerate(series.items()):
        values = [float(v) for v in values]
        fig.add_trace(go.Bar(x=values, y=[i + 0.1 + (j - (n - 1) / 2) * width for i in range(k)],
                             width=width, orientation="h", name=label, showlegend=n > 1,
                             marker_color=colours[j % len(colours)],
                             hovertemplate="%{x:.1%}<extra>" + html.escape(label) + "</extra>"),
                      row=row, col=col)
    first = [float(v) for v in next(iter(series.values()))]
    fig.add_trace(go.Scatter(
        x=[0.0] * k, y=[i - 0.3 for i in range(k)], mode="text", textposition="middle right",
        text=[f"{html.escape(str(name))}  {100 * p:.1f}%" for name, p in zip(names, first)],
        hoverinfo="skip", showlegend=False, cliponaxis=False), row=row, col=col)
    fig.update_xaxes(range=[0, 1], title_text="probability", row=row, col=col)
    fig.update_yaxes(visible=False, range=[k - 0.45, -0.75], row=row, col=col)


def legend_below(fig: go.Figure, rows: int = 1) -> go.Figure:
    """Put the legend in a row under the figure (`rows` lines of it), so that it takes no
    width from the panels, with room in the bottom margin for it and the x axes' titles."""
    return fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", y=0,
                                         yanchor="bottom", yref="container"),
                             margin_b=70 + 24 * rows)


def blank_figure(message: str, presentation: bool = False, height: int | None = None) -> go.Figure:
    """An empty figure whose title says why it is empty (an explorer after an error)."""
    fig = go.Figure(layout=layout(html.escape(message), presentation, height))
    fig.update_layout(title_font_color="#b00020")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def wrap(text: str, width: int = 28) -> str:
    """Break a title into lines of about `width` characters (plotly's <br>), at spaces."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "<br>".join(lines + [line])


def method_grid(image, maps: Mapping[str, object], signed: bool | None = None,
                normalize: str | None = "maxabs", percentile: float = 99.0,
                opacity: float = OPACITY, cols: int | None = None, title: str | None = None,
                presentation: bool = False, height: int | None = None) -> go.Figure:
    """Several attribution maps of one image side by side, one titled panel per method.

    maps: {method name: map}, each map as in `heatmap_overlay`. Each panel is normalised on
    its own (compare patterns, not magnitudes, across methods). cols: panels per row
    (default: all in one row up to 4).
    """
    if not maps:
        raise ValueError("maps is empty: give at least one {name: attribution}")
    cols = cols or min(len(maps), 4)
    rows = -(-len(maps) // cols)
    lines = max(wrap(name, 90 // cols).count("<br>") + 1 for name in maps)
    per_row = ROW_HEIGHT[bool(presentation)] + 20 * lines
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[wrap(n, 90 // cols) for n in maps],
                        horizontal_spacing=0.03,
                        vertical_spacing=min(0.3, (26 * lines + 10) / (per_row * rows)))
    for i, attribution in enumerate(maps.values()):
        row, col = i // cols + 1, i % cols + 1
        add_panel(fig, go.Figure(_map_traces(image, attribution, signed, normalize, percentile,
                                             opacity, colorbar=False)), row, col)
    for i in range(len(maps), rows * cols):  # empty cells of the last row: no axes
        fig.update_xaxes(visible=False, row=i // cols + 1, col=i % cols + 1)
        fig.update_yaxes(visible=False, row=i // cols + 1, col=i % cols + 1)
    return style(fig, title, presentation, height or int(per_row * rows) + 70)


# --------------------------------------------------------------------------- text
def token_figure(tokens: Sequence[str], scores, relevant=None, title: str | None = None,
                 per_row: int = 12, normalize: str | None = "maxabs",
                 presentation: bool = False, height: int | None = None) -> go.Figure:
    """Words as cells coloured by a signed score (red: for the target class, blue: against).

    relevant: 0/1 per token, the tokens known to decide the label; they are printed in bold
    and marked with a triangle under the word. Long texts wrap every `per_row` tokens.
    """
    s = _numpy(scores, "scores").reshape(-1)
    if len(tokens) != len(s):
        raise ValueError(f"{len(tokens)} tokens but {len(s)} scores; give one score per token")
    rel = np.zeros(len(s), bool) if relevant is None else _numpy(relevant, "relevant") > 0
    if rel.shape != s.shape:
        raise ValueError(f"relevant has {rel.size} entries but there are {len(s)} tokens")
    rows = max(1, -(-len(s) // per_row))
    z = np.full((rows, per_row), np.nan)
    text = np.full((rows, per_row), "", dtype=object)
    raw = np.full((rows, per_row), np.nan)
    z.flat[: len(s)] = normalize_map(s, normalize)
    raw.flat[: len(s)] = s
    words = [html.escape(str(t), quote=False) for t in tokens]  # "<3" is a word, not a tag
    text.flat[: len(s)] = [f"<b>{w}</b>" if r else w for w, r in zip(words, rel, strict=True)]
    bounds = dict(zmin=-1.0, zmax=1.0) if normalize is not None else {}  # all-zero: still white
    heat = go.Heatmap(
        z=z, text=text, customdata=raw, texttemplate="%{text}", colorscale=DIVERGING, zmid=0.0,
        **bounds,  # no text colour: plotly picks dark or light against each cell's colour
        xgap=3, ygap=3, showscale=False, name="score",
        hovertemplate="%{text}: %{customdata:.3g}<extra></extra>",
    )
    where = np.flatnonzero(rel)
    marks = go.Scatter(
        x=where % per_row, y=where // per_row + 0.42, mode="markers", name="known relevant",
        marker=dict(symbol="triangle-up", size=9, color="black"), hoverinfo="skip",
        showlegend=bool(len(where)),
    )
    row_height = 70 if presentation else 48
    return go.Figure([heat, marks], layout(
        title, presentation, height or 90 + row_height * rows, xaxis=dict(visible=False),
        yaxis=dict(visible=False, autorange="reversed"),
        legend=dict(orientation="h", y=-0.02, yanchor="top"),
    ))


# --------------------------------------------------------------------------- curves
def line_figure(x, ys: Mapping[str, object], xlabel: str = "", ylabel: str = "",
                title: str | None = None, presentation: bool = False,
                height: int | None = None) -> go.Figure:
    """One line per entry of `ys` ({name: values}) against the shared `x`."""
    xs = _numpy(x, "x").reshape(-1)
    traces = []
    for name, values in ys.items():
        v = _numpy(values, name).reshape(-1)
        if v.shape != xs.shape:
            raise ValueError(f"{name!r} has {v.size} values but x has {xs.size}")
        traces.append(go.Scatter(x=xs, y=v, mode="lines+markers", name=name))
    return go.Figure(traces, layout(title, presentation, height, xaxis=dict(title=xlabel),
                                    yaxis=dict(title=ylabel)))
