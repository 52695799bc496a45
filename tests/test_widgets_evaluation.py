"""Chapter 09 explorers driven in plain pytest (no kernel): the toy ROAR set, the sanity-check
gallery, ROAR / KAR curves with a point retrained on demand, the localisation leaderboard.
Every drawn number is recomputed here from the core (`xai_course.evaluation`) with the
explorer's settings; and the leaderboard's core (`localisation_scores`,
`leaderboard_methods`, the shipped table) is checked against the scores it is made of."""

import functools

import numpy as np
import pytest
import torch

from xai_course import evaluation, gradients, zoo
from xai_course.perturbation import count_passes
from xai_course.widgets import evaluation as chapter
from xai_course.widgets.base import seeded
from xai_course.widgets.evaluation import Leaderboard, ROARCurves, SanityGallery, ToyROAR

KW = dict(sync=True, device="cpu", n_samples=4)


def trace(figure, name: str):
    return next(t for t in figure.data if t.name == name)


def heatmaps(figure) -> list[np.ndarray]:
    return [np.asarray(t.z, dtype=float) for t in figure.data if t.type == "heatmap"]


@functools.cache
def _model():
    return zoo.load_model("cluttered-digits", device="cpu")


@functools.cache
def _data(n, split="test"):
    return zoo.dataset("cluttered-digits", split=split, n=n)


# --------------------------------------------------------------------------- toy ROAR
def test_the_toy_curves_are_toy_roars_means_and_ranges():
    e = ToyROAR(**KW).start()
    assert e.last_error is None, e.error.value
    table = evaluation.toy_roar(seeds=5)
    stats = table.groupby(["retrained", "ranking", "removed"]).accuracy.agg(
        ["mean", "min", "max"])
    for retrained, label in ((True, "retrained"), (False, "not retrained")):
        for ranking in chapter.RANKINGS:
            name = f"{ranking}, {label}"
            s = stats.loc[(retrained, ranking)]
            assert list(trace(e.figure, name).x) == list(range(0, 17, 2))
            assert list(trace(e.figure, name).y) == pytest.approx(s["mean"].tolist())
            assert list(trace(e.figure, f"{name} low").y) == pytest.approx(s["min"].tolist())
            assert list(trace(e.figure, f"{name} high").y) == pytest.approx(s["max"].tolist())
    mean = stats["mean"]
    print(f"\ntoy ROAR as drawn (5 seeds): retrained, inverted at 0/12/14 removed "
          f"{mean[True, 'inverted', 0]:.3f}/{mean[True, 'inverted', 12]:.3f}/"
          f"{mean[True, 'inverted', 14]:.3f}; true at 2 removed {mean[True, 'true', 2]:.3f}; "
          f"not retrained, inverted at 12 {mean[False, 'inverted', 12]:.3f}")
    assert mean[True, "inverted", 12] > mean[True, "inverted", 0] - 0.01
    assert mean[False, "inverted", 12] < mean[True, "inverted", 12] - 0.03
    assert f"<b>{mean[True, 'inverted', 12]:.1%}</b>" in e.status_line.value
    # the toggles only redraw: the curves stay in the figure, hidden
    result = e.result
    e.view_widgets["random"].value = False
    e.view_widgets["not retrained"].value = False
    assert e.result is result
    for ranking in chapter.RANKINGS:
        for label in ("retrained", "not retrained"):
            shown = ranking != "random" and label == "retrained"
            assert (trace(e.figure, f"{ranking}, {label}").visible is not False) == shown
            assert (trace(e.figure, f"{ranking}, {label} low").visible is not False) == shown
    # the seeds are a recomputation; more than one seed first draws one
    assert e.coarse(e.request()).extras["seeds"] == 1
    e.extra_widgets["seeds"].value = 2
    two = evaluation.toy_roar(seeds=2).groupby(["retrained", "ranking", "removed"]).accuracy
    assert list(trace(e.figure, "true, retrained").y) == pytest.approx(
        two.mean()[True, "true"].tolist())
    e.close()


# --------------------------------------------------------------------------- sanity checks
@pytest.fixture(scope="module")
def gallery():
    e = SanityGallery(**KW)
    e.normalize.value = "none"  # the maps drawn as computed
    e.start()
    yield e
    e.close()


def _per_step(table):
    return table.groupby("step")[["spearman", "ssim"]].mean()


