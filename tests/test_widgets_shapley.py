"""Chapter 08 explorers driven in plain pytest (no kernel): the coalition game, the estimates'
convergence, a deep ShapNet layer by layer with pruning, the explanation regulariser. Every
drawn number is recomputed here from the core (`xai_course.shapley`) and the models."""

import math

import pytest
import torch

from xai_course import shapley as S
from xai_course import zoo
from xai_course.widgets import shapley as chapter
from xai_course.widgets.base import seeded
from xai_course.widgets.shapley import (
    GROUPS,
    CoalitionGame,
    Convergence,
    Regularisation,
    ShapNetLayers,
)
from xai_course.zoo.shapnets import logits_from_explanation

KW = dict(sync=True, device="cpu")


@pytest.fixture(scope="module")
def game():
    e = CoalitionGame(n_samples=8, **KW).start()
    yield e
    e.close()


@pytest.fixture(scope="module")
def table():
    return zoo.load_model("breast-cancer", "cpu")


def trace(figure, name: str):
    return next(t for t in figure.data if t.name == name)


def by_hand(model, x, target, groups, members) -> float:
    """v(S) on the model itself: the players in S keep the patient's values, the others are
    at the average patient (0)."""
    kept = torch.isin(groups, torch.tensor(sorted(members), dtype=torch.long))
    with torch.no_grad():
        return model(torch.where(kept, x, 0.0))[0, target].item()


def test_after_every_order_the_running_average_is_the_shapley_value(game, table):
    e = game
    assert e.last_error is None, e.error.value
    x, target = e.request().x, e.result.target
    groups, names = chapter.player_groups(e.result.request.data.features, GROUPS)
    assert names == list(GROUPS) and groups.tolist()[:10] == [0, 1, 0, 0, 2, 3, 3, 3, 4, 5]
    exact = S.player_values(S.exact_shapley(table, x, 0.0, target, groups), groups)[0]
    running = e.result.extra["running"]
    assert running.shape == (720, 6)  # 6! orders, each once
    diff = (running[-1] - exact.double()).abs().max().item()
    # the dashed lines are the exact values, and the curves end on them
    for k, name in enumerate(names):
        assert trace(e.figure, f"φ {name}").y[0] == pytest.approx(exact[k].item(), abs=1e-6)
        assert trace(e.figure, name).y[-1] == pytest.approx(exact[k].item(), abs=1e-6)
    early = (running[9] - exact).abs().max().item()
    v = e.result.extra["v"]
    print(f"\nbreast-cancer, 6 players, target {target}: after 10 orders max |average - phi| "
          f"{early:.3f}, after all 720 {diff:.1e}; sum phi {exact.sum():.4f} = v(N) - v(∅) "
          f"{(v[-1] - v[0]).item():.4f}")
    assert diff <= 1e-6 and early > 1e-3
    assert exact.sum().item() == pytest.approx((v[-1] - v[0]).item(), abs=1e-5)  # efficiency
    assert f"Σφ = <b>{exact.sum():.3f}</b>" in e.status_line.value
    # another baseline is another game: absent measurements one standard deviation up
    e.extra_widgets["baseline"].value = 1.0
    shifted = S.player_values(S.exact_shapley(table, x, 1.0, target, groups), groups)[0]
    assert torch.allclose(e.result.extra["running"][-1], shifted.double(), atol=1e-6)
    with torch.no_grad():
        assert e.result.extra["v"][0].item() == pytest.approx(
            table(torch.ones_like(x))[0, target].item(), abs=1e-5)
    assert "every measurement at z = 1" in e.status_line.value
    print(f"baseline 1: phi {[round(p, 3) for p in shifted.tolist()]} (baseline 0: "
          f"{[round(p, 3) for p in exact.tolist()]})")
    e.extra_widgets["baseline"].value = 0.0


