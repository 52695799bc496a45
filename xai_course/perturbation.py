"""Chapter 04: perturbation. Explain by changing the input and watching the output.

Question (2) of the course: *if the output changed, which features caused it?* The simplest
answer hides a part of the input and measures how much the class score falls.

- `occlude`: one grey patch at one place (the experiment a student does by hand in 01).
- `occlusion`: the patch slid over the whole input, every position's score drop painted
  back onto the pixels it covered (Zeiler & Fergus 2014); Captum `Occlusion`'s numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .convention import (
    Option,
    check_model_and_inputs,
    check_target,
    forward,
    options,
    reference,
    unchanged,
)

__all__ = ["occlude", "occlusion", "window_positions"]


def _select(scores: torch.Tensor, t: torch.Tensor, output: str) -> torch.Tensor:
    if output == "probability":
        scores = scores.softmax(dim=1)
    return scores.gather(1, t[:, None])[:, 0]


def _as_tuple(value, ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * ndim
    value = tuple(value)
    if len(value) != ndim or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(f"{name} must be a positive int or {ndim} positive ints (one per "
                         f"dimension after the batch, e.g. (C, h, w) for images), got {value}")
    return value


def window_positions(shape: Sequence[int], window: Sequence[int],
                     stride: Sequence[int]) -> list[tuple[int, ...]]:
    """Start indices of every window: ceil((D - w) / s) + 1 positions per dimension.

    As in Captum, a last window that would run past the edge is cut off at the edge.
    """
    ranges = []
    for size, w, s in zip(shape, window, stride):
        if w > size:
            raise ValueError(f"window {tuple(window)} is larger than the input {tuple(shape)}")
        if s > w and size > w:
            raise ValueError(f"stride {tuple(stride)} is larger than the window {tuple(window)}: "
                             f"some features would never be occluded")
        ranges.append(range(0, (math.ceil((size - w) / s) + 1) * s, s))
    return list(itertools.product(*ranges))


def _window_slices(start: tuple[int, ...], window: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(b, b + w) for b, w in zip(start, window))


def occlude(inputs: torch.Tensor, start: Sequence[int], window: Sequence[int],
            baseline: float | torch.Tensor = 0.0) -> torch.Tensor:
    """A copy of `inputs` with one window, starting at `start`, replaced by `baseline`.

    start and window index the dimensions after the batch, e.g. (0, top, left) and
    (C, h, w) for a grey patch of h x w pixels over all channels.
    """
    occluded = inputs.clone()
    region = (slice(None),) + _window_slices(tuple(start), tuple(window))
    fill = torch.as_tensor(baseline, dtype=inputs.dtype, device=inputs.device)
    occluded[region] = fill.expand_as(inputs)[region]
    return occluded


def _captum_occlusion(model, inputs, target, window=None, stride=None, baseline=0.0,
                      output="logit", batch_size=None):
    from captum.attr import Occlusion

    forward = model if output == "logit" else (lambda x: model(x).softmax(dim=1))
    window = _as_tuple(window, inputs.ndim - 1, "window")
    stride = _as_tuple(stride if stride is not None else 1, inputs.ndim - 1, "stride")
    return Occlusion(forward).attribute(
        inputs, sliding_window_shapes=window, strides=stride, baselines=baseline,
        target=target, perturbations_per_eval=batch_size or 1,
    )


@reference(_captum_occlusion, "Captum Occlusion")
@options(
    Option("window", "int", 8, "side of the square patch, in pixels", low=1, high=64),
    Option("stride", "int", 4, "step between patch positions, in pixels", low=1, high=64),
    Option("baseline", "float", 0.0, "value the patch is filled with", low=0.0, high=1.0),
    Option("output", "choice", "logit", "score whose drop is measured",
           choices=("logit", "probability")),
)
def occlusion(model: nn.Module, inputs: torch.Tensor, target, window=8, stride=None,
              baseline: float | torch.Tensor = 0.0, output: str = "logit",
              batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
    """Occlusion: slide a patch over the input; each feature gets the mean score drop.

        attr_i = mean over windows W containing i of [ S_c(x) - S_c(x with W := baseline) ]

    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.

    window, stride: an int (a square h = w patch over all channels of an image) or one int
    per dimension after the batch, as Captum's `sliding_window_shapes` / `strides`, e.g.
    (3, 15, 15) and (3, 8, 8). stride=None: the window's own size (patches tile the input).
    A window count of ceil((D - w) / s) + 1 positions per dimension, the last cut at the edge.
    baseline: the fill value (a number or a tensor broadcastable to the inputs).
    output: "logit" (Captum's numbers) or "probability" (the softmax of the class).
    batch_size: occluded copies per forward pass (Captum's perturbations_per_eval times N);
    None chooses 64 copies. Cost: one forward pass per window position, batched.
    """
    inputs = check_model_and_inputs(model, inputs)
    n, feature_shape = inputs.shape[0], tuple(inputs.shape[1:])
    if isinstance(window, int) and inputs.ndim == 4:
        window = (feature_shape[0], window, window)
    if stride is None:
        stride = window
    if isinstance(stride, int) and inputs.ndim == 4:
        stride = (feature_shape[0], stride, stride)
    window = _as_tuple(window, len(feature_shape), "window")
    stride = _as_tuple(stride, len(feature_shape), "stride")
    positions = window_positions(feature_shape, window, stride)
    if batch_size is None:
        batch_size = 64
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    per_pass = max(1, batch_size // n)  # window positions evaluated per forward pass

    if output not in ("logit", "probability"):
        raise ValueError(f"output must be 'logit' or 'probability', got {output!r}")
    fill = torch.as_tensor(baseline, dtype=inputs.dtype, device=inputs.device).expand_as(inputs)

    total = torch.zeros_like(inputs)
    count = torch.zeros(feature_shape, dtype=inputs.dtype, device=inputs.device)
    with unchanged(model), torch.no_grad():
        scores = forward(model, inputs)
        t = check_target(target, n, scores.shape[1], inputs.device)
        unoccluded = _select(scores, t, output)
        chunks = range(0, len(positions), per_pass)
        for first in tqdm(chunks, desc="occlusion", disable=not progress, leave=False):
            chunk = positions[first:first + per_pass]
            batch = inputs.repeat(len(chunk), *[1] * len(feature_shape))  # (len(chunk)*n, ...)
            for k, start in enumerate(chunk):
                region = _window_slices(start, window)
                batch[(slice(k * n, (k + 1) * n),) + region] = fill[(slice(None),) + region]
            occluded = _select(model(batch), t.repeat(len(chunk)), output)
            drop = (unoccluded.repeat(len(chunk)) - occluded).view(len(chunk), n)
            for k, start in enumerate(chunk):
                region = _window_slices(start, window)
                total[(slice(None),) + region] += drop[k].view(n, *[1] * len(feature_shape))
                count[region] += 1
    return total / count
