"""The checks behind the exercise notebooks (exercises/NN_name.ipynb).

Each check runs a student's answer on cases the student does not see (zoo models, random
torchvision models, odd shapes), compares it with the course's own implementation of the
method (never a second one) and returns a `Feedback`: whether it passed, and a message that
names the case, the expected and the received numbers, and a hint that follows from the
difference. A check never raises because of the answer: a wrong value, a wrong shape, an
exception inside the student's code and an unfinished cell (`...`, `NotImplementedError`)
all become a message ("not done yet" for the last).

The exercise notebooks call the checks through otter-grader: each question's test is

    feedback = exercises.check_integrated_gradients(integrated_gradients_loop)
    assert feedback.passed, feedback.message

so `grader.check("q1")` prints the message. The checks also work on their own: the
`Feedback` prints as its message.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from . import (
    activation_max,
    bottleneck,
    cam,
    evaluation,
    gradients,
    local_global,
    perturbation,
    shapley,
    surrogates,
    zoo,
)
from .convention import class_scores

__all__ = [
    "Feedback",
    "NOT_DONE",
    "check_integrated_gradients",
    "check_baseline_that_ignores_the_digit",
    "check_guided_backprop_blind_to_the_class",
    "check_grad_cam_weights",
    "check_cam_equals_grad_cam",
    "check_early_layer_blind_to_the_class",
    "check_window_drop",
    "check_occlusion_passes",
    "check_adversarial_mask",
    "check_accuracy",
    "check_digit_area",
    "check_confident_on_nothing",
    "check_share_inside",
    "check_shortcut_density",
    "check_patch_that_helps",
    "check_lime_surrogate",
    "check_kernel_width",
    "check_overfitted_surrogate",
    "check_total_variation",
    "check_snow",
    "check_preferred_to_every_digit",
    "check_kl_capacity",
    "check_beta",
    "check_best_layer",
    "check_shapley_by_enumeration",
    "check_efficiency",
    "check_alone_misleads",
    "check_remove_top",
    "check_toy_retraining",
    "check_oracle_climbs_back",
    "check_confident_mistake",
    "check_early_layer_wins",
    "check_alone_misleads_on_a_patient",
    "check_survives_randomisation",
    "IG_BASELINES",
    "CAM_DIFFERENCES",
    "OCCLUSION_PASSES",
    "KERNEL_WIDTHS",
    "DENSEST",
    "DIGIT_AREAS",
    "SNOW",
    "BETA_EFFECTS",
    "IBA_LAYERS",
    "EFFICIENCY",
    "TOY_RETRAINING",
    "quadrants",
]

NOT_DONE = "not done yet"


@dataclasses.dataclass(frozen=True)
class Feedback:
    """The outcome of a check: passed or not, and what to do about it."""

    passed: bool
    message: str

    def __repr__(self) -> str:
        return self.message

    __str__ = __repr__


@dataclasses.dataclass
class Case:
    """One hidden case: a model, its inputs and target, and the method's options."""

    name: str
    model: nn.Module
    x: torch.Tensor
    target: int | torch.Tensor
    options: dict


def _not_done(what: str) -> Feedback:
    return Feedback(False, f"{NOT_DONE}: {what}")


def _unfinished(value) -> bool:
    """An answer the student has not written yet: `...`, None, or a container of them."""
    if value is None or value is Ellipsis:
        return True
    if isinstance(value, dict):
        return not value or any(_unfinished(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_unfinished(v) for v in value)
    return False


def _found_keys(found, keys: Sequence[str], example: str) -> Feedback | None:
    """None when `found` is a dict holding `keys`; else what to write (`example`)."""
    if isinstance(found, dict) and set(keys) <= set(found):
        return None
    names = ", ".join(repr(k) for k in keys)
    return Feedback(False, f"found must be a dict with the keys {names}, e.g. {example}")


def _sample_index(sample, n_samples: int) -> Feedback | None:
    """None when `sample` is one of the explorer's sample numbers, 0 to n_samples - 1."""
    if isinstance(sample, int) and not isinstance(sample, bool) and 0 <= sample < n_samples:
        return None
    return Feedback(False, f"sample must be an int from 0 to {n_samples - 1} (the explorer's "
                           f"sample number), got {sample!r}")


def _picked(found, choice: str, allowed: Sequence[str], example: str, what: str,
            n_samples: int) -> Feedback | None:
    """None when `found` is a "break it" answer read off an explorer: dict(<choice>=one of
    `allowed`, sample=one of its sample numbers); else what is missing ("not done yet: "
    `what`) or wrong."""
    if _unfinished(found):
        return _not_done(what)
    if (problem := _found_keys(found, (choice, "sample"), example)) is not None:
        return problem
    if not isinstance(found[choice], str) or found[choice] not in allowed:  # a list: no error
        return Feedback(False, f"{choice} must be one of the explorer's {choice}s "
                               f"{list(allowed)}, got {found[choice]!r}")
    return _sample_index(found["sample"], n_samples)


class _Stop(Exception):
    """A check's early answer (the student's code raised, or is unfinished)."""

    def __init__(self, feedback: Feedback):
        super().__init__(feedback.message)
        self.feedback = feedback


def _over_cases(cases: list[Case], attempt: Callable[[Case], Feedback | None],
                passed: str) -> Feedback:
    """Try the student's answer on each hidden case in turn: `attempt(case)` returns a
    Feedback for the first case it fails (None: the case passed) or raises `_Stop`."""
    try:
        for case in cases:
            failed = attempt(case)
            if failed is not None:
                return failed
    except _Stop as stop:
        return stop.feedback
    return Feedback(True, passed)


def _run(student_fn: Callable, case: Case, *args, **kwargs):
    """Call the student's function on one case; an exception becomes a `_Stop` whose message
    names the case and the error (an unfinished body: "not done yet")."""
    try:
        with torch.enable_grad():
            out = student_fn(*args, **kwargs)
    except NotImplementedError:
        raise _Stop(_not_done("your function raises NotImplementedError")) from None
    except Exception as error:  # the student's code: any error is feedback, not a crash
        text = f"{type(error).__name__}: {error}"
        if "ellipsis" in text.lower():
            raise _Stop(_not_done(f"a `...` is still in your code ({text})")) from None
        raise _Stop(Feedback(False, f"{case.name}: your function raised {text}")) from None
    if out is None or out is Ellipsis:
        raise _Stop(_not_done("your function returns nothing yet (write its body and "
                              "`return` the result)"))
    return out


def _as_tensor(out, case: Case, expected: torch.Tensor,
               shape_hints: dict[tuple, str] | None = None) -> torch.Tensor:
    """The student's result as a tensor of the expected shape, or a `_Stop` saying why not
    (shape_hints: {a wrong shape: what it suggests})."""
    if isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor):
        raise _Stop(Feedback(False, f"{case.name}: return one tensor, got a tuple of "
                                    f"{len(out)}"))
    if not isinstance(out, torch.Tensor):
        raise _Stop(Feedback(False, f"{case.name}: return a torch.Tensor, got "
                                    f"{type(out).__name__}"))
    got = out.detach().to(expected.device, expected.dtype)
    if got.shape != expected.shape:
        hint = (shape_hints or {}).get(tuple(got.shape), "")
        if hint:
            hint = " " + hint
        elif got.shape == expected.shape[:1] + expected.shape[2:]:
            hint = " Did you sum over the channels? Keep one value per input feature, " \
                   "shaped like the input."
        elif got.ndim == expected.ndim + 1 and got.shape[1:] == expected.shape:
            hint = " Did you return every step's result instead of combining them?"
        elif got.numel() == 1:
            hint = " Did you sum the map into one number?"
        raise _Stop(Feedback(False, f"{case.name}: expected shape {tuple(expected.shape)}, "
                                    f"got {tuple(got.shape)}.{hint}"))
    if not torch.isfinite(got).all():
        raise _Stop(Feedback(False, f"{case.name}: your result has NaN or inf values"))
    return got


def _close(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-3,
           where: torch.Tensor | None = None) -> bool:
    """got == expected up to rtol of expected's largest magnitude (only `where`, if given)."""
    if where is not None:
        if not where.any():
            return False
        got, expected = got[where], expected[where]
    scale = expected.abs().max().item()
    return (got - expected).abs().max().item() <= rtol * scale + 1e-7


def _letter(prediction, choices: dict[str, str]) -> str | Feedback:
    """The letter a student predicted, e.g. "b" from "(B)", or a Feedback saying what is
    wrong with it."""
    if _unfinished(prediction):
        return _not_done("write your prediction (a letter) before you measure")
    letter = str(prediction).strip().lower().strip("()")
    if letter not in choices:
        return Feedback(False, f"the prediction must be one of {sorted(choices)}, "
                               f"got {prediction!r}")
    return letter


def _numbers(t: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in t.reshape(-1).tolist()) + "]"


def _first_wrong_example(got: torch.Tensor, expected: torch.Tensor) -> int | None:
    wrong = [i for i in range(len(got)) if not _close(got[i], expected[i])]
    return wrong[0] if wrong else None


def _random_resnet18(num_classes: int, seed: int) -> nn.Module:
    """torchvision's ResNet-18 with random weights (no download), in eval mode; torch's
    global random state is left as it was."""
    from torchvision.models import resnet18

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return resnet18(weights=None, num_classes=num_classes).eval()


# =============================================================== chapter 00: welcome
def _accuracy_cases() -> list[Case]:
    """The hidden cases of `check_accuracy`: the zoo's digits model on its whole test set,
    the cluttered-digits model on 40 canvases, a random ResNet-18 left in train mode."""
    g = torch.Generator().manual_seed(7)
    resnet = _random_resnet18(4, seed=3).train()
    return [
        Case("case 1 of 3 (the zoo's 'digits' model on its 359 test digits)",
             zoo.load_model("digits", "cpu"), zoo.dataset("digits"), None, {}),
        Case("case 2 of 3 (the zoo's 'cluttered-digits' model on 40 canvases)",
             zoo.load_model("cluttered-digits", "cpu"), zoo.dataset("cluttered-digits", n=40),
             None, {}),
        Case("case 3 of 3 (a random ResNet-18 with 4 classes, handed over in train mode, on 12 "
             "random 3 x 24 x 24 images)", resnet,
             zoo.Dataset("random", torch.rand(12, 3, 24, 24, generator=g),
                         torch.randint(0, 4, (12,), generator=g), list("abcd")), None, {}),
    ]


def check_accuracy(student_fn: Callable) -> Feedback:
    """Check `student_fn(model, data) -> float`, the share of `data` (a zoo Dataset: data.x,
    data.y) that `model` classifies right (the class with the largest output), in eval mode
    and leaving the model's mode as it was, against the course's `zoo.accuracy`."""
    if _unfinished(student_fn):
        return _not_done("define accuracy")
    cases = _accuracy_cases()

    def attempt(case: Case) -> Feedback | None:
        data, model = case.x, case.model
        training = model.training
        expected = zoo.accuracy(model, data)
        out = _run(student_fn, case, model, data)
        if model.training != training:
            return Feedback(False, f"{case.name}: your function left the model in "
                                   f"{'train' if model.training else 'eval'} mode; put "
                                   f"its mode back as you found it")
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            out = out.item()
        if isinstance(out, bool) or not isinstance(out, (int, float)):
            return Feedback(False, f"{case.name}: return one number, got "
                                   f"{type(out).__name__}")
        if abs(out - expected) <= 1e-6:
            return None
        n = len(data)
        hint = ("compare with chapter 00: the share of examples whose largest output is "
                "the label.")
        if abs(out - expected * n) <= 1e-3:
            hint = f"that is the number right; divide by the number of examples ({n})."
        elif abs(out - 100 * expected) <= 1e-4:
            hint = "that is a percentage; return a fraction between 0 and 1."
        elif training:
            hint = ("the model came in train mode: classify in eval mode (model.eval(): "
                    "BatchNorm then uses its running statistics), then restore the mode.")
        return Feedback(False, f"{case.name}: expected {expected:.4f}, yours is {out:.4g}."
                               f"\nHint: {hint}")

    return _over_cases(cases, attempt, (
        f"right on all {len(cases)} cases, the model's mode left as it was"))


DIGIT_AREAS = {"a": "about 1%", "b": "about 10%", "c": "about 30%", "d": "about 50%"}


def check_digit_area(prediction, area, n: int = 50) -> Feedback:
    """Check exercise 2 of chapter 00: `area`, the mean share of a cluttered-digits canvas
    that its digit covers (first n canvases, data.mask), and the `prediction` (a letter of
    DIGIT_AREAS), against the course's own measurement."""
    letter = _letter(prediction, DIGIT_AREAS)
    if isinstance(letter, Feedback):
        return letter
    if _unfinished(area):
        return _not_done("measure the digit's area")
    try:
        value = float(area)
    except (TypeError, ValueError):
        return Feedback(False, f"area must be a number (use .item()), got {type(area).__name__}")
    measured = zoo.dataset("cluttered-digits", n=n).mask.float().mean().item()
    if abs(value - measured) > 1e-4:
        return Feedback(False, (f"your area is {value:.4f}; measured on the first {n} canvases "
                                f"it is {measured:.4f}: the mean of data.mask over all pixels "
                                f"of all canvases."))
    truth = min(DIGIT_AREAS, key=lambda k: abs(float(DIGIT_AREAS[k].split()[1][:-1]) / 100
                                               - measured))
    if letter != truth:
        return Feedback(False, (
            f"your measurement is right, your prediction is not: you predicted ({letter}) "
            f"{DIGIT_AREAS[letter]}; the digit covers {measured:.1%}, ({truth}) "
            f"{DIGIT_AREAS[truth]}. A map that ignored the digit would put about that share "
            f"on it: the number every 'share on the digit' in the course is compared with "
            f"(chapter 00, 'What ships with the course')."))
    return Feedback(True, f"right: the digit covers {measured:.1%} of a canvas")


CONFIDENT = 0.9  # the probability the model must give a class of an image without a digit


