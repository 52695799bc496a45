"""Chapter 09: evaluating explanations. Which map is right, when nobody knows the answer?

Real data has no ground truth for feature importance, so an explanation is judged by what
happens when the features it calls important are taken away. The trouble is how to take
them away: a black square or a grey patch is something the model never saw in training,
and the accuracy it loses may come from that, not from the information removed. Every
score of this chapter is a different answer to that problem.

    toy_roar            the 16-d toy set where the truth is known: true / random / inverted
                        rankings, with and without retraining (Hooker et al. 2019, Sec. 3)
    roar                RemOve And Retrain: replace the top t of each input's features by the
                        per-channel mean, retrain from scratch, test accuracy
                        (Hooker et al., "A Benchmark for Interpretability Methods in Deep
                        Neural Networks", NeurIPS 2019); keep=True: KAR, keep the top t;
                        `paper_estimators` the paper's estimators and settings;
                        `canvas_sweeps` the sweeps shipped for `cluttered-digits`
                        (`xai-course roar`), read back by `shipped_table`
    deletion_insertion  delete the most relevant pixels first / insert them into a blurred
                        image, the class probability along the way and its area
                        (Petsiuk et al., "RISE", BMVC 2018)
    road                RemOve And Debias: no retraining, the removed pixels filled by noisy
                        linear imputation so that the mask's shape leaks nothing
                        (Rong et al., "A Consistent and Efficient Evaluation Strategy for
                        Attribution Methods", ICML 2022)
    sanity_check        randomise the model's layers from the top: does the map care?
                        (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018)
    pointing_game       is the map's maximum on the object? (Zhang et al., "Top-down Neural
                        Attention by Excitation Backprop", ECCV 2016 / IJCV 2018)
    energy_in_mask      the share of the map's positive mass on the object (the
                        energy-based pointing game of Wang et al., "Score-CAM", CVPRW 2020)
    effective_heat_ratio  the share of the hottest pixels that lie on the object, over all
                        heat thresholds (Zhang et al., "Fine-grained Neural Network
                        Explanation by Identifying Input Features with Predictive
                        Information" (InputIBA), NeurIPS 2021)

The localisation scores need masks of the evidence: `cluttered-digits` has them (the digit's
pixels). They measure agreement with a human's idea of the evidence, not faithfulness to
the model: a model that reads the clutter is right to be explained by a map on the clutter.

Checked (tests/test_evaluation.py): the toy set against the paper's finding; the pointing
game, energy in mask and the deletion and insertion curves against Quantus 0.6; ROAD's
imputation against pytorch-grad-cam's (and its residual); the effective heat ratio on a
hand-computed map; serial, process-pool and Dask ROAR sweeps against each other; the
oracle and random controls on `cluttered-digits`, and a point of the shipped sweep recomputed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .convention import (
    check_choice,
    check_inputs,
    check_model_and_inputs,
    check_module,
    check_number,
    check_positive_int,
    check_target,
    forward,
    model_device,
    rows_per_pass,
    unchanged,
)
from .images import gaussian_blur

__all__ = [
    "toy_data",
    "toy_roar",
    "feature_ranks",
    "remove_features",
    "sobel",
    "random_importance",
    "oracle_importance",
    "paper_estimators",
    "rank_features",
    "roar",
    "train_canvas_model",
    "sweep_data",
    "course_estimators",
    "as_trained",
    "canvas_sweeps",
    "shipped_table",
    "Curve",
    "deletion_insertion",
    "imputation_system",
    "noisy_linear_imputation",
    "road",
    "pointing_game",
    "energy_in_mask",
    "effective_heat_ratio",
    "correlation_length",
    "randomisable_layers",
    "sanity_check",
    "CourseMethod",
    "leaderboard_methods",
    "localisation_scores",
    "make_localisation_table",
]

FILLS = ("channel-mean", "zero")
SCORES = ("probability", "logit")


# --------------------------------------------------------------------------- the toy set
def toy_data(n: int, a: np.ndarray, d: np.ndarray, rng: np.random.Generator):
    """n examples of ROAR's toy set (Hooker et al. 2019, Sec. 3): x = a z/10 + d eta + eps/10.

    z, eta ~ N(0, 1) are scalars and eps ~ N(0, I_16) is a vector, all drawn per example;
    a has non-zeros only in its first 4 entries, so only those 4 features carry z, and the
    label is y = 1[z > 0]. d eta is a distractor shared by all 16 features: a linear model
    can cancel it with the 12 uninformative features, which is why they matter to it.
    Returns (x (n, 16), y (n,)).
    """
    z = rng.standard_normal(n)
    eta = rng.standard_normal(n)
    eps = rng.standard_normal((n, len(a)))
    x = a * z[:, None] / 10 + d * eta[:, None] + eps / 10
    return x, (z > 0).astype(np.int64)


def _least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """w minimising ||X w - (2y - 1)||^2, X = [x, 1]: a linear classifier fit to labels +-1.

    Solved by the normal equations X^T X w = X^T (2y - 1), a 17 x 17 system (lstsq on it:
    a removed feature is a constant column, and any solution gives the same fit X w).
    """
    design = np.c_[x, np.ones(len(x))]
    return np.linalg.lstsq(design.T @ design, design.T @ (2.0 * y - 1.0), rcond=None)[0]


def _linear_accuracy(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(((np.c_[x, np.ones(len(x))] @ w > 0) == y).mean())


def toy_roar(n_train: int = 10_000, n_test: int = 10_000, seeds: int = 5,
             removed: Sequence[int] = tuple(range(0, 17, 2)),
             rankings: Sequence[str] = ("true", "random", "inverted"), problem_seed: int = 1,
             progress: bool = False):
    """ROAR on the 16-d toy set, where we know that features 0-3 are the informative ones.

    a, d in R^16 (`toy_data`) are drawn once from `problem_seed` (a ~ N(0, I) in its first 4
    entries, 0 elsewhere; d ~ N(0, I)); each seed draws fresh train and test sets and a fresh
    random ranking. A ranking orders the 16 features: "true" the 4 informative first (then
    the rest), "inverted" the reverse (the 12 uninformative first), "random" a permutation.
    For k in `removed`, the first k features of the ranking are replaced by their training
    mean in train and test, and the accuracy of a least-squares linear classifier is
    recorded twice: retrained on the modified train set (ROAR) and not retrained (the model
    fit to the full data, applied to the modified test set).

    The paper's finding: retrained, the inverted ranking keeps the accuracy until 12 of 16
    features are gone (any uninformative feature carries the distractor, so the rest still
    cancel it) while the true ranking drops at once; without retraining the inverted
    ranking already loses accuracy, because the model relied on the removed features to
    cancel the distractor. Removal without retraining punishes a correct ranking.

    Returns a tidy pandas table: ranking, removed, fraction, retrained, seed, accuracy.
    """
    import pandas as pd

    check_positive_int(n_train, "n_train")
    check_positive_int(n_test, "n_test")
    check_positive_int(seeds, "seeds")
    for name in rankings:
        check_choice(name, "ranking", ("true", "random", "inverted"))
    if any(not isinstance(k, int) or not 0 <= k <= 16 for k in removed):
        raise ValueError(f"removed must hold feature counts in 0..16, got {list(removed)}")
    problem = np.random.default_rng(problem_seed)
    a = np.zeros(16)
    a[:4] = problem.standard_normal(4)
    d = problem.standard_normal(16)
    rows = []
    for seed in tqdm(range(seeds), desc="toy ROAR", disable=not progress):
        rng = np.random.default_rng([problem_seed, seed])
        x_train, y_train = toy_data(n_train, a, d, rng)
        x_test, y_test = toy_data(n_test, a, d, rng)
        orders = {"true": np.arange(16), "inverted": np.arange(16)[::-1],
                  "random": rng.permutation(16)}
        mean = x_train.mean(0)
        w_full = _least_squares(x_train, y_train)
        for name in rankings:
            for k in removed:
                gone = orders[name][:k]
                train, test = x_train.copy(), x_test.copy()
                train[:, gone] = mean[gone]
                test[:, gone] = mean[gone]
                w = _least_squares(train, y_train)
                for retrained, weights in ((True, w), (False, w_full)):
                    rows.append(dict(ranking=name, removed=k, fraction=k / 16,
                                     retrained=retrained, seed=seed,
                                     accuracy=_linear_accuracy(weights, test, y_test)))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- ROAR / KAR
def feature_ranks(importance: torch.Tensor) -> torch.Tensor:
    """The rank of each value of each example, 0 for the most important (largest |e|).

    Ranks are over all values of an example (for an image, every channel of every pixel,
    as ROAR's code does), by |e| (ROAR squares the estimates: the same order). Ties go to
    the lower index (a stable sort), so a ranking is reproducible.
    """
    return _ranks(importance.detach().abs().reshape(len(importance), -1)).view(importance.shape)


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """ranks[n, i] = the position of values[n, i] in row n sorted from largest to smallest
    (ties: the lower index first)."""
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    positions = torch.arange(values.shape[1], device=values.device).expand_as(order)
    return ranks.scatter_(1, order, positions)


def remove_features(x: torch.Tensor, ranks: torch.Tensor, fraction: float, fill: torch.Tensor,
                    keep: bool = False) -> torch.Tensor:
    """x with its top `fraction` of values (by `ranks`) replaced by `fill` (ROAR), or with
    all but the top `fraction` replaced (keep=True: KAR, Keep And Retrain).

    fill broadcasts against one example, e.g. the per-channel mean (C, 1, 1).
    """
    k = round(fraction * ranks[0].numel())
    top = ranks < k
    replace = ~top if keep else top
    return torch.where(replace, fill.to(x.dtype), x)


def sobel(inputs: torch.Tensor) -> torch.Tensor:
    """The Sobel edge magnitude of each channel, sqrt(G_x^2 + G_y^2): ROAR's control that
    knows nothing of the model (edges are where an image has structure)."""
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                      dtype=inputs.dtype, device=inputs.device)
    kernels = torch.stack([gx, gx.T])[:, None]  # (2, 1, 3, 3)
    n, c, h, w = inputs.shape
    padded = F.pad(inputs.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    g = F.conv2d(padded, kernels)
    return g.pow(2).sum(1).sqrt().view(n, c, h, w)


def random_importance(inputs: torch.Tensor, generator: torch.Generator | None = None):
    """Uniform random importance: a random ranking, ROAR's random baseline."""
    return torch.rand(inputs.shape, generator=generator, dtype=inputs.dtype,
                      device=inputs.device)


def oracle_importance(inputs: torch.Tensor, mask: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """The ground truth as an estimator: every value inside the mask (N, H, W) ranks above
    every value outside it, in random order within each (mask + U[0, 1/2))."""
    jitter = random_importance(inputs, generator) / 2
    return mask.to(inputs.dtype)[:, None] + jitter


def paper_estimators(seed: int = 0) -> dict[str, Callable]:
    """The estimators of ROAR's ImageNet table with the paper's settings, from chapter 02,
    plus chapter 03's Grad-CAM (not in the paper; a map, counted for every channel):

        GRAD         the gradient
        IG           Integrated Gradients, black reference, 25 steps
        GB           Guided Backprop
        SG / SG-SQ / VAR-GRAD   SmoothGrad, SmoothGrad-squared and VarGrad of the gradient,
                     15 noisy samples each (draws from a generator seeded with `seed`)
        GRAD-CAM     Grad-CAM at the model's default layer

    The paper's finding to look for: GRAD, IG, GB and SG no better than random; SG-SQ and
    VAR-GRAD far better (ImageNet at 90% removed: VAR-GRAD 10.41%, random 63.53%).
    """
    from . import cam, gradients

    generator = torch.Generator().manual_seed(seed)
    noise = dict(samples=15, generator=generator)
    return {
        "GRAD": gradients.gradient,
        "IG": functools.partial(gradients.integrated_gradients, baseline="black", steps=25),
        "GB": gradients.guided_backprop,
        "SG": functools.partial(gradients.smoothgrad, **noise),
        "SG-SQ": functools.partial(gradients.smoothgrad_sq, **noise),
        "VAR-GRAD": functools.partial(gradients.vargrad, **noise),
        "GRAD-CAM": cam.grad_cam,
    }


def _estimate(method: Callable, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
              batch_size: int, desc: str, progress: bool) -> torch.Tensor:
    """method(model, x, y) in chunks, broadcast to x's shape (maps (N, H, W) to every channel)."""
    device = model_device(model)
    parts = []
    for start in tqdm(range(0, len(x), batch_size), desc=desc, disable=not progress,
                      leave=False):
        xb = x[start:start + batch_size].to(device)
        e = method(model, xb, y[start:start + batch_size].to(device)).detach()
        if e.ndim == xb.ndim - 1:
            e = e[:, None]
        parts.append(e.expand_as(xb).cpu())
    return torch.cat(parts)


def train_canvas_model(data, seed: int, epochs: int = 8, lr: float = 1e-2,
                       batch_size: int = 32, width: int = 16, progress: bool = False):
    """Train a fresh `ClutteredDigitsCNN` on `data` from seed `seed`: ROAR's `train_fn` for
    `cluttered-digits`. The zoo model's architecture and loop (zoo.digits' Adam + cosine), on
    the one (modified) train set every epoch instead of fresh canvases, and cheaper: a
    quarter of the width, a higher learning rate and small batches.

    Cost: 4,000 canvases x 8 epochs take about 18 s on one CPU thread and reach about 93%
    test accuracy (the zoo's width-64 model, trained for much longer: 98%). ROAR retrains
    once per (estimator, fraction, seed), so this recipe sets what a sweep costs; use
    `functools.partial(train_canvas_model, epochs=..., width=...)` to choose another.
    """
    from .zoo import digits

    torch.manual_seed(seed)
    model = digits.ClutteredDigitsCNN(width=width)
    return digits.fit(model, lambda epoch: data, epochs=epochs, lr=lr,
                       batch_size=batch_size, progress=progress, desc=f"ROAR seed {seed}")


def sweep_data(n_train: int = 4000, n_test: int = 500):
    """The (train, test) canvases of the shipped `cluttered-digits` sweeps."""
    from . import zoo

    return (zoo.dataset("cluttered-digits", split="train", n=n_train),
            zoo.dataset("cluttered-digits", split="test", n=n_test))


def course_estimators(seed: int = 0) -> dict[str, Callable]:
    """`paper_estimators` and one method of chapters 04 and 05 each, at settings cheap enough
    to explain every canvas of a ROAR train set:

        OCCLUSION    chapter 04: 8 x 8 windows of zeros, stride 4 (225 passes per canvas)
        LIME         chapter 05: a grid of 8 x 8 cells, 200 samples (200 passes per canvas)
    """
    from . import perturbation, surrogates

    cells = surrogates.superpixels(torch.zeros(3, 64, 64), "grid", 64)
    return {
        **paper_estimators(seed),
        "OCCLUSION": functools.partial(perturbation.occlusion, window=8, stride=4),
        "LIME": functools.partial(surrogates.lime, segments=cells, samples=200,
                                  generator=torch.Generator().manual_seed(seed)),
    }


@contextlib.contextmanager
def _one_thread():
    """One torch thread for a ROAR job: the same numbers whichever worker runs it (a
    reduction split over threads adds in another order), and n workers on n cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _roar_point(train_fn, train, test, train_ranks, test_ranks, fraction, keep, fill, seed):
    """One ROAR job: modify train and test, retrain from scratch with `seed`; returns the
    test accuracy and the mean test cross-entropy of the new model."""
    with _one_thread():
        train = dataclasses.replace(
            train, x=remove_features(train.x, train_ranks, fraction, fill, keep))
        x_test = remove_features(test.x, test_ranks, fraction, fill, keep)
        model = train_fn(train, seed)
        device = model_device(model)
        with unchanged(model), torch.no_grad():
            model.eval()
            logits = torch.cat([model(x_test[s:s + 256].to(device)).cpu()
                                for s in range(0, len(x_test), 256)])
        accuracy = (logits.argmax(1) == test.y).double().mean().item()
        return accuracy, F.cross_entropy(logits.double(), test.y).item()


def _describe(function: Callable) -> str:
    """A name for a train_fn that is the same in every process (no memory address):
    module.name(arguments) for a functools.partial, module.name for a function."""
    if isinstance(function, functools.partial):
        arguments = [type(a).__name__ if isinstance(a, nn.Module) else repr(a)
                     for a in function.args]
        arguments += [f"{k}={v!r}" for k, v in sorted(function.keywords.items())]
        return f"{_describe(function.func)}({', '.join(arguments)})"
    name = getattr(function, "__qualname__", type(function).__qualname__)
    return f"{getattr(function, '__module__', '')}.{name}"


def _settings_path(path: Path) -> Path:
    return path.with_suffix(".json")


def rank_features(estimators: dict[str, Callable], dataset, model: nn.Module | None,
                  controls: Sequence[str] = ("random", "sobel", "oracle"), batch_size: int = 64,
                  control_seed: int = 0, progress: bool = True) -> dict[str, tuple]:
    """ROAR's first step: name -> (train ranks, test ranks), the `feature_ranks` of every
    train and test input by each estimator (evaluated on `model` with the true labels as
    targets) and by each control that applies ("oracle" needs masks, "sobel" images).

    The expensive part of a sweep that does not depend on the fraction, the seed or ROAR
    against KAR: compute it once and pass it to every `roar` call as `ranks=`.
    """
    train, test = dataset
    if estimators:
        check_module(model)
    controls = _applicable_controls(controls, train)
    generator = torch.Generator().manual_seed(control_seed)
    ranks = {}
    for name in [*estimators, *controls]:
        per_split = []
        for split, data in (("train", train), ("test", test)):
            if name == "random":
                e = random_importance(data.x, generator)
            elif name == "sobel":
                e = sobel(data.x)
            elif name == "oracle":
                e = oracle_importance(data.x, data.mask, generator)
            else:
                e = _estimate(estimators[name], model, data.x, data.y, batch_size,
                              f"{name} ({split})", progress)
            per_split.append(feature_ranks(e).to(torch.int32))  # half the bytes to ship
        ranks[name] = tuple(per_split)
    return ranks


def _applicable_controls(controls: Sequence[str], train) -> list[str]:
    for control in controls:
        check_choice(control, "control", ("random", "sobel", "oracle"))
    return [c for c in controls
            if (c != "oracle" or train.mask is not None) and (c != "sobel" or train.x.ndim == 4)]


def roar(estimators: dict[str, Callable], dataset, train_fn: Callable,
         fractions: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9), seeds: int | Sequence[int] = 3,
         keep: bool = False, fill: str = "channel-mean",
         executor: concurrent.futures.Executor | None = None, path: str | Path | None = None,
         model: nn.Module | None = None, controls: Sequence[str] = ("random", "sobel", "oracle"),
         batch_size: int = 64, control_seed: int = 0, ranks: dict | None = None,
         progress: bool = True):
    """RemOve And Retrain (Hooker et al., NeurIPS 2019); keep=True: Keep And Retrain (KAR).

    For each estimator e and fraction t: rank the values of every train and test input by
    |e| (`feature_ranks`), replace the top t of them by the per-channel mean of the train set
    (KAR: all but the top t), train a new model from scratch on the modified train set
    (`train_fn(train, seed) -> model`), and record its accuracy on the modified test set.
    A better estimator removes more of what matters, so the accuracy falls faster; because
    the model is retrained, what it loses is information, not its bearings on an image
    unlike any it was trained on.

    estimators: name -> method(model, inputs, target) (any method of the course, e.g.
    `functools.partial(gradients.smoothgrad_sq, samples=15)`), evaluated on `model`, a model
    trained on the unmodified data (None: `train_fn(train, 0)`, trained here), with the true
    labels as targets. Maps (N, H, W) count for every channel of their pixel. controls:
    built-in estimators that know nothing of the model, "random" (ROAR's baseline), "sobel"
    (edges) and "oracle" (the ground-truth masks, when the data has them; left out
    otherwise). dataset: (train, test), two zoo `Dataset`s.
    fill: "channel-mean" (ROAR) or "zero". seeds: a count (0..seeds-1) or the seeds.

    executor: any `concurrent.futures.Executor` runs the (estimator, fraction, seed) jobs,
    which are independent: a `ProcessPoolExecutor` on one machine, or a Dask cluster's
    `Client(...).get_executor()`; None runs them here, one after the other. `train_fn` must
    then be picklable (a module-level function or a functools.partial of one). Each job
    runs torch on one thread, so every executor gives the same numbers for the same seeds.
    Use processes, not threads: `train_canvas_model` seeds torch's global generator, which
    the jobs of a thread pool would share.

    path: where the table is saved (CSV, with its settings beside it as JSON): after every
    finished job, and a second call with the same settings skips the jobs already there,
    so an interrupted sweep resumes. Settings that differ from the saved ones raise.

    ranks: the rankings from `rank_features` for these estimators and controls, computed
    once for several sweeps (ROAR, KAR, without retraining); None: computed here.

    Returns a tidy pandas table: estimator, fraction, seed, keep, accuracy, loss (the mean
    test cross-entropy); its settings in `table.attrs["settings"]`.
    """
    import pandas as pd

    if model is not None:
        check_module(model)
    if not isinstance(estimators, dict) or not all(callable(m) for m in estimators.values()):
        raise TypeError("estimators must be a dict: name -> method(model, inputs, target)")
    if not callable(train_fn):
        raise TypeError("train_fn must be a function train_fn(train_dataset, seed) -> model")
    try:
        train, test = dataset
    except (TypeError, ValueError):
        raise TypeError("dataset must be a pair (train, test) of zoo Datasets") from None
    check_choice(fill, "fill", FILLS)
    fractions = [float(check_number(t, "fraction")) for t in fractions]
    if any(t > 1 for t in fractions):
        raise ValueError(f"fractions must be in [0, 1], got {fractions}")
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must be a positive int or a non-empty sequence of seeds")
    controls = _applicable_controls(controls, train)
    names = [*estimators, *controls]
    settings = dict(dataset=train.name, n_train=len(train), n_test=len(test), keep=bool(keep),
                    fill=fill, train_fn=_describe(train_fn), control_seed=control_seed)

    # 1. the importance of every value of every train and test input, by each estimator
    if ranks is None:
        if estimators and model is None:
            with _one_thread():
                model = train_fn(train, 0)
        ranks = rank_features(estimators, dataset, model, controls, batch_size, control_seed,
                              progress)
    missing = [name for name in names if name not in ranks]
    if missing:
        raise ValueError(f"ranks has no ranking for {missing}; it has {list(ranks)}")
    if fill == "channel-mean":
        dims = [0, *range(2, train.x.ndim)]
        fill_value = train.x.mean(dim=dims).reshape(-1, *[1] * (train.x.ndim - 2))
    else:
        fill_value = torch.zeros(())

    # 2. the saved table, if any: its jobs are skipped
    path = None if path is None else Path(path)
    table = pd.DataFrame(columns=["estimator", "fraction", "seed", "keep", "accuracy", "loss"])
    if path is not None and path.exists():
        if not _settings_path(path).exists():
            raise ValueError(f"{path} exists but its settings {_settings_path(path)} do not: "
                             f"it is not a table saved by roar; use another path")
        saved = json.loads(_settings_path(path).read_text())
        differ = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
        if differ:
            raise ValueError(f"{path} was made with other settings (saved, now): {differ}; "
                             f"use another path to start a new sweep")
        table = pd.read_csv(path)
    done = {(e, round(f, 6), s) for e, f, s in
            zip(table["estimator"], table["fraction"], table["seed"])}
    jobs = [(name, t, seed) for name in names for t in fractions for seed in seeds
            if (name, round(t, 6), seed) not in done]

    def record(job, result):
        nonlocal table
        row = pd.DataFrame([dict(estimator=job[0], fraction=job[1], seed=job[2],
                                 keep=bool(keep), accuracy=result[0], loss=result[1])])
        table = row if table.empty else pd.concat([table, row], ignore_index=True)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(path, index=False)
            _settings_path(path).write_text(json.dumps(settings, indent=1))

    # 3. the jobs: independent, so any executor can run them
    def arguments(job):
        name, t, seed = job
        return (train_fn, train, test, ranks[name][0], ranks[name][1], t, keep, fill_value,
                seed)

    bar = tqdm(total=len(jobs), desc="ROAR" if not keep else "KAR", disable=not progress)
    if executor is None:
        for job in jobs:
            record(job, _roar_point(*arguments(job)))
            bar.update()
    else:
        futures = {executor.submit(_roar_point, *arguments(job)): job for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            record(futures[future], future.result())
            bar.update()
    bar.close()
    order = {name: i for i, name in enumerate(names)}
    table = table.sort_values(["estimator", "fraction", "seed"],
                              key=lambda c: c.map(order) if c.name == "estimator" else c)
    table = table.reset_index(drop=True)
    table.attrs["settings"] = settings
    return table


def as_trained(model: nn.Module, train, seed: int) -> nn.Module:
    """A train_fn that does not train: `functools.partial(as_trained, model)` makes `roar`
    measure removal without retraining (the model trained on the unmodified data sees the
    modified test set), the comparison that shows why ROAR retrains."""
    return model


RESULTS = Path(__file__).parent / "results"
SWEEPS = ("roar", "kar", "no-retrain")


def canvas_sweeps(seeds: int = 2, executor: concurrent.futures.Executor | None = None,
                  directory: str | Path = RESULTS, progress: bool = True) -> dict[str, object]:
    """The shipped sweeps on `cluttered-digits` (`sweep_data`: 4,000 train and 500 test
    canvases; `train_canvas_model`; `course_estimators` and the three controls; fractions
    0.1 ... 0.9): ROAR with `seeds` seeds, KAR and removal without retraining with one.
    The estimators explain a model trained on the unmodified canvases (seed 0), once for
    the three sweeps. Saved as `<directory>/<sweep>-cluttered-digits.csv`; an interrupted
    run resumes. Cost on one core: about 12 minutes of explaining, then 18 s per job.
    The explaining uses the process's torch threads: the shipped tables were made with one
    (OMP_NUM_THREADS=1), and more threads can sum in another order and so rank a few
    near-equal values differently. Returns sweep -> table.
    """
    train, test = data = sweep_data()
    with _one_thread():
        model = train_canvas_model(train, 0, progress=progress)
    estimators = course_estimators()
    ranks = rank_features(estimators, data, model, progress=progress)
    directory = Path(directory)
    common = dict(estimators=estimators, dataset=data, model=model, ranks=ranks,
                  executor=executor, progress=progress)
    return {
        "roar": roar(train_fn=train_canvas_model, seeds=seeds, **common,
                     path=directory / "roar-cluttered-digits.csv"),
        "kar": roar(train_fn=train_canvas_model, seeds=1, keep=True, **common,
                    path=directory / "kar-cluttered-digits.csv"),
        "no-retrain": roar(train_fn=functools.partial(as_trained, model), seeds=1, **common,
                           path=directory / "no-retrain-cluttered-digits.csv"),
    }


def shipped_table(name: str):
    """A table shipped with the course, `xai_course/results/<name>.csv` (e.g.
    "roar-cluttered-digits", made by `canvas_sweeps`), with its settings in attrs."""
    import pandas as pd

    path = RESULTS / f"{name}.csv"
    if not path.exists():
        shipped = sorted(p.stem for p in RESULTS.glob("*.csv"))
        raise ValueError(f"no shipped table {name!r}; the course ships: {', '.join(shipped)}")
    table = pd.read_csv(path)
    if _settings_path(path).exists():
        table.attrs["settings"] = json.loads(_settings_path(path).read_text())
    return table


# --------------------------------------------------------------------------- curves
@dataclasses.dataclass
class Curve:
    """A score along a growing removal: `fractions` (S,) of the pixels changed, `scores`
    (N, S) of the target class, `auc` (N,) the trapezoid area under scores over fractions."""

    fractions: torch.Tensor
    scores: torch.Tensor
    auc: torch.Tensor


def _pixel_ranks(attribution: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Rank (N, H*W) of each pixel by its attribution summed over channels, 0 = largest
    (signed: the most positive evidence first). Ties go to the lower index."""
    a = check_inputs(attribution, name="attribution").detach()
    if a.shape == inputs.shape:
        a = a.sum(1)
    if a.shape != (inputs.shape[0], *inputs.shape[2:]):
        raise ValueError(f"attribution must have the inputs' shape {tuple(inputs.shape)} or "
                         f"(N, H, W) = {(inputs.shape[0], *inputs.shape[2:])}, got "
                         f"{tuple(a.shape)}")
    return _ranks(a.reshape(len(a), -1))


def _score(model, x, t, score):
    out = forward(model, x)
    values = out.softmax(1) if score == "probability" else out
    return values.gather(1, t[:, None])[:, 0]


def _path_scores(model, start, end, ranks, counts, t, score, batch_size, desc, progress):
    """Scores of the images whose `counts[k]` best-ranked pixels are taken from `end` and the
    rest from `start`, for every k: (N, K)."""
    n = len(start)
    per_pass = max(1, (batch_size or rows_per_pass(start, n * len(counts), backward=False))
                   // n)
    out = []
    with torch.no_grad():
        for k0 in tqdm(range(0, len(counts), per_pass), desc=desc, disable=not progress,
                       leave=False):
            ks = counts[k0:k0 + per_pass]
            changed = (ranks[None] < ks[:, None, None]).view(len(ks), n, 1, *start.shape[2:])
            x = torch.where(changed, end, start).reshape(-1, *start.shape[1:])
            out.append(_score(model, x, t.repeat(len(ks)), score).view(len(ks), n))
    return torch.cat(out).T


def deletion_insertion(model: nn.Module, inputs: torch.Tensor, target, attribution: torch.Tensor,
                       steps: int = 64, baseline: float | torch.Tensor = 0.0,
                       blur_sigma: float = 5.0, score: str = "probability",
                       batch_size: int | None = None, progress: bool = False):
    """Deletion and insertion curves (Petsiuk et al., "RISE", BMVC 2018) and their areas.

    Pixels are ranked by the attribution summed over channels, most positive first. With
    p = ceil(HW / steps) pixels a step, point k (k = 0..steps) of the

        deletion curve   is S_c(x with its k p top pixels set to `baseline`)   (lower AUC:
                         better; RISE deletes to black),
        insertion curve  is S_c(blur(x) with its k p top pixels put back from x) (higher AUC:
                         better; blur: a Gaussian of std `blur_sigma` px),

    S_c the softmax probability of the target (score="logit": the logit), at the fraction
    min(k p, HW) / HW of pixels changed; AUC is the trapezoid area over those fractions.
    All points of a batch are evaluated in as few passes as `rows_per_pass` allows.

    Returns (deletion, insertion): two `Curve`s. Checked: the deletion curve against Quantus
    `PixelFlipping` (black baseline), the insertion curve against PixelFlipping started from
    the blurred image and putting the original values back.
    """
    inputs = check_model_and_inputs(model, inputs, ndim=4)
    check_positive_int(steps, "steps")
    check_number(blur_sigma, "blur_sigma")
    check_choice(score, "score", SCORES)
    ranks = _pixel_ranks(attribution.to(inputs.device), inputs)
    x = inputs.detach()
    pixels = ranks.shape[1]
    per_step = math.ceil(pixels / steps)
    counts = torch.clamp(torch.arange(steps + 1, device=x.device) * per_step, max=pixels)
    fractions = counts.to(x.dtype) / pixels
    fill = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    with unchanged(model):
        model.eval()
        t = check_target(target, len(x), forward(model, x[:1]).shape[1], x.device)
        deleted = _path_scores(model, x, fill, ranks, counts, t, score, batch_size,
                               "deletion", progress)
        inserted = _path_scores(model, gaussian_blur(x, blur_sigma), x, ranks, counts, t,
                                score, batch_size, "insertion", progress)
    curves = []
    for scores in (deleted, inserted):
        curves.append(Curve(fractions, scores, torch.trapezoid(scores, fractions, dim=1)))
    return tuple(curves)


# --------------------------------------------------------------------------- ROAD
# The 8 neighbours of a pixel and their weights in ROAD's imputation: (row, column) offset.
NEIGHBOURS = ((-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
              (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12))


def imputation_system(image: np.ndarray, missing: np.ndarray):
    """ROAD's linear system for the missing pixels of one image (Rong et al. 2022, Sec. 4).

    Each missing pixel u_i is the weighted mean of its neighbours j inside the image
    (weights w_j: 1/6 for the 4 direct ones, 1/12 for the 4 diagonal ones):

        W_i u_i - sum_{j missing} w_j u_j = sum_{j known} w_j x_j,   W_i = sum_j w_j,

    one equation per missing pixel and one right-hand side per channel, so the values
    diffuse in from the known pixels around a hole (a discrete Laplace equation).
    image: (C, H, W); missing: (H, W) bool. Returns (A (M, M) scipy CSR, b (M, C), index (M,)
    the flat pixel index of each unknown).
    """
    from scipy import sparse

    c, h, w = image.shape
    index = np.flatnonzero(missing)
    unknown = np.full(h * w, -1)
    unknown[index] = np.arange(len(index))
    row, col = np.divmod(index, w)
    pixels = image.reshape(c, -1)
    rows, cols, vals = [], [], []
    total = np.zeros(len(index))
    b = np.zeros((len(index), c))
    for dr, dc, weight in NEIGHBOURS:
        r, q = row + dr, col + dc
        inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
        i = np.flatnonzero(inside)
        j = r[inside] * w + q[inside]
        total[i] += weight
        hole = unknown[j] >= 0
        rows.append(i[hole])
        cols.append(unknown[j[hole]])
        vals.append(np.full(hole.sum(), -weight))
        b[i[~hole]] += weight * pixels[:, j[~hole]].T
    rows.append(np.arange(len(index)))
    cols.append(np.arange(len(index)))
    vals.append(total)
    a = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(len(index), len(index)))
    return a, b, index


def noisy_linear_imputation(image: torch.Tensor, missing: torch.Tensor, noise: float = 0.01,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """`image` (C, H, W) with its `missing` (H, W) pixels imputed: the solution of
    `imputation_system` (scipy's sparse direct solver), plus N(0, noise^2) per value."""
    from scipy.sparse.linalg import spsolve

    check_number(noise, "noise")
    a, b, index = imputation_system(image.detach().cpu().double().numpy(),
                                    missing.detach().cpu().numpy().astype(bool))
    out = image.detach().clone().reshape(image.shape[0], -1)
    if len(index):
        u = torch.as_tensor(spsolve(a.tocsc(), b).reshape(len(index), -1).T, dtype=image.dtype)
        u = u.to(image.device)
        if noise > 0:
            u = u + noise * torch.randn(u.shape, generator=generator, dtype=u.dtype).to(u.device)
        out[:, torch.as_tensor(index, device=image.device)] = u
    return out.view_as(image)


def road(model: nn.Module, inputs: torch.Tensor, target, attribution: torch.Tensor,
         fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9),
         most_relevant_first: bool = True, noise: float = 0.01,
         generator: torch.Generator | None = None, progress: bool = False):
    """RemOve And Debias (Rong et al., "A Consistent and Efficient Evaluation Strategy for
    Attribution Methods", ICML 2022): removal without retraining, done so that the removal
    itself tells the model nothing.

    The attribution is summed over channels and min-max normalised, ties broken by
    1e-4 N(0, 1); for each fraction p the top p of the pixels (MoRF, most relevant first; or
    the bottom p, LeRF) are removed and filled by `noisy_linear_imputation`: a removed pixel
    becomes the mean of its neighbours, so a hole's shape is not visible, as it would be
    with a constant fill. The model is not retrained. Returns a `Curve`: the target's softmax
    probability (N, len(fractions)) and its area. MoRF: a lower curve is better; LeRF: a
    higher one. noise: the std of the imputation's noise (0: none); generator: for the
    ties' and the noise's draws.
    """
    inputs = check_model_and_inputs(model, inputs, ndim=4)
    check_number(noise, "noise")
    fractions = [float(check_number(p, "fraction")) for p in fractions]
    if any(p > 1 for p in fractions):
        raise ValueError(f"fractions must be in [0, 1], got {fractions}")
    x = inputs.detach()
    a = check_inputs(attribution, name="attribution").detach().to(x.device)
    a = a.sum(1) if a.shape == x.shape else a
    if a.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"attribution must have the inputs' shape {tuple(x.shape)} or "
                         f"(N, H, W), got {tuple(attribution.shape)}")
    flat = a.reshape(len(a), -1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    flat = (flat - low) / (high - low).clamp_min(1e-12)
    flat = flat + 1e-4 * torch.randn(flat.shape, generator=generator,
                                     dtype=flat.dtype).to(flat.device)
    order = flat.argsort(1, descending=most_relevant_first)
    pixels = flat.shape[1]
    imputed = torch.empty((len(fractions), *x.shape), dtype=x.dtype, device=x.device)
    for i in tqdm(range(len(x)), desc="ROAD", disable=not progress, leave=False):
        for f, p in enumerate(fractions):
            missing = torch.zeros(pixels, dtype=torch.bool)
            missing[order[i, :round(p * pixels)].cpu()] = True
            imputed[f, i] = noisy_linear_imputation(x[i], missing.view(x.shape[2:]), noise,
                                                    generator)
    with unchanged(model), torch.no_grad():
        model.eval()
        t = check_target(target, len(x), forward(model, x[:1]).shape[1], x.device)
        rows = rows_per_pass(x, backward=False)
        flat_x = imputed.reshape(-1, *x.shape[1:])
        scores = torch.cat([_score(model, flat_x[s:s + rows], t.repeat(len(fractions))[s:s + rows],
                                   "probability") for s in range(0, len(flat_x), rows)])
    scores = scores.view(len(fractions), len(x)).T
    p = torch.tensor(fractions, dtype=x.dtype, device=x.device)
    return Curve(p, scores, torch.trapezoid(scores, p, dim=1))


# --------------------------------------------------------------------------- localisation
def _maps_and_masks(attribution: torch.Tensor, mask: torch.Tensor):
    a = check_inputs(attribution, name="attribution").detach()
    if a.ndim == 4:
        a = a.sum(1)
    m = torch.as_tensor(mask, device=a.device)
    if a.ndim != 3 or m.shape != a.shape:
        raise ValueError(f"attribution must be maps (N, H, W) (or (N, C, H, W), summed over "
                         f"channels) and mask (N, H, W) of the same size; got "
                         f"{tuple(attribution.shape)} and {tuple(m.shape)}")
    return a.reshape(len(a), -1), m.reshape(len(m), -1).bool()


def pointing_game(attribution: torch.Tensor, mask: torch.Tensor, tolerance: int = 0):
    """1.0 where the map's maximum falls on the object, else 0.0 (N,) (Zhang et al. 2016).

    A hit: any pixel of maximal value lies in the mask dilated by `tolerance` pixels (the
    paper: 15 px at ImageNet resolution; Quantus PointingGame: 0). NaN for an empty mask.
    """
    a, m = _maps_and_masks(attribution, mask)
    if tolerance:
        side = attribution.shape[-2:]
        grown = F.max_pool2d(m.float().view(-1, 1, *side), 2 * tolerance + 1, 1, tolerance)
        m = grown.view(len(m), -1) > 0
    hit = ((a == a.max(1, keepdim=True).values) & m).any(1).to(a.dtype)
    return torch.where(m.any(1), hit, torch.nan)


def energy_in_mask(attribution: torch.Tensor, mask: torch.Tensor, positive: bool = True):
    """The energy-based pointing game (Wang et al., "Score-CAM", 2020): the share of the map
    on the object, sum_{i in mask} L_i / sum_i L_i, with L = max(attribution, 0) when
    `positive` (a CAM is non-negative already). Quantus: RelevanceMassAccuracy. NaN for an
    empty mask. (N,)"""
    a, m = _maps_and_masks(attribution, mask)
    if positive:
        a = a.clamp_min(0)
    share = (a * m).sum(1) / a.sum(1)
    return torch.where(m.any(1), share, torch.nan)


def effective_heat_ratio(attribution: torch.Tensor, mask: torch.Tensor,
                         base_threshold: float = 0.1, quantiles: int = 11,
                         weight_by_heat: bool = True):
    """Effective heat ratio (InputIBA, Zhang et al. 2021): how much of the hottest part of a
    map lies on the object, over all heat thresholds, as an area.

    The map is min-max normalised to [0, 1] and heat below `base_threshold` is dropped (set
    to 0); P is the set of the remaining pixels. For q = 0, 1/(Q-1), ..., 1 (Q = quantiles),
    the threshold t_q = min(quantile_q(heat on P), 0.99 max heat), and the ratio

        r_q = sum_{i in mask, L_i >= t_q} L_i  /  #{i : L_i >= t_q}

    (weight_by_heat=False: the count in the mask instead of the heat). EHR = the trapezoid
    area under r_q over q in [0, 1]. A map whose heat is all on the object and equal to 1
    scores 1; heat off the object or lukewarm heat on it lowers the score. (N,)
    """
    a, m = _maps_and_masks(attribution, mask)
    check_number(base_threshold, "base_threshold")
    if check_positive_int(quantiles, "quantiles") < 2:
        raise ValueError(f"quantiles must be at least 2 (0 and 1), got {quantiles}")
    low, high = a.min(1, keepdim=True).values, a.max(1, keepdim=True).values
    heat = (a - low) / (high - low).clamp_min(1e-12)
    heat = torch.where(heat >= base_threshold, heat, 0.0)
    # q_i = i * (1 / (Q - 1)), the grid of numpy.linspace (InputIBA's): 6 * 0.1 is a hair
    # above 0.6, and where q (n - 1) is a whole number that decides whether the pixel at
    # the threshold counts, so the last bit of q changes the score
    step = 1.0 / (quantiles - 1)
    qs = torch.arange(quantiles, dtype=heat.dtype, device=heat.device) * step
    scores = []
    for h, on in zip(heat, m):
        hot = h[h >= base_threshold]
        if len(hot) == 0:
            scores.append(torch.zeros((), dtype=h.dtype, device=h.device))
            continue
        t = torch.minimum(torch.quantile(hot, qs), 0.99 * h.max())
        above = h[None] >= t[:, None]  # (Q, HW)
        inside = (above & on).to(h.dtype)
        mass = (inside * h).sum(1) if weight_by_heat else inside.sum(1)
        scores.append(torch.trapezoid(mass / above.sum(1).clamp_min(1), qs))
    return torch.stack(scores)


def correlation_length(maps: torch.Tensor, level: float = 0.5) -> np.ndarray:
    """How coarse a map is: per map (N, H, W), the shift in pixels at which the map's
    correlation with itself, shifted along the rows or the columns, first falls below
    `level` (the mean of the two axes). A map made of blocks of s pixels stays correlated
    over ~s pixels: the larger this length, the coarser the map (its effective resolution is
    H / length places)."""
    lengths = []
    for m in maps.double():
        per_axis = []
        for axis in (0, 1):
            size = m.shape[axis]
            for k in range(1, size):
                a = m.narrow(axis, 0, size - k).flatten()
                b = m.narrow(axis, k, size - k).flatten()
                if torch.corrcoef(torch.stack([a, b]))[0, 1] < level:
                    break
            per_axis.append(k)
        lengths.append(np.mean(per_axis))
    return np.array(lengths)


# --------------------------------------------------------------------------- sanity checks
def randomisable_layers(model: nn.Module, inputs: torch.Tensor) -> list[str]:
    """Names of the modules with parameters of their own, in the order the forward pass
    reaches them (one pass with hooks): the layers a sanity check randomises."""
    seen: list[str] = []
    handles = [m.register_forward_hook(lambda mod, args, out, name=name: seen.append(name))
               for name, m in model.named_modules()
               if name and any(True for _ in m.parameters(recurse=False))]
    try:
        with unchanged(model), torch.no_grad():
            model.eval()
            forward(model, inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    return list(dict.fromkeys(seen))


def _randomise(module: nn.Module, seed: int) -> None:
    """Re-draw a layer's parameters from its own initialiser (`reset_parameters`), seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        else:
            with torch.no_grad():
                for p in module.parameters(recurse=False):
                    p.normal_(0.0, float(p.std()) if p.numel() > 1 else 1.0)


def _comparable(a: torch.Tensor, absolute: bool) -> np.ndarray:
    """A map (N, H, W) from an attribution: summed over channels (of |a| when `absolute`)."""
    a = a.detach().abs() if absolute else a.detach()
    if a.ndim == 4:
        a = a.sum(1)
    return a.cpu().double().numpy()


def sanity_check(model: nn.Module, method: Callable, inputs: torch.Tensor, target,
                 layers: Sequence[str] | None = None, absolute: bool = True,
                 generator: torch.Generator | None = None, progress: bool = False,
                 **method_options):
    """Cascading model randomisation (Adebayo et al., "Sanity Checks for Saliency Maps",
    NeurIPS 2018): does the map depend on what the model learned?

    On a deep copy of the model (the given one is left as it is), the layers with
    parameters are re-initialised one after another from the top (the output) down, each
    by its own initialiser; after each step the method's map is compared with the map of
    the trained model by the Spearman rank correlation of the pixels and by SSIM (the
    maps min-max normalised to [0, 1]; scipy.stats.spearmanr and
    skimage.metrics.structural_similarity). Maps are summed over channels, of |a| when
    `absolute` (as in the paper's figures). A method that explains the model should lose
    its map as the model loses its weights; Guided Backprop barely does, because it
    reconstructs the image more than it explains the class.

    layers: the names to randomise, from the top (default: every module with parameters,
    last reached first). Returns a tidy pandas table: step (0: the trained model), layer
    (the one randomised last), example, spearman, ssim.
    """
    import copy

    import pandas as pd
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    inputs = check_model_and_inputs(model, inputs)
    if not callable(method):
        raise TypeError("method must be an attribution method(model, inputs, target)")
    valid = randomisable_layers(model, inputs)
    if layers is None:
        layers = valid[::-1]
    unknown = [name for name in layers if name not in valid]
    if unknown:
        raise ValueError(f"unknown layers {unknown}; valid (forward order): {valid}")
    copied = copy.deepcopy(model)
    modules = dict(copied.named_modules())
    seeds = torch.randint(0, 2**62, (len(layers),), generator=generator).tolist()

    def normalised(m):
        low = m.min(axis=(1, 2), keepdims=True)
        return (m - low) / np.maximum(m.max(axis=(1, 2), keepdims=True) - low, 1e-12)

    original = _comparable(method(model, inputs, target, **method_options), absolute)
    rows = [dict(step=0, layer="(trained)", example=i, spearman=1.0, ssim=1.0)
            for i in range(len(original))]
    for step, (name, seed) in enumerate(tqdm(list(zip(layers, seeds)), desc="randomising",
                                             disable=not progress), start=1):
        _randomise(modules[name], seed)
        current = _comparable(method(copied, inputs, target, **method_options), absolute)
        a, b = normalised(original), normalised(current)
        for i in range(len(a)):
            rho = spearmanr(original[i].ravel(), current[i].ravel()).statistic
            ssim = structural_similarity(a[i], b[i], data_range=1.0)
            rows.append(dict(step=step, layer=name, example=i, spearman=float(rho),
                             ssim=float(ssim)))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the leaderboard
LOCALISATION = ("pointing_game", "energy_in_mask", "effective_heat_ratio")
LEADERBOARD_CANVASES = 48  # test canvases of the shipped table (about 8 minutes on one core)
STATS_CANVASES = 1000  # training canvases for IBA's mu_R, sigma_R (the authors warn below 1,000)


@dataclasses.dataclass(frozen=True, eq=False)
class CourseMethod:
    """An attribution method of the course at fixed settings, called as every method is,
    `m(model, inputs, target)`, and returning a map (N, H, W) at the input's resolution.

    chapter: where the course teaches it. method, options: the chapter's function and its
    settings. passes: the model passes per input these settings cost (a forward or a backward
    pass of one input each), the estimate by which an explorer offers the cheap ones live.
    absolute: the map is |a| summed over channels, for the gradient family (a gradient's
    sign says which way a pixel moves the score, its size how much: Simonyan et al. draw
    |gradient|); otherwise a summed over channels, signed evidence whose positive part the
    scores count. seed: a randomised method draws from a generator seeded with it at every
    call, so that the same inputs always give the same map.
    """

    chapter: str
    method: Callable
    options: dict = dataclasses.field(default_factory=dict)
    passes: int = 2
    absolute: bool = False
    seed: int | None = None

    def __call__(self, model: nn.Module, inputs: torch.Tensor, target) -> torch.Tensor:
        options = dict(self.options)
        if self.seed is not None:
            options["generator"] = torch.Generator(inputs.device).manual_seed(self.seed)
        a = self.method(model, inputs, target, **options).detach()
        if a.ndim == inputs.ndim:  # a value per channel of each pixel
            a = a.abs().sum(1) if self.absolute else a.sum(1)
        return a


@functools.lru_cache(maxsize=1)
def _training_canvases(n: int) -> torch.Tensor:
    from . import zoo

    return zoo.dataset("cluttered-digits", split="train", n=n).x


def _with_canvas_stats(method: Callable, model: nn.Module, inputs: torch.Tensor, target,
                       layer: str = "features.relu3", **options) -> torch.Tensor:
    """Chapter 07's `iba` or `input_iba` at `layer` of a cluttered-digits model, with the
    layer's statistics from STATS_CANVASES training canvases (computed once per model:
    `feature_stats` caches them)."""
    from .bottleneck import feature_stats

    canvases = _training_canvases(STATS_CANVASES).to(inputs.device)
    stats = feature_stats(model, layer, canvases)
    return method(model, inputs, target, layer, stats=stats, **options)


@functools.lru_cache(maxsize=2)
def _readout(device: str) -> nn.Module:
    from . import zoo

    return zoo.load_model("cluttered-digits-readout", device)


def _readout_map(model: nn.Module, inputs: torch.Tensor, target) -> torch.Tensor:
    """Chapter 07's Readout Bottleneck with the zoo's readout for cluttered-digits."""
    from .bottleneck import readout_bottleneck

    return readout_bottleneck(model, inputs, target, _readout(str(inputs.device)))


def _deletion_map(model: nn.Module, inputs: torch.Tensor, target, **options) -> torch.Tensor:
    """Chapter 04's Meaningful Perturbation as a map of evidence: 1 - m, how much of each
    pixel its mask m deletes (m = 1 keeps a pixel)."""
    from .perturbation import meaningful_perturbation

    return 1 - meaningful_perturbation(model, inputs, target, **options)


def leaderboard_methods(seed: int = 0) -> dict[str, CourseMethod]:
    """Every attribution method of the course that explains a `cluttered-digits` canvas, at
    settings that keep the whole leaderboard within minutes (name -> `CourseMethod`):

        02  gradient, input x gradient, Guided Backprop (2 passes); SmoothGrad, SmoothGrad²,
            VarGrad (15 noisy samples, ROAR's setting); Integrated Gradients (black
            baseline, 25 steps)
        03  CAM, Grad-CAM, Grad-CAM++ at the last conv layer; Score-CAM (one pass per
            channel of it, 64)
        04  occlusion (8 x 8 windows of zeros, stride 4); Meaningful Perturbation (150
            steps, read as 1 - m: what it deletes); extremal perturbation (area 0.1,
            150 steps)
        05  LIME with a linear and with a tree surrogate (SLIC superpixels, 500 samples)
        07  IBA at features.relu3 (beta 10, 10 steps of 10 samples); the Readout
            Bottleneck (one pass); InputIBA (5 GAN epochs instead of 20; its GAN's
            passes stop at the layer and are not counted)
        08  KernelSHAP and permutation sampling with the 64 cells of an 8 x 8 grid as
            players (500 coalitions; 4 orders of 64 players)

    The gradient family is read as |a| (`CourseMethod.absolute`). seed: every randomised
    method's draws.
    """
    from . import bottleneck, cam, gradients, perturbation, shapley, surrogates

    noisy = dict(passes=30, absolute=True, seed=seed)
    cells = surrogates.superpixels(torch.zeros(3, 64, 64), "grid", 64)
    samples = bottleneck.iba.options["samples"].default  # IBA's noisy copies per step: 10
    iba_passes = 2 * bottleneck.iba.options["steps"].default * samples + 1
    grads, cams, perturb = "02 gradients", "03 CAM", "04 perturbation"
    lime, bottlenecks, shap = "05 LIME", "07 bottlenecks", "08 Shapley"
    return {
        "gradient": CourseMethod(grads, gradients.gradient, absolute=True),
        "input × gradient": CourseMethod(grads, gradients.input_x_gradient),
        "Guided Backprop": CourseMethod(grads, gradients.guided_backprop, absolute=True),
        "SmoothGrad": CourseMethod(grads, gradients.smoothgrad, dict(samples=15), **noisy),
        "SmoothGrad²": CourseMethod(grads, gradients.smoothgrad_sq, dict(samples=15), **noisy),
        "VarGrad": CourseMethod(grads, gradients.vargrad, dict(samples=15), **noisy),
        "Integrated Gradients": CourseMethod(grads, gradients.integrated_gradients,
                                             dict(baseline="black", steps=25), passes=50),
        "CAM": CourseMethod(cams, cam.cam, passes=1),
        "Grad-CAM": CourseMethod(cams, cam.grad_cam),
        "Grad-CAM++": CourseMethod(cams, cam.grad_cam_pp),
        "Score-CAM": CourseMethod(cams, cam.score_cam, passes=1 + 64),
        "occlusion": CourseMethod(perturb, perturbation.occlusion, dict(window=8, stride=4),
                                  passes=1 + 15 * 15),
        "Meaningful Perturbation": CourseMethod(perturb, _deletion_map, passes=2 * 150 + 1,
                                                seed=seed),
        "extremal perturbation": CourseMethod(perturb, perturbation.extremal_perturbation,
                                              dict(area=0.1, steps=150), passes=2 * 150 + 1),
        "LIME": CourseMethod(lime, surrogates.lime, dict(samples=500), passes=500, seed=seed),
        "LIME (tree)": CourseMethod(lime, surrogates.lime, dict(samples=500, surrogate="tree"),
                                    passes=500, seed=seed),
        "IBA": CourseMethod(bottlenecks, functools.partial(_with_canvas_stats, bottleneck.iba),
                            passes=iba_passes, seed=seed),
        "Readout Bottleneck": CourseMethod(bottlenecks, _readout_map, passes=1),
        "InputIBA": CourseMethod(bottlenecks, functools.partial(_with_canvas_stats,
                                                                bottleneck.input_iba),
                                 dict(epochs=5), passes=iba_passes + 2 * 60 * samples,
                                 seed=seed),
        "KernelSHAP": CourseMethod(shap, shapley.kernel_shap, dict(samples=500, groups=cells),
                                   passes=500 + 2, seed=seed),
        "Shapley sampling": CourseMethod(shap, shapley.sampling_shapley,
                                         dict(samples=4, groups=cells), passes=4 * 64 + 1,
                                         seed=seed),
    }


def localisation_scores(methods: dict[str, Callable], model: nn.Module, data,
                        batch_size: int = 16, progress: bool = True):
    """How well each method's maps find the evidence a data set marks: the leaderboard of
    the localisation scores.

    For each method(model, inputs, target), the maps of every input of `data` (a zoo
    Dataset with masks, e.g. `cluttered-digits`, whose masks are the digit's pixels) for
    its true label, `batch_size` inputs per call, on the model's device; each scored by
    `pointing_game`, `energy_in_mask` and `effective_heat_ratio` (the mean over the
    inputs; maps of the inputs' shape are summed over channels). The wall time and the
    model passes (`perturbation.count_passes`: forward passes of one input, those with
    autograd on counted again for their backward pass) are measured around the calls and
    given per input; the time includes a method's one-off set-up (IBA's statistics).

    Returns a tidy pandas table, one row per method: method, chapter (a `CourseMethod`'s,
    else ""), n, pointing_game, energy_in_mask, effective_heat_ratio, seconds, passes.
    """
    import pandas as pd

    from .perturbation import count_passes

    check_module(model)
    if not isinstance(methods, dict) or not all(callable(m) for m in methods.values()):
        raise TypeError("methods must be a dict: name -> method(model, inputs, target)")
    if getattr(data, "mask", None) is None:
        raise ValueError(f"{getattr(data, 'name', 'the data')} has no masks to score a map "
                         f"against; use a data set with them, e.g. 'cluttered-digits'")
    check_positive_int(batch_size, "batch_size")
    device = model_device(model)
    rows = []
    for name, method in tqdm(methods.items(), desc="localisation", disable=not progress):
        scores = {score: [] for score in LOCALISATION}
        seconds = 0.0
        with count_passes(model) as passes:
            for start in tqdm(range(0, len(data), batch_size), desc=name, leave=False,
                              disable=not progress):
                x = data.x[start:start + batch_size].to(device)
                y = data.y[start:start + batch_size].to(device)
                mask = data.mask[start:start + batch_size].to(device)
                began = time.perf_counter()
                maps = method(model, x, y).detach()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds += time.perf_counter() - began
                scores["pointing_game"].append(pointing_game(maps, mask))
                scores["energy_in_mask"].append(energy_in_mask(maps, mask))
                scores["effective_heat_ratio"].append(effective_heat_ratio(maps, mask))
        n = len(data)
        rows.append(dict(method=name, chapter=getattr(method, "chapter", ""), n=n,
                         **{score: torch.cat(values).double().nanmean().item()
                            for score, values in scores.items()},
                         seconds=seconds / n, passes=(passes.forward + passes.backward) / n))
    return pd.DataFrame(rows)


def make_localisation_table(n: int = LEADERBOARD_CANVASES,
                            path: str | Path = RESULTS / "localisation-cluttered-digits.csv",
                            progress: bool = True):
    """The shipped leaderboard: `localisation_scores` of every `leaderboard_methods()` on
    the first n test canvases of `cluttered-digits`, explained for their labels on the zoo's
    model, on the CPU with one thread, saved as CSV at `path` with its settings beside it
    (JSON, read by `shipped_table`). n = 48 takes about 8 minutes on an idle core, 11 on
    one shared with other work (InputIBA half of it). Returns the table.
    """
    from . import zoo

    check_positive_int(n, "n")
    began = time.perf_counter()
    with _one_thread():
        model = zoo.load_model("cluttered-digits", device="cpu")
        data = zoo.dataset("cluttered-digits", split="test", n=n)
        table = localisation_scores(leaderboard_methods(), model, data, progress=progress)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    settings = dict(dataset="cluttered-digits", split="test", n=n, model="cluttered-digits",
                    device="cpu", threads=1, seconds=round(time.perf_counter() - began, 1))
    _settings_path(path).write_text(json.dumps(settings, indent=1))
    table.attrs["settings"] = settings
    return table

