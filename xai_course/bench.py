"""`xai-course bench CHAPTER`: our time, the reference's time, their ratio and max |difference|.

Speed targets live here, never in timed tests. Each case runs ours and the reference on the
same model and input in one process, one warm-up run each, then `repeat` timed runs each,
alternating run by run (ours, reference, ours, reference, ...) so that both meet the same
load on a shared machine; the table compares the two medians. A case may carry a target
ratio: same-algorithm methods (gradient, IG, SmoothGrad, Grad-CAM) run the same passes as
their reference, so parity is the limit and the target is <= 1.10 of the reference at its
best setting; where we batch smarter (occlusion, Score-CAM, LIME) the target is lower.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable

import torch

SAME_PASSES = 1.10  # the target ratio of a method that runs the same passes as its reference
SCORE_CAM = 0.7  # Score-CAM skips the passes of all-zero masks and batches them


@dataclasses.dataclass
class Case:
    """One comparison: `ours()` and `reference()` return attributions of the same call."""

    name: str
    ours: Callable[[], torch.Tensor]
    reference: Callable[[], torch.Tensor] | None  # None: no reference, our time only
    reference_name: str
    repeat: int | None = None  # timed runs a side (None: the run's `repeat`)
    examples: int = 1  # inputs per call: a row without reference shows the time per input
    target: float | None = None  # the ratio ours / reference to stay under, if any
    limit: float | None = None  # seconds to stay under, for a row without reference
    same_result: bool = True  # False: both start from their own random draw (no |diff|)


def timed(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    """One run of fn: (seconds, result), waiting for a GPU to finish."""
    start = time.perf_counter()
    result = fn()
    if result.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def median_time(fn: Callable[[], torch.Tensor], repeat: int) -> tuple[float, torch.Tensor]:
    """The median of `repeat` runs of fn (seconds), after one warm-up run (none when repeat is
    1: a case that slow is not timed twice), and its result."""
    result = timed(fn)[1] if repeat > 1 else None
    seconds = []
    for _ in range(repeat):
        took, result = timed(fn)
        seconds.append(took)
    return statistics.median(seconds), result


def race(case: Case, repeat: int) -> tuple[float, torch.Tensor, float, torch.Tensor]:
    """Medians of `repeat` timed runs of ours and of the reference, alternating run by run
    (A B A B ...) after one warm-up run each (none when repeat is 1)."""
    sides = ("ours", "reference")
    result = {side: timed(getattr(case, side))[1] for side in sides if repeat > 1}
    seconds = {side: [] for side in sides}
    for _ in range(repeat):
        for side in sides:
            took, result[side] = timed(getattr(case, side))
            seconds[side].append(took)
    return (statistics.median(seconds["ours"]), result["ours"],
            statistics.median(seconds["reference"]), result["reference"])


def run(cases: list[Case], repeat: int = 5, out=print) -> list[dict]:
    """Time every case and print a table; returns its rows."""
    rows = []
    out(f"medians of {repeat} runs a side (unless a case says otherwise), alternating")
    out(f"{'case':44s} {'ours (s)':>10s} {'reference (s)':>14s} {'ratio':>7s} "
        f"{'target':>8s} {'max |diff|':>11s}  reference")
    for case in cases:
        if case.reference is None:
            ours_s = median_time(case.ours, case.repeat or repeat)[0] / case.examples
            rows.append(dict(case=case.name, ours_s=ours_s, reference_s=None, ratio=None,
                             target=None, limit=case.limit, max_abs_diff=None,
                             reference=case.reference_name))
            verdict = "-" if case.limit is None else (
                f"{'<=' if ours_s <= case.limit else 'MISS>'}{case.limit:g} s")
            out(f"{case.name:44s} {ours_s:10.4f} {'-':>14s} {'-':>7s} {verdict:>8s} {'-':>11s}  "
                f"{case.reference_name}")
            continue
        ours_s, ours, ref_s, ref = race(case, case.repeat or repeat)
        diff = (ours.float() - ref.float()).abs().max().item() if case.same_result else None
        row = dict(case=case.name, ours_s=ours_s, reference_s=ref_s, ratio=ours_s / ref_s,
                   target=case.target, max_abs_diff=diff, reference=case.reference_name)
        rows.append(row)
        verdict = "-" if case.target is None else (
            f"{'<=' if row['ratio'] <= case.target else 'MISS>'}{case.target:.2f}")
        shown = "-" if diff is None else f"{diff:.2e}"
        out(f"{case.name:44s} {ours_s:10.4f} {ref_s:14.4f} {row['ratio']:7.2f} {verdict:>8s} "
            f"{shown:>11s}  {case.reference_name}")
    return rows


def compare(name: str, method, model, x, target, ours: dict | None = None,
            theirs: dict | None = None, note: str = "", target_ratio: float | None = None,
            prepared: bool = False) -> Case:
    """A case for a method that declares its `.reference` (see convention.reference).

    prepared: ours runs on `fast.for_many_passes(model)`, as in the explorers, the reference
    on the model as given (for the methods that run many forward passes)."""
    from .fast import for_many_passes

    ours, theirs = ours or {}, theirs or {}
    mine = for_many_passes(model, x[:1]) if prepared else model
    return Case(name, lambda: method(mine, x, target, **ours),
                lambda: method.reference(model, x, target, **theirs),
                method.reference_name + note, target=target_ratio)


def local_global_cases(device: torch.device, quick: bool = False) -> list[Case]:
    """Chapter 01's two real methods against Captum, on the embedded models and ResNet-18."""
    import torchvision

    from . import zoo
    from .gradients import gradient
    from .perturbation import occlusion

    cases = []
    for name, window, stride in [("digits", 4, 2), ("cluttered-digits", 8, 4)]:
        model = zoo.load_model(name, device)
        data = zoo.dataset(name, n=8)
        x, t = data.x.to(device), data.y.to(device)
        c = x.shape[1]
        cases.append(compare(f"gradient  {name} x8", gradient, model, x, t))
        cases.append(compare(
            f"occlusion {name} x8 w{window} s{stride}", occlusion, model, x, t, prepared=True,
            ours=dict(window=window, stride=stride),
            theirs=dict(window=(c, window, window), stride=(c, stride, stride), batch_size=32),
            note=" (perturbations_per_eval=32)"))
    if not quick:
        torch.manual_seed(0)
        resnet = torchvision.models.resnet18().eval().to(device)
        x = torch.rand(1, 3, 224, 224, device=device)
        cases.append(compare("gradient  resnet18 (random) 224", gradient, resnet, x, 0))
        cases.append(compare(
            "occlusion resnet18 (random) 224 w32 s16", occlusion, resnet, x, 0,
            ours=dict(window=32, stride=16),
            theirs=dict(window=(3, 32, 32), stride=(3, 16, 16), batch_size=32),
            note=" (perturbations_per_eval=32)"))
    return cases


