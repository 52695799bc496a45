"""Chapter 06: activation maximisation, from pixel "snow" to a generator as the prior.

Chapter 01's teaser (plain gradient ascent) first; then `maximize` and `maximize_latent`:
the objective rises, the images are recognised by an independent judge (the printed table),
channel and neuron objectives, determinism, the model and G left unchanged, clear
errors, and the Fourier parametrisation against Lucent's.
"""

import pytest
import torch
import torchvision
from torch import nn

from conftest import TinyLinear
from xai_course import activation_max, zoo
from xai_course.convention import model_state, same_state


def test_gradient_ascent_on_a_linear_model_goes_to_the_corners():
    # S(x) = w.x: the maximiser in [0, 1]^d is 1 where w > 0 and 0 where w < 0.
    w = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
    model = TinyLinear(w).eval()
    x, scores = activation_max.gradient_ascent(model, 0, (4,), steps=20, lr=0.1,
                                               return_history=True)
    assert torch.equal(x, torch.tensor([[1.0, 0.0, 1.0, 0.0]]))
    assert scores[-1] > scores[0]


def test_gradient_ascent_raises_the_class_score_of_a_zoo_model(assert_unchanged):
    model = zoo.load_model("digits", device="cpu")
    g = torch.Generator().manual_seed(0)
    with assert_unchanged(model):
        x, scores = activation_max.gradient_ascent(model, 3, (1, 32, 32), steps=30,
                                                   generator=g, return_history=True)
    assert x.shape == (1, 1, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert model(x).argmax(1).item() == 3
    assert scores[-1] > scores[0] + 1.0
    again = activation_max.gradient_ascent(model, 3, (1, 32, 32), steps=30,
                                           generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)


def test_gradient_ascent_bad_target():
    with pytest.raises(ValueError, match="2 classes"):
        activation_max.gradient_ascent(TinyLinear(torch.ones(2, 3)), 5, (3,), steps=1)


# --------------------------------------------------------------------------- chapter 06
CPU = "cpu"
DIGIT = (1, 32, 32)
ALL_DIGITS = [("class", c) for c in range(10)]
SEEDS = (0, 1, 2)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits_model():
    return zoo.load_model("digits", CPU)


@pytest.fixture(scope="module")
def gan():
    return zoo.load_model("digits-gan", CPU)


@pytest.fixture(scope="module")
def judge():
    return activation_max.digit_judge()


def test_the_judge_reads_real_digits_and_abstains_on_noise(judge):
    test = zoo.dataset("digits", split="test")
    verdict = judge(test.x)
    accuracy = (verdict.label == test.y).float().mean().item()
    print(f"judge on the test digits: {accuracy:.1%} labelled right, all typical by design")
    assert accuracy >= 0.95 and verdict.typical.all()
    assert ((verdict.confidence > 0) & (verdict.confidence <= 1)).all()
    noise = torch.rand(50, 1, 32, 32, generator=seeded(0))
    assert not judge(noise).typical.any()  # uniform noise is no digit
    blank = torch.zeros(3, 1, 32, 32)
    assert not judge(blank).typical.any()
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        judge(torch.rand(2, 3, 32, 32))


# The chapter's four pictures of "what a digit looks like to the model", all 10 classes at once.
METHODS = {
    "pixel, no prior": lambda model, gan, g: activation_max.maximize(
        model, ALL_DIGITS, DIGIT, init="noise", generator=g, history=True),
    "pixel + priors": lambda model, gan, g: activation_max.maximize(
        model, ALL_DIGITS, DIGIT, l2=0.05, tv=0.5, jitter=2, blur_every=4, init="noise",
        generator=g, history=True),
    "Fourier": lambda model, gan, g: activation_max.maximize(
        model, ALL_DIGITS, DIGIT, parametrization="fourier", jitter=2, init="noise",
        generator=g, history=True),
    "GAN prior": lambda model, gan, g: activation_max.maximize_latent(
        model, gan, ALL_DIGITS, generator=g, history=True),
}


@pytest.fixture(scope="module")
def runs(digits_model, gan):
    """{(method, seed): (images (10, 1, 32, 32), History)}, the model and G checked unchanged."""
    before = model_state(digits_model), model_state(gan)
    out = {(name, seed): method(digits_model, gan, seeded(seed))
           for name, method in METHODS.items() for seed in SEEDS}
    assert same_state(before[0], model_state(digits_model))
    assert same_state(before[1], model_state(gan))
    return out


def test_a_generator_prior_makes_digits_the_judge_recognises(runs, judge):
    """The chapter's point in numbers: how often the judge recognises each method's image of
    class c as a c (typical of real digits, and labelled c), 10 classes x 3 seeds. "label"
    alone is what a classifier without the option to abstain would say."""
    rates = {}
    print(f"\n{'method':<16}" + "".join(f"  seed {s}" for s in SEEDS)
          + "    mean   label  typical  confidence")
    for name in METHODS:
        row, labelled, typical, confidence = [], [], [], []
        for seed in SEEDS:
            images, _ = runs[name, seed]
            verdict = judge(images)
            row.append(verdict.recognised(torch.arange(10)).float().mean().item())
            labelled.append((verdict.label == torch.arange(10)).float().mean().item())
            typical.append(verdict.typical.float().mean().item())
            confidence.append(verdict.confidence.mean().item())
        rates[name] = sum(row) / len(row)
        print(f"{name:<16}" + "".join(f"  {r:6.0%}" for r in row)
              + f"  {rates[name]:6.0%}  {sum(labelled) / 3:6.0%}  {sum(typical) / 3:7.0%}"
              f"  {sum(confidence) / 3:10.2f}")
    assert rates["GAN prior"] >= 0.8
    assert rates["GAN prior"] >= rates["pixel, no prior"] + 0.5


def test_the_objective_rises_for_every_parametrisation(runs):
    """Non-decreasing on a moving average (20 steps), up to 10% of the whole rise."""
    for (name, seed), (_, trace) in runs.items():
        assert trace.objective.shape == (200, 10)
        average = trace.objective.unfold(0, 20, 1).mean(-1)  # (181, 10)
        rise = average[-1] - average[0]
        assert (rise > 0).all(), (name, seed, rise)
        drops = (average[:-1] - average[1:]).clamp(min=0).max(0).values
        assert (drops <= 0.1 * rise).all(), (name, seed, drops, rise)


def test_the_reached_logit_beats_the_real_digits_of_its_class(runs, digits_model):
    test = zoo.dataset("digits", split="test")
    with torch.no_grad():
        real = digits_model(test.x)
        mean_real = torch.stack([real[test.y == c, c].mean() for c in range(10)])
        for (name, seed), (images, _) in runs.items():
            reached = digits_model(images)[torch.arange(10), torch.arange(10)]
            assert (reached > mean_real).all(), (name, seed, reached, mean_real)
    print("mean logit of the real test digits per class:",
          [round(v, 1) for v in mean_real.tolist()])


def test_history_snapshots_start_and_end(runs, digits_model):
    images, trace = runs["Fourier", 0]
    assert trace.steps[0] == 0 and trace.steps[-1] == 200 and len(trace.steps) == 21
    assert trace.images.shape == (21, 10, 1, 32, 32) and torch.equal(trace.images[-1], images)
    assert 0 <= images.min() and images.max() <= 1
    images, trace = runs["GAN prior", 0]
    assert trace.latents.shape == (21, 10, 32) and trace.latents.abs().max() <= 3.0


def test_the_generator_draws_digits(gan, digits_model):
    x = gan.sample(200, seeded(0))
    assert x.shape == (200, 1, 32, 32) and 0 <= x.min() and x.max() <= 1
    with torch.no_grad():
        p = digits_model(x).softmax(1)
    confident = p.max(1).values > 0.9
    classes = p.argmax(1)[confident].unique().numel()
    print(f"digits-gan: confident on {confident.float().mean():.1%}, {classes} classes drawn")
    assert confident.float().mean() >= 0.6 and classes == 10
    assert sum(p.numel() for p in gan.parameters()) * 4 < 5e6


def test_channel_and_neuron_objectives_on_the_digits_model(digits_model, assert_unchanged):
    objectives = [("channel", "features.conv3", 5), ("neuron", "features.relu2", 3, 4, 4),
                  ("class", 7)]
    for parametrization in activation_max.PARAMETRIZATIONS:
        with assert_unchanged(digits_model):
            x, trace = activation_max.maximize(digits_model, objectives, DIGIT, steps=40,
                                               parametrization=parametrization,
                                               generator=seeded(), history=True)
        assert x.shape == (3, 1, 32, 32)
        assert (trace.objective[-5:].mean(0) > trace.objective[:5].mean(0) + 0.5).all()


@pytest.mark.parametrize("parametrization", activation_max.PARAMETRIZATIONS)
def test_channel_and_neuron_objectives_on_a_torchvision_model(parametrization, assert_unchanged):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    objectives = [("channel", "layer2.0.conv1", 7), ("neuron", "layer3.0.conv2", 4, 1, 1)]
    with assert_unchanged(model):
        x, trace = activation_max.maximize(model, objectives, (3, 64, 64), steps=30, jitter=2,
                                           parametrization=parametrization, generator=seeded(),
                                           history=True)
    assert x.shape == (2, 3, 64, 64) and 0 <= x.min() and x.max() <= 1
    assert (trace.objective[-5:].mean(0) > trace.objective[:5].mean(0)).all()


def test_a_model_in_training_mode_is_left_as_it_was(assert_unchanged):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).train()  # BatchNorm updates statistics
    with assert_unchanged(model):
        activation_max.maximize(model, [("class", 3), ("class", 4)], (3, 64, 64), steps=2,
                                generator=seeded())


