"""Chapter 04: perturbation. Explain by changing the input for real and watching the output.

Both counterfactual questions of the course (chapter 01) are asked here, with real changes
of the input and nothing but the model's output.

Question (1), *if this feature changed, how would the output change?*: remove a part of the
input and measure how far the class score falls. The gradient (chapter 02) answers the same
question for a change too small to see; occlusion answers it for a real removal.

- `occlude`: one patch at one place (the experiment a student does by hand in 01).
- `occlusion`: the patch slid over the whole input, every position's score drop painted
  back onto the pixels it covered (Zeiler & Fergus 2014); Captum `Occlusion`'s numbers.
  The fill (`baseline`) is part of the question, "compared with what?". Its default is 0,
  black: Captum's default, and on the course's canvases close to their dark background, so
  a hidden patch removes strokes without drawing a new shape. Zeiler & Fergus's grey square
  was the same idea for their inputs: the mean pixel, i.e. 0 after mean subtraction.

Question (2), *if the output changed, which features caused it?*: fix the change of the
output first (the class score destroyed or kept; or another class d overtaking c,
f_c < f_d) and search for the change of the input, a mask, that causes it:

- `meaningful_perturbation`: the smallest and smoothest deletion that destroys the score
  (Fong & Vedaldi 2017); `perturb` (what a deleted pixel becomes) and `total_variation`
  (the smoothness term) are its parts.
- `extremal_perturbation`: fix the mask's area and find the region of that size that keeps
  the most score (Fong, Patrick & Vedaldi 2019), with smooth masks by construction
  (`smooth_mask`) and a graded blur (`blur_pyramid`, `apply_pyramid`); checked against
  TorchRay.

`count_passes`: what each explanation costs, in forward (and backward) passes, counted.

The optimisations run on a batch of N images at once (N masks, N independent losses) and,
as every method of the course, leave the model exactly as they found it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .convention import (
    Option,
    check_model_and_inputs,
    check_positive_int,
    check_target,
    forward,
    options,
    reference,
    rows_per_pass,
    unchanged,
)
from .images import gaussian_blur

__all__ = [
    "occlude",
    "occlusion",
    "window_positions",
    "window_shapes",
    "meaningful_perturbation",
    "extremal_perturbation",
    "History",
    "perturb",
    "total_variation",
    "smooth_mask",
    "blur_pyramid",
    "apply_pyramid",
    "count_passes",
    "Passes",
    "PERTURBATIONS",
]


def _select(scores: torch.Tensor, t: torch.Tensor, output: str) -> torch.Tensor:
    if output == "probability":
        scores = scores.softmax(dim=1)
    return scores.gather(1, t[:, None])[:, 0]


def _as_tuple(value, ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (check_positive_int(value, name),) * ndim
    value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(value) != ndim or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                     for v in value):
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


def window_shapes(inputs: torch.Tensor, window, stride=None) -> tuple[tuple, tuple]:
    """Occlusion's window and stride as one int per dimension after the batch (Captum's
    `sliding_window_shapes` and `strides`): an int w on images (N, C, H, W) is a w x w patch
    over all channels, (C, w, w); stride=None is the window itself (patches tile the input)."""
    images = inputs.ndim == 4
    if images and isinstance(window, int) and not isinstance(window, bool):
        window = (inputs.shape[1], check_positive_int(window, "window"), window)
    window = _as_tuple(window, inputs.ndim - 1, "window")
    if stride is None:
        stride = window
    if images and isinstance(stride, int) and not isinstance(stride, bool):
        stride = (inputs.shape[1], check_positive_int(stride, "stride"), stride)
    return window, _as_tuple(stride, inputs.ndim - 1, "stride")


def occlude(inputs: torch.Tensor, start: Sequence[int], window: Sequence[int],
            baseline: float | torch.Tensor = 0.0) -> torch.Tensor:
    """A copy of `inputs` with one window, starting at `start`, replaced by `baseline`.

    start and window index the dimensions after the batch, e.g. (0, top, left) and
    (C, h, w) for a patch of h x w pixels over all channels.
    """
    occluded = inputs.clone()
    region = (slice(None),) + _window_slices(tuple(start), tuple(window))
    fill = torch.as_tensor(baseline, dtype=inputs.dtype, device=inputs.device)
    occluded[region] = fill.expand_as(inputs)[region]
    return occluded


@reference("captum_occlusion", "Captum Occlusion")
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
    baseline: the fill value (a number or a tensor broadcastable to the inputs); 0 (black)
    by default, as Captum. The fill decides what "removed" means and changes the map:
    chapter 04's notebook measures black, grey, the mean colour and a blur on the canvases.
    output: "logit" (Captum's numbers) or "probability" (the softmax of the class).
    batch_size: occluded copies per forward pass (Captum's perturbations_per_eval times N);
    None: `convention.rows_per_pass` without gradients (8 copies of a 224 x 224 image, 64 of a
    small one). Cost: one forward pass per window position and image, batched.
    """
    inputs = check_model_and_inputs(model, inputs)
    n, feature_shape = inputs.shape[0], tuple(inputs.shape[1:])
    window, stride = window_shapes(inputs, window, stride)
    positions = window_positions(feature_shape, window, stride)
    if batch_size is None:
        batch_size = rows_per_pass(inputs, backward=False)
    check_positive_int(batch_size, "batch_size")
    per_pass = max(1, batch_size // n)  # window positions evaluated per forward pass

    if output not in ("logit", "probability"):
        raise ValueError(f"output must be 'logit' or 'probability', got {output!r}")
    fill = torch.as_tensor(baseline, dtype=inputs.dtype, device=inputs.device).expand_as(inputs)

    total = torch.zeros_like(inputs)
    count = torch.zeros(feature_shape, dtype=inputs.dtype, device=inputs.device)
    # one buffer of per_pass copies of the batch, (per_pass, N, ...); each chunk refills it
    copies = torch.empty((min(per_pass, len(positions)), *inputs.shape), dtype=inputs.dtype,
                         device=inputs.device)
    with unchanged(model), torch.inference_mode():  # no autograd: forward passes only
        scores = forward(model, inputs)
        t = check_target(target, n, scores.shape[1], inputs.device)
        unoccluded = _select(scores, t, output)
        chunks = range(0, len(positions), per_pass)
        for first in tqdm(chunks, desc="occlusion", disable=not progress, leave=False):
            chunk = positions[first:first + per_pass]
            batch = copies[:len(chunk)]
            batch.copy_(inputs.expand_as(batch))
            for k, start in enumerate(chunk):
                region = _window_slices(start, window)
                batch[(k, slice(None)) + region] = fill[(slice(None),) + region]
            occluded = _select(forward(model, batch.flatten(0, 1)),
                               t.repeat(len(chunk)), output)
            drop = unoccluded - occluded.view(len(chunk), n)  # (copies, N)
            for k, start in enumerate(chunk):
                region = _window_slices(start, window)
                total[(slice(None),) + region] += drop[k].view(n, *[1] * len(feature_shape))
                count[region] += 1
    return total / count  # computed outside inference mode: an ordinary tensor



# --------------------------------------------------------------------------- optimised masks
PERTURBATIONS = ("blur", "constant", "noise")


@dataclasses.dataclass
class History:
    """How a mask optimisation went, for the explorer's playback.

    steps: the recorded step numbers. masks: (T, N, h, w) the low-resolution mask at those
    steps (T = len(steps)). score, l1, tv, area, total: (S, N) each loss term at every step
    (S = steps run; a term the method does not have is all zeros).
    """

    steps: list[int]
    masks: torch.Tensor
    score: torch.Tensor
    l1: torch.Tensor
    tv: torch.Tensor
    area: torch.Tensor
    total: torch.Tensor


def _history(snapshots: list[tuple[int, torch.Tensor]], terms: dict[str, list]) -> History:
    stack = {name: torch.stack(values) if values else torch.zeros(0)
             for name, values in terms.items()}
    zeros = torch.zeros_like(stack["total"])
    return History(steps=[s for s, _ in snapshots],
                   masks=torch.stack([m for _, m in snapshots]),
                   score=stack["score"], l1=stack.get("l1", zeros), tv=stack.get("tv", zeros),
                   area=stack.get("area", zeros), total=stack["total"])


def perturb(x: torch.Tensor, perturbation: str, sigma: float = 10.0,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """p(x), what a deleted pixel becomes (Fong & Vedaldi 2017, section 3):

        "blur"      x blurred by a Gaussian of std sigma pixels
        "constant"  each image's mean colour
        "noise"     x + eta, eta ~ N(0, sigma^2 / 100^2) per pixel (sigma=10: std 0.1 on a
                    [0, 1] image), drawn once with `generator`
    """
    if perturbation == "blur":
        return gaussian_blur(x, sigma)
    if perturbation == "constant":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    if perturbation == "noise":
        eta = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return x + eta * sigma / 100
    raise ValueError(f"perturbation must be one of {list(PERTURBATIONS)}, got {perturbation!r}")


def total_variation(m: torch.Tensor, beta: float = 3.0) -> torch.Tensor:
    """TV_beta(m) per mask of m (N, 1, h, w): mean |m(u+1,v) - m(u,v)|^beta plus the same
    along v (the author's PyTorch port; the paper sums (dx^2 + dy^2)^(beta/2))."""
    dy = (m[:, :, 1:, :] - m[:, :, :-1, :]).abs().pow(beta).mean(dim=(1, 2, 3))
    dx = (m[:, :, :, 1:] - m[:, :, :, :-1]).abs().pow(beta).mean(dim=(1, 2, 3))
    return dx + dy


def _check_images(model, inputs) -> torch.Tensor:
    inputs = check_model_and_inputs(model, inputs)
    if inputs.ndim != 4:
        raise ValueError(f"mask optimisation needs images (N, C, H, W), got shape "
                         f"{tuple(inputs.shape)}")
    return inputs


def _check_positive(**values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")


@options(
    Option("perturbation", "choice", "blur", "what a deleted pixel becomes",
           choices=PERTURBATIONS),
    Option("l1", "float", 0.05, "weight of the deleted area |1 - m|", low=0.0, high=1.0),
    Option("tv", "float", 0.2, "weight of the mask's total variation (smoothness)", low=0.0,
           high=2.0),
    Option("mask_size", "int", 16, "side of the optimised mask, in cells", low=2, high=64),
    Option("steps", "int", 150, "optimisation steps", low=10, high=500),
    Option("lr", "float", 0.1, "Adam's learning rate", low=0.01, high=0.5),
)
def meaningful_perturbation(model: nn.Module, inputs: torch.Tensor, target,
                            perturbation: str = "blur", l1: float = 0.05, tv: float = 0.2,
                            tv_beta: float = 3.0, mask_size: int = 16, steps: int = 150,
                            lr: float = 0.1, sigma: float = 10.0, output: str = "probability",
                            generator: torch.Generator | None = None, history: bool = False,
                            record_every: int = 5, progress: bool = False):
    """Meaningful Perturbation: the smallest, smoothest deletion that destroys the class score.

    Question (2) of the course: the change of the output is fixed first (the score gone) and
    the change of the input that causes it is searched for. Another class overtaking c
    (f_c < f_d) would be another such objective.

    Learn a mask m in [0, 1] (m = 1 keeps a pixel, m = 0 deletes it) for each image x:

        min_m  f_c( m * x + (1 - m) * p(x) )  +  l1 * mean|1 - m|  +  tv * TV_beta(m)

    f_c the class's softmax probability (output="probability", the authors' port) or logit;
    p(x) the perturbation (`perturb`: blur, constant or noise); m a mask_size x mask_size
    grid upsampled bilinearly to the image, started at 0.5, Adam with `lr`, clamped to
    [0, 1] after each step. Without `tv` (tv=0) and with a fine mask the optimiser finds
    adversarial masks: scattered pixels that kill the score without deleting any object.

    Fong & Vedaldi, "Interpretable Explanations of Black Boxes by Meaningful Perturbation",
    ICCV 2017; settings after the authors' PyTorch port (pytorch-explain-black-box), with
    l1 and tv raised for the course's small images. No reference library has it (TorchRay
    does not); tests/test_perturbation.py checks it by the pointing game on cluttered digits.

    All N images are optimised at once (one batch per step); each mask only sees its own
    image's loss, so this is N independent optimisations. Cost: `steps` forward and backward
    passes per image. Returns the masks (N, H, W) at input resolution, and with
    history=True also a `History` (mask every `record_every` steps, every loss term).
    """
    inputs = _check_images(model, inputs)
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"perturbation must be one of {list(PERTURBATIONS)}, "
                         f"got {perturbation!r}")
    if output not in ("logit", "probability"):
        raise ValueError(f"output must be 'logit' or 'probability', got {output!r}")
    check_positive_int(mask_size, "mask_size")
    check_positive_int(steps, "steps")
    _check_positive(lr=lr, tv_beta=tv_beta, record_every=record_every)
    if l1 < 0 or tv < 0:
        raise ValueError(f"l1 and tv must be >= 0, got l1={l1!r}, tv={tv!r}")
    n, size = inputs.shape[0], inputs.shape[-2:]
    x = inputs.detach()
    with unchanged(model):
        for p in model.parameters():  # gradients for the mask only (restored on leaving)
            p.requires_grad_(False)
        with torch.no_grad():
            t = check_target(target, n, forward(model, x).shape[1], x.device)
        deleted = perturb(x, perturbation, sigma, generator).detach()
        m = torch.full((n, 1, mask_size, mask_size), 0.5, dtype=x.dtype, device=x.device,
                       requires_grad=True)
        optimiser = torch.optim.Adam([m], lr=lr)
        snapshots, terms = [], {"score": [], "l1": [], "tv": [], "total": []}
        for step in tqdm(range(steps), desc="meaningful perturbation", disable=not progress,
                         leave=False):
            mask = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            score = _select(model(mask * x + (1 - mask) * deleted), t, output)
            area = (1 - m).abs().mean(dim=(1, 2, 3))
            smooth = total_variation(m, tv_beta)
            loss = score + l1 * area + tv * smooth  # (N,): each image its own loss
            if history:
                if step % record_every == 0:
                    snapshots.append((step, m.detach()[:, 0].cpu().clone()))
                for name, value in zip(terms, (score, l1 * area, tv * smooth, loss)):
                    terms[name].append(value.detach().cpu())
            optimiser.zero_grad()
            loss.sum().backward()
            optimiser.step()
            with torch.no_grad():
                m.clamp_(0, 1)
    masks = F.interpolate(m.detach(), size=size, mode="bilinear", align_corners=False)[:, 0]
    if not history:
        return masks
    snapshots.append((steps, m.detach()[:, 0].cpu().clone()))
    return masks, _history(snapshots, terms)


# The extremal perturbation's fixed settings, TorchRay's (attribution/extremal_perturbation.py)
AREA_WEIGHT, AREA_WEIGHT_GROWTH = 300.0, 1.0035  # lambda of the area term, x 1.0035 a step
BLUR_LEVELS, MAX_BLUR = 8, 20.0  # the blur pyramid: 8 levels, sigma from 20 down to 0


def smooth_mask(m: torch.Tensor, size: Sequence[int], step: int, sigma: float,
                margin: int = 0, coldness: float = 20.0) -> torch.Tensor:
    """A smooth mask from its parameters m (N, 1, h, w) in [0, 1], one per grid point v placed
    every `step` pixels (Fong, Patrick & Vedaldi 2019, section 3.2):

        mask(u) = smax_v  m(v) k(|u - v| / sigma),   k(z) = exp(-2 max(z - 1/2, 0)^2)

    each grid point a bump of height m(v), flat within sigma / 2 and then falling off, and
    smax the smooth max sum_v a_v softmax(coldness a)_v: the mask is as high as its highest
    bump nearby (not their sum, not their mean), so it stays in [0, 1] and plateaus where
    neighbouring bumps agree. Only grid points within `reach` cells of u matter.
    Returns (N, 1, H + 2 margin, W + 2 margin): the image's size plus `margin` pixels on each
    side, where the bumps of the border points fade out.
    """
    reach = 1 + math.ceil(sigma / step)
    side, extra = 2 * reach + 1, math.ceil(margin / step)  # extra: grid cells in the margin
    # the heights of every cell's side x side neighbourhood: (N, side^2, h + 2 extra, ...),
    # zero beyond the parameters
    near = F.unfold(F.pad(m, (reach + extra,) * 4), side)
    near = near.view(len(m), side * side, m.shape[2] + 2 * extra, m.shape[3] + 2 * extra)
    # each pixel u (margin included) takes the neighbourhood of its own cell: every cell
    # repeated step x step times, cut to the image and its margin
    top = extra * step - margin
    heights = F.interpolate(near, scale_factor=step, mode="nearest")[
        :, :, top:top + size[0] + 2 * margin, top:top + size[1] + 2 * margin]
    uy = torch.arange(-margin, size[0] + margin, device=m.device)
    ux = torch.arange(-margin, size[1] + margin, device=m.device)
    cy, cx = (torch.div(u, step, rounding_mode="floor") for u in (uy, ux))
    # and its distance to each neighbour v = (cell + offset) * step
    offsets = torch.arange(-reach, reach + 1, device=m.device)
    dy = (uy[None] - (cy[None] + offsets[:, None]) * step).to(m.dtype)  # (side, H')
    dx = (ux[None] - (cx[None] + offsets[:, None]) * step).to(m.dtype)  # (side, W')
    distance = (dy[:, None, :, None] ** 2 + dx[None, :, None, :] ** 2).sqrt() / sigma
    kernel = torch.exp(-2 * (distance - 0.5).clamp(min=0) ** 2).flatten(0, 1)  # (side^2, ..)
    bumps = heights * kernel
    return (bumps * torch.softmax(coldness * bumps, dim=1)).sum(dim=1, keepdim=True)


def blur_pyramid(x: torch.Tensor, levels: int = BLUR_LEVELS,
                 max_blur: float = MAX_BLUR) -> torch.Tensor:
    """(levels, N, C, H, W): x blurred by sigma = max_blur (1 - l / (levels - 1)), l = 0..L-1:
    level 0 the most blurred, the last level x itself. Black beyond the border, as TorchRay,
    so on a small image the strongest blur is close to a fade to black."""
    sigmas = [max_blur * (1 - level / (levels - 1)) for level in range(levels)]
    return torch.stack([gaussian_blur(x, s, border="zeros") for s in sigmas])


def apply_pyramid(pyramid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Blur each pixel as much as its mask value says: mask 1 -> the image, 0 -> the most
    blurred level, linearly interpolated between the two nearest levels in between."""
    levels = pyramid.shape[0]
    position = mask * (levels - 1)  # (N, 1, H, W), a fractional level per pixel
    below = position.floor().clamp(max=levels - 2)
    frac = position - below
    index = below.long()[None].expand(1, *pyramid.shape[1:])  # (1, N, C, H, W)
    lower, upper = pyramid.gather(0, index)[0], pyramid.gather(0, index + 1)[0]
    return (1 - frac) * lower + frac * upper


@options(
    Option("area", "float", 0.1, "fraction of the image the mask keeps (or deletes)",
           low=0.02, high=0.8, step=0.02),
    Option("variant", "choice", "preserve", "keep the area and blur the rest, or delete it",
           choices=("preserve", "delete")),
    Option("steps", "int", 300, "optimisation steps", low=20, high=800),
)
def extremal_perturbation(model: nn.Module, inputs: torch.Tensor, target, area: float = 0.1,
                          variant: str = "preserve", steps: int = 300, step: int | None = None,
                          sigma: float | None = None, lr: float = 0.01, jitter: bool = True,
                          history: bool = False, record_every: int = 10,
                          progress: bool = False):
    """Extremal perturbation: of all smooth masks of a given area, the one that keeps the most
    class score ("preserve"), or whose deletion removes the most ("delete").

        preserve:  max_m  S_c( x blurred where m = 0 )  -  lambda || sort(m) - r_a ||^2
        delete:    max_m -S_c( x blurred where m = 1 )  -  lambda || sort(m) - r_a ||^2

    S_c the class logit; r_a the sorted mask of area a (a fraction 1 - a of zeros, then ones),
    so the area term is zero exactly when a fraction a of the mask is 1 and the rest 0: the
    area is a constraint, not a weight to tune. The area term counts the mask over the image
    and a margin of sigma pixels around it (as TorchRay), where the border bumps fade out:
    without it an all-ones start is a tie that `sort` breaks by pixel order. lambda starts
    at 300 and grows by 0.35% a step (16 x after 800 steps), so the constraint tightens as
    the mask settles. The mask is
    smooth by construction (`smooth_mask`: a smooth max of bumps of width `sigma` on a grid of
    `step` pixels); "blurred" means a blur as strong as 1 - m (`blur_pyramid`, `apply_pyramid`).
    SGD with momentum 0.9 and `lr`, parameters clamped to [0, 1]; with `jitter` the perturbed
    image is flipped left-right on every other step.

    Fong, Patrick & Vedaldi, "Understanding Deep Networks via Extremal Perturbations and
    Smooth Masks", ICCV 2019; hyperparameters as TorchRay's `extremal_perturbation`, which
    the tests compare with (same area: at least 95% of its preserved score).

    step, sigma: default H / 32 and 3 step pixels (TorchRay's 7 and 21 on 224 x 224 images).
    All N images are optimised at once, each with its own mask and loss. Cost: `steps`
    forward and backward passes per image. Returns masks (N, H, W) in [0, 1] whose 1s mark
    the region of area a: kept ("preserve") or deleted ("delete"); the optimisation starts
    from all ones. With history=True also a `History` (masks at input resolution every
    `record_every` steps).
    """
    inputs = _check_images(model, inputs)
    if variant not in ("preserve", "delete"):
        raise ValueError(f"variant must be 'preserve' or 'delete', got {variant!r}")
    if isinstance(area, bool) or not isinstance(area, (int, float)) or not 0 < area < 1:
        raise ValueError(f"area must be a fraction of the image in (0, 1), got {area!r}")
    check_positive_int(steps, "steps")
    n, size = inputs.shape[0], tuple(inputs.shape[-2:])
    step = step or max(1, round(min(size) / 32))
    sigma = sigma if sigma is not None else 3.0 * step
    _check_positive(step=step, sigma=sigma, lr=lr, record_every=record_every)
    x = inputs.detach()
    grid = [math.ceil(s / step) for s in size]
    margin = round(sigma)
    pixels = (size[0] + 2 * margin) * (size[1] + 2 * margin)
    r_a = torch.ones(pixels, dtype=x.dtype, device=x.device)
    r_a[:int(pixels * (1 - area))] = 0  # the sorted mask of area a
    sign = 1.0 if variant == "preserve" else -1.0
    weight = AREA_WEIGHT
    with unchanged(model):
        for p in model.parameters():  # gradients for the mask only (restored on leaving)
            p.requires_grad_(False)
        with torch.no_grad():
            t = check_target(target, n, forward(model, x).shape[1], x.device)
        pyramid = blur_pyramid(x)
        m = torch.ones((n, 1, *grid), dtype=x.dtype, device=x.device, requires_grad=True)
        optimiser = torch.optim.SGD([m], lr=lr, momentum=0.9, dampening=0.9)
        snapshots, terms = [], {"score": [], "area": [], "total": []}
        for i in tqdm(range(steps), desc="extremal perturbation", disable=not progress,
                      leave=False):
            full = smooth_mask(m, size, step, sigma, margin)  # the image and a margin
            mask = full[:, :, margin:margin + size[0], margin:margin + size[1]]
            kept = mask if variant == "preserve" else 1 - mask
            perturbed = apply_pyramid(pyramid, kept)
            if jitter and i % 2 == 0:
                perturbed = perturbed.flip(-1)
            reward = sign * _select(model(perturbed), t, "logit")
            constraint = weight * (full.flatten(1).sort(dim=1).values - r_a).pow(2).mean(dim=1)
            energy = reward - constraint  # (N,), maximised
            if history:
                if i % record_every == 0:
                    snapshots.append((i, mask.detach()[:, 0].cpu().clone()))
                for name, value in zip(terms, (reward, constraint, energy)):
                    terms[name].append(value.detach().cpu())
            optimiser.zero_grad()
            (-energy.sum()).backward()
            optimiser.step()
            with torch.no_grad():
                m.clamp_(0, 1)
            weight *= AREA_WEIGHT_GROWTH
        masks = smooth_mask(m.detach(), size, step, sigma, margin)[
            :, 0, margin:margin + size[0], margin:margin + size[1]]
    if not history:
        return masks
    snapshots.append((steps, masks.cpu().clone()))
    return masks, _history(snapshots, terms)


# --------------------------------------------------------------------------- cost
@dataclasses.dataclass
class Passes:
    """Examples the model was run on: `forward` in all, `backward` those run with autograd
    on (each followed by a backward pass in the methods of this course)."""

    forward: int = 0
    backward: int = 0


@contextlib.contextmanager
def count_passes(model: nn.Module):
    """Count the examples `model` is run on inside the block (a forward hook, removed after).

        with count_passes(model) as passes:
            occlusion(model, x, 3, window=8)
        passes.forward   # e.g. 1 + 64 for a 64 x 64 image, 8 x 8 windows
    """
    passes = Passes()

    def hook(module, args, output):
        examples = args[0].shape[0] if args and isinstance(args[0], torch.Tensor) else 1
        passes.forward += examples
        if torch.is_grad_enabled():
            passes.backward += examples

    handle = model.register_forward_hook(hook)
    try:
        yield passes
    finally:
        handle.remove()
