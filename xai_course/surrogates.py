"""Chapter 05: LIME and decision trees. Explain a black box by a simple model that imitates it.

Near one input x, a network may be simple even when it is not simple anywhere else. LIME
(Ribeiro, Singh & Guestrin, "Why Should I Trust You?", KDD 2016) looks for that simple model:

    g* = argmin_{g in G}  sum_s pi(z_s) (f(h(z_s)) - g(z_s))^2  +  Omega(g)

- z in {0, 1}^K says which of K interpretable features are "on": superpixels of an image
  (`superpixels`), kept as they are (1) or painted over with a baseline (0); h(z) is that
  image. For a table (`lime_tabular`) z is a row of standardised feature values drawn around x.
- f(h(z)) is the model's score for the target class on the perturbed input.
- pi(z) = sqrt(exp(-d(z)^2 / w^2)) weights a sample by its distance d to the original input:
  the kernel width w decides what "near" means, and changes the answer.
- g is a linear model (ridge: Omega = alpha ||beta||^2; its coefficients are the explanation)
  or a decision tree of depth <= max_depth (its explanation: how much each feature's splits
  move the prediction along the path of the original input, a "tree interpreter").

Fidelity says how well g imitates f: the weighted R^2 on the samples, and on fresh samples
the surrogate has never seen. A deep tree imitates anything and explains nothing: fidelity
against depth is the trade-off of the chapter.

A surrogate is knowledge distillation done locally: the network is the teacher, g the
student, and the student learns from the teacher's answers on inputs near x only, because a
student simple enough to read cannot imitate the teacher everywhere. Fidelity is then the
student's grade, and it is what decides whether g's coefficients may be read as the
network's reasons: a low-fidelity surrogate explains itself, not the network. Like the
gradient (chapter 02), a linear g is a straight-line view of f; unlike the gradient, the
line is fitted to real, finite changes of the input, at the scale the kernel width sets.

`tree_regularized_training` is the global version (Wu et al., "Beyond Sparsity: Tree
Regularization of Deep Models for Interpretability", AAAI 2018): train the network itself so
that a small tree imitates it everywhere, by penalising the average decision-path length of a
tree fit to its predictions (through a differentiable surrogate of that length).

Checked (tests/test_surrogates.py): linear `lime` and `lime_tabular` against Captum `Lime` /
`LimeBase` given the same samples, kernel weights and ridge model; recovery of known weights
on an additive model; the tree interpreter's sum; tree regularisation's shorter paths.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .convention import (
    Option,
    check_inputs,
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
    "SEGMENTERS",
    "BASELINES",
    "SURROGATES",
    "Surrogate",
    "superpixels",
    "baseline_image",
    "perturbed_images",
    "sample_switches",
    "kernel_weights",
    "fit_surrogate",
    "tree_contributions",
    "weighted_r2",
    "lime",
    "lime_tabular",
    "average_path_length",
    "TreeRegularized",
    "tree_regularized_training",
    "two_moons",
]

SEGMENTERS = ("slic", "quickshift", "felzenszwalb", "grid")
BASELINES = ("mean", "blur")
SURROGATES = ("linear", "tree")


# --------------------------------------------------------------------------- superpixels
def _image_numpy(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) or (1, C, H, W) tensor in [0, 1] -> (H, W, C) float64 numpy."""
    check_inputs(image, ndim=(3, 4), name="image")
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"superpixels segments one image; got a batch of {image.shape[0]}")
        image = image[0]
    return image.detach().cpu().double().permute(1, 2, 0).numpy()


def _grid(height: int, width: int, n: int) -> np.ndarray:
    """About n rectangular cells: rows x cols cells with rows * cols ~ n, shaped like the image."""
    rows = max(1, min(height, round(math.sqrt(n * height / width))))
    cols = max(1, min(width, round(n / rows)))
    r = np.arange(height) * rows // height
    c = np.arange(width) * cols // width
    return r[:, None] * cols + c[None, :]


