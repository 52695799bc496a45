"""The method convention: options, target checks, and `unchanged` restoring a model."""

import threading

import pytest
import torch
import torchvision
from torch import nn

from xai_course.convention import (
    MODEL_LOCK,
    Option,
    check_target,
    folded_copy,
    graph_copy,
    inference_batch_size,
    model_state,
    options,
    same_state,
    traced_graph,
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


def _conv_bn_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(),
                        nn.LazyLinear(5))
    net(torch.rand(1, 3, 6, 6))  # materialise the lazy layer
    for bn in (net[1], net[4]):  # statistics as after training, not the identity
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


def test_folded_copy_computes_the_same_function_without_batchnorm():
    net = _conv_bn_net()
    before = model_state(net)
    x = torch.rand(4, 3, 6, 6)
    folded = folded_copy(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert torch.allclose(folded(x), net(x), rtol=1e-5, atol=1e-6)
    # by hand: the first folded convolution is W gamma / sigma and (b - mu) gamma / sigma + beta
    conv, bn = net[0], net[1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    first = [m for m in folded.modules() if isinstance(m, nn.Conv2d)][0]
    assert torch.allclose(first.weight, conv.weight * scale.view(-1, 1, 1, 1))
    assert torch.allclose(first.bias, (conv.bias - bn.running_mean) * scale + bn.bias)
    assert not first.weight.requires_grad
    assert same_state(before, model_state(net))  # the original is untouched
    assert net[0].weight.requires_grad and isinstance(net[1], nn.BatchNorm2d)


def test_folded_copy_of_a_torchvision_resnet_and_its_channels_last_weights():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    with torch.no_grad():
        for m in net.modules():  # random statistics, so that folding changes the numbers
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2)
    before = model_state(net)
    folded = folded_copy(net, channels_last=True)
    convs = [m for m in folded.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20 and all(
        m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = folded(x), net(x)
    assert ((ours - theirs).abs().max() / theirs.abs().max()).item() < 1e-5
    assert same_state(before, model_state(net))
    assert all(p.is_contiguous() for p in net.parameters())  # the original's layout is kept


def test_folded_copy_leaves_what_it_must_not_fold():
    net = _conv_bn_net()
    plain = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU()).eval()
    assert folded_copy(plain) is plain  # nothing to fold
    assert folded_copy(net.train()) is net  # BatchNorm uses the batch's statistics
    net.eval()
    handle = net[2].register_forward_hook(lambda *a: None)
    assert folded_copy(net) is net  # a copy would skip the hook
    handle.remove()
    assert folded_copy(net) is not net


def test_inference_batch_size_follows_the_input_size():
    assert inference_batch_size(torch.zeros(1, 3, 224, 224)) == 8
    assert inference_batch_size(torch.zeros(5, 1, 32, 32)) == 64
    assert inference_batch_size(torch.zeros(1, 3, 2048, 2048)) == 1


def in_a_thread(fn):
    """fn() run on another thread (as an explorer's worker runs methods); its result."""
    seen = {}
    worker = threading.Thread(target=lambda: seen.update(result=fn()))
    worker.start()
    worker.join()
    return seen["result"]


def test_only_the_main_thread_traces():
    """torch.fx patches nn.Module.__call__ for the whole process while it traces: an
    explorer's worker thread must not trace (another thread's model would run through it),
    but it can copy a graph the main thread traced before."""
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten()).eval()
    assert in_a_thread(lambda: (graph_copy(net, nn.BatchNorm2d), folded_copy(net))) == (None, net)
    graph = traced_graph(net)
    assert graph is not None and traced_graph(net) is graph  # traced once
    copied = in_a_thread(lambda: graph_copy(net, nn.BatchNorm2d))
    assert isinstance(copied, torch.fx.GraphModule) and copied.graph is not graph
    folded = in_a_thread(lambda: folded_copy(net))
    x = torch.rand(2, 1, 5, 5)
    assert folded is not net and torch.allclose(folded(x), net(x), atol=1e-6)
    net[0] = nn.Conv2d(1, 2, 3)  # a new module tree: traced again, on the main thread only
    assert in_a_thread(lambda: traced_graph(net)) is None
    graph = traced_graph(net)
    assert graph is not None and traced_graph(net.train()) is not graph  # another mode
    other = nn.Sequential(nn.Conv2d(1, 1, 3)).eval()
    taken, done = threading.Event(), threading.Event()

    def compute():  # an explorer computing on its worker thread
        with MODEL_LOCK:
            taken.set()
            done.wait(30)

    worker = threading.Thread(target=compute)
    worker.start()
    assert taken.wait(30)
    try:
        assert traced_graph(other, wait=False) is None  # an explorer's request does not wait
    finally:
        done.set()
        worker.join()
    assert traced_graph(other, wait=False) is not None