def check_confident_on_nothing(image) -> Feedback:
    """Check the "break it" exercise of chapter 00: `image`, a (1, 1, 32, 32) input for the
    zoo's digits model in which every pixel has the same value (no digit at all), that the
    model nevertheless gives one class with a probability of at least CONFIDENT."""
    if _unfinished(image):
        return _not_done("make the image")
    if not isinstance(image, torch.Tensor) or tuple(image.shape) != (1, 1, 32, 32):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        return Feedback(False, f"image must be a tensor of shape (1, 1, 32, 32), got {shape}")
    image = image.detach().float()
    if not torch.isfinite(image).all() or not 0 <= image.min() <= image.max() <= 1:
        return Feedback(False, "the pixels must be numbers in [0, 1], like the digits'")
    if image.max() - image.min() > 0:
        return Feedback(False, f"every pixel must have the same value (no digit); yours range "
                               f"from {image.min():.3f} to {image.max():.3f}")
    with torch.no_grad():
        p = zoo.load_model("digits", "cpu")(image).softmax(dim=1)[0]
    top = int(p.argmax())
    if p[top] < CONFIDENT:
        return Feedback(False, (
            f"a plain image of value {image[0, 0, 0, 0]:.2f}: the model says {top} with "
            f"probability {p[top]:.2f}, not yet {CONFIDENT}. Try other values in the "
            f"explorer or in a loop."))
    return Feedback(True, (
        f"a plain image of value {image[0, 0, 0, 0]:.2f}, no digit at all: the model says "
        f"{top} with probability {p[top]:.2f}. A softmax always names a class; a confident "
        f"output is not evidence, which is why the course explains outputs instead of "
        f"trusting them (chapter 00, 'What can be explained')."))


TOUR_MODELS = ("digits", "cluttered-digits", "shortcut-digits", "reviews")  # the tour's


def check_confident_mistake(found, n_samples: int = 64) -> Feedback:
    """Check the "break it" exercise of chapter 00: `found = dict(model=..., sample=...)`, a
    model of the zoo tour (TOUR_MODELS) and one of its test examples (the explorer's sample
    number) that the model gets wrong with a probability of at least CONFIDENT."""
    if (problem := _picked(found, "model", TOUR_MODELS, "dict(model='digits', sample=0)",
                           "fill in the model and the sample you found in the tour",
                           n_samples)) is not None:
        return problem
    name, sample = found["model"], found["sample"]
    data = zoo.dataset(zoo.model_info(name).dataset, n=sample + 1)
    with torch.no_grad():
        p = zoo.load_model(name, "cpu")(data.x[sample:sample + 1]).softmax(dim=1)[0]
    said, label = int(p.argmax()), int(data.y[sample])
    classes = getattr(data, "classes", None) or [str(c) for c in range(len(p))]
    where = (f"{name}, sample {sample}: the label is {classes[label]!r}, the model says "
             f"{classes[said]!r} with probability {p[said]:.2f}")
    if said == label:
        return Feedback(False, f"{where}: right, not a mistake. Step through the samples and "
                               f"compare the label in the status line with the top bar; try "
                               f"each model.")
    if p[said] < CONFIDENT:
        return Feedback(False, f"{where}: a mistake, but not a confident one (at least "
                               f"{CONFIDENT} wanted). Keep looking.")
    return Feedback(True, (
        f"{where}: wrong, and sure of it. A probability is the model's own score, not the "
        f"chance that it is right; an explanation can show what the score rests on "
        f"(chapter 00, 'What can be explained')."))


# =============================================================== chapter 01: local vs global
def _share_cases() -> list[Case]:
    """The hidden cases of `check_share_inside`: gradient maps of zoo canvases with the
    digits' masks, an occlusion map of a zoo digit with a square, a random signed map of an
    odd shape with a random region."""
    canvases = zoo.dataset("cluttered-digits", n=2)
    digits = zoo.dataset("digits", n=1)
    square = torch.zeros(1, 32, 32)
    square[:, 8:24, 8:24] = 1
    g = torch.Generator().manual_seed(6)
    model = zoo.load_model("cluttered-digits", "cpu")
    return [
        Case("case 1 of 3 (gradient maps (2, 3, 64, 64) of two cluttered-digits canvases, the "
             "digits' masks)", None, gradients.gradient(model, canvases.x, canvases.y),
             canvases.mask, {}),
        Case("case 2 of 3 (an occlusion map (1, 1, 32, 32) of a handwritten digit, the central "
             "16 x 16 square)", None,
             perturbation.occlusion(zoo.load_model("digits", "cpu"), digits.x, digits.y,
                                    window=8, stride=4), square, {}),
        Case("case 3 of 3 (random signed maps (3, 2, 7, 9), a random region)", None,
             torch.randn(3, 2, 7, 9, generator=g),
             (torch.rand(3, 7, 9, generator=g) < 0.3).float(), {}),
    ]


def _share_hint(got: torch.Tensor, case: Case) -> str:
    a, region = case.x, case.target
    summed = a.sum(dim=1) if a.ndim == 4 else a
    absolute = a.abs().sum(dim=1) if a.ndim == 4 else a.abs()
    inside, total = (absolute * region).flatten(1).sum(1), absolute.flatten(1).sum(1)
    area = region.flatten(1).mean(1)
    for candidate, hint in [
        ((summed * region).flatten(1).sum(1) / summed.flatten(1).sum(1),
         "you summed signed values: the share is of the absolute mass |a|, so that negative "
         "evidence counts too."),
        ((summed.abs() * region).flatten(1).sum(1) / summed.abs().flatten(1).sum(1),
         "you took |.| after summing the channels: take each value's |a| first, then sum the "
         "channels (a positive and a negative channel that cancel are still mass)."),
        (1 - inside / total, "that is the share outside the region."),
        (inside / total / area, "you divided by the region's area: that is a density; the "
                                "share is the mass inside over the mass everywhere."),
    ]:
        if _close(got, candidate, 1e-3):
            return hint
    return ("compare with chapter 01, 'Do they point at the digit?': "
            "share = sum_{i in region} |a_i| / sum_i |a_i|, per example.")


def check_share_inside(student_fn: Callable) -> Feedback:
    """Check `student_fn(attribution, region) -> (N,)`, the share of an explanation's absolute
    mass inside a region, per example,

        share = sum_{i in region} |a_i| / sum_i |a_i|

    (attribution (N, C, H, W), channels summed as |.|; region (N, H, W) of 0/1), against the
    course's `local_global.mass_inside` on three hidden cases."""
    if _unfinished(student_fn):
        return _not_done("define share_inside")
    cases = _share_cases()

    def attempt(case: Case) -> Feedback | None:
        expected = local_global.mass_inside(case.x, case.target)
        out = _run(student_fn, case, case.x.clone(), case.target.clone())
        got = _as_tensor(out, case, expected, {
            (): "Return one share per example, (N,), not their mean.",
            tuple(case.target.shape): "Return one share per example, (N,), not a map.",
        })
        if _close(got, expected):
            return None
        return Feedback(False, (
            f"{case.name}: the shares should be {_numbers(expected)}, yours are "
            f"{_numbers(got)}.\nHint: {_share_hint(got, case)}"))

    return _over_cases(cases, attempt, (
        f"right on all {len(cases)} cases (3-channel gradient maps, a "
        f"1-channel occlusion map, random signed maps of an odd shape)"))


DENSEST = {"a": "on the digit", "b": "on the mark",
           "c": "about as dense on both (within a factor 1.5)"}


def check_shortcut_density(prediction, density, n: int = 20) -> Feedback:
    """Check exercise 2 of chapter 01: `density` {"digit": ..., "mark": ...}, the share of the
    shortcut model's gradient mass on each region divided by the region's area (first n
    canvases, `local_global.shortcut_report`), and the `prediction` (a letter of DENSEST)."""
    from .zoo import digits

    letter = _letter(prediction, DENSEST)
    if isinstance(letter, Feedback):
        return letter
    if _unfinished(density):
        return _not_done("measure the density on the digit and on the mark")
    if not isinstance(density, dict) or sorted(density) != ["digit", "mark"]:
        return Feedback(False, "density must be a dict with the keys 'digit' and 'mark'")
    report = local_global.shortcut_report(
        zoo.load_model("shortcut-digits", "cpu"), zoo.dataset("shortcut-digits", n=n),
        zoo.dataset("shortcut-digits", split="moved", n=n),
        digits.shortcut_mark_mask("test", n=n), gradients.gradient)
    measured = {"digit": report.digit_share / report.digit_area,
                "mark": report.mark_share / report.mark_area}
    for key in ("digit", "mark"):
        try:
            value = float(density[key])
        except (TypeError, ValueError):
            return Feedback(False, f"density[{key!r}] must be a number, got {density[key]!r}")
        if abs(value - measured[key]) > 1e-3 * (1 + measured[key]):
            return Feedback(False, (
                f"your density on the {key} is {value:.3f}; measured on the first {n} canvases "
                f"it is {measured[key]:.3f}: the report's {key}_share / {key}_area."))
    ratio = measured["mark"] / measured["digit"]
    truth = "c" if 1 / 1.5 <= ratio <= 1.5 else "b" if ratio > 1 else "a"
    if letter != truth:
        return Feedback(False, (
            f"your measurements are right, your prediction is not: you predicted ({letter}) "
            f"{DENSEST[letter]}; per pixel of area the gradient is {ratio:.1f} times as dense "
            f"on the mark as on the digit, ({truth}) {DENSEST[truth]}. The explanation gives "
            f"the shortcut away (chapter 01, 'Catching a shortcut')."))
    return Feedback(True, f"right: {measured['mark']:.1f} times the mark's area on the mark, "
                          f"{measured['digit']:.1f} times the digit's on the digit")


HELPS = 0.01  # hiding the patch must raise the label's probability by at least this much


def check_patch_that_helps(found, n_samples: int = 64) -> Feedback:
    """Check the "break it" exercise of chapter 01: `found = dict(sample=..., top=...,
    left=..., size=...)`, a black patch on a cluttered-digits canvas whose hiding *raises*
    the label's probability by at least HELPS (`local_global.patch_effect`)."""
    if _unfinished(found):
        return _not_done("fill in the sample and the patch you found")
    keys = {"sample", "top", "left", "size"}
    if not isinstance(found, dict) or set(found) != keys:
        return Feedback(False, f"found must be a dict with the keys {sorted(keys)}, e.g. "
                               f"dict(sample=0, top=8, left=8, size=16)")
    if not all(isinstance(found[k], int) and not isinstance(found[k], bool) for k in keys):
        return Feedback(False, f"sample, top, left and size must be ints, got {found}")
    sample = found["sample"]
    if (problem := _sample_index(sample, n_samples)) is not None:
        return problem
    data = zoo.dataset("cluttered-digits", n=sample + 1)[sample]
    try:
        before, after = local_global.patch_effect(
            zoo.load_model("cluttered-digits", "cpu"), data.x, data.y, found["top"],
            found["left"], found["size"])
    except ValueError as error:
        return Feedback(False, f"that patch does not fit: {error}")
    change = after.item() - before.item()
    where = (f"sample {sample}, a {found['size']} x {found['size']} patch at top "
             f"{found['top']}, left {found['left']}: p(label) {before.item():.4f} -> "
             f"{after.item():.4f}")
    if change < HELPS:
        return Feedback(False, (
            f"{where}, a change of {change:+.4f}; find one that raises it by at least "
            f"{HELPS}. Tick the full occlusion map in the explorer: where is the drop "
            f"negative?"))
    return Feedback(True, (
        f"{where}: hiding this part helps the label. A local explanation has a sign: some "
        f"parts of an input speak against the class (chapter 01, 'Question 1 by hand')."))


# =============================================================== chapter 02: gradients
def _ig_cases() -> list[Case]:
    """The hidden cases of `check_integrated_gradients`: a zoo digit, two zoo canvases with
    a blurred baseline and different targets, a random ResNet-18 on an odd-sized input."""
    digits = zoo.dataset("digits", n=6)
    canvases = zoo.dataset("cluttered-digits", n=3)
    g = torch.Generator().manual_seed(2)
    odd = torch.rand(1, 3, 37, 53, generator=g)
    two = canvases.x[1:3]
    return [
        Case("case 1 of 3 (the zoo's 'digits' model, one handwritten digit, black baseline, "
             "8 steps)", zoo.load_model("digits", "cpu"), digits.x[5:6], int(digits.y[5]),
             dict(baseline=torch.zeros_like(digits.x[5:6]), steps=8)),
        Case("case 2 of 3 (the zoo's 'cluttered-digits' model, a batch of 2 canvases with "
             "targets [label, 3], blurred baseline, 12 steps)",
             zoo.load_model("cluttered-digits", "cpu"), two,
             torch.tensor([int(canvases.y[1]), 3]),
             dict(baseline=gradients.make_baseline(two, "blur"), steps=12)),
        Case("case 3 of 3 (a random ResNet-18 with 7 classes on a 3 x 37 x 53 input, "
             "baseline 0.5 everywhere, 5 steps)", _random_resnet18(7, seed=0), odd, 4,
             dict(baseline=torch.full_like(odd, 0.5), steps=5)),
    ]


def _course_ig(case: Case, method: str = "riemann_middle", baseline=None) -> torch.Tensor:
    baseline = case.options["baseline"] if baseline is None else baseline
    return gradients.integrated_gradients(case.model, case.x, case.target, baseline=baseline,
                                          steps=case.options["steps"], method=method)


def _ig_hint(got: torch.Tensor, expected: torch.Tensor, case: Case) -> str:
    """What the difference between the student's IG and the course's says about the mistake."""
    x, x0, n = case.x, case.options["baseline"], case.options["steps"]
    moved = (x - x0).abs() > 1e-4  # where (x - x') can be divided out
    if _close(got, expected * n, 1e-2):
        return (f"your map is {n} times too large (n = {n} steps): did you add up the "
                f"gradients without dividing by n? IG averages them (each weight is 1/n).")
    if _close(got * (x - x0), expected, 1e-2, where=moved):
        return ("your map is the average gradient along the path, not yet multiplied by "
                "(x - baseline): IG_i = (x_i - x'_i) x mean_k dS/dx_i. Did you multiply by "
                "x - baseline?")
    if not _close(x, x - x0) and _close(got * (x - x0), expected * x, 1e-2, where=moved):
        return ("you multiplied by x; IG multiplies by x - baseline (the same only for a "
                "black baseline, and this one is not black).")
    if _close(-got, expected, 1e-2):
        return ("your map has the opposite sign: the factor is (x - baseline), and the path "
                "goes from the baseline (alpha = 0) to x (alpha = 1).")
    at_x = (x - x0) * gradients.gradient(case.model, x, case.target)
    if _close(got, at_x, 1e-2):
        return ("your map is (x - baseline) times the gradient at x only: IG averages the "
                "gradient at the points x' + alpha_k (x - x') along the whole path.")
    for method, nodes in [("riemann_left", "alpha_k = k/n, k = 0..n-1 (the left rule)"),
                          ("riemann_right", "alpha_k = k/n, k = 1..n (the right rule)"),
                          ("riemann_trapezoid", "n nodes from 0 to 1 (a trapezoid rule)")]:
        if _close(got, _course_ig(case, method), 1e-2):
            return (f"you used the nodes {nodes}; this exercise asks for the midpoints "
                    f"alpha_k = (k + 1/2)/n.")
    from_black = _course_ig(case, baseline=torch.zeros_like(x))  # x * mean grad(alpha x)
    nonzero = moved & (x.abs() > 1e-4)
    if not _close(x0, torch.zeros_like(x0)) and \
            _close(got * x, (x - x0) * from_black, 1e-2, where=nonzero):
        return ("your path points are alpha * x: they start at black, not at the baseline. "
                "The path is x' + alpha (x - x').")
    wrong = _first_wrong_example(got, expected)
    if len(got) > 1 and wrong is not None and wrong > 0:
        return (f"example 0 of the batch is right, example {wrong} is not: give each example "
                f"its own target (target can be a tensor of N classes) and its own baseline.")
    return ("compare your loop with the formula in section 3 of chapter 02, 'The integral, "
            "in practice'.")