def gradients_cases(device: torch.device, quick: bool = False, out=print) -> list[Case]:
    """Chapter 02 at 224x224 on ResNet-18 and ResNet-50 with random weights, against Captum.

    gradient, IG (50 steps) and SmoothGrad (25 samples): ours with its automatic batch size
    against Captum at its best batch size among None / 10 / 25 (`internal_batch_size`, or
    NoiseTunnel's `nt_samples_batch_size`), chosen by one timed run of each (printed).
    SmoothGrad runs from the same random state on both sides, so the noise is the same.
    The gradient, a fraction of a second, takes the median of 15 runs a side, not `repeat`.
    Target: ratio <= SAME_PASSES (the same passes as Captum).
    Then the peak resident memory of IG with 200 steps on ResNet-50, in a fresh process.
    quick: ResNet-18 only, and no memory measurement.
    """

    import torchvision

    from .gradients import gradient, integrated_gradients, smoothgrad

    def seeded() -> torch.Generator:
        return torch.Generator(device=device).manual_seed(0)

    def fastest(name: str, run_with: Callable[[int | None], torch.Tensor]) -> int | None:
        seconds = {b: timed(lambda b=b: run_with(b))[0] for b in (None, 10, 25)}
        best = min(seconds, key=seconds.get)
        out(f"  Captum {name}: " + ", ".join(f"batch {b}: {s:.2f} s" for b, s in
                                             seconds.items()) + f"  -> batch {best}")
        return best

    cases = []
    for arch in ["resnet18"] if quick else ["resnet18", "resnet50"]:
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)().eval().to(device)
        x = torch.rand(1, 3, 224, 224, device=device)
        label = f"{arch} (random) 224"
        cases.append(compare(f"gradient {label}", gradient, model, x, 0,
                             target_ratio=SAME_PASSES))
        cases[-1].repeat = 15  # a fraction of a second a run: more runs, a steadier median
        ig_batch = fastest(f"IG-50 {arch}", lambda b, m=model, x=x: integrated_gradients.reference(
            m, x, 0, steps=50, batch_size=b))
        cases.append(compare(f"IG-50 {label}", integrated_gradients, model, x, 0,
                             ours=dict(steps=50), theirs=dict(steps=50, batch_size=ig_batch),
                             note=f" (internal_batch_size={ig_batch})",
                             target_ratio=SAME_PASSES))
        sg_batch = fastest(f"SmoothGrad-25 {arch}", lambda b, m=model, x=x: smoothgrad.reference(
            m, x, 0, samples=25, batch_size=b, generator=seeded()))
        cases.append(Case(
            f"SmoothGrad-25 {label}",
            lambda m=model, x=x: smoothgrad(m, x, 0, samples=25, generator=seeded()),
            lambda m=model, x=x, b=sg_batch: smoothgrad.reference(
                m, x, 0, samples=25, batch_size=b, generator=seeded()),
            f"{smoothgrad.reference_name} (nt_samples_batch_size={sg_batch})",
            target=SAME_PASSES))
    if not quick:
        before, peak = peak_memory(
            "import torch, torchvision\n"
            "from xai_course.gradients import integrated_gradients\n"
            "torch.manual_seed(0)\n"
            "model = torchvision.models.resnet50().eval()\n"
            "x = torch.rand(1, 3, 224, 224)",
            "integrated_gradients(model, x, 0, steps=200)")
        out(f"  peak resident memory, IG-200 on ResNet-50 at 224x224 (CPU, fresh process): "
            f"{peak:.0f} MB (model and libraries loaded: {before:.0f} MB; target < 1536 MB)")
    return cases


def cam_cases(device: torch.device, quick: bool = False) -> list[Case]:
    """Chapter 03 against Captum `LayerGradCam` and pytorch-grad-cam (`pip install grad-cam`).

    Embedded models (all of `quick`), then ResNet-18 and ResNet-50 with random weights at
    224x224: Grad-CAM against Captum and `GradCAM`, Grad-CAM++ against `GradCAMPlusPlus`,
    Score-CAM against `ScoreCAM` (target: ratio <= SCORE_CAM; pytorch-grad-cam at its default
    batch size 16, and on ResNet-18 also at our 8), and the approximate `score_cam_topk`
    against the exact `score_cam` (its max |diff| is their agreement). The pytorch-grad-cam
    rows compare min-max normalised maps, which is what it returns. Our Score-CAM runs on the
    model prepared as the explorers prepare it (`fast.for_many_passes`), the library on the
    model as given. Score-CAM on ResNet-50 is 2048 forward passes a side: minutes on a CPU.
    """
    import functools
    import types

    import torchvision

    from . import zoo
    from .cam import grad_cam, grad_cam_pp, score_cam, score_cam_topk
    from .convention import unchanged
    from .fast import for_many_passes

    def fast(model, x):
        return for_many_passes(model, x[:1])

    def library(name, model, x, target, layer, batch_size=None):
        """pytorch-grad-cam's `name` on the same call; it gets an input that requires grad
        (its hooks need it on frozen models), runs inside `unchanged` (it calls
        model.eval()), and its Score-CAM progress bar is silenced."""
        try:
            import pytorch_grad_cam
            import pytorch_grad_cam.score_cam as score_module
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        except ImportError as error:
            raise RuntimeError("the cam bench needs pytorch-grad-cam: pip install grad-cam "
                               "(or pip install -e '.[dev]')") from error

        def run():
            quiet = types.SimpleNamespace(tqdm=functools.partial(score_module.tqdm.tqdm,
                                                                 disable=True))
            loud, score_module.tqdm = score_module.tqdm, quiet
            with unchanged(model):
                method = getattr(pytorch_grad_cam, name)(model, [model.get_submodule(layer)])
                if batch_size is not None:
                    method.batch_size = batch_size
                try:
                    maps = method(x.detach().clone().requires_grad_(True),
                                  [ClassifierOutputTarget(target)] * len(x))
                finally:
                    method.activations_and_grads.release()
                    score_module.tqdm = loud
            return torch.from_numpy(maps).to(x.device)

        return run

    def frozen(model):
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval().to(device)

    minmax = dict(normalize="minmax")
    cases = []
    for name, layer in [("cluttered-digits", "features"), ("digits", "features.relu3")]:
        try:
            model, label = zoo.load_model(name, device), name
        except zoo.WeightsNotCached:
            torch.manual_seed(0)
            model, label = frozen(zoo.model_info(name).build()), f"{name} (random)"
        x = zoo.dataset(zoo.model_info(name).dataset, n=8).x.to(device)
        cases.append(compare(f"grad_cam     {label} x8", grad_cam, model, x, 3,
                             ours=dict(layer=layer), theirs=dict(layer=layer),
                             target_ratio=SAME_PASSES))
        mine = fast(model, x)  # ours runs on the model prepared as the explorers prepare it
        cases.append(Case(f"score_cam    {label} x1",
                          lambda m=mine, x=x, l=layer: score_cam(m, x[:1], 3, l, **minmax),
                          library("ScoreCAM", model, x[:1], 3, layer),
                          "pytorch-grad-cam ScoreCAM", target=SCORE_CAM))
    if quick:
        return cases
    for arch in ("resnet18", "resnet50"):
        torch.manual_seed(0)
        model = frozen(getattr(torchvision.models, arch)())
        x = torch.rand(1, 3, 224, 224, device=device)
        label = f"{arch} (random) 224"
        if arch == "resnet18":
            cases += [
                compare(f"grad_cam     {label}", grad_cam, model, x, 0,
                        ours=dict(layer="layer4"), theirs=dict(layer="layer4"),
                        target_ratio=SAME_PASSES),
                Case(f"grad_cam     {label}",
                     lambda m=model, x=x: grad_cam(m, x, 0, "layer4", **minmax),
                     library("GradCAM", model, x, 0, "layer4"), "pytorch-grad-cam GradCAM",
                     target=SAME_PASSES),
                Case(f"grad_cam_pp  {label}",
                     lambda m=model, x=x: grad_cam_pp(m, x, 0, "layer4", **minmax),
                     library("GradCAMPlusPlus", model, x, 0, "layer4"),
                     "pytorch-grad-cam GradCAMPlusPlus", target=SAME_PASSES),
            ]
        mine = fast(model, x)
        cases.append(Case(f"score_cam    {label}",
                          lambda m=mine, x=x: score_cam(m, x, 0, "layer4", **minmax),
                          library("ScoreCAM", model, x, 0, "layer4"),
                          "pytorch-grad-cam ScoreCAM (batch_size 16, its default)",
                          repeat=1 if arch == "resnet50" else None,  # minutes per run
                          target=SCORE_CAM))
        if arch == "resnet18":
            cases.append(Case(f"score_cam    {label}",
                              lambda m=mine, x=x: score_cam(m, x, 0, "layer4", **minmax),
                              library("ScoreCAM", model, x, 0, "layer4", batch_size=8),
                              "pytorch-grad-cam ScoreCAM (batch_size 8, as ours)",
                              target=SCORE_CAM))
            for k in (64, 128):
                cases.append(Case(
                    f"score_cam_topk k={k} {label}",
                    lambda m=model, x=x, k=k: score_cam_topk(m, x, 0, "layer4", k=k, **minmax),
                    lambda m=model, x=x: score_cam(m, x, 0, "layer4", **minmax),
                    "our exact score_cam (APPROXIMATION: max |diff| = agreement)"))
    return cases


