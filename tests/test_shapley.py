"""Chapter 08: Shapley values, exact and estimated, and Shapley explanation networks.

- `exact_shapley`: efficiency, symmetry, dummy and linearity on random games to float
  precision; a three-player game and an interaction computed by hand; Captum `ShapleyValues`;
- `sampling_shapley` and `kernel_shap` equal Captum `ShapleyValueSampling` and `KernelShap`
  given the same random draws (<= 1e-5) on a hand-set model, the breast-cancer model and
  cluttered-digits superpixels; both converge to `exact_shapley` as samples grow;
  `kernel_shap` agrees with the `shap` package's `KernelExplainer` within sampling error;
- a shallow ShapNet's one-pass explanation is `exact_shapley` of the same network (random
  ones, the shipped `breast-cancer-shapnet`, one-layer deep and convolutional ones); deep
  ShapNets (random, the shipped `digits-shapnet`) keep local accuracy and missingness in
  every layer but are not exact; the butterfly reaches every feature; pruning skips modules
  and keeps the output; the L1 regulariser makes explanations sparser; accuracy against the
  plain networks and time against KernelSHAP, printed;
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
from xai_course.zoo.shapnets import fit_shapnet, logits_from_explanation


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


# --------------------------------------------------------------------------- deep ShapNets
def _deep_net(seed: int, d: int = 8, classes: int = 3, **options) -> S.DeepShapNet:
    torch.manual_seed(seed)
    return S.DeepShapNet(d, classes, channels=4, hidden=8,
                         reference=torch.randn(d, generator=seeded(seed)), **options).eval()


def _with_absent_features(net, x: torch.Tensor) -> torch.Tensor:
    """x with some features at the network's reference: feature 1 everywhere, the first
    half of row 0 and all of row 1."""
    x = x.clone()
    d = x.shape[1]
    x[:, 1] = net.reference[1]
    x[0, : d // 2] = net.reference[: d // 2]
    x[1] = net.reference
    return x


@pytest.fixture(scope="module")
def shapnet():
    return zoo.load_model("breast-cancer-shapnet", "cpu")


@pytest.fixture(scope="module")
def digits_shapnet():
    return zoo.load_model("digits-shapnet", "cpu")


def test_the_shipped_shallow_shapnet_explains_itself_exactly(shapnet, rows, assert_unchanged):
    # 30 features are 2^30 coalitions, beyond exact_shapley; but a module on a pair of
    # features is, for any grouping of the features, a game of at most two groups in which
    # each group plays as its feature: so the pair values summed per group are the exact
    # group values. Two groupings: the 10 measurements (3 features each), and features
    # 0..9 alone with 10..19 and 20..29 as two groups (12 players, 4,096 coalitions).
    rows = rows[:2]
    with torch.no_grad():
        phi, bias = shapnet.explain(rows)
        logits, at_reference = shapnet(rows), shapnet(shapnet.reference[None])
    assert torch.allclose(phi.sum(dim=1), logits - at_reference, atol=1e-5)  # efficiency
    assert torch.allclose(bias, at_reference.expand_as(bias), atol=1e-5)
    twelve = torch.cat([torch.arange(10), torch.full((10,), 10), torch.full((10,), 11)])
    for name, groups in [("10 measurements", MEASUREMENTS), ("12 players", twelve)]:
        d = int(groups.max()) + 1
        summed = torch.zeros(len(rows), d, 2).index_add(1, groups, phi)
        worst = 0.0
        for c in range(2):
            with assert_unchanged(shapnet):
                exact = S.exact_shapley(shapnet, rows, shapnet.reference, target=c, groups=groups)
            worst = max(worst, (summed[:, :, c] - S.player_values(exact, groups)).abs().max())
        print(f"breast-cancer-shapnet, {name}: max |one pass - exact_shapley| = {worst:.1e} "
              f"(largest |phi| {summed.abs().max().item():.3f})")
        assert worst <= 1e-5


def test_the_butterfly_reaches_every_feature_in_log2_d_layers():
    for d in (8, 16, 32):
        layers = round(math.log2(d))
        wiring = S.butterfly_wiring(d)
        assert len(wiring) == layers
        assert all(sorted(i for s in modules for i in s) == list(range(d)) for modules in wiring)
        assert all(s[1] - s[0] == 2 ** layer for layer, modules in enumerate(wiring)
                   for s in modules)
        assert S.reach(wiring, d).all()
        assert not S.reach(wiring[:-1], d).all()  # one layer fewer is not enough
    wiring = S.butterfly_wiring(30)  # not a power of two: more layers, every feature reached
    reached = S.reach(S.butterfly_wiring(30, 5), 30).float().mean().item()
    print(f"30 features: {len(wiring)} layers reach every pair (5 layers reach {reached:.0%})")
    assert S.reach(wiring, 30).all() and len(wiring) <= 2 * 5


def _layer_sums(net: S.DeepShapNet, x: torch.Tensor) -> list[torch.Tensor]:
    """Per layer, what local accuracy says its values add up to: sum over its modules of
    f_k(input) - f_k(reference), plus the layer's input when the residual adds it."""
    h, r, sums = x[:, :, None], net.reference[:, None], []
    for modules, shapley_modules in zip(net.wiring, net.layers):
        total = 0
        for s, module in zip(modules, shapley_modules):
            index = list(s)
            total = total + module.f(h[:, index].flatten(1)) - module.f(r[index].flatten())
        out, _ = net.explain(x, layers=True)
        layer = out[len(sums)]
        if net.residual and layer.shape == h.shape:
            total = total + h.sum(dim=1)
        sums.append(total)
        h, r = layer, torch.zeros_like(layer[0])
    return sums


