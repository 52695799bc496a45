"""Chapter 07: information bottlenecks. Explain by how much information a feature must let through.

Question (2) of the course, *if the output changed, which features caused it?*, asked as a
budget: replace a layer's output R by a noisy copy Z that lets only part of R through, and
find the least information about R that still lets the model name the class. Where the
model needs information, Z must carry it; everywhere else R can be drowned in noise.

    Z = lambda * R + (1 - lambda) * eps,    eps ~ N(mu_R, sigma_R^2),   lambda in [0, 1]

mu_R and sigma_R are each element's mean and std over a data set (`feature_stats`), so
lambda = 0 replaces R by noise that looks like any input's features: nothing about this
input gets through. How much does? With r = (R - mu_R) / sigma_R, Z's distribution given R
is N(lambda r, (1 - lambda)^2) in the same units, and its KL divergence from the noise's
N(0, 1) bounds the mutual information I(R, Z) from above (Schulz et al. 2020, eq. 6):

    capacity = KL( N(lambda r, (1 - lambda)^2) || N(0, 1) )
             = -1/2 (1 + log (1 - lambda)^2 - (lambda r)^2 - (1 - lambda)^2)   nats per element

The per-sample bottleneck (`iba`) optimises one lambda per element for one input:

    min_alpha  CE(model with Z, c) + beta * mean_elements capacity,
    lambda = smooth(sigmoid(alpha))

and the map is the capacity, in bits, summed over channels: how many bits each place of the
layer had to pass so that the model still says c. `input_iba` (InputIBA, Zhang et al. 2021)
takes that feature map as a prior and puts a second bottleneck on the input itself, so the
map has the input's resolution instead of the layer's.

The pieces, each a few lines: `feature_stats` (mu_R, sigma_R, the active elements),
`smooth` (the Gaussian on lambda), `kl_capacity` (the formula above), `capacity_map` (bits
per place at the input's resolution), and `iba`, the optimisation. The Readout Bottleneck
(the same paper's second variant) replaces the optimisation by a network trained once:
`Readout` predicts alpha from the model's features, `readout_loss` is `iba`'s loss to train
it with, and `readout_bottleneck` explains in one pass. InputIBA adds
`input_kl_capacity` (the input bottleneck's capacity against a prior mask), the WGAN
critics (`Critic`, `SequenceCritic`) and `input_iba`, its three stages: feature IBA, a
generative prior, the input bottleneck.

Layers: a convolutional layer's output (N, C, h, w) (channels C, places h x w) or a
sequence layer's (N, L, D) (places L, channels D: the course's text model, one value per
token). A layer that returns a tuple (nn.LSTM: (states, (h, c))) has its first element
bottlenecked.

Checked (tests/test_bottleneck.py): the capacities and the smoothing on hand-computed cases;
`feature_stats` against a direct mean / std; the loss, step by step, against a transcription
of the authors' PyTorch IBA (BioroboticsLab/IBA, `IBA/pytorch.py`) on fixed tensors; known
answers on a hand-set model; the maps against the digits' masks and the reviews' relevant
tokens; the readout bottleneck against `iba` at the same layer.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .cam import resolve_layer, upsample_map
from .convention import (
    Option,
    check_model_and_inputs,
    check_number,
    check_positive_int,
    check_target,
    model_device,
    options,
    rows_per_pass,
    unchanged,
)

__all__ = [
    "FeatureStats",
    "feature_stats",
    "smooth",
    "kl_capacity",
    "capacity_map",
    "iba",
    "IBAHistory",
    "Readout",
    "readout_loss",
    "readout_bottleneck",
    "input_kl_capacity",
    "Critic",
    "SequenceCritic",
    "input_iba",
    "InputIBAResult",
]

MIN_STD = 0.01  # sigma_R is clamped at this (the authors' `min_std`)
ACTIVE_SHARE = 0.01  # an element non-zero in at most this share of the data is inactive
INITIAL_ALPHA = 5.0  # lambda = sigmoid(5) = 0.993 at the start: nearly everything passes
ALPHA_BOUND = 5.0  # a readout's alpha is clamped to [-5, 5]
CACHE_SIZE = 8  # feature statistics kept by `feature_stats`


# --------------------------------------------------------------------------- the layer
class _Stop(Exception):
    """Raised inside a hook to end a forward pass once the layer has run."""


def _features(output):
    """The bottlenecked tensor of a layer's output: itself, or the first of a tuple."""
    return output[0] if isinstance(output, tuple) else output


def _check_inputs(model: nn.Module, inputs) -> torch.Tensor:
    """Float inputs, or integer token ids for a model that embeds them itself."""
    token_ids = isinstance(inputs, torch.Tensor) and not inputs.is_floating_point() \
        and inputs.dtype != torch.bool
    return check_model_and_inputs(model, inputs, floating=not token_ids)


def _layer(model: nn.Module, inputs: torch.Tensor, layer) -> tuple[str, nn.Module]:
    """(name, module) of `layer` (a module of `model` or its dotted name), as in chapter 03;
    for inputs that are not images, the error lists every named module."""
    if layer is None and inputs.ndim != 4:
        raise ValueError(f"name the layer to put the bottleneck at; the layers of this "
                         f"{type(model).__name__}: {_module_names(model)}")
    try:
        return resolve_layer(model, inputs, layer)
    except ValueError:
        if inputs.ndim == 4:
            raise
        raise ValueError(f"unknown layer {layer!r}; the layers of this {type(model).__name__}: "
                         f"{_module_names(model)}") from None


def _module_names(model: nn.Module) -> str:
    return ", ".join(repr(name) for name, _ in model.named_modules() if name)


def _check_features(R, name: str) -> None:
    if not isinstance(R, torch.Tensor) or R.ndim not in (3, 4) or not R.is_floating_point():
        what = (f"shape {tuple(R.shape)}" if isinstance(R, torch.Tensor)
                else f"a {type(R).__name__}")
        raise ValueError(f"layer {name!r} outputs {what}; a bottleneck needs feature maps "
                         f"(N, C, h, w) or a sequence (N, L, D) of floats")


# --------------------------------------------------------------------------- statistics
@dataclasses.dataclass
class FeatureStats:
    """mu_R, sigma_R and the active elements of a layer's output over a data set.

    mean, std: the layer's output shape without the batch, e.g. (C, h, w); std clamped at
    MIN_STD. active: bool, the elements non-zero in more than ACTIVE_SHARE of the data (the
    others are always 0 after a ReLU, carry no information, and are left out). n: examples.
    input_mean, input_std: each input channel's mean and std over the same data, shaped to
    broadcast over one input ((C, 1, 1) for images, (D,) for embedded text; None for token
    ids): the noise of `input_iba`'s input bottleneck.
    """

    layer: str
    mean: torch.Tensor
    std: torch.Tensor
    active: torch.Tensor
    n: int
    input_mean: torch.Tensor | None = None
    input_std: torch.Tensor | None = None

    def to(self, device, dtype=None) -> FeatureStats:
        dtype = dtype or self.mean.dtype

        def move(t):
            return None if t is None else t.to(device=device, dtype=dtype)

        return dataclasses.replace(self, mean=move(self.mean), std=move(self.std),
                                   active=self.active.to(device=device),
                                   input_mean=move(self.input_mean),
                                   input_std=move(self.input_std))


