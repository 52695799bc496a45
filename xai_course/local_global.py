"""Chapter 01: local vs global explanations.

A *local* explanation answers "why this output for this input?"; a *global* one "what does
the model respond to at all?". What is explained here are the features of one test input;
the influence of training examples and the concepts a model has learned are the two other
things one can explain (chapter 00 points to where they are studied).

The chapter's first experiments use the real methods of later chapters, so that later
chapters extend rather than replace them. Two answer question (1) of the course, *if this
feature changed, how would the output change?*, one with a real change and one with an
infinitesimal one:

- hide one patch and watch the class probability (`patch_effect`, built on
  `perturbation.occlude`), then slide it everywhere (`perturbation.occlusion`);
- the gradient of the class score as a saliency map (`gradients.gradient`);

and one takes a first global look:

- a class's preferred input by plain gradient ascent (`activation_max.gradient_ascent`).

This module adds the measurements the chapter's demos need: how the probability moves when
one patch is hidden, how much of an explanation falls on a region (the digit, or the
shortcut mark), and the shortcut model's report card.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from . import zoo
from .convention import check_model_and_inputs, check_target, unchanged
from .perturbation import occlude

__all__ = ["patch_effect", "mass_inside", "ShortcutReport", "shortcut_report"]


def patch_effect(model: nn.Module, inputs: torch.Tensor, target, top: int, left: int,
                 size: int, baseline: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probability before and after hiding one size x size patch at (top, left).

    Zeiler & Fergus's experiment by hand: p_c(x) and p_c(x with the patch := baseline), each
    (N,). A big drop says the patch mattered for this output (a local, counterfactual
    answer to question (1): "what if this part were not there?"). baseline: the fill, 0
    (black) by default as `perturbation.occlusion`'s (Zeiler & Fergus's grey was the mean
    pixel of their mean-subtracted inputs, i.e. their inputs' 0).
    """
    inputs = check_model_and_inputs(model, inputs, ndim=4)
    height, width = inputs.shape[-2:]
    if not (0 < size <= min(height, width)):
        raise ValueError(f"size must be in 1..{min(height, width)}, got {size}")
    if not (0 <= top <= height - size and 0 <= left <= width - size):
        raise ValueError(f"a {size}x{size} patch at (top={top}, left={left}) leaves the "
                         f"{height}x{width} image; top must be in 0..{height - size}, left in "
                         f"0..{width - size}")
    hidden = occlude(inputs, (0, top, left), (inputs.shape[1], size, size), baseline)
    with unchanged(model), torch.no_grad():
        both = model(torch.cat([inputs, hidden])).softmax(dim=1)
        t = check_target(target, len(inputs), both.shape[1], inputs.device)
        p = both.gather(1, t.repeat(2)[:, None])[:, 0]
    return p[: len(inputs)], p[len(inputs):]


def mass_inside(attribution: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Share of an explanation's absolute mass that falls inside a region, per example.

        share = sum_{i in region} |a_i| / sum_i |a_i|

    attribution: (N, C, H, W) or (N, H, W) (channels summed as |.|); region: (N, H, W) 0/1.
    A share well above the region's area says the explanation points at the region. That
    is plausibility (the map agrees with where we think the evidence is), not faithfulness
    (the model uses what the map shows): a map can point at the digit whatever the model
    does. Chapter 09 measures faithfulness.
    """
    a = attribution.abs()
    if a.ndim == 4:
        a = a.sum(1)
    if a.shape != region.shape:
        raise ValueError(f"attribution maps {tuple(a.shape)} and region {tuple(region.shape)} "
                         f"must have the same (N, H, W) shape")
    total = a.flatten(1).sum(1).clamp_min(1e-12)
    return (a * region.to(a.dtype)).flatten(1).sum(1) / total


@dataclasses.dataclass
class ShortcutReport:
    """How a model does when its shortcut is there and when it is moved."""

    accuracy_with_mark: float
    accuracy_mark_moved: float
    mark_share: float  # mean share of gradient mass on the mark
    digit_share: float  # ... and on the digit
    mark_area: float  # mean share of the canvas that the mark covers
    digit_area: float

    @property
    def drop(self) -> float:
        return self.accuracy_with_mark - self.accuracy_mark_moved


def shortcut_report(model: nn.Module, data, moved, mark: torch.Tensor,
                    method) -> ShortcutReport:
    """Accuracy with the mark in place and moved, and where `method`'s explanation looks.

    data / moved: zoo Datasets of the same canvases (`shortcut-digits` splits "test" and
    "moved"); data.mask is the digit; mark: (N, H, W) 0/1, the mark's pixels on `data`
    (`zoo.digits.shortcut_mark_mask`). method: an attribution method, e.g. gradients.gradient.
    """
    device = next(model.parameters()).device
    attribution = method(model, data.x.to(device), data.y.to(device))
    digit, mark = data.mask.to(device), mark.to(device)
    return ShortcutReport(
        accuracy_with_mark=zoo.accuracy(model, data),
        accuracy_mark_moved=zoo.accuracy(model, moved),
        mark_share=mass_inside(attribution, mark).mean().item(),
        digit_share=mass_inside(attribution, digit).mean().item(),
        mark_area=mark.float().mean().item(),
        digit_area=digit.float().mean().item(),
    )
