"""Chapter 06: global explanation by activation maximisation.

A global question: *what does the model think a class looks like?* Search the input space
for the image the model scores highest for class c:

    x* = argmax_x  S_c(x) - l2 * ||x - 0.5||^2

Plain gradient ascent (Erhan et al. 2009; Simonyan et al. 2014) finds high-scoring
"snow": patterns that excite the class but look like nothing. Chapter 01 shows it as a
teaser; chapter 06 adds the priors (regularisers, a generator) that make it look like
something.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .convention import check_target, model_device, unchanged

__all__ = ["gradient_ascent"]


def gradient_ascent(model: nn.Module, target: int, shape: Sequence[int], steps: int = 100,
                    lr: float = 0.05, l2: float = 0.0, generator: torch.Generator | None = None,
                    progress: bool = False, return_history: bool = False):
    """The input in [0, 1] that maximises the class score S_c, by signed gradient ascent.

        x_0 = 0.5 + 0.01 * noise,   x_{t+1} = clip(x_t + lr * sign(grad_x J(x_t)), 0, 1)
        J(x) = S_c(x) - l2 * ||x - 0.5||^2

    shape: one input's shape, e.g. (1, 32, 32). The sign of the gradient makes the step size
    independent of the score's scale. Returns x* of shape (1, *shape) on the model's device,
    and with `return_history` also the score S_c(x_t) at every step.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    device = model_device(model)
    noise_device = generator.device if generator is not None else device
    noise = torch.randn((1, *shape), generator=generator, device=noise_device).to(device)
    x = (0.5 + 0.01 * noise).requires_grad_(True)
    scores = []
    with unchanged(model), torch.enable_grad():
        for _ in tqdm(range(steps), desc="gradient ascent", disable=not progress, leave=False):
            out = model(x)
            t = check_target(target, 1, out.shape[1], device)
            score = out[0, t[0]]
            objective = score - l2 * ((x - 0.5) ** 2).sum()
            (grad,) = torch.autograd.grad(objective, x)
            with torch.no_grad():
                x += lr * grad.sign()
                x.clamp_(0, 1)
            scores.append(score.item())
    x = x.detach()
    return (x, scores) if return_history else x
