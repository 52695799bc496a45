"""Chapter 07 explorers driven in plain pytest (no kernel): IBA played back, the early and the
late layer's failures, InputIBA's stages beside the Readout Bottleneck, a review shaded by
lambda. Every drawn number is recomputed here from the core (`xai_course.bottleneck`,
`xai_course.evaluation`) on the explorer's own model, statistics and seed."""

import numpy as np
import pytest
import torch

from xai_course import zoo
from xai_course.bottleneck import iba, input_iba, readout_bottleneck
from xai_course.evaluation import correlation_length, energy_in_mask
from xai_course.widgets import bottleneck as chapter
from xai_course.widgets.base import seeded
from xai_course.widgets.bottleneck import (
    IBAPlayback,
    InputIBAStages,
    LayerFailures,
    TextBottleneck,
    token_lambda,
    training_stats,
)

KW = dict(sync=True, device="cpu", n_samples=4)


def heatmaps(figure) -> list[np.ndarray]:
    """The maps drawn (the heatmap traces), in the order of the panels."""
    return [np.asarray(t.z, dtype=float) for t in figure.data if t.type == "heatmap"]


def trace(figure, name: str):
    return next(t for t in figure.data if t.name == name)


@pytest.fixture(scope="module")
def playback():
    e = IBAPlayback(**KW).start()
    yield e
    e.close()


def test_the_playback_ends_on_the_map_iba_returns(playback):
    e = playback
    assert e.last_error is None, e.error.value
    request, target = e.request(), e.result.target
    stats = training_stats(request.model, "features.relu3", "cluttered-digits", "cpu")
    maps, history = iba(request.model, request.x, target, "features.relu3", stats=stats,
                        generator=seeded("cpu"), history=True)
    assert torch.equal(e.result.attribution, maps[0])
    assert torch.equal(e.result.extra["maps"], history.maps[:, 0])
    # the last step is shown first, on one colour scale for every step
    assert e.view_widgets["step"].value == e.view_widgets["step"].max == 10
    np.testing.assert_allclose(heatmaps(e.figure)[0], maps[0].numpy(), rtol=1e-6)
    assert trace(e.figure, "attribution").zmax == pytest.approx(history.maps.max().item())
    assert list(trace(e.figure, "loss").y) == pytest.approx(history.loss[:, 0].tolist())
    beta_info = list(trace(e.figure, "β · information").y)
    assert beta_info == pytest.approx((10 * history.information[:, 0]).tolist())
    # step 1: the map before the first update (lambda = sigmoid(5) everywhere)
    result = e.result
    e.view_widgets["step"].value = 1
    assert e.result is result  # drawn again, not computed again
    np.testing.assert_allclose(heatmaps(e.figure)[0], history.maps[0, 0].numpy(), rtol=1e-6)
    mask = request.data.mask[request.sample:request.sample + 1] > 0
    first, last = (energy_in_mask(history.maps[k], mask).item() for k in (0, -1))
    print(f"\nIBA at features.relu3, canvas 0: {history.maps[0].sum():.0f} bits at step 1, "
          f"{history.maps[-1].sum():.0f} at step 10; energy in the mask {first:.2f} -> "
          f"{last:.2f} (mask area {mask.float().mean():.2f}); loss "
          f"{history.loss[0, 0]:.2f} -> {history.loss[-1, 0]:.2f}")
    assert f"{last:.0%}</b> inside the mask" in e.status_line.value
    assert last > first and history.loss[-1, 0] < history.loss[0, 0]
    e.view_widgets["step"].value = 10


