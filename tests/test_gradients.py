"""Chapter 02 core (the part chapter 01 uses): gradient and input x gradient vs Captum."""

import pytest
import torch
import torchvision

from conftest import TinyLinear
from xai_course import gradients, zoo


def rel_diff(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def test_gradient_of_a_linear_model_is_its_weight_row():
    w = torch.tensor([[1.0, -2.0, 3.0, 0.5], [0.0, 4.0, -1.0, 2.0]])
    model = TinyLinear(w).eval()
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.0, 1.0, 2.0]])
    g = gradients.gradient(model, x, [1, 0])
    assert torch.equal(g, torch.stack([w[1], w[0]]))
    ixg = gradients.input_x_gradient(model, x, 1)
    assert torch.allclose(ixg, x * w[1])
    # input x gradient of a bias-free linear model sums to the score
    assert torch.allclose(ixg.sum(1), model(x)[:, 1])


@pytest.mark.parametrize("arch", ["resnet18", "vgg11"])
def test_gradient_matches_captum_on_torchvision(arch, assert_unchanged):
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(num_classes=10).eval()
    x = torch.rand(2, 3, 64, 64)
    target = torch.tensor([3, 7])
    with assert_unchanged(model):
        ours = gradients.gradient(model, x, target)
        ixg = gradients.input_x_gradient(model, x, target)
    assert ours.shape == x.shape and ours.device == x.device
    assert rel_diff(ours, gradients.gradient.reference(model, x, target)) <= 1e-5
    assert rel_diff(ixg, gradients.input_x_gradient.reference(model, x, target)) <= 1e-5


@pytest.mark.parametrize("name", ["digits", "cluttered-digits"])
def test_gradient_matches_captum_on_zoo_models(name, assert_unchanged):
    model = zoo.load_model(name, device="cpu")
    data = zoo.dataset(name, n=6)
    with assert_unchanged(model):
        ours = gradients.gradient(model, data.x, data.y)
    ref = gradients.gradient.reference(model, data.x, data.y)
    assert ours.abs().max() > 0
    assert rel_diff(ours, ref) <= 1e-5


def test_gradient_on_the_text_model_embeddings():
    model = zoo.load_model("reviews", device="cpu")
    data = zoo.dataset("reviews", n=4)
    embedded = model.embedding(data.x).detach()
    ours = gradients.gradient(model.encoder, embedded, data.y)
    ref = gradients.gradient.reference(model.encoder, embedded, data.y)
    assert ours.shape == embedded.shape
    assert rel_diff(ours, ref) <= 1e-5
    per_token = ours.sum(-1)
    assert per_token.shape == data.x.shape


def test_gradient_works_under_no_grad_and_leaves_no_parameter_gradients():
    model = TinyLinear(torch.randn(3, 5)).eval()
    with torch.no_grad():
        g = gradients.gradient(model, torch.randn(2, 5), 2)
    assert g.shape == (2, 5)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(
    "inputs, target, error, words",
    [
        ([[1.0, 2.0]], 0, TypeError, "torch.Tensor"),
        (torch.ones(2, 5, dtype=torch.long), 0, TypeError, "floating-point"),
        (torch.full((2, 5), float("nan")), 0, ValueError, "NaN"),
        (torch.ones(2, 5), 3, ValueError, "3 classes"),
        (torch.ones(2, 5), [0, 1, 2], ValueError, "batch has 2"),
        (torch.ones(2, 5), -1, ValueError, "out of range"),
        (torch.ones(2, 5), 1.5, TypeError, "target"),
        (torch.ones(0, 5), 0, ValueError, "at least one"),
    ],
)
def test_bad_inputs_give_clear_errors_and_leave_the_model(inputs, target, error, words,
                                                          assert_unchanged):
    model = TinyLinear(torch.randn(3, 5)).eval()
    with assert_unchanged(model), pytest.raises(error, match=words):
        gradients.gradient(model, inputs, target)


def test_bad_model_and_device_mismatch():
    with pytest.raises(TypeError, match="nn.Module"):
        gradients.gradient(lambda x: x, torch.ones(1, 2), 0)
    model = TinyLinear(torch.randn(3, 5)).to(torch.float64)
    if torch.cuda.is_available():  # pragma: no cover - no GPU on CI
        with pytest.raises(ValueError, match="device"):
            gradients.gradient(model.cuda(), torch.ones(1, 5), 0)
