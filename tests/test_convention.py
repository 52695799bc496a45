"""The method convention: options, target checks, and `unchanged` restoring a model."""

import pytest
import torch
from torch import nn

from xai_course.convention import (
    Option,
    check_target,
    model_state,
    options,
    same_state,
    unchanged,
)


def test_unchanged_restores_mode_flags_and_hooks_after_an_exception():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2)).eval()
    model[2].weight.requires_grad_(False)
    before = model_state(model)
    with pytest.raises(RuntimeError, match="boom"), unchanged(model):
        model.train()
        for p in model.parameters():
            p.requires_grad_(True)
        model[1].register_forward_hook(lambda *a: None)
        model[0].register_full_backward_hook(lambda *a: None)
        model(torch.ones(1, 3)).sum().backward()
        raise RuntimeError("boom")
    assert same_state(before, model_state(model))
    assert all(p.grad is None for p in model.parameters())


def test_unchanged_keeps_hooks_that_were_there_before():
    model = nn.Linear(2, 2)
    seen = []
    model.register_forward_hook(lambda *a: seen.append(1))
    with unchanged(model):
        pass
    model(torch.ones(1, 2))
    assert seen == [1]


def test_check_target_forms():
    dev = torch.device("cpu")
    assert check_target(2, 3, 5, dev).tolist() == [2, 2, 2]
    assert check_target([0, 4, 1], 3, 5, dev).tolist() == [0, 4, 1]
    assert check_target(torch.tensor([1, 2, 3]), 3, 5, dev).tolist() == [1, 2, 3]
    assert check_target(torch.tensor(4), 2, 5, dev).tolist() == [4, 4]
    with pytest.raises(ValueError, match="5 classes"):
        check_target(5, 1, 5, dev)
    with pytest.raises(TypeError, match="integer"):
        check_target(torch.tensor([0.0]), 1, 5, dev)
    with pytest.raises(TypeError):
        check_target(True, 1, 5, dev)


def test_options_are_declared_and_validated():
    @options(Option("steps", "int", 50, low=1, high=500),
             Option("method", "choice", "a", choices=("a", "b")))
    def method(model, x, target, steps=50, method="a"):
        return x

    assert list(method.options) == ["steps", "method"]
    assert method.options["steps"].validate(10) == 10
    with pytest.raises(ValueError, match=r"\[1, 500\]"):
        method.options["steps"].validate(0)
    with pytest.raises(ValueError, match="integer"):
        method.options["steps"].validate(2.5)
    with pytest.raises(ValueError, match="one of"):
        method.options["method"].validate("c")
    with pytest.raises(ValueError, match="kind"):
        Option("x", "str", "a")
    with pytest.raises(ValueError, match="not one of"):
        Option("x", "choice", "z", choices=("a",))