@pytest.mark.parametrize("d", [8, 30])
def test_a_deep_shapnet_keeps_local_accuracy_and_missingness_in_every_layer(d):
    net = _deep_net(d, d)
    x = _with_absent_features(net, torch.randn(5, d, generator=seeded(20 + d)))
    absent = x == net.reference
    with torch.no_grad():
        layers, bias = net.explain(x, layers=True)
        gap = net(x) - net(net.reference[None])
        sums = _layer_sums(net, x)
    accuracy = (layers[-1].sum(dim=1) - gap).abs().max().item()
    per_layer = max((h.sum(dim=1) - s).abs().max().item() for h, s in zip(layers, sums))
    missing = max(h[absent].abs().max().item() for h in layers)
    print(f"deep ShapNet, d = {d}, {len(layers)} layers: |sum phi - (g(x) - g(r))| "
          f"{accuracy:.1e}; per layer |sum h - sum of module differences| {per_layer:.1e}; "
          f"largest value of an absent feature in any layer {missing}")
    assert accuracy <= 1e-5 and per_layer <= 1e-5
    assert missing == 0.0
    assert layers[-1].shape == (5, d, 3)


def test_a_deep_shapnet_is_not_exact_but_its_first_layer_is(assert_unchanged):
    one = _deep_net(1, 6, layers=1)
    deep = _deep_net(1, 8)
    x = torch.randn(4, 8, generator=seeded(30))
    with torch.no_grad():
        phi_one = one.explain(x[:, :6])[0]
        phi_deep = deep.explain(x)[0]
    with assert_unchanged(one):
        exact_one = S.exact_shapley(one, x[:, :6], one.reference, target=2)
    exact_deep = S.exact_shapley(deep, x, deep.reference, target=2)
    one_err = (phi_one[:, :, 2] - exact_one).abs().max().item()
    deep_err = (phi_deep[:, :, 2] - exact_deep).abs().max().item()
    print(f"one layer: max |one pass - exact| {one_err:.1e}; three layers: {deep_err:.1e} "
          f"(largest |phi| {exact_deep.abs().max().item():.3f}): local accuracy and "
          f"missingness, not the exact values")
    assert one_err <= 1e-5
    assert deep_err > 1e-4


def test_pruning_skips_modules_and_keeps_the_output(digits_shapnet):
    net = _deep_net(2, 8)
    x = _with_absent_features(net, torch.randn(4, 8, generator=seeded(40)))
    images = zoo.dataset("digits", n=32).x
    for name, model, inputs, modules in [
            ("deep ShapNet, 8 features", net, x, sum(map(len, net.wiring))),
            ("digits-shapnet", digits_shapnet, images, 3 * 16)]:
        with torch.no_grad():
            full, bias = model.explain(inputs, layers=True)
            pruned, pruned_bias = model.explain(inputs, layers=True, prune=0.0)
            skipped = model.skipped_modules(inputs)
            loose = model.skipped_modules(inputs, prune=0.5)
            phi, pruned_bias_too = model.explain(inputs, prune=0.5)
            moved = (phi - full[-1]).abs().max().item()
            share = (logits_from_explanation(phi, pruned_bias_too).argmax(1)
                     == model(inputs).argmax(1))
        diff = max((a - b).abs().max().item() for a, b in zip(full, pruned))
        print(f"{name}: modules skipped per instance {skipped.tolist()} of {modules}, "
              f"max |pruned - full| {diff:.1e}; prune=0.5 (the half of the features with the "
              f"smallest representations dropped at each layer) skips {loose.tolist()}, moves "
              f"the values by up to {moved:.1e}, keeps {share.float().mean():.0%} of the "
              f"predicted classes")
        assert diff <= 1e-6 and torch.equal(bias, pruned_bias)
        assert skipped.max() > 0 and (loose >= skipped).all() and loose.sum() > skipped.sum()