def surrogates_cases(device: torch.device, quick: bool = False, out=print) -> list[Case]:
    """Chapter 05: LIME with 1000 samples against Captum `Lime` on the same samples, kernel
    weights, baseline and ridge surrogate, on `cluttered-digits` (SLIC, 50 superpixels) and
    on ResNet-50 with random weights at 224x224 (a photo, SLIC, 50 superpixels). Captum runs
    at its best `perturbations_per_eval` among 16 / 64 / 256, chosen by one timed run of each
    (on 200 samples for ResNet-50) and printed; ours runs at its defaults (batches from
    `convention.rows_per_pass`). Model evaluation dominates: ResNet-50 takes minutes a side
    on a CPU, so it is timed once. Target: ratio <= 1.0. quick: cluttered-digits only.
    """
    import torchvision

    from . import zoo
    from .fast import for_many_passes
    from .surrogates import lime, superpixels

    def seeded() -> torch.Generator:
        return torch.Generator(device=device).manual_seed(0)

    def fastest(label, model, x, segments, samples):
        seconds = {ppe: timed(lambda p=ppe: lime.reference(
            model, x, 0, segments=segments, samples=samples, generator=seeded(),
            perturbations_per_eval=p))[0] for ppe in (16, 64, 256)}
        best = min(seconds, key=seconds.get)
        out(f"  Captum Lime {label} ({samples} samples): " + ", ".join(
            f"perturbations_per_eval {p}: {s:.2f} s" for p, s in seconds.items())
            + f"  -> {best}")
        return best

    problems = []
    try:
        model, label = zoo.load_model("cluttered-digits", device), "cluttered-digits"
    except zoo.WeightsNotCached:
        torch.manual_seed(0)
        model = zoo.model_info("cluttered-digits").build().eval().to(device)
        label = "cluttered-digits (random)"
    x = zoo.dataset("cluttered-digits", n=1).x.to(device)
    problems.append((label, model, x, 1000))
    if not quick:
        torch.manual_seed(0)
        resnet = torchvision.models.resnet50().eval().to(device)
        photo = zoo.dataset("photos", n=1).x.to(device)
        problems.append(("resnet50 (random) 224", resnet, photo, 200))
    cases = []
    for label, model, x, trial in problems:
        segments = superpixels(x[0], "slic", 50)
        ppe = fastest(label, model, x, segments, trial)
        mine = for_many_passes(model, x)  # as the explorers prepare it
        cases.append(Case(
            f"lime-1000 {label}",
            lambda m=mine, x=x, s=segments: lime(m, x, 0, segments=s, samples=1000,
                                                 generator=seeded()),
            lambda m=model, x=x, s=segments, p=ppe: lime.reference(
                m, x, 0, segments=s, samples=1000, generator=seeded(),
                perturbations_per_eval=p),
            f"{lime.reference_name} (perturbations_per_eval={ppe})",
            repeat=1 if "resnet" in label else None, target=1.0))
    return cases