def test_the_gallery_draws_the_cascade_sanity_check_measures(gallery):
    e = gallery
    assert e.last_error is None, e.error.value
    request, target = e.request(), e.result.target
    expected = evaluation.sanity_check(request.model, gradients.gradient, request.x, target,
                                       generator=seeded("cpu", 0))
    steps = _per_step(expected)
    assert list(trace(e.figure, "Spearman").y) == pytest.approx(steps.spearman.tolist())
    assert list(trace(e.figure, "SSIM").y) == pytest.approx(steps.ssim.tolist())
    layers = evaluation.randomisable_layers(request.model, request.x)
    assert layers == ["features.conv1", "features.conv2", "features.conv3", "features.conv4",
                      "features.conv5", "fc"]  # BatchNorms folded into the convolutions
    drawn = heatmaps(e.figure)
    assert len(drawn) == len(layers) + 1
    trained = gradients.gradient(request.model, request.x, target).abs().sum(1)[0]
    np.testing.assert_allclose(drawn[0], trained.numpy(), rtol=1e-5, atol=1e-8)
    assert not np.allclose(drawn[-1], drawn[0])  # the last map: every layer re-drawn
    assert f"Spearman <b>{steps.spearman.iloc[-1]:.2f}</b>" in e.status_line.value


def test_guided_backprop_survives_the_randomisation_the_gradient_does_not(gallery):
    e = gallery
    per_method = {}
    for name in ("gradient", "Guided Backprop"):
        e.method_picker.value = name
        assert e.last_error is None, e.error.value
        per_method[name] = np.asarray(trace(e.figure, "Spearman").y)
    request = e.request()
    expected = evaluation.sanity_check(request.model, gradients.guided_backprop, request.x,
                                       e.result.target, generator=seeded("cpu", 0))
    assert per_method["Guided Backprop"] == pytest.approx(_per_step(expected).spearman.tolist())
    print("\nSpearman with the trained map, fc first: " + "; ".join(
        f"{name} {np.round(values[1:], 2).tolist()}" for name, values in per_method.items()))
    # the classifier and the top convolutions re-drawn: Guided Backprop's map barely moves,
    # the gradient's already does; once the first convolutions go, both do
    gb, grad = per_method["Guided Backprop"], per_method["gradient"]
    assert (gb[1:3] > 0.85).all() and (grad[1:3] < 0.7).all()
    assert (gb[1:5] > grad[1:5] + 0.2).all()
    # another seed draws other weights: the same numbers as sanity_check with that seed
    e.extra_widgets["seed"].value = 1
    again = evaluation.sanity_check(request.model, gradients.guided_backprop, request.x,
                                    e.result.target, generator=seeded("cpu", 1))
    assert list(trace(e.figure, "SSIM").y) == pytest.approx(_per_step(again).ssim.tolist())
    e.extra_widgets["seed"].value = 0
    e.method_picker.value = "gradient"


def test_smoothgrad_draws_the_same_noise_at_every_step(gallery):
    e = gallery
    e.method_picker.value = "SmoothGrad"
    e.option_widgets("SmoothGrad")["samples"].value = 4
    request = e.request()

    def smoothgrad(model, x, target):
        return gradients.smoothgrad(model, x, target, samples=4, generator=seeded("cpu"))

    expected = evaluation.sanity_check(request.model, smoothgrad, request.x, e.result.target,
                                       generator=seeded("cpu", 0))
    assert list(trace(e.figure, "Spearman").y) == pytest.approx(
        _per_step(expected).spearman.tolist())
    e.method_picker.value = "gradient"


# --------------------------------------------------------------------------- ROAR curves
@pytest.fixture(scope="module")
def sweep():
    """A tiny sweep (256 train and 64 test canvases, a width-8 model trained 3 epochs: near
    chance, but every seed and estimator its own number): ROAR with two seeds, KAR and
    removal without retraining with one."""
    model = _model()
    data = (_data(256, "train"), _data(64))
    train_fn = functools.partial(evaluation.train_canvas_model, epochs=3, width=8)
    common = dict(estimators={"GRAD": gradients.gradient}, dataset=data, fractions=(0.1, 0.5),
                  model=model, controls=("random",), progress=False)
    tables = dict(
        roar=evaluation.roar(train_fn=train_fn, seeds=2, **common),
        kar=evaluation.roar(train_fn=train_fn, seeds=1, keep=True, **common),
        no_retrain=evaluation.roar(train_fn=functools.partial(evaluation.as_trained, model),
                                   seeds=1, **common))
    return tables, data, train_fn, model


