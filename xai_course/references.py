"""The reference implementations every method of the course is checked against.

Each function here computes, with a reference library, the answer to the same call as one of
the course's methods, `ref(model, inputs, target, **options)`: the method names it with
`@reference("name", "label")` (see `convention.reference`), and the tests, the explorers'
"check against ..." box and `xai-course bench` call it as `method.reference`. They are kept
out of the chapter modules, which hold the methods and their lessons only.

    chapter 02  Captum Saliency, InputXGradient, IntegratedGradients, GuidedBackprop and
                NoiseTunnel around each
    chapter 03  Captum LayerGradCam
    chapter 04  Captum Occlusion
    chapter 05  Captum Lime and LimeBase, with scikit-learn's Ridge

Captum is imported when a reference is first called, not when the course is imported.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable

import torch

from .cam import minmax, resolve_layer
from .convention import check_model_and_inputs, unchanged
from .gradients import (
    _base_method,
    _per_example_target,
    gradient,
    guided_backprop,
    input_x_gradient,
    integrated_gradients,
    make_baseline,
    noise_level,
)
from .perturbation import window_shapes
from .surrogates import (
    _check_background,
    _cosine_distance_to_ones,
    _default_segments,
    _sigma,
    _tabular_parts,
    _targets,
    baseline_image,
    kernel_weights,
    sample_switches,
)


@contextlib.contextmanager
def _quiet_captum():
    """Silence Captum's notes about its own bookkeeping, not about the result: "Input Tensor
    0 did not already require gradients" and GuidedBackprop's hook notice on every call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor .* did not already require")
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        yield


def captum_saliency(model, inputs, target):
    from captum.attr import Saliency

    with _quiet_captum():
        return Saliency(model).attribute(inputs, target=target, abs=False)


def captum_input_x_gradient(model, inputs, target):
    from captum.attr import InputXGradient

    with _quiet_captum():
        return InputXGradient(model).attribute(inputs, target=target)


def _captum_algorithm(base, model, base_options: dict, inputs: torch.Tensor, generator=None):
    """Captum's attribution object for one of our base methods, and its keyword arguments."""
    from captum.attr import GuidedBackprop, InputXGradient, IntegratedGradients, Saliency

    base = _base_method(base)
    if base is gradient:
        return Saliency(model), {"abs": False}
    if base is input_x_gradient:
        return InputXGradient(model), {}
    if base is guided_backprop:
        return GuidedBackprop(model), {}
    if base is integrated_gradients:
        o = dict(base_options)
        baseline = o.get("baseline")
        if isinstance(baseline, str) and baseline != "black":
            raise ValueError("Captum's NoiseTunnel takes a fixed baseline; a named baseline "
                             "other than 'black' depends on each noisy copy")
        return IntegratedGradients(model), {
            "baselines": make_baseline(inputs, baseline, generator),
            "n_steps": o.get("steps", 50), "method": o.get("method", "gausslegendre"),
            "internal_batch_size": o.get("batch_size")}
    raise ValueError(f"no Captum counterpart for {base!r}")


def captum_noise_tunnel(nt_type: str) -> Callable:
    """The reference for one noise type: Captum NoiseTunnel, run with our noise level and,
    when a generator is given, with the generator's random state."""

    def ref(model, inputs, target, base="gradient", samples=25, sigma=None,
            sigma_fraction=0.15, batch_size=None, generator=None, progress=False,
            **base_options):
        from captum.attr import NoiseTunnel

        std = noise_level(inputs, sigma, sigma_fraction)
        t = _per_example_target(target, len(inputs), inputs.device)
        out = []
        with _quiet_captum(), torch.random.fork_rng(
                devices=[inputs.device] if inputs.device.type == "cuda" else []):
            if generator is not None:
                if inputs.device.type == "cuda":
                    torch.cuda.set_rng_state(generator.get_state(), inputs.device)
                else:
                    torch.set_rng_state(generator.get_state())
            for i in range(len(inputs)):  # one stdev per example: one call per example
                algorithm, kwargs = _captum_algorithm(base, model, base_options,
                                                      inputs[i:i + 1], generator)
                out.append(NoiseTunnel(algorithm).attribute(
                    inputs[i:i + 1], nt_type=nt_type, nt_samples=samples,
                    nt_samples_batch_size=batch_size, stdevs=float(std[i]),
                    target=t if isinstance(t, int) else t[i:i + 1], **kwargs))
        return torch.cat(out)

    return ref