def perturbation_cases(device: torch.device, quick: bool = False, out=print) -> list[Case]:
    """Chapter 04. Occlusion (window 32, stride 16) on ResNet-18 and ResNet-50 with random
    weights at 224x224 against Captum `Occlusion` at its best perturbations_per_eval among
    8 / 16 / 32 / 64, chosen by one timed run of each (printed); target: ratio <= 1.0; ours
    on the model prepared as the explorers prepare it (`fast.for_many_passes`).
    Meaningful and extremal perturbation have no reference here (TorchRay, the tests'
    reference for extremal perturbation, takes one image at a time and has no meaningful
    perturbation): our time per image on the embedded models, for one image alone and for
    16 optimised at once (the batch's time / 16), and on ResNet-50 at 224x224 with 20 steps
    (the defaults are 150 and 300 steps: multiply). quick: the embedded models only.
    """
    import torchvision

    from . import zoo
    from .perturbation import extremal_perturbation, meaningful_perturbation, occlusion

    def fastest(arch: str, model, x) -> int:
        seconds = {b: timed(lambda b=b: occlusion.reference(
            model, x, 0, window=(3, 32, 32), stride=(3, 16, 16), batch_size=b))[0]
            for b in (8, 16, 32, 64)}
        best = min(seconds, key=seconds.get)
        out(f"  Captum Occlusion {arch}: " + ", ".join(
            f"perturbations_per_eval {b}: {s:.2f} s" for b, s in seconds.items())
            + f"  -> {best}")
        return best

    def per_image(method, model, x, target, steps: int) -> Case:
        name = method.__name__.split("_")[0]
        return Case(f"{name} {label} {steps} steps x{len(x)}",
                    lambda: method(model, x, target, steps=steps), None,
                    f"none: time per image, {len(x)} optimised at once", repeat=1,
                    examples=len(x))

    cases = []
    for label in ("cluttered-digits", "digits"):
        model = zoo.load_model(label, device)
        data = zoo.dataset(label, n=16)
        x, t = data.x.to(device), data.y.to(device)
        for method, steps in ((meaningful_perturbation, 150), (extremal_perturbation, 300)):
            cases += [per_image(method, model, x[:1], t[:1], steps),
                      per_image(method, model, x, t, steps)]
    if quick:
        return cases
    for arch in ("resnet18", "resnet50"):
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)().eval().to(device)
        x = torch.rand(1, 3, 224, 224, device=device)
        label = f"{arch} (random) 224"
        ppe = fastest(arch, model, x)
        case = compare(f"occlusion {label} w32 s16", occlusion, model, x, 0, prepared=True,
                       ours=dict(window=32, stride=16),
                       theirs=dict(window=(3, 32, 32), stride=(3, 16, 16), batch_size=ppe),
                       note=f" (perturbations_per_eval={ppe}, its best)", target_ratio=1.0)
        case.repeat = 1 if arch == "resnet50" else None  # Captum: many seconds a run
        cases.append(case)
    cases += [per_image(meaningful_perturbation, model, x, 0, 20),
              per_image(extremal_perturbation, model, x, 0, 20)]
    return cases


def fast_cases(device: torch.device, quick: bool = False) -> list[Case]:
    """`fast.for_many_passes` (ours) against the plain model (reference), on ResNet-18 and
    ResNet-50 with random weights and random BatchNorm statistics at 224x224: forward passes
    of 8 images (occlusion's, Score-CAM's and LIME's unit), a gradient of 5 images (IG's and
    SmoothGrad's unit), and occlusion. The course keeps the trick only while it saves at
    least 15% on both architectures: target ratio <= 0.85. quick: ResNet-18 only."""
    import torchvision

    from .fast import for_many_passes
    from .gradients import gradient
    from .perturbation import occlusion

    cases = []
    for arch in ["resnet18"] if quick else ["resnet18", "resnet50"]:
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)()
        with torch.no_grad():  # statistics as after training, so that folding changes numbers
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 2.0)
        model = model.eval().to(device)
        x8 = torch.rand(8, 3, 224, 224, device=device)
        prepared = for_many_passes(model, x8[:1])
        if prepared is model:
            raise RuntimeError(f"for_many_passes returned {arch} itself: nothing to compare")

        def forward(m, x=x8):
            with torch.inference_mode():
                return m(x)

        label = f"{arch} (random) 224"
        note = "the plain model"
        cases += [
            Case(f"forward x8 {label}", lambda p=prepared: forward(p),
                 lambda m=model: forward(m), note, target=0.85),
            Case(f"gradient x5 {label}", lambda p=prepared, x=x8[:5]: gradient(p, x, 0),
                 lambda m=model, x=x8[:5]: gradient(m, x, 0), note, target=0.85),
            Case(f"occlusion w32 s16 {label}",
                 lambda p=prepared, x=x8[:1]: occlusion(p, x, 0, window=32, stride=16),
                 lambda m=model, x=x8[:1]: occlusion(m, x, 0, window=32, stride=16), note,
                 target=0.85, repeat=3 if arch == "resnet50" else None),
        ]
    return cases


def activation_max_cases(device: torch.device, quick: bool = False) -> list[Case]:
    """Chapter 06. 200 steps for all 10 digit classes at once on the `digits` model: in pixel
    space (`maximize`) and through the `digits-gan` generator (`maximize_latent`), our time
    only (target: under 5 s each). Then Fourier on a random-weight ResNet-18 channel
    (layer2.1.conv2 #11) at 224x224 for 100 steps against Lucent's `render_vis` at the same
    settings (`references.lucent_channel`; target: ratio <= 1.1). Both start from their own
    random image, so no |difference| is printed. quick: the digits rows only.
    """
    import torchvision

    from . import zoo
    from .activation_max import maximize, maximize_latent

    def seeded() -> torch.Generator:
        return torch.Generator(device=device).manual_seed(0)

    digits = zoo.load_model("digits", device)
    generator_net = zoo.load_model("digits-gan", device)
    classes = [("class", c) for c in range(10)]
    cases = [
        Case("maximize pixel 200 steps, 10 classes digits",
             lambda: maximize(digits, classes, (1, 32, 32), steps=200, init="noise",
                              generator=seeded()),
             None, "(no reference)", limit=5.0),
        Case("maximize_latent 200 steps, 10 classes digits-gan",
             lambda: maximize_latent(digits, generator_net, classes, steps=200,
                                     generator=seeded()),
             None, "(no reference)", limit=5.0),
    ]
    if not quick:
        torch.manual_seed(0)
        resnet = torchvision.models.resnet18().eval().to(device)
        objective = ("channel", "layer2.1.conv2", 11)
        cases.append(Case(
            "maximize fourier 100 steps resnet18 (random) 224",
            lambda: maximize(resnet, objective, (3, 224, 224), steps=100,
                             parametrization="fourier", generator=seeded()),
            lambda: maximize.reference(resnet, objective, (3, 224, 224), steps=100),
            maximize.reference_name, target=SAME_PASSES, same_result=False))
    return cases