def superpixels(image: torch.Tensor, method: str = "slic", n: int = 50) -> torch.Tensor:
    """Segment an image into about n superpixels: a LongTensor (H, W) of ids 0..K-1.

    method: "slic" (k-means in colour + position, `compactness` 10: compact, even regions),
    "quickshift" (mode seeking in colour + position; the `lime` package's default segmenter),
    "felzenszwalb" (graph-based, follows edges) from scikit-image, or "grid" (rectangles:
    for tiny images, or to see what a segmentation that ignores the content does).
    quickshift and felzenszwalb have no "number of segments" parameter: n sets their scale
    (kernel size, minimum size) so that they give roughly n segments. On the device of `image`.
    """
    from skimage import segmentation

    if method not in SEGMENTERS:
        raise ValueError(f"method must be one of {list(SEGMENTERS)}, got {method!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an int >= 2 (the number of superpixels), got {n!r}")
    rgb = _image_numpy(image)
    height, width, channels = rgb.shape
    grey = channels == 1
    area = height * width / n  # pixels per segment
    if method == "grid":
        labels = _grid(height, width, n)
    elif method == "slic":
        labels = segmentation.slic(rgb[..., 0] if grey else rgb, n_segments=n, compactness=10,
                                   start_label=0, channel_axis=None if grey else -1)
    elif method == "quickshift":
        colour = np.repeat(rgb, 3, axis=2) if grey else rgb
        labels = segmentation.quickshift(colour, kernel_size=max(1.0, math.sqrt(area) / 4),
                                         max_dist=math.sqrt(area), ratio=0.5, rng=0)
    else:
        labels = segmentation.felzenszwalb(rgb[..., 0] if grey else rgb, scale=area,
                                           sigma=0.5, min_size=max(1, int(area / 4)),
                                           channel_axis=None if grey else -1)
    _, labels = np.unique(labels, return_inverse=True)  # ids 0..K-1, no gaps
    device = image.device
    return torch.from_numpy(labels.reshape(height, width).astype(np.int64)).to(device)


def _check_segments(segments, inputs: torch.Tensor) -> torch.Tensor:
    """segments (H, W) or (N, H, W) of ids 0..K-1 for inputs (N, C, H, W) -> (N, H, W) long."""
    n, height, width = inputs.shape[0], inputs.shape[-2], inputs.shape[-1]
    if not isinstance(segments, torch.Tensor) or segments.is_floating_point():
        raise TypeError("segments must be an integer tensor (H, W) or (N, H, W) of superpixel "
                        "ids, e.g. from superpixels(image)")
    if segments.ndim == 2:
        segments = segments.expand(n, -1, -1)
    if segments.ndim != 3 or tuple(segments.shape[1:]) != (height, width) or (
            segments.shape[0] != n):
        raise ValueError(f"segments must have shape (H, W) = ({height}, {width}) or "
                         f"(N, H, W) = ({n}, {height}, {width}) to match the inputs "
                         f"{tuple(inputs.shape)}; got {tuple(segments.shape)}")
    segments = segments.to(inputs.device, torch.long)
    if segments.min() < 0:
        raise ValueError("segments must hold ids >= 0")
    for k in range(n):
        if segments[k].unique().numel() < 2:
            raise ValueError(f"the segmentation of example {k} has a single segment: LIME needs "
                             f"at least 2 superpixels to switch on and off (raise n, or use "
                             f"method='grid')")
    return segments


def baseline_image(image: torch.Tensor, segments: torch.Tensor, baseline="mean") -> torch.Tensor:
    """What a switched-off superpixel shows, for one image (C, H, W) and its segments (H, W).

    "mean": each superpixel painted with its own mean colour (the `lime` package's default,
    hide_color=None); "blur": a Gaussian blur of the image (sigma = 1/20 of its side); a
    number: that constant value.
    """
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(image, float(baseline))
    if baseline == "mean":
        k = int(segments.max()) + 1
        flat = segments.reshape(-1)
        pixels = image.reshape(image.shape[0], -1)
        sums = torch.zeros(image.shape[0], k, dtype=image.dtype, device=image.device)
        sums.index_add_(1, flat, pixels)
        counts = torch.bincount(flat, minlength=k).clamp(min=1).to(image.dtype)
        return (sums / counts)[:, flat].view_as(image)
    if baseline == "blur":
        return gaussian_blur(image[None], max(image.shape[-2:]) / 20)[0]
    raise ValueError(f"baseline must be one of {list(BASELINES)} or a number, got {baseline!r}")


def perturbed_images(image: torch.Tensor, base: torch.Tensor, segments: torch.Tensor,
                     z: torch.Tensor) -> torch.Tensor:
    """h(z): the image with superpixel k kept where z_k = 1, the baseline where z_k = 0.

    image, base: (C, H, W); segments: (H, W); z: (S, K) 0/1 -> (S, C, H, W).
    """
    keep = z.to(image.dtype)[:, segments]  # (S, H, W): the switch of each pixel's superpixel
    return torch.addcmul(base, keep[:, None], image - base)