def check_integrated_gradients(student_fn: Callable) -> Feedback:
    """Check `student_fn(model, x, target, baseline, steps)`, Integrated Gradients with the
    midpoint rule,

        IG_i(x) = (x_i - x'_i) * 1/n sum_{k=0}^{n-1} dS_c(x' + alpha_k (x - x'))/dx_i,
        alpha_k = (k + 1/2)/n,

    against the course's `gradients.integrated_gradients(..., method="riemann_middle")` on
    three hidden cases. A failing case reports the sums of both maps next to
    S_c(x) - S_c(x') (completeness) and a hint read from the difference.
    """
    if _unfinished(student_fn):
        return _not_done("define integrated_gradients_loop")
    cases = _ig_cases()

    def attempt(case: Case) -> Feedback | None:
        expected = _course_ig(case)
        out = _run(student_fn, case, case.model, case.x.clone(), case.target,
                   case.options["baseline"].clone(), case.options["steps"])
        got = _as_tensor(out, case, expected)
        if _close(got, expected):
            return None
        both = torch.cat([case.x, case.options["baseline"]])
        targets = case.target.repeat(2) if isinstance(case.target, torch.Tensor) \
            else case.target
        with torch.no_grad():
            scores = class_scores(case.model, both, targets)
        n = len(case.x)
        change = scores[:n] - scores[n:]
        worst = (got - expected).abs().max().item()
        return Feedback(False, (
            f"{case.name}: your map sums to {_numbers(got.flatten(1).sum(1))} but "
            f"f(x) - f(baseline) = {_numbers(change)} (the course's IG sums to "
            f"{_numbers(expected.flatten(1).sum(1))}); largest difference from the "
            f"course's map {worst:.3g}.\nHint: {_ig_hint(got, expected, case)}"))

    return _over_cases(cases, attempt, (
        f"right on all {len(cases)} cases (a zoo digit, a batch of canvases "
        f"with a blurred baseline, a random ResNet-18 on an odd shape)"))


IG_BASELINES = {
    "a": "black: zeros",
    "b": "blur: the canvas blurred",
    "c": "digit erased: the canvas with its digit set to black, x * (1 - mask)",
    "d": "digit only: the digit on black, x * mask",
}


def ig_baselines(x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four baselines of exercise 2 of chapter 02, {letter: x'}; mask (N, H, W)."""
    m = mask[:, None].to(x.dtype)
    return {"a": torch.zeros_like(x), "b": gradients.make_baseline(x, "blur"),
            "c": x * (1 - m), "d": x * m}


def check_baseline_that_ignores_the_digit(prediction, shares, n: int = 4,
                                          steps: int = 16) -> Feedback:
    """Check exercise 2 of chapter 02: `shares` {letter: share of |IG| on the digit} measured
    on the first n cluttered-digits canvases with the baselines of `IG_BASELINES`, and the
    `prediction` (a letter) of the baseline that gives the digit nothing, against the
    course's own measurement (`integrated_gradients`, `local_global.mass_inside`)."""
    letter = _letter(prediction, IG_BASELINES)
    if isinstance(letter, Feedback):
        return letter
    if _unfinished(shares):
        return _not_done("measure the share on the digit for every baseline "
                         f"({', '.join(sorted(IG_BASELINES))})")
    if not isinstance(shares, dict) or sorted(shares) != sorted(IG_BASELINES):
        keys = sorted(shares) if isinstance(shares, dict) else type(shares).__name__
        return Feedback(False, f"shares must be a dict with the keys "
                               f"{sorted(IG_BASELINES)}, got {keys}")
    model = zoo.load_model("cluttered-digits", "cpu")
    data = zoo.dataset("cluttered-digits", n=n)
    measured = {}
    for key, baseline in ig_baselines(data.x, data.mask).items():
        ig = gradients.integrated_gradients(model, data.x, data.y, baseline=baseline,
                                            steps=steps)
        measured[key] = local_global.mass_inside(ig, data.mask).mean().item()
    for key in sorted(IG_BASELINES):
        try:
            value = float(shares[key])
        except (TypeError, ValueError):
            return Feedback(False, f"shares[{key!r}] must be a number, got {shares[key]!r}")
        if abs(value - measured[key]) > 0.01:
            return Feedback(False, (
                f"your share for ({key}) {IG_BASELINES[key]} is {value:.3f}; measured on the "
                f"first {n} canvases with {steps} steps it is {measured[key]:.3f}. Pass "
                f"baseline=baselines[{key!r}] to gradients.integrated_gradients and average "
                f"local_global.mass_inside(ig, mask) over the canvases."))
    ignoring = min(measured, key=measured.get)
    if letter != ignoring:
        return Feedback(False, (
            f"your measurements are right, your prediction is not: you predicted ({letter}) "
            f"{IG_BASELINES[letter]}, whose map puts {measured[letter]:.0%} of its mass on "
            f"the digit; ({ignoring}) {IG_BASELINES[ignoring]} puts {measured[ignoring]:.0%}. "
            f"IG multiplies by (x_i - x'_i): a pixel equal to its baseline gets nothing "
            f"(chapter 02, section 3, 'The baseline is a choice, and it shows')."))
    others = ", ".join(f"({k}) {v:.0%}" for k, v in sorted(measured.items()) if k != letter)
    return Feedback(True, f"right: ({letter}) puts {measured[letter]:.0%} of the map on the "
                          f"digit, the others {others}")


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]).double())[0, 1].item()


GB_ALIKE = 0.95  # Guided Backprop's two maps must correlate at least this much ...
GRADIENT_APART = 0.5  # ... while the two gradients correlate at most this much


def check_guided_backprop_blind_to_the_class(found) -> Feedback:
    """Check the "break it" exercise of chapter 02: `found = dict(model=..., sample=...,
    classes=(a, b))`, a zoo image model, a sample of its data set (the explorer's sample
    index) and two different classes for which Guided Backprop draws nearly the same map
    (Pearson correlation >= GB_ALIKE) although the class scores' gradients differ
    (correlation <= GRADIENT_APART)."""
    if _unfinished(found):
        return _not_done("fill in model, sample and classes from the explorer")
    if not isinstance(found, dict) or not {"model", "sample", "classes"} <= set(found):
        return Feedback(False, "found must be a dict with the keys 'model', 'sample' and "
                               "'classes', e.g. dict(model='digits', sample=0, classes=(1, 7))")
    name, sample, classes = found["model"], found["sample"], found["classes"]
    if name not in zoo.models():
        return Feedback(False, f"model must be a zoo model's name, one of the explorer's "
                               f"models ('digits', 'cluttered-digits'), got {name!r}")
    info = zoo.model_info(name)
    if info.tabular or info.generator or info.explains or name == "reviews":
        return Feedback(False, f"{name!r} is not an image classifier with ReLUs to guide: "
                               f"use 'digits' or 'cluttered-digits'")
    try:
        model = zoo.load_model(name, "cpu")
    except Exception as error:  # e.g. ImageNet weights not on this machine
        return Feedback(False, f"the model {name!r} cannot be loaded here ({error}); use "
                               f"'digits' or 'cluttered-digits'")
    if (problem := _sample_index(sample, 256)) is not None:
        return problem
    if not isinstance(classes, Sequence) or len(classes) != 2:
        return Feedback(False, f"classes must be two class indices, e.g. (1, 7), got "
                               f"{classes!r}")
    data = zoo.dataset(info.dataset, n=sample + 1)
    a, b = classes
    k = len(data.classes)
    if not all(isinstance(c, int) and 0 <= c < k for c in (a, b)) or a == b:
        return Feedback(False, f"classes must be two different ints from 0 to {k - 1}, got "
                               f"{classes!r}")
    x = data.x[sample:sample + 1]
    guided = [gradients.guided_backprop(model, x, c) for c in (a, b)]
    plain = [gradients.gradient(model, x, c) for c in (a, b)]
    alike, plain_alike = _pearson(*guided), _pearson(*plain)
    where = f"{name}, sample {sample}, classes {a} and {b}"
    if alike < GB_ALIKE:
        return Feedback(False, (
            f"{where}: Guided Backprop's two maps correlate at {alike:.2f}, not yet "
            f">= {GB_ALIKE} (the gradients' at {plain_alike:.2f}). Try other pairs of "
            f"classes or other samples in the MethodGrid: switch the target and watch the "
            f"Guided Backprop panel."))
    if plain_alike > GRADIENT_APART:
        return Feedback(False, (
            f"{where}: Guided Backprop's maps correlate at {alike:.2f}, but so do the "
            f"gradients ({plain_alike:.2f} > {GRADIENT_APART}): pick classes whose gradients "
            f"differ, so that the sameness is Guided Backprop's doing."))
    return Feedback(True, (
        f"{where}: Guided Backprop's maps correlate at {alike:.2f} while the gradients' "
        f"correlate at {plain_alike:.2f}: the guided map hardly depends on the class it "
        f"is said to explain (chapter 02, section 4)."))


# =============================================================== chapter 03: CAM
def _grad_cam_cases() -> list[Case]:
    """The hidden cases of `check_grad_cam_weights`: the zoo's two CNNs at different layers,
    a random ResNet-18 on an odd-sized input (3 x 4 maps at layer3)."""
    canvases = zoo.dataset("cluttered-digits", n=2)
    digits = zoo.dataset("digits", n=3)
    odd = torch.rand(2, 3, 45, 61, generator=torch.Generator().manual_seed(3))
    return [
        Case("case 1 of 3 (the zoo's 'cluttered-digits' model at its last layer 'features', "
             "2 canvases, their labels)", zoo.load_model("cluttered-digits", "cpu"),
             canvases.x, canvases.y, dict(layer="features")),
        Case("case 2 of 3 (the zoo's 'digits' model at 'features.relu3', one digit, a wrong "
             "class)", zoo.load_model("digits", "cpu"), digits.x[2:3],
             int(digits.y[2] + 3) % 10, dict(layer="features.relu3")),
        Case("case 3 of 3 (a random ResNet-18 with 5 classes on 3 x 45 x 61 inputs, at "
             "'layer3': 3 x 4 maps, targets [1, 4])", _random_resnet18(5, seed=1), odd,
             torch.tensor([1, 4]), dict(layer="layer3")),
    ]


def _grad_cam_hint(got: torch.Tensor, maps: cam.LayerMaps) -> str:
    """What the student's channel weights say about the mistake."""
    G, A = maps.gradients, maps.activations
    h, w = G.shape[2:]
    for candidate, hint in [
        (G.amax(dim=(2, 3)), "you took each gradient map's largest value (max); Grad-CAM "
                             "averages it over the h x w places (mean)."),
        (G.sum(dim=(2, 3)), f"your weights are h x w = {h * w} times too large: did you sum "
                            f"the gradients over the places instead of averaging them?"),
        (A.mean(dim=(2, 3)), "you averaged the activations A; the weights average the "
                             "gradients dS_c/dA (maps.gradients)."),
        (G.clamp(min=0).mean(dim=(2, 3)), "you kept only the positive gradients (a step "
                                          "towards Grad-CAM++); Grad-CAM averages all of "
                                          "them, negative ones included."),
        ((G * A).mean(dim=(2, 3)), "you multiplied the gradients by the activations: the "
                                   "weights are the gradients' mean alone (the activations "
                                   "come in later, in the weighted sum)."),
        (G.abs().mean(dim=(2, 3)), "you averaged |gradient|: keep the sign, a negative "
                                   "weight says the map lowers the score."),
    ]:
        if _close(got, candidate, 1e-3):
            return hint
    return ("compare with the formula in chapter 03, 'Grad-CAM: the gradient as the weight': "
            "alpha_ck = (1/hw) sum_ij dS_c/dA_k[i, j].")


def check_grad_cam_weights(student_fn: Callable) -> Feedback:
    """Check `student_fn(maps) -> (N, K)`, Grad-CAM's channel weights

        alpha_ck = (1 / hw) sum_ij dS_c / dA_k[i, j]

    from a `cam.LayerMaps` (maps.activations A, maps.gradients dS_c/dA, (N, K, h, w)),
    against the course's `cam.grad_cam_weights` on three hidden cases."""
    if _unfinished(student_fn):
        return _not_done("define grad_cam_channel_weights")
    cases = _grad_cam_cases()

    def attempt(case: Case) -> Feedback | None:
        maps = cam.layer_maps(case.model, case.x, case.target, case.options["layer"])
        expected = cam.grad_cam_weights(case.model, case.x, maps)
        given = dataclasses.replace(maps, activations=maps.activations.clone(),
                                    gradients=maps.gradients.clone())
        n, k, h, w = maps.activations.shape
        out = _run(student_fn, case, given)
        got = _as_tensor(out, case, expected, {
            (n, h, w): "You averaged over the channels (dim 1): average each channel's "
                       "gradients over its places (dims 2 and 3), one weight per channel.",
            (n, k, h, w): "Those are maps, not weights: average over the places (dims 2 "
                          "and 3) to get one weight per channel.",
            (k,): "Keep the batch dimension: one weight per example and channel.",
        })
        if _close(got, expected):
            return None
        first = min(k, 4)
        return Feedback(False, (
            f"{case.name}: the weights of the first {first} channels of example 0 should be "
            f"{_numbers(expected[0, :first])}, yours are {_numbers(got[0, :first])} "
            f"(largest difference {(got - expected).abs().max().item():.3g}).\n"
            f"Hint: {_grad_cam_hint(got, maps)}"))

    return _over_cases(cases, attempt, (
        f"right on all {len(cases)} cases (two zoo CNNs at different layers, "
        f"a random ResNet-18 with 3 x 4 maps)"))


CAM_DIFFERENCES = {
    "a": "below 1e-4 of the map's size: the same map, up to rounding",
    "b": "between 1e-4 and 0.1: close, the gradient only approximates the head's weights",
    "c": "above 0.1: different maps",
}


def _cam_bracket(difference: float) -> str:
    return "a" if difference < 1e-4 else "b" if difference <= 0.1 else "c"