def test_same_generator_same_images(digits_model, gan):
    def run(seed):
        return activation_max.maximize(digits_model, [("class", 1), ("class", 2)], DIGIT,
                                       steps=10, jitter=3, init="noise", generator=seeded(seed))
    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))
    for parametrization in activation_max.PARAMETRIZATIONS:
        a, b = (activation_max.maximize(digits_model, ("class", 4), DIGIT, steps=5,
                                        parametrization=parametrization, init="noise",
                                        generator=seeded(3)) for _ in range(2))
        assert torch.equal(a, b)
    a, b = (activation_max.maximize_latent(digits_model, gan, ("class", 4), steps=5,
                                           generator=seeded(3)) for _ in range(2))
    assert torch.equal(a, b)


def test_model_and_generator_unchanged_after_an_error(digits_model, gan, assert_unchanged):
    with assert_unchanged(digits_model), pytest.raises(ValueError, match="out of range"):
        activation_max.maximize(digits_model, ("channel", "features.conv3", 64), DIGIT, steps=3)
    cluttered = zoo.load_model("cluttered-digits", CPU)  # takes 3 x 64 x 64, not G's digits
    with assert_unchanged(cluttered), assert_unchanged(gan), \
            pytest.raises(ValueError, match="cannot take inputs of shape"):
        activation_max.maximize_latent(cluttered, gan, ("class", 3), steps=3)


