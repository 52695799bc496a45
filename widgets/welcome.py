"""Chapter 00 explorer: a tour of the zoo. Pick a model, a sample, see what it predicts.

No explanation yet: the point is to learn the explorer's controls (model, data, sample,
device, your own image) on the models and data that ship with the course.
"""

from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from xai_course import viz

from .base import Explorer, Result

__all__ = ["ZooTour", "top_classes"]


def top_classes(probabilities: torch.Tensor, classes, k: int = 5) -> list[tuple[str, float]]:
    """The k most probable classes as (name, probability), most probable first."""
    p, index = probabilities.topk(min(k, len(probabilities)))
    names = [classes[i] if classes else str(i) for i in index.tolist()]
    return list(zip(names, p.tolist()))


class ZooTour(Explorer):
    """The input and the model's five most probable classes, for any zoo model."""

    def __init__(self, **kwargs):
        super().__init__(methods=None, **kwargs)
        self.display_box.layout.display = "none"  # nothing to overlay yet

    def render(self, result: Result) -> go.Figure:
        request = result.request
        classes = getattr(request.data, "classes", None)
        top = top_classes(result.probabilities, classes)
        if hasattr(request.model, "embedding"):
            where, tokens = self.token_positions(request)
            text = viz.token_figure(tokens, torch.zeros(len(tokens)), title=" ".join(tokens))
            fig = make_subplots(rows=2, cols=1, row_heights=[0.3, 0.7], vertical_spacing=0.15)
            fig.add_trace(text.data[0], row=1, col=1)
            fig.update_xaxes(visible=False, row=1, col=1)
            fig.update_yaxes(visible=False, row=1, col=1)
            bars_at = dict(row=2, col=1)
        else:
            fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55],
                                horizontal_spacing=0.12)
            image = viz.heatmap_overlay(request.x[0].cpu(), colorbar=False)
            for trace in image.data:
                fig.add_trace(trace, row=1, col=1)
            fig.update_xaxes(visible=False, row=1, col=1)
            fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", row=1, col=1)
            bars_at = dict(row=1, col=2)
        fig.add_trace(go.Bar(x=[p for _, p in top][::-1], y=[n for n, _ in top][::-1],
                             orientation="h", marker_color="#4477aa",
                             text=[f"{100 * p:.1f}%" for _, p in top][::-1],
                             textposition="auto"), **bars_at)
        fig.update_xaxes(range=[0, 1], title_text="probability", **bars_at)
        title = "what the model sees, and what it predicts"
        return viz.style(fig, title, self.presentation)
