"""Chapter 01 explorers driven in plain pytest: set values, click, assert on the figure."""

import types

import torch

from xai_course import local_global, zoo
from xai_course.widgets.local_global import PatchExperiment, PreferredInput, ShortcutDemo


def bars(explorer):
    return [t for t in explorer.figure.data if t.type == "bar"]


def test_patch_experiment_moves_the_probability():
    e = PatchExperiment(sync=True, n_samples=8).start()
    assert e.last_error is None
    data = zoo.dataset("cluttered-digits", n=8)
    sample = 0
    e.sample_picker.value = sample
    rows, cols = torch.nonzero(data.mask[sample], as_tuple=True)
    size = 16
    e.extra_widgets["size"].value = size
    e.extra_widgets["top"].value = max(0, min(48, int(rows.float().mean()) - size // 2))
    e.extra_widgets["left"].value = max(0, min(48, int(cols.float().mean()) - size // 2))
    on_digit = e.result.extra["after"]
    before = e.result.extra["before"]
    expected = local_global.patch_effect(
        e.result.request.model, data.x[:1], e.result.target, *e.result.extra["patch"])
    assert abs(expected[1].item() - on_digit) < 1e-6
    assert on_digit < before  # hiding the digit costs probability
    # the drawn "with patch" bars are the model's probabilities on the occluded image
    without, with_patch = bars(e)
    labels = next(t for t in e.figure.data if t.type == "scatter").text
    shown = [int(label.split()[0]) for label in labels]  # "7  93.1%": the class first
    assert torch.allclose(torch.tensor(list(with_patch.x)), e.result.extra["p_hidden"][shown])
    assert torch.allclose(torch.tensor(list(without.x)), e.result.probabilities[shown])


def test_patch_experiment_click_places_the_patch():
    e = PatchExperiment(sync=True, n_samples=4).start()
    target = next(t for t in e.figure.data if t.name == "click")  # takes the clicks
    assert target.name == "click" and target.hoverinfo != "skip" and target.opacity == 0
    assert target.xaxis == e.figure.data[0].xaxis  # over the image
    e._on_click(target, types.SimpleNamespace(xs=[40], ys=[10]))  # what plotly calls
    size = e.extra_widgets["size"].value
    assert e.extra_widgets["left"].value == 40 - size // 2
    assert e.extra_widgets["top"].value == max(0, 10 - size // 2)
    assert e.result.extra["patch"][1] == 40 - size // 2


def test_full_occlusion_map_is_drawn():
    e = PatchExperiment(sync=True, n_samples=4).start()
    e.extra_widgets["size"].value = 16
    e.extra_widgets["full occlusion map"].value = True
    heat = [t for t in e.figure.data if t.name == "attribution"]
    assert len(heat) == 1
    assert e.result.attribution.shape == (3, 64, 64)
    assert e.result.attribution.abs().max() > 0


def test_shortcut_demo_shows_both_models_and_survives_errors():
    e = ShortcutDemo(n_samples=8, sync=True).start()
    assert e.last_error is None
    heat = [t for t in e.figure.data if t.type == "heatmap"]
    assert len(heat) == 2
    a_shortcut, _ = e.result.extra["shortcut-digits"]
    a_clean, _ = e.result.extra["cluttered-digits"]
    assert not torch.equal(a_shortcut, a_clean)
    e.data_picker.value = "mark moved"
    assert e.result.request.data_name == "mark moved"
    # a bad option value raises inside the method: shown, and the explorer recovers
    e.method_picker.value = "occlusion"
    e.option_widgets("occlusion")["stride"].value = 64  # stride > window: a ValueError
    assert isinstance(e.last_error, ValueError) and "stride" in e.error.value
    e.option_widgets("occlusion")["stride"].value = 4
    assert e.last_error is None and e.error.value == ""


def test_preferred_input_climbs():
    e = PreferredInput(sync=True, n_samples=4).start()
    e.extra_widgets["steps"].value = 20
    scores = e.result.extra["scores"]
    assert len(scores) == 20 and scores[-1] > scores[0]
    line = [t for t in e.figure.data if t.type == "scatter"][0]
    assert list(line.y) == scores


def test_occlusion_checked_against_captum_in_the_comparison_explorer():
    """Chapter 01's gradient / occlusion explorer with "check against Captum" ticked."""
    from xai_course import gradients, perturbation
    from xai_course.widgets.base import Explorer

    e = Explorer({"gradient": gradients.gradient, "occlusion": perturbation.occlusion},
                 models=["cluttered-digits"], check=True, sync=True, n_samples=4).start()
    gradient_z = e.figure.data[1].z
    e.method_picker.value = "occlusion"
    assert e.last_error is None, e.error.value
    assert e.result.reference_error < 1e-4 and "Captum" in e.status_line.value
    assert e.result.request.method_name == "occlusion"
    assert (e.figure.data[1].z != gradient_z).any()  # the occlusion map is drawn


def test_a_full_map_comes_coarse_first():
    e = PatchExperiment(sync=True, n_samples=4).start()
    e.extra_widgets["full occlusion map"].value = True
    coarse = e.coarse(e.request())
    assert coarse.coarse == "patches side by side"
    first, final = e.compute(coarse), e.result
    assert first.attribution.shape == final.attribution.shape
    assert not torch.equal(first.attribution, final.attribution)


def test_shortcut_demo_checks_both_models_against_captum():
    e = ShortcutDemo(n_samples=4, sync=True).start()
    for method in ("gradient", "occlusion"):
        e.method_picker.value = method
        e.check_box.value = True
        assert e.last_error is None, method
        assert e.result.reference_error is not None and e.result.reference_error < 1e-4, method
        assert "max |ours − Captum" in e.status_line.value
        e.check_box.value = False