@pytest.mark.parametrize("call, error, match", [
    (dict(objective=("channel", "features.conv9", 0)), ValueError,
     r"unknown layer 'features.conv9'; the model's layers are: features, features.conv1"),
    (dict(objective=("channel", "features.conv3", 64)), ValueError,
     r"channel 64 is out of range: layer 'features.conv3' has 64 channels \(valid: 0..63\)"),
    (dict(objective=("neuron", "features.conv3", 0, 8, 0)), ValueError,
     r"neuron position \(8, 0\) is out of range: .* 8 x 8 maps"),
    (dict(objective=("neuron", "classifier.fc1", 0, 0, 0)), ValueError,
     r"needs \(N, C, h, w\) feature maps"),
    (dict(objective=("class", 10)), ValueError, "10 classes"),
    (dict(objective=("logit", 3)), ValueError, "unknown objective"),
    (dict(objective=("class", 3, 4)), ValueError, "has 3 entries"),
    (dict(objective="class 3"), TypeError, "objective must be a tuple"),
    (dict(shape=(1, 28, 28)), ValueError, r"cannot take inputs of shape \(1, 1, 28, 28\)"),
    (dict(shape=(3, 32, 32)), ValueError, r"cannot take inputs of shape \(1, 3, 32, 32\)"),
    (dict(shape=(1, 0, 32)), ValueError, "shape must be one input's shape"),
    (dict(parametrization="wavelet"), ValueError, r"parametrization must be one of \['pixel'"),
    (dict(init="black"), ValueError, "init must be one of"),
    (dict(steps=0), ValueError, "steps must be a positive int"),
    (dict(l2=-1), ValueError, "l2 must be a number >= 0"),
    (dict(parametrization="fourier", blur_every=2), ValueError, "blur_every applies to the pixel"),
    (dict(shape=(1024,), tv=0.1), ValueError, r"need images \(C, H, W\)"),
])
def test_clear_errors(digits_model, assert_unchanged, call, error, match):
    kwargs = dict(objective=("class", 3), shape=DIGIT, steps=2) | call
    with assert_unchanged(digits_model), pytest.raises(error, match=match):
        activation_max.maximize(digits_model, **kwargs)


