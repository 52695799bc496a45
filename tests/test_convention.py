"""The method convention: options, target checks, and `unchanged` restoring a model."""

import threading

import pytest
import torch
import torchvision
from torch import nn

from xai_course.convention import (
    Option,
    check_positive_int,
    check_target,
    model_state,
    options,
    reference,
    rows_per_pass,
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


def test_rows_per_pass_follows_the_input_size_and_splits_evenly():
    image, digit = torch.zeros(1, 3, 224, 224), torch.zeros(5, 1, 32, 32)
    assert rows_per_pass(image) == 5 and rows_per_pass(image, backward=False) == 8
    assert rows_per_pass(digit) == 800_000 // 1024
    assert rows_per_pass(digit, 50) == 50  # all rows in one pass
    assert rows_per_pass(image, 25) == 5  # 5 passes of 5
    assert rows_per_pass(digit, 1000) == 500  # 2 passes of 500, not 781 and 219
    assert rows_per_pass(torch.zeros(1, 3, 2048, 2048), 50) == 1
    with pytest.raises(ValueError, match="rows must be a positive int"):
        rows_per_pass(image, 0)


@pytest.mark.parametrize("bad", [0, -3, True, 2.0, "4"])
def test_check_positive_int_names_the_option_and_what_is_valid(bad):
    with pytest.raises(ValueError, match=r"steps must be a positive int, got"):
        check_positive_int(bad, "steps")
    with pytest.raises(ValueError, match=r"a positive int or None"):
        check_positive_int(bad, "batch_size", allow_none=True)
    assert check_positive_int(None, "batch_size", allow_none=True) is None
    assert check_positive_int(3, "steps") == 3


def test_a_reference_is_looked_up_when_called_and_keeps_its_label():
    from xai_course import references

    @reference("captum_saliency", "Captum Saliency(abs=False)")
    def method(model, inputs, target):
        return inputs

    assert method.reference_name == "Captum Saliency(abs=False)"
    assert method.reference.__name__ == "captum_saliency"
    model = nn.Linear(3, 2)
    x = torch.rand(4, 3)
    assert torch.allclose(method.reference(model, x, 1), model.weight[1].expand(4, 3))
    assert hasattr(references, "captum_saliency")


def test_a_method_runs_on_any_thread():
    """No thread rules: a method called from an explorer's worker thread, while the main
    thread runs the same model, gives the same answer."""
    from xai_course import gradients

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=4).eval()
    x = torch.rand(2, 3, 64, 64)
    expected = gradients.integrated_gradients(net, x, 1, steps=8, batch_size=4)
    seen = {}
    worker = threading.Thread(target=lambda: seen.update(
        ig=gradients.integrated_gradients(net, x, 1, steps=8, batch_size=4)))
    worker.start()
    for _ in range(3):
        with torch.no_grad():
            net(x)
    worker.join()
    assert torch.allclose(seen["ig"], expected, atol=1e-6)


def test_unchanged_writes_back_only_the_buffers_that_changed():
    """A BatchNorm in eval mode saves its running statistics for the backward pass; writing
    them back in place when nothing changed would fail the backward of a pass that another
    thread runs on the same model ("modified by an inplace operation")."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)).eval()
    versions = [b._version for b in model.buffers()]
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    out = model(x).sum()  # saved for backward: the running statistics, at their versions
    with unchanged(model):
        model(torch.rand(2, 1, 8, 8))
    assert [b._version for b in model.buffers()] == versions
    out.backward()  # no version error
    with unchanged(model):  # a block that does change them is still undone
        model.train()
        model(torch.rand(4, 1, 8, 8))
    assert [b._version for b in model.buffers()] != versions
    assert model[1].running_mean.abs().max() == 0 and not model.training