def test_roar_curves_are_the_tables_means_and_a_retrained_point_is_roars(sweep):
    tables, data, train_fn, model = sweep
    e = ROARCurves(**tables, sweep=data, train_fn=train_fn, model=model,
                   estimators={"GRAD": gradients.gradient}, **KW).start()
    assert e.last_error is None, e.error.value
    roar = tables["roar"].groupby(["estimator", "fraction"]).accuracy
    for name in ("GRAD", "random"):
        assert list(trace(e.figure, name).x) == [0.1, 0.5]
        assert list(trace(e.figure, name).y) == pytest.approx(roar.mean()[name].tolist())
        assert list(trace(e.figure, f"{name} ROAR low").y) == pytest.approx(
            roar.min()[name].tolist())
        assert list(trace(e.figure, f"{name} ROAR high").y) == pytest.approx(
            roar.max()[name].tolist())
        plain = tables["no_retrain"][tables["no_retrain"].estimator == name]
        assert list(trace(e.figure, f"{name} (not retrained)").y) == pytest.approx(
            plain.accuracy.tolist())
    print("\ntiny sweep, ROAR as drawn:\n" + roar.mean().unstack().round(3).to_string())
    assert tables["roar"].accuracy.nunique() > 2  # the checks above can tell them apart
    # KAR on the left: a redraw
    result = e.result
    e.view_widgets["curves"].value = "KAR"
    assert e.result is result
    kar = tables["kar"][tables["kar"].estimator == "GRAD"]
    assert list(trace(e.figure, "GRAD").y) == pytest.approx(kar.accuracy.tolist())
    e.view_widgets["curves"].value = "ROAR"
    e.view_widgets["show random"].value = False
    assert trace(e.figure, "random").visible is False
    assert trace(e.figure, "random (not retrained)").visible is False
    assert trace(e.figure, "GRAD").visible is not False

    # the button: one more point, what evaluation.roar gives for it
    assert list(e.retrain_estimator.options) == ["GRAD", "random"]
    assert e.retrain_seed.value == 2  # the next seed the table does not have
    e.retrain_estimator.value, e.retrain_fraction.value = "GRAD", 0.5
    e.button.click()
    assert e.last_error is None, e.error.value
    expected = evaluation.roar({"GRAD": gradients.gradient}, data, train_fn, fractions=(0.5,),
                               seeds=(2,), model=model, controls=(), progress=False)
    point = e.added[-1]
    print(f"retrained here: GRAD at 0.5, seed 2: {point['accuracy']:.3f} in "
          f"{point['seconds']:.1f} s (roar: {expected.accuracy[0]:.3f})")
    assert point["accuracy"] == expected.accuracy[0] and point["loss"] == expected.loss[0]
    assert list(trace(e.figure, "retrained here").y) == [expected.accuracy[0]]
    assert e.progress.value == e.progress.max == 2 and "done" in e.progress_text.value
    assert f"<b>{expected.accuracy[0]:.1%}</b>" in e.status_line.value
    # a control needs no model; on the KAR panel a point is a KAR point
    e.view_widgets["curves"].value = "KAR"
    e.retrain_estimator.value = "random"
    e.button.click()
    kept = evaluation.roar({}, data, train_fn, fractions=(0.5,), seeds=(2,), keep=True,
                           controls=("random",), progress=False)
    assert e.added[-1]["sweep"] == "KAR" and e.added[-1]["accuracy"] == kept.accuracy[0]
    assert list(trace(e.figure, "retrained here").y) == [kept.accuracy[0]]  # the KAR one
    e.close()


def test_a_failing_retraining_is_shown_and_the_curves_stay(sweep):
    tables, data, _, model = sweep

    def broken(train, seed):
        raise RuntimeError("out of memory while training")

    e = ROARCurves(**tables, sweep=data, train_fn=broken, model=model,
                   estimators={"GRAD": gradients.gradient}, **KW).start()
    figure = e.figure
    e.button.click()
    assert isinstance(e.last_error, RuntimeError) and "out of memory" in e.error.value
    assert e.added == [] and not e.button.disabled and e.figure is figure
    assert len(trace(e.figure, "GRAD").y) == 2
    e.close()


# --------------------------------------------------------------------------- leaderboard
def test_localisation_scores_are_the_means_of_the_three_scores():
    model, data = _model(), _data(4)
    methods = evaluation.leaderboard_methods()
    chosen = {k: methods[k] for k in ("gradient", "Grad-CAM", "SmoothGrad²")}
    table = evaluation.localisation_scores(chosen, model, data, batch_size=3, progress=False)
    assert list(table.columns) == ["method", "chapter", "n", "pointing_game", "energy_in_mask",
                                   "effective_heat_ratio", "seconds", "passes"]
    for name, method in chosen.items():
        row = table[table.method == name].iloc[0]
        maps = torch.cat([method(model, data.x[s:s + 3], data.y[s:s + 3]) for s in (0, 3)])
        assert maps.shape == (4, 64, 64)
        assert row.pointing_game == pytest.approx(
            evaluation.pointing_game(maps, data.mask).mean().item())
        assert row.energy_in_mask == pytest.approx(
            evaluation.energy_in_mask(maps, data.mask).mean().item())
        assert row.effective_heat_ratio == pytest.approx(
            evaluation.effective_heat_ratio(maps, data.mask).mean().item())
        assert row.n == 4 and row.chapter in ("02 gradients", "03 CAM") and row.seconds > 0
    gradient = chosen["gradient"](model, data.x, data.y)
    assert torch.equal(gradient, gradients.gradient(model, data.x, data.y).abs().sum(1))
    print("\n" + table.round(3).to_string())
    with pytest.raises(ValueError, match="no masks"):
        evaluation.localisation_scores(chosen, model, zoo.dataset("digits", n=2))