def check_cam_equals_grad_cam(prediction, difference, n: int = 4) -> Feedback:
    """Check exercise 2 of chapter 03: `difference` = max |CAM - Grad-CAM| / max |CAM| at
    the layer 'features' of the cluttered-digits model (relu=False, upsample=None, first n
    canvases, their labels), and the `prediction` (a letter of CAM_DIFFERENCES), against
    the course's own measurement."""
    letter = _letter(prediction, CAM_DIFFERENCES)
    if isinstance(letter, Feedback):
        return letter
    if _unfinished(difference):
        return _not_done("measure the difference between the two maps")
    try:
        value = float(difference)
    except (TypeError, ValueError):
        return Feedback(False, f"difference must be a number (use .item()), got "
                               f"{type(difference).__name__}")
    model = zoo.load_model("cluttered-digits", "cpu")
    data = zoo.dataset("cluttered-digits", n=n)
    options = dict(relu=False, upsample=None)
    cam_map = cam.cam(model, data.x, data.y, "features", **options)
    grad_map = cam.grad_cam(model, data.x, data.y, "features", **options)
    measured = ((cam_map - grad_map).abs().max() / cam_map.abs().max()).item()
    if _cam_bracket(value) != _cam_bracket(measured) or \
            (measured > 1e-4 and abs(value - measured) > 0.01 * measured):
        return Feedback(False, (
            f"your difference is {value:.3g}; measured on the first {n} canvases it is "
            f"{measured:.3g}. Compute both maps with relu=False, upsample=None at 'features', "
            f"then max |CAM - Grad-CAM| / max |CAM|."))
    truth = _cam_bracket(measured)
    if letter != truth:
        return Feedback(False, (
            f"your measurement is right, your prediction is not: you predicted ({letter}) "
            f"{CAM_DIFFERENCES[letter]}; the difference is {measured:.1e}, ({truth}) "
            f"{CAM_DIFFERENCES[truth]}. On a global-average-pooling + linear head "
            f"dS_c/dA_k[i, j] = w_ck / hw at every place, so Grad-CAM's weights are CAM's "
            f"(chapter 03, 'Grad-CAM: the gradient as the weight, and CAM as a special case')."))
    return Feedback(True, f"right: max |CAM - Grad-CAM| is {measured:.1e} of the map's size")


def check_early_layer_blind_to_the_class(found, n_samples: int = 64) -> Feedback:
    """Check the "break it" exercise of chapter 03: `found = dict(layer=..., sample=...,
    wrong_class=...)` on the cluttered-digits model, a layer, a canvas (the explorer's sample
    index) and a class that is not the canvas's label, for which Grad-CAM puts at least as
    large a share of its map on the digit as for the right class (`mass_inside`)."""
    if _unfinished(found):
        return _not_done("fill in layer, sample and wrong_class from the explorer")
    if not isinstance(found, dict) or not {"layer", "sample", "wrong_class"} <= set(found):
        return Feedback(False, "found must be a dict with the keys 'layer', 'sample' and "
                               "'wrong_class', e.g. dict(layer='features.relu2', sample=0, "
                               "wrong_class=5)")
    layer, sample, wrong = found["layer"], found["sample"], found["wrong_class"]
    model = zoo.load_model("cluttered-digits", "cpu")
    if (problem := _sample_index(sample, n_samples)) is not None:
        return problem
    data = zoo.dataset("cluttered-digits", n=sample + 1)[sample]
    label = int(data.y[0])
    if not isinstance(wrong, int) or isinstance(wrong, bool) or not 0 <= wrong < 10 \
            or wrong == label:
        return Feedback(False, f"wrong_class must be a class from 0 to 9 other than the "
                               f"canvas's label {label}, got {wrong!r}")
    layers = [item.name for item in cam.conv_layers(model, data.x)]
    if layer not in layers:
        return Feedback(False, f"layer must be one of the model's layers with maps: "
                               f"{', '.join(layers)}; got {layer!r}")
    right_share, wrong_share = (
        local_global.mass_inside(cam.grad_cam(model, data.x, c, layer), data.mask).item()
        for c in (label, wrong))
    where = f"sample {sample} (a {label}), layer {layer!r}"
    if wrong_share < right_share:
        return Feedback(False, (
            f"{where}: Grad-CAM puts {right_share:.0%} of its map on the digit for the right "
            f"class and {wrong_share:.0%} for class {wrong}: it still tells the classes apart "
            f"here. Try an earlier layer in the layers explorer, and switch the target."))
    return Feedback(True, (
        f"{where}: Grad-CAM puts {wrong_share:.0%} of its map on the digit for the wrong class "
        f"{wrong}, {right_share:.0%} for the right one: at this layer the map shows what is "
        f"salient, not what makes the class (chapter 03, 'Coarse maps, upsampling, and the "
        f"choice of layer')."))


# =============================================================== chapter 04: perturbation
def _window_cases() -> list[Case]:
    """The hidden cases of `check_window_drop`: windows aligned to occlusion's tiling (so
    that the course's occlusion map holds exactly that window's drop there), on the zoo's
    two CNNs and a random ResNet-18 with a non-square input."""
    canvases = zoo.dataset("cluttered-digits", n=2)
    digits = zoo.dataset("digits", n=2)
    odd = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(4))
    return [
        Case("case 1 of 3 (the zoo's 'cluttered-digits' model, 2 canvases, their labels, a "
             "16 x 16 window at top=16, left=32, fill 0)", zoo.load_model("cluttered-digits",
             "cpu"), canvases.x, canvases.y, dict(top=16, left=32, size=16, fill=0.0)),
        Case("case 2 of 3 (the zoo's 'digits' model, one digit, a wrong class, an 8 x 8 window "
             "at top=8, left=16, fill 0.5)", zoo.load_model("digits", "cpu"), digits.x[1:2],
             int(digits.y[1] + 1) % 10, dict(top=8, left=16, size=8, fill=0.5)),
        Case("case 3 of 3 (a random ResNet-18 with 6 classes on 3 x 40 x 56 inputs, targets "
             "[2, 5], an 8 x 8 window at top=24, left=40, fill 0.3)",
             _random_resnet18(6, seed=2), odd, torch.tensor([2, 5]),
             dict(top=24, left=40, size=8, fill=0.3)),
    ]


def _window_hint(got: torch.Tensor, case: Case) -> str:
    """What the student's drops say about the mistake."""
    o = case.options
    x, t, c = case.x, case.target, case.x.shape[1]
    top, left, size, fill = o["top"], o["left"], o["size"], o["fill"]

    def scores(inputs):
        with torch.no_grad():
            return class_scores(case.model, inputs, t)

    def hidden(rows, cols, channels=slice(None)):
        occluded = x.clone()
        occluded[:, channels, rows, cols] = fill
        return occluded

    whole, rows, cols = scores(x), slice(top, top + size), slice(left, left + size)
    occluded = scores(hidden(rows, cols))
    with torch.no_grad():
        probabilities = case.model(torch.cat([x, hidden(rows, cols)])).softmax(dim=1)
    index = torch.as_tensor(t).reshape(-1).expand(len(x))
    p = probabilities.gather(1, index.repeat(2)[:, None])[:, 0]
    for candidate, hint in [
        (occluded, "you returned S_c of the occluded input; the drop is S_c(x) minus that."),
        (-(whole - occluded), "your drops have the wrong sign: S_c(x) - S_c(occluded), the "
                              "score before minus the score after."),
        (whole - scores(hidden(cols, rows)), "you swapped rows and columns: top indexes the "
                                             "height (dim 2), left the width (dim 3)."),
        (whole - scores(hidden(rows, cols, slice(0, 1))), f"you hid only channel 0: the "
                                                          f"window covers all {c} channels."),
        (p[:len(x)] - p[len(x):], "you used probabilities; this exercise measures the drop of "
                                  "the logit S_c (the model's output, no softmax)."),
        (whole - scores(hidden(slice(top, top + size - 1), slice(left, left + size - 1))),
         f"your window is {size - 1} x {size - 1}: x[:, :, top:top + size, left:left + size] "
         f"is {size} x {size}."),
    ]:
        if c == 1 and "channel 0" in hint:
            continue
        if _close(got, candidate, 1e-3):
            return hint
    return ("compare with chapter 04, 'Occlusion: question (1), one real removal at a time': "
            "replace the window by the fill in a copy of x, run the model, subtract.")


def check_window_drop(student_fn: Callable) -> Feedback:
    """Check `student_fn(model, x, target, top, left, size, fill) -> (N,)`, the drop of the
    class score when one size x size window (all channels) is replaced by `fill`:

        drop = S_c(x) - S_c(x with x[:, :, top:top+size, left:left+size] := fill)

    against the course's `perturbation.occlusion(..., window=size, stride=size)`, whose map
    holds exactly that drop in the window's pixels, on three hidden cases."""
    if _unfinished(student_fn):
        return _not_done("define window_drop")
    cases = _window_cases()

    def attempt(case: Case) -> Feedback | None:
        o = case.options
        occlusion_map = perturbation.occlusion(case.model, case.x, case.target,
                                               window=o["size"], stride=o["size"],
                                               baseline=o["fill"])
        expected = occlusion_map[:, 0, o["top"], o["left"]]
        x = case.x.clone()
        out = _run(student_fn, case, case.model, x, case.target, o["top"], o["left"],
                   o["size"], o["fill"])
        if not torch.equal(x, case.x):
            return Feedback(False, f"{case.name}: your function changed the input x: hide "
                                   f"the window in a copy (x.clone()), not in x itself")
        got = _as_tensor(out, case, expected, {
            (len(x), 1): "Return one drop per example, shape (N,): index the class "
                         "scores with the targets.",
            tuple(x.shape): "Return the drop of the score (one number per example), not "
                            "an input.",
        })
        if _close(got, expected):
            return None
        return Feedback(False, (
            f"{case.name}: the drops should be {_numbers(expected)}, yours are "
            f"{_numbers(got)}.\nHint: {_window_hint(got, case)}"))

    return _over_cases(cases, attempt, (
        f"right on all {len(cases)} cases: each drop is the value the "
        f"course's occlusion map gives that window's pixels"))


OCCLUSION_PASSES = {"a": "65 = 1 + 8 x 8", "b": "226 = 1 + 15 x 15", "c": "257 = 1 + 16 x 16",
                    "d": "4097 = 1 + 64 x 64"}


def check_occlusion_passes(prediction, passes) -> Feedback:
    """Check exercise 2 of chapter 04: `passes`, the examples a model runs on for occlusion
    with window 8, stride 4 on one 64 x 64 canvas (`perturbation.count_passes`), and the
    `prediction` (a letter of OCCLUSION_PASSES), against the course's own count."""
    letter = _letter(prediction, OCCLUSION_PASSES)
    if isinstance(letter, Feedback):
        return letter
    if _unfinished(passes):
        return _not_done("count the passes with perturbation.count_passes")
    model = zoo.load_model("cluttered-digits", "cpu")
    data = zoo.dataset("cluttered-digits", n=1)
    with perturbation.count_passes(model) as counted:
        perturbation.occlusion(model, data.x, data.y, window=8, stride=4)
    measured = counted.forward
    value = getattr(passes, "forward", passes)
    if not isinstance(value, int) or isinstance(value, bool) or value != measured:
        return Feedback(False, (
            f"you counted {value!r}; the course counts {measured} examples. Wrap one call, "
            f"occlusion(model, x[:1], y[:1], window=8, stride=4), in `with "
            f"perturbation.count_passes(model) as counted:` and read counted.forward."))
    truth = next(k for k, v in OCCLUSION_PASSES.items() if v.startswith(f"{measured} "))
    if letter != truth:
        return Feedback(False, (
            f"your count is right, your prediction is not: you predicted ({letter}) "
            f"{OCCLUSION_PASSES[letter]}; it is ({truth}) {OCCLUSION_PASSES[truth]}: one pass "
            f"for x, and one per window position, ceil((64 - 8) / 4) + 1 = 15 along each side "
            f"(chapter 04, 'Occlusion: question (1), one real removal at a time')."))
    return Feedback(True, f"right: {measured} passes, 1 for x and 15 x 15 window positions")


SMOOTH = dict(tv=0.2, mask_size=16, l1=0.3, steps=60)  # the chapter's smooth mask
SPECKLE = 10.0  # an adversarial mask's total variation is at least this many times the smooth one's
KILLED = 0.05  # ... and it leaves at most this probability of the class ...
SMALL = 0.2  # ... deleting at most this share of the canvas


def _deletion(model, x, y, options: dict) -> tuple[float, float, float]:
    """(probability of the class left, share of the canvas deleted, total variation) of
    Meaningful Perturbation's mask m (1 keeps a pixel, 0 deletes it)."""
    m = perturbation.meaningful_perturbation(model, x, y, **options)
    with torch.no_grad():
        kept = m[:, None] * x + (1 - m[:, None]) * perturbation.perturb(x, "blur")
        p = model(kept).softmax(dim=1)[0, int(y[0])].item()
    return p, (1 - m).mean().item(), perturbation.total_variation(m[:, None]).item()