def test_another_layer_beta_or_length_is_another_run(playback):
    e = playback
    e.extra_widgets["layer"].value = "features.relu5"
    request = e.request()
    stats = training_stats(request.model, "features.relu5", "cluttered-digits", "cpu")
    late = iba(request.model, request.x, e.result.target, "features.relu5", stats=stats,
               generator=seeded("cpu"))
    assert torch.equal(e.result.attribution, late[0])
    options = e.option_widgets("IBA")
    options["steps"].value = 5
    assert e.view_widgets["step"].max == e.view_widgets["step"].value == 5
    assert e.play.max == 5 and len(e.result.extra["loss"]) == 5
    options["steps"].value = 10
    e.extra_widgets["layer"].value = "features.relu3"
    totals = {}
    for beta in (1.0, 100.0):
        options["beta"].value = beta
        totals[beta] = e.result.attribution.sum().item()
    print(f"IBA at features.relu3: {totals[1.0]:.0f} bits with beta 1, {totals[100.0]:.0f} "
          f"with beta 100")
    assert totals[100.0] < 0.5 * totals[1.0]  # a larger beta lets less through
    options["beta"].value = 10.0


def test_the_failures_panel_shows_the_metrics_computed_directly():
    e = LayerFailures(**KW).start()
    assert e.last_error is None, e.error.value
    request, target = e.request(), e.result.target
    mask = request.data.mask[request.sample] > 0
    maps = {}
    for layer in chapter.COMPARED:
        stats = training_stats(request.model, layer, "cluttered-digits", "cpu")
        maps[layer] = iba(request.model, request.x, target, layer, stats=stats,
                          generator=seeded("cpu"))[0]
    stacked = torch.stack(list(maps.values()))
    energy = energy_in_mask(stacked, mask.expand(3, -1, -1))
    length = correlation_length(stacked)
    for k, (layer, drawn) in enumerate(zip(maps, heatmaps(e.figure))):
        np.testing.assert_allclose(drawn, maps[layer].numpy(), rtol=1e-6)
        assert e.result.extra["energy"][layer] == pytest.approx(energy[k].item())
        assert e.result.extra["length"][layer] == pytest.approx(length[k])
    assert list(trace(e.figure, "energy in mask").y) == pytest.approx(energy.tolist())
    assert list(trace(e.figure, "correlation length").y) == pytest.approx(length.tolist())
    places = e.result.extra["places"]
    assert places == {"features.relu1": "64 x 64", "features.relu3": "16 x 16",
                      "features.relu5": "8 x 8"}
    print("\ncanvas 0: " + "; ".join(
        f"{layer} ({places[layer]}): energy in mask {energy[k]:.2f}, correlation length "
        f"{length[k]:.1f} px" for k, layer in enumerate(maps)) + f"; mask area "
        f"{mask.float().mean():.2f}")
    # the late layer's map is the coarsest; the middle layer's has the most in the digit
    assert length[2] > 1.5 * length[1]
    assert energy[1] > max(energy[0], energy[2])
    e.close()


def test_inputiba_stages_are_the_cores_and_the_readout_answers_in_one_pass():
    e = InputIBAStages(epochs=1, **KW)
    options = e.option_widgets("InputIBA")
    options["steps"].value = 5
    e.start()
    assert e.last_error is None, e.error.value
    assert e.coarse(e.request()) is None  # as small as the quick picture already
    request, target = e.request(), e.result.target
    readout = zoo.load_model("cluttered-digits-readout", "cpu")
    stats = training_stats(request.model, "features.relu3", "cluttered-digits", "cpu")
    stages = input_iba(request.model, request.x, target, "features.relu3", stats=stats,
                       stages=True, generator=seeded("cpu"), beta=20.0, steps=5, epochs=1)
    one_pass = readout_bottleneck(request.model, request.x, target, readout)
    expected = [stages.feature_map[0], stages.prior[0], stages.input_map[0], one_pass[0]]
    for drawn, m in zip(heatmaps(e.figure), expected, strict=True):
        np.testing.assert_allclose(drawn, m.numpy(), rtol=1e-5, atol=1e-7)
    assert list(trace(e.figure, "critic").y) == pytest.approx(stages.critic_loss[0].tolist())
    assert list(trace(e.figure, "generator").y) == pytest.approx(
        stages.generator_loss[0].tolist())
    assert list(trace(e.figure, "input bottleneck").y) == pytest.approx(
        stages.loss[:, 0].tolist())
    mask = request.data.mask[request.sample:request.sample + 1] > 0
    energy = {k: energy_in_mask(m[None], mask).item()
              for k, m in zip(("feature", "prior", "input", "readout"), expected)}
    assert e.result.extra["energy"] == pytest.approx(energy)
    print(f"\nInputIBA (1 GAN epoch, 5 steps) on canvas 0, energy in the mask: "
          f"{ {k: round(v, 2) for k, v in energy.items()} }; seconds "
          f"{ {k: round(v, 2) for k, v in e.result.extra['seconds'].items()} }, readout "
          f"{e.result.extra['readout_ms']:.1f} ms")
    assert e.result.extra["readout_ms"] < 100 * 1000 * sum(e.result.extra["seconds"].values())
    # at the default sizes the first picture is the small run
    with e.holding():  # (no computation)
        options["epochs"].value, options["steps"].value = 20, 60
    coarse = e.coarse(e.request())
    assert coarse.opts["epochs"] == 2 and coarse.opts["steps"] == 25 and coarse.opts[
        "samples"] == 5
    e.close()