# --------------------------------------------------------------------------- sampling
def sample_switches(samples: int, k: int, generator: torch.Generator | None = None,
                    device=None, scheme: str = "image") -> torch.Tensor:
    """(samples, k) 0/1 switches; the first row is the original (all on).

    scheme "image" (the default): every other row switches each feature on or off with
    probability 1/2, independently, as the `lime` package's `LimeImageExplainer` does
    (`randint(0, 2)` per superpixel) and as Captum's `Lime` does by default (Bernoulli 1/2).
    Most rows then have about half of the features off: the samples sit at a cosine distance
    of about 1 - sqrt(1/2) = 0.29 from the original, few of them much nearer or farther.
    scheme "count": the `lime` package's *text* explainer (`LimeTextExplainer`): each other
    row switches off a uniformly drawn number 1..k of features, chosen at random, so the
    samples cover every distance from the original, near and far.
    """
    if scheme == "image":
        on = torch.randint(0, 2, (samples - 1, k), generator=generator, device=device)
        return torch.cat([torch.ones(1, k, device=device), on.float()])
    if scheme != "count":
        raise ValueError(f"scheme must be 'image' or 'count', got {scheme!r}")
    off_count = torch.randint(1, k + 1, (samples - 1, 1), generator=generator, device=device)
    order = torch.rand(samples - 1, k, generator=generator, device=device).argsort(dim=1)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(k, device=device).expand(
        samples - 1, k))
    off = rank < off_count
    return torch.cat([torch.ones(1, k, device=device), (~off).float()])


def kernel_weights(distance: torch.Tensor, kernel_width: float) -> torch.Tensor:
    """pi = sqrt(exp(-d^2 / w^2)): the `lime` package's exponential kernel."""
    return torch.exp(-distance ** 2 / kernel_width ** 2).sqrt()


def _cosine_distance_to_ones(z: torch.Tensor) -> torch.Tensor:
    """d(z) = 1 - cos(z, 1) = 1 - sqrt(|z| / K) for 0/1 rows (1 for the all-off row)."""
    return 1 - (z.sum(dim=1) / z.shape[1]).sqrt()


# --------------------------------------------------------------------------- surrogates
def weighted_r2(y: torch.Tensor, prediction: torch.Tensor, weights: torch.Tensor) -> float:
    """R^2 = 1 - sum_s w_s (y_s - g_s)^2 / sum_s w_s (y_s - ybar_w)^2, ybar_w the weighted mean.

    1: the surrogate imitates the model perfectly on these samples; 0: no better than a
    constant; < 0: worse.
    """
    y, prediction, weights = (t.double() for t in (y, prediction, weights))
    mean = (weights * y).sum() / weights.sum()
    total = (weights * (y - mean) ** 2).sum()
    residual = (weights * (y - prediction) ** 2).sum()
    return 1.0 - (residual / total).item() if total > 0 else float(residual == 0)


@dataclasses.dataclass
class Surrogate:
    """The simple model g fitted near one input, and how well it imitates the model f.

    kind: "linear" or "tree". z (S, K): the samples in the interpretable space (row 0: the
    original input); y (S,): the model's scores on them; weights (S,): their kernel weights.
    coefficients (K,): the explanation (linear: beta; tree: the tree interpreter's
    contribution of each feature along the original's path). intercept: linear: beta_0;
    tree: the root's value. So g(original) = intercept + coefficients . z_original for the
    linear model (z_original = 1 for superpixels) and intercept + sum(coefficients) for a tree.
    tree: the fitted `sklearn.tree.DecisionTreeRegressor` (None for linear). fidelity:
    weighted R^2 on the samples; fidelity_fresh: on `fresh_z` / `fresh_y` / `fresh_weights`,
    samples drawn anew, never seen by the fit. names: the features' names.
    """

    kind: str
    z: torch.Tensor
    y: torch.Tensor
    weights: torch.Tensor
    coefficients: torch.Tensor
    intercept: float
    tree: object | None
    fidelity: float
    fidelity_fresh: float | None = None
    fresh_z: torch.Tensor | None = None
    fresh_y: torch.Tensor | None = None
    fresh_weights: torch.Tensor | None = None
    names: list[str] | None = None

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        """g(z) for rows z (S, K) of the interpretable space."""
        z = torch.as_tensor(z, dtype=torch.float64, device=self.coefficients.device)
        z = z.reshape(-1, self.coefficients.shape[0])
        if self.tree is not None:
            return torch.from_numpy(self.tree.predict(z.cpu().numpy())).to(z.device)
        return self.intercept + z @ self.coefficients.double()