def check_adversarial_mask(found, n_samples: int = 64) -> Feedback:
    """Check the "break it" exercise of chapter 04: `found = dict(sample=..., tv=...,
    mask_size=..., l1=..., steps=...)`, Meaningful Perturbation's settings on a
    cluttered-digits canvas that give an adversarial mask: the class's probability at most
    KILLED, at most SMALL of the canvas deleted, and a total variation at least SPECKLE
    times that of the chapter's smooth mask on the same canvas (SMOOTH)."""
    if _unfinished(found):
        return _not_done("fill in the sample and the settings you found")
    keys = {"sample", "tv", "mask_size", "l1", "steps"}
    if not isinstance(found, dict) or set(found) != keys:
        return Feedback(False, f"found must be a dict with the keys {sorted(keys)}, e.g. "
                               f"dict(sample=0, tv=0.2, mask_size=16, l1=0.05, steps=60)")
    sample = found["sample"]
    if (problem := _sample_index(sample, n_samples)) is not None:
        return problem
    bounds = dict(tv=(0.0, 10.0), mask_size=(2, 64), l1=(0.0, 10.0), steps=(1, 200))
    for key, (low, high) in bounds.items():
        value = found[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not low <= value <= high or (key in ("mask_size", "steps") and
                                             not isinstance(value, int)):
            return Feedback(False, f"{key} must be a number from {low} to {high}"
                                   f"{' (an int)' if key in ('mask_size', 'steps') else ''}, "
                                   f"got {value!r}")
    model = zoo.load_model("cluttered-digits", "cpu")
    data = zoo.dataset("cluttered-digits", n=sample + 1)[sample]
    options = {k: found[k] for k in ("tv", "mask_size", "l1", "steps")}
    p, deleted, tv = _deletion(model, data.x, data.y, options)
    *_, smooth_tv = _deletion(model, data.x, data.y, SMOOTH)
    ratio = tv / max(smooth_tv, 1e-12)
    where = f"sample {sample} with {options}"
    if p > KILLED:
        return Feedback(False, (
            f"{where}: the mask leaves a probability of {p:.2f} for the class, more than "
            f"{KILLED}: it has not destroyed the score yet (a smaller l1 deletes more, more "
            f"steps optimise longer)."))
    if deleted > SMALL:
        return Feedback(False, (
            f"{where}: the score is gone (p = {p:.3f}), but the mask deletes {deleted:.0%} of "
            f"the canvas, more than {SMALL:.0%}: destroying the class by deleting a lot is no "
            f"surprise (the mask starts at 0.5 everywhere: give the optimiser the steps and "
            f"the l1 to make the deletion small)."))
    if ratio < SPECKLE:
        return Feedback(False, (
            f"{where}: the score is gone (p = {p:.3f}), but the mask's total variation is "
            f"{ratio:.1f} times the smooth mask's, not yet {SPECKLE:.0f}: it is still a "
            f"region. What keeps it smooth? (chapter 04, 'Without smoothness: an adversarial "
            f"mask')"))
    return Feedback(True, (
        f"{where}: the class is gone (p = {p:.3f}) with {deleted:.0%} of the canvas deleted, "
        f"by a mask {ratio:.0f} times as speckled as the smooth one: scattered pixels an "
        f"optimiser can exploit, not a region a person can read."))


# =============================================================== chapter 05: surrogates
def _superpixel_samples(model_name: str, data_name: str, index: int, superpixels: int,
                        samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LIME's samples for one zoo image, made with the course's functions: z (S, K) switches
    (row 0 the original) and y (S,) the model's logit for the label on h(z)."""
    model = zoo.load_model(model_name, "cpu")
    data = zoo.dataset(data_name, n=index + 1)
    x, label = data.x[index], int(data.y[index])
    segments = surrogates.superpixels(x, "grid", superpixels)
    base = surrogates.baseline_image(x, segments, "mean")
    z = surrogates.sample_switches(samples, int(segments.max()) + 1,
                                   torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = model(surrogates.perturbed_images(x, base, segments, z))[:, label].double()
    return z, y


def _lime_cases() -> list[Case]:
    """The hidden cases of `check_lime_surrogate`: LIME's samples on a zoo canvas and a zoo
    digit, and an additive model with known weights sampled by the count scheme."""
    z1, y1 = _superpixel_samples("cluttered-digits", "cluttered-digits", 0, 16, 150, 0)
    z2, y2 = _superpixel_samples("digits", "digits", 3, 9, 60, 1)
    g = torch.Generator().manual_seed(5)
    z3 = surrogates.sample_switches(40, 5, g, scheme="count")
    y3 = 2 + z3 @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1 * torch.randn(40, generator=g)
    return [
        Case("case 1 of 3 (150 samples of 16 superpixels of a cluttered-digits canvas, the "
             "model's logits, kernel width 0.25, alpha 1)", None, z1, y1,
             dict(kernel_width=0.25, alpha=1.0)),
        Case("case 2 of 3 (60 samples of 9 superpixels of a handwritten digit, kernel width "
             "0.5, alpha 0.1)", None, z2, y2, dict(kernel_width=0.5, alpha=0.1)),
        Case("case 3 of 3 (40 samples of 5 features switched off by the count scheme, an "
             "additive model y = 2 + z . (1, -2, 0.5, 0, 3) + noise, kernel width 1, alpha 2)",
             None, z3, y3.double(), dict(kernel_width=1.0, alpha=2.0)),
    ]


def _lime_kernel(z: torch.Tensor, kernel_width: float) -> torch.Tensor:
    """The course's kernel weights pi(z) on the cosine distance of z to the original."""
    return surrogates.kernel_weights(surrogates._cosine_distance_to_ones(z), kernel_width)


def _lime_hint(beta: torch.Tensor, intercept: float, case: Case) -> str:
    """What the student's surrogate says about the mistake."""
    z, y = case.x.double(), case.target
    w, alpha = case.options["kernel_width"], case.options["alpha"]
    pi = _lime_kernel(z, w).double()
    share_on = z.sum(dim=1) / z.shape[1]
    ones = torch.ones(len(z), 1, dtype=z.dtype)
    zw = z.T * pi

    def same(candidate_beta, candidate_intercept=None):
        if not _close(beta, torch.as_tensor(candidate_beta).double(), 1e-3):
            return False
        return candidate_intercept is None or abs(intercept - candidate_intercept) <= \
            1e-3 * (1 + abs(candidate_intercept))

    augmented = torch.cat([ones, z], dim=1)
    penalised = torch.linalg.solve(augmented.T @ (pi[:, None] * augmented)
                                   + alpha * torch.eye(augmented.shape[1], dtype=z.dtype),
                                   augmented.T @ (pi * y))
    no_intercept = torch.linalg.solve(zw @ z + alpha * torch.eye(z.shape[1], dtype=z.dtype),
                                      zw @ y)
    for candidate, hint in [
        (surrogates._ridge(z, y, torch.ones_like(pi), alpha),
         "your surrogate ignores the kernel weights: every sample counts the same. LIME "
         "weights sample s by pi(z_s) = sqrt(exp(-d(z_s)^2 / w^2)) in the squared error."),
        (surrogates._ridge(z, y, pi ** 2, alpha),
         "your kernel is exp(-d^2 / w^2); the lime package's is its square root, "
         "sqrt(exp(-d^2 / w^2))."),
        (surrogates._ridge(z, y, surrogates.kernel_weights(1 - share_on, w), alpha),
         "your distance is the share of features switched off; LIME's is the cosine distance "
         "to the original, d(z) = 1 - sqrt(|z| / K)."),
        (surrogates._ridge(z, y, pi, 0.0),
         "you left out the penalty: the ridge adds alpha ||beta||^2 (alpha I in the normal "
         "equations)."),
        ((penalised[1:], penalised[0].item()),
         "you penalised the intercept too: centre z and y on their weighted means (or leave "
         "beta_0 out of the penalty), as scikit-learn's Ridge does."),
        ((no_intercept, 0.0), "your surrogate has no intercept beta_0: fit "
                              "g(z) = beta_0 + z . beta."),
    ]:
        if same(*candidate):
            return hint
    return ("compare with chapter 05, 'LIME with a linear surrogate': "
            "beta = (Zc^T W Zc + alpha I)^-1 Zc^T W yc, on z and y centred on their weighted "
            "means, and beta_0 = ybar_w - zbar_w . beta.")


def check_lime_surrogate(student_fn: Callable) -> Feedback:
    """Check `student_fn(z, y, kernel_width, alpha) -> (beta, intercept)`, LIME's linear
    surrogate: the kernel pi(z) = sqrt(exp(-d(z)^2 / w^2)) on the cosine distance
    d(z) = 1 - sqrt(|z| / K), and the weighted ridge regression with an unpenalised intercept

        min  sum_s pi(z_s) (y_s - beta_0 - z_s . beta)^2 + alpha ||beta||^2,

    against the course's `surrogates.kernel_weights` and `surrogates.fit_surrogate` on three
    hidden cases."""
    if _unfinished(student_fn):
        return _not_done("define lime_surrogate")
    cases = _lime_cases()

    def attempt(case: Case) -> Feedback | None:
        w, alpha = case.options["kernel_width"], case.options["alpha"]
        fit = surrogates.fit_surrogate(case.x, case.target, _lime_kernel(case.x, w),
                                       "linear", alpha)
        out = _run(student_fn, case, case.x.clone(), case.target.clone(), w, alpha)
        if not (isinstance(out, tuple) and len(out) == 2):
            return Feedback(False, f"{case.name}: return two things, (beta, intercept); "
                                   f"got {type(out).__name__}")
        beta = _as_tensor(out[0], case, fit.coefficients.double(), {
            (len(case.x),): "That is one number per sample: beta has one per feature.",
            (case.x.shape[1] + 1,): "Return the intercept separately, not as beta[0].",
        })
        try:
            intercept = float(out[1])
        except (TypeError, ValueError):
            return Feedback(False, f"{case.name}: the intercept must be a number, got "
                                   f"{type(out[1]).__name__}")
        if _close(beta, fit.coefficients.double()) and \
                abs(intercept - fit.intercept) <= 1e-3 * (1 + abs(fit.intercept)):
            return None
        first = min(4, len(beta))
        return Feedback(False, (
            f"{case.name}: beta (first {first}) should be "
            f"{_numbers(fit.coefficients[:first])} and the intercept {fit.intercept:.4g}; "
            f"yours are {_numbers(beta[:first])} and {intercept:.4g}.\n"
            f"Hint: {_lime_hint(beta, intercept, case)}"))

    return _over_cases(cases, attempt, (
        f"right on all {len(cases)} cases (two zoo images' superpixels, an "
        f"additive model sampled by the count scheme)"))


KERNEL_WIDTHS = {"a": 0.05, "b": 0.25, "c": 2.0}


def _fresh_fidelities(n: int = 2, samples: int = 200) -> dict[str, float]:
    """{letter: mean fidelity on fresh samples} of LIME on the first n cluttered-digits
    canvases with each width of KERNEL_WIDTHS (seed 0)."""
    model = zoo.load_model("cluttered-digits", "cpu")
    data = zoo.dataset("cluttered-digits", n=n)
    out = {}
    for letter, width in KERNEL_WIDTHS.items():
        _, fits = surrogates.lime(model, data.x, data.y, samples=samples, kernel_width=width,
                                  generator=torch.Generator().manual_seed(0),
                                  return_surrogate=True)
        out[letter] = sum(f.fidelity_fresh for f in fits) / len(fits)
    return out


def check_kernel_width(prediction, fidelities) -> Feedback:
    """Check exercise 2 of chapter 05: `fidelities` {letter: mean fidelity on fresh samples}
    for the kernel widths of KERNEL_WIDTHS, and the `prediction` (the letter of the width
    whose surrogate imitates the model worst), against the course's own measurement."""
    choices = {k: f"kernel width {v}" for k, v in KERNEL_WIDTHS.items()}
    letter = _letter(prediction, choices)
    if isinstance(letter, Feedback):
        return letter
    if _unfinished(fidelities):
        return _not_done("measure the fresh fidelity for every kernel width "
                         f"({', '.join(sorted(KERNEL_WIDTHS))})")
    if not isinstance(fidelities, dict) or sorted(fidelities) != sorted(KERNEL_WIDTHS):
        return Feedback(False, f"fidelities must be a dict with the keys "
                               f"{sorted(KERNEL_WIDTHS)}")
    measured = _fresh_fidelities()
    for key in sorted(KERNEL_WIDTHS):
        try:
            value = float(fidelities[key])
        except (TypeError, ValueError):
            return Feedback(False, f"fidelities[{key!r}] must be a number, got "
                                   f"{fidelities[key]!r}")
        if abs(value - measured[key]) > 1e-3 * (1 + abs(measured[key])):
            return Feedback(False, (
                f"your fidelity for ({key}) {choices[key]} is {value:.3f}; measured it is "
                f"{measured[key]:.3f}. Run surrogates.lime(model, x[:2], y[:2], samples=200, "
                f"kernel_width=..., generator=torch.Generator().manual_seed(0), "
                f"return_surrogate=True) and average the fits' fidelity_fresh."))
    worst = min(measured, key=measured.get)
    if letter != worst:
        return Feedback(False, (
            f"your measurements are right, your prediction is not: you predicted ({letter}) "
            f"{choices[letter]}, fresh fidelity {measured[letter]:.2f}; the worst is ({worst}) "
            f"{choices[worst]}, {measured[worst]:.2f}. The samples sit at a cosine distance of "
            f"about 0.29 from the original: a kernel much narrower than that gives almost all "
            f"the weight to the original alone, and the surrogate learns from nearly nothing "
            f"(chapter 05, 'What \"near\" means: the kernel width')."))
    return Feedback(True, f"right: fresh fidelity {measured[worst]:.2f} at width "
                          f"{KERNEL_WIDTHS[worst]}, "
                          + ", ".join(f"{measured[k]:.2f} at {KERNEL_WIDTHS[k]}"
                                      for k in sorted(measured) if k != worst))


FIT_TRUSTED = 0.9  # the surrogate's fidelity on its own samples looks this good ...
FRESH_FAILS = 0.5  # ... while on fresh samples it is at most this


def check_overfitted_surrogate(found, n_samples: int = 64) -> Feedback:
    """Check the "break it" exercise of chapter 05: `found = dict(sample=..., samples=...)`,
    a cluttered-digits canvas and a number of LIME samples for which the linear surrogate
    fits its own samples well (weighted R^2 >= FIT_TRUSTED) but imitates the model badly on
    fresh samples (<= FRESH_FAILS), with the default kernel width and seed 0."""
    if _unfinished(found):
        return _not_done("fill in the sample and the number of samples you found")
    if not isinstance(found, dict) or set(found) != {"sample", "samples"}:
        return Feedback(False, "found must be a dict with the keys 'sample' and 'samples', "
                               "e.g. dict(sample=0, samples=500)")
    sample, samples = found["sample"], found["samples"]
    if (problem := _sample_index(sample, n_samples)) is not None:
        return problem
    if not isinstance(samples, int) or isinstance(samples, bool) or not 2 <= samples <= 2000:
        return Feedback(False, f"samples must be an int from 2 to 2000, got {samples!r}")
    model = zoo.load_model("cluttered-digits", "cpu")
    data = zoo.dataset("cluttered-digits", n=sample + 1)[sample]
    _, (fit,) = surrogates.lime(model, data.x, data.y, samples=samples,
                                generator=torch.Generator().manual_seed(0),
                                return_surrogate=True)
    k = len(fit.coefficients)
    where = (f"sample {sample}, {samples} samples for {k} superpixels: fidelity "
             f"{fit.fidelity:.2f} on its samples, {fit.fidelity_fresh:.2f} on fresh ones")
    if fit.fidelity < FIT_TRUSTED:
        return Feedback(False, f"{where}. The fit on its own samples is not yet convincing "
                               f"(>= {FIT_TRUSTED}): the trap needs a surrogate that looks good.")
    if fit.fidelity_fresh > FRESH_FAILS:
        return Feedback(False, f"{where}. On fresh samples it still imitates the model "
                               f"(> {FRESH_FAILS}). What happens with fewer samples than "
                               f"superpixels?")
    return Feedback(True, (
        f"{where}: with about as many coefficients as samples, the surrogate fits its samples "
        f"and not the model. Judge a surrogate on samples it has not seen (chapter 05, 'LIME "
        f"with a linear surrogate')."))


# =============================================================== chapter 06: activation max
def _tv_cases() -> list[Case]:
    """The hidden cases of `check_total_variation`: images of the chapter's size, a
    3-channel batch of an odd size, a one-pixel-wide strip."""
    g = torch.Generator().manual_seed(8)
    return [
        Case("case 1 of 3 (two 1 x 32 x 32 digit images)", None,
             zoo.dataset("digits", n=2).x, None, {}),
        Case("case 2 of 3 (three random 3 x 7 x 11 images)", None,
             torch.rand(3, 3, 7, 11, generator=g), None, {}),
        Case("case 3 of 3 (one 1 x 5 x 1 strip: no horizontal neighbours)", None,
             torch.rand(1, 1, 5, 1, generator=g), None, {}),
    ]


def _tv_hint(got: torch.Tensor, x: torch.Tensor) -> str:
    down, right = x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]
    for candidate, hint in [
        (down.abs().flatten(1).sum(1) + right.abs().flatten(1).sum(1),
         "you summed |differences|; this prior squares them (beta = 2)."),
        ((down ** 2).flatten(1).sum(1), "you kept only the vertical neighbours: add the "
                                        "horizontal ones, x[..., :, 1:] - x[..., :, :-1]."),
        ((right ** 2).flatten(1).sum(1), "you kept only the horizontal neighbours: add the "
                                         "vertical ones, x[..., 1:, :] - x[..., :-1, :]."),
        ((down ** 2).flatten(1).mean(1) + (right ** 2).flatten(1).mean(1),
         "you averaged; the penalty sums over every pixel and channel."),
    ]:
        if _close(got, candidate, 1e-4):
            return hint
    return ("compare with chapter 06, 'Hand-made priors': "
            "TV(x) = sum_ij (x[i+1, j] - x[i, j])^2 + (x[i, j+1] - x[i, j])^2, per image.")


def check_total_variation(student_fn: Callable) -> Feedback:
    """Check `student_fn(x) -> (N,)`, the total variation prior

        TV(x) = sum_ij (x[i+1, j] - x[i, j])^2 + (x[i, j+1] - x[i, j])^2

    summed over the channels, one number per image, against the course's
    `activation_max.tv_penalty` on three hidden cases."""
    if _unfinished(student_fn):
        return _not_done("define total_variation")
    cases = _tv_cases()

    def attempt(case: Case) -> Feedback | None:
        expected = activation_max.tv_penalty(case.x)
        out = _run(student_fn, case, case.x.clone())
        got = _as_tensor(out, case, expected, {
            (): "Return one number per image, (N,), not the batch's total.",
        })
        if _close(got, expected, 1e-4):
            return None
        return Feedback(False, (f"{case.name}: expected {_numbers(expected)}, yours are "
                                f"{_numbers(got)}.\nHint: {_tv_hint(got, case.x)}"))

    return _over_cases(cases, attempt, (
        f"right on all {len(cases)} cases (digits, odd-sized colour images, a strip)"))


SNOW = {
    "a": "the model is unsure (p < 0.5) and the judge recognises most of them",
    "b": "the model is sure (p > 0.99) and the judge recognises most of them",
    "c": "the model is sure (p > 0.99) and the judge recognises at most 2 of the 10",
    "d": "the model is unsure (p < 0.5) and the judge recognises at most 2 of the 10",
}


def _snow(steps: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """The no-prior images of the 10 classes (noise start, seed 0): (images, the model's
    probability of each image's class)."""
    model = zoo.load_model("digits", "cpu")
    images = activation_max.maximize(model, [("class", c) for c in range(10)], (1, 32, 32),
                                     steps=steps, init="noise",
                                     generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return images, model(images).softmax(dim=1).diagonal()


def check_snow(prediction, probability, recognised) -> Feedback:
    """Check exercise 2 of chapter 06: `probability`, the mean probability the digits model
    gives each of the 10 no-prior images (30 steps, noise start, seed 0) for its class, and
    `recognised`, how many of them the judge recognises as their class, and the `prediction`
    (a letter of SNOW), against the course's own measurement."""
    letter = _letter(prediction, SNOW)
    if isinstance(letter, Feedback):
        return letter
    if _unfinished(probability) or _unfinished(recognised):
        return _not_done("measure the probability and count the recognised images")
    images, p = _snow()
    measured_p = p.mean().item()
    measured_count = int(activation_max.digit_judge()(images).recognised(torch.arange(10)).sum())
    try:
        value, count = float(probability), int(recognised)
    except (TypeError, ValueError):
        return Feedback(False, "probability must be a number and recognised an int")
    if abs(value - measured_p) > 1e-3 or count != measured_count:
        return Feedback(False, (
            f"you measured a probability of {value:.4f} and {count} recognised; the course "
            f"measures {measured_p:.4f} and {measured_count}. Use the images of "
            f"activation_max.maximize(model, ALL, (1, 32, 32), steps=30, init='noise', "
            f"generator=torch.Generator().manual_seed(0)), the softmax's diagonal, and "
            f"judge(images).recognised(torch.arange(10))."))
    sure = measured_p > 0.99
    truth = ("b" if sure else "a") if measured_count > 2 else ("c" if sure else "d")
    if letter != truth:
        return Feedback(False, (
            f"your measurements are right, your prediction is not: you predicted ({letter}) "
            f"{SNOW[letter]}; the model gives {measured_p:.4f} and the judge recognises "
            f"{measured_count} of 10: ({truth}) {SNOW[truth]}. Pixel ascent finds inputs the "
            f"model was never trained to reject (chapter 06, '1 · No prior: snow')."))
    return Feedback(True, f"right: p = {measured_p:.4f}, and the judge recognises "
                          f"{measured_count} of the 10 images")


FEW_STEPS = 10  # the ascent may take at most this many steps


def check_preferred_to_every_digit(found) -> Feedback:
    """Check the "break it" exercise of chapter 06: `found = dict(target=c, steps=s)`, a class
    and at most FEW_STEPS steps of plain ascent (no prior, noise start, seed 0) after which the
    image's logit for c is larger than that of every real test digit of class c, while the
    judge does not recognise it as a c."""
    if _unfinished(found):
        return _not_done("fill in the class and the number of steps")
    if not isinstance(found, dict) or set(found) != {"target", "steps"}:
        return Feedback(False, "found must be a dict with the keys 'target' and 'steps', "
                               "e.g. dict(target=3, steps=5)")
    c, steps = found["target"], found["steps"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (c, steps)) or \
            not 0 <= c < 10 or not 1 <= steps <= FEW_STEPS:
        return Feedback(False, f"target must be a class 0..9 and steps an int from 1 to "
                               f"{FEW_STEPS}, got {found}")
    model = zoo.load_model("digits", "cpu")
    test = zoo.dataset("digits", split="test")
    image = activation_max.maximize(model, ("class", c), (1, 32, 32), steps=steps,
                                    init="noise", generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reached = model(image)[0, c].item()
        best_real = model(test.x[test.y == c])[:, c].max().item()
    seen = bool(activation_max.digit_judge()(image).recognised(c)[0])
    where = (f"class {c} after {steps} steps: logit {reached:.1f}; the best real {c} of the "
             f"test set gets {best_real:.1f}")
    if reached <= best_real:
        return Feedback(False, f"{where}. Not yet above every real digit: more steps, or "
                               f"another class.")
    if seen:
        return Feedback(False, f"{where}, but the judge recognises the image as a {c}: the "
                               f"trap needs an image nobody would call a {c}.")
    return Feedback(True, (
        f"{where}; the judge does not recognise the image as a {c}. The model prefers a "
        f"pattern of snow to every real {c} it was tested on: the class score's maximum is "
        f"not a picture of the class (chapter 06, '1 · No prior: snow')."))


# =============================================================== chapter 07: bottlenecks
def _capacity_cases() -> list[Case]:
    """The hidden cases of `check_kl_capacity`: a zoo CNN's features with their statistics
    over training canvases, text-shaped (N, L, D) random features, and lambda = 0 and near 1."""
    model = zoo.load_model("cluttered-digits", "cpu")
    train = zoo.dataset("cluttered-digits", split="train", n=64)
    stats = bottleneck.feature_stats(model, "features.relu3", train.x)
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        R = stats.mean + stats.std * torch.randn(2, *stats.mean.shape, generator=g)
    text = torch.randn(3, 5, 7, generator=g)
    edges = torch.tensor([0.0, 0.5, 0.999]).view(1, 3, 1).expand(2, 3, 4)
    return [
        Case("case 1 of 3 (features (2, 64, 16, 16) of the cluttered-digits model at "
             "'features.relu3' with their mean and std, lambda uniform in [0, 1))", None,
             R, None, dict(lam=torch.rand(R.shape, generator=g), mean=stats.mean,
                           std=stats.std)),
        Case("case 2 of 3 (text-shaped features (3, 5, 7), mean 0.5, std 2)", None, text,
             None, dict(lam=torch.rand(text.shape, generator=g), mean=torch.tensor(0.5),
                        std=torch.tensor(2.0))),
        Case("case 3 of 3 (lambda = 0, 0.5 and 0.999 on features (2, 3, 4))", None,
             torch.randn(2, 3, 4, generator=g), None,
             dict(lam=edges.clone(), mean=torch.tensor(0.0), std=torch.tensor(1.0))),
    ]


def _capacity_hint(got: torch.Tensor, case: Case) -> str:
    R, o = case.x, case.options
    lam = o["lam"]
    r = (R - o["mean"]) / o["std"]
    var = (1 - lam) ** 2
    for candidate, hint in [
        (-0.5 * (1 + torch.log(var) - (lam * R) ** 2 - var),
         "you used R itself: the formula works in the noise's units, r = (R - mu_R) / sigma_R."),
        (-0.5 * (1 + torch.log(1 - lam) - (lam * r) ** 2 - (1 - lam)),
         "the copy's variance is (1 - lambda)^2, not 1 - lambda."),
        (-0.5 * (1 + torch.log(var) - (lam * r) ** 2 - var) / math.log(2),
         "that is in bits; this function returns nats (the map divides by ln 2 later)."),
        (0.5 * (1 + torch.log(var) - (lam * r) ** 2 - var),
         "your capacity has the wrong sign: a KL divergence is never negative."),
    ]:
        if _close(got, candidate, 1e-4):
            return hint
    return ("compare with chapter 07, '1 · A bottleneck at a layer': "
            "-1/2 (1 + log (1 - lambda)^2 - (lambda r)^2 - (1 - lambda)^2).")


def check_kl_capacity(student_fn: Callable) -> Feedback:
    """Check `student_fn(R, lam, mean, std)`, the information each element lets through,

        r = (R - mu_R) / sigma_R,
        capacity = -1/2 (1 + log (1 - lambda)^2 - (lambda r)^2 - (1 - lambda)^2)  nats,

    against the course's `bottleneck.kl_capacity` on three hidden cases."""
    if _unfinished(student_fn):
        return _not_done("define capacity")
    cases = _capacity_cases()

    def attempt(case: Case) -> Feedback | None:
        o = case.options
        expected = bottleneck.kl_capacity(case.x, o["lam"], o["mean"], o["std"])
        out = _run(student_fn, case, case.x.clone(), o["lam"].clone(), o["mean"].clone(),
                   o["std"].clone())
        got = _as_tensor(out, case, expected, {
            (): "Return one capacity per element, shaped like R, not their sum.",
        })
        if _close(got, expected, 1e-4):
            return None
        return Feedback(False, (
            f"{case.name}: the first values should be {_numbers(expected.flatten()[:4])}, "
            f"yours are {_numbers(got.flatten()[:4])}.\nHint: {_capacity_hint(got, case)}"))

    return _over_cases(cases, attempt, (
        f"right on all {len(cases)} cases (a CNN's features, text-shaped features, lambda "
        f"at 0 and near 1)"))


BETA_EFFECTS = {"a": "more bits with beta = 100", "b": "fewer than a tenth of the bits",
                "c": "about the same (within a factor 2)"}
IBA_LAYERS = {"a": "features.relu1", "b": "features.relu3", "c": "features.relu5"}


def _iba_bits(layer: str, beta: float, n: int = 4) -> torch.Tensor:
    """IBA's maps (bits per pixel) of the first n canvases at `layer` (statistics over 400
    training canvases, seed 0)."""
    model = zoo.load_model("cluttered-digits", "cpu")
    train = zoo.dataset("cluttered-digits", split="train", n=400)
    test = zoo.dataset("cluttered-digits", n=n)
    stats = bottleneck.feature_stats(model, layer, train.x)
    return bottleneck.iba(model, test.x, test.y, layer, beta=beta, stats=stats,
                          generator=torch.Generator().manual_seed(0))


def check_beta(prediction, bits) -> Feedback:
    """Check exercise 2 of chapter 07: `bits` {1: ..., 100: ...}, the mean total bits of IBA's
    maps at 'features.relu3' on the first 4 canvases for beta 1 and 100, and the `prediction`
    (a letter of BETA_EFFECTS), against the course's own measurement."""
    letter = _letter(prediction, BETA_EFFECTS)
    if isinstance(letter, Feedback):
        return letter
    if _unfinished(bits):
        return _not_done("measure the bits for beta = 1 and beta = 100")
    if not isinstance(bits, dict) or sorted(bits) != [1, 100]:
        return Feedback(False, "bits must be a dict with the keys 1 and 100")
    measured = {beta: _iba_bits("features.relu3", beta).flatten(1).sum(1).mean().item()
                for beta in (1, 100)}
    for beta in (1, 100):
        try:
            value = float(bits[beta])
        except (TypeError, ValueError):
            return Feedback(False, f"bits[{beta}] must be a number, got {bits[beta]!r}")
        if abs(value - measured[beta]) > 1e-3 * measured[beta]:
            return Feedback(False, (
                f"your bits for beta = {beta} are {value:.1f}; measured they are "
                f"{measured[beta]:.1f}: each map's sum over its pixels, averaged over the "
                f"4 canvases."))
    ratio = measured[100] / measured[1]
    truth = "a" if ratio > 2 else "b" if ratio < 0.1 else "c"
    if letter != truth:
        return Feedback(False, (
            f"your measurements are right, your prediction is not: you predicted ({letter}) "
            f"{BETA_EFFECTS[letter]}; beta = 100 lets {ratio:.3f} times the bits through, "
            f"({truth}) {BETA_EFFECTS[truth]}. Beta prices every nat that passes: the larger "
            f"it is, the less the bottleneck lets through (chapter 07, '2 · IBA')."))
    return Feedback(True, f"right: {measured[1]:.0f} bits at beta 1, {measured[100]:.0f} at 100")


def check_best_layer(prediction, shares) -> Feedback:
    """Check exercise 3 of chapter 07: `shares` {letter: mean share of IBA's map on the digit
    (beta 10, first 4 canvases)} for the layers of IBA_LAYERS, and the `prediction` (the
    letter of the layer with the largest share), against the course's own measurement."""
    letter = _letter(prediction, IBA_LAYERS)
    if isinstance(letter, Feedback):
        return letter
    if _unfinished(shares):
        return _not_done("measure the share on the digit at every layer")
    if not isinstance(shares, dict) or sorted(shares) != sorted(IBA_LAYERS):
        return Feedback(False, f"shares must be a dict with the keys {sorted(IBA_LAYERS)}")
    mask = zoo.dataset("cluttered-digits", n=4).mask
    measured = {k: local_global.mass_inside(_iba_bits(layer, 10), mask).mean().item()
                for k, layer in IBA_LAYERS.items()}
    for key in sorted(IBA_LAYERS):
        try:
            value = float(shares[key])
        except (TypeError, ValueError):
            return Feedback(False, f"shares[{key!r}] must be a number, got {shares[key]!r}")
        if abs(value - measured[key]) > 1e-3:
            return Feedback(False, (
                f"your share at {IBA_LAYERS[key]} is {value:.3f}; measured it is "
                f"{measured[key]:.3f}: local_global.mass_inside(maps, mask), averaged."))
    best = max(measured, key=measured.get)
    if letter != best:
        return Feedback(False, (
            f"your measurements are right, your prediction is not: you predicted ({letter}) "
            f"{IBA_LAYERS[letter]}, {measured[letter]:.0%} on the digit; the best is ({best}) "
            f"{IBA_LAYERS[best]}, {measured[best]:.0%}. Late layers are coarse and spill over "
            f"the digit's edges; early ones respond to every stroke, the clutter's too "
            f"(chapter 07, '3 · Its two failures')."))
    return Feedback(True, "right: " + ", ".join(f"{IBA_LAYERS[k]} {v:.0%}"
                                                for k, v in measured.items()))


EARLY_WINS = 0.05  # the early layer's share on the digit must beat the middle one's by this


def _iba_share(model, x: torch.Tensor, target: int, mask: torch.Tensor, layer: str) -> float:
    """The share of IBA's map of `target` (its declared defaults, noise seeded with 0, the
    statistics of 1,000 training canvases) that falls on the digit: as the layers explorer
    of chapter 07 measures it (`evaluation.energy_in_mask`)."""
    train = zoo.dataset("cluttered-digits", split="train", n=1000).x
    stats = bottleneck.feature_stats(model, layer, train)
    maps = bottleneck.iba(model, x, target, layer, stats=stats,
                          generator=torch.Generator().manual_seed(0))
    return evaluation.energy_in_mask(maps, mask > 0).item()


def check_early_layer_wins(found, n_samples: int = 64) -> Feedback:
    """Check the "break it" exercise of chapter 07: `found = dict(sample=...)`, a
    cluttered-digits canvas (the explorer's sample number) on which IBA at the early layer
    `features.relu1` puts a larger share of its map on the digit than at the middle one,
    `features.relu3`, by at least EARLY_WINS; explaining the label, as the explorer does by
    default."""
    if _unfinished(found):
        return _not_done("fill in the sample you found in the layers explorer")
    if (problem := _found_keys(found, ("sample",), "dict(sample=0)")) is not None:
        return problem
    sample = found["sample"]
    if (problem := _sample_index(sample, n_samples)) is not None:
        return problem
    data = zoo.dataset("cluttered-digits", n=sample + 1)[sample]
    model = zoo.load_model("cluttered-digits", "cpu")
    early, middle = (_iba_share(model, data.x, int(data.y[0]), data.mask, layer)
                     for layer in ("features.relu1", "features.relu3"))
    where = (f"sample {sample}: IBA puts {early:.0%} of its map on the digit at relu1 and "
             f"{middle:.0%} at relu3")
    if early < middle + EARLY_WINS:
        return Feedback(False, (
            f"{where}; the early layer must win by at least {EARLY_WINS:.0%}. Step through the "
            f"canvases in the layers explorer and compare the first two bars."))
    return Feedback(True, (
        f"{where}. On this canvas the early layer wins: the answer to exercise 3 holds on "
        f"average, not on every canvas. Each layer has its failure, and which one shows "
        f"depends on the canvas: judge a layer on many inputs, never on one (chapter 07, "
        f"'3 · Its two failures')."))


# =============================================================== chapter 08: Shapley values
def quadrants(height: int = 64, width: int = 64) -> torch.Tensor:
    """Player ids (H, W) of the four quadrants of an image: 0 top left, 1 top right, 2 bottom
    left, 3 bottom right."""
    rows = (torch.arange(height) >= height // 2).long()[:, None]
    cols = (torch.arange(width) >= width // 2).long()[None, :]
    return 2 * rows + cols


def _game_cases() -> list[Case]:
    """The hidden games of `check_shapley_by_enumeration`, as v (2^d,) over the coalitions of
    `shapley.all_coalitions`: a zoo model on a canvas with its quadrants as players, the
    glove game, a random game of 6 players with v(empty) != 0."""
    model = zoo.load_model("cluttered-digits", "cpu")
    data = zoo.dataset("cluttered-digits", n=1)
    z = shapley.all_coalitions(4)
    with torch.no_grad():
        inputs = shapley.coalition_inputs(data.x[0], torch.zeros_like(data.x[0]),
                                          quadrants()[None], z)
        model_game = model(inputs)[:, int(data.y[0])].double()
    glove = shapley.all_coalitions(3)
    glove_game = (glove[:, 0] & (glove[:, 1] | glove[:, 2])).double()
    random_game = torch.rand(2 ** 6, generator=torch.Generator().manual_seed(10)).double()
    return [
        Case("case 1 of 3 (the cluttered-digits model's logit on a canvas, its four quadrants "
             "as players, absent quadrants black)", None, model_game, None, {}),
        Case("case 2 of 3 (the glove game: player 0 holds a left glove, players 1 and 2 right "
             "ones; a pair is worth 1)", None, glove_game, None, {}),
        Case("case 3 of 3 (a random game of 6 players, v(empty) not 0)", None, random_game,
             None, {}),
    ]


def _game(v: torch.Tensor) -> Callable:
    """The value function of a game table: v(S) for a collection S of player indices."""
    def value(coalition) -> float:
        return float(v[sum(1 << int(i) for i in set(coalition))])
    return value


def _shapley_hint(got: torch.Tensor, v: torch.Tensor) -> str:
    d = round(math.log2(len(v)))
    z = shapley.all_coalitions(d)
    full, empty = v[-1].item(), v[0].item()
    singles = torch.stack([v[1 << i] for i in range(d)]) - empty
    lasts = full - torch.stack([v[(2 ** d - 1) ^ (1 << i)] for i in range(d)])
    banzhaf = torch.stack([(v[z[:, i]] - v[~z[:, i]]).mean() for i in range(d)])
    for candidate, hint in [
        (banzhaf, "you averaged the marginal contributions over the subsets equally (that is "
                  "the Banzhaf value); Shapley weights a subset S of size s by "
                  "s! (d - s - 1)! / d!, the chance that exactly S comes before i."),
        (singles, "that is each player's contribution alone, v({i}) - v(empty): Shapley "
                  "averages its contribution to every coalition."),
        (lasts, "that is each player's contribution when it joins last, v(N) - v(N \\ {i})."),
        (-shapley.shapley_from_values(v), "your values have the wrong sign: "
                                           "v(S u {i}) - v(S)."),
    ]:
        if _close(got, candidate.double(), 1e-6):
            return hint
    return (f"your values sum to {got.sum().item():.4g}; Shapley values always sum to "
            f"v(N) - v(empty) = {full - empty:.4g} (efficiency). Compare with chapter 08, "
            f"'2 · The Shapley value'.")


def check_shapley_by_enumeration(student_fn: Callable) -> Feedback:
    """Check `student_fn(value, d) -> (d,)`, the Shapley values of a game of d players whose
    value function `value(S)` takes a collection of player indices,

        phi_i = sum_{S not containing i} |S|! (d - |S| - 1)! / d! [ v(S u {i}) - v(S) ],

    against the course's `shapley.shapley_from_values` on three hidden games."""
    if _unfinished(student_fn):
        return _not_done("define shapley_by_enumeration")
    cases = _game_cases()

    def attempt(case: Case) -> Feedback | None:
        v = case.x
        d = round(math.log2(len(v)))
        expected = shapley.shapley_from_values(v)
        out = _run(student_fn, case, _game(v), d)
        if isinstance(out, (list, tuple)) and all(isinstance(t, (int, float)) for t in out):
            out = torch.tensor(out, dtype=torch.float64)
        got = _as_tensor(out, case, expected)
        if _close(got, expected, 1e-6):
            return None
        return Feedback(False, (f"{case.name}: expected {_numbers(expected)}, yours are "
                                f"{_numbers(got)}.\nHint: {_shapley_hint(got, v)}"))

    return _over_cases(cases, attempt, (
        f"right on all {len(cases)} games (a model's logit over quadrants, the glove game, "
        f"a random game of 6 players)"))


EFFICIENCY = {"a": "S_c(x)", "b": "S_c(x) - S_c(baseline)", "c": "1"}


def check_efficiency(prediction, total) -> Feedback:
    """Check exercise 2 of chapter 08: `total`, the sum of the four quadrants' exact Shapley
    values for the first cluttered-digits canvas (black baseline, its label), and the
    `prediction` (a letter of EFFICIENCY), against the course's own measurement."""
    letter = _letter(prediction, EFFICIENCY)
    if isinstance(letter, Feedback):
        return letter
    if _unfinished(total):
        return _not_done("measure the sum of the Shapley values")
    try:
        value = float(total)
    except (TypeError, ValueError):
        return Feedback(False, f"total must be a number, got {type(total).__name__}")
    model = zoo.load_model("cluttered-digits", "cpu")
    data = zoo.dataset("cluttered-digits", n=1)
    groups = quadrants()
    phi = shapley.player_values(shapley.exact_shapley(model, data.x, 0.0, data.y, groups),
                                groups)
    measured = phi.sum().item()
    with torch.no_grad():
        scores = model(torch.cat([data.x, torch.zeros_like(data.x)]))[:, int(data.y[0])]
    if abs(value - measured) > 1e-3 * (1 + abs(measured)):
        return Feedback(False, (
            f"your total is {value:.4f}; the four players' values sum to {measured:.4f}. The "
            f"attribution is painted on every pixel of a player: read the four values back "
            f"with shapley.player_values(attribution, groups) before summing."))
    candidates = {"a": scores[0].item(), "b": (scores[0] - scores[1]).item(), "c": 1.0}
    truth = min(candidates, key=lambda k: abs(candidates[k] - measured))
    if letter != truth:
        return Feedback(False, (
            f"your measurement is right, your prediction is not: you predicted ({letter}) "
            f"{EFFICIENCY[letter]} = {candidates[letter]:.4f}; the values sum to "
            f"{measured:.4f}, ({truth}) {EFFICIENCY[truth]}: efficiency, the whole change "
            f"from the empty coalition to all players is shared out (chapter 08, '2 · The "
            f"Shapley value')."))
    return Feedback(True, f"right: the values sum to {measured:.4f} = S_c(x) - S_c(black)")


def check_alone_misleads(found) -> Feedback:
    """Check the "break it" exercise of chapter 08: `found`, a game of 3 players as a dict
    {coalition (a tuple of player indices): value} over all 8 coalitions, in which the player
    with the largest contribution alone, v({i}) - v(empty), is not the player with the
    largest Shapley value (each a single player)."""
    if _unfinished(found):
        return _not_done("write the game's 8 values")
    z = shapley.all_coalitions(3)
    coalitions = [tuple(i for i in range(3) if row[i]) for row in z.tolist()]
    if not isinstance(found, dict):
        return Feedback(False, "found must be a dict {coalition: value}, e.g. {(): 0, (0,): 1, "
                               "..., (0, 1, 2): 5}")
    given = {tuple(sorted(k)) if isinstance(k, (tuple, list, set, frozenset)) else k: val
             for k, val in found.items()}
    missing = [c for c in coalitions if c not in given]
    if missing:
        return Feedback(False, f"give a value to every coalition of 3 players; missing: "
                               f"{missing}")
    try:
        v = torch.tensor([float(given[c]) for c in coalitions], dtype=torch.float64)
    except (TypeError, ValueError):
        return Feedback(False, "every value must be a number")
    phi = shapley.shapley_from_values(v)
    alone = torch.stack([v[1 << i] for i in range(3)]) - v[0]
    best_alone, best_phi = alone.argmax().item(), phi.argmax().item()
    ties = (alone == alone.max()).sum() > 1 or (phi == phi.max()).sum() > 1
    where = f"alone {_numbers(alone)}, Shapley {_numbers(phi)}"
    if ties:
        return Feedback(False, f"{where}: make the largest of each unique.")
    if best_alone == best_phi:
        return Feedback(False, (
            f"{where}: player {best_phi} leads both. Give another player little alone but "
            f"much together with the others."))
    return Feedback(True, (
        f"{where}: player {best_alone} leads alone, player {best_phi} by Shapley. What a "
        f"player adds depends on who is already there; a one-at-a-time test misses the "
        f"interactions (chapter 08, '1 · The game')."))


SHAPLEY_MODELS = ("breast-cancer", "breast-cancer-shapnet")  # the coalition explorer's


def check_alone_misleads_on_a_patient(found, n_samples: int = 64) -> Feedback:
    """Check the "break it" exercise of chapter 08 on the coalition explorer: `found =
    dict(model=..., sample=...)`, a breast-cancer model and patient (the explorer's sample
    number) for which, with the explorer's six players and every absent measurement at the
    average patient (0), the player that adds most to the empty coalition alone is not the
    player with the largest Shapley value; the game of the label's score, as the explorer
    plays it by default."""
    from .widgets.shapley import GROUPS, coalition_values, player_groups

    if (problem := _picked(found, "model", SHAPLEY_MODELS,
                           "dict(model='breast-cancer', sample=0)",
                           "fill in the model and the patient you found in the explorer",
                           n_samples)) is not None:
        return problem
    name, sample = found["model"], found["sample"]
    data = zoo.dataset("breast-cancer", n=sample + 1)
    model, x = zoo.load_model(name, "cpu"), data.x[sample:sample + 1]
    groups, names = player_groups(data.features, GROUPS)
    v = coalition_values(model, x, int(data.y[sample]), groups)  # the label's score
    alone = torch.stack([v[1 << k] - v[0] for k in range(len(names))])
    phi = shapley.shapley_from_values(v)
    first, best = int(alone.argmax()), int(phi.argmax())
    where = (f"{name}, patient {sample}: alone, {names[first]} adds most "
             f"({alone[first]:+.3f}); the largest Shapley value is that of {names[best]} "
             f"({phi[best]:+.3f})")
    if first == best:
        return Feedback(False, (
            f"{where}: the same player. Switch every player out of the coalition: the bars "
            f"then show what each adds alone; compare the tallest with the dashed Shapley "
            f"values below, patient after patient."))
    return Feedback(True, (
        f"{where}. Alone, a player gets credit it shares with others once they are there: "
        f"the Shapley value averages what it adds to every coalition (chapter 08, "
        f"'1 · The game')."))


# =============================================================== chapter 09: evaluation
def _channel_mean(x: torch.Tensor) -> torch.Tensor:
    """ROAR's fill: the mean of each channel over a batch and its pixels, (C, 1, 1)."""
    return x.mean(dim=(0, *range(2, x.ndim))).view(-1, *[1] * (x.ndim - 2))


def _removal_cases() -> list[Case]:
    """The hidden cases of `check_remove_top`: 2 random 3 x 5 x 7 inputs with signed
    importance; 3 random 2 x 7 x 9 inputs with whole-number importance (many ties); one
    1 x 4 x 4 input at the ends, fractions 0 and 1."""
    g = torch.Generator().manual_seed(9)
    return [
        Case("case 1 of 3 (2 random 3 x 5 x 7 inputs, signed importance, fraction 0.37)",
             None, torch.rand(2, 3, 5, 7, generator=g), None,
             dict(importance=torch.randn(2, 3, 5, 7, generator=g), fractions=(0.37,))),
        Case("case 2 of 3 (3 random 2 x 7 x 9 inputs, whole-number importance with many ties, "
             "fraction 0.35)", None, torch.rand(3, 2, 7, 9, generator=g), None,
             dict(importance=torch.randint(-3, 4, (3, 2, 7, 9), generator=g).float(),
                  fractions=(0.35,))),
        Case("case 3 of 3 (one random 1 x 4 x 4 input, fractions 0 and 1)", None,
             torch.rand(1, 1, 4, 4, generator=g), None,
             dict(importance=torch.randn(1, 1, 4, 4, generator=g), fractions=(0.0, 1.0))),
    ]


def _removal_hint(got: torch.Tensor, x: torch.Tensor, importance: torch.Tensor,
                  fraction: float, fill: torch.Tensor) -> str:
    """What the student's removal says about the mistake: each typical one, made with the
    course's ranking, compared with it."""
    n, c = x.shape[:2]
    per = x[0].numel()
    count = round(fraction * per)
    ranks = evaluation.feature_ranks(importance)

    def replaced(ranks: torch.Tensor, k: int) -> torch.Tensor:  # the values of rank < k
        return evaluation.remove_features(x, ranks, k / per, fill)

    for candidate, hint in [
        (evaluation.remove_features(x, ranks, fraction, fill, keep=True),
         "you kept the top fraction and replaced the rest: that is KAR (Keep And Retrain). "
         "ROAR removes the top fraction and keeps the rest."),
        (replaced(evaluation._ranks(importance.reshape(n, -1)).view(x.shape), count),
         "you ranked by the signed importance; rank by |importance|: a large negative value "
         "matters as much as a large positive one."),
        (replaced(evaluation._ranks(importance.abs().reshape(1, -1)).view(x.shape),
                  round(fraction * x.numel())),
         "you ranked the values of the whole batch together; rank each example's values on "
         "their own, and remove the top fraction of each example."),
        (replaced(evaluation._ranks(importance.abs().reshape(n * c, -1)).view(x.shape),
                  round(fraction * x[0, 0].numel())),
         "you ranked each channel on its own; rank all the values of an example together "
         "(every channel of every pixel, as ROAR's code does)."),
        (replaced(ranks, math.floor(fraction * per)),
         f"you replaced {math.floor(fraction * per)} values per example: you rounded "
         f"{fraction} x {per} = {fraction * per:.4g} down; use round(), {count}."),
        (replaced(ranks, math.ceil(fraction * per)),
         f"you replaced {math.ceil(fraction * per)} values per example: you rounded "
         f"{fraction} x {per} = {fraction * per:.4g} up; use round(), {count}."),
    ]:
        if torch.equal(got, candidate):
            return hint
    counts = (got != x).reshape(n, -1).sum(1).tolist()
    if counts == [count] * n:
        return ("you replaced the right number of values, but not the same ones: rank by "
                "|importance| over each example, ties to the lower index (a stable sort, "
                "torch.sort(..., stable=True)), as evaluation.feature_ranks.")
    return (f"you replaced {counts} values of the examples, the course {count} of each: the "
            f"top round(fraction x {per}) values by |importance|, set to fill (chapter 09, "
            f"'2 · ROAR and KAR on cluttered-digits').")


def check_remove_top(student_fn: Callable) -> Feedback:
    """Check `student_fn(x, importance, fraction, fill) -> x'`, ROAR's removal: in each
    example, the round(fraction x its number of values) values with the largest |importance|
    (ties: the lower index) replaced by `fill` (C, 1, 1), x left unchanged, against the
    course's `evaluation.remove_features(x, evaluation.feature_ranks(importance), ...)`."""
    if _unfinished(student_fn):
        return _not_done("define remove_top")
    cases = _removal_cases()

    def attempt(case: Case) -> Feedback | None:
        x, importance = case.x, case.options["importance"]
        fill = _channel_mean(x)
        for fraction in case.options["fractions"]:
            expected = evaluation.remove_features(x, evaluation.feature_ranks(importance),
                                                  fraction, fill)
            given = x.clone()
            out = _run(student_fn, case, given, importance.clone(), fraction, fill.clone())
            if not torch.equal(given, x):
                return Feedback(False, (
                    f"{case.name}: your function changed x in place. Return a new tensor "
                    f"(torch.where(...) or x.clone() first): ROAR modifies copies of the "
                    f"train and test sets, and the next fraction starts from the whole x."))
            got = _as_tensor(out, case, expected)
            if torch.equal(got, expected):
                continue
            count = round(fraction * x[0].numel())
            return Feedback(False, (
                f"{case.name}, fraction {fraction}: the course replaces {count} of the "
                f"{x[0].numel()} values of each example; {int((got != expected).sum())} of "
                f"your {x.numel()} values differ from it.\n"
                f"Hint: {_removal_hint(got, x, importance, fraction, fill)}"))
        return None

    return _over_cases(cases, attempt, (
        f"right on all {len(cases)} cases (odd shapes, signed importance, ties, fractions 0 "
        f"and 1), x left as it was"))


TOY_RETRAINING = {"a": "retrained is higher, by more than 0.01",
                  "b": "the two are within 0.01 of each other",
                  "c": "not retrained is higher, by more than 0.01"}
TOY_REMOVED = 12  # features removed of 16, by the inverted ranking
TOY_SEEDS = 2


def _toy_accuracies() -> dict[str, float]:
    """{"retrained": ..., "not retrained": ...}: the toy set's accuracy with the first
    TOY_REMOVED features of the inverted ranking removed, mean over TOY_SEEDS seeds."""
    toy = evaluation.toy_roar(seeds=TOY_SEEDS, removed=(TOY_REMOVED,), rankings=("inverted",))
    means = toy.groupby("retrained").accuracy.mean()
    return {"retrained": means[True], "not retrained": means[False]}


def check_toy_retraining(prediction, accuracies) -> Feedback:
    """Check exercise 2 of chapter 09: `accuracies` {"retrained": ..., "not retrained": ...},
    the toy set's accuracy with TOY_REMOVED of 16 features removed by the inverted ranking,
    mean over TOY_SEEDS seeds, and the `prediction` (a letter of TOY_RETRAINING), against
    the course's own measurement with `evaluation.toy_roar`."""
    letter = _letter(prediction, TOY_RETRAINING)
    if isinstance(letter, Feedback):
        return letter
    if _unfinished(accuracies):
        return _not_done("measure the accuracy retrained and not retrained")
    names = ["not retrained", "retrained"]
    if not isinstance(accuracies, dict) or sorted(accuracies) != names:
        return Feedback(False, f"accuracies must be a dict with the keys {names}")
    measured = _toy_accuracies()
    for name in names:
        try:
            value = float(accuracies[name])
        except (TypeError, ValueError):
            return Feedback(False, f"accuracies[{name!r}] must be a number, got "
                                   f"{accuracies[name]!r}")
        if abs(value - measured[name]) > 1e-4:
            return Feedback(False, (
                f"your accuracy {name} is {value:.4f}; measured it is {measured[name]:.4f}: "
                f"toy_roar(seeds={TOY_SEEDS}, removed=({TOY_REMOVED},), rankings=('inverted',)), "
                f"the rows with retrained {name == 'retrained'}, averaged over the seeds."))
    gain = measured["retrained"] - measured["not retrained"]
    truth = "a" if gain > 0.01 else "c" if gain < -0.01 else "b"
    said = (f"retrained {measured['retrained']:.3f}, not retrained "
            f"{measured['not retrained']:.3f}")
    if letter != truth:
        return Feedback(False, (
            f"your measurements are right, your prediction is not: you predicted ({letter}) "
            f"{TOY_RETRAINING[letter]}; {said}, ({truth}) {TOY_RETRAINING[truth]}. The 12 "
            f"features removed carry no label, yet the model fit to the full data used them "
            f"to cancel the distractor: without retraining, removing them costs accuracy "
            f"(chapter 09, '1 · The toy set')."))
    return Feedback(True, (
        f"right: {said}. Removal without retraining punishes the removal of features that "
        f"carry no information, so it cannot tell a good ranking from a bad one."))


def _oracle_curve() -> dict[float, float]:
    """{fraction removed: the oracle's ROAR accuracy, mean over seeds} of the shipped sweep."""
    table = evaluation.shipped_table("roar-cluttered-digits")
    return table[table.estimator == "oracle"].groupby("fraction").accuracy.mean().to_dict()


def check_oracle_climbs_back(lowest, climb) -> Feedback:
    """Check exercise 3 of chapter 09: `lowest` dict(fraction=..., accuracy=...), the fraction
    at which the oracle's ROAR accuracy (the shipped sweep, mean over its seeds) is lowest and
    that accuracy, and `climb`, the accuracy at the largest fraction minus the lowest one."""
    if _unfinished(lowest) or _unfinished(climb):
        return _not_done("find the oracle's lowest point and its climb back")
    if not isinstance(lowest, dict) or sorted(lowest) != ["accuracy", "fraction"]:
        return Feedback(False, "lowest must be a dict with the keys 'fraction' and 'accuracy'")
    try:
        fraction, accuracy, rise = (float(lowest["fraction"]), float(lowest["accuracy"]),
                                    float(climb))
    except (TypeError, ValueError):
        return Feedback(False, "the fraction, the accuracy and the climb must be numbers")
    curve = _oracle_curve()
    bottom = min(curve, key=curve.get)
    last = max(curve)
    said = ", ".join(f"{f:.0%}: {a:.3f}" for f, a in sorted(curve.items()))
    if abs(fraction - bottom) > 1e-6:
        return Feedback(False, (
            f"the oracle is lowest at {bottom:.0%} removed, not {fraction:.0%} (mean over the "
            f"seeds: {said}). Average the two seeds of each fraction before you look for the "
            f"minimum."))
    if abs(accuracy - curve[bottom]) > 1e-4:
        return Feedback(False, f"the oracle's accuracy at {bottom:.0%} is {curve[bottom]:.4f} "
                               f"(mean over the seeds), yours is {accuracy:.4f}")
    if abs(rise - (curve[last] - curve[bottom])) > 1e-4:
        return Feedback(False, (
            f"the climb is the accuracy at {last:.0%} minus the lowest: {curve[last]:.4f} - "
            f"{curve[bottom]:.4f} = {curve[last] - curve[bottom]:.4f}; yours is {rise:.4f}"))
    return Feedback(True, (
        f"right: the oracle falls to {curve[bottom]:.3f} at {bottom:.0%} and climbs back by "
        f"{curve[last] - curve[bottom]:.3f} ({said}). With most of the canvas removed, the "
        f"place of the digit is the one region with no values left, and its shape is the "
        f"digit: ROAR's removal leaks through the shape of what it removes (chapter 09, "
        f"'The shipped sweep'; ROAD, section 4, closes the leak)."))


SURVIVES = 0.5  # Spearman with the trained model's map, every layer randomised, at least


def check_survives_randomisation(found, n_samples: int = 64) -> Feedback:
    """Check the "break it" exercise of chapter 09 on the sanity-check explorer: `found =
    dict(method=..., sample=...)`, a method of the explorer and a cluttered-digits canvas
    (its sample number) whose map, once every layer of the model has been re-initialised
    (`evaluation.sanity_check`, |a|, seed 0), still has a Spearman correlation of at least
    SURVIVES with the trained model's map."""
    from .widgets.evaluation import SANITY_METHODS

    if (problem := _picked(found, "method", SANITY_METHODS,
                           "dict(method='gradient', sample=0)",
                           "fill in the method and the sample you found in the explorer",
                           n_samples)) is not None:
        return problem
    name, sample = found["method"], found["sample"]
    data = zoo.dataset("cluttered-digits", n=sample + 1)
    model, x = zoo.load_model("cluttered-digits", "cpu"), data.x[sample:sample + 1]
    target = int(data.y[sample])  # the label, as the explorer explains by default
    method = SANITY_METHODS[name]
    noisy = "generator" in inspect.signature(method).parameters

    def explain(model, inputs, target):
        """The method as the explorer calls it: its noise drawn afresh from seed 0 at every
        step, so that only the weights change between the maps."""
        noise = {"generator": torch.Generator().manual_seed(0)} if noisy else {}
        return method(model, inputs, target, **noise)

    table = evaluation.sanity_check(model, explain, x, target,
                                    generator=torch.Generator().manual_seed(0))
    last = table[table.step == table.step.max()].spearman.mean()
    where = (f"{name}, sample {sample}: with every layer re-initialised, the map's Spearman "
             f"correlation with the trained model's map is {last:.2f}")
    if last < SURVIVES:
        return Feedback(False, (
            f"{where}, below {SURVIVES}: this map does depend on the weights. Try the other "
            f"methods and canvases in the explorer and watch the last point of the Spearman "
            f"curve."))
    why = {"Integrated Gradients": "here the factor x - x' of Integrated Gradients draws "
                                   "the canvas whatever the gradient says"}.get(
        name, "the canvas drew it, not what the model learned")
    return Feedback(True, (
        f"{where} (1: the pixels ranked as before). A map that survives the loss "
        f"of everything the model learned shows the input more than the model: {why} "
        f"(chapter 09, '5 · Sanity checks: does the map care about the model?')."))