def test_the_text_view_shades_each_token_by_lambda():
    e = TextBottleneck(epochs=2, **KW).start()
    assert e.last_error is None, e.error.value
    request, target = e.request(), e.result.target
    model, x = request.model, request.x
    _, history = iba(model, x, target, "embedding",
                     stats=training_stats(model, "embedding", "reviews", "cpu"),
                     generator=seeded("cpu"), history=True)
    stages = input_iba(model.encoder, model.embedding(x).detach(), target, "lstm",
                       stats=training_stats(model, "lstm", "reviews", "cpu"), stages=True,
                       epochs=2, generator=seeded("cpu"), **chapter.TEXT_SETTINGS)
    words = x[0] != 0
    tokens = request.data.tokens[request.sample]
    assert words.sum() == len(tokens)
    expected = [token_lambda(history.alpha, 1.0)[0], stages.prior[0], stages.input_map[0]]
    relevant = request.data.relevant[request.sample][words].bool()
    for drawn, lam in zip(heatmaps(e.figure), expected, strict=True):
        shown = drawn.flatten()[:len(tokens)]
        np.testing.assert_allclose(shown, lam[words].numpy(), rtol=1e-6)
        assert np.isnan(drawn.flatten()[len(tokens):]).all()
        assert ((shown >= 0) & (shown <= 1)).all()
    marks = [t for t in e.figure.data if t.name == "known relevant"]
    assert len(marks) == 3
    assert sorted(marks[0].x) == torch.nonzero(relevant)[:, 0].tolist()
    known = [t for t, r in zip(tokens, relevant) if r]
    print(f"\nreview 0 {tokens} (known: {known}): " + "; ".join(
        f"{name}: known {lam[words][relevant].mean():.2f}, others "
        f"{lam[words][~relevant].mean():.2f}" for name, lam in zip(
            ("IBA", "lambda_G", "InputIBA"), expected)))
    assert expected[2][words][relevant].mean() > expected[2][words][~relevant].mean()
    e.close()


def test_a_data_set_without_masks_is_refused_in_the_error_area():
    e = LayerFailures(models=["digits", "cluttered-digits"], **KW).start()
    assert isinstance(e.last_error, ValueError)
    assert "digits has no ground-truth masks" in e.error.value
    assert "no picture" in e.figure.layout.title.text
    e.model_picker.value = "cluttered-digits"  # and the explorer recovers
    assert e.last_error is None and e.error.value == ""
    e.close()


def test_a_failing_computation_is_shown_and_leaves_the_model_as_found(playback, monkeypatch,
                                                                      assert_unchanged):
    e = playback
    model = e.request().model

    def broken(*args, **kwargs):
        raise RuntimeError("the bottleneck could not be optimised")

    with assert_unchanged(model):
        monkeypatch.setattr(chapter, "iba", broken)
        e.sample_picker.value = 2
        assert isinstance(e.last_error, RuntimeError)
        assert "could not be optimised" in e.error.value
        e.view_widgets["step"].value = 3  # a redraw without a result
        monkeypatch.undo()
        e.sample_picker.value = 3
    assert e.last_error is None and e.error.value == ""
    assert e.result.request.sample == 3 and len(e.result.extra["maps"]) == 10
