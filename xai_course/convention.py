"""The method convention every chapter follows.

Every attribution method in the course is a plain function

    attr = method(model, inputs, target, **options) -> torch.Tensor

and this module holds the few pieces they all share:

- `check_inputs` / `check_target`: bad input gets an error that says what was wrong and
  what is valid (wrong shape, wrong dtype, NaN, a class that does not exist);
- `unchanged(model)`: a method leaves the model exactly as it found it (parameters'
  `requires_grad` flags, train/eval mode, no hooks left behind), also when it raises;
- `Option` and `options(...)`: a method declares its options once, so an explorer can build
  its controls from them instead of by hand;
- `reference(...)`: which reference implementation (xai_course/references.py) a method is
  checked against;
- `rows_per_pass`: the one batch-size policy of the methods that run the model many times.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "Option",
    "options",
    "check_inputs",
    "check_target",
    "check_model_and_inputs",
    "unchanged",
    "class_scores",
    "forward",
    "rows_per_pass",
    "check_positive_int",
    "model_device",
    "reference",
    "model_state",
    "same_state",
]


# --------------------------------------------------------------------------- options
@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a method, described well enough to build a control for it.

    kind: "int", "float", "choice" or "bool". `low`/`high`/`step` bound numbers,
    `choices` lists the valid values of a choice; `log=True` asks for a log-scale slider.
    `expensive=True` marks options whose change costs a recomputation worth waiting for
    (the explorer then updates on release, not while dragging).
    """

    name: str
    kind: str
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple = ()
    log: bool = False
    expensive: bool = True

    def __post_init__(self):
        if self.kind not in ("int", "float", "choice", "bool"):
            raise ValueError(f"Option {self.name!r}: kind must be int, float, choice or bool, "
                             f"got {self.kind!r}")
        if self.kind == "choice" and self.default not in self.choices:
            raise ValueError(f"Option {self.name!r}: default {self.default!r} is not one of "
                             f"{self.choices}")

    def validate(self, value):
        """Return `value` if valid for this option, else raise a ValueError saying why."""
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{self.name} must be one of {list(self.choices)}, got {value!r}")
        elif self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{self.name} must be a number, got {value!r}")
            if self.kind == "int" and int(value) != value:
                raise ValueError(f"{self.name} must be an integer, got {value!r}")
            if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high
            ):
                raise ValueError(
                    f"{self.name} must be in [{self.low}, {self.high}], got {value!r}"
                )
        return value


def options(*specs: Option) -> Callable:
    """Attach the declared options to a method as `method.options` (a dict by name)."""

    def attach(fn):
        fn.options = {spec.name: spec for spec in specs}
        return fn

    return attach


# --------------------------------------------------------------------------- checks
def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a parameter-free model)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def check_inputs(inputs, *, ndim: int | Sequence[int] | None = None, name: str = "inputs",
                 floating: bool = True) -> torch.Tensor:
    """Check that `inputs` is a batch-first tensor of the right kind, and return it.

    Raises TypeError for a non-tensor or wrong dtype, ValueError for a wrong number of
    dimensions, an empty batch, or NaN / infinite values.
    """
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (batch first, shape (N, ...)), "
                        f"got {type(inputs).__name__}")
    if floating and not inputs.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (e.g. torch.float32), got "
                        f"{inputs.dtype}; convert with inputs.float()")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if inputs.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimensions "
                             f"(batch first), got shape {tuple(inputs.shape)}")
    if inputs.ndim == 0 or inputs.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example, got shape "
                         f"{tuple(inputs.shape)}")
    if floating and not torch.isfinite(inputs).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return inputs


