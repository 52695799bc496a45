"""Chapter 02 core against Captum, on hand-set models (answers computed by hand here),
torchvision architectures with random weights, and the zoo's models.

gradient, input x gradient, SmoothGrad / SmoothGrad^2 / VarGrad, Integrated Gradients (every
quadrature), Guided Backprop, the Taylor line; and the model is always left as it was."""

import math

import pytest
import torch
import torchvision
from torch import nn

from conftest import TinyLinear
from xai_course import gradients, zoo
from xai_course.convention import model_state, same_state


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


@pytest.fixture(scope="module", params=["resnet18", "vgg11"])
def torchvision_model(request):
    """A torchvision architecture with random weights (nothing is downloaded), built once."""
    torch.manual_seed(0)
    return request.param, getattr(torchvision.models, request.param)(num_classes=10).eval()


def test_gradient_matches_captum_on_torchvision(torchvision_model, assert_unchanged):
    _, model = torchvision_model
    torch.manual_seed(0)
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


# =============================================================================================
# The rest of the chapter: SmoothGrad family, Integrated Gradients, Guided Backprop, the limits.
# =============================================================================================
QUADRATURES = gradients.QUADRATURES
NOISY = [gradients.smoothgrad, gradients.smoothgrad_sq, gradients.vargrad]


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


class Saturating(nn.Module):
    """S_0(x) = 1 - relu(1 - x) = min(x, 1), S_1 = -S_0: flat (zero gradient) beyond x = 1."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inner = nn.Linear(1, 1)
        self.relu = nn.ReLU(inplace=inplace)
        with torch.no_grad():
            self.inner.weight.fill_(-1.0)
            self.inner.bias.fill_(1.0)

    def forward(self, x):
        s = 1 - self.relu(self.inner(x))
        return torch.cat([s, -s], 1)


class TwoLayer(nn.Module):
    """S(x) = w2 . relu(W1 x): a hidden layer whose ReLU guided backprop changes."""

    def __init__(self, inplace=False):
        super().__init__()
        self.fc1 = nn.Linear(2, 2, bias=False)
        self.relu = nn.ReLU(inplace=inplace)
        self.fc2 = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, -1.0]]))
            self.fc2.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 0.5]]))

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


class HalfSquare(nn.Module):
    """S_0(x) = sum_i x_i^2 / 2 (gradient x), S_1 = 0."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1), requires_grad=False)

    def forward(self, x):
        s = self.scale * (x.flatten(1) ** 2).sum(1, keepdim=True) / 2
        return torch.cat([s, torch.zeros_like(s)], 1)


# ------------------------------------------------------------------------- quadrature
@pytest.mark.parametrize("method", QUADRATURES)
@pytest.mark.parametrize("steps", [2, 7, 50])
def test_quadrature_is_captums_exactly(method, steps):
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters(method)
    ours_alphas, ours_weights = gradients.quadrature(method, steps)
    assert torch.equal(ours_alphas, torch.tensor(alphas(steps), dtype=torch.float32))
    assert torch.equal(ours_weights, torch.tensor(step_sizes(steps)).float())
    # the weights sum to one, except the trapezoid's: 1 - 1/n, Captum's halved end weights
    expected = 1 - 1 / steps if method == "riemann_trapezoid" else 1.0
    assert math.isclose(ours_weights.double().sum().item(), expected, rel_tol=1e-6)


def test_gauss_legendre_integrates_polynomials_exactly():
    alphas, weights = gradients.quadrature("gausslegendre", 4, dtype=torch.float64)
    for degree in range(8):  # n nodes: exact up to degree 2n - 1
        assert math.isclose((weights * alphas ** degree).sum().item(), 1 / (degree + 1),
                            rel_tol=1e-6)
    with pytest.raises(ValueError, match="steps >= 2"):
        gradients.quadrature("riemann_left", 1)
    with pytest.raises(ValueError, match="method must be one of"):
        gradients.quadrature("simpson", 10)


