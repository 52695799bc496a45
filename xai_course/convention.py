"""The method convention every chapter follows.

Every attribution method in the course is a plain function

    attr = method(model, inputs, target, **options) -> torch.Tensor

and this module holds the few pieces they all share:

- `check_inputs` / `check_target`: bad input gets an error that says what was wrong and
  what is valid (wrong shape, wrong dtype, NaN, a class that does not exist);
- `unchanged(model)`: a method leaves the model exactly as it found it (parameters'
  `requires_grad` flags, train/eval mode, no hooks left behind), also when it raises;
- `Option` and `options(...)`: a method declares its options once, so an explorer can build
  its controls from them instead of by hand.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx
import torch.nn.utils.fusion
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
    "folded_copy",
    "inference_batch_size",
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


def forward(model: nn.Module, inputs: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """model(inputs), with a clear error when the model cannot take inputs of this shape.

    channels_last: hand a batch of images (N, C, H, W) to the model in channels-last memory
    order, which CPU convolutions run faster (the same numbers up to float rounding, about
    1e-7 relative). A model that cannot take that order (a .view() of a convolution's
    output) gets the usual one.
    """
    if channels_last and inputs.ndim == 4:
        try:
            return model(inputs.contiguous(memory_format=torch.channels_last))
        except RuntimeError:
            pass  # the model's own error, if any, is raised by the plain call below
    try:
        return model(inputs)
    except RuntimeError as error:
        if "shape" not in str(error) and "size" not in str(error):
            raise
        raise ValueError(f"the model cannot take inputs of shape {tuple(inputs.shape)} "
                         f"({error}); check the input size and number of channels the model "
                         f"expects") from error


def has_hooks(model: nn.Module) -> bool:
    """True when any module of `model` has a forward, forward-pre, backward or backward-pre hook."""
    return any(count != (0, 0, 0, 0) for count in _hook_counts(model))


# Held by an explorer while it computes on its worker thread (widgets/base.py), and by
# `traced_graph` while torch.fx traces: tracing patches torch.nn.Module.__call__ for the whole
# process, and a model run meanwhile on another thread would go through the tracer and fail.
MODEL_LOCK = threading.RLock()

# model -> (its module tree when traced, its torch.fx graph or None when it cannot be traced)
_TRACED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _module_tree(model: nn.Module) -> list[tuple]:
    # with each module's mode: a module's forward may branch on self.training
    return [(name, id(m), type(m), m.training) for name, m in model.named_modules()]


def traced_graph(model: nn.Module, wait: bool = True) -> torch.fx.Graph | None:
    """The torch.fx graph of `model`'s forward, traced once and kept while the model's module
    tree stays the same (the same modules under the same names, in the same train/eval
    modes); None if it cannot be traced (data-dependent control flow, ...).

    Only the main thread traces, holding MODEL_LOCK, so that no explorer runs a model
    meanwhile; another thread (an explorer's worker) gets the graph traced before, or None.
    wait=False: don't wait for MODEL_LOCK (an explorer computing); None if it is taken.
    Explorers call it when they build a request, so that their workers find the graph.
    (A forward changed in place, by assigning a new `model.forward`, is not noticed.)
    """
    tree = _module_tree(model)
    known = _TRACED.get(model)
    if known is not None and known[0] == tree:
        return known[1]
    if threading.current_thread() is not threading.main_thread():
        return None
    if not MODEL_LOCK.acquire(blocking=wait):
        return None
    try:
        graph = torch.fx.Tracer().trace(model)
    except Exception:  # not traceable: the callers use the model itself
        graph = None
    finally:
        MODEL_LOCK.release()
    _TRACED[model] = (tree, graph)
    return graph


def graph_copy(model: nn.Module, kind: type[nn.Module]) -> torch.fx.GraphModule | None:
    """A torch.fx graph module of `model` sharing its modules, to rewrite some of them in a
    copy (`folded_copy`, `gradients.for_input_gradients`); None when no copy should be made:
    a module in train mode, a hook (the copy would skip it), no module of type `kind` to
    rewrite, or no graph (see `traced_graph`: a model torch.fx cannot trace, or a worker
    thread asking for a model the main thread has not traced).
    """
    if any(m.training for m in model.modules()) or has_hooks(model) or not any(
            isinstance(m, kind) for m in model.modules()):
        return None
    graph = traced_graph(model)
    if graph is None:
        return None
    return torch.fx.GraphModule(model, copy.deepcopy(graph))  # the callers rewrite the copy


def folded_copy(model: nn.Module, channels_last: bool = False) -> nn.Module:
    """The model for many passes: each BatchNorm folded into the convolution before it.

    In eval mode a BatchNorm is an affine map per channel, gamma (z - mu) / sigma + beta, and
    a convolution followed by it is another convolution: weight W gamma / sigma, bias
    (b - mu) gamma / sigma + beta. The folded network computes the same function (up to float
    rounding, about 1e-7 relative) with one pass over memory less per layer forward and
    backward, and keeps no BatchNorm inputs for the backward pass (less memory).

    The copy is cheap: torch.fx traces the model into a graph that shares the original's
    modules, and only the folded convolutions are new (their parameters do not require
    grad). channels_last: store those convolutions' weights channels-last, for inputs in that
    order. The model itself is returned, unchanged, when there is nothing to fold, when it is
    in train mode or carries hooks (a copy would skip them), or when torch.fx cannot trace it.
    """
    graph_module = graph_copy(model, nn.BatchNorm2d)
    if graph_module is None:
        return model
    modules = dict(graph_module.named_modules())
    folded = 0
    for node in list(graph_module.graph.nodes):
        conv_node = node.args[0] if node.op == "call_module" and node.args else None
        if not (isinstance(modules.get(node.target), nn.BatchNorm2d)
                and isinstance(conv_node, torch.fx.Node) and conv_node.op == "call_module"
                and type(modules.get(conv_node.target)) is nn.Conv2d
                and len(conv_node.users) == 1):
            continue
        conv, bn = modules[conv_node.target], modules[node.target]
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        with torch.no_grad():
            weight, bias = torch.nn.utils.fusion.fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight,
                bn.bias)
        if channels_last:
            weight = weight.contiguous(memory_format=torch.channels_last)
        new = torch.nn.utils.skip_init(
            nn.Conv2d, conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
            padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
            padding_mode=conv.padding_mode, device=weight.device, dtype=weight.dtype)
        new.weight = nn.Parameter(weight.detach(), requires_grad=False)
        new.bias = nn.Parameter(bias.detach(), requires_grad=False)
        # the graph module's containers are its own: this does not touch the original model
        graph_module.add_submodule(conv_node.target, new)
        node.replace_all_uses_with(conv_node)
        graph_module.graph.erase_node(node)
        folded += 1
    if not folded:
        return model
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
    return graph_module


def inference_batch_size(inputs: torch.Tensor, values: int = 1_250_000, most: int = 64) -> int:
    """How many copies of one example a forward pass without gradients should take, for the
    methods that run the model many times (occlusion, Score-CAM): about `values` input values,
    at most `most`: 8 copies of a 3 x 224 x 224 image, 64 of a 1 x 32 x 32 digit.

    Moderate batches are the fastest on a CPU, because their activations stay in the caches:
    ResNet-18's forward pass at 224 x 224 on a 2-core CPU takes 17.3 ms an image in batches of
    8, 17.8 in batches of 16 and 18.9 in batches of 32 (best of 12 runs, interleaved).
    """
    per_example = max(1, inputs[0].numel())
    return max(1, min(most, values // per_example))


def class_scores(model: nn.Module, inputs: torch.Tensor, target,
                 channels_last: bool = False) -> torch.Tensor:
    """Forward `inputs`, check `target` against the model's output and return its scores (N,).

    The score is the model's output (the logit) for the target class, as in Captum.
    channels_last: as in `forward`.
    """
    output = forward(model, inputs, channels_last)
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
        with torch.no_grad():
            for b, saved in buffers:
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


def reference(ref: Callable, name: str) -> Callable:
    """Record which reference implementation a method is checked against.

    `ref(model, inputs, target, **options)` computes the reference's answer for the same
    call (e.g. Captum's); explorers and `xai-course bench` use it to show the agreement.
    """

    def attach(fn):
        fn.reference = ref
        fn.reference_name = name
        return fn

    return attach
