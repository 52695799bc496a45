"""`xai-course bench CHAPTER`: our time, the reference's time, their ratio and max |difference|.

Speed targets live here, never in timed tests: each case runs ours and the reference on
the same model and input in one run, best of `repeat` timings each.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch


@dataclasses.dataclass
class Case:
    """One comparison: `ours()` and `reference()` return attributions of the same call."""

    name: str
    ours: Callable[[], torch.Tensor]
    reference: Callable[[], torch.Tensor]
    reference_name: str


def best_time(fn: Callable[[], torch.Tensor], repeat: int) -> tuple[float, torch.Tensor]:
    """The fastest of `repeat` runs of fn (seconds) and its last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        if result.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def run(cases: list[Case], repeat: int = 3, out=print) -> list[dict]:
    """Time every case and print a table; returns its rows."""
    rows = []
    out(f"{'case':44s} {'ours (s)':>10s} {'reference (s)':>14s} {'ratio':>7s} "
        f"{'max |diff|':>11s}  reference")
    for case in cases:
        ours_s, ours = best_time(case.ours, repeat)
        ref_s, ref = best_time(case.reference, repeat)
        diff = (ours.float() - ref.float()).abs().max().item()
        row = dict(case=case.name, ours_s=ours_s, reference_s=ref_s, ratio=ours_s / ref_s,
                   max_abs_diff=diff, reference=case.reference_name)
        rows.append(row)
        out(f"{case.name:44s} {ours_s:10.4f} {ref_s:14.4f} {row['ratio']:7.2f} {diff:11.2e}  "
            f"{case.reference_name}")
    return rows


def compare(name: str, method, model, x, target, ours: dict | None = None,
            theirs: dict | None = None, note: str = "") -> Case:
    """A case for a method that declares its `.reference` (see convention.reference)."""
    ours, theirs = ours or {}, theirs or {}
    return Case(name, lambda: method(model, x, target, **ours),
                lambda: method.reference(model, x, target, **theirs),
                method.reference_name + note)


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
            f"occlusion {name} x8 w{window} s{stride}", occlusion, model, x, t,
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


CHAPTERS: dict[str, Callable[..., list[Case]]] = {
    "local-global": local_global_cases,
}