# ------------------------------------------------------------------------- IG by hand
@pytest.mark.parametrize("method", QUADRATURES)
def test_ig_of_a_linear_model_is_its_weights_times_the_step(method):
    w = torch.tensor([[1.0, -2.0, 3.0, 0.5], [0.0, 4.0, -1.0, 2.0]])
    model = TinyLinear(w, bias=[0.3, -0.2]).eval()
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.0, 1.0, 2.0]])
    x_base = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    steps = 10
    attr, delta = gradients.integrated_gradients(model, x, [0, 1], baseline=x_base, steps=steps,
                                                 method=method, return_delta=True)
    # the gradient is constant: IG = (x - x') * w * (sum of the weights)
    total_weight = 1 - 1 / steps if method == "riemann_trapezoid" else 1.0
    hand = (x - x_base) * torch.stack([w[0], w[1]]) * total_weight
    assert torch.allclose(attr, hand, atol=1e-6)
    gap = (x - x_base).mul(torch.stack([w[0], w[1]])).sum(1) * (total_weight - 1)
    assert torch.allclose(delta, gap, atol=1e-5)
    ref = gradients.integrated_gradients.reference(model, x, [0, 1], baseline=x_base,
                                                   steps=steps, method=method)
    assert torch.allclose(attr, ref, atol=1e-6)


@pytest.mark.parametrize("method, steps, hand", [
    # S(x) = min(x, 1) at x = 2 from x' = 0: the integrand 2 * S'(2a) is 2 for a < 1/2, else 0
    # (PyTorch's relu'(0) = 0), so IG = 2 * (sum of the weights of nodes below 1/2).
    ("riemann_left", 4, 1.0),  # nodes 0, 1/4 | 1/2, 3/4: 2 * 2/4
    ("riemann_right", 4, 0.5),  # nodes 1/4 | 1/2, 3/4, 1: 2 * 1/4
    ("riemann_right", 8, 0.75),  # 1 - 2/n
    ("riemann_middle", 4, 1.0),  # nodes 1/8, 3/8 | 5/8, 7/8
    ("riemann_trapezoid", 4, 0.75),  # nodes 0 (weight 1/8), 1/3 (1/4): 2 * 3/8
    ("gausslegendre", 4, 1.0),  # symmetric nodes: half the weight below 1/2
    ("gausslegendre", 5, 1.0),  # odd n: the middle node sits at 1/2 exactly, gradient 0 there
])
def test_ig_sees_what_a_saturated_gradient_misses(method, steps, hand):
    model = Saturating().eval()
    x = torch.tensor([[2.0]])
    assert gradients.gradient(model, x, 0).item() == 0.0  # flat at x = 2: "unimportant"
    attr, delta = gradients.integrated_gradients(model, x, 0, steps=steps, method=method,
                                                 return_delta=True)
    expected = hand if not (method == "gausslegendre" and steps == 5) else \
        2 * gradients.quadrature("gausslegendre", 5)[1][:2].sum().item()
    assert attr.item() == pytest.approx(expected, abs=1e-6)
    assert delta.item() == pytest.approx(expected - 1.0, abs=1e-6)  # S(2) - S(0) = 1
    ref = gradients.integrated_gradients.reference(model, x, 0, steps=steps, method=method)
    assert attr.item() == pytest.approx(ref.item(), abs=1e-7)


# ------------------------------------------------------------------------- Guided Backprop by hand
@pytest.mark.parametrize("inplace", [False, True])
def test_guided_backprop_by_hand(inplace, assert_unchanged):
    model = TwoLayer(inplace=inplace).eval()
    x = torch.tensor([[1.0, 1.0]])  # hidden W1 x = (3, 2): both units active
    with assert_unchanged(model):
        grad = gradients.gradient(model, x, 0)
        guided = gradients.guided_backprop(model, x, 0)
    # gradient: W1^T (1, -1) = (1 - 3, 2 + 1); guided: the -1 is cut at the ReLU: W1^T (1, 0)
    assert torch.equal(grad, torch.tensor([[-2.0, 3.0]]))
    assert torch.equal(guided, torch.tensor([[1.0, 2.0]]))
    # x = (1, -2): hidden (-3, 5), unit 0 inactive; class 1 sends (0.5, 0.5): only unit 1 passes
    x = torch.tensor([[1.0, -2.0]])
    assert torch.equal(gradients.guided_backprop(model, x, 1), torch.tensor([[1.5, -0.5]]))
    assert torch.equal(gradients.guided_backprop.reference(model, x, 1),
                       torch.tensor([[1.5, -0.5]]))