captum_smoothgrad = captum_noise_tunnel("smoothgrad")
captum_smoothgrad_sq = captum_noise_tunnel("smoothgrad_sq")
captum_vargrad = captum_noise_tunnel("vargrad")


def captum_integrated_gradients(model, inputs, target, baseline=None, steps=50,
                                 method="gausslegendre", batch_size=None, return_delta=False,
                                 generator=None, progress=False):
    from captum.attr import IntegratedGradients

    return IntegratedGradients(model).attribute(
        inputs, baselines=make_baseline(inputs, baseline, generator), target=target,
        n_steps=steps, method=method, internal_batch_size=batch_size,
        return_convergence_delta=return_delta)


def captum_guided_backprop(model, inputs, target):
    from captum.attr import GuidedBackprop

    with _quiet_captum():
        return GuidedBackprop(model).attribute(inputs, target=target)


def captum_grad_cam(model, inputs, target, layer=None, relu=True, upsample="bilinear",
                     normalize=None, **ignored):
    """Captum LayerGradCam(relu_attributions=relu) -> LayerAttribution.interpolate -> min-max."""
    from captum.attr import LayerAttribution, LayerGradCam

    _, module = resolve_layer(model, inputs, layer)
    with unchanged(model):
        attr = LayerGradCam(model, module).attribute(inputs, target=target,
                                                     relu_attributions=relu)
    if upsample is not None:
        attr = LayerAttribution.interpolate(attr, tuple(inputs.shape[2:]), upsample)
    attr = attr[:, 0]
    return minmax(attr) if normalize == "minmax" else attr


def captum_occlusion(model, inputs, target, window=8, stride=None, baseline=0.0,
                     output="logit", batch_size=None, progress=False):
    from captum.attr import Occlusion

    forward = model if output == "logit" else (lambda x: model(x).softmax(dim=1))
    window, stride = window_shapes(inputs, window, stride)  # as ours reads them
    return Occlusion(forward).attribute(
        inputs, sliding_window_shapes=window, strides=stride, baselines=baseline,
        target=target, perturbations_per_eval=batch_size or 1,
    )


def _captum_ridge(alpha: float):
    """Captum's scikit-learn `Ridge(alpha)` wrapper, fitted on float64 copies of the data.

    Captum's LimeBase hands its surrogate float32 tensors, and scikit-learn then solves in
    float32 (errors ~1e-6 on coefficients of size ~1); the same data in float64 leaves only
    the float32 rounding of Captum's stored coefficients.
    """
    from captum._utils.models.linear_model import SkLearnLinearModel
    from torch.utils.data import DataLoader, TensorDataset

    class Ridge64(SkLearnLinearModel):
        def fit(self, train_data, **kwargs):
            x, y, w = (torch.cat(part).double() for part in zip(*train_data))
            return super().fit(DataLoader(TensorDataset(x, y, w), batch_size=len(x)), **kwargs)

    return Ridge64("linear_model.Ridge", alpha=float(alpha))


def captum_lime(model, inputs, target, segments=None, samples=1000, kernel_width=0.25,
                 baseline="mean", surrogate="linear", max_depth=3, alpha=1.0, generator=None,
                 return_surrogate=False, batch_size=None, progress=False,
                 perturbations_per_eval=64):
    """Captum `Lime` on the same samples (through `perturb_func`), kernel weights
    (`similarity_func`), baseline image (`baselines`) and scikit-learn `Ridge(alpha)`
    (fitted in float64, `_captum_ridge`)."""
    from captum.attr import Lime

    if surrogate != "linear":
        raise ValueError("Captum's Lime fits linear surrogates only (a tree's importances "
                         "have no sign); compare surrogate='linear'")
    inputs = check_model_and_inputs(model, inputs, ndim=4)
    segments = _default_segments(inputs, segments)
    t = _targets(model, inputs, target)
    maps = []
    for n in range(inputs.shape[0]):
        x, seg = inputs[n:n + 1], segments[n]
        k = int(seg.max()) + 1
        z = sample_switches(samples, k, generator, inputs.device)

        def perturb(original, z=z, **kwargs):
            yield from z[:, None]  # one (1, K) row at a time, in our order

        def similarity(original, perturbed, interpretable, **kwargs):
            return kernel_weights(_cosine_distance_to_ones(interpretable), kernel_width)

        lime = Lime(model, interpretable_model=_captum_ridge(alpha),
                    similarity_func=similarity, perturb_func=perturb)
        with unchanged(model):
            attr = lime.attribute(x, target=int(t[n]), n_samples=samples,
                                  baselines=baseline_image(x[0], seg, baseline)[None],
                                  feature_mask=seg[None, None].expand_as(x),
                                  perturbations_per_eval=perturbations_per_eval)
        maps.append(attr[0, 0])
    return torch.stack(maps)