def shapley_cases(device: torch.device, quick: bool = False) -> list[Case]:
    """Chapter 08. Exact Shapley values of 12 features (4,096 coalitions) on the
    `breast-cancer` model, the other 18 held at the input's values: our time (Captum's
    `ShapleyValues` would walk all 12! orders). KernelSHAP with 1000 samples on
    `breast-cancer` and on `cluttered-digits` superpixels (SLIC, 50) against Captum
    `KernelShap` on the same coalitions, Captum at its best `perturbations_per_eval` among
    16 / 64 / 256 (one timed run each, printed), ours on the model as the explorers prepare
    it (`fast.for_many_passes`); target: ratio <= 1.0. Then the shallow
    ShapNet `breast-cancer-shapnet` explaining itself in one pass against KernelSHAP with
    1000 samples on the same network: the ratio of times, and as max |diff| KernelSHAP's
    error against the ShapNet's exact values. quick: breast cancer only.
    """
    from . import zoo
    from .fast import for_many_passes
    from .references import captum_kernel_shap
    from .shapley import exact_shapley, kernel_shap
    from .surrogates import superpixels

    def seeded() -> torch.Generator:
        return torch.Generator(device=device).manual_seed(0)

    tabular = zoo.load_model("breast-cancer", device)
    row = zoo.dataset("breast-cancer", split="test", n=1).x.to(device)
    rest = row[:, 12:]

    def first_twelve(z):  # the model as a function of the first 12 features
        return tabular(torch.cat([z, rest.expand(len(z), -1)], dim=1))[:, 1]

    cases = [Case("exact_shapley 12 features breast-cancer",
                  lambda: exact_shapley(first_twelve, row[:, :12]), None, "(no reference)")]
    problems = [("breast-cancer", tabular, row, None)]
    if not quick:
        canvases = zoo.load_model("cluttered-digits", device)
        x = zoo.dataset("cluttered-digits", n=1).x.to(device)
        problems.append(("cluttered-digits SLIC-50", canvases, x,
                         superpixels(x[0], "slic", 50).to(device)))
    for label, model, x, groups in problems:
        seconds = {p: timed(lambda p=p, m=model, x=x, g=groups: captum_kernel_shap(
            m, x, 1, samples=1000, groups=g, generator=seeded(),
            perturbations_per_eval=p))[0] for p in (16, 64, 256)}
        best = min(seconds, key=seconds.get)
        print(f"  Captum KernelShap {label}: " + ", ".join(
            f"perturbations_per_eval {p}: {t:.2f} s" for p, t in seconds.items())
            + f"  -> {best}")
        mine = for_many_passes(model, x)  # as the explorers prepare it
        cases.append(Case(
            f"kernel_shap-1000 {label}",
            lambda m=mine, x=x, g=groups: kernel_shap(m, x, 1, samples=1000, groups=g,
                                                      generator=seeded()),
            lambda m=model, x=x, g=groups, p=best: captum_kernel_shap(
                m, x, 1, samples=1000, groups=g, generator=seeded(),
                perturbations_per_eval=p),
            f"Captum KernelShap (perturbations_per_eval={best})", target=1.0))
    shapnet = zoo.load_model("breast-cancer-shapnet", device)
    cases.append(Case(
        "ShapNet one pass vs kernel_shap-1000",
        lambda: shapnet.explain(row)[0][..., 1],
        lambda: kernel_shap(shapnet, row, 1, samples=1000, generator=seeded()),
        "our kernel_shap, 1000 samples (|diff|: its error)"))
    return cases