def test_the_digits_shapnet_keeps_local_accuracy_and_missingness(digits_shapnet):
    net, x = digits_shapnet, zoo.dataset("digits", n=16).x
    with torch.no_grad():
        layers, bias = net.explain(x, layers=True)
        gap = net(x) - net(torch.zeros_like(x[:1]))
        # per layer: the module on every patch, f(patch) - f(0), plus the residual
        h, sums = torch.nn.functional.pixel_unshuffle(x, net.block), []
        for module, dilation, out in zip(net.layers, net.dilations, layers):
            patches = net.patches(h, dilation).flatten(1)
            diff = module.f(patches) - module.f(torch.zeros_like(patches[0]))
            total = diff.view(len(x), -1, diff.shape[-1]).sum(dim=1)
            sums.append(total + (h.sum(dim=(2, 3)) if out.shape == h.shape else 0))
            h = out
    absent = (torch.nn.functional.pixel_unshuffle(x, net.block) == 0).all(dim=1)  # (N, 8, 8)
    accuracy = (layers[-1].sum(dim=(2, 3)) - gap).abs().max().item()
    per_layer = max((o.sum(dim=(2, 3)) - s).abs().max().item() for o, s in zip(layers, sums))
    missing = max(o.abs().sum(dim=1)[absent].max().item() for o in layers)
    print(f"digits-shapnet on 16 digits: |sum phi - (g(x) - g(0))| {accuracy:.1e} (logits up "
          f"to {gap.abs().max().item():.1f}); per layer {per_layer:.1e}; "
          f"{absent.float().mean():.0%} of the blocks are black, their largest value in any "
          f"layer {missing}")
    assert layers[-1].shape == (16, 10, 8, 8)
    assert accuracy <= 1e-4 and per_layer <= 1e-4
    assert missing == 0.0


@pytest.mark.parametrize("tile", [True, False])
def test_a_one_layer_conv_shapnet_is_exact_over_pixels_and_blocks(tile):
    torch.manual_seed(5)
    for block in (1, 2):  # 4 x 2 players: 256 coalitions
        net = S.DeepConvShapNet(1, 3, hidden=8, dilations=(1,), tile=tile, block=block).eval()
        x = torch.rand(2, 1, 4 * block, 2 * block, generator=seeded(50))
        x[0, :, :block, :block] = 0  # one player at the reference
        groups = torch.arange(8).view(4, 2).repeat_interleave(block, 0).repeat_interleave(
            block, 1)
        with torch.no_grad():
            phi, _ = net.explain(x)
        exact = S.exact_shapley(net, x, 0.0, target=1, groups=groups)
        diff = (phi[:, 1].flatten(1) - S.player_values(exact, groups)).abs().max().item()
        print(f"one conv layer, tile={tile}, 8 players of {block}x{block} px: max |one pass "
              f"- exact| {diff:.1e}")
        assert diff <= 1e-5
        assert phi[0, :, 0, 0].abs().max() == 0


def test_tiling_patches_hold_every_pixel_once():
    net = S.DeepConvShapNet(3, 10, dilations=(1, 2, 4, 8))
    h = torch.randn(2, 3, 16, 16, generator=seeded(60))
    for dilation in net.dilations:
        patches = net.patches(h, dilation)  # (2 x 64, 4, 3)
        assert patches.shape == (2 * 64, 4, 3)
        assert torch.equal(net.pixels(patches, h.shape, dilation), h)  # each pixel once
        # patch 0 of image 0: the pixels (0, 0), (0, d), (d, 0), (d, d)
        corners = h[0, :, ::dilation, ::dilation][:, :2, :2].reshape(3, 4).T
        assert torch.equal(patches[0], corners)