def captum_lime_tabular(model, inputs, target, background, samples=1000, kernel_width=None,
                         surrogate="linear", max_depth=3, alpha=1.0, generator=None,
                         return_surrogate=False, batch_size=None, progress=False,
                         perturbations_per_eval=64):
    """Captum `LimeBase` perturbing in input space, `to_interp_rep_transform` = standardise,
    on our samples and kernel weights, with scikit-learn `Ridge(alpha)`."""
    from captum.attr import LimeBase

    if surrogate != "linear":
        raise ValueError("Captum's LimeBase is compared with linear surrogates only")
    inputs = check_model_and_inputs(model, inputs, ndim=2)
    background = _check_background(inputs, background)
    t = _targets(model, inputs, target)
    width = kernel_width or 0.75 * math.sqrt(inputs.shape[1])
    rows = []
    for n in range(inputs.shape[0]):
        values, u, eps = _tabular_parts(inputs[n], background, samples, generator)
        weights = kernel_weights(eps.double().norm(dim=1), width)
        mu, sigma = background.mean(dim=0), _sigma(background)

        def perturb(original, values=values, **kwargs):
            yield from values[:, None]

        def similarity(original, perturbed, interpretable, values=values, weights=weights,
                       **kwargs):
            row = (values == perturbed).all(dim=1).nonzero()[0, 0]
            return weights[row].item()

        def standardise(sample, original, mu=mu, sigma=sigma, **kwargs):
            return (sample - mu) / sigma

        lime = LimeBase(model, _captum_ridge(alpha), similarity, perturb, False,
                        None, standardise)
        with unchanged(model):
            rows.append(lime.attribute(inputs[n:n + 1], target=int(t[n]), n_samples=samples,
                                       perturbations_per_eval=perturbations_per_eval)[0])
    return torch.stack(rows)


# --------------------------------------------------------------------------- chapter 08
def captum_shapley_values(f, x, baseline=0.0, target=None, groups=None, batch_size=None,
                          progress=False, perturbations_per_eval=16):
    """Captum `ShapleyValues`: every one of the d! orders (only for a few players), the
    reference of `shapley.exact_shapley` for a model."""
    from captum.attr import ShapleyValues

    from .shapley import _baseline, players

    x = check_model_and_inputs(f, x)
    groups, _ = players(x, groups)
    with unchanged(f):
        return ShapleyValues(f).attribute(x, baselines=_baseline(x, baseline), target=target,
                                          feature_mask=groups,
                                          perturbations_per_eval=perturbations_per_eval)


def captum_shapley_value_sampling(model, inputs, target, baseline=0.0, samples=25,
                                  groups=None, generator=None, batch_size=None,
                                  progress=False, perturbations_per_eval=16):
    """Captum `ShapleyValueSampling` on the same random orders: Captum draws each order with
    `torch.randperm` from torch's global random state, which is set here (and restored
    after) to the state of `generator`, as `shapley.sample_permutations` draws from it."""
    from captum.attr import ShapleyValueSampling

    from .shapley import _baseline, players

    inputs = check_model_and_inputs(model, inputs)
    groups, _ = players(inputs, groups)
    with unchanged(model), torch.random.fork_rng(devices=[]):
        if generator is not None:
            torch.set_rng_state(generator.get_state())
        return ShapleyValueSampling(model).attribute(
            inputs, baselines=_baseline(inputs, baseline), target=target, feature_mask=groups,
            n_samples=samples, perturbations_per_eval=perturbations_per_eval)