@pytest.mark.parametrize("name", ["gradient", "SmoothGrad", "Integrated Gradients", "CAM",
                                  "Score-CAM", "Readout Bottleneck", "occlusion"])
def test_the_cost_estimate_is_the_passes_counted(name):
    """`CourseMethod.passes`, the estimate the leaderboard offers live methods by, against
    the passes counted on two canvases (a target check may add a pass per batch)."""
    method = evaluation.leaderboard_methods()[name]
    data = _data(2)
    with count_passes(_model()) as passes:
        method(_model(), data.x, data.y)
    counted = (passes.forward + passes.backward) / 2
    assert method.passes <= counted <= method.passes + 1, (method.passes, counted)


def test_a_randomised_leaderboard_method_repeats_its_map():
    method = evaluation.leaderboard_methods(seed=3)["SmoothGrad"]
    data = _data(2)
    first, again = (method(_model(), data.x, data.y) for _ in range(2))
    assert torch.equal(first, again)
    other = evaluation.leaderboard_methods(seed=4)["SmoothGrad"](_model(), data.x, data.y)
    assert not torch.equal(first, other)


def test_the_shipped_leaderboard_has_every_method_of_the_course():
    table = evaluation.shipped_table("localisation-cluttered-digits")
    methods = evaluation.leaderboard_methods()
    assert table.method.tolist() == list(methods)
    assert (table.n == evaluation.LEADERBOARD_CANVASES).all()
    assert table.chapter.tolist() == [m.chapter for m in methods.values()]
    for score in ("pointing_game", "energy_in_mask", "effective_heat_ratio"):
        assert table[score].between(0, 1).all(), score
    # its first rows, recomputed: the same numbers
    cheap = {k: methods[k] for k in ("gradient", "Grad-CAM")}
    again = evaluation.localisation_scores(cheap, _model(),
                                           _data(evaluation.LEADERBOARD_CANVASES),
                                           progress=False)
    for name in cheap:
        shipped, now = (t[t.method == name].iloc[0] for t in (table, again))
        for score in ("pointing_game", "energy_in_mask", "effective_heat_ratio"):
            assert now[score] == pytest.approx(shipped[score], abs=1e-6), (name, score)
    print("\n" + table.round(3).to_string())


def test_the_leaderboard_shows_the_shipped_table_and_the_live_scores():
    model, methods = _model(), evaluation.leaderboard_methods()
    shipped = evaluation.localisation_scores(
        {k: methods[k] for k in ("gradient", "Grad-CAM", "occlusion")}, model, _data(2),
        progress=False)
    e = Leaderboard(table=shipped, canvases=2, **KW).start()
    assert e.last_error is None, e.error.value
    cheap = [name for name, m in methods.items() if m.passes <= 100]
    assert list(e.live) == cheap
    assert "IBA" not in cheap and "Score-CAM" in cheap and "Readout Bottleneck" in cheap
    request = e.request()
    live = evaluation.localisation_scores({k: methods[k] for k in cheap}, request.model,
                                          request.data[0:2], progress=False)
    bars = trace(e.figure, "live")
    assert list(bars.y) == live.method.tolist()
    assert list(bars.x) == pytest.approx(live.energy_in_mask.tolist())
    assert list(trace(e.figure, "shipped").x) == pytest.approx(shipped.energy_in_mask.tolist())
    order = list(e.figure.layout.yaxis.categoryarray)
    assert order[:3] == shipped.sort_values("energy_in_mask").method.tolist()  # best on top
    print("\nlive on canvases 0-1:\n" + live.round(3).to_string())
    area = request.data.mask[0:2].float().mean().item()
    assert f"the digits cover {area:.0%}" in e.status_line.value
    # sorting only redraws
    result = e.result
    e.view_widgets["sort by"].value = "pointing game"
    assert e.result is result
    assert list(trace(e.figure, "live").x) == pytest.approx(live.pointing_game.tolist())
    # fewer methods, other canvases: recomputed
    with e.holding():
        for name in cheap[2:]:
            e.extra_widgets[f"live {name}"].value = False
    e.sample_picker.value = 1
    again = evaluation.localisation_scores({k: methods[k] for k in cheap[:2]}, request.model,
                                           request.data[1:3], progress=False)
    assert list(trace(e.figure, "live").y) == cheap[:2]
    assert list(trace(e.figure, "live").x) == pytest.approx(again.pointing_game.tolist())
    assert "canvases 1–2" in e.figure.layout.annotations[1].text
    assert e.coarse(e.request()).extras["canvases"] == 1
    e.close()