def check_model_and_inputs(model: nn.Module, inputs, **kwargs) -> torch.Tensor:
    """`check_inputs`, plus: `model` is an nn.Module and `inputs` are on the model's device."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = check_inputs(inputs, **kwargs)
    device = model_device(model)
    if inputs.device != device:
        raise ValueError(f"inputs are on {inputs.device} but the model is on {device}; move "
                         f"one of them, e.g. inputs.to({str(device)!r})")
    return inputs


def check_target(target, n: int, num_classes: int, device: torch.device) -> torch.Tensor:
    """Turn `target` (an int, a sequence of n ints or a LongTensor of n) into a LongTensor (n,).

    Out of range: a ValueError that names the number of classes.
    """
    if isinstance(target, torch.Tensor):
        if target.is_floating_point() or target.dtype == torch.bool:
            raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
        t = target.reshape(-1).to(device=device, dtype=torch.long)
    elif isinstance(target, bool):
        raise TypeError("target must be an int class index, not a bool")
    elif isinstance(target, int):
        t = torch.full((n,), target, dtype=torch.long, device=device)
    elif isinstance(target, Sequence) and not isinstance(target, str):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in target):
            raise TypeError(f"target must be an int or a sequence of ints, got {target!r}")
        t = torch.tensor(list(target), dtype=torch.long, device=device)
    else:
        raise TypeError(f"target must be an int, a sequence of {n} ints or a LongTensor of "
                        f"{n}, got {type(target).__name__}")
    if t.numel() == 1 and n > 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"target has {t.numel()} entries but the batch has {n} examples")
    bad = (t < 0) | (t >= num_classes)
    if bad.any():
        raise ValueError(f"target {t[bad][0].item()} is out of range: the model has "
                         f"{num_classes} classes (valid targets are 0..{num_classes - 1})")
    return t


def forward(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """model(inputs), with a clear error when the model cannot take inputs of this shape."""
    try:
        return model(inputs)
    except RuntimeError as error:
        if "shape" not in str(error) and "size" not in str(error):
            raise
        raise ValueError(f"the model cannot take inputs of shape {tuple(inputs.shape)} "
                         f"({error}); check the input size and number of channels the model "
                         f"expects") from error


# Input values one pass takes: with gradients (activations kept for the backward pass) and
# without (inference mode). `xai-course bench` measures what these choices cost.
BACKWARD_VALUES = 800_000  # 5 images of 3 x 224 x 224
FORWARD_VALUES = 1_250_000  # 8 images of 3 x 224 x 224
GPU_SCALE = 5  # a GPU takes batches this many times larger


def rows_per_pass(inputs: torch.Tensor, rows: int | None = None, backward: bool = True) -> int:
    """How many rows (inputs of the shape of one example) one forward pass should take, for
    the methods that run the model many times (IG's path points, SmoothGrad's noisy copies,
    occlusion's and Score-CAM's masked copies, LIME's samples).

    At most BACKWARD_VALUES input values a pass when gradients flow back (FORWARD_VALUES
    without), times GPU_SCALE on a GPU, and at least one row. On a CPU several moderate
    passes beat one huge one, whose activations do not fit in the caches; and memory stays
    bounded. A 3 x 224 x 224 image goes 5 rows a pass with gradients, 8 without; a 1 x 32 x 32
    digit 781 with gradients. rows: how many there are in all; they are then split into
    equal passes (25 rows at most 6 a pass: 5 passes of 5).
    """
    per_row = max(1, inputs[0].numel())
    budget = BACKWARD_VALUES if backward else FORWARD_VALUES
    if inputs.device.type == "cuda":
        budget *= GPU_SCALE
    most = max(1, budget // per_row)
    if rows is None:
        return most
    check_positive_int(rows, "rows")
    most = min(rows, most)
    return math.ceil(rows / math.ceil(rows / most))


def check_positive_int(value, name: str, allow_none: bool = False):
    """Return `value` if it is a positive int (not a bool), or None when `allow_none`; else raise
    a ValueError that names the option and what is valid."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        valid = "a positive int or None" if allow_none else "a positive int"
        raise ValueError(f"{name} must be {valid}, got {value!r}")
    return value


def check_number(value, name: str, low: float = 0.0, strict: bool = False) -> float:
    """Return `value` if it is a finite number >= low (> low when `strict`); else a ValueError
    that names the option and what is valid."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a number {'>' if strict else '>='} {low}, got {value!r}")
    return value


def check_choice(value, name: str, choices: Sequence) -> str:
    """Return `value` if it is one of `choices`; else a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_count(value, name: str) -> int:
    """Return `value` if it is an int >= 0 (0 meaning off); else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0 (0: off), got {value!r}")
    return value


def check_module(model, name: str = "model") -> nn.Module:
    """Return `model` if it is an nn.Module; else a TypeError that names what was given."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def class_scores(model: nn.Module, inputs: torch.Tensor, target) -> torch.Tensor:
    """Forward `inputs`, check `target` against the model's output and return its scores (N,).

    The score is the model's output (the logit) for the target class, as in Captum.
    """
    output = forward(model, inputs)
    if output.ndim != 2:
        raise ValueError(f"the model must return (N, classes) scores, got shape "
                         f"{tuple(output.shape)}")
    t = check_target(target, inputs.shape[0], output.shape[1], inputs.device)
    return output.gather(1, t[:, None])[:, 0]


# --------------------------------------------------------------------------- unchanged
def _hook_dicts(module: nn.Module) -> tuple[dict, ...]:
    """A module's own hook registries (forward, forward-pre, backward, backward-pre)."""
    return (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks,
            getattr(module, "_backward_pre_hooks", {}))


def _hook_counts(model: nn.Module) -> list[tuple]:
    return [tuple(len(d) for d in _hook_dicts(m)) for m in model.modules()]


@contextlib.contextmanager
def unchanged(model: nn.Module):
    """Run a block and put the model back exactly as it was, also if the block raises.

    Restores every module's train/eval mode, its buffers (a forward pass in train mode
    updates BatchNorm's running statistics), every parameter's `requires_grad` flag,
    removes hooks the block added, clears gradients the block left on parameters that had
    none, and fails loudly if the block replaced modules without restoring them.
    """
    modules = list(model.modules())  # one walk over the model: it is called once a pass
    modes = [m.training for m in modules]
    buffers = [(b, b.detach().clone()) for m in modules for b in m._buffers.values()
               if b is not None]  # e.g. BatchNorm statistics
    flags = [(p, p.requires_grad, p.grad) for m in modules for p in m._parameters.values()
             if p is not None]
    hooks = {id(m): tuple(list(d) for d in _hook_dicts(m)) for m in modules
             if any(_hook_dicts(m))}  # the keys of the hooks there were, where any
    try:
        yield model
    finally:
        for m, training in zip(modules, modes):
            if m.training != training:
                m.training = training
        with torch.no_grad():  # only what changed: writing a buffer in place would fail the
            for b, saved in buffers:  # backward of a pass another thread runs meanwhile
                if not torch.equal(b, saved):
                    b.copy_(saved)
        for p, requires_grad, grad in flags:
            if p.requires_grad != requires_grad:
                p.requires_grad_(requires_grad)
            if p.grad is not grad:
                p.grad = grad
        for m in modules:
            if any(_hook_dicts(m)):
                for current, saved in zip(_hook_dicts(m), hooks.get(id(m), ((),) * 4)):
                    for key in [k for k in current if k not in saved]:
                        del current[key]
        if list(model.modules()) != modules:
            raise RuntimeError("internal error: the model's modules were replaced and not "
                               "restored")


def model_state(model: nn.Module) -> dict:
    """A snapshot of everything `unchanged` protects, for tests: compare two snapshots."""
    return {
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "hooks": _hook_counts(model),
        "modules": [type(m).__name__ for m in model.modules()],
    }


def same_state(a: dict, b: dict) -> bool:
    """True when two `model_state` snapshots are identical."""
    return (
        a["params"].keys() == b["params"].keys()
        and all(torch.equal(a["params"][k], b["params"][k]) for k in a["params"])
        and a["requires_grad"] == b["requires_grad"]
        and a["training"] == b["training"]
        and a["hooks"] == b["hooks"]
        and a["modules"] == b["modules"]
    )


def reference(name: str, label: str) -> Callable:
    """Record which reference implementation a method is checked against.

    name: a function of xai_course/references.py that computes the reference's answer to the
    same call, `ref(model, inputs, target, **options)` (e.g. Captum's); label: what to call it
    ("Captum Saliency(abs=False)"). The method gets `method.reference` (that function, looked
    up when first called, so that the chapter modules never import the reference libraries)
    and `method.reference_name`; the tests, the explorers and `xai-course bench` use them.
    """

    def call(*args, **kwargs):
        from . import references

        return getattr(references, name)(*args, **kwargs)

    def attach(fn):
        call.__name__ = call.__qualname__ = name
        fn.reference = call
        fn.reference_name = label
        return fn

    return attach