def test_guided_backprop_removes_its_hooks_when_the_model_raises(assert_unchanged):
    class Exploding(TwoLayer):
        def forward(self, x):
            self.relu(self.fc1(x))
            raise RuntimeError("boom after the ReLU ran")

    model = Exploding().eval()
    with assert_unchanged(model), pytest.raises(RuntimeError, match="boom"):
        gradients.guided_backprop(model, torch.ones(1, 2), 0)
    assert len(model.relu._forward_pre_hooks) == 0
    with assert_unchanged(model), pytest.raises(ValueError, match="2 classes"):
        gradients.guided_backprop(TwoLayer().eval(), torch.ones(1, 2), 5)


def test_guided_backprop_without_relu_modules_warns_and_is_the_gradient():
    model = TinyLinear(torch.randn(3, 4)).eval()
    x = torch.randn(2, 4)
    with pytest.warns(UserWarning, match="no nn.ReLU"):
        guided = gradients.guided_backprop(model, x, 1)
    assert torch.equal(guided, gradients.gradient(model, x, 1))


# ------------------------------------------------------------------------- SmoothGrad by hand
def test_noise_level_is_a_fraction_of_each_examples_range():
    x = torch.tensor([[0.0, 1.0, 0.5], [-2.0, 2.0, 0.0]])
    assert torch.allclose(gradients.noise_level(x, sigma_fraction=0.1), torch.tensor([0.1, 0.4]))
    assert torch.equal(gradients.noise_level(x, sigma=0.3), torch.tensor([0.3, 0.3]))
    with pytest.raises(ValueError, match="sigma"):
        gradients.noise_level(x, sigma=-1.0)


@pytest.mark.parametrize("fn", NOISY, ids=lambda f: f.__name__)
def test_noise_on_a_linear_model_changes_nothing(fn):
    w = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
    model = TinyLinear(w).eval()
    x = torch.tensor([[0.2, 0.4, 0.9]])
    attr = fn(model, x, 0, samples=16, sigma=0.5, generator=seeded())
    # the gradient is w[0] at every noisy copy: mean w, mean square w^2, variance 0
    hand = {"smoothgrad": w[:1], "smoothgrad_sq": w[:1] ** 2, "vargrad": torch.zeros(1, 3)}
    assert torch.allclose(attr, hand[fn.__name__], atol=1e-6)


def test_noise_moments_of_a_quadratic_model_match_the_normal_distribution():
    # gradient of sum x^2 / 2 at x + eps is x + eps: E = x, E[.^2] = x^2 + s^2, Var = s^2
    model = HalfSquare().eval()
    x = torch.tensor([[0.5, -1.0, 2.0]])
    s, n = 0.5, 4000
    kw = dict(samples=n, sigma=s, batch_size=1000)
    mean = gradients.smoothgrad(model, x, 0, generator=seeded(1), **kw)
    sq = gradients.smoothgrad_sq(model, x, 0, generator=seeded(1), **kw)
    var = gradients.vargrad(model, x, 0, generator=seeded(1), **kw)
    # standard errors: s / sqrt(n) = 0.008 for the mean; about s^2 sqrt(2 / n) = 0.006 for Var
    assert torch.allclose(mean, x, atol=0.04)
    assert torch.allclose(var, torch.full_like(x, s ** 2), atol=0.03)
    assert torch.allclose(sq, x ** 2 + s ** 2, atol=0.1)
    assert torch.allclose(var, sq - mean ** 2, atol=1e-5)  # same generator: same copies


@pytest.mark.parametrize("fn", NOISY, ids=lambda f: f.__name__)
@pytest.mark.parametrize("base", ["gradient", "input_x_gradient", "guided_backprop"])
def test_noise_to_zero_gives_the_base_method(fn, base):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    model.eval()
    x = torch.rand(2, 3, 8, 8)
    plain = gradients.METHODS[base](model, x, [1, 4])
    attr = fn(model, x, [1, 4], base=base, samples=3, sigma=1e-7, generator=seeded())
    expected = {"smoothgrad": plain, "smoothgrad_sq": plain ** 2,
                "vargrad": torch.zeros_like(plain)}[fn.__name__]
    scale = plain.abs().max() ** (2 if fn is not gradients.smoothgrad else 1)
    assert (attr - expected).abs().max() <= 1e-4 * scale