def test_switching_players_shows_v_of_the_coalition_and_what_each_adds(game, table):
    e = game
    x, target = e.request().x, e.result.target
    groups = chapter.player_groups(e.result.request.data.features, GROUPS)[0]
    assert e.coalition() == [0, 2, 4]  # every other player in at the start
    result = e.result
    for switched in ("texture", "size", "symmetry"):
        e.members[switched].value = not e.members[switched].value
        assert e.result is result  # drawn again, not computed again
        inside = set(e.coalition())
        v_s = by_hand(table, x, target, groups, inside)
        assert f"v(S) = {v_s:.2f}" in e.figure.layout.annotations[0].text
        bars = trace(e.figure, "adds")
        for k in range(6):
            with_k = by_hand(table, x, target, groups, inside | {k})
            without_k = by_hand(table, x, target, groups, inside - {k})
            assert bars.y[k] == pytest.approx(with_k - without_k, abs=1e-5)
        assert list(bars.marker.opacity) == [1.0 if k in inside else 0.3 for k in range(6)]
    assert e.coalition() == [1, 2]


def test_the_order_slider_shows_each_players_contribution_as_it_joins(game, table):
    e = game
    x, target = e.request().x, e.result.target
    groups = chapter.player_groups(e.result.request.data.features, GROUPS)[0]
    orders = e.result.extra["orders"]
    shuffle = torch.randperm(720, generator=seeded("cpu", 0))
    assert torch.equal(orders, chapter.all_orders(6)[shuffle])
    for shown in (1, 2, 720):
        e.view_widgets["order"].value = shown
        order = orders[shown - 1].tolist()
        bars = trace(e.figure, "order")
        joined, level = set(), by_hand(table, x, target, groups, set())
        assert bars.y[0] == pytest.approx(level, abs=1e-5)
        for k, player in enumerate(order):
            joined.add(player)
            after = by_hand(table, x, target, groups, joined)
            assert bars.x[k + 1] == f"+ {list(GROUPS)[player]}"
            assert bars.base[k + 1] == pytest.approx(level, abs=1e-5)
            assert bars.y[k + 1] == pytest.approx(after - level, abs=1e-5)
            level = after
        assert bars.y[-1] == pytest.approx(level, abs=1e-5)  # v(N)
        assert list(trace(e.figure, "shown").x) == [shown, shown]
    # the first point of each curve is the first order's contribution
    first = chapter.order_contributions(e.result.extra["v"], orders[:1])[0]
    assert [trace(e.figure, n).y[0] for n in GROUPS] == pytest.approx(first.tolist())
    # another seed takes the orders in another sequence, and ends at the same values
    phi = e.result.extra["running"][-1].clone()
    e.extra_widgets["seed"].value = 3
    assert not torch.equal(e.result.extra["orders"], orders)
    assert torch.allclose(e.result.extra["running"][-1], phi, atol=1e-9)
    e.extra_widgets["seed"].value = 0
    e.view_widgets["order"].value = 1


def test_order_contributions_average_to_the_shapley_value_of_a_hand_game():
    # v(S) = 1 if players 0 and 1 are both in S: they split it, player 2 gets nothing
    v = torch.tensor([0.0, 0, 0, 1, 0, 0, 0, 1], dtype=torch.float64)
    contributions = chapter.order_contributions(v, chapter.all_orders(3))
    assert contributions.mean(dim=0).tolist() == [0.5, 0.5, 0.0]
    assert torch.equal(contributions.sum(dim=1), torch.ones(6, dtype=torch.float64))
    with pytest.raises(ValueError, match="at most 8 players"):
        chapter.all_orders(9)


