"""Chapter 08: Shapley values, exact and estimated, and Shapley explanation networks.

- `exact_shapley`: efficiency, symmetry, dummy and linearity on random games to float
  precision; a three-player game and an interaction computed by hand; Captum `ShapleyValues`;
- `sampling_shapley` and `kernel_shap` equal Captum `ShapleyValueSampling` and `KernelShap`
  given the same random draws (<= 1e-5) on a hand-set model, the breast-cancer model and
  cluttered-digits superpixels; both converge to `exact_shapley` as samples grow;
  `kernel_shap` agrees with the `shap` package's `KernelExplainer` within sampling error;
- a shallow ShapNet's one-pass explanation is `exact_shapley` of the same network;
- bad input, the model left unchanged, repeatable runs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from xai_course import shapley as S
from xai_course import zoo
from xai_course.surrogates import superpixels


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Interaction(nn.Module):
    """S_0(x) = x_0 x_1 + 2 x_2 and S_1 = -S_0: an interaction of two features, and one
    that adds alone."""

    def forward(self, x):
        s = x[:, 0] * x[:, 1] + 2 * x[:, 2]
        return torch.stack([s, -s], dim=1)


def table_game(table: torch.Tensor):
    """The game v(S) = table[s] (s: the bits of S) as a function of 0/1 rows z (B, d)."""
    d = round(math.log2(len(table)))
    bits = 2 ** torch.arange(d)

    def v(z):
        return table[(z.round().long() * bits).sum(dim=1)]

    return v, d


def exact_of_table(table: torch.Tensor) -> torch.Tensor:
    v, d = table_game(table)
    ones = torch.ones(1, d, dtype=torch.float64)
    return S.exact_shapley(v, ones, baseline=0.0)[0]


MEASUREMENTS = torch.arange(30) % 10  # breast-cancer: a measurement's mean, error and worst


@pytest.fixture(scope="module")
def table_model():
    return zoo.load_model("breast-cancer", "cpu")


@pytest.fixture(scope="module")
def rows():
    return zoo.dataset("breast-cancer", n=3).x


@pytest.fixture(scope="module")
def cluttered():
    return zoo.load_model("cluttered-digits", "cpu")


@pytest.fixture(scope="module")
def canvas():
    data = zoo.dataset("cluttered-digits", n=1)
    return data.x[:1], int(data.y[0])


# --------------------------------------------------------------------------- exact
def test_a_three_player_game_computed_by_hand():
    # v: {} 0, {A} 10, {B} 20, {A,B} 40, {C} 30, {A,C} 50, {B,C} 60, {A,B,C} 90 (bits ABC)
    table = torch.tensor([0, 10, 20, 40, 30, 50, 60, 90], dtype=torch.float64)
    # phi_A = 1/3 (10 - 0) + 1/6 (40 - 20) + 1/6 (50 - 30) + 1/3 (90 - 60) = 20, and so on
    phi = exact_of_table(table)
    print(f"three-player game: phi = {phi.tolist()}")
    assert torch.allclose(phi, torch.tensor([20.0, 30.0, 40.0], dtype=torch.float64),
                          atol=1e-12)


def test_an_interaction_is_split_equally(assert_unchanged):
    model = Interaction()
    x = torch.tensor([[1.0, 2.0, 3.0], [2.0, -1.0, 0.5]])
    with assert_unchanged(model):
        phi = S.exact_shapley(model, x, 0.0, target=[0, 1])
    # x_0 x_1 is shared half and half by x_0 and x_1; 2 x_2 goes to x_2; class 1 is -class 0
    expected = torch.tensor([[1.0, 1.0, 6.0], [1.0, 1.0, -1.0]])
    print(f"interaction: {phi.tolist()}")
    assert torch.allclose(phi, expected, atol=1e-6)
    captum = S.exact_shapley.reference(model, x, 0.0, target=[0, 1])
    assert torch.allclose(phi, captum, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_four_properties_on_random_games(seed):
    d = 7
    g = seeded(seed)
    table = torch.randn(2 ** d, generator=g, dtype=torch.float64)
    other = torch.randn(2 ** d, generator=g, dtype=torch.float64)
    s = torch.arange(2 ** d)
    phi = exact_of_table(table)

    # efficiency: the values add up to v(N) - v(empty)
    assert phi.sum().item() == pytest.approx((table[-1] - table[0]).item(), abs=1e-12)

    # symmetry: make players 0 and 1 interchangeable
    b0, b1 = s & 1, (s >> 1) & 1
    swapped = s - b0 - 2 * b1 + b1 + 2 * b0
    symmetric = exact_of_table((table + table[swapped]) / 2)
    assert symmetric[0].item() == pytest.approx(symmetric[1].item(), abs=1e-12)

    # dummy: player 2 adds nothing to any coalition
    dummy = exact_of_table(table[s & ~4])
    assert abs(dummy[2].item()) <= 1e-12

    # linearity: phi(v + 3 w) = phi(v) + 3 phi(w)
    combined = exact_of_table(table + 3 * other)
    assert torch.allclose(combined, phi + 3 * exact_of_table(other), atol=1e-12)
    print(f"game {seed}: sum phi - (v(N) - v(0)) = "
          f"{(phi.sum() - (table[-1] - table[0])).item():.1e}, symmetric "
          f"{(symmetric[0] - symmetric[1]).item():.1e}, dummy {dummy[2].item():.1e}")


def test_exact_shapley_equals_captum_shapley_values(table_model, rows, assert_unchanged):
    groups = torch.arange(30) % 5  # 5 players: Captum tries all 5! = 120 orders
    with assert_unchanged(table_model):
        ours = S.exact_shapley(table_model, rows, 0.0, target=1, groups=groups)
    captum = S.exact_shapley.reference(table_model, rows, 0.0, target=1, groups=groups)
    diff = (ours - captum).abs().max().item()
    print(f"breast-cancer, 5 groups: max |exact - Captum ShapleyValues| = {diff:.1e}")
    assert diff <= 1e-5


def test_exact_shapley_on_superpixels_shares_the_score_difference(canvas, cluttered):
    x, target = canvas
    groups = superpixels(x[0], "grid", n=9)  # 3 x 3 cells: 512 coalitions
    phi = S.exact_shapley(cluttered, x, 0.0, target=target, groups=groups)
    per_cell = S.player_values(phi, groups)
    with torch.no_grad():
        gap = (cluttered(x)[0, target] - cluttered(torch.zeros_like(x))[0, target]).item()
    print(f"cluttered-digits, 3 x 3 cells: phi = {[round(v, 3) for v in per_cell[0].tolist()]}, "
          f"sum {per_cell.sum().item():.5f}, f(x) - f(0) = {gap:.5f}")
    assert phi.shape == x.shape
    assert per_cell.sum().item() == pytest.approx(gap, abs=1e-4)
    # every pixel of a cell holds its cell's value
    assert torch.allclose(phi[0], per_cell[0][groups].expand_as(phi[0]), atol=1e-6)


def test_too_many_players_for_exact_shapley(table_model, rows):
    with pytest.raises(ValueError, match=r"at most 20 players .*got d = 30 players .*groups="):
        S.exact_shapley(table_model, rows, 0.0, target=1)
    with pytest.raises(ValueError, match=r"got d = 21 players"):
        S.exact_shapley(table_model, rows, 0.0, target=1, groups=torch.arange(30) % 21)


# --------------------------------------------------------------------------- against Captum
def _cases(table_model, rows, cluttered, canvas):
    x, target = canvas
    return {
        "hand-set": (Interaction(), torch.tensor([[1.0, 2.0, 3.0], [2.0, -1.0, 0.5]]), 0,
                     None),
        "breast-cancer": (table_model, rows, 1, None),
        "breast-cancer groups": (table_model, rows, [0, 1, 1], MEASUREMENTS),
        "cluttered-digits superpixels": (cluttered, x, target,
                                         superpixels(x[0], "slic", n=12)),
    }


CASES = ["hand-set", "breast-cancer", "breast-cancer groups", "cluttered-digits superpixels"]


@pytest.mark.parametrize("case", CASES)
def test_sampling_shapley_equals_captum_shapley_value_sampling(case, table_model, rows,
                                                                 cluttered, canvas,
                                                                 assert_unchanged):
    model, x, target, groups = _cases(table_model, rows, cluttered, canvas)[case]
    samples = 3 if case.startswith("cluttered") else 10
    with assert_unchanged(model):
        ours = S.sampling_shapley(model, x, target, samples=samples, groups=groups,
                                  generator=seeded(3))
    captum = S.sampling_shapley.reference(model, x, target, samples=samples, groups=groups,
                                          generator=seeded(3))
    diff = (ours - captum).abs().max().item()
    print(f"{case}: max |ours - Captum ShapleyValueSampling| = {diff:.1e} (largest value "
          f"{ours.abs().max().item():.3f})")
    assert ours.shape == x.shape
    assert ours.abs().max() > 0.01
    assert diff <= 1e-5


@pytest.mark.parametrize("case", CASES)
def test_kernel_shap_equals_captum_kernel_shap(case, table_model, rows, cluttered, canvas,
                                               assert_unchanged):
    model, x, target, groups = _cases(table_model, rows, cluttered, canvas)[case]
    samples = {"hand-set": 40, "breast-cancer": 300}.get(case, 120)
    with assert_unchanged(model):
        ours = S.kernel_shap(model, x, target, samples=samples, groups=groups,
                             generator=seeded(4))
    # Captum weighs the full and empty coalitions 1e6 for "infinite": 1e12 makes its
    # answer the constrained fit's to float precision; its default is printed for the record
    captum = S.kernel_shap.reference(model, x, target, samples=samples, groups=groups,
                                     generator=seeded(4), inf_weight=1e12)
    default = S.kernel_shap.reference(model, x, target, samples=samples, groups=groups,
                                      generator=seeded(4))
    diff = (ours - captum).abs().max().item()
    diff_default = (ours - default).abs().max().item()
    print(f"{case}: max |ours - Captum KernelShap| = {diff:.1e} (inf_weight 1e12), "
          f"{diff_default:.1e} (Captum's 1e6); largest value {ours.abs().max().item():.3f}")
    assert ours.shape == x.shape
    assert diff <= 1e-5
    assert diff_default <= 1e-3


# --------------------------------------------------------------------------- convergence
def test_estimates_converge_to_the_exact_values(table_model, rows):
    x = rows[:1]
    exact = S.player_values(S.exact_shapley(table_model, x, 0.0, 1, MEASUREMENTS), MEASUREMENTS)

    def error(method, samples):  # root mean square error over players and 4 seeds
        runs = [S.player_values(method(table_model, x, 1, samples=samples, groups=MEASUREMENTS,
                                       generator=seeded(seed)), MEASUREMENTS)
                for seed in range(4)]
        return (torch.stack(runs) - exact).pow(2).mean().sqrt().item()

    scale = exact.abs().max().item()
    for method, budgets in [(S.sampling_shapley, [2, 8, 32, 128]),
                            (S.kernel_shap, [25, 100, 400, 1600])]:
        errors = [error(method, m) for m in budgets]
        passes = [m * 10 + 1 if method is S.sampling_shapley else m for m in budgets]
        print(f"{method.__name__} on breast-cancer (10 players, largest |phi| {scale:.3f}):")
        for m, p, e in zip(budgets, passes, errors):
            print(f"  samples {m:5d} ({p:5d} passes): rms error {e:.5f}, "
                  f"x sqrt(samples) {e * math.sqrt(m):.4f}")
        assert all(a > b for a, b in zip(errors, errors[1:]))
        assert errors[-1] < errors[0] / 4  # 64 times the samples: 1 / sqrt says 8 times less


def test_kernel_shap_agrees_with_the_shap_package(table_model, rows):
    shap = pytest.importorskip("shap")
    x, target, samples = rows[:1], 1, 2000

    def f(a):
        with torch.no_grad():
            return table_model(torch.from_numpy(a).float())[:, target].double().numpy()

    explainer = shap.KernelExplainer(f, np.zeros((1, 30)))
    np.random.seed(0)  # shap draws from numpy's global random state
    theirs = torch.from_numpy(np.asarray(
        explainer.shap_values(x.double().numpy(), nsamples=samples, l1_reg=False,
                              silent=True))).reshape(30)
    runs = torch.stack([S.kernel_shap(table_model, x, target, samples=samples,
                                      generator=seeded(seed))[0].double() for seed in range(5)])
    truth = S.sampling_shapley(table_model, x, target, samples=2000, generator=seeded(9))[0]
    sigma = runs.std(dim=0).max().item()  # the sampling error of one of our runs
    ours = runs[0]
    print(f"breast-cancer, 30 features, {samples} samples: max |ours - shap| "
          f"{(ours - theirs).abs().max().item():.4f}, |ours - truth| "
          f"{(ours - truth).abs().max().item():.4f}, |shap - truth| "
          f"{(theirs - truth).abs().max().item():.4f}; our run-to-run std {sigma:.4f} "
          f"(truth: 2000 random orders; largest |phi| {truth.abs().max().item():.3f})")
    assert (ours - theirs).abs().max().item() <= 5 * sigma
    assert (theirs - truth.double()).abs().max().item() <= 5 * sigma
    assert theirs.sum().item() == pytest.approx(ours.sum().item(), abs=1e-4)  # efficiency
    assert np.corrcoef(ours.numpy(), theirs.numpy())[0, 1] >= 0.99


# --------------------------------------------------------------------------- ShapNet
@pytest.mark.parametrize("seed", [0, 1])
def test_a_shallow_shapnet_explains_itself_exactly(seed, assert_unchanged):
    torch.manual_seed(seed)
    d, classes = 5, 3
    net = S.ShallowShapNet(d, classes, hidden=8,
                           reference=torch.randn(d, generator=seeded(seed))).eval()
    x = torch.randn(4, d, generator=seeded(10 + seed))
    with torch.no_grad():
        phi, bias = net.explain(x)
        logits = net(x)
    assert torch.allclose(bias + phi.sum(dim=1), logits, atol=1e-5)  # efficiency
    worst = 0.0
    for c in range(classes):
        with assert_unchanged(net):
            exact = S.exact_shapley(net, x, net.reference, target=c)
        worst = max(worst, (phi[:, :, c] - exact).abs().max().item())
    print(f"random shallow ShapNet {seed} ({len(net.subsets)} modules): max |one pass - "
          f"exact_shapley| = {worst:.1e}")
    assert worst <= 1e-5


def test_a_shapley_module_returns_the_shapley_values_of_its_network():
    torch.manual_seed(3)
    module = S.ShapleyModule(features=3, out=2, hidden=6)
    x, r = torch.randn(5, 3), torch.randn(3)
    with torch.no_grad():
        phi, bias = module(x, r)
        for c in range(2):
            exact = S.exact_shapley(lambda b, c=c: module.f(b)[:, c], x, r)
            assert torch.allclose(phi[:, :, c], exact, atol=1e-6)
        assert torch.allclose(bias, module.f(r)[None].expand(5, 2))


# --------------------------------------------------------------------------- the contract
def test_bad_input_gets_clear_errors(table_model, rows, canvas, cluttered):
    x, target = canvas
    with pytest.raises(TypeError, match="groups must be an integer tensor"):
        S.sampling_shapley(table_model, rows, 1, groups=MEASUREMENTS.float())
    with pytest.raises(ValueError, match=r"groups of shape \(29,\) do not fit inputs"):
        S.kernel_shap(table_model, rows, 1, groups=MEASUREMENTS[:29])
    with pytest.raises(ValueError, match=r"groups must hold player ids >= 0"):
        S.kernel_shap(table_model, rows, 1, groups=MEASUREMENTS - 1)
    with pytest.raises(ValueError, match="samples must be a positive int"):
        S.sampling_shapley(table_model, rows, 1, samples=0)
    with pytest.raises(ValueError, match="samples must be an int >= 3"):
        S.kernel_shap(table_model, rows, 1, samples=2)
    with pytest.raises(ValueError, match="at least 2 players"):
        S.kernel_shap(table_model, rows, 1, groups=torch.zeros(30, dtype=torch.long))
    with pytest.raises(ValueError, match="2 classes"):
        S.sampling_shapley(table_model, rows, 2)
    with pytest.raises(ValueError, match="10 classes"):
        S.kernel_shap(cluttered, x, 10, samples=10, groups=superpixels(x[0], "grid", n=4))
    with pytest.raises(ValueError, match=r"baseline of shape \(5,\) does not broadcast"):
        S.kernel_shap(table_model, rows, 1, baseline=torch.zeros(5))
    with pytest.raises(ValueError, match="pass target="):
        S.exact_shapley(table_model, rows, 0.0, groups=MEASUREMENTS)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        S.sampling_shapley(table_model, rows, 1, batch_size=0)
    with pytest.raises(TypeError, match="floating-point"):
        S.kernel_shap(table_model, rows.long(), 1)


def test_the_model_is_unchanged_also_after_an_error(canvas, cluttered, assert_unchanged):
    x, target = canvas
    groups = superpixels(x[0], "grid", n=6)
    cluttered.train()  # train mode: BatchNorm would update its statistics if run so
    try:
        for method in (S.sampling_shapley, S.kernel_shap):
            with assert_unchanged(cluttered):
                method(cluttered, x, target, samples=4, groups=groups, generator=seeded())
            with assert_unchanged(cluttered), pytest.raises(ValueError):
                method(cluttered, x, 99, samples=4, groups=groups)
    finally:
        cluttered.eval()


@pytest.mark.parametrize("method", [S.sampling_shapley, S.kernel_shap])
def test_same_generator_same_values_and_batches_do_not_matter(method, table_model, rows):
    a = method(table_model, rows, 1, samples=20, generator=seeded(5))
    b = method(table_model, rows, 1, samples=20, generator=seeded(5), batch_size=7)
    c = method(table_model, rows, 1, samples=20, generator=seeded(6))
    assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(a, c)