_CACHE: collections.OrderedDict[tuple, FeatureStats] = collections.OrderedDict()


def _model_key(model: nn.Module) -> tuple:
    """The model's identity and the state of its parameters: an in-place change of any weight
    (an optimiser step, load_state_dict) bumps the parameter's version counter."""
    return (id(model), model.training,
            tuple((p.data_ptr(), p._version) for p in model.parameters()))


def _fingerprint(data: torch.Tensor) -> str:
    """A hash of the data's shape, type and bytes (a 1,000-canvas set: ~50 MB, ~0.1 s)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{tuple(data.shape)} {data.dtype}".encode())
    digest.update(data.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def feature_stats(model: nn.Module, layer, inputs, batch_size: int | None = None,
                  progress: bool = False) -> FeatureStats:
    """Each element's mean mu_R and std sigma_R of a layer's output over a data set.

        mu_R = (1/n) sum_i R_i,   sigma_R = max(MIN_STD, sqrt( sum_i (R_i - mu_R)^2 / (n - 1) ))

    Welford's running update, batch by batch (Chan et al.'s pairwise form), in float64, as
    the authors' `TorchWelfordEstimator` does example by example. The std is clamped at 0.01
    and an element non-zero in at most 1% of the examples is marked inactive (`active`
    False): the authors' `min_std` and `active_neurons_threshold`. The authors estimate on
    5,000-10,000 images and warn below 1,000.

    layer: a module of `model` or its dotted name. inputs: the data set, (n, ...) with n >= 2
    (a tensor, or a zoo `Dataset`). The forward pass stops at the layer. Cached: the same
    model (same weights), layer and data give the same object back without a pass, and `iba`
    finds the last statistics of a (model, layer) when given none.
    """
    data = getattr(inputs, "x", inputs)
    data = _check_inputs(model, data)
    if data.shape[0] < 2:
        raise ValueError(f"feature statistics need at least 2 examples, got {data.shape[0]}")
    name, module = _layer(model, data, layer)
    key = (*_model_key(model), name, _fingerprint(data))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    batch_size = check_positive_int(batch_size, "batch_size", allow_none=True) \
        or rows_per_pass(data, backward=False)
    n, mean, m2, nonzero = 0, 0.0, 0.0, 0
    record: dict = {}

    def hook(mod, args, output):
        record["R"] = _features(output)
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        with unchanged(model), torch.no_grad():
            for start in tqdm(range(0, data.shape[0], batch_size), desc="feature stats",
                              disable=not progress):
                record.clear()
                try:
                    model(data[start:start + batch_size])
                except _Stop:
                    pass
                if "R" not in record:
                    raise ValueError(f"layer {name!r} did not run in the forward pass")
                R = record["R"]
                if not isinstance(R, torch.Tensor) or not R.is_floating_point():
                    raise ValueError(f"layer {name!r} outputs a {type(R).__name__}, not "
                                     f"a float tensor")
                R = R.double()
                b = R.shape[0]
                mean_b = R.mean(dim=0)
                m2_b = ((R - mean_b) ** 2).sum(dim=0)
                delta = mean_b - mean
                mean = mean + delta * b / (n + b)
                m2 = m2 + m2_b + delta ** 2 * n * b / (n + b)
                nonzero = nonzero + (R != 0).sum(dim=0)
                n += b
    finally:
        handle.remove()
    dtype = data.dtype if data.is_floating_point() else torch.get_default_dtype()
    input_mean = input_std = None
    if data.is_floating_point() and data.ndim in (3, 4):  # images (C, H, W), texts (L, D)
        dims, shape = ((0, 2, 3), (-1, 1, 1)) if data.ndim == 4 else ((0, 1), (-1,))
        input_std, input_mean = torch.std_mean(data.double(), dim=dims)
        input_mean, input_std = input_mean.view(shape), input_std.view(shape)
    stats = FeatureStats(
        layer=name,
        mean=mean.to(dtype),
        std=(m2 / (n - 1)).sqrt().clamp(min=MIN_STD).to(dtype),
        active=nonzero / n > ACTIVE_SHARE,
        n=n,
        input_mean=None if input_mean is None else input_mean.to(dtype),
        input_std=None if input_std is None else input_std.clamp(min=MIN_STD).to(dtype),
    )
    _CACHE[key] = stats
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return stats


def _stats_for(model: nn.Module, name: str, stats, shape, device, dtype) -> FeatureStats:
    """The statistics to use: `stats` checked against the layer, or the cached ones."""
    if stats is None:
        head = (*_model_key(model), name)
        found = [s for key, s in _CACHE.items() if key[:len(head)] == head]
        if not found:
            raise ValueError(f"no feature statistics for layer {name!r} of this model: compute "
                             f"them first, stats = feature_stats(model, {name!r}, data) on "
                             f"~1,000 examples of the training data, and pass stats=stats")
        stats = found[-1]
    if not isinstance(stats, FeatureStats):
        raise TypeError(f"stats must be a FeatureStats (from feature_stats), got "
                        f"{type(stats).__name__}")
    if stats.layer != name:
        raise ValueError(f"stats are for layer {stats.layer!r}, but the bottleneck is at layer "
                         f"{name!r}; compute feature_stats(model, {name!r}, data)")
    if tuple(stats.mean.shape) != tuple(shape):
        raise ValueError(f"stats are for features of shape {tuple(stats.mean.shape)} (layer "
                         f"{stats.layer!r}), but layer {name!r} outputs {tuple(shape)} per "
                         f"example; compute feature_stats(model, {name!r}, data)")
    return stats.to(device, dtype)


# --------------------------------------------------------------------------- the pieces
def smooth(lam: torch.Tensor, sigma: float | None) -> torch.Tensor:
    """lambda blurred per channel by a Gaussian of std `sigma` places, over the places only.

    (N, C, h, w): a 2-D Gaussian over h x w; (N, L, D): a 1-D Gaussian along L. The kernel
    has 2 round(2 sigma) + 1 taps (5 x 5 for sigma = 1), sums to 1, and the border is
    reflected: the authors' `_SpatialGaussianKernel`. (The 2-D kernel is the product of two
    1-D ones, so it runs as two 1-D convolutions.) sigma None or 0: no smoothing. The
    smoothing makes the mask's lambda vary slowly from place to place, so the noise cannot
    slip between neighbouring places; the paper's "1 sigma" is in feature-map places.
    """
    if not sigma:
        return lam
    radius = int(round(2 * sigma))
    places = lam.shape[2:] if lam.ndim == 4 else lam.shape[1:2]
    radius = min(radius, min(places) - 1)  # a reflected border needs radius < size
    if radius < 1:
        return lam
    taps = torch.arange(-radius, radius + 1, dtype=lam.dtype, device=lam.device)
    kernel = torch.exp(-taps ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    if lam.ndim == 3:  # (N, L, D): along L, each of the D channels
        x = F.pad(lam.transpose(1, 2), (radius, radius), mode="reflect")
        k = kernel.repeat(lam.shape[2], 1, 1)  # (D, 1, 2r + 1)
        return F.conv1d(x, k, groups=lam.shape[2]).transpose(1, 2)
    channels = lam.shape[1]
    k = kernel.repeat(channels, 1, 1, 1)  # (C, 1, 1, 2r + 1)
    x = F.pad(lam, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k, groups=channels)  # along the width
    return F.conv2d(x, k.transpose(2, 3), groups=channels)  # along the height


def kl_capacity(R: torch.Tensor, lam: torch.Tensor, mean: torch.Tensor,
                std: torch.Tensor) -> torch.Tensor:
    """The information each element lets through, in nats (Schulz et al. 2020, eq. 6-7):

        r = (R - mu_R) / sigma_R,   mu_z = lambda r,   sigma_z^2 = (1 - lambda)^2
        capacity = KL( N(mu_z, sigma_z^2) || N(0, 1) )
                 = -1/2 (1 + log sigma_z^2 - mu_z^2 - sigma_z^2)

    0 when lambda = 0 (pure noise); it grows without bound as lambda -> 1. Normalising by the
    noise's mu_R and sigma_R changes no KL divergence and makes the noise N(0, 1).
    """
    r = (R - mean) / std
    mu_z = lam * r
    var_z = (1 - lam) ** 2
    return -0.5 * (1 + torch.log(var_z) - mu_z ** 2 - var_z)


def capacity_map(capacity: torch.Tensor, size) -> torch.Tensor:
    """Capacity (N, C, h, w) or (N, L, D) in nats -> bits per place at the input's size.

        map[i, j] = sum_c capacity[c, i, j] / ln 2  *  (h w) / (H W),   then bilinear to H x W

    The factor (h w) / (H W) keeps the total: the map's sum is the bits the layer passed (the
    authors' `to_saliency_map`, whose bilinear resize, skimage's, reflects the border where
    F.interpolate repeats it: the outermost half-place differs a little). size: the input's
    (H, W), or (L,) tokens for a sequence.
    """
    if capacity.ndim == 3:  # (N, L, D): one value per token
        bits = capacity.sum(dim=2) / math.log(2)
        length = size[0]
        if bits.shape[1] != length:
            bits = bits * bits.shape[1] / length
            bits = F.interpolate(bits[:, None], size=length, mode="linear")[:, 0]
        return bits
    bits = capacity.sum(dim=1) / math.log(2)
    if len(size) != 2:
        return bits
    h, w = bits.shape[1:]
    return upsample_map(bits * (h * w) / (size[0] * size[1]), size)


# --------------------------------------------------------------------------- IBA
@dataclasses.dataclass
class IBAHistory:
    """What `iba(..., history=True)` records, one row per step (before that step's update).

    loss = ce + beta * information, each (steps, N); information: the mean capacity in nats
    per element; maps: (steps, N, H, W) the capacity map in bits at each step (the last one is
    the map returned). alpha: (N, ...) the final mask logits.
    """

    loss: torch.Tensor
    ce: torch.Tensor
    information: torch.Tensor
    maps: torch.Tensor
    alpha: torch.Tensor


def _check_iba_options(beta, steps, lr, samples, sigma) -> None:
    check_number(beta, "beta", 0.0)
    check_positive_int(steps, "steps")
    check_number(lr, "lr", 0.0, strict=True)
    check_positive_int(samples, "samples")
    if sigma is not None:
        check_number(sigma, "sigma", 0.0)


def _bottleneck(model: nn.Module, module: nn.Module, name: str, inputs: torch.Tensor,
                target, stats, beta: float, steps: int, lr: float, samples: int,
                sigma: float | None, generator, record_maps: bool, bar) -> dict:
    """One IBA optimisation for a chunk of n inputs: each its own alpha, `samples` noisy
    copies a step. The network below the layer runs without autograd; the hook swaps R for Z
    and turns autograd on, so only the part above the layer is differentiated (as
    `cam.layer_maps`). Returns the final capacity (n, ...) and the history."""
    n, S = inputs.shape[0], samples
    x = inputs.repeat_interleave(S, dim=0)  # row i * S + s: input i, noise draw s
    state: dict = {"calls": 0}

    def hook(mod, args, output):
        state["calls"] += 1
        if state["calls"] > 1:
            raise ValueError(f"layer {name!r} runs more than once in one forward pass (a "
                             f"module reused); it has no single output to bottleneck")
        R = _features(output)
        _check_features(R, name)
        if "alpha" not in state:  # the first step: the shapes become known
            st = _stats_for(model, name, stats, R.shape[1:], R.device, R.dtype)
            state.update(stats=st, active=st.active.to(R.dtype),
                         alpha=torch.full((n, *R.shape[1:]), INITIAL_ALPHA, dtype=R.dtype,
                                          device=R.device, requires_grad=True))
            state["optimizer"] = torch.optim.Adam([state["alpha"]], lr=lr)
        st, active = state["stats"], state["active"]
        torch.set_grad_enabled(True)  # from here on; the `no_grad` around the pass restores it
        lam = smooth(torch.sigmoid(state["alpha"]), sigma)
        lam = lam.clamp(max=1 - torch.finfo(lam.dtype).eps)  # log(1 - lambda) stays finite
        lam = lam[:, None]  # (n, 1, ...): the same lambda for the S copies of an input
        R = R.detach().view(n, S, *R.shape[1:])
        eps = st.mean + st.std * torch.randn(R.shape, generator=generator, dtype=R.dtype,
                                             device=R.device)
        Z = ((lam * R + (1 - lam) * eps) * active).flatten(0, 1)
        state["capacity"] = (kl_capacity(R, lam, st.mean, st.std) * active).mean(dim=1)
        return (Z, *output[1:]) if isinstance(output, tuple) else Z

    handle = module.register_forward_hook(hook)
    rows = {"loss": [], "ce": [], "information": [], "maps": []}
    try:
        for _ in range(steps):
            state["calls"] = 0
            with torch.no_grad():
                logits = model(x)
            if state["calls"] == 0:
                raise ValueError(f"layer {name!r} did not run in the forward pass")
            if logits.ndim != 2:
                raise ValueError(f"the model must return (N, classes) scores, got shape "
                                 f"{tuple(logits.shape)}")
            t = check_target(target, n, logits.shape[1], inputs.device)
            with torch.enable_grad():
                ce = F.cross_entropy(logits, t.repeat_interleave(S), reduction="none")
                ce = ce.view(n, S).mean(dim=1)
                capacity = state["capacity"]  # (n, ...), averaged over the copies
                information = capacity.flatten(1).mean(dim=1)
                loss = ce + beta * information
                (grad,) = torch.autograd.grad(loss.sum(), state["alpha"])
            state["alpha"].grad = grad
            state["optimizer"].step()
            for key, value in (("loss", loss), ("ce", ce), ("information", information)):
                rows[key].append(value.detach())
            if record_maps:
                rows["maps"].append(capacity.detach())
            bar.update(n)
    finally:
        handle.remove()
    return {"capacity": capacity.detach(), "alpha": state["alpha"].detach(), **rows}


@options(
    Option("beta", "float", 10.0, "weight of the information term: more beta, less passes",
           low=0.01, high=1000.0, log=True),
    Option("steps", "int", 10, "Adam steps", low=1, high=100),
    Option("lr", "float", 1.0, "Adam's learning rate", low=0.01, high=10.0, log=True),
    Option("samples", "int", 10, "noise draws per step", low=1, high=64),
    Option("sigma", "float", 1.0, "Gaussian smoothing of lambda, in feature places (0: off)",
           low=0.0, high=4.0, step=0.25),
)
def iba(model: nn.Module, inputs: torch.Tensor, target, layer, beta: float = 10,
        steps: int = 10, lr: float = 1, samples: int = 10, sigma: float | None = 1.0,
        stats: FeatureStats | None = None, generator: torch.Generator | None = None,
        history: bool = False, progress: bool = False):
    """IBA, the per-sample bottleneck: the bits each place of a layer must pass for class c.

        Z = lambda R + (1 - lambda) eps,  eps ~ N(mu_R, sigma_R^2),  lambda = smooth(sigmoid(alpha))
        min_alpha  CE(f(Z), c) + beta * (1/k) sum_elements KL(P(Z|R) || N(mu_R, sigma_R^2))
        map = sum over channels of the capacity, in bits, at the input's resolution

    Schulz, Sixt, Tombari & Landgraf, "Restricting the Flow: Information Bottlenecks for
    Attribution", ICLR 2020. The authors' code (BioroboticsLab/IBA, `IBA/pytorch.py`) and its
    numbers: alpha starts at 5 (lambda = 0.993), lambda is smoothed per channel by a 5 x 5
    Gaussian of sigma = 1 place, `samples` = 10 noisy copies a step (fresh noise each), Adam
    with lr 1 for 10 steps, beta = 10 on the *mean* capacity over the k = C h w elements
    (= the paper's beta = 10 / k on the sum). CE is the cross-entropy of the target class,
    averaged over the copies. Inactive elements (`feature_stats`) are set to 0 in Z and count
    no capacity (but count in k). As in the authors' code, the map is the capacity of the
    last step's forward pass (the last Adam update is not evaluated again). Where lambda
    rounds to 1 in floating point it is clamped just below (the authors' code would give an
    infinite capacity there; this changes no number otherwise).

    layer: a module of `model` or its dotted name (the authors: VGG-16 conv4_1, ResNet-50
    layer2, mid-network: late layers give coarse maps, early ones lose the object). Images:
    (N, C, h, w) features, the map (N, H, W). Text: a sequence layer (N, L, D), the map
    (N, L), one value per token: `iba(model.encoder, model.embedding(ids), y, "lstm", ...)`
    or on the embedding output `iba(model, ids, y, "embedding", ...)`.
    stats: `feature_stats(model, layer, data)`; None: the last ones computed for this model
    and layer. Each input has its own alpha and its own loss (the sum of the inputs' losses
    is minimised, so no input's gradient depends on another); inputs are optimised together,
    a few at a time (`convention.rows_per_pass`).
    generator: the noise (same generator state, same map). history: also return an
    `IBAHistory` (loss, its two terms and the map at each step). progress: a tqdm bar.

    Checked: the loss and the map, step by step, equal to a transcription of the authors'
    code (to 1e-14 in float64; in float32 to a relative 1e-5, the rounding of the two
    Gaussian kernels amplified by the capacity's 1 / (1 - lambda)); on cluttered-digits the
    authors' package gives maps with a Pearson correlation of 0.9998 to ours (same seed).
    """
    inputs = _check_inputs(model, inputs)
    _check_iba_options(beta, steps, lr, samples, sigma)
    name, module = _layer(model, inputs, layer)
    per_chunk = max(1, rows_per_pass(inputs) // samples)
    if not isinstance(target, int) or isinstance(target, bool):
        # N targets: their type and number checked here, their classes chunk by chunk
        target = check_target(target, inputs.shape[0], 2 ** 62, inputs.device)
    chunks = []
    with unchanged(model), tqdm(total=steps * inputs.shape[0], desc="IBA",
                                disable=not progress) as bar:
        for start in range(0, inputs.shape[0], per_chunk):
            part = slice(start, start + per_chunk)
            chunks.append(_bottleneck(model, module, name, inputs[part],
                                      target if isinstance(target, int) else target[part],
                                      stats, beta, steps, lr, samples, sigma, generator,
                                      history, bar))
    size = inputs.shape[1:2] if chunks[0]["capacity"].ndim == 3 else inputs.shape[2:]
    result = capacity_map(torch.cat([c["capacity"] for c in chunks]), size)
    if not history:
        return result

    def stacked(key):
        return torch.cat([torch.stack(c[key]) for c in chunks], dim=1)

    maps = stacked("maps")
    steps_maps = capacity_map(maps.flatten(0, 1), size).view(steps, inputs.shape[0],
                                                              *result.shape[1:])
    return result, IBAHistory(loss=stacked("loss"), ce=stacked("ce"),
                              information=stacked("information"), maps=steps_maps,
                              alpha=torch.cat([c["alpha"] for c in chunks]))


# --------------------------------------------------------------------------- Readout Bottleneck
class _Moments(nn.Module):
    """One layer's mu, sigma and active elements (`FeatureStats`) as buffers, so that they
    travel with a `Readout`'s weights in its state dict."""

    def __init__(self, shape):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))
        self.register_buffer("active", torch.ones(shape, dtype=torch.bool))


class Readout(nn.Module):
    """The readout network of the Readout Bottleneck: alpha for the bottleneck at one layer,
    predicted from the features of several layers of the same model for the same input.

        f_l: the features of readout layer l for x (a clean pass, no bottleneck)
        f~_l = (f_l - mu_l) / sigma_l;  a vector (N, K) (an fc output) broadcast to (N, K, h, w);
               each resized bilinearly to the bottleneck's h x w; all concatenated (N, D, h, w)
        alpha = clamp( conv_3 relu conv_2 relu conv_1 f~, -5, 5 )     (1 x 1 convolutions:
                                                   D -> D/2 -> 2C -> C channels)

    Schulz et al. 2020, section 3.2, as the authors' `IBAReadout` (IBA/pytorch_readout.py):
    the last convolution starts with weights x 1e-3 and bias 5, so the untrained readout gives
    alpha ~ 5 everywhere, the per-sample bottleneck's starting point; alpha is clamped at
    +-5 (lambda in [0.007, 0.993]). The later layers (and the logits) tell the readout what
    the model makes of the input, the bottleneck's own layer where it is. One departure from
    the authors' code: their readout's bottleneck divides by the unclamped std (only their
    per-sample `analyze` clamps it at 0.01); here sigma_R is clamped as in `iba`, so that the
    two bottlenecks share their statistics.

    bottleneck: the layer's name; shape: its features per example (C, h, w); layers: {name:
    features per example, (C_l, h_l, w_l) or (K,)}, the readout layers in order; sigma: the
    smoothing of lambda the readout was trained with (as `iba`'s). The statistics of the
    bottleneck (`stats()`) and of the readout layers are buffers, set with `set_stats`.
    """

    def __init__(self, bottleneck: str, shape, layers: dict, sigma: float | None = 1.0):
        super().__init__()
        self.bottleneck, self.shape, self.sigma = bottleneck, tuple(shape), sigma
        self.layers = {name: tuple(s) for name, s in layers.items()}
        self.bottleneck_stats = _Moments(self.shape)
        self.layer_stats = nn.ModuleList(_Moments(s) for s in self.layers.values())
        d, c = sum(s[0] for s in self.layers.values()), self.shape[0]
        self.conv1 = nn.Conv2d(d, d // 2, 1)
        self.conv2 = nn.Conv2d(d // 2, 2 * c, 1)
        self.conv3 = nn.Conv2d(2 * c, c, 1)
        with torch.no_grad():  # alpha ~ 5 at the start: nearly everything passes
            self.conv3.bias.fill_(INITIAL_ALPHA)
            self.conv3.weight.mul_(1e-3)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """alpha (N, C, h, w) from the readout layers' features, in the order of `layers`."""
        h, w = self.shape[1:]
        maps = []
        for f, moments in zip(features, self.layer_stats):
            f = (f - moments.mean) / moments.std
            if f.ndim == 2:  # (N, K) -> (N, K, h, w)
                f = f[:, :, None, None].expand(-1, -1, h, w)
            maps.append(F.interpolate(f, size=(h, w), mode="bilinear", align_corners=True))
        alpha = self.conv3(F.relu(self.conv2(F.relu(self.conv1(torch.cat(maps, dim=1))))))
        return alpha.clamp(-ALPHA_BOUND, ALPHA_BOUND)

    def set_stats(self, bottleneck: FeatureStats, layers: list[FeatureStats]) -> None:
        """Copy `feature_stats` of the bottleneck and of each readout layer into the buffers."""
        pairs = [(self.bottleneck_stats, bottleneck), *zip(self.layer_stats, layers)]
        names = [self.bottleneck, *self.layers]
        if len(layers) != len(self.layers):
            raise ValueError(f"give the statistics of the {len(self.layers)} readout layers "
                             f"{list(self.layers)}, got {len(layers)}")
        with torch.no_grad():
            for (moments, stats), name in zip(pairs, names):
                if stats.layer != name or tuple(stats.mean.shape) != moments.mean.shape:
                    raise ValueError(f"statistics of layer {stats.layer!r} with shape "
                                     f"{tuple(stats.mean.shape)} given for layer {name!r} of "
                                     f"shape {tuple(moments.mean.shape)}")
                moments.mean.copy_(stats.mean)
                moments.std.copy_(stats.std)
                moments.active.copy_(stats.active)

    def stats(self) -> FeatureStats:
        """The bottleneck layer's statistics, e.g. for `iba` at the same layer."""
        m = self.bottleneck_stats
        return FeatureStats(self.bottleneck, m.mean, m.std, m.active, n=0)


def _readout_layers(model: nn.Module, inputs: torch.Tensor, readout) -> dict:
    """{name: module} of the bottleneck and the readout layers, checked."""
    if not isinstance(readout, Readout):
        raise TypeError(f"readout must be a bottleneck.Readout (e.g. zoo.load_model("
                        f"'cluttered-digits-readout')), got {type(readout).__name__}")
    where = model_device(readout)
    if where != inputs.device:
        raise ValueError(f"the readout is on {where} but the inputs are on {inputs.device}; "
                         f"move it, e.g. readout.to({str(inputs.device)!r})")
    return dict(_layer(model, inputs, name) for name in [readout.bottleneck, *readout.layers])


def _record(model: nn.Module, modules: dict, x: torch.Tensor, readout: Readout):
    """One clean pass without autograd: (the logits, {layer name: its features}), each
    layer's features checked against the shape the readout was trained with."""
    record: dict = {}
    handles = [m.register_forward_hook(
        lambda mod, args, output, name=name: record.setdefault(name, _features(output)))
        for name, m in modules.items()]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    expected = {readout.bottleneck: readout.shape, **readout.layers}
    for name, shape in expected.items():
        got = record.get(name)
        if got is None:
            raise ValueError(f"layer {name!r} did not run in the forward pass")
        if not isinstance(got, torch.Tensor) or tuple(got.shape[1:]) != shape:
            what = tuple(got.shape[1:]) if isinstance(got, torch.Tensor) else type(got)
            raise ValueError(f"the readout was trained on features of shape {shape} at layer "
                             f"{name!r}; this model and input give {what} there (another "
                             f"model, or inputs of another size?)")
    if logits.ndim != 2:
        raise ValueError(f"the model must return (N, classes) scores, got shape "
                         f"{tuple(logits.shape)}")
    return logits, record


def _readout_lambda(readout: Readout, record: dict) -> torch.Tensor:
    """lambda = smooth(sigmoid(alpha)), alpha from the readout, clamped below 1 as in `iba`."""
    alpha = readout([record[name] for name in readout.layers])
    lam = smooth(torch.sigmoid(alpha), readout.sigma)
    return lam.clamp(max=1 - torch.finfo(lam.dtype).eps)


def readout_loss(model: nn.Module, inputs: torch.Tensor, target, readout: Readout,
                 beta: float = 10, generator: torch.Generator | None = None):
    """The Readout Bottleneck's training loss on a batch: `iba`'s loss, lambda from the readout.

        lambda = smooth(sigmoid(readout(features of x))),  Z = lambda R + (1 - lambda) eps
        loss = mean over the batch of  CE(f(Z), y) + beta * mean_elements capacity

    Two passes: a clean one records the readout layers' features, a second one swaps the
    bottleneck layer's output R for Z (one noise draw per input). Differentiable in the
    readout's weights, not in the model's (the model runs without autograd below the layer;
    keep its parameters frozen, as `zoo.load_model` does). Returns (loss, logits,
    information): the logits of the bottlenecked pass and the information in nats per
    element, both detached. Used by `zoo.readouts` to train the readout on the labels of
    the training data (the authors: the ground-truth labels).
    """
    inputs = check_model_and_inputs(model, inputs, ndim=4)
    check_number(beta, "beta", 0.0)
    modules = _readout_layers(model, inputs, readout)
    logits, record = _record(model, modules, inputs, readout)
    t = check_target(target, inputs.shape[0], logits.shape[1], inputs.device)
    st = readout.stats()
    R, active = record[readout.bottleneck], st.active.to(inputs.dtype)
    lam = _readout_lambda(readout, record)
    eps = st.mean + st.std * torch.randn(R.shape, generator=generator, dtype=R.dtype,
                                         device=R.device)
    Z = (lam * R + (1 - lam) * eps) * active

    def hook(mod, args, output):  # the second pass: R -> Z, autograd on from here
        torch.set_grad_enabled(True)
        return (Z, *output[1:]) if isinstance(output, tuple) else Z

    handle = modules[readout.bottleneck].register_forward_hook(hook)
    try:
        with torch.no_grad():  # the hook turns autograd on; leaving this block restores it
            logits = model(inputs)
    finally:
        handle.remove()
    information = (kl_capacity(R, lam, st.mean, st.std) * active).mean()
    loss = F.cross_entropy(logits, t) + beta * information
    return loss, logits.detach(), information.detach()


@options()
def readout_bottleneck(model: nn.Module, inputs: torch.Tensor, target,
                       readout: Readout) -> torch.Tensor:
    """The Readout Bottleneck: IBA's map from one pass, alpha predicted by a trained network.

        alpha = readout(features of x at several layers),  lambda = smooth(sigmoid(alpha))
        map = sum over channels of KL(N(lambda r, (1 - lambda)^2) || N(0, 1)), in bits

    Schulz, Sixt, Tombari & Landgraf, ICLR 2020, section 3.2. The per-sample bottleneck (`iba`)
    optimises alpha for each input (10 steps of 10 noisy copies); the readout bottleneck
    learns once, over a training set, to predict alpha from what the model computes for the
    input (`Readout`, trained with `readout_loss`: `iba`'s loss with the training labels),
    and then explains in one forward pass: the capacity depends on R and lambda only, so no
    noise is drawn. The map: as `iba`'s, bits per place at the input's resolution.

    readout: a trained `Readout` for this model (the zoo's `cluttered-digits-readout`, for
    `cluttered-digits`: `xai-course train cluttered-digits-readout` retrains it), on the
    inputs' device. target: checked as every method's, but the map does not depend on it:
    the readout was trained with each input's true label and answers for what the model's
    features show (the authors' `IBAReadout.analyze` likewise ignores its loss). For another
    class, run `iba`.

    Checked: against `iba` at the same layer with the same statistics (tests/test_bottleneck.py:
    the correlation of the two maps, and their share of energy inside the digits' masks).
    """
    inputs = check_model_and_inputs(model, inputs, ndim=4)
    modules = _readout_layers(model, inputs, readout)
    rows = rows_per_pass(inputs, backward=False)
    if not isinstance(target, int) or isinstance(target, bool):
        target = check_target(target, inputs.shape[0], 2 ** 62, inputs.device)
    maps = []
    with unchanged(model), unchanged(readout), torch.no_grad():
        st = readout.stats()
        for start in range(0, inputs.shape[0], rows):
            x = inputs[start:start + rows]
            logits, record = _record(model, modules, x, readout)
            check_target(target if isinstance(target, int) else target[start:start + rows],
                         x.shape[0], logits.shape[1], x.device)
            capacity = kl_capacity(record[readout.bottleneck], _readout_lambda(readout, record),
                                   st.mean, st.std) * st.active
            maps.append(capacity_map(capacity, inputs.shape[2:]))
    return torch.cat(maps)


# --------------------------------------------------------------------------- InputIBA
def input_kl_capacity(x: torch.Tensor, lam: torch.Tensor, prior: torch.Tensor,
                      mean: torch.Tensor | float, std: torch.Tensor | float) -> torch.Tensor:
    """The capacity of the input bottleneck Z = lambda x + (1 - lambda) eps, eps ~ N(mu, sigma^2),
    measured against the prior's distribution, in nats (Zhang et al. 2021, eq. 9; the
    authors' `BaseInputIBA.kl_div`):

        r = (x - mu + lambda_G (mu - x)) / ((1 - lambda_G lambda) sigma)
        sigma_z^2 = (1 - lambda)^2 / (1 - lambda_G lambda)^2,   mu_z = lambda r
        capacity = -1/2 (1 + log sigma_z^2 - mu_z^2 - sigma_z^2)

    lambda_G: the prior mask found by the GAN. With lambda_G = 0 this is `kl_capacity`.
    """
    r = (x - mean + prior * (mean - x)) / ((1 - prior * lam) * std)
    var_z = (1 - lam) ** 2 / (1 - prior * lam) ** 2
    mu_z = lam * r
    return -0.5 * (1 + torch.log(var_z) - mu_z ** 2 - var_z)


class Critic(nn.Module):
    """The authors' WGAN critic for feature maps (C, h, w) (InputIBA's `VisionDiscriminator`):

        conv 4x4 /2 (C -> 2C), BN, LeakyReLU 0.2;  conv 4x4 /2 (2C -> 4C), BN, LeakyReLU;
        conv 3x3 (4C -> C), BN, LeakyReLU;  linear C (h/4)(w/4) -> 512 -> 256 -> 1

    No sigmoid: a Wasserstein critic scores, it does not classify. `width` scales the
    2C / 4C / 512 / 256 widths (1: the authors' sizes).
    """

    def __init__(self, channels: int, size, width: float = 1.0):
        super().__init__()
        c2, c4 = max(1, round(2 * channels * width)), max(1, round(4 * channels * width))
        h, w = size[0] // 2 // 2, size[1] // 2 // 2  # after the two stride-2 convolutions
        if h * w == 0:
            raise ValueError(f"the critic needs feature maps of at least 4 x 4 places, got "
                             f"{tuple(size)}; pick an earlier layer")
        self.features = nn.Sequential(
            nn.Conv2d(channels, c2, 4, stride=2, padding=1), nn.BatchNorm2d(c2),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c2, c4, 4, stride=2, padding=1), nn.BatchNorm2d(c4), nn.LeakyReLU(0.2),
            nn.Conv2d(c4, channels, 3, padding=1), nn.BatchNorm2d(channels),
            nn.LeakyReLU(0.2),
        )
        hidden = max(1, round(512 * width)), max(1, round(256 * width))
        self.score = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * h * w, hidden[0]), nn.LeakyReLU(0.2),
            nn.Linear(hidden[0], hidden[1]), nn.LeakyReLU(0.2), nn.Linear(hidden[1], 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(features))[:, 0]


class SequenceCritic(nn.Module):
    """The authors' WGAN critic for sequences of features (L, D) (InputIBA's
    `NLPDiscriminator`): an LSTM of D units over the places, its last state -> 128 -> 1."""

    def __init__(self, channels: int, width: float = 1.0):
        super().__init__()
        hidden = max(1, round(128 * width))
        self.lstm = nn.LSTM(channels, channels, batch_first=True)
        self.score = nn.Sequential(nn.Linear(channels, hidden), nn.LeakyReLU(0.2),
                                   nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        with torch.backends.cudnn.flags(enabled=False):
            _, (last, _) = self.lstm(features)
        return self.score(last[-1])[:, 0]


@dataclasses.dataclass
class InputIBAResult:
    """Each stage of `input_iba(..., stages=True)`, for N inputs.

    feature_map: (N, H, W) stage 1, the feature bottleneck's capacity in bits per pixel.
    critic_loss, generator_loss: (N, critic steps), (N, generator steps) stage 2, the WGAN's
    losses (the critic's -(mean score of real - mean score of fake), the generator's -mean
    score of fake). prior: (N, H, W) stage 2's mask lambda_G, averaged over channels.
    input_map: (N, H, W) stage 3, the input bottleneck's lambda averaged over channels: the
    result. loss: (steps, N) stage 3's loss per step. seconds: each stage's time.
    """

    feature_map: torch.Tensor
    critic_loss: torch.Tensor
    generator_loss: torch.Tensor
    prior: torch.Tensor
    input_map: torch.Tensor
    loss: torch.Tensor
    seconds: dict


def _layer_output(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's output for `x`; the forward pass stops there. Differentiable."""
    record = {}

    def hook(mod, args, output):
        record["R"] = _features(output)
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    return record["R"]


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list) -> None:
    """One optimiser step on `params` only (the model's own weights get no .grad)."""
    grads = torch.autograd.grad(loss, params)
    for p, g in zip(params, grads):
        p.grad = g
    optimizer.step()


def _gan_prior(model: nn.Module, module: nn.Module, x: torch.Tensor, lam_feature, stats,
               mask_logits, real_samples: int, batch_size: int, epochs: int, critic_iter: int,
               weight_clip: float, critic_lr: float, critic_width: float, generator, bar):
    """Stage 2 for one input x (1, C, H, W) or (1, L, D): fit the generator's mask (the shape
    of `mask_logits`: (C, H, W), or (L, 1), one per token) so that the features of the
    masked input look like the feature bottleneck's samples. Returns lambda_G and the
    losses."""
    with torch.no_grad():
        R = _layer_output(model, module, x)[0]
    active = stats.active.to(R.dtype)
    # "real": the feature bottleneck's own output, Z = lambda* R + (1 - lambda*) eps
    eps = stats.mean + stats.std * torch.randn((real_samples, *R.shape), generator=generator,
                                               dtype=R.dtype, device=R.device)
    real = (lam_feature * R + (1 - lam_feature) * eps) * active
    seed = int(torch.randint(2 ** 62, (1,), generator=generator, device=x.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the critic's initial weights: from `generator`
        critic = (Critic(R.shape[0], R.shape[1:], critic_width) if R.ndim == 3
                  else SequenceCritic(R.shape[-1], critic_width)).to(x.device, x.dtype)
    m = mask_logits.clone().requires_grad_(True)
    # the noise's mean and scale: per image channel (C, 1, 1), per token (L, 1)
    noise_shape = (x.shape[1], 1, 1) if x.ndim == 4 else (x.shape[1], 1)
    mu = torch.zeros(noise_shape, dtype=x.dtype, device=x.device, requires_grad=True)
    s = torch.ones(noise_shape, dtype=x.dtype, device=x.device, requires_grad=True)
    opt_critic = torch.optim.RMSprop(critic.parameters(), lr=critic_lr)
    opt_gen = torch.optim.RMSprop([{"params": [mu], "lr": 0.1}, {"params": [s], "lr": 0.05},
                                   {"params": [m], "lr": 0.003}])

    def fake(g):  # G(g) = sigmoid(m) x + (1 - sigmoid(m)) (s g + mu), seen at the layer
        keep = torch.sigmoid(m)
        return _layer_output(model, module, keep * x + (1 - keep) * (s * g + mu))

    critic_losses, generator_losses = [], []
    params = list(critic.parameters())
    for _ in range(epochs):
        order = torch.randperm(real_samples, generator=generator, device=x.device)
        for i, start in enumerate(range(0, real_samples, batch_size)):
            batch = real[order[start:start + batch_size]]
            g = torch.randn((len(batch), *x.shape[1:]), generator=generator, dtype=x.dtype,
                            device=x.device)
            train_generator = i % critic_iter == 0
            with torch.set_grad_enabled(train_generator):
                fakes = fake(g)  # the generator's step below reuses them: G is unchanged
            with torch.enable_grad():
                loss_critic = critic(fakes.detach()).mean() - critic(batch).mean()
                _step(opt_critic, loss_critic, params)
            with torch.no_grad():
                for p in params:
                    p.clamp_(-weight_clip, weight_clip)
            critic_losses.append(loss_critic.detach())
            if train_generator:
                with torch.enable_grad():
                    loss_gen = -critic(fakes).mean()
                    _step(opt_gen, loss_gen, [mu, s, m])
                generator_losses.append(loss_gen.detach())
            bar.update()
    return torch.sigmoid(m).detach(), torch.stack(critic_losses), torch.stack(generator_losses)


def _input_bottleneck(model: nn.Module, x: torch.Tensor, target, prior: torch.Tensor,
                      beta: float, steps: int, lr: float, samples: int, sigma, mean, std,
                      generator, bar):
    """Stage 3 for n inputs: an IBA on the input itself, its capacity measured against the
    prior lambda_G. alpha has the prior's shape: (n, C, H, W), or (n, L, 1) for texts (one
    per token). Returns alpha and the loss per step."""
    n, S = x.shape[0], samples
    alpha = torch.full(prior.shape, INITIAL_ALPHA, dtype=x.dtype, device=x.device,
                       requires_grad=True)
    optimizer = torch.optim.Adam([alpha], lr=lr)
    xs = x[:, None]  # (n, 1, C, H, W): the S copies of an input broadcast
    losses = []
    with torch.enable_grad():
        for _ in range(steps):
            lam = smooth(torch.sigmoid(alpha), sigma)
            lam = lam.clamp(max=1 - torch.finfo(lam.dtype).eps)[:, None]
            eps = mean + std * torch.randn((n, S, *x.shape[1:]), generator=generator,
                                           dtype=x.dtype, device=x.device)
            Z = (lam * xs + (1 - lam) * eps).flatten(0, 1)
            logits = model(Z)
            t = check_target(target, n, logits.shape[1], x.device)
            ce = F.cross_entropy(logits, t.repeat_interleave(S), reduction="none")
            capacity = input_kl_capacity(x, lam[:, 0], prior, mean, std)
            loss = ce.view(n, S).mean(dim=1) + beta * capacity.flatten(1).mean(dim=1)
            _step(optimizer, loss.sum(), [alpha])
            losses.append(loss.detach())
            bar.update(n)
    return alpha.detach(), torch.stack(losses)


@options(
    Option("beta", "float", 20.0, "weight of the information terms (feature and input)",
           low=0.01, high=1000.0, log=True),
    Option("steps", "int", 60, "Adam steps of the input bottleneck", low=1, high=200),
    Option("epochs", "int", 20, "epochs of the GAN over its real samples", low=1, high=100),
)
def input_iba(model: nn.Module, inputs: torch.Tensor, target, layer, beta: float = 20,
              steps: int = 60, epochs: int = 20, feature_steps: int = 10,
              feature_beta: float | None = None, samples: int = 10,
              lr: float = 1.0, sigma: float | None = 1.0, real_samples: int = 200,
              gan_batch_size: int = 32, critic_width: float = 0.25,
              input_mean: float | None = None, input_std: float | None = None,
              stats: FeatureStats | None = None, generator: torch.Generator | None = None,
              stages: bool = False, progress: bool = False):
    """InputIBA: a feature bottleneck's answer as the prior of a bottleneck on the input.

    Zhang, Khakzar, Li, Navab & Wu, "Fine-Grained Neural Network Explanation by Identifying
    Input Features with Predictive Information", NeurIPS 2021. IBA at a deep layer knows
    *what* matters but only at the layer's coarse resolution; a bottleneck on the input has
    the input's resolution but, with N(0, 1) as its reference, counts as information what
    the network ignores anyway. InputIBA runs three stages per input:

    1. Feature IBA (`iba`) at `layer`, beta = 20 (feature_beta: another beta for this stage),
       10 steps (feature_steps), no smoothing: lambda* (C, h, w).
    2. A generative prior. A mask m over the input, with learned noise (mu, s):
           G(g) = sigmoid(m) x + (1 - sigmoid(m)) (s g + mu),   g ~ N(0, I)
       is trained as a Wasserstein GAN (weight clipping 0.01, RMSprop: critic lr 5e-5,
       mu 0.1, s 0.05, m 0.003; batch 32; one generator step per 5 critic steps) until the
       layer's features of G(g) look like the feature bottleneck's output: 200 "real"
       samples Z = lambda* R + (1 - lambda*) eps, eps ~ N(mu_R, sigma_R^2). m starts at the
       stage-1 map in bits. lambda_G = sigmoid(m): the input pixels that carry what the
       layer passed.
    3. An input bottleneck Z = lambda x + (1 - lambda) eps, eps ~ N(mu_x, sigma_x^2), whose
       capacity is measured against lambda_G (`input_kl_capacity`): beta = 20, 60 Adam
       steps of lr 1, 10 noisy copies, lambda smoothed by a Gaussian of 1 pixel.

    Returns lambda of stage 3 averaged over the input's channels, (N, H, W) in [0, 1] (not
    bits: the authors' output). stages=True: an `InputIBAResult` with every stage's output.

    Text: the input is the embedding output, one mask per token, the layer a sequence layer
    of the encoder: `input_iba(model.encoder, model.embedding(ids), y, "lstm")` -> (N, L).
    The critic is then the authors' LSTM critic (`SequenceCritic`) and the generator's noise
    has a mean and scale per token. The authors' text settings differ from the image ones
    (feature_beta=15, beta=30, steps=30, lr=0.5, sigma=0); pass them as options.

    Where the authors' code and paper differ: the code's "real" samples mix R with the
    stage-1 *capacity* in nats as the weight (a comment there questions that choice
    against lambda) and noise of a random mean and std per 20 samples; the paper's (section 3.2)
    are the feature bottleneck's Z. Here: the paper's. The numbers are the code's
    (configs/vgg_imagenet.py), except the critic's widths (critic_width: 0.25 of the
    authors' 2C, 4C, 512, 256), so that one cluttered-digits canvas takes well under a
    minute on two CPU cores. The input noise: the code's N(0, 1) in its normalised pixel
    space is noise with the data's per-channel mean and std; the course's images are in
    [0, 1], so mu_x, sigma_x are the data's, from `stats` (input_mean, input_std: other
    numbers; with N(0, 1) on [0, 1] images the map can spread over the background).

    stats: `feature_stats(model, layer, data)` (None: the last ones for this model and
    layer). generator: every random draw, the critic's initial weights included.
    progress: a tqdm bar per stage.
    """
    inputs = check_model_and_inputs(model, inputs, ndim=(3, 4))
    _check_iba_options(beta, steps, lr, samples, sigma)
    feature_beta = beta if feature_beta is None else check_number(feature_beta, "feature_beta")
    for value, option in ((epochs, "epochs"), (feature_steps, "feature_steps"),
                          (real_samples, "real_samples"), (gan_batch_size, "gan_batch_size")):
        check_positive_int(value, option)
    check_number(critic_width, "critic_width", 0.0, strict=True)
    if input_std is not None:
        check_number(input_std, "input_std", 0.0, strict=True)
    if input_mean is not None:
        check_number(input_mean, "input_mean", -math.inf)
    name, module = _layer(model, inputs, layer)
    if not isinstance(target, int) or isinstance(target, bool):
        target = check_target(target, inputs.shape[0], 2 ** 62, inputs.device)
    image = inputs.ndim == 4
    n, size = inputs.shape[0], inputs.shape[2:] if image else inputs.shape[1:2]

    def per_place(t):  # a mask (n, C, H, W) or (n, L, 1) -> (n, H, W) or (n, L)
        return t.mean(dim=1 if image else 2)

    per_chunk = max(1, rows_per_pass(inputs) // samples)
    per_epoch = math.ceil(real_samples / gan_batch_size)
    seconds = dict.fromkeys(("feature IBA", "GAN", "input IBA"), 0.0)
    out = collections.defaultdict(list)
    bars = [tqdm(total=total * n, desc=desc, position=i, disable=not progress)
            for i, (total, desc) in enumerate([(feature_steps, "InputIBA 1/3 feature IBA"),
                                               (epochs * per_epoch, "InputIBA 2/3 GAN"),
                                               (steps, "InputIBA 3/3 input IBA")])]
    try:
        with unchanged(model):
            for first in range(0, n, per_chunk):
                part = slice(first, first + per_chunk)
                x = inputs[part]
                t = target if isinstance(target, int) else target[part]
                # stage 1: the feature bottleneck, unsmoothed
                start = time.perf_counter()
                feature = _bottleneck(model, module, name, x, t, stats, feature_beta,
                                      feature_steps, lr, samples, None, generator, False,
                                      bars[0])
                lam_feature = torch.sigmoid(feature["alpha"])
                feature_map = capacity_map(feature["capacity"], size)
                st = _stats_for(model, name, stats, lam_feature.shape[1:], x.device, x.dtype)
                mean = st.input_mean if input_mean is None else input_mean
                std = st.input_std if input_std is None else input_std
                if mean is None or std is None:
                    raise ValueError("these statistics hold no input statistics (computed on "
                                     "token ids?): give input_mean and input_std")
                seconds["feature IBA"] += time.perf_counter() - start
                # stage 2: the generative prior, one GAN per input
                start = time.perf_counter()
                priors = []
                for i in range(x.shape[0]):
                    logits = (feature_map[i].expand(x.shape[1], -1, -1) if image
                              else feature_map[i][:, None])
                    prior, critic_loss, generator_loss = _gan_prior(
                        model, module, x[i:i + 1], lam_feature[i], st, logits, real_samples,
                        gan_batch_size, epochs, 5, 0.01, 5e-5, critic_width, generator,
                        bars[1])
                    priors.append(prior)
                    out["critic_loss"].append(critic_loss)
                    out["generator_loss"].append(generator_loss)
                prior = torch.stack(priors)
                seconds["GAN"] += time.perf_counter() - start
                # stage 3: the input bottleneck with the prior
                start = time.perf_counter()
                alpha, losses = _input_bottleneck(model, x, t, prior, beta, steps, lr, samples,
                                                  sigma, mean, std, generator, bars[2])
                seconds["input IBA"] += time.perf_counter() - start
                out["feature_map"].append(feature_map)
                out["prior"].append(per_place(prior))
                out["input_map"].append(per_place(torch.sigmoid(alpha)))
                out["loss"].append(losses)
    finally:
        for bar in bars:
            bar.close()
    input_map = torch.cat(out["input_map"])
    if not stages:
        return input_map
    return InputIBAResult(feature_map=torch.cat(out["feature_map"]),
                          critic_loss=torch.stack(out["critic_loss"]),
                          generator_loss=torch.stack(out["generator_loss"]),
                          prior=torch.cat(out["prior"]), input_map=input_map,
                          loss=torch.cat(out["loss"], dim=1), seconds=seconds)