def test_convergence_draws_the_errors_of_the_cores_estimates(table):
    e = Convergence(n_samples=4, calls=(16, 64, 256, 1024, 4096), **KW).start()
    assert e.last_error is None, e.error.value
    x, target = e.request().x, e.result.target
    groups = chapter.player_groups(e.result.request.data.features)[0]
    exact = S.player_values(S.exact_shapley(table, x, 0.0, target, groups), groups)[0]
    assert torch.allclose(e.result.extra["exact"], exact)
    print("\nbreast-cancer, 10 players, rms error against model calls (seed 0):")
    for name, method in (("sampling_shapley", S.sampling_shapley),
                         ("kernel_shap", S.kernel_shap)):
        curve = trace(e.figure, name)
        errors = []
        for calls, drawn_calls, drawn in zip(e.calls, curve.x, curve.y):
            samples = (calls - 1) // 10 if name == "sampling_shapley" else calls
            estimate = S.player_values(method(table, x, target, samples=samples, groups=groups,
                                              generator=seeded("cpu", 0)), groups)[0]
            error = (estimate - exact).pow(2).mean().sqrt().item()
            assert drawn == pytest.approx(error, rel=1e-6)
            assert drawn_calls == (1 + 10 * samples if name == "sampling_shapley" else calls)
            errors.append(error)
        print(f"  {name:16s} calls {list(curve.x)}: {[f'{v:.3g}' for v in errors]}")
        assert errors[-1] < errors[0] / 4  # 256 times the calls: 1 / sqrt says 16 times less
    exact_line = next(t for t in e.figure.data if t.name.startswith("exact: 2^10"))
    assert list(exact_line.x) == [1024, 1024]
    scale = trace(e.figure, "∝ 1/√calls")
    first = trace(e.figure, "sampling_shapley")
    assert scale.y[0] * math.sqrt(scale.x[0]) == pytest.approx(first.y[0] * math.sqrt(first.x[0]))
    # the bars: the exact values and both estimates at the budget of the slider
    e.view_widgets["calls"].value = 256
    bars = [t for t in e.figure.data if t.type == "bar"]
    assert [t.name for t in bars] == ["exact", "sampling_shapley (251 calls)",
                                      "kernel_shap (256 calls)"]
    assert list(bars[0].y) == pytest.approx(exact.tolist())
    # another seed, other draws; six groups, 2^6 calls for the exact values
    before = list(first.y)
    e.extra_widgets["seed"].value = 1
    assert list(trace(e.figure, "sampling_shapley").y) != before
    e.extra_widgets["players"].value = "6 groups"
    assert e.result.extra["exact_calls"] == 64 and len(e.result.extra["names"]) == 6
    # the first picture stops at COARSE_CALLS
    coarse = e.compute(e.coarse(e.request()))
    assert [r["samples"] for r in coarse.extra["runs"]["kernel_shap"]] == [16, 64, 256]
    e.close()


@pytest.fixture(scope="module")
def layers():
    e = ShapNetLayers(**KW).start()
    yield e
    e.close()


def test_the_layers_drawn_are_the_shapnets_own_representations(layers):
    e = layers
    assert e.last_error is None, e.error.value
    model, data = e.request().model, e.result.request.data
    e.sample_picker.value = 5
    x, target = data.x[5:6], e.result.target
    with torch.no_grad():
        ours, bias = model.explain(x, layers=True)
        logits = model(x)[0]
    assert [tuple(h.shape) for h in e.result.extra["layers"]] == [(16, 8, 8), (16, 8, 8),
                                                                   (10, 8, 8)]
    for drawn, h in zip(e.result.extra["layers"], ours):
        assert torch.allclose(drawn, h[0], atol=1e-6)
    # local accuracy: the last layer's values for the target add up to g(x) - g(0)
    total = e.result.extra["layers"][-1][target].sum().item()
    assert total == pytest.approx((logits - bias[0])[target].item(), abs=1e-4)
    assert list(trace(e.figure, "not pruned").y) == pytest.approx(logits.tolist(), abs=1e-5)
    assert "layer 3: φ for class" in e.figure.layout.annotations[3].text


def test_another_digit_does_not_explain_the_whole_set_again(layers, monkeypatch):
    e = layers
    model, explained = e.request().model, []
    explain = model.explain

    def counting(x, *args, **kwargs):
        explained.append(len(x))
        return explain(x, *args, **kwargs)

    monkeypatch.setattr(model, "explain", counting)
    e.sample_picker.value = 6
    assert e.last_error is None and explained == [1]  # only the new digit's own prediction
    e.extra_widgets["prune"].value = 0.25
    assert len(e.result.request.data.x) in explained  # a new prune: the set once more
    e.extra_widgets["prune"].value = 0.0
    e.sample_picker.value = 5


