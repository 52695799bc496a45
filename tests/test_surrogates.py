"""Chapter 05: LIME with linear and tree surrogates, and tree regularisation.

- linear `lime` and `lime_tabular` against Captum `Lime` / `LimeBase` on the same samples,
  kernel weights, baseline and scikit-learn Ridge (max coefficient difference <= 1e-6);
- an additive model with known superpixel weights: linear LIME recovers them;
- tree surrogates: fidelity grows with depth, the tree interpreter sums to the prediction;
- tree regularisation: shorter decision paths at a small cost in accuracy;
- superpixels, the path-length count, bad input, the model left unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xai_course import surrogates as S
from xai_course import zoo


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def canvas():
    data = zoo.dataset("cluttered-digits", n=2)
    return data.x[:1], int(data.y[0])


@pytest.fixture(scope="module")
def cluttered():
    return zoo.load_model("cluttered-digits", "cpu")


# --------------------------------------------------------------------------- superpixels
@pytest.mark.parametrize("method", S.SEGMENTERS)
def test_superpixels_give_consecutive_ids_at_image_size(canvas, method):
    x, _ = canvas
    segments = S.superpixels(x[0], method, n=30)
    ids = segments.unique()
    print(f"{method}: {len(ids)} superpixels for n=30")
    assert segments.shape == (64, 64) and segments.dtype == torch.long
    assert torch.equal(ids, torch.arange(len(ids)))
    assert 4 <= len(ids) <= 80


def test_grid_superpixels_on_a_grey_digit():
    digit = zoo.dataset("digits", n=1).x
    segments = S.superpixels(digit, "grid", n=16)
    assert torch.equal(torch.bincount(segments.flatten()), torch.full((16,), 64))
    assert S.superpixels(digit[0], "slic", n=16).unique().numel() >= 2  # one grey channel


# --------------------------------------------------------------------------- against Captum
@pytest.mark.parametrize("name, method, baseline", [
    ("digits", "grid", "mean"),
    ("cluttered-digits", "slic", "blur"),
    ("cluttered-digits", "quickshift", 0.0),
])
def test_linear_lime_equals_captum_lime(name, method, baseline, assert_unchanged):
    model = zoo.load_model(name, "cpu")
    data = zoo.dataset(zoo.model_info(name).dataset, n=2)
    x, target = data.x[1:2], int(data.y[1])
    segments = S.superpixels(x[0], method, n=25)
    options = dict(segments=segments, samples=300, baseline=baseline, kernel_width=0.3)
    with assert_unchanged(model):
        ours = S.lime(model, x, target, generator=seeded(), **options)
    captum = S.lime.reference(model, x, target, generator=seeded(), **options)
    diff = (ours - captum).abs().max().item()
    print(f"{name} {method} baseline={baseline}: max |ours - Captum Lime| = {diff:.2e} "
          f"(largest weight {ours.abs().max().item():.3f})")
    assert ours.shape == (1, *x.shape[2:])
    assert ours.abs().max() > 0.01
    assert diff <= 1e-6


def test_lime_on_a_torchvision_network_agrees_with_captum():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.rand(1, 3, 128, 128, generator=seeded(4))
    segments = S.superpixels(x[0], "grid", n=16)
    options = dict(segments=segments, samples=48, batch_size=16)
    captum = S.lime.reference(model, x, 0, generator=seeded(), **options)
    ours = S.lime(model, x, 0, generator=seeded(), **options)
    diff = (ours - captum).abs().max().item()
    print(f"resnet18 (random) 128 px: max |ours - Captum Lime| = {diff:.2e}")
    assert diff <= 1e-6


def test_lime_tabular_equals_captum_limebase(assert_unchanged):
    model = zoo.load_model("breast-cancer", "cpu")
    background = zoo.dataset("breast-cancer", "train").x
    x = zoo.dataset("breast-cancer", n=2).x
    with assert_unchanged(model):
        ours = S.lime_tabular(model, x, 1, background, samples=400, generator=seeded())
    captum = S.lime_tabular.reference(model, x, 1, background, samples=400, generator=seeded())
    diff = (ours - captum).abs().max().item()
    print(f"breast-cancer: max |ours - Captum LimeBase| = {diff:.2e} "
          f"(largest coefficient {ours.abs().max().item():.3f})")
    assert ours.shape == (2, 30)
    assert diff <= 1e-6


# --------------------------------------------------------------------------- known answers
class Additive(nn.Module):
    """S_0(x) = sum_k w_k * (sum of x over superpixel k, all channels); S_1 = -S_0."""

    def __init__(self, segments: torch.Tensor, w: torch.Tensor):
        super().__init__()
        self.register_buffer("pixel_weight", w[segments].float())

    def forward(self, x):
        s = (x.sum(dim=1) * self.pixel_weight).sum(dim=(1, 2))
        return torch.stack([s, -s], dim=1)


def test_linear_lime_recovers_the_weights_of_an_additive_model(canvas):
    x, _ = canvas
    segments = S.superpixels(x[0], "slic", n=40)
    k = int(segments.max()) + 1
    w = torch.randn(k, generator=seeded(1)) / 100
    model = Additive(segments, w)
    # switching superpixel k off (baseline 0) removes w_k * (its pixel sum): the true weight
    truth = w * torch.zeros(k).index_add_(0, segments.flatten(), x[0].sum(0).flatten())
    attr, fits = S.lime(model, x, 0, segments=segments, samples=1000, baseline=0.0,
                        generator=seeded(), return_surrogate=True)
    recovered = fits[0].coefficients.float()
    corr = np.corrcoef(recovered.numpy(), truth.numpy())[0, 1]
    print(f"additive model, {k} superpixels: correlation {corr:.5f}, fidelity "
          f"{fits[0].fidelity:.5f} (fresh samples {fits[0].fidelity_fresh:.5f})")
    assert corr >= 0.99
    assert fits[0].fidelity > 0.99 and fits[0].fidelity_fresh > 0.99
    assert torch.allclose(attr[0], recovered[segments])  # painted back per superpixel


def test_tree_fidelity_grows_with_depth_and_the_interpreter_sums(canvas, cluttered):
    x, target = canvas
    segments = S.superpixels(x[0], "slic", n=30)
    _, (fit,) = S.lime(cluttered, x, target, segments=segments, samples=600,
                       generator=seeded(), return_surrogate=True)
    fidelity = {}
    for depth in (1, 2, 3, 5, 8):
        tree = S.fit_surrogate(fit.z, fit.y, fit.weights, "tree", max_depth=depth)
        fidelity[depth] = tree.fidelity
        root, contributions = S.tree_contributions(tree.tree, fit.z[0].numpy())
        assert root == pytest.approx(tree.intercept)
        # the interpreter's sum is the tree's prediction, at the original and elsewhere
        assert root + contributions.sum() == pytest.approx(
            tree.predict(fit.z[:1]).item(), abs=1e-9)
        for row in fit.z[1:6]:
            r, c = S.tree_contributions(tree.tree, row.numpy())
            assert r + c.sum() == pytest.approx(tree.predict(row[None]).item(), abs=1e-9)
    print("tree fidelity (weighted R^2) by depth:",
          {d: round(f, 4) for d, f in fidelity.items()}, f"; linear: {fit.fidelity:.4f}")
    values = list(fidelity.values())
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:]))
    assert values[-1] > values[0] + 0.2


def test_tree_lime_attribution_is_the_interpreter_painted_back(canvas, cluttered):
    x, target = canvas
    segments = S.superpixels(x[0], "grid", n=16)
    attr, (fit,) = S.lime(cluttered, x, target, segments=segments, samples=300,
                          surrogate="tree", max_depth=3, generator=seeded(),
                          return_surrogate=True)
    assert fit.kind == "tree" and fit.fidelity_fresh is not None
    assert torch.allclose(attr[0], fit.coefficients.float()[segments])
    prediction = fit.predict(torch.ones(1, 16)).item()
    assert fit.intercept + fit.coefficients.sum().item() == pytest.approx(prediction)
    assert (fit.coefficients != 0).sum() <= 7  # a depth-3 tree splits on at most 7 features


def test_tabular_tree_and_fidelity_on_breast_cancer():
    model = zoo.load_model("breast-cancer", "cpu")
    background = zoo.dataset("breast-cancer", "train").x
    x = zoo.dataset("breast-cancer", n=1).x
    fidelity = {}
    for kind, depth in [("linear", 3), ("tree", 2), ("tree", 6)]:
        attr, (fit,) = S.lime_tabular(model, x, 0, background, samples=500, surrogate=kind,
                                      max_depth=depth, generator=seeded(),
                                      return_surrogate=True)
        fidelity[f"{kind} {depth}"] = (round(fit.fidelity, 4), round(fit.fidelity_fresh, 4))
        if kind == "tree":
            assert fit.intercept + attr.sum().item() == pytest.approx(
                fit.predict(fit.z[:1]).item())
    print("breast-cancer fidelity (samples, fresh):", fidelity)
    assert fidelity["tree 6"][0] > fidelity["tree 2"][0]


# --------------------------------------------------------------------------- tree regularisation
def test_average_path_length_counts_depths_not_node_ids():
    x, y = S.two_moons(300, seed=0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    with torch.no_grad():  # a fixed smooth boundary: the label rule as a network
        model[0].weight.copy_(torch.randn(16, 2, generator=seeded(3)))
    length, tree = S.average_path_length(model, x, min_samples_leaf=25)
    t = tree.tree_
    depth = np.zeros(t.node_count, dtype=int)
    for node in range(t.node_count):  # children come after their parents
        for child in (t.children_left[node], t.children_right[node]):
            if child != -1:
                depth[child] = depth[node] + 1
    leaves = tree.apply(x.numpy())
    assert length == pytest.approx(depth[leaves].mean())
    assert length != pytest.approx(leaves.mean())  # the public code's count (leaf ids)


def test_tree_regularisation_shortens_the_paths_at_a_small_cost():
    x, y = S.two_moons(300, seed=0)
    test = S.two_moons(1000, seed=1)
    runs = {strength: S.tree_regularized_training(x, y, strength=strength, test=test,
                                                  generator=seeded())
            for strength in (0.0, 3.0)}
    for strength, run in runs.items():
        print(f"strength {strength}: average path length {run.path_length:.3f}, accuracy "
              f"train {run.accuracy:.3f} test {run.test_accuracy:.3f}, tree fidelity "
              f"{run.fidelity:.3f}")
    plain, regular = runs[0.0], runs[3.0]
    assert regular.path_length <= plain.path_length - 0.3  # measured: 2.917 -> 2.483
    assert regular.test_accuracy >= plain.test_accuracy - 0.08  # measured: 0.861 -> 0.825
    assert regular.test_accuracy > 0.75


# --------------------------------------------------------------------------- bad input
def test_bad_input_gets_clear_errors(canvas, cluttered):
    x, target = canvas
    segments = S.superpixels(x[0], "grid", n=16)
    with pytest.raises(ValueError, match=r"segments must have shape \(H, W\) = \(64, 64\)"):
        S.lime(cluttered, x, target, segments=segments[:32])
    with pytest.raises(ValueError, match="single segment"):
        S.lime(cluttered, x, target, segments=torch.zeros(64, 64, dtype=torch.long))
    with pytest.raises(TypeError, match="integer tensor"):
        S.lime(cluttered, x, target, segments=segments.float())
    with pytest.raises(ValueError, match="samples must be an int >= 2"):
        S.lime(cluttered, x, target, segments=segments, samples=1)
    with pytest.raises(ValueError, match="surrogate must be one of"):
        S.lime(cluttered, x, target, segments=segments, surrogate="forest")
    with pytest.raises(ValueError, match="baseline must be one of"):
        S.lime(cluttered, x, target, segments=segments, samples=4, baseline="grey")
    with pytest.raises(ValueError, match="10 classes"):
        S.lime(cluttered, x, 10, segments=segments, samples=4)
    with pytest.raises(ValueError, match="kernel_width must be a positive number"):
        S.lime(cluttered, x, target, segments=segments, kernel_width=0)
    with pytest.raises(ValueError, match="method must be one of"):
        S.superpixels(x[0], "watershed")
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        S.superpixels(x[0], "slic", n=1)
    table = zoo.load_model("breast-cancer", "cpu")
    rows = zoo.dataset("breast-cancer", n=2).x
    with pytest.raises(ValueError, match=r"background must be \(M, D\)"):
        S.lime_tabular(table, rows, 0, rows[:, :5])
    with pytest.raises(ValueError, match="samples must be an int >= 2"):
        S.lime_tabular(table, rows, 0, rows, samples=0)


def test_the_model_is_unchanged_also_after_an_error(canvas, cluttered, assert_unchanged):
    x, target = canvas
    cluttered.train()  # train mode: BatchNorm would update its statistics if run so
    try:
        with assert_unchanged(cluttered):
            S.lime(cluttered, x, target, samples=20, generator=seeded())
        with assert_unchanged(cluttered), pytest.raises(ValueError):
            S.lime(cluttered, x, 99, samples=20)
    finally:
        cluttered.eval()


def test_same_generator_same_explanation(canvas, cluttered):
    x, target = canvas
    a = S.lime(cluttered, x, target, samples=50, generator=seeded(5))
    b = S.lime(cluttered, x, target, samples=50, generator=seeded(5))
    c = S.lime(cluttered, x, target, samples=50, generator=seeded(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 10.0])
def test_weighted_ridge_matches_scikit_learn(alpha):
    from sklearn.linear_model import LinearRegression, Ridge

    g = seeded(2)
    z = (torch.rand(200, 12, generator=g) > 0.5).double()
    y = z @ torch.randn(12, generator=g).double() + 0.1 * torch.randn(200, generator=g).double()
    w = torch.rand(200, generator=g).double()
    fit = S.fit_surrogate(z, y, w, "linear", alpha=alpha)
    sk = (Ridge(alpha=alpha) if alpha else LinearRegression()).fit(z.numpy(), y.numpy(),
                                                                   sample_weight=w.numpy())
    assert np.abs(fit.coefficients.numpy() - sk.coef_).max() < 1e-9
    assert fit.intercept == pytest.approx(sk.intercept_, abs=1e-9)
    r2 = sk.score(z.numpy(), y.numpy(), sample_weight=w.numpy())
    assert fit.fidelity == pytest.approx(r2, abs=1e-9)