def test_clear_errors_of_the_latent_search(digits_model, gan):
    with pytest.raises(ValueError, match="must have a `latent_dim` attribute"):
        activation_max.maximize_latent(digits_model, nn.Linear(3, 4), ("class", 1), steps=1)
    with pytest.raises(ValueError, match="z_clip must be a number > 0"):
        activation_max.maximize_latent(digits_model, gan, ("class", 1), z_clip=0)


def test_fourier_image_is_lucents():
    """The same spectrum gives the same image as Lucent's `param.image(fft, decorrelate)`."""
    pytest.importorskip("lucent")
    from lucent.optvis import param

    for channels, (height, width) in [(3, (24, 32)), (1, (32, 32))]:
        params, image_f = param.image(width, h=height, channels=None if channels == 3 else 1)
        spectrum = torch.randn(params[0].shape, generator=seeded(0))
        with torch.no_grad():
            params[0].copy_(spectrum)
            theirs = image_f()
        ours = activation_max.fourier_image(spectrum, (height, width))
        assert ours.shape == theirs.shape == (1, channels, height, width)
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_fourier_reaches_lucents_objective_on_a_torchvision_model(assert_unchanged):
    """Same random-weight ResNet-18, channel, steps, lr and (no) transforms: our Fourier
    parametrisation reaches at least 90% of Lucent's objective."""
    pytest.importorskip("lucent")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    objective, shape = ("channel", "layer2.1.conv2", 11), (3, 64, 64)

    def channel_mean(x):
        with torch.no_grad(), activation_max._objective_function(model, [objective]) as a:
            return a(x).item()

    ours, theirs = [], []
    for seed in (0, 1):
        with assert_unchanged(model):
            x = activation_max.maximize(model, objective, shape, steps=64,
                                        parametrization="fourier", generator=seeded(seed))
            y = activation_max.maximize.reference(model, objective, shape, steps=64, seed=seed)
        ours.append(channel_mean(x))
        theirs.append(channel_mean(y))
    print(f"channel mean reached: ours {ours}, Lucent {theirs}")
    assert sum(ours) >= 0.9 * sum(theirs)