def peak_memory(setup: str, call: str) -> tuple[float, float]:
    """(MB after `setup`, MB at the end of `call`): the peak resident memory of a fresh Python
    process that runs the two code strings one after the other. Linux's ru_maxrss survives
    fork + exec (a child starts at its parent's peak), so the process reads its own
    high-water mark, VmHWM, where there is one."""
    import subprocess
    import sys

    code = (
        "import resource, sys\n"
        "def peak_kb():\n"
        "    try:\n"
        "        with open('/proc/self/status') as f:\n"
        "            return next(int(l.split()[1]) for l in f if l.startswith('VmHWM:'))\n"
        "    except (OSError, StopIteration):\n"
        "        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "        return kb // 1024 if sys.platform == 'darwin' else kb\n"
        f"{setup}\n"
        "before = peak_kb()\n"
        f"{call}\n"
        "print(before, peak_kb())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    before, peak = (int(kb) / 1024 for kb in done.stdout.split()[-2:])
    return before, peak


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Pearson correlation of two maps' values."""
    return torch.corrcoef(torch.stack([a.flatten().double().cpu(),
                                       b.flatten().double().cpu()]))[0, 1].item()


def authors_iba(model, layer: str, data: torch.Tensor, x: torch.Tensor, target: int,
                steps: int = 10, samples: int = 10) -> Callable[[], torch.Tensor] | None:
    """The authors' per-sample bottleneck (BioroboticsLab/IBA, `IBA.pytorch.IBA`) on the same
    call as `bottleneck.iba(model, x, target, layer, steps=steps, samples=samples)`: its
    estimator run over `data` (ours: `feature_stats` on the same data), its defaults
    (beta 10, sigma 1, lr 1, alpha 5), the cross-entropy of `target` as the loss. Its hook
    is on the layer only while it runs. Returns a function computing its map (bits per
    pixel, as a tensor), or None when the package cannot be imported (it is not on PyPI:
    pip install git+https://github.com/BioroboticsLab/IBA)."""
    import warnings

    try:
        from IBA.pytorch import IBA
    except ImportError:
        return None
    from .convention import unchanged

    module = model.get_submodule(layer)
    bottleneck = IBA(None, optimization_steps=steps, batch_size=samples)

    def attached():  # what IBA(layer) registers, for the time of one call
        return module.register_forward_hook(lambda mod, args, output: bottleneck(output))

    handle = attached()
    try:
        with unchanged(model):
            batches = [(data[i:i + 100],) for i in range(0, len(data), 100)]
            bottleneck.estimate(model, batches, n_samples=len(data), progbar=False)
    finally:
        handle.remove()

    def loss(batch):
        return torch.nn.functional.cross_entropy(
            model(batch), torch.full((len(batch),), target, device=batch.device))

    def run() -> torch.Tensor:
        handle = attached()
        try:
            with unchanged(model), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "only fitted on ... samples"
                saliency = bottleneck.analyze(x, loss)
        finally:
            handle.remove()
        return torch.from_numpy(saliency)

    return run


def bottleneck_cases(device: torch.device, quick: bool = False, out=print) -> list[Case]:
    """Chapter 07. IBA with its defaults (10 steps of 10 noisy copies) on one image: on
    `cluttered-digits` at features.relu3 (statistics of 1,000 training canvases) and on
    ResNet-50 with random weights at 224x224 at layer2, the authors' place (statistics of
    16 random images), against the authors' IBA (`authors_iba`) at the same settings and on
    the same statistics' data, when it can be imported (else "reference unavailable");
    target: ratio <= SAME_PASSES. Each draws its own noise, so no |difference|. InputIBA
    per image on `cluttered-digits` with its defaults, the stages' seconds printed (target:
    under 60 s), and the readout bottleneck's one pass against the per-sample IBA it
    replaces. Then the peak resident memory of each call, each in a fresh process (target:
    under 1536 MB). quick: cluttered-digits only, no memory measurement.
    """
    import torchvision

    from . import zoo
    from .bottleneck import feature_stats, iba, input_iba, readout_bottleneck

    def seeded() -> torch.Generator:
        return torch.Generator(device=device).manual_seed(0)

    digits = zoo.load_model("cluttered-digits", device)
    canvas = zoo.dataset("cluttered-digits", n=1)
    x, y = canvas.x.to(device), int(canvas.y[0])
    train = zoo.dataset("cluttered-digits", split="train", n=1000).x.to(device)
    problems = [("cluttered-digits", digits, "features.relu3", train, x, y)]
    if not quick:
        torch.manual_seed(0)
        resnet = torchvision.models.resnet50().eval().to(device)
        for p in resnet.parameters():
            p.requires_grad_(False)
        images = torch.rand(17, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        problems.append(("resnet50 (random) 224", resnet, "layer2", images[1:].to(device),
                         images[:1].to(device), 0))
    cases = []
    for label, model, layer, data, x1, t in problems:
        stats = feature_stats(model, layer, data)
        theirs = authors_iba(model, layer, data, x1, t)
        name = f"iba 10 steps x 10 samples {label} {layer}"

        def ours(m=model, x1=x1, t=t, layer=layer, s=stats):
            return iba(m, x1, t, layer, stats=s, generator=seeded())

        slow = "resnet" in label  # a minute a run on a CPU
        if theirs is None:
            cases.append(Case(name, ours, None, "authors' IBA: reference unavailable (pip "
                              "install git+https://github.com/BioroboticsLab/IBA)",
                              repeat=1 if slow else None))
        else:
            cases.append(Case(name, ours, theirs, "authors' IBA (BioroboticsLab/IBA)",
                              repeat=1 if slow else None, target=SAME_PASSES,
                              same_result=False))
            if not slow:
                torch.manual_seed(0)  # their noise: torch's global generator, seed 0 as ours
                mine, authors = ours(), theirs()
                other_seed = iba(model, x1, t, layer, stats=stats,
                                 generator=torch.Generator(device=device).manual_seed(1))
                out(f"  {label}: Pearson correlation of the maps, ours against the authors' "
                    f"(seed 0): {pearson(mine, authors):.4f}; ours, seed 0 against seed 1: "
                    f"{pearson(mine, other_seed):.4f}")
    digit_stats = feature_stats(digits, "features.relu3", train)

    def staged() -> torch.Tensor:
        result = input_iba(digits, x, y, "features.relu3", stats=digit_stats,
                           generator=seeded(), stages=True)
        out("  InputIBA stages on one canvas: " + ", ".join(
            f"{stage} {seconds:.1f} s" for stage, seconds in result.seconds.items()))
        return result.input_map

    cases.append(Case("input_iba cluttered-digits features.relu3", staged, None,
                      "(no reference; the defaults: 20 GAN epochs, 60 steps)", repeat=1,
                      limit=60.0))
    try:
        readout = zoo.load_model("cluttered-digits-readout", device)
    except zoo.WeightsNotCached:
        readout = None
    if readout is not None:
        cases.append(Case(
            "readout_bottleneck one pass cluttered-digits",
            lambda: readout_bottleneck(digits, x, y, readout),
            lambda: iba(digits, x, y, "features.relu3", stats=readout.stats(),
                        generator=seeded()),
            "our iba, 10 x 10 (the optimisation it replaces)", same_result=False))
    if quick:
        return cases
    setup = {
        "cluttered-digits": (
            "import torch\nfrom xai_course import zoo\n"
            "from xai_course.bottleneck import feature_stats, iba, input_iba, "
            "readout_bottleneck\n"
            "model = zoo.load_model('cluttered-digits', 'cpu')\n"
            "data = zoo.dataset('cluttered-digits', n=1)\nx, y = data.x, int(data.y[0])\n"
            "stats = feature_stats(model, 'features.relu3', "
            "zoo.dataset('cluttered-digits', split='train', n=1000).x)\n"),
        "resnet50": (
            "import torch, torchvision\nfrom xai_course.bottleneck import feature_stats, iba\n"
            "torch.manual_seed(0)\nmodel = torchvision.models.resnet50().eval()\n"
            "images = torch.rand(17, 3, 224, 224, generator=torch.Generator().manual_seed(0))\n"
            "stats = feature_stats(model, 'layer2', images[1:])\n"),
    }
    calls = [
        ("iba cluttered-digits", "cluttered-digits",
         "iba(model, x, y, 'features.relu3', stats=stats)"),
        ("input_iba cluttered-digits", "cluttered-digits",
         "input_iba(model, x, y, 'features.relu3', stats=stats)"),
        ("readout_bottleneck cluttered-digits", "cluttered-digits",
         "readout_bottleneck(model, x, y, zoo.load_model('cluttered-digits-readout', 'cpu'))"),
        ("iba resnet50 (random) 224", "resnet50",
         "iba(model, images[:1], 0, 'layer2', stats=stats)"),
    ]
    for label, where, call in calls:
        before, peak = peak_memory(setup[where], call)
        out(f"  peak resident memory, {label} (CPU, fresh process): {peak:.0f} MB (model, "
            f"data and statistics loaded: {before:.0f} MB; target < 1536 MB)")
    return cases


def evaluation_cases(device: torch.device, quick: bool = False, out=print) -> list[Case]:
    """Chapter 09. The toy ROAR sweep (target: under 10 s); the deletion curve of Grad-CAM on
    the digits model against Quantus' `PixelFlipping` (the same curve; ours draws insertion too, see
    tests/test_evaluation.py) and ROAD's noisy linear imputation against pytorch-grad-cam's,
    when they are installed; one ROAR point on `cluttered-digits` at the shipped size
    (ranking the 4,500 canvases by one estimator, then retraining; target: under 60 s),
    for the cheapest and a 15-sample estimator. Then the shipped sweeps' time, serial and
    with a 2-worker process pool, from 4 jobs timed both ways. quick: no ROAR.
    """
    import concurrent.futures
    import functools

    import numpy as np

    from . import cam, evaluation, zoo

    cases = [Case("toy_roar (16-d, 5 seeds, 10,000 + 10,000)", lambda: torch.tensor(
        evaluation.toy_roar()["accuracy"].to_numpy()), None, "(no reference)", repeat=3,
        limit=10.0)]
    digits = zoo.load_model("digits", device)
    data = zoo.dataset("digits", n=16)
    x, y = data.x.to(device), data.y.to(device)
    attr = cam.grad_cam(digits, x, y)
    try:
        import quantus
    except ImportError:
        quantus = None
    if quantus is not None and device.type == "cpu":
        flipping = quantus.PixelFlipping(perturb_baseline="black", features_in_step=16,
                                         normalise=False, abs=False, disable_warnings=True)
        cases.append(Case(
            "deletion + insertion curves digits 16 x 64 steps",
            lambda: evaluation.deletion_insertion(digits, x, y, attr, steps=64)[0].scores[:, 1:],
            lambda: torch.tensor(np.array(flipping(
                model=digits, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=attr[:, None].numpy(),
                device="cpu", softmax=True, channel_first=True))),
            "quantus PixelFlipping (black): the deletion curve only, half the passes",
            same_result=False))
    try:
        from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    except ImportError:
        NoisyLinearImputer = None
    if NoisyLinearImputer is not None:
        image = zoo.dataset("cluttered-digits", n=1).x[0]
        missing = torch.rand(64, 64, generator=torch.Generator().manual_seed(0)) < 0.5
        cases.append(Case(
            "ROAD noisy linear imputation 3 x 64 x 64, half missing",
            lambda: evaluation.noisy_linear_imputation(image, missing, noise=0.0),
            lambda: NoisyLinearImputer(noise=0.0)(image, (~missing).float()),
            "pytorch-grad-cam NoisyLinearImputer"))
    if quick:
        return cases
    train, test = data = evaluation.sweep_data()
    model = evaluation.train_canvas_model(train, 0)
    estimators = evaluation.course_estimators()

    def point(name: str) -> torch.Tensor:
        ranks = evaluation.rank_features({name: estimators[name]}, data, model, controls=(),
                                         progress=False)
        table = evaluation.roar({name: estimators[name]}, data, evaluation.train_canvas_model,
                                fractions=(0.5,), seeds=(0,), controls=(), ranks=ranks,
                                progress=False)
        out(f"  one ROAR point, {name} at 50% removed, seed 0: test accuracy "
            f"{table['accuracy'].iloc[0]:.3f}")
        return torch.tensor(table["accuracy"].to_numpy())

    for name in ("GRAD", "SG-SQ"):
        cases.append(Case(f"one ROAR point cluttered-digits {name}", functools.partial(
            point, name), None, "(no reference; 4,000 + 500 canvases, retraining included)",
            repeat=1, limit=60.0))
    ranks = evaluation.rank_features({}, data, None, progress=False)
    jobs = dict(estimators={}, dataset=data, train_fn=evaluation.train_canvas_model,
                fractions=(0.5,), seeds=(0, 1), controls=("random", "oracle"), ranks=ranks,
                progress=False)
    start = time.perf_counter()
    serial = evaluation.roar(**jobs)
    serial_s = time.perf_counter() - start
    start = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        pooled = evaluation.roar(executor=pool, **jobs)
    pooled_s = time.perf_counter() - start
    shipped = {name: len(evaluation.shipped_table(f"{name}-cluttered-digits"))
               for name in evaluation.SWEEPS}
    retrained = shipped["roar"] + shipped["kar"]
    out(f"  4 ROAR jobs: serial {serial_s:.0f} s, 2-worker pool {pooled_s:.0f} s (speed-up "
        f"{serial_s / pooled_s:.2f}); the same table: {pooled.equals(serial)}")
    out(f"  the shipped sweeps retrain {retrained} times ({shipped}): about "
        f"{retrained * serial_s / 4 / 60:.0f} min serial, {retrained * pooled_s / 4 / 60:.0f} min "
        f"with 2 workers, after the explaining (every estimator on 4,500 canvases)")
    return cases


CHAPTERS: dict[str, Callable[..., list[Case]]] = {
    "local_global": local_global_cases,
    "gradients": gradients_cases,
    "cam": cam_cases,
    "surrogates": surrogates_cases,
    "perturbation": perturbation_cases,
    "activation_max": activation_max_cases,
    "bottleneck": bottleneck_cases,
    "shapley": shapley_cases,
    "evaluation": evaluation_cases,
    "fast": fast_cases,
}


# --------------------------------------------------------------------------- waiting times
FIRST_PICTURE = 0.5  # seconds: an explorer's first (coarse) picture after a change
RUN_ALL = 60.0  # seconds: a chapter notebook run top to bottom at full size


def explorers_built_by_the_notebooks() -> list[tuple[str, Callable]]:
    """(label, build) for the explorers of chapters 00-09, each built with the arguments its
    notebook gives it at full size (the notebooks' `FAST` switch off)."""
    from . import gradients, perturbation
    from .widgets import activation_max as w_activation_max
    from .widgets import bottleneck as w_bottleneck
    from .widgets import cam as w_cam
    from .widgets import evaluation as w_evaluation
    from .widgets import gradients as w_gradients
    from .widgets import local_global as w_local
    from .widgets import perturbation as w_perturbation
    from .widgets import shapley as w_shapley
    from .widgets import surrogates as w_surrogates
    from .widgets import welcome as w_welcome
    from .widgets.base import Explorer

    images = ["cluttered-digits", "digits", "resnet50-imagenet"]
    digits = ["cluttered-digits", "digits", "shortcut-digits"]
    return [
        ("00 ZooTour", lambda **k: w_welcome.ZooTour(
            models=["digits", "cluttered-digits", "shortcut-digits", "reviews"], **k)),
        ("00 gradient", lambda **k: Explorer(
            gradients.gradient, models=["digits", "cluttered-digits"], check=True, **k)),
        ("01 PatchExperiment", lambda **k: w_local.PatchExperiment(**k)),
        ("01 gradient / occlusion", lambda **k: Explorer(
            {"gradient": gradients.gradient, "occlusion": perturbation.occlusion},
            models=["cluttered-digits", "digits"], **k)),
        ("01 PreferredInput", lambda **k: w_local.PreferredInput(**k)),
        ("01 ShortcutDemo", lambda **k: w_local.ShortcutDemo(n_samples=64, **k)),
        ("02 NoiseExplorer", lambda **k: w_gradients.NoiseExplorer(
            models=images, samples=25, **k)),
        ("02 PathExplorer", lambda **k: w_gradients.PathExplorer(
            models=images, steps=(2, 4, 8, 16, 32, 64), grid=32, **k)),
        ("02 BaselineExplorer", lambda **k: w_gradients.BaselineExplorer(
            models=images, steps=32, **k)),
        ("02 MethodGrid", lambda **k: w_gradients.MethodGrid(
            models=[*images, "vgg16-imagenet", "reviews"], samples=16, steps=32, **k)),
        ("02 LinearisationExplorer", lambda **k: w_gradients.LinearisationExplorer(
            models=images, **k)),
        ("02 TokenExplorer", lambda **k: w_gradients.TokenExplorer(n_samples=64, **k)),
        ("03 CamExplorer", lambda **k: w_cam.CamExplorer(n_samples=64, **k)),
        ("03 CamLayers", lambda **k: w_cam.CamLayers(n_samples=64, **k)),
        ("04 PerturbationExplorer", lambda **k: w_perturbation.PerturbationExplorer(
            models=digits, **k)),
        ("05 LimeExplorer", lambda **k: w_surrogates.LimeExplorer(
            models=digits, samples=500, **k)),
        ("05 TabularLime", lambda **k: w_surrogates.TabularLime(samples=1000, **k)),
        ("06 LatentWalk", lambda **k: w_activation_max.LatentWalk(steps=100, **k)),
        ("06 FourPriors", lambda **k: w_activation_max.FourPriors(steps=100, **k)),
        ("06 GeneratorSamples", lambda **k: w_activation_max.GeneratorSamples(counted=500, **k)),
        ("07 IBAPlayback", lambda **k: w_bottleneck.IBAPlayback(**k)),
        ("07 LayerFailures", lambda **k: w_bottleneck.LayerFailures(**k)),
        ("07 InputIBAStages", lambda **k: w_bottleneck.InputIBAStages(**k)),
        ("07 TextBottleneck", lambda **k: w_bottleneck.TextBottleneck(**k)),
        ("08 CoalitionGame", lambda **k: w_shapley.CoalitionGame(**k)),
        ("08 Convergence", lambda **k: w_shapley.Convergence(**k)),
        ("08 ShapNetLayers", lambda **k: w_shapley.ShapNetLayers(**k)),
        ("08 Regularisation", lambda **k: w_shapley.Regularisation(
            runs=w_shapley.regularised_runs(progress=False), **k)),
        ("09 ToyROAR", lambda **k: w_evaluation.ToyROAR(**k)),
        ("09 ROARCurves", lambda **k: w_evaluation.ROARCurves(**k)),
        ("09 SanityGallery", lambda **k: w_evaluation.SanityGallery(**k)),
        ("09 Leaderboard", lambda **k: w_evaluation.Leaderboard(**k)),
    ]


def explorer_times(device: torch.device, quick: bool = False, only: str | None = None,
                   out=print) -> list[dict]:
    """`xai-course bench explorers`: how long a student waits for each explorer's picture.

    Every explorer of chapters 00-09, built as its notebook builds it at full size, on its
    first (embedded) model: the seconds from a change to the first picture and to the final
    one, for opening it (the model loaded, the first figure), for every method of its picker,
    and for the next sample (nothing cached). Measured on the kernel's side: computing,
    rendering the figure and updating the widget, with the coarse picture first as in a
    kernel (`coarse_first=True`), in the caller's thread (`sync=True`); the browser's drawing
    comes on top (the browser tests print both). Target: the first picture within
    FIRST_PICTURE seconds. only: the explorers whose label contains it.
    """
    out(f"{'explorer':26s} {'change':28s} {'first (s)':>9s} {'final (s)':>9s} "
        f"{'target':>8s}  first picture")
    rows = []
    for label, build in explorers_built_by_the_notebooks():
        if only is None or only in label:
            explorer = build(sync=True, coarse_first=True, device=device.type)
            try:
                rows += _waits(label, explorer, out)
            finally:
                explorer.close()
    return rows


def _waits(label: str, explorer, out) -> list[dict]:
    """explorer_times for one explorer: open it, then each method of its picker and the next
    sample; the times of its first and last `show_figure` after each change."""
    drawn: list[float] = []
    show = explorer.show_figure

    def timed_show(fig):
        show(fig)
        drawn.append(time.perf_counter())

    explorer.show_figure = timed_show
    rows = []

    def measure(change: str, act: Callable[[], None]) -> None:
        drawn.clear()
        start = time.perf_counter()
        act()
        if explorer.last_error is not None:
            raise RuntimeError(f"{label}, {change}: {explorer.last_error!r}")
        if not drawn:
            raise RuntimeError(f"{label}, {change}: nothing was drawn")
        first, final = drawn[0] - start, drawn[-1] - start
        verdict = f"{'<=' if first <= FIRST_PICTURE else 'MISS>'}{FIRST_PICTURE}"
        rows.append(dict(explorer=label, change=change, first_s=first, final_s=final,
                         target=FIRST_PICTURE, coarse=len(drawn) > 1))
        out(f"{label:26s} {change:28s} {first:9.2f} {final:9.2f} {verdict:>8s}  "
            f"{'coarse' if len(drawn) > 1 else 'final'}")

    def pick(name: str) -> None:
        explorer.method_picker.value = name

    def next_sample() -> None:
        picker = explorer.sample_picker
        picker.value = (picker.value + 1) % (picker.max + 1)

    measure("open", explorer.start)
    names = list(explorer.methods) if len(explorer.methods) > 1 else [None]
    for name in names:
        if name is not None and name != explorer.method_picker.value:
            measure(f"method: {name}"[:28], lambda name=name: pick(name))
        measure("next sample" if name is None else f"next sample ({name})"[:28], next_sample)
    return rows


def notebook_times(notebooks: str = "notebooks", only: str | None = None,
                   out=print) -> list[dict]:
    """`xai-course bench notebooks`: each chapter notebook run top to bottom at full size
    (the tests' XAI_COURSE_FAST switch off) in a fresh kernel, as "Run All" runs it: its
    seconds against the target RUN_ALL, and its slowest cells."""
    import os
    from pathlib import Path

    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as error:
        raise RuntimeError("the notebook timings need nbclient and nbformat: "
                           "pip install -e '.[dev]'") from error
    paths = sorted(Path(notebooks).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no chapter notebooks (NN_name.ipynb) in {notebooks!r}")
    rows = []
    fast = os.environ.pop("XAI_COURSE_FAST", None)  # the kernels inherit the environment
    try:
        for path in paths:
            if only and only not in path.name:
                continue
            nb = nbformat.read(path, as_version=4)
            cells: list[tuple[float, int]] = []
            client = NotebookClient(nb, timeout=1800,
                                    resources={"metadata": {"path": str(path.parent)}})
            started = [time.perf_counter()]

            def done(cell, cell_index, cells=cells, started=started, **reply):
                now = time.perf_counter()
                cells.append((now - started[0], cell_index))
                started[0] = now

            client.on_cell_executed = done
            start = time.perf_counter()
            client.execute()
            seconds = time.perf_counter() - start
            slowest = sorted(cells, reverse=True)[:3]
            verdict = f"{'<=' if seconds <= RUN_ALL else 'MISS>'}{RUN_ALL:.0f}"
            rows.append(dict(notebook=path.name, seconds=seconds, target=RUN_ALL))
            out(f"{path.name:28s} {seconds:7.1f} s {verdict:>7s}   slowest cells: " +
                ", ".join(f"[{i}] {s:.1f} s" for s, i in slowest))
    finally:
        if fast is not None:
            os.environ["XAI_COURSE_FAST"] = fast
    return rows


# Waiting times a student meets: `xai-course bench explorers` / `notebooks`.
WAITING = {"explorers": explorer_times, "notebooks": notebook_times}