def _captum_linear_regression():
    """Captum's scikit-learn `LinearRegression` wrapper, fitted on float64 copies of the data
    (Captum hands it float32, and scikit-learn would then solve in float32)."""
    from captum._utils.models.linear_model import SkLearnLinearModel
    from torch.utils.data import DataLoader, TensorDataset

    class LinearRegression64(SkLearnLinearModel):
        def fit(self, train_data, **kwargs):
            x, y, w = (torch.cat(part).double() for part in zip(*train_data))
            return super().fit(DataLoader(TensorDataset(x, y, w), batch_size=len(x)), **kwargs)

    return LinearRegression64("linear_model.LinearRegression")


def captum_kernel_shap(model, inputs, target, baseline=0.0, samples=1000, groups=None,
                       generator=None, batch_size=None, progress=False,
                       perturbations_per_eval=64, inf_weight=None):
    """Captum `KernelShap` on the same coalitions: its perturbation generator replaced by one
    that yields the full and the empty coalition (as Captum's does) and then the coalitions
    `shapley.sample_coalitions` draws with `generator`, one draw per input in order. Captum's
    own kernel weights (1 per drawn coalition, `inf_weight` = 1e6 for the full and the empty
    one) and scikit-learn's `LinearRegression` (fitted in float64). inf_weight: a larger
    stand-in for Captum's "infinite" weight (None: Captum's 1e6)."""
    from captum.attr import KernelShap

    from .shapley import _baseline, _group, _targets, players, sample_coalitions

    inputs = check_model_and_inputs(model, inputs)
    groups, d = players(inputs, groups)
    base = _baseline(inputs, baseline)
    with torch.no_grad():
        targets = _targets(model, inputs, target)
    rows = []
    for n in range(inputs.shape[0]):
        z = sample_coalitions(samples - 2, d, generator).to(inputs.device)

        def perturb(original, z=z, **kwargs):
            yield torch.ones(1, d, dtype=torch.long, device=inputs.device)
            yield torch.zeros(1, d, dtype=torch.long, device=inputs.device)
            yield from z.long()[:, None]

        explainer = KernelShap(model)
        explainer.perturb_func = perturb
        explainer.interpretable_model = _captum_linear_regression()
        if inf_weight is not None:
            explainer.inf_weight = inf_weight
        with unchanged(model):
            rows.append(explainer.attribute(
                inputs[n:n + 1], baselines=base[n:n + 1], target=targets[n],
                feature_mask=_group(groups, n)[None], n_samples=samples,
                perturbations_per_eval=perturbations_per_eval))
    return torch.cat(rows)


def lucent_channel(model, objective, shape, steps=100, lr=0.05, seed=0):
    """Lucent's `render_vis` (torch-lucent, the PyTorch port of Lucid) on one channel, the same
    call as `activation_max.maximize(model, ("channel", layer, k), shape, steps, lr,
    parametrization="fourier")`: Lucent's Fourier parametrisation with decorrelated colours
    (`param.image(W, h=H, fft=True, decorrelate=True)`), its `objectives.channel(layer, k)`,
    Adam at `lr`, `steps` steps, no transforms and no preprocessing. Lucent draws its start
    from torch's global generator, seeded here with `seed` (the global state is restored
    afterwards); the hooks Lucent leaves on the model are removed.

    objective: ("channel", layer, k), layer a dotted module name ("layer3.0.conv1"; Lucent
    joins the names with "_"); shape: (3, H, W). Returns the image (1, 3, H, W) on the
    model's device.
    """
    from lucent.optvis import objectives, param, render

    kind, layer, channel = objective
    if kind != "channel":
        raise ValueError(f"lucent_channel compares channel objectives, got {objective!r}")
    _, height, width = shape
    with unchanged(model), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        images = render.render_vis(
            model, objectives.channel(layer.replace(".", "_"), channel),
            param_f=lambda: param.image(width, h=height, fft=True, decorrelate=True),
            optimizer=lambda params: torch.optim.Adam(params, lr=lr), transforms=[],
            thresholds=(steps,), preprocess=False, fixed_image_size=(height, width),
            progress=False, show_image=False)
    image = torch.from_numpy(images[-1]).permute(0, 3, 1, 2)
    return image.to(next(model.parameters()).device)