def _ridge(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, alpha: float):
    """Weighted ridge regression with an unpenalised intercept, in closed form (float64):

        min_{beta0, beta} sum_s w_s (y_s - beta0 - z_s . beta)^2 + alpha ||beta||^2
        beta = (Zc^T W Zc + alpha I)^-1 Zc^T W yc,  beta0 = ybar_w - zbar_w . beta

    with Zc, yc centred on their weighted means (= scikit-learn's `Ridge(alpha)` with
    sample_weight). alpha = 0 is weighted least squares (a pseudo-inverse when singular).
    """
    z, y, w = z.double(), y.double(), w.double()
    zbar = (w[:, None] * z).sum(0) / w.sum()
    ybar = (w * y).sum() / w.sum()
    zc, yc = z - zbar, y - ybar
    gram = zc.T @ (w[:, None] * zc) + alpha * torch.eye(z.shape[1], dtype=z.dtype,
                                                        device=z.device)
    rhs = zc.T @ (w * yc)
    if alpha == 0:
        beta = torch.linalg.lstsq(gram, rhs[:, None]).solution[:, 0]
    else:
        beta = torch.linalg.solve(gram, rhs)
    return beta, (ybar - zbar @ beta).item()


def tree_contributions(tree, z_original) -> tuple[float, np.ndarray]:
    """The tree interpreter: walk the original input's path from the root to its leaf; each
    split on feature j adds (value of the child taken - value of the node) to feature j.

        g(z) = value(root) + sum_j contribution_j      (exactly: the leaf's value)

    Returns (value of the root, contributions (K,)). Features never split on get 0.
    """
    t = tree.tree_
    z = np.asarray(z_original, dtype=np.float64).reshape(-1)
    contributions = np.zeros(z.shape[0])
    node = 0
    while t.children_left[node] != -1:  # -1: a leaf
        feature = t.feature[node]
        child = (t.children_left[node] if z[feature] <= t.threshold[node]
                 else t.children_right[node])
        contributions[feature] += t.value[child, 0, 0] - t.value[node, 0, 0]
        node = child
    return float(t.value[0, 0, 0]), contributions


def fit_surrogate(z: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, kind: str = "linear",
                  alpha: float = 1.0, max_depth: int = 3, names=None) -> Surrogate:
    """Fit g to (z, y) with sample weights: ridge (`alpha`) or a `DecisionTreeRegressor` of
    depth <= max_depth (scikit-learn; sample_weight honoured; random_state=0). Row 0 of z is
    the original input, whose features the coefficients explain."""
    if kind == "linear":
        beta, intercept = _ridge(z, y, weights, alpha)
        tree, prediction = None, intercept + z.double() @ beta
    elif kind == "tree":
        from sklearn.tree import DecisionTreeRegressor

        tree = DecisionTreeRegressor(max_depth=max_depth, random_state=0)
        tree.fit(z.double().cpu().numpy(), y.double().cpu().numpy(),
                 sample_weight=weights.double().cpu().numpy())
        intercept, contributions = tree_contributions(tree, z[0].cpu().numpy())
        beta = torch.from_numpy(contributions).to(z.device)
        prediction = torch.from_numpy(tree.predict(z.double().cpu().numpy())).to(z.device)
    else:
        raise ValueError(f"surrogate must be one of {list(SURROGATES)}, got {kind!r}")
    return Surrogate(kind, z, y, weights, beta, intercept, tree,
                     weighted_r2(y, prediction, weights), names=names)


def _check_common(samples, kernel_width, surrogate, max_depth, alpha, batch_size):
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 2:
        raise ValueError(f"samples must be an int >= 2 (a surrogate needs at least two "
                         f"samples to fit), got {samples!r}")
    if kernel_width is not None and not (isinstance(kernel_width, (int, float))
                                         and kernel_width > 0):
        raise ValueError(f"kernel_width must be a positive number, got {kernel_width!r}")
    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate must be one of {list(SURROGATES)}, got {surrogate!r}")
    check_positive_int(max_depth, "max_depth")
    if not isinstance(alpha, (int, float)) or alpha < 0:
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    check_positive_int(batch_size, "batch_size", allow_none=True)


