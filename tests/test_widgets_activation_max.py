"""Chapter 06 explorers driven in plain pytest (no kernel): the four priors side by side and
played back step by step, the walk between two classes through the generator, the generator's
own samples. Every drawn number is recomputed from the core (`activation_max`) and the judge."""

import re

import numpy as np
import pytest
import torch

from xai_course import activation_max, zoo
from xai_course.widgets import activation_max as chapter
from xai_course.widgets.activation_max import (
    PANELS,
    FourPriors,
    GeneratorSamples,
    LatentWalk,
    gallery,
    mosaic,
)
from xai_course.widgets.base import seeded

STEPS = 20  # short searches: the tests check what is drawn, not how good it looks
DIGIT = (1, 32, 32)


@pytest.fixture(scope="module")
def four():
    e = FourPriors(sync=True, device="cpu", steps=STEPS).start()
    yield e
    e.close()


@pytest.fixture(scope="module")
def digits_model():
    return zoo.load_model("digits", "cpu")


@pytest.fixture(scope="module")
def gan():
    return zoo.load_model("digits-gan", "cpu")


def drawn(figure) -> list[np.ndarray]:
    """The image traces of a figure, as (H, W) grey levels 0..255."""
    return [np.asarray(t.z)[..., 0].astype(int) for t in figure.data if t.type == "image"]


def grey(image: torch.Tensor) -> np.ndarray:
    """An image (1, H, W) in [0, 1] as the grey levels viz draws."""
    return (np.clip(image[0].double().numpy(), 0, 1) * 255).round().astype(int)


def line(figure, name: str):
    return next(t for t in figure.data if t.type == "scatter" and t.name == name)


def searches(model, gan, objective, seed=0, steps=STEPS, **priors):
    """The four searches of `FourPriors`, run here with the core: {panel: (images, History)}."""
    g = lambda: seeded("cpu", seed)  # noqa: E731
    return {
        "no prior": activation_max.maximize(model, objective, DIGIT, steps=steps, init="noise",
                                            generator=g(), history=True),
        "hand-made priors": activation_max.maximize(model, objective, DIGIT, steps=steps,
                                                    init="noise", generator=g(), history=True,
                                                    **priors),
        "Fourier": activation_max.maximize(model, objective, DIGIT, steps=steps,
                                           parametrization="fourier", jitter=2, init="noise",
                                           generator=g(), history=True),
        "generator prior": activation_max.maximize_latent(model, gan, objective, steps=steps,
                                                          generator=g(), history=True),
    }


PRIORS = dict(l2=0.05, tv=0.5, jitter=2, blur_every=4, blur_sigma=0.5)


def test_the_four_panels_are_the_four_searches_with_the_judges_verdicts(four, digits_model,
                                                                         gan):
    e = four
    assert e.last_error is None, e.error.value
    assert e.result.extra["objective"] == ("class", 3)
    ours = searches(digits_model, gan, ("class", 3), **PRIORS)
    judge = activation_max.digit_judge()
    titles = [a.text for a in e.figure.layout.annotations]
    recognised = 0
    print()
    for k, panel in enumerate(PANELS):
        images, trace = ours[panel]
        assert np.abs(drawn(e.figure)[k] - grey(images[0])).max() <= 1, panel
        assert list(line(e.figure, panel).y) == pytest.approx(trace.objective[:, 0].tolist()), \
            panel
        v = judge(images)
        label, confidence = int(v.label[0]), float(v.confidence[0])
        hit = bool(v.typical[0]) and label == 3
        recognised += hit
        assert titles[k].startswith(f"<b>{panel}</b><br>reads {label} · {100 * confidence:.0f}%")
        assert ("✓ recognised" in titles[k]) == hit
        print(f"{panel:17s} logit {trace.objective[0, 0]:6.2f} -> {trace.objective[-1, 0]:6.2f};"
              f" the judge reads {label} ({confidence:.2f}), typical {bool(v.typical[0])}")
    assert f"<b>{recognised} of 4</b> recognised" in e.status_line.value
    # the dashed line: the mean logit of the real test 3s
    test = zoo.dataset("digits", split="test")
    with torch.no_grad():
        real = digits_model(test.x)[test.y == 3, 3].mean().item()
    assert list(line(e.figure, "real test 3s (mean)").y) == pytest.approx((real, real), abs=1e-4)


def test_the_snapshot_slider_plays_the_searches_back_without_recomputing(four, digits_model,
                                                                          gan):
    e = four
    result = e.result
    traces = {panel: trace for panel, (trace, _) in result.extra["runs"].items()}
    play = next(w for w in e.display_box.children if w.__class__.__name__ == "Play")
    assert (play.min, play.max, play.value) == (0, 20, 20)
    for snapshot in (0, 10, 20):
        e.view_widgets["snapshot"].value = snapshot
        assert e.result is result  # redrawn, not recomputed
        step = traces[PANELS[0]].steps[snapshot]
        assert step == snapshot  # 20 steps: a snapshot after every step
        assert f"step {step} of {STEPS}" in e.figure.layout.annotations[4].text
        assert list(line(e.figure, "shown").x) == [step, step]
        verdicts = chapter.verdicts(torch.stack([traces[p].images[snapshot, 0] for p in PANELS]))
        for k, panel in enumerate(PANELS):
            image = traces[panel].images[snapshot, 0]
            assert np.abs(drawn(e.figure)[k] - grey(image)).max() <= 1
            title = e.figure.layout.annotations[k].text
            assert f"reads {verdicts[k]['label']} " in title
    # at the start the no-prior search is the noise it starts from
    start = torch.rand((1, *DIGIT), generator=seeded("cpu", 0))
    assert torch.equal(traces["no prior"].images[0, 0], start[0])