@pytest.mark.parametrize("fn", NOISY, ids=lambda f: f.__name__)
def test_noise_does_not_depend_on_the_batch_size(fn):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    x = torch.rand(3, 3, 2, 2)
    results = [fn(model, x, [0, 1, 2], samples=7, generator=seeded(3), batch_size=b)
               for b in (1, 4, 21, None)]
    for other in results[1:]:
        assert torch.allclose(results[0], other, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(results[0], fn(model, x, [0, 1, 2], samples=7,
                                             generator=seeded(4)))


# ------------------------------------------------------------------------- baselines
def test_named_baselines():
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(gradients.make_baseline(x), torch.zeros_like(x))
    assert torch.equal(gradients.make_baseline(x, "black"), torch.zeros_like(x))
    assert torch.equal(gradients.make_baseline(x, 0.5), torch.full_like(x, 0.5))
    mean = gradients.make_baseline(x, "mean")
    assert torch.allclose(mean[1, 2, 5, 7], x[1, 2].mean())
    uniform = gradients.make_baseline(x, "uniform", seeded(0))
    assert torch.equal(uniform, gradients.make_baseline(x, "uniform", seeded(0)))
    assert (uniform >= x.amin((1, 2, 3), keepdim=True)).all()
    assert (uniform <= x.amax((1, 2, 3), keepdim=True)).all()
    blur = gradients.make_baseline(x, "blur")
    assert blur.shape == x.shape and blur.std() < x.std() / 2  # much smoother
    flat = torch.full((1, 3, 16, 16), 0.25)
    assert torch.allclose(gradients.make_baseline(flat, "blur"), flat)  # a flat image stays
    text = torch.rand(2, 5, 4)
    assert torch.allclose(gradients.make_baseline(text, "mean")[:, 3], text.mean(1))
    with pytest.raises(ValueError, match="images"):
        gradients.make_baseline(text, "blur")
    with pytest.raises(ValueError, match="baseline must be"):
        gradients.make_baseline(x, "grey")
    with pytest.raises(ValueError, match="broadcast"):
        gradients.make_baseline(x, torch.zeros(5))


# ------------------------------------------------------------------------- vs Captum, torchvision
def test_torchvision_integrated_gradients_match_captum(torchvision_model, assert_unchanged):
    name, model = torchvision_model
    n = 2 if name == "resnet18" else 1  # VGG's 25088 x 4096 layer is slow on a CPU
    x = torch.rand(n, 3, 64, 64, generator=seeded(1))
    target = torch.tensor([3, 7][:n])
    for i, method in enumerate(QUADRATURES):
        batch_size = (None, 2 * n)[i % 2]  # all steps in one pass, or two steps a pass
        with assert_unchanged(model):
            ours, delta = gradients.integrated_gradients(
                model, x, target, baseline="blur", steps=4, method=method,
                batch_size=batch_size, return_delta=True)
        ref, ref_delta = gradients.integrated_gradients.reference(
            model, x, target, baseline="blur", steps=4, method=method,
            batch_size=batch_size, return_delta=True)
        assert ours.shape == x.shape
        assert rel_diff(ours, ref) <= 1e-5, (name, method, batch_size)
        assert (delta - ref_delta).abs().max() <= 1e-5 * ref.abs().sum()


def test_torchvision_guided_backprop_and_noise_match_captum(torchvision_model, assert_unchanged):
    name, model = torchvision_model
    x = torch.rand(2, 3, 64, 64, generator=seeded(2))
    target = [1, 8]
    with assert_unchanged(model):
        guided = gradients.guided_backprop(model, x, target)
    assert rel_diff(guided, gradients.guided_backprop.reference(model, x, target)) <= 1e-5
    assert not torch.allclose(guided, gradients.gradient(model, x, target))
    # 3 x 64 x 64 values: a multiple of 16, so the same random state gives Captum's noise
    for fn in NOISY:
        with assert_unchanged(model):
            ours = fn(model, x, target, samples=3, batch_size=4, generator=seeded(5))
        ref = fn.reference(model, x, target, samples=3, batch_size=2, generator=seeded(5))
        assert rel_diff(ours, ref) <= 1e-5, (name, fn.__name__)


def test_integrated_gradients_of_an_imagenet_wrapper_match_captum():
    """The course's ImageNet models normalise inside, (x - mean) / std, before the network."""
    from xai_course.zoo.imagenet import ImageNetClassifier

    torch.manual_seed(0)
    model = ImageNetClassifier(torchvision.models.resnet18(num_classes=10)).eval()
    x = torch.rand(2, 3, 64, 64, generator=seeded(6))
    ig = gradients.integrated_gradients(model, x, 4, steps=4, batch_size=4)
    assert rel_diff(ig, gradients.integrated_gradients.reference(model, x, 4, steps=4)) <= 1e-5


def test_integrated_gradients_is_the_weighted_sum_of_gradient_calls():
    """IG reads as its formula: (x - x') sum_k w_k dS_c(x' + alpha_k (x - x'))/dx, here
    summed by hand from `gradient` calls, one path point at a time."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    x = torch.rand(2, 1, 6, 6, generator=seeded(1))
    alphas, weights = gradients.quadrature("riemann_middle", 7)
    by_hand = sum(w * gradients.gradient(model, a * x, [1, 3]) for a, w in zip(alphas, weights))
    for batch_size in (None, 2, 3, 14):
        ours = gradients.integrated_gradients(model, x, [1, 3], steps=7,
                                              method="riemann_middle", batch_size=batch_size)
        assert torch.allclose(ours, by_hand * x, atol=1e-6), batch_size


def test_noise_around_integrated_gradients_matches_captum():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 4))
    model.eval()
    x = torch.rand(2, 1, 4, 4, generator=seeded(0))
    opts = dict(base="integrated_gradients", samples=4, steps=5, method="riemann_middle")
    for fn in NOISY:
        ours = fn(model, x, [0, 3], generator=seeded(1), **opts)
        ref = fn.reference(model, x, [0, 3], generator=seeded(1), **opts)
        assert rel_diff(ours, ref) <= 1e-5, fn.__name__


# ------------------------------------------------------------------------- zoo models
@pytest.mark.parametrize("name", ["digits", "cluttered-digits", "shortcut-digits"])
def test_ig_is_complete_on_zoo_models(name, assert_unchanged):
    model = zoo.load_model(name, device="cpu")
    data = zoo.dataset(name, n=3)
    with assert_unchanged(model):
        _, delta = gradients.integrated_gradients(model, data.x, data.y, steps=300,
                                                  return_delta=True)
    with torch.no_grad():
        out = model(data.x).gather(1, data.y[:, None])[:, 0]
        change = out - model(torch.zeros_like(data.x)).gather(1, data.y[:, None])[:, 0]
    assert (delta.abs() < 0.01 * change.abs()).all(), (delta, change)
    for method in ("gausslegendre", "riemann_trapezoid"):
        attr = gradients.integrated_gradients(model, data.x, data.y, steps=24, method=method)
        ref = gradients.integrated_gradients.reference(model, data.x, data.y, steps=24,
                                                       method=method)
        assert rel_diff(attr, ref) <= 1e-5
    # and the other methods of the chapter on the same model
    for fn in (gradients.guided_backprop, gradients.input_x_gradient):
        assert rel_diff(fn(model, data.x, data.y), fn.reference(model, data.x, data.y)) <= 1e-5


def test_ig_on_the_text_model_per_token():
    model = zoo.load_model("reviews", device="cpu")
    data = zoo.dataset("reviews", n=8)
    attr, delta = gradients.per_token(gradients.integrated_gradients, model, data.x, data.y,
                                      steps=300, return_delta=True)
    assert attr.shape == data.x.shape
    embedded = model.embedding(data.x).detach()
    ref = gradients.integrated_gradients.reference(model.encoder, embedded, data.y, steps=300)
    assert rel_diff(attr, ref.sum(-1)) <= 1e-5
    with torch.no_grad():  # the black baseline is the all-padding text (embedding 0)
        change = (model.encoder(embedded) - model.encoder(torch.zeros_like(embedded)))
    change = change.gather(1, data.y[:, None])[:, 0]
    assert (delta.abs() < 0.01 * change.abs()).all()
    # the tokens that decide the label carry most of the attribution
    share = (attr.abs() * data.relevant).sum(1) / attr.abs().sum(1)
    relevant_part = data.relevant.sum(1) / (data.x != 0).sum(1)
    assert share.mean() > 1.5 * relevant_part.mean()


# ------------------------------------------------------------------------- the model is left alone
def test_every_method_leaves_the_model_as_it_was_also_on_errors(assert_unchanged):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                          nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    model.train()  # BatchNorm in train mode: a forward pass would update its statistics
    model[0].weight.requires_grad_(False)  # mixed requires_grad flags
    model[4].register_forward_hook(lambda *args: None)  # a hook of the user's: kept
    x = torch.rand(3, 3, 8, 8)
    before = model_state(model)
    calls = {name: {} for name in gradients.METHODS}
    calls["smoothgrad"] = calls["vargrad"] = calls["smoothgrad_sq"] = dict(
        samples=2, generator=seeded())
    calls["integrated_gradients"] = dict(steps=4, batch_size=3, return_delta=True)
    for name, method in gradients.METHODS.items():
        with assert_unchanged(model):
            method(model, x, [0, 1, 2], **calls[name])
        with assert_unchanged(model), pytest.raises(ValueError, match="5 classes"):
            method(model, x, 7, **calls[name])
    assert same_state(before, model_state(model))
    assert all(p.grad is None for p in model.parameters())


def test_results_stay_on_the_inputs_device_and_dtype():
    model = TwoLayer().double().eval()
    x = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    for name, method in gradients.METHODS.items():
        opts = dict(samples=2, generator=seeded()) if name in ("smoothgrad", "smoothgrad_sq",
                                                                 "vargrad") else {}
        out = method(model, x, 0, **opts)
        assert out.dtype == torch.float64 and out.device == x.device, name


def test_bad_options_give_clear_errors():
    model = TwoLayer().eval()
    x = torch.ones(2, 2)
    with pytest.raises(ValueError, match="batch_size"):
        gradients.integrated_gradients(model, x, 0, batch_size=0)
    with pytest.raises(ValueError, match="samples"):
        gradients.smoothgrad(model, x, 0, samples=0)
    with pytest.raises(ValueError, match="base must be"):
        gradients.smoothgrad(model, x, 0, base="vargrad")
    with pytest.raises(ValueError, match="target has 3 entries"):
        gradients.integrated_gradients(model, x, [0, 1, 1])
    with pytest.raises(TypeError, match="integer class"):
        gradients.smoothgrad(model, x, torch.tensor([0.5, 1.0]), samples=1)


# ------------------------------------------------------------------------- the limits
def test_taylor_line_is_exact_for_a_linear_model_and_not_beyond_a_kink():
    w = torch.tensor([[1.0, -2.0], [0.5, 0.5]])
    model = TinyLinear(w, bias=[0.1, 0.0]).eval()
    x = torch.tensor([[1.0, 1.0]])
    ts = torch.linspace(-2, 2, 9)
    exact, linear = gradients.taylor_line(model, x, 0, torch.tensor([[1.0, 0.0]]), ts)
    assert exact.shape == (9, 1)
    assert torch.allclose(exact, linear, atol=1e-6)
    assert torch.allclose(exact[:, 0], -0.9 + ts)  # 1 - 2 + 0.1 + t
    # min(x, 1) from x0 = 0.5: the line is right up to the kink at t = 0.5, wrong after it
    exact, linear = gradients.taylor_line(Saturating().eval(), torch.tensor([[0.5]]), 0,
                                          torch.tensor([[1.0]]), ts)
    assert torch.allclose(linear[:, 0], 0.5 + ts)
    assert torch.allclose(exact[:, 0], torch.clamp(0.5 + ts, max=1.0))


def test_inputs_of_the_wrong_shape_get_a_clear_error():
    model = zoo.load_model("digits", device="cpu")
    with pytest.raises(ValueError, match=r"cannot take inputs of shape \(2, 3, 32, 32\)"):
        gradients.gradient(model, torch.rand(2, 3, 32, 32), 0)