def _targets(model: nn.Module, inputs: torch.Tensor, target) -> torch.Tensor:
    """The checked targets (N,); the class count comes from one pass on the first input."""
    with torch.inference_mode():
        classes = forward(model, inputs[:1]).shape[1]
    return check_target(target, inputs.shape[0], classes, inputs.device)


def _scores(model: nn.Module, make_batch, count: int, target: int, batch_size: int,
            progress: bool, desc: str) -> torch.Tensor:
    """The model's score for `target` on inputs make_batch(start, stop), `batch_size` at a time,
    in inference mode (no autograd bookkeeping): the cost of LIME."""
    scores = []
    starts = range(0, count, batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
            batch = make_batch(start, min(start + batch_size, count))
            scores.append(forward(model, batch)[:, target].double())
    return torch.cat(scores)


def _default_segments(inputs: torch.Tensor, segments) -> torch.Tensor:
    if segments is None:
        small = min(inputs.shape[-2:]) < 32
        segments = torch.stack([superpixels(x, "grid" if small else "slic", 50)
                                for x in inputs])
    return _check_segments(segments, inputs)


@reference("captum_lime", "Captum Lime")
@options(
    Option("samples", "int", 1000, "perturbed images the surrogate is fitted to", low=20,
           high=5000, log=True),
    Option("kernel_width", "float", 0.25, "what 'near' means: the width of the kernel on the "
           "cosine distance", low=0.01, high=2.0, log=True),
    Option("baseline", "choice", "mean", "what a switched-off superpixel shows",
           choices=("mean", "blur", 0.0)),
    Option("surrogate", "choice", "linear", "the simple model", choices=SURROGATES),
    Option("max_depth", "int", 3, "depth of the tree surrogate", low=1, high=12),
)
def lime(model: nn.Module, inputs: torch.Tensor, target, segments=None, samples: int = 1000,
         kernel_width: float = 0.25, baseline="mean", surrogate: str = "linear",
         max_depth: int = 3, alpha: float = 1.0, generator: torch.Generator | None = None,
         return_surrogate: bool = False, batch_size: int | None = None,
         progress: bool = False):
    """LIME on superpixels: a weight per superpixel, painted back at input resolution (N, H, W).

        g* = argmin_g sum_s pi(z_s) (f_c(h(z_s)) - g(z_s))^2 + alpha ||beta||^2,
        pi(z) = sqrt(exp(-d(z)^2 / w^2)),  d(z) = 1 - cos(z, 1)   (w = kernel_width)

    Ribeiro, Singh & Guestrin, "Why Should I Trust You?", KDD 2016, as in the `lime` package's
    `LimeImageExplainer`: z from `sample_switches` (row 0: the original; in every other row
    each superpixel on with probability 1/2), the cosine distance of z to the all-on vector,
    kernel width 0.25, `Ridge(alpha=1)`. Unlike the `lime` package
    (probabilities) and as Captum, f_c is the model's output (the logit) for class c.

    segments: (H, W) or (N, H, W) superpixel ids; None: `superpixels(x, "slic", 50)` (a
    "grid" for images under 32 px). baseline: "mean" (each superpixel's mean colour), "blur"
    or a number (`baseline_image`). surrogate: "linear" (the attribution is beta) or "tree"
    (a `DecisionTreeRegressor` of depth <= max_depth; the attribution is each superpixel's
    tree-interpreter contribution, `tree_contributions`). generator: the random samples'
    source, for a repeatable run. batch_size: perturbed images per forward pass (None:
    `convention.rows_per_pass` without gradients).
    return_surrogate: also return a list of N `Surrogate`s (the fit, its samples, its
    fidelity on them and on `samples // 4` fresh samples, which cost that many more passes).

    Checked against Captum `Lime` given the same samples, kernel weights, baseline and
    scikit-learn `Ridge`. Cost: `samples` forward passes per input, in batches.
    """
    inputs = check_model_and_inputs(model, inputs, ndim=4)
    _check_common(samples, kernel_width, surrogate, max_depth, alpha, batch_size)
    segments = _default_segments(inputs, segments)
    batch_size = batch_size or rows_per_pass(inputs, backward=False)
    maps, fits = [], []
    with unchanged(model):
        t = _targets(model, inputs, target)
        for n in range(inputs.shape[0]):
            x, seg = inputs[n], segments[n]
            k = int(seg.max()) + 1
            base = baseline_image(x, seg, baseline)

            def evaluate(z, x=x, seg=seg, base=base, c=int(t[n])):
                return _scores(model, lambda a, b: perturbed_images(x, base, seg, z[a:b]),
                               len(z), c, batch_size, progress, "lime")

            z = sample_switches(samples, k, generator, inputs.device)
            weights = kernel_weights(_cosine_distance_to_ones(z), kernel_width)
            fit = fit_surrogate(z, evaluate(z), weights, surrogate, alpha, max_depth,
                                names=[f"superpixel {j}" for j in range(k)])
            maps.append(fit.coefficients.to(x.dtype)[seg])
            if return_surrogate:
                _fresh_fidelity(
                    fit, max(2, samples // 4), evaluate,
                    lambda m, k=k: sample_switches(m + 1, k, generator, inputs.device)[1:],
                    lambda z: kernel_weights(_cosine_distance_to_ones(z), kernel_width))
                fits.append(fit)
    attribution = torch.stack(maps)
    return (attribution, fits) if return_surrogate else attribution


def _fresh_fidelity(fit: Surrogate, count: int, evaluate, draw, weigh) -> None:
    """Fill in fit.fidelity_fresh: weighted R^2 on `count` new samples from `draw`."""
    fit.fresh_z = draw(count)
    fit.fresh_y = evaluate(fit.fresh_z)
    fit.fresh_weights = weigh(fit.fresh_z)
    fit.fidelity_fresh = weighted_r2(fit.fresh_y, fit.predict(fit.fresh_z), fit.fresh_weights)


# --------------------------------------------------------------------------- tables
def _sigma(background: torch.Tensor) -> torch.Tensor:
    """The background's per-feature standard deviation (1 where a feature is constant)."""
    sigma = background.std(dim=0, unbiased=False)
    return torch.where(sigma > 0, sigma, torch.ones_like(sigma))


def _tabular_parts(x: torch.Tensor, background: torch.Tensor, samples: int, generator):
    """Samples around x and their standardised coordinates for `lime_tabular` and Captum.

    sigma: the background's per-feature standard deviation (1 for a constant feature);
    mu: its mean. Row 0 is x itself; the others x + sigma * eps, eps ~ N(0, I).
    Returns (values (S, D), standardised u = (values - mu) / sigma, eps).
    """
    mu, sigma = background.mean(dim=0), _sigma(background)
    eps = torch.randn(samples - 1, x.shape[0], generator=generator, device=x.device,
                      dtype=x.dtype)
    eps = torch.cat([torch.zeros_like(eps[:1]), eps])
    values = x + sigma * eps
    return values, (values - mu) / sigma, eps


def _check_background(inputs: torch.Tensor, background) -> torch.Tensor:
    background = check_inputs(background, ndim=2, name="background")
    if background.shape[1] != inputs.shape[1] or background.shape[0] < 2:
        raise ValueError(f"background must be (M, D) with M >= 2 rows and D = {inputs.shape[1]} "
                         f"features like the inputs; got {tuple(background.shape)}")
    return background.to(inputs.device, inputs.dtype)


@reference("captum_lime_tabular", "Captum LimeBase")
@options(
    Option("samples", "int", 1000, "rows drawn around the input", low=20, high=5000, log=True),
    Option("kernel_width", "float", 4.1, "what 'near' means, in standard deviations",
           low=0.1, high=20.0, log=True),
    Option("surrogate", "choice", "linear", "the simple model", choices=SURROGATES),
    Option("max_depth", "int", 3, "depth of the tree surrogate", low=1, high=12),
)
def lime_tabular(model: nn.Module, inputs: torch.Tensor, target, background: torch.Tensor,
                 samples: int = 1000, kernel_width: float | None = None,
                 surrogate: str = "linear", max_depth: int = 3, alpha: float = 1.0,
                 generator: torch.Generator | None = None, return_surrogate: bool = False,
                 batch_size: int | None = None, progress: bool = False):
    """LIME on a table: a weight per feature (N, D).

        v_s = x + sigma * eps_s,  eps_s ~ N(0, I)       (row 0: x itself)
        u_s = (v_s - mu) / sigma                         (standardised, mu, sigma: background)
        pi_s = sqrt(exp(-||u_s - u_x||^2 / w^2)),  w = 0.75 sqrt(D) by default
        g* = argmin_g sum_s pi_s (f_c(v_s) - g(u_s))^2 + alpha ||beta||^2

    As the `lime` package's `LimeTabularExplainer` without discretisation, sampling around
    the instance: the background's per-feature scale sigma sets how far samples go; the
    surrogate reads standardised values, so a linear coefficient is "score per standard
    deviation of this feature". surrogate "linear": the attribution is beta (as `lime`
    reports it); "tree": each feature's tree-interpreter contribution at x.

    background: (M, D) rows that set mu and sigma (e.g. the training set). Other arguments
    as `lime`. Checked against Captum `LimeBase` given the same samples, weights and `Ridge`.
    """
    inputs = check_model_and_inputs(model, inputs, ndim=2)
    background = _check_background(inputs, background)
    _check_common(samples, kernel_width, surrogate, max_depth, alpha, batch_size)
    width = kernel_width or 0.75 * math.sqrt(inputs.shape[1])
    batch_size = batch_size or rows_per_pass(inputs, backward=False)
    rows, fits = [], []
    with unchanged(model):
        t = _targets(model, inputs, target)
        for n in range(inputs.shape[0]):
            values, u, eps = _tabular_parts(inputs[n], background, samples, generator)

            def evaluate(v, n=n):
                return _scores(model, lambda a, b: v[a:b], len(v), int(t[n]), batch_size,
                               progress, "lime")

            weights = kernel_weights(eps.double().norm(dim=1), width)
            fit = fit_surrogate(u, evaluate(values), weights, surrogate, alpha, max_depth)
            rows.append(fit.coefficients.to(inputs.dtype))
            if return_surrogate:
                mu, sigma, u_x = background.mean(dim=0), _sigma(background), u[0]
                _fresh_fidelity(
                    fit, max(2, samples // 4),
                    lambda u, mu=mu, sigma=sigma: evaluate(mu + sigma * u.to(mu.dtype)),
                    lambda m, n=n: _tabular_parts(inputs[n], background, m + 1, generator)[1][1:],
                    lambda u, u_x=u_x: kernel_weights((u - u_x).double().norm(dim=1), width))
                fits.append(fit)
    attribution = torch.stack(rows)
    return (attribution, fits) if return_surrogate else attribution


# --------------------------------------------------------------------------- tree regularisation
def two_moons(n: int = 300, noise: float = 0.35, seed: int = 0) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """scikit-learn's two interleaving half-moons: x (n, 2) float32, y (n,) long. Seeded."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n, noise=noise, random_state=seed)
    return torch.from_numpy(x).float(), torch.from_numpy(y).long()


def average_path_length(model: nn.Module, x: torch.Tensor, min_samples_leaf: int = 25):
    """Omega(W): fit a `DecisionTreeClassifier(min_samples_leaf)` to the model's predicted
    classes on x; return (the mean number of decisions from root to leaf over x, the tree).

    Counted as decision_path(x).sum(1).mean() - 1 (nodes on the path, minus the leaf). The
    public code of the paper averages the leaves' node *ids* instead of their depths: a bug.
    """
    from sklearn.tree import DecisionTreeClassifier

    with torch.no_grad():
        predicted = model(x).argmax(dim=1).cpu().numpy()
    features = x.detach().cpu().numpy()
    tree = DecisionTreeClassifier(min_samples_leaf=min_samples_leaf, random_state=0)
    tree.fit(features, predicted)
    return float(tree.decision_path(features).sum(axis=1).mean() - 1), tree


@dataclasses.dataclass
class TreeRegularized:
    """What `tree_regularized_training` returns: the network, the final tree fit to it, its
    average path length, the network's accuracy on the training data and on `test`, the
    tree's fidelity (agreement with the network), and the history per step (cross-entropy,
    the path length measured at the latest refit, the surrogate's estimate Omega_hat)."""

    model: nn.Module
    tree: object
    path_length: float
    accuracy: float
    test_accuracy: float | None
    fidelity: float
    history: dict


def _flat_weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.reshape(-1) for p in model.parameters()])


def tree_regularized_training(x: torch.Tensor, y: torch.Tensor, strength: float = 0.0,
                              hidden: tuple[int, ...] = (32, 32), steps: int = 300,
                              lr: float = 1e-2, refit_every: int = 20,
                              min_samples_leaf: int = 25, test=None,
                              generator: torch.Generator | None = None,
                              progress: bool = False) -> TreeRegularized:
    """Train an MLP on (x, y) with Wu et al.'s tree regularisation:

        loss(W) = cross-entropy(W) + strength * Omega_hat(W)

    Omega(W) = `average_path_length`: the mean decision-path length of a tree fit to the
    network's predictions. It is not differentiable, so a small surrogate network Omega_hat
    (flattened W -> 25 hidden units -> softplus) learns it from the weight vectors seen so
    far: every `refit_every` steps it is refit (100 steps of Adam, lr 1e-3, a little L2) on all
    (W, Omega(W)) pairs recorded, each step's true Omega plus 5 jittered copies of the current
    weights (W + 0.05 N(0, I) per parameter scale) so that it sees the neighbourhood.
    strength 0: plain training (Omega is still recorded, for the comparison).

    Wu, Hughes, Parbhoo, Zazzi, Roth & Doshi-Velez, "Beyond Sparsity: Tree Regularization of
    Deep Models for Interpretability", AAAI 2018 (code: dtak/tree-regularization-public;
    min_samples_leaf 25 and the 25-unit surrogate as there). x: (N, D) float, y: (N,) long;
    full-batch Adam at `lr`. generator: seeds the initial weights and the jitter, so two runs
    with the same generator seed differ only by `strength`. test: optional (x, y).
    """
    x = check_inputs(x, ndim=2, name="x")
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],) or y.is_floating_point():
        raise ValueError(f"y must be a LongTensor of {x.shape[0]} labels, got "
                         f"{getattr(y, 'shape', type(y).__name__)}")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength!r}")
    classes = int(y.max()) + 1
    seed = int(torch.randint(0, 2 ** 31, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        widths = (x.shape[1], *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        model = nn.Sequential(*layers, nn.Linear(widths[-1], classes)).to(x.device)
        n_weights = _flat_weights(model).numel()
        omega_hat = nn.Sequential(nn.Linear(n_weights, 25), nn.ReLU(), nn.Linear(25, 1),
                                  nn.Softplus()).to(x.device)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        seen_w: list[torch.Tensor] = []
        seen_omega: list[float] = []
        history: dict[str, list[float]] = {"loss": [], "path_length": [], "estimate": []}
        for step in tqdm(range(steps), desc="tree regularisation", disable=not progress,
                         leave=False):
            if step % refit_every == 0:
                current = _flat_weights(model).detach()
                scale = current.abs().mean()
                for jitter in range(6):
                    w = current if jitter == 0 else current + 0.05 * scale * torch.randn_like(
                        current)
                    seen_w.append(w)
                    seen_omega.append(_omega_of(model, w, x, min_samples_leaf))
                if strength > 0:
                    _fit_omega_hat(omega_hat, torch.stack(seen_w),
                                   torch.tensor(seen_omega, device=x.device))
            loss = F.cross_entropy(model(x), y)
            estimate = omega_hat(_flat_weights(model)[None])[0, 0]
            total = loss + strength * estimate if strength > 0 else loss
            optimiser.zero_grad()
            total.backward()
            optimiser.step()
            history["loss"].append(loss.item())
            history["estimate"].append(estimate.item())
            history["path_length"].append(seen_omega[-6])
    model.eval()
    path_length, tree = average_path_length(model, x, min_samples_leaf)
    with torch.no_grad():
        predicted = model(x).argmax(1)
        fidelity = float((torch.from_numpy(tree.predict(x.cpu().numpy())).to(x.device)
                          == predicted).float().mean())
        accuracy = float((predicted == y).float().mean())
        test_accuracy = (None if test is None else
                         float((model(test[0]).argmax(1) == test[1]).float().mean()))
    return TreeRegularized(model, tree, path_length, accuracy, test_accuracy, fidelity,
                           history)


def _omega_of(model: nn.Module, w: torch.Tensor, x: torch.Tensor, min_samples_leaf: int):
    """Omega at weights w (the model's own weights are put back afterwards)."""
    saved = _flat_weights(model).detach().clone()
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(w, model.parameters())
        omega = average_path_length(model, x, min_samples_leaf)[0]
        torch.nn.utils.vector_to_parameters(saved, model.parameters())
    return omega


def _fit_omega_hat(omega_hat: nn.Module, w: torch.Tensor, omega: torch.Tensor,
                   steps: int = 100) -> None:
    """Refit the surrogate Omega_hat(W) ~ Omega(W) on the recorded pairs (squared error)."""
    optimiser = torch.optim.Adam(omega_hat.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(steps):
        loss = F.mse_loss(omega_hat(w)[:, 0], omega)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