def test_a_prior_slider_recomputes_only_its_own_panel(four, digits_model, gan):
    e = four
    before = drawn(e.figure)
    cached = len(e._runs)
    e.extra_widgets["tv"].value = 0.0
    assert e.last_error is None, e.error.value
    after = drawn(e.figure)
    assert len(e._runs) == cached + 1  # one new search: the hand-made priors'
    for k, panel in enumerate(PANELS):
        same = np.array_equal(before[k], after[k])
        assert same == (panel != "hand-made priors"), panel
    images, _ = activation_max.maximize(digits_model, ("class", 3), DIGIT, steps=STEPS,
                                        init="noise", generator=seeded("cpu", 0),
                                        history=True, **{**PRIORS, "tv": 0.0})
    assert np.abs(after[1] - grey(images[0])).max() <= 1
    e.extra_widgets["tv"].value = 0.5
    # the generator's latent decay: only the generator prior's panel
    before, default = drawn(e.figure), e.extra_widgets["z_l2"].value
    e.extra_widgets["z_l2"].value = 0.01
    after = drawn(e.figure)
    assert [np.array_equal(b, a) for b, a in zip(before, after)] == [True, True, True, False]
    images = activation_max.maximize_latent(digits_model, gan, ("class", 3), steps=STEPS,
                                            z_l2=0.01, generator=seeded("cpu", 0))
    assert np.abs(after[3] - grey(images[0])).max() <= 1
    e.extra_widgets["z_l2"].value = default


def test_a_channel_objective_climbs_from_below_the_real_digits(four, digits_model):
    e = four
    e.extra_widgets["unit"].value = "features.conv3"
    assert e.extra_widgets["index"].max == 63  # conv3 has 64 channels
    e.extra_widgets["index"].value = 5
    assert e.last_error is None, e.error.value
    assert e.result.extra["objective"] == ("channel", "features.conv3", 5)
    # the dashed line: channel 5's mean activation on every real test digit, by a hook here
    kept = {}
    handle = digits_model.features.conv3.register_forward_hook(
        lambda module, args, output: kept.update(A=output))
    with torch.no_grad():
        digits_model(zoo.dataset("digits", split="test").x)
    handle.remove()
    real = kept["A"][:, 5].mean().item()
    dashed = line(e.figure, "real test digits (mean)")
    assert list(dashed.y) == pytest.approx((real, real), abs=1e-4)
    print()
    for panel, (trace, _) in e.result.extra["runs"].items():
        start, end = trace.objective[0, 0].item(), trace.objective[-1, 0].item()
        print(f"{panel:17s} channel 5 of conv3: {start:6.2f} -> {end:6.2f} (real digits "
              f"{real:.2f})")
        # the hand-made priors' default weights suit class logits (tens); against a channel's
        # mean (about 1) the penalties may win, which the explorer shows as it is
        if panel != "hand-made priors":
            assert end > start, panel
    assert "typical at the end" in e.status_line.value  # no class: only typicality counts
    with e.holding():
        e.extra_widgets["unit"].value = "class"
    assert e.extra_widgets["index"].max == 9
    e.extra_widgets["index"].value = 3
    assert e.result.extra["objective"] == ("class", 3)


def test_the_first_picture_is_a_short_search(digits_model, gan):
    e = LatentWalk(sync=True, device="cpu", steps=60).start()
    coarse = e.coarse(e.request())
    assert coarse.coarse == "25 steps" and coarse.extras["steps"] == 25
    assert e.coarse(coarse) is None  # 25 steps is short already
    first = e.compute(coarse)
    for steps, result in ((25, first), (60, e.result)):
        ends = activation_max.maximize_latent(digits_model, gan, [("class", 1), ("class", 0)],
                                              steps=steps, generator=seeded("cpu", 0))
        torch.testing.assert_close(result.extra["images"]["through G"][[0, -1]], ends)
    e.close()