# --------------------------------------------------------------------------- training
def test_the_explanation_regulariser_makes_explanations_sparser():
    train, test = zoo.dataset("breast-cancer", "train"), zoo.dataset("breast-cancer", "test")
    subsets = [s for modules in S.butterfly_wiring(30, 2) for s in modules]  # 30 pairs
    results = []
    for strength in (0.0, 0.01, 0.03):
        torch.manual_seed(0)
        net = S.ShallowShapNet(30, 2, hidden=8, subsets=subsets)
        fit_shapnet(net, train, epochs=50, lr=1e-2, l1=strength, batch_size=len(train),
                    progress=False)
        with torch.no_grad():
            phi, _ = net.explain(test.x)
        results.append((S.explanation_sparsity(phi), zoo.accuracy(net, test),
                        S.explanation_l1(phi).item()))
        print(f"l1 strength {strength}: sparsity {results[-1][0]:.1%} of the values below 5% "
              f"of the largest, mean L1 {results[-1][2]:.2f}, test accuracy "
              f"{results[-1][1]:.1%}")
    sparsity, accuracy, l1 = zip(*results)
    assert sparsity[0] < sparsity[1] < sparsity[2] and sparsity[2] > sparsity[0] + 0.04
    assert l1[0] > l1[1] > l1[2]
    assert min(accuracy) >= 0.85


def test_the_shapnets_against_plain_networks_of_the_same_data(shapnet, digits_shapnet):
    for name, model, plain_name in [("breast-cancer-shapnet", shapnet, "breast-cancer"),
                                    ("digits-shapnet", digits_shapnet, "digits")]:
        data = zoo.dataset(zoo.model_info(name).dataset)
        plain = zoo.load_model(plain_name, "cpu")
        ours, theirs = zoo.accuracy(model, data), zoo.accuracy(plain, data)
        size = sum(p.numel() for p in model.parameters())
        plain_size = sum(p.numel() for p in plain.parameters())
        print(f"{name}: test accuracy {ours:.1%} ({size:,} parameters); {plain_name}: "
              f"{theirs:.1%} ({plain_size:,} parameters)")
        assert ours >= theirs - 0.08


def test_one_shapnet_pass_against_kernel_shap_at_the_same_error(shapnet, rows):
    import time

    x, target = rows[:1], 1
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(10):
            phi = shapnet.explain(x)[0][0, :, target]
        shapnet_time = (time.perf_counter() - start) / 10
    # the one-pass values are exact (see above): kernel_shap's error is measured against them
    exact_error = 1e-6  # the ShapNet's own error, float rounding
    print(f"breast-cancer-shapnet, 30 features: one pass {1e3 * shapnet_time:.2f} ms "
          f"(error <= {exact_error:.0e})")
    for samples in (100, 1000, 4000):
        start = time.perf_counter()
        estimate = S.kernel_shap(shapnet, x, target, samples=samples, generator=seeded(7))[0]
        elapsed = time.perf_counter() - start
        error = (estimate - phi).abs().max().item()
        needed = samples * (error / exact_error) ** 2  # error falls as 1 / sqrt(samples)
        print(f"  kernel_shap, {samples:5d} samples: {1e3 * elapsed:7.1f} ms, max error "
              f"{error:.1e}; to reach {exact_error:.0e}: about {needed:.1e} samples, "
              f"{elapsed / samples * needed / shapnet_time:.1e} times the ShapNet's pass")
    assert elapsed > 2 * shapnet_time  # 4000 samples: 4000 rows through the same network
    assert error < 0.1 * phi.abs().max().item()


def test_deep_shapnets_reject_bad_options():
    with pytest.raises(ValueError, match="features must be a positive int"):
        S.butterfly_wiring(0)
    with pytest.raises(ValueError, match=r"prune must be None, 0.0 .* fraction in \[0, 1\)"):
        _deep_net(0).explain(torch.zeros(1, 8), prune=1.0)
    with pytest.raises(ValueError, match="multiples of kernel x dilation = 4"):
        S.DeepConvShapNet(dilations=(1, 2)).explain(torch.zeros(1, 1, 6, 6))
    with pytest.raises(ValueError, match=r"reads 8 features, got x of shape \(2, 7\)"):
        _deep_net(0)(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="reads images of 1 channels whose sides are multiples "
                                         "of block = 4"):
        zoo.load_model("digits-shapnet", "cpu")(torch.zeros(1, 1, 30, 30))
    with pytest.raises(TypeError, match="floating-point"):
        _deep_net(0)(torch.zeros(2, 8, dtype=torch.long))