def test_the_prune_slider_counts_the_modules_each_digit_skips(layers):
    e = layers
    model, data = e.request().model, e.result.request.data
    n = e.sample_picker.value
    with torch.no_grad():
        full = model(data.x)
    print(f"\ndigits-shapnet on {len(data.x)} digits:")
    totals = []
    for prune in (0.0, 0.5, 0.9):
        e.extra_widgets["prune"].value = prune
        assert e.last_error is None, e.error.value
        with torch.no_grad():
            skipped = model.skipped_modules(data.x, prune=prune)
            phi, bias = model.explain(data.x, prune=prune)
        moved = (logits_from_explanation(phi, bias) - full).abs().max(dim=1).values
        kept = (logits_from_explanation(phi, bias).argmax(1) == full.argmax(1)).float().mean()
        drawn = trace(e.figure, "digits")
        assert list(drawn.x) == skipped.tolist()
        assert list(drawn.y) == pytest.approx(moved.tolist(), abs=1e-6)
        assert e.result.extra["modules"] == 48  # 3 layers of 16 patch modules
        assert f"skips <b>{int(skipped[n])} of 48</b>" in e.status_line.value
        assert f"<b>{kept.item():.0%}</b>" in e.status_line.value
        totals.append(skipped.sum().item())
        print(f"  prune {prune}: modules skipped per digit {skipped.tolist()}, largest logit "
              f"change {moved.max():.2g}, class kept for {kept:.0%}")
        if prune == 0.0:  # only all-black patches are skipped: the output stays the same
            assert moved.max() <= 1e-4 and kept == 1.0
    assert totals[0] < totals[1] < totals[2]
    e.extra_widgets["prune"].value = 0.0


def test_a_model_that_is_not_a_conv_shapnet_is_refused_in_the_error_area():
    e = ShapNetLayers(models=["digits", "digits-shapnet"], **KW).start()
    assert isinstance(e.last_error, ValueError)
    assert "not a convolutional deep ShapNet" in e.error.value
    assert "no picture" in e.figure.layout.title.text
    e.model_picker.value = "digits-shapnet"  # and the explorer recovers
    assert e.last_error is None and e.error.value == ""
    e.close()


def test_a_failing_computation_is_shown_and_the_explorer_stays_usable(game, monkeypatch):
    e = game
    def broken(*args, **kwargs):
        raise RuntimeError("the game could not be played")

    monkeypatch.setattr(chapter, "coalition_values", broken)
    e.extra_widgets["seed"].value = 7
    assert isinstance(e.last_error, RuntimeError)
    assert "the game could not be played" in e.error.value
    e.members["texture"].value = not e.members["texture"].value  # a redraw without a result
    monkeypatch.undo()
    e.extra_widgets["seed"].value = 0
    assert e.last_error is None and e.error.value == ""
    assert e.result.extra["running"].shape == (720, 6)


def test_the_regulariser_trades_accuracy_for_sparser_explanations(monkeypatch):
    e = Regularisation(strengths=(0.0, 0.1), epochs=12, **KW).start()
    assert e.last_error is None, e.error.value
    test = zoo.dataset("breast-cancer", "test")
    print()
    for strength, run in e.runs.items():
        with torch.no_grad():
            phi, _ = run.model.explain(test.x)
        assert run.sparsity == pytest.approx(S.explanation_sparsity(phi))
        assert run.l1 == pytest.approx(S.explanation_l1(phi).item(), rel=1e-5)
        assert run.accuracy == zoo.accuracy(run.model, test)
        print(f"lambda {strength}: sparsity {run.sparsity:.1%}, mean L1 {run.l1:.2f}, test "
              f"accuracy {run.accuracy:.1%} ({run.seconds:.1f} s)")
    plain, strong = e.runs[0.0], e.runs[0.1]
    assert strong.l1 < 0.75 * plain.l1 and strong.sparsity > plain.sparsity
    drawn = trace(e.figure, "sparsity")
    assert list(drawn.y) == pytest.approx([plain.sparsity, strong.sparsity])
    assert list(trace(e.figure, "test accuracy").y) == [plain.accuracy, strong.accuracy]
    # the patient's bars: each run's own explanation of the target class
    x, target = e.request().x, e.result.target
    names = list(e.result.request.data.features)
    for strength in (0.0, 0.1):
        with torch.no_grad():
            phi = e.runs[strength].model.explain(x)[0][0, :, target]
        bars = trace(e.figure, f"φ with λ = {strength:g}")
        assert list(bars.x) == pytest.approx([phi[names.index(n)].item() for n in bars.y])
    # given runs are drawn as they are: nothing is trained again
    monkeypatch.setattr(chapter, "regularised_runs", lambda *a, **k: pytest.fail("trained"))
    again = Regularisation(runs=e.runs, **KW).start()
    assert again.last_error is None, again.error.value
    assert again.strengths == (0.0, 0.1)
    again.sample_picker.value = 2
    assert again.last_error is None and "λ = 0.1: sparsity" in again.status_line.value
    again.close()
    e.close()
