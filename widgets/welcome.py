"""Chapter 00 explorer: a tour of the zoo. Pick a model, a sample, see what it predicts.

No explanation yet: the point is to learn the explorer's controls (model, data, sample,
device, your own image) on the models and data that ship with the course.
"""

from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from xai_course import viz, zoo

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
        super().__init__(methods=None, overlay=False, **kwargs)  # nothing to overlay yet

    def render(self, result: Result) -> go.Figure:
        request = result.request
        classes = getattr(request.data, "classes", None)
        top = top_classes(result.probabilities, classes)
        bars = {"probability": [p for _, p in top]}
        title = "what the model sees, and what it predicts"
        if zoo.is_text_model(request.model):
            where, tokens = self.token_positions(request)
            words = viz.token_figure(tokens, torch.zeros(len(tokens)))
            lines = len(words.data[0].z)
            text_px, bars_px = 48 * lines, 60 * len(top)
            fig = make_subplots(rows=2, cols=1, vertical_spacing=0.08,
                                row_heights=[text_px, bars_px])
            viz.add_panel(fig, go.Figure(words.data[:1]), 1, 1, image=False)
            fig.update_yaxes(autorange="reversed", row=1, col=1)
            viz.probability_bars(fig, [n for n, _ in top], bars, 2, 1)
            return viz.style(fig, title, self.presentation, height=text_px + bars_px + 150)
        fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55],
                            horizontal_spacing=0.06)
        viz.add_panel(fig, viz.heatmap_overlay(request.x[0].cpu(), colorbar=False), 1, 1)
        viz.probability_bars(fig, [n for n, _ in top], bars, 1, 2)
        return viz.style(fig, title, self.presentation)
