"""Chapter 03: class activation maps. Explain a CNN with the feature maps it computes anyway.

Question (1) of the course, *if this feature changed, how would the output change?*, asked
of a layer's feature maps instead of the pixels: a map cell is a superpixel-sized feature.
A late convolutional layer still knows *where*: each of its K maps A_k (h x w) lights up
where its pattern is in the image. A class activation map is a weighted sum of those maps,

    M_c = ReLU( sum_k alpha_ck A_k ),   upsampled from h x w to the input's H x W,

and the methods of this chapter differ only in the channel weights alpha_ck:

    cam           alpha_ck = w_ck / (h w)        the weights of a GAP + linear head (exact)
    grad_cam      alpha_ck = mean_ij dS_c/dA_kij  the mean gradient: any differentiable head
    grad_cam_pp   alpha_ck = sum_ij a_kij ReLU(dS_c/dA_kij)   pixel-weighted gradients
    score_cam     alpha_ck = softmax_k S_c(x * H_k)  the score of the input masked by map k

So the code has one shared path, as pytorch-grad-cam's `base_cam.py`:

    layer_maps(model, x, target, layer)   one forward (+ backward) pass with a hook on the
                                          layer: the maps A and the gradients dS_c/dA
    <method>_weights(model, x, maps)      each method's alpha (N, K), nothing else
    weighted_sum(weights, maps, ...)      sum_k alpha_k A_k, then ReLU, upsampling, min-max

Every gradient-weighted CAM is a first-order view, like the methods of chapter 02 one layer
up: Grad-CAM replaces the network after the layer by the linear head whose weights are the
mean gradients. On a GAP + linear head that *is* the head (CAM is exact: deleting a cell of
the map lowers the score by exactly its value); on any other head it is a linearisation,
and the map explains that simplified head, not the real one. Score-CAM asks the real head.

`conv_layers(model, input_shape)` lists the layers a student can pick, with their map size.
CAM methods need spatial feature maps (N, C, h, w): they do not apply to a model without
convolutional layers (the text model of the course), and say so.

Checked (tests/test_cam.py): `cam == grad_cam` on a GAP + linear head; `grad_cam` against
Captum `LayerGradCam` and pytorch-grad-cam `GradCAM`; `grad_cam_pp` against `GradCAMPlusPlus`;
`score_cam` against `ScoreCAM`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .convention import (
    Option,
    check_model_and_inputs,
    check_positive_int,
    check_target,
    model_device,
    options,
    reference,
    rows_per_pass,
    unchanged,
)

__all__ = [
    "Layer",
    "LayerMaps",
    "conv_layers",
    "default_layer",
    "resolve_layer",
    "layer_maps",
    "weighted_sum",
    "cam",
    "grad_cam",
    "grad_cam_pp",
    "score_cam",
    "score_cam_topk",
    "cam_weights",
    "grad_cam_weights",
    "grad_cam_pp_weights",
    "score_cam_weights",
    "score_cam_topk_weights",
    "upsample_map",
    "minmax",
]

UPSAMPLE = ("bilinear", "nearest", None)
NORMALIZE = (None, "minmax")


# --------------------------------------------------------------------------- layers
@dataclasses.dataclass(frozen=True)
class Layer:
    """A layer whose output is a stack of maps: `channels` maps of `height` x `width`."""

    name: str
    channels: int
    height: int
    width: int
    module: nn.Module = dataclasses.field(repr=False, compare=False, default=None)

    def __str__(self) -> str:
        return f"{self.name}: {self.channels} maps of {self.height}x{self.width}"


def _dummy(model: nn.Module, inputs) -> torch.Tensor:
    """One example to run: the first of `inputs`, or zeros of the shape (C, H, W) given."""
    if isinstance(inputs, torch.Tensor):
        return inputs[:1]
    return torch.zeros((1, *inputs), device=model_device(model))


def conv_layers(model: nn.Module, input_shape: Sequence[int] | torch.Tensor) -> list[Layer]:
    """The layers a CAM can be computed at, in the order the forward pass reaches them.

    input_shape: the shape of one input, e.g. (3, 64, 64), or a batch of inputs (the first is
    used). One forward pass finds every module whose output is a (N, C, h, w) stack of maps
    and that runs exactly once per pass (a module used twice, like the shared ReLU of
    torchvision's BasicBlock, has no single output to explain). Late layers have coarse maps
    that know *what*; early layers fine maps of edges and strokes that know mostly *where*.
    """
    x = _dummy(model, input_shape)
    calls: dict[str, list] = {}  # name -> [times called, output shape of the first call]

    def recorder(name):
        def hook(module, args, output):
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else None
            calls.setdefault(name, [0, shape])[0] += 1
        return hook

    modules = dict(model.named_modules())
    handles = [m.register_forward_hook(recorder(n)) for n, m in modules.items() if n]
    try:
        with unchanged(model), torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return [Layer(name, shape[1], shape[2], shape[3], modules[name])
            for name, (count, shape) in calls.items()
            if count == 1 and shape is not None and len(shape) == 4]


def _no_maps_message(model: nn.Module) -> str:
    return (f"CAM methods weight the channels of a convolutional layer's (N, C, h, w) feature "
            f"maps, and no layer of this {type(model).__name__} outputs such maps: it is not "
            f"a convolutional network. Use a method that needs no feature maps (gradients, "
            f"chapter 02; occlusion, chapter 04).")


def _valid_layers_message(layers: list[Layer], model: nn.Module) -> str:
    if not layers:
        return _no_maps_message(model)
    return "valid layers: " + "; ".join(str(layer) for layer in layers)


def default_layer(layers: list[Layer], model: nn.Module) -> Layer:
    """The last layer with maps of more than one position: the usual choice for a CAM."""
    if not layers:
        raise ValueError(_no_maps_message(model))
    spatial = [layer for layer in layers if layer.height * layer.width > 1]
    return (spatial or layers)[-1]


def resolve_layer(model: nn.Module, inputs: torch.Tensor, layer) -> tuple[str, nn.Module]:
    """(name, module) of `layer`: a module of `model`, a dotted name, or None (the default)."""
    if layer is None:
        found = default_layer(conv_layers(model, inputs), model)
        return found.name, found.module
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer and name:
                return name, module
        raise ValueError(f"the layer given ({type(layer).__name__}) is not a module of the "
                         f"model; {_valid_layers_message(conv_layers(model, inputs), model)}")
    if isinstance(layer, str):
        try:
            module = model.get_submodule(layer) if layer else None
        except AttributeError:
            module = None
        if module is None:
            raise ValueError(f"unknown layer {layer!r}; "
                             f"{_valid_layers_message(conv_layers(model, inputs), model)}")
        return layer, module
    raise TypeError(f"layer must be a module of the model, its dotted name (e.g. 'layer4'), "
                    f"or None; got {type(layer).__name__}")


# --------------------------------------------------------------------------- the shared path
@dataclasses.dataclass
class LayerMaps:
    """What one pass records at a layer: the maps A, the gradients dS_c/dA, the scores.

    activations, gradients: (N, K, h, w) (gradients None when not asked for). logits:
    (N, classes) the model's output; target: (N,) the explained classes; scores: (N,) their
    logits S_c. size: the input's (H, W), where the map is upsampled to.
    """

    layer: str
    activations: torch.Tensor
    gradients: torch.Tensor | None
    logits: torch.Tensor
    target: torch.Tensor
    size: tuple[int, ...]

    @property
    def scores(self) -> torch.Tensor:
        return self.logits.gather(1, self.target[:, None])[:, 0]


class _NotMaps(Exception):
    """Raised inside the hook to stop a forward pass whose layer gives no maps."""


def layer_maps(model: nn.Module, inputs: torch.Tensor, target, layer=None,
               gradients: bool = True) -> LayerMaps:
    """Run the model once and record the layer's maps A_k and dS_c/dA_k (the shared path).

    layer: a module of `model`, its dotted name ("layer4", "features.28"), or None for the
    last layer with maps larger than 1 x 1 (`conv_layers`). S_c is the logit of class c.

    The network below the layer runs without autograd; a forward hook keeps the layer's
    output as A, turns autograd on and passes a copy of A on, so that the rest of the
    network computes from A: then dS_c/dA is one `torch.autograd.grad` call (also for the
    zoo's models, whose parameters are frozen), and in-place operations after the layer
    cannot change the recorded A. The hook is removed in a `finally`, and `unchanged(model)`
    restores everything else, also on errors.
    """
    inputs = check_model_and_inputs(model, inputs)
    name, module = resolve_layer(model, inputs, layer)
    record: dict = {"calls": 0}

    def hook(mod, args, output):
        record["calls"] += 1
        if record["calls"] > 1:
            record["problem"] = (
                f"layer {name!r} runs more than once in one forward pass (a module reused, "
                f"like the ReLU of torchvision's BasicBlock), so it has no single output to "
                f"explain; pick another layer")
            raise _NotMaps
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            what = (f"shape {tuple(output.shape)}" if isinstance(output, torch.Tensor)
                    else f"a {type(output).__name__}")
            record["problem"] = f"layer {name!r} outputs {what}, not (N, C, h, w) feature maps"
            raise _NotMaps
        record["A"] = output.detach().requires_grad_(gradients)
        torch.set_grad_enabled(gradients)  # from here on; the `no_grad` below restores it
        return record["A"].clone()  # the rest of the network computes from A

    handle = module.register_forward_hook(hook)
    try:
        with unchanged(model):
            try:
                with torch.no_grad():
                    logits = model(inputs)
            except _NotMaps:
                handle.remove()  # before listing the layers: that is another forward pass
                raise ValueError(f"{record['problem']}; "
                                 f"{_valid_layers_message(conv_layers(model, inputs), model)}"
                                 ) from None
            if "A" not in record:
                handle.remove()
                raise ValueError(f"layer {name!r} did not run in the forward pass; "
                                 f"{_valid_layers_message(conv_layers(model, inputs), model)}")
            if logits.ndim != 2:
                raise ValueError(f"the model must return (N, classes) scores, got shape "
                                 f"{tuple(logits.shape)}")
            t = check_target(target, inputs.shape[0], logits.shape[1], inputs.device)
            A, grads = record["A"], None
            if gradients:
                with torch.enable_grad():
                    scores = logits.gather(1, t[:, None])[:, 0]
                    if scores.requires_grad:
                        (grads,) = torch.autograd.grad(scores.sum(), A, allow_unused=True)
                if grads is None:
                    raise ValueError(f"the class score does not depend on layer {name!r}")
    finally:
        handle.remove()
    return LayerMaps(name, A.detach(), grads, logits.detach(), t, tuple(inputs.shape[2:]))


def upsample_map(maps: torch.Tensor, size: Sequence[int], mode: str | None = "bilinear"):
    """(N, h, w) -> (N, H, W). "bilinear": F.interpolate's align_corners=False (= Captum's
    `LayerAttribution.interpolate(..., "bilinear")` and OpenCV's `cv2.resize`, which
    pytorch-grad-cam uses); "nearest": each map cell as a block; None: unchanged."""
    if mode is None:
        return maps
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"upsample must be one of {list(UPSAMPLE)}, got {mode!r}")
    if len(size) != 2:
        raise ValueError(f"upsampling needs image inputs (N, C, H, W); the input's spatial "
                         f"shape is {tuple(size)}. Use upsample=None for the raw map.")
    align = False if mode == "bilinear" else None
    return F.interpolate(maps[:, None], size=tuple(size), mode=mode, align_corners=align)[:, 0]


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1]: (m - min) / (max - min); a constant map becomes 0."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values.view(-1, *[1] * (maps.ndim - 1))
    span = flat.max(dim=1).values.view_as(low) - low
    return torch.where(span > 0, (maps - low) / torch.where(span > 0, span, 1), 0.0)


def weighted_sum(weights: torch.Tensor, maps: LayerMaps, relu: bool = True,
                 upsample: str | None = "bilinear", normalize: str | None = None) -> torch.Tensor:
    """The shared ending: M = sum_k weights_k A_k, then ReLU, upsampling, normalisation.

    weights: (N, K). relu: keep only the places that raise the score (the papers' ReLU).
    upsample: "bilinear", "nearest" or None (the raw h x w map). normalize: None (the raw
    numbers) or "minmax" (each map to [0, 1], as pytorch-grad-cam returns it). The ReLU comes
    before the upsampling and min-max after it, the order of Captum and pytorch-grad-cam.
    """
    if upsample not in UPSAMPLE:
        raise ValueError(f"upsample must be one of {list(UPSAMPLE)}, got {upsample!r}")
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be None or 'minmax', got {normalize!r}")
    m = (weights[:, :, None, None] * maps.activations).sum(dim=1)
    if relu:
        m = m.clamp(min=0)
    m = upsample_map(m, maps.size, upsample)
    return minmax(m) if normalize == "minmax" else m


# --------------------------------------------------------------------------- channel weights
def _gap_linear_head(model: nn.Module, maps: LayerMaps) -> nn.Linear:
    """The linear layer fc with logits == fc(mean_ij A), or a ValueError naming what is missing."""
    k, classes = maps.activations.shape[1], maps.logits.shape[1]
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    pooled = maps.activations.mean(dim=(2, 3))
    tolerance = 1e-4 * (1 + maps.logits.abs().max().item())
    for _, fc in linears:
        if fc.in_features == k and fc.out_features == classes:
            with torch.no_grad():
                if (fc(pooled) - maps.logits).abs().max().item() <= tolerance:
                    return fc
    found = ", ".join(f"{n} ({m.in_features} -> {m.out_features})" for n, m in linears)
    raise ValueError(
        f"cam needs a global-average-pooling + linear head on the maps of layer "
        f"{maps.layer!r}: the output must be fc(mean of its {k} maps) for a linear layer fc "
        f"with {k} inputs and {classes} outputs. This model has no such head (its linear "
        f"layers: {found or 'none'}): something other than a global average pool sits "
        f"between the layer and the output, or the head pools another layer (pick the layer "
        f"right before the global average pool). Grad-CAM needs no such head: use grad_cam.")


def cam_weights(model: nn.Module, inputs: torch.Tensor, maps: LayerMaps) -> torch.Tensor:
    """CAM: alpha_ck = w_ck / (h w), the class's row of the head's weight matrix."""
    fc = _gap_linear_head(model, maps)
    h, w = maps.activations.shape[2:]
    return fc.weight.detach()[maps.target] / (h * w)


def grad_cam_weights(model: nn.Module, inputs: torch.Tensor, maps: LayerMaps) -> torch.Tensor:
    """Grad-CAM: alpha_ck = (1 / hw) sum_ij dS_c / dA_k[i, j]."""
    return maps.gradients.mean(dim=(2, 3))


def grad_cam_pp_weights(model: nn.Module, inputs: torch.Tensor, maps: LayerMaps,
                        eps: float = 1e-6) -> torch.Tensor:
    """Grad-CAM++: alpha_ck = sum_ij a_kij ReLU(g_kij), g = dS_c/dA, with (paper, eq. 19)

        a_kij = g_kij^2 / (2 g_kij^2 + sum_ab A_kab g_kij^3 + eps),   a = 0 where g = 0.
    """
    g, A = maps.gradients, maps.activations
    g2 = g * g
    a = g2 / (2 * g2 + A.sum(dim=(2, 3), keepdim=True) * g2 * g + eps)
    a = torch.where(g != 0, a, 0.0)
    return (a * g.clamp(min=0)).sum(dim=(2, 3))


def _mask(A: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """H_k = s(Up(A_k)) for maps A (b, h, w): bilinear with align_corners=True (as
    pytorch-grad-cam's UpsamplingBilinear2d), then min-max with pytorch-grad-cam's 1e-8, so a
    constant map gives an all-zero mask."""
    up = F.interpolate(A[None], size=tuple(size), mode="bilinear", align_corners=True)[0]
    flat = up.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    high = flat.max(dim=1).values[:, None, None]
    return (up - low) / (high - low + 1e-8)


def _masked_scores(model: nn.Module, inputs: torch.Tensor, maps: LayerMaps,
                   channels: torch.Tensor, batch_size: int | None,
                   progress: bool) -> torch.Tensor:
    """S_c(x_n * H_nk) for the channels k = channels[n] of every example n: (N, len(channels)).

    The cost of Score-CAM: one forward pass per channel, `batch_size` masked inputs at a time,
    in inference mode. A constant map gives the all-zero mask; its score is the same for
    every such channel and is computed once per example.
    """
    if batch_size is None:
        batch_size = rows_per_pass(inputs, backward=False)
    check_positive_int(batch_size, "batch_size")
    if inputs.ndim != 4:
        raise ValueError(f"Score-CAM masks image inputs (N, C, H, W); got shape "
                         f"{tuple(inputs.shape)}")
    n, k = channels.shape
    scores = torch.empty(n, k, dtype=maps.activations.dtype, device=inputs.device)
    chunks = range(0, k, batch_size)
    with tqdm(total=n * len(chunks), desc="score-cam", disable=not progress) as bar, \
            torch.inference_mode():
        for i in range(n):
            x, c = inputs[i:i + 1], maps.target[i]
            blank = None  # the score of the all-zero input
            for first in chunks:
                masks = _mask(maps.activations[i, channels[i, first:first + batch_size]],
                              maps.size)
                empty = masks.flatten(1).amax(dim=1) == 0
                out = scores[i, first:first + batch_size]
                if not empty.all():
                    out[~empty] = model(x * masks[~empty, None])[:, c].to(out.dtype)
                if empty.any():
                    if blank is None:
                        blank = model(torch.zeros_like(x))[0, c]
                    out[empty] = blank.to(out.dtype)
                bar.update()
    return scores


def score_cam_weights(model: nn.Module, inputs: torch.Tensor, maps: LayerMaps,
                      batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
    """Score-CAM: alpha_ck = softmax_k S_c(x * H_k), H_k = minmax(upsample(A_k)).

    progress: a tqdm bar over the masked passes.
    """
    n, k = maps.activations.shape[:2]
    every = torch.arange(k, device=inputs.device).expand(n, k)
    with unchanged(model):
        scores = _masked_scores(model, inputs, maps, every, batch_size, progress)
    return scores.softmax(dim=1)


def score_cam_topk_weights(model: nn.Module, inputs: torch.Tensor, maps: LayerMaps,
                           k: int = 32, rank: str = "activation",
                           batch_size: int | None = None,
                           progress: bool = False) -> torch.Tensor:
    """Score-CAM's weights for k chosen channels (softmax over those k), 0 for the others.

    rank="activation": the k maps with the largest mean activation; "grad_cam": the k largest
    Grad-CAM terms alpha_ck mean_ij A_k (needs maps.gradients).
    """
    if rank not in ("activation", "grad_cam"):
        raise ValueError(f"rank must be 'activation' or 'grad_cam', got {rank!r}")
    check_positive_int(k, "k")
    strength = maps.activations.mean(dim=(2, 3))
    if rank == "grad_cam":
        strength = grad_cam_weights(model, inputs, maps) * strength
    chosen = strength.topk(min(k, strength.shape[1]), dim=1).indices  # (N, k)
    with unchanged(model):
        scores = _masked_scores(model, inputs, maps, chosen, batch_size, progress)
    return torch.zeros_like(strength).scatter_(1, chosen, scores.softmax(dim=1))


# --------------------------------------------------------------------------- the methods


_MAP_OPTIONS = (
    Option("relu", "bool", True, "keep only the places that raise the class score"),
    Option("upsample", "choice", "bilinear", "from the layer's h x w to the input's size "
           "(None: the raw coarse map)", choices=UPSAMPLE),
    Option("normalize", "choice", None, "None: raw numbers; minmax: each map to [0, 1]",
           choices=NORMALIZE),
)


def _uses(weights: Callable, gradients: bool, masked_passes: bool = False) -> Callable:
    """Record a method's channel-weight function, for the explorer's "how the map is made".

    masked_passes: the weights cost one forward pass per channel, and the weight function
    takes `progress` (a tqdm bar).
    """

    def attach(fn):
        fn.channel_weights = weights
        fn.uses_gradients = gradients
        fn.masked_passes = masked_passes
        return fn

    return attach


@reference("captum_grad_cam", "Captum LayerGradCam (= CAM on a GAP + linear head)")
@options(*_MAP_OPTIONS)
@_uses(cam_weights, gradients=False)
def cam(model: nn.Module, inputs: torch.Tensor, target, layer=None, relu: bool = True,
        upsample: str | None = "bilinear", normalize: str | None = None) -> torch.Tensor:
    """Class Activation Map: the last maps weighted by the classifier's own weights.

        M_c[i, j] = (1 / hw) sum_k w_ck A_k[i, j]

    Zhou, Khosla, Lapedriza, Oliva & Torralba, "Learning Deep Features for Discriminative
    Localization", CVPR 2016. It needs a head S_c = b_c + sum_k w_ck mean_ij A_k[i, j]
    (global average pooling, then one linear layer); then S_c = b_c + sum_ij M_c[i, j]:
    before ReLU and upsampling, the map says exactly how much each place adds to the score.
    (The paper writes M_c = sum_k w_ck A_k with a sum pool; with a mean pool the 1 / hw keeps
    that reading.) A model without such a head gets a ValueError saying what is missing.

    Returns (N, H, W) at the input's resolution (upsample=None: the raw (N, h, w) map).
    Checked: equal to `grad_cam` (and so to Captum LayerGradCam) on such a head.
    """
    maps = layer_maps(model, inputs, target, layer, gradients=False)
    return weighted_sum(cam_weights(model, inputs, maps), maps, relu, upsample, normalize)


@reference("captum_grad_cam", "Captum LayerGradCam")
@options(*_MAP_OPTIONS)
@_uses(grad_cam_weights, gradients=True)
def grad_cam(model: nn.Module, inputs: torch.Tensor, target, layer=None, relu: bool = True,
             upsample: str | None = "bilinear", normalize: str | None = None) -> torch.Tensor:
    """Grad-CAM: the maps weighted by the mean gradient of the class score.

        alpha_ck = (1 / hw) sum_ij dS_c / dA_k[i, j],    M_c = ReLU(sum_k alpha_ck A_k)

    Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra, "Grad-CAM: Visual Explanations from
    Deep Networks via Gradient-based Localization", ICCV 2017. For a GAP + linear head
    dS_c / dA_k[i, j] = w_ck / hw everywhere, so Grad-CAM *is* CAM; for any other
    differentiable head it is CAM's natural extension: the gradient is the local linear head,
    a first-order Taylor view of the real one (exact only when the head is linear).
    S_c is the logit. Checked against Captum `LayerGradCam` (relu_attributions=relu, then
    `LayerAttribution.interpolate(..., "bilinear")`) and pytorch-grad-cam `GradCAM`.
    """
    maps = layer_maps(model, inputs, target, layer)
    return weighted_sum(grad_cam_weights(model, inputs, maps), maps, relu, upsample, normalize)


@options(*_MAP_OPTIONS)
@_uses(grad_cam_pp_weights, gradients=True)
def grad_cam_pp(model: nn.Module, inputs: torch.Tensor, target, layer=None, relu: bool = True,
                upsample: str | None = "bilinear", normalize: str | None = None,
                eps: float = 1e-6) -> torch.Tensor:
    """Grad-CAM++: only positive gradients count, each place weighted by a_kij.

        alpha_ck = sum_ij a_kij ReLU(g_kij),
        a_kij = g_kij^2 / (2 g_kij^2 + sum_ab A_kab g_kij^3),   g = dS_c / dA

    Chattopadhay, Sarkar, Howlader & Balasubramanian, "Grad-CAM++: Improved Visual
    Explanations for Deep Convolutional Networks", WACV 2018 (eq. 19). The paper explains
    Y_c = exp(S_c); for a network that is piecewise linear after the layer, its second and
    third derivatives are exp(S_c) g^2 and exp(S_c) g^3, so a_kij needs only g, and the
    factor exp(S_c) of alpha is one positive number per image that normalisation removes.
    Where Grad-CAM averages the gradient, so that a large region of weak evidence can outweigh
    a small strong one, a_kij gives each place of a map a share that favours several
    instances of a class. eps = 1e-6 in the denominator, as pytorch-grad-cam (the paper has
    none): keep it to match its numbers. Checked against pytorch-grad-cam `GradCAMPlusPlus`.
    """
    maps = layer_maps(model, inputs, target, layer)
    weights = grad_cam_pp_weights(model, inputs, maps, eps=eps)
    return weighted_sum(weights, maps, relu, upsample, normalize)


@options(*_MAP_OPTIONS)
@_uses(score_cam_weights, gradients=False, masked_passes=True)
def score_cam(model: nn.Module, inputs: torch.Tensor, target, layer=None, relu: bool = True,
              upsample: str | None = "bilinear", normalize: str | None = None,
              batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
    """Score-CAM: weight each map by the score of the input it masks. No gradients.

        H_k = minmax(upsample(A_k)),   alpha_ck = softmax_k S_c(x * H_k),
        M_c = ReLU(sum_k alpha_ck A_k)

    Wang, Wang, Du, Yang, Zhang, Ding, Mardziel & Hu, "Score-CAM: Score-Weighted Visual
    Explanations for Convolutional Neural Networks", CVPR workshops 2020. A gradient is a
    local, first-order answer; Score-CAM asks the model instead: keep only the part of the
    image that map k highlights, and see how much of the class score remains. The price is
    one forward pass per channel (512 for ResNet-18's last block, 2048 for ResNet-50's).

    Conventions of pytorch-grad-cam's `ScoreCAM`, which it is checked against: S_c is the
    logit and the weights are its softmax over the channels (the authors' code weights each
    map by the class's softmax probability instead); masks are upsampled bilinearly with
    align_corners=True. batch_size: masked inputs per forward pass (None:
    `convention.rows_per_pass`, 8 at 224 x 224). progress: a tqdm bar over the passes.
    """
    maps = layer_maps(model, inputs, target, layer, gradients=False)
    weights = score_cam_weights(model, inputs, maps, batch_size=batch_size, progress=progress)
    return weighted_sum(weights, maps, relu, upsample, normalize)


@options(*_MAP_OPTIONS,
         Option("k", "int", 32, "channels scored (the rest weigh 0)", low=1, high=2048, log=True),
         Option("rank", "choice", "activation", "how the k channels are chosen",
                choices=("activation", "grad_cam")))
@_uses(score_cam_topk_weights, gradients=True, masked_passes=True)
def score_cam_topk(model: nn.Module, inputs: torch.Tensor, target, layer=None, relu: bool = True,
                   upsample: str | None = "bilinear", normalize: str | None = None, k: int = 32,
                   rank: str = "activation", batch_size: int | None = None,
                   progress: bool = False) -> torch.Tensor:
    """An APPROXIMATION of Score-CAM: only k channels are scored, the others weigh 0.

        alpha_ck = softmax over the chosen k of S_c(x * H_k);  0 for the other channels

    rank="activation": the k maps with the largest mean activation; rank="grad_cam": the k
    largest Grad-CAM terms alpha_ck mean_ij A_k (one backward pass more). Costs k forward
    passes instead of K. Not the paper's method: how close it comes to `score_cam` depends on
    the model and on k (`xai-course bench cam` prints the agreement).
    """
    maps = layer_maps(model, inputs, target, layer, gradients=rank == "grad_cam")
    weights = score_cam_topk_weights(model, inputs, maps, k=k, rank=rank,
                                     batch_size=batch_size, progress=progress)
    return weighted_sum(weights, maps, relu, upsample, normalize)