def test_the_latent_walk_runs_between_the_generator_prior_images(digits_model, gan):
    e = LatentWalk(sync=True, device="cpu", steps=STEPS).start()
    assert e.last_error is None, e.error.value
    a, b = e.value("from"), e.value("to")
    assert (a, b) == (1, 0)
    _, trace = activation_max.maximize_latent(digits_model, gan, [("class", a), ("class", b)],
                                              steps=STEPS, generator=seeded("cpu", 0),
                                              history=True)
    z = trace.latents[-1]
    frames = e.value("frames")
    t = torch.linspace(0, 1, frames)[:, None]
    with torch.no_grad():
        through_g = gan((1 - t) * z[0] + t * z[1])
        ends = gan(z)
    images = e.result.extra["images"]
    torch.testing.assert_close(images["through G"], through_g)
    torch.testing.assert_close(images["pixel blend"][[0, -1]], ends)
    middle = frames // 2
    torch.testing.assert_close(images["pixel blend"][middle], (ends[0] + ends[1]) / 2)
    assert (images["through G"][middle] - images["pixel blend"][middle]).abs().max() > 0.1
    # the two strips drawn are those frames, side by side
    strips = drawn(e.figure)
    assert np.abs(strips[0] - grey(mosaic(through_g, cols=frames))).max() <= 1
    with torch.no_grad():
        p = digits_model(through_g).softmax(1)
    assert list(line(e.figure, f"p({a}) through G").y) == pytest.approx(p[:, a].tolist(), abs=1e-5)
    assert list(line(e.figure, f"p({b}) through G").y) == pytest.approx(p[:, b].tolist(), abs=1e-5)
    assert p[0, a] > 0.9 and p[-1, b] > 0.9
    # filled markers: the frames the judge finds typical
    v = activation_max.digit_judge()(through_g)
    symbols = line(e.figure, f"p({a}) through G").marker.symbol
    assert [s == "circle" for s in symbols] == v.typical.tolist()
    blend = activation_max.digit_judge()(images["pixel blend"])
    print(f"\np({a}) through G {[round(x, 2) for x in p[:, a].tolist()]}\ntypical through G "
          f"{v.typical.int().tolist()}, in the pixel blend {blend.typical.int().tolist()}")
    e.close()


def test_the_generator_samples_count_the_judges_readings(gan):
    e = GeneratorSamples(sync=True, device="cpu", counted=100).start()
    assert e.last_error is None, e.error.value
    shares = {}
    for scale in (1.0, 3.0):
        e.extra_widgets["z scale"].value = scale
        z = torch.randn((100, gan.latent_dim), generator=seeded("cpu", 0)) * scale
        with torch.no_grad():
            images = gan(z)
        v = activation_max.digit_judge()(images)
        bars = {t.name: t.y for t in e.figure.data if t.type == "bar"}
        labels = v.label.tolist()
        typical = [sum(1 for c, k in zip(labels, v.typical.tolist()) if c == d and k)
                   for d in range(10)]
        other = [labels.count(d) - typical[d] for d in range(10)]
        assert list(bars["typical"]) == typical and list(bars["not typical"]) == other
        assert np.abs(drawn(e.figure)[0] - grey(mosaic(images[:32], cols=8))).max() <= 1
        shares[scale] = v.typical.float().mean().item()
        assert f"<b>{100 * shares[scale]:.0f}%</b>" in e.status_line.value
    print(f"\nshare of G's samples the judge finds typical: {shares}")
    e.close()


def test_gallery_marks_what_the_judge_recognises():
    test = zoo.dataset("digits", split="test")
    real = torch.stack([test.x[test.y == c][0] for c in range(10)])
    fig = gallery({"real test digits": real}, targets=list(range(10)))
    v = activation_max.digit_judge()(real)
    labels = next(t for t in fig.data if t.type == "scatter")
    assert list(labels.text) == [str(c) for c in v.label.tolist()]
    hits = (v.typical & (v.label == torch.arange(10))).tolist()
    assert [c == chapter.GOOD_ON_BLACK for c in labels.textfont.color] == hits
    print(f"\nthe judge on one real test digit per class: recognised {sum(hits)} of 10")
    assert sum(hits) >= 8


def test_mosaic_tiles_row_by_row_with_grey_gaps():
    images = torch.arange(1.0, 4.0)[:, None, None, None].expand(3, 1, 2, 2) / 4
    out = mosaic(images, cols=2, gap=1)
    assert out.shape == (1, 5, 5)
    expected = torch.full((5, 5), 0.5)
    expected[0:2, 0:2], expected[0:2, 3:5], expected[3:5, 0:2] = 0.25, 0.5, 0.75
    assert torch.equal(out[0], expected)


@pytest.mark.parametrize("explorer, size", [(FourPriors, dict(steps=2)),
                                            (LatentWalk, dict(steps=2)),
                                            (GeneratorSamples, dict(counted=40))])
def test_a_model_the_generator_cannot_feed_shows_a_clear_error(explorer, size):
    e = explorer(sync=True, device="cpu", models=["cluttered-digits", "digits"], **size).start()
    assert isinstance(e.last_error, ValueError)
    assert re.search(r"cluttered-digits takes inputs of shape \(3, 64, 64\), but the generator "
                     r"prior draws digits of shape \(1, 32, 32\)", e.error.value)
    assert "no picture" in e.figure.layout.title.text
    e.model_picker.value = "digits"  # and the explorer recovers
    assert e.last_error is None and e.error.value == ""
    e.close()
