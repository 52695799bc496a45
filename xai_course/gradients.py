"""Chapter 02: from gradients to Integrated Gradients.

Question (1) of the course: *if this feature changed, how would the output change?*, for a
change too small to see. The first answer is the derivative of the class score S_c with
respect to each input feature; the rest of the chapter repairs its two weaknesses, noise and
locality, and ends where no repair helps: a gradient describes a straight line, and a network
is not one.

Seen as perturbations, the methods differ in where they look. The gradient looks at an
infinitesimal change of x; SmoothGrad averages gradients at noisy copies x + eps around x, a
*local* perturbation (how local, sigma decides); Integrated Gradients averages them along
the path to a baseline x' where the information is erased, a *global* perturbation. And
every one of them is a first-order Taylor view of S_c, f(x) ~ f(x0) + (x - x0) . grad f(x0):
the closer an explanation's picture of the model is to a straight line, the easier it is to
read and the less it is the model itself (`taylor_line` measures where the line departs).
Chapter 04 asks question (1) again with real removals, and then question (2).

    gradient              dS_c(x)/dx_i                            Captum Saliency(abs=False)
    input_x_gradient      x_i dS_c(x)/dx_i                        Captum InputXGradient
    smoothgrad            E_eps[a(x + eps)]                        Captum NoiseTunnel smoothgrad
    smoothgrad_sq         E_eps[a(x + eps)^2]                      ... smoothgrad_sq
    vargrad               Var_eps[a(x + eps)]                      ... vargrad
    integrated_gradients  (x_i - x'_i) int_0^1 dS_c(x' + a(x - x'))/dx_i da
                                                                  Captum IntegratedGradients
    guided_backprop       the gradient with ReLUs passing back only positive signals
                                                                  Captum GuidedBackprop
    taylor_line           f(x0 + t d) against f(x0) + t d.grad f(x0): where it all stops

Helpers the chapter's demos use: `quadrature` (the integration rule's nodes and weights,
Captum's exactly), `make_baseline` (black / blur / uniform / mean), `noise_level` (the
SmoothGrad sigma), `per_token` (any method on a text model's embeddings, summed per
token). The methods that need many gradients (the noise family, IG) call `gradient` on
chunks of inputs, `convention.rows_per_pass` of them at a time, as Captum does.

Every function is checked against its reference in tests/test_gradients.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .convention import (
    Option,
    check_model_and_inputs,
    check_positive_int,
    class_scores,
    options,
    reference,
    rows_per_pass,
    unchanged,
)
from .images import gaussian_blur

__all__ = [
    "gradient",
    "input_x_gradient",
    "smoothgrad",
    "smoothgrad_sq",
    "vargrad",
    "integrated_gradients",
    "guided_backprop",
    "taylor_line",
    "quadrature",
    "make_baseline",
    "noise_level",
    "noise_moments",
    "per_token",
    "METHODS",
    "QUADRATURES",
    "BASELINES",
]

QUADRATURES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid",
               "gausslegendre")
BASELINES = ("black", "blur", "uniform", "mean")
BLUR_FRACTION = 0.05  # the "blur" baseline's Gaussian sigma, as a fraction of the image side


# =========================================================================== 1. the gradient
@reference("captum_saliency", "Captum Saliency(abs=False)")
@options()
def gradient(model: nn.Module, inputs: torch.Tensor, target) -> torch.Tensor:
    """The gradient ("vanilla saliency") of the class score with respect to the input.

        attr_i = dS_c(x) / dx_i

    Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks: Visualising Image
    Classification Models and Saliency Maps", ICLR workshop 2014. The paper shows |attr|,
    max over colour channels; we return the signed gradient (Captum `Saliency(abs=False)`)
    and leave absolute values to the plot. S_c is the model's output for class c (the logit).

    It is the ratio of output change to input change for an infinitesimal change: a local,
    first-order answer, which later sections of the chapter put to the test.
    """
    inputs = check_model_and_inputs(model, inputs)
    x = inputs.detach().clone().requires_grad_(True)
    with unchanged(model), torch.enable_grad():
        scores = class_scores(model, x, target)
        (grad,) = torch.autograd.grad(scores.sum(), x)
    return grad


@reference("captum_input_x_gradient", "Captum InputXGradient")
@options()
def input_x_gradient(model: nn.Module, inputs: torch.Tensor, target) -> torch.Tensor:
    """Input times gradient: attr_i = x_i * dS_c(x) / dx_i.

    Shrikumar et al., "Not Just a Black Box: Learning Important Features Through Propagating
    Activation Differences", 2016. For a linear model S_c = w.x + b this is exactly each
    feature's contribution w_i x_i to the score.
    """
    return inputs.detach() * gradient(model, inputs, target)


# =========================================================================== shared helpers
def _per_example_target(target, n: int, device: torch.device) -> int | torch.Tensor:
    """`target` as an int, or a LongTensor (n,), so that copies of the examples can be given
    theirs with `.repeat` / `.repeat_interleave`. The class range (and the dtype) is checked
    by `class_scores` when the copies go through the model."""
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    t = torch.as_tensor(target, device=device).reshape(-1)
    if t.numel() == 1:
        return t.expand(n)
    if t.numel() != n:
        raise ValueError(f"target has {t.numel()} entries but the batch has {n} examples")
    return t


def _rows(t: int | torch.Tensor, index: torch.Tensor | None = None, repeat: int = 1):
    """The targets of some rows of copies: t repeated, or picked by example index."""
    if isinstance(t, int):
        return t
    return t[index] if index is not None else t.repeat(repeat)


# ====================================================================== 2. SmoothGrad family
def noise_level(inputs: torch.Tensor, sigma: float | None = None,
                sigma_fraction: float = 0.15) -> torch.Tensor:
    """The standard deviation of SmoothGrad's noise for each example, (N,).

    sigma: an absolute standard deviation (Captum's `stdevs`), the same for every example.
    Otherwise (sigma=None) the SmoothGrad paper's rule: a fraction of each example's range,
        sigma_n = sigma_fraction * (max_i x_n,i - min_i x_n,i),
    the paper recommending 10-20%.
    """
    n = inputs.shape[0]
    if sigma is not None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or sigma < 0:
            raise ValueError(f"sigma must be a number >= 0 or None, got {sigma!r}")
        return torch.full((n,), float(sigma), dtype=inputs.dtype, device=inputs.device)
    if isinstance(sigma_fraction, bool) or not isinstance(sigma_fraction, (int, float)) \
            or sigma_fraction < 0:
        raise ValueError(f"sigma_fraction must be a number >= 0, got {sigma_fraction!r}")
    flat = inputs.detach().reshape(n, -1)
    return sigma_fraction * (flat.max(1).values - flat.min(1).values)


def noise_moments(model: nn.Module, inputs: torch.Tensor, target, base="gradient",
                  samples: int = 25, sigma: float | None = None, sigma_fraction: float = 0.15,
                  batch_size: int | None = None, generator: torch.Generator | None = None,
                  progress: bool = False, base_options: dict | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """E[a] and E[a^2] over `samples` noisy copies of each example, a = base(x + eps): the
    two sums that `smoothgrad`, `smoothgrad_sq` and `vargrad` are made of (options as there).

    The copies are made in Captum NoiseTunnel's order (all copies of example 0, then of
    example 1, ...) and each copy's noise is drawn by its own `torch.randn` call: the noise
    does not depend on `batch_size`, and on the CPU with the same random state (and a number
    of features divisible by 16) it is Captum's noise, draw for draw.
    """
    inputs = check_model_and_inputs(model, inputs)
    base = _base_method(base)
    check_positive_int(samples, "samples")
    check_positive_int(batch_size, "batch_size", allow_none=True)
    base_options = base_options or {}
    if base_options.get("return_delta"):
        raise ValueError("return_delta is not available through the noise: call "
                         "integrated_gradients on each noisy copy to get its delta")
    x = inputs.detach()
    n, device = x.shape[0], x.device
    std = noise_level(x, sigma, sigma_fraction)
    t = _per_example_target(target, n, device)
    copies = n * samples  # copy r is a noisy version of example r // samples
    rows = batch_size or rows_per_pass(x, copies)
    one = (1,) + tuple(x.shape[1:])
    total, total_sq = None, None  # sums of a and a^2 over each example's copies
    for start in tqdm(range(0, copies, rows), desc=base.__name__, disable=not progress,
                      leave=False):
        index = torch.arange(start, min(start + rows, copies), device=device) // samples
        noise = torch.cat([torch.randn(one, generator=generator, dtype=x.dtype, device=device)
                           for _ in index])
        noisy = x[index] + noise * std[index].view(-1, *[1] * (x.ndim - 1))
        a = base(model, noisy, _rows(t, index), **base_options)
        if total is None:
            total, total_sq = a.new_zeros((n, *a.shape[1:])), a.new_zeros((n, *a.shape[1:]))
        total.index_add_(0, index, a)
        total_sq.index_add_(0, index, a * a)
    return total / samples, total_sq / samples


def _base_method(base) -> Callable:
    if callable(base):
        return base
    if base not in METHODS or base in ("smoothgrad", "smoothgrad_sq", "vargrad"):
        raise ValueError(f"base must be one of {list(BASE_METHODS)} or a method, got {base!r}")
    return METHODS[base]


BASE_CHOICES = ("gradient", "input_x_gradient", "guided_backprop", "integrated_gradients")
_NOISE_OPTIONS = (
    Option("samples", "int", 25, "noisy copies per example", low=1, high=200, log=True),
    Option("sigma_fraction", "float", 0.15, "noise sigma as a fraction of the input's range "
           "(max - min)", low=0.0, high=0.5, step=0.01),
    Option("base", "choice", "gradient", "the method run on each noisy copy",
           choices=BASE_CHOICES),
)


@reference("captum_smoothgrad", "Captum NoiseTunnel(smoothgrad)")
@options(*_NOISE_OPTIONS)
def smoothgrad(model: nn.Module, inputs: torch.Tensor, target, base="gradient",
               samples: int = 25, sigma: float | None = None, sigma_fraction: float = 0.15,
               batch_size: int | None = None, generator: torch.Generator | None = None,
               progress: bool = False, **base_options) -> torch.Tensor:
    """SmoothGrad: the average of a method's maps over noisy copies of the input.

        attr = 1/n sum_{k=1..n} a(x + eps_k),   eps_k ~ N(0, sigma^2 I)

    Smilkov, Thorat, Kim, Viegas & Wattenberg, "SmoothGrad: removing noise by adding
    noise", 2017. Why gradient maps look noisy is not settled: the paper's hypothesis is that
    the gradient fluctuates sharply at small scales (in a ReLU network it jumps whenever a
    unit switches on or off). Whatever the cause, averaging over a neighbourhood of x (a
    local perturbation, as wide as sigma) keeps what is stable.

    base: the method a (a name: "gradient", "input_x_gradient", "guided_backprop",
    "integrated_gradients"; or any method of the convention), its options in
    `**base_options`. samples: n. sigma: an absolute standard deviation (Captum's
    `stdevs`); None: sigma_fraction * (max x - min x) per example, the paper's 10-20%.
    batch_size: noisy copies per call of the base method (None: `convention.rows_per_pass`);
    it does not change the result for a given `generator`. generator: the noise's random
    source.

    Checked against Captum `NoiseTunnel(nt_type="smoothgrad")` around Captum's version of
    the base method: with the same random state the noise is the same, draw for draw.
    """
    mean, _ = noise_moments(model, inputs, target, base, samples, sigma, sigma_fraction,
                            batch_size, generator, progress, base_options)
    return mean


@reference("captum_smoothgrad_sq", "Captum NoiseTunnel(smoothgrad_sq)")
@options(*_NOISE_OPTIONS)
def smoothgrad_sq(model: nn.Module, inputs: torch.Tensor, target, base="gradient",
                  samples: int = 25, sigma: float | None = None, sigma_fraction: float = 0.15,
                  batch_size: int | None = None, generator: torch.Generator | None = None,
                  progress: bool = False, **base_options) -> torch.Tensor:
    """SmoothGrad-squared: the average of the squared maps over noisy copies.

        attr = 1/n sum_k a(x + eps_k)^2,   eps_k ~ N(0, sigma^2 I)

    Hooker, Erhan, Kindermans & Kim, "A Benchmark for Interpretability Methods in Deep
    Neural Networks", NeurIPS 2019, where it (with VarGrad) beat a random ranking in ROAR
    while plain gradients did not. Unsigned: it ranks features by magnitude. It equals
    smoothgrad^2 + vargrad. Options and noise as in `smoothgrad`.

    Checked against Captum `NoiseTunnel(nt_type="smoothgrad_sq")`.
    """
    _, mean_sq = noise_moments(model, inputs, target, base, samples, sigma, sigma_fraction,
                                batch_size, generator, progress, base_options)
    return mean_sq


@reference("captum_vargrad", "Captum NoiseTunnel(vargrad)")
@options(*_NOISE_OPTIONS)
def vargrad(model: nn.Module, inputs: torch.Tensor, target, base="gradient",
            samples: int = 25, sigma: float | None = None, sigma_fraction: float = 0.15,
            batch_size: int | None = None, generator: torch.Generator | None = None,
            progress: bool = False, **base_options) -> torch.Tensor:
    """VarGrad: the variance of the maps over noisy copies (the population variance).

        attr = 1/n sum_k a(x + eps_k)^2 - (1/n sum_k a(x + eps_k))^2

    Adebayo, Gilmer, Goodfellow & Kim, "Local Explanation Methods for Deep Neural Networks
    Lack Sensitivity to Parameter Values", ICLR workshop 2018; Hooker et al. NeurIPS 2019.
    Large where the map changes most under noise. Options and noise as in `smoothgrad`.

    Checked against Captum `NoiseTunnel(nt_type="vargrad")`.
    """
    mean, mean_sq = noise_moments(model, inputs, target, base, samples, sigma, sigma_fraction,
                                   batch_size, generator, progress, base_options)
    return mean_sq - mean * mean


# ====================================================================== 3. Integrated Gradients
def quadrature(method: str = "gausslegendre", steps: int = 50,
               dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The nodes alpha_k and weights w_k of the rule int_0^1 g(a) da ~ sum_k w_k g(alpha_k).

    Exactly Captum's (captum/attr/_utils/approximation_methods.py), so that our IG gives its
    numbers:
      riemann_left       alpha = linspace(0, 1 - 1/n, n),          w = 1/n
      riemann_right      alpha = linspace(1/n, 1, n),              w = 1/n
      riemann_middle     alpha = linspace(1/2n, 1 - 1/2n, n),      w = 1/n
      riemann_trapezoid  alpha = linspace(0, 1, n),   w = 1/n, halved at both ends: the
                         weights sum to 1 - 1/n, not 1 (Captum's choice; 2% low at n = 50)
      gausslegendre      numpy's Gauss-Legendre nodes and weights mapped from [-1, 1] to
                         [0, 1]: exact for polynomials of degree < 2n (Captum's default)
    The Riemann rules need n >= 2, Gauss-Legendre n >= 1. Nodes are rounded to `dtype`,
    weights to float32 then `dtype`, as Captum does.
    """
    if method not in QUADRATURES:
        raise ValueError(f"method must be one of {list(QUADRATURES)}, got {method!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    n = steps
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        alphas, weights = (0.5 * (1 + nodes)).tolist(), (0.5 * weights).tolist()
    else:
        if n < 2:
            raise ValueError(f"{method} needs steps >= 2 (as in Captum), got {n}")
        first, last = {"riemann_left": (0, 1 - 1 / n), "riemann_right": (1 / n, 1),
                       "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)),
                       "riemann_trapezoid": (0, 1)}[method]
        alphas = torch.linspace(first, last, n).tolist()  # float32 steps, as Captum's
        weights = [1 / n] * n
        if method == "riemann_trapezoid":
            weights[0] /= 2
            weights[-1] /= 2
    return (torch.tensor(alphas, dtype=dtype, device=device),
            torch.tensor(weights, dtype=torch.float32, device=device).to(dtype))


def make_baseline(inputs: torch.Tensor, baseline=None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The reference input x' for each example, shaped like `inputs`.

    None or "black": zeros (black for images in [0, 1]; the padding embedding for text).
    A number: that constant. A tensor: broadcast to the inputs (on their device).
    "blur": each image blurred by a Gaussian of sigma = BLUR_FRACTION x its longer side
    (images (N, C, H, W) only). "uniform": uniform noise between each example's min and max
    (draws from `generator`). "mean": each image's mean colour (per channel), each text's mean
    embedding (per dimension, over positions), else each example's mean.
    Sturmfels, Lundberg & Lee, "Visualizing the Impact of Feature Attribution Baselines",
    Distill 2020, compares these choices.
    """
    x = inputs.detach()
    if baseline is None or (isinstance(baseline, str) and baseline == "black"):
        return torch.zeros_like(x)
    if isinstance(baseline, torch.Tensor):
        if baseline.device != x.device:
            raise ValueError(f"baseline is on {baseline.device} but the inputs are on "
                             f"{x.device}; move it with baseline.to({str(x.device)!r})")
        try:
            return baseline.detach().to(x.dtype).expand_as(x)
        except RuntimeError:
            raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast "
                             f"to the inputs' shape {tuple(x.shape)}") from None
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if baseline == "blur":
        if x.ndim != 4:
            raise ValueError(f"the 'blur' baseline needs images (N, C, H, W), got shape "
                             f"{tuple(x.shape)}")
        return gaussian_blur(x, max(BLUR_FRACTION * max(x.shape[-2:]), 0.5))
    if baseline == "uniform":
        flat = x.reshape(len(x), -1)
        low = flat.min(1).values.view(-1, *[1] * (x.ndim - 1))
        high = flat.max(1).values.view(-1, *[1] * (x.ndim - 1))
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return low + u * (high - low)
    if baseline == "mean":
        if x.ndim == 4:
            return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
        if x.ndim == 3:
            return x.mean(dim=1, keepdim=True).expand_as(x)
        return x.reshape(len(x), -1).mean(1).view(-1, *[1] * (x.ndim - 1)).expand_as(x)
    raise ValueError(f"baseline must be None, a number, a tensor or one of {list(BASELINES)}, "
                     f"got {baseline!r}")


@reference("captum_integrated_gradients", "Captum IntegratedGradients")
@options(
    Option("steps", "int", 50, "number of points on the path", low=2, high=300, log=True),
    Option("method", "choice", "gausslegendre", "the integration rule", choices=QUADRATURES),
    Option("baseline", "choice", "black", "the reference input x'", choices=BASELINES),
)
def integrated_gradients(model: nn.Module, inputs: torch.Tensor, target, baseline=None,
                         steps: int = 50, method: str = "gausslegendre",
                         batch_size: int | None = None, return_delta: bool = False,
                         generator: torch.Generator | None = None, progress: bool = False):
    """Integrated Gradients: the gradient averaged along the straight path from x' to x.

        IG_i(x) = (x_i - x'_i) int_0^1 dS_c(x' + a (x - x')) / dx_i da
                ~ (x_i - x'_i) sum_k w_k dS_c(x' + alpha_k (x - x')) / dx_i

    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
    Completeness: sum_i IG_i(x) = S_c(x) - S_c(x'), up to the quadrature's error;
    return_delta=True also returns that error per example, (N,):
        delta = sum_i IG_i(x) - (S_c(x) - S_c(x')).

    baseline: x' (see `make_baseline`: None / "black", "blur", "uniform", "mean", a number
    or a tensor). steps, method: the quadrature (see `quadrature`), Captum's `n_steps` and
    `method`. batch_size: path points times examples per forward/backward pass (Captum's
    `internal_batch_size`); None chooses `convention.rows_per_pass`, so memory stays bounded.
    Only the floating-point rounding depends on it. generator: for the "uniform" baseline.

    Checked against Captum `IntegratedGradients` for every `method` (same nodes and weights).
    """
    inputs = check_model_and_inputs(model, inputs)
    check_positive_int(batch_size, "batch_size", allow_none=True)
    x = inputs.detach()
    n = x.shape[0]
    x_base = make_baseline(x, baseline, generator)
    alphas, weights = quadrature(method, steps, dtype=x.dtype, device=x.device)
    t = _per_example_target(target, n, x.device)
    per_pass = max(1, (batch_size or rows_per_pass(x, steps * n)) // n)  # path points a pass
    path_gradient = 0  # sum_k w_k dS_c(x' + alpha_k (x - x'))/dx
    for start in tqdm(range(0, steps, per_pass), desc="integrated gradients",
                      disable=not progress, leave=False):
        a = alphas[start:start + per_pass]
        w = weights[start:start + per_pass]
        k = len(a)
        points = x_base + a.view(k, 1, *[1] * (x.ndim - 1)) * (x - x_base)  # (k, N, ...)
        grads = gradient(model, points.reshape(k * n, *x.shape[1:]), _rows(t, repeat=k))
        path_gradient = path_gradient + (grads.reshape(k, n, -1) * w.view(k, 1, 1)).sum(0)
    attribution = path_gradient.view_as(x) * (x - x_base)
    if not return_delta:
        return attribution
    with unchanged(model), torch.no_grad():
        ends = class_scores(model, torch.cat([x, x_base]), _rows(t, repeat=2))
    delta = attribution.reshape(n, -1).sum(1) - (ends[:n] - ends[n:])
    return attribution, delta


# =========================================================================== 4. Guided Backprop
class _PositiveGradient(torch.autograd.Function):
    """Forward: a copy of x. Backward: only the positive part of the incoming gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()  # a copy, so that an in-place ReLU never overwrites its input

    @staticmethod
    def backward(ctx, grad):
        return F.relu(grad)


def _guide(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook on a ReLU: its input goes through `_PositiveGradient` first, so the
    ReLU's backward signal 1[x > 0] g becomes max(1[x > 0] g, 0)."""
    return (_PositiveGradient.apply(args[0]), *args[1:])


@reference("captum_guided_backprop", "Captum GuidedBackprop")
@options()
def guided_backprop(model: nn.Module, inputs: torch.Tensor, target) -> torch.Tensor:
    """Guided Backpropagation: the gradient, with every ReLU passing back only positive signals.

    At a ReLU y = max(x, 0) with incoming gradient g = dS_c/dy, backprop passes 1[x > 0] g;
    guided backprop passes
        1[x > 0] * max(g, 0)
    (only where the unit was active *and* the signal increases S_c).

    Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for Simplicity: The All
    Convolutional Net", ICLR workshop 2015. Sharp, image-like maps; but Adebayo et al.,
    "Sanity Checks for Saliency Maps" (NeurIPS 2018) showed they barely change when the
    model's weights are randomised: they show the image more than the model.

    Only `nn.ReLU` modules are guided (in-place ones too): `F.relu` / `torch.relu` calls in a
    forward are invisible to hooks and stay plain ReLUs, as in Captum (a warning is issued
    when the model has no nn.ReLU at all). The hooks are removed afterwards, also on errors.

    Checked against Captum `GuidedBackprop`.
    """
    inputs = check_model_and_inputs(model, inputs)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        warnings.warn("guided_backprop: the model has no nn.ReLU module, so nothing is "
                      "guided and the result is the plain gradient (F.relu calls cannot be "
                      "hooked)", stacklevel=2)
    with unchanged(model):
        handles = [m.register_forward_pre_hook(_guide) for m in relus]
        try:
            return gradient(model, inputs, target)
        finally:
            for handle in handles:
                handle.remove()


# =========================================================================== 5. the limits
def taylor_line(model: nn.Module, inputs: torch.Tensor, target, direction,
                ts) -> tuple[torch.Tensor, torch.Tensor]:
    """The score along a line through x0, and the gradient's straight-line prediction of it.

        exact(t)  = S_c(x0 + t d)
        linear(t) = S_c(x0) + t d . grad S_c(x0)      (first-order Taylor expansion)

    Every method of this chapter is built from gradients, i.e. from `linear` (and so is
    Grad-CAM, chapter 03, one layer up): where the two curves part, the gradient stops
    describing the model (saturation, a ReLU switching,
    another class taking over). inputs: x0 (N, ...); direction: d, a tensor broadcastable to
    the inputs; ts: the values of t (a sequence or 1-D tensor of T).
    Returns exact (T, N) and linear (T, N).
    """
    inputs = check_model_and_inputs(model, inputs)
    x0 = inputs.detach()
    d = torch.as_tensor(direction, dtype=x0.dtype, device=x0.device).expand_as(x0)
    ts = torch.as_tensor(ts, dtype=x0.dtype, device=x0.device).reshape(-1)
    n, shape = x0.shape[0], x0.shape[1:]
    slope = (gradient(model, x0, target) * d).reshape(n, -1).sum(1)  # d . grad S_c(x0)
    t = _per_example_target(target, n, x0.device)
    points = x0 + ts.view(-1, 1, *[1] * len(shape)) * d  # (T, N, ...)
    with unchanged(model), torch.no_grad():
        exact = class_scores(model, points.reshape(-1, *shape), _rows(t, repeat=len(ts)))
        start = class_scores(model, x0, t)
    return exact.view(len(ts), n), start + ts[:, None] * slope


# =========================================================================== text
def per_token(method: Callable, model: nn.Module, token_ids: torch.Tensor, target,
              **method_options) -> torch.Tensor:
    """Any method of the chapter on a text model: attributions per token, (N, L).

    The model must embed token ids with `model.embedding` and classify embeddings with
    `model.encoder` (the zoo's `reviews` model). The method explains `model.encoder` at the
    embedded input e (N, L, D) and each token's attribution is the sum over D:
        attr_l = sum_d a(e)_{l, d}
    (for IG with the black baseline, x' is the all-padding text: the padding embedding is 0).
    """
    with torch.no_grad():
        embedded = model.embedding(token_ids).detach()
    out = method(model.encoder, embedded, target, **method_options)
    if isinstance(out, tuple):  # e.g. integrated_gradients(..., return_delta=True)
        return (out[0].sum(-1), *out[1:])
    return out.sum(-1)


METHODS: dict[str, Callable] = {
    "gradient": gradient,
    "input_x_gradient": input_x_gradient,
    "smoothgrad": smoothgrad,
    "smoothgrad_sq": smoothgrad_sq,
    "vargrad": vargrad,
    "integrated_gradients": integrated_gradients,
    "guided_backprop": guided_backprop,
}
BASE_METHODS = {name: METHODS[name] for name in BASE_CHOICES}
