"""Chapter 02 explorers driven in plain pytest: set values, assert on the numbers they show.

The image explorers run on the `digits` model (1x32x32, fast); every expected number is
computed here with the core functions of xai_course.gradients.
"""

import numpy as np
import pytest
import torch
from torch import nn

from xai_course import gradients, zoo
from xai_course.widgets.gradients import (
    BaselineExplorer,
    LinearisationExplorer,
    MethodGrid,
    NoiseExplorer,
    PathExplorer,
    TokenExplorer,
    trusted_range,
)

DIGITS = ["digits"]


def heatmaps(explorer):
    return [t for t in explorer.figure.data if t.type == "heatmap"]


def sample(explorer):
    """The model, input (1, ...) and target of the explorer's current result."""
    r = explorer.result
    return r.request.model, r.request.x, r.target


def test_method_grid_shows_every_method_with_its_captum_difference():
    e = MethodGrid(models=DIGITS, sync=True, n_samples=4, samples=4, steps=8).start()
    assert e.last_error is None
    maps = e.result.extra["maps"]
    assert list(maps) == ["gradient", "input × gradient", "SmoothGrad", "SmoothGrad²", "VarGrad",
                          "Integrated Gradients", "Guided Backprop"]
    assert len(heatmaps(e)) == 7
    model, x, t = sample(e)
    assert torch.equal(maps["gradient"], gradients.gradient(model, x, t)[0])
    ig = gradients.integrated_gradients(model, x, t, steps=8)[0]
    assert torch.allclose(maps["Integrated Gradients"], ig)
    e.extra_widgets["check"].value = True
    errors = e.result.extra["errors"]
    assert set(errors) == set(maps)
    scale = max(m.abs().max().item() for m in maps.values())
    assert max(errors.values()) <= 1e-5 * scale
    assert "largest |ours − Captum|" in e.status_line.value
    result = e.result
    e.view_widgets["absolute"].value = True
    assert e.result is result  # drawing only, no recomputation
    assert all(np.nanmin(h.z) >= 0 for h in heatmaps(e))  # |map|: nothing below 0


def test_method_grid_on_text_draws_one_token_row_per_method():
    e = MethodGrid(models=["reviews"], sync=True, n_samples=4, samples=2, steps=8).start()
    assert e.last_error is None
    assert "Guided Backprop" not in e.result.extra["maps"]  # an LSTM has no ReLU to guide
    assert len(heatmaps(e)) == 6
    tokens = zoo.dataset("reviews", n=4).tokens[0]
    assert len([c for c in heatmaps(e)[0].text.flatten() if c]) == len(tokens)


def test_noise_explorer_sigma_zero_gives_the_base_method():
    e = NoiseExplorer(models=DIGITS, sync=True, n_samples=4, samples=5).start()
    assert e.last_error is None
    e.extra_widgets["sigma_fraction"].value = 0.0
    maps = e.result.extra["maps"]
    model, x, t = sample(e)
    plain = gradients.gradient(model, x, t)[0]
    assert torch.allclose(maps["SmoothGrad"], plain, atol=1e-6)
    assert torch.allclose(maps["VarGrad"], torch.zeros_like(plain), atol=1e-6)
    assert torch.allclose(maps["SmoothGrad²"], plain ** 2, atol=1e-6)
    e.extra_widgets["sigma_fraction"].value = 0.2
    e.extra_widgets["samples"].value = 10
    maps = e.result.extra["maps"]
    g = torch.Generator().manual_seed(0)
    expected = gradients.smoothgrad(model, x, t, samples=10, sigma_fraction=0.2, generator=g)
    assert torch.allclose(maps["SmoothGrad"], expected[0])
    assert maps["VarGrad"].max() > 0
    e.extra_widgets["base"].value = "guided_backprop"
    assert e.last_error is None and "guided_backprop" in e.result.extra["maps"]


def test_path_explorer_running_sum_and_completeness_gaps():
    e = PathExplorer(models=DIGITS, sync=True, n_samples=4, steps=(2, 8, 32), grid=16).start()
    assert e.last_error is None
    x_extra = e.result.extra
    model, x, t = sample(e)
    with torch.no_grad():
        s_x, s_base = model(x)[0, t].item(), model(torch.zeros_like(x))[0, t].item()
    assert x_extra["ends"].tolist() == pytest.approx([s_base, s_x], abs=1e-5)
    # the running attribution at alpha = 1 is a 16-point midpoint IG: nearly complete
    gathered = x_extra["running"][-1].sum().item()
    midpoint = gradients.integrated_gradients(model, x, t, steps=16, method="riemann_middle")
    assert gathered == pytest.approx(midpoint.sum().item(), rel=1e-4, abs=1e-5)
    # the gaps are IG's own deltas, relative to the score change
    _, delta = gradients.integrated_gradients(model, x, t, steps=32, return_delta=True)
    assert x_extra["gaps"]["gausslegendre"][-1] == pytest.approx(
        abs(delta.item()) / abs(s_x - s_base), rel=1e-3, abs=1e-7)
    assert x_extra["gaps"]["riemann_right"][-1] < x_extra["gaps"]["riemann_right"][0]
    # the alpha slider only redraws: same result object, a different path point shown
    result, shown = e.result, e.figure.data[0].z
    e.view_widgets["alpha"].value = 1.0
    assert e.result is result
    assert (e.figure.data[0].z != shown).any()
    assert "α = 0.969" in e.figure.layout.annotations[0].text.replace("<br>", " ")
    assert e.extra_widgets["baseline"].options == tuple(  # IG's own declared option
        (b, b) for b in gradients.integrated_gradients.options["baseline"].choices)


def test_path_explorer_baseline_choice_and_text_refusal():
    e = PathExplorer(models=DIGITS + ["reviews"], sync=True, n_samples=2, steps=(2, 4),
                     grid=4).start()
    e.extra_widgets["baseline"].value = "mean"
    model, x, t = sample(e)
    assert torch.allclose(e.result.extra["x_base"], gradients.make_baseline(x, "mean")[0].cpu())
    e.model_picker.value = "reviews"
    assert isinstance(e.last_error, ValueError) and "TokenExplorer" in e.error.value
    e.model_picker.value = "digits"
    assert e.last_error is None


def test_baseline_explorer_completeness_per_baseline():
    e = BaselineExplorer(models=DIGITS, sync=True, n_samples=4, steps=16).start()
    assert e.last_error is None
    rows = e.result.extra["rows"]
    assert list(rows) == list(gradients.BASELINES)
    assert torch.equal(rows["black"]["x_base"], torch.zeros_like(rows["black"]["x_base"]))
    model, x, t = sample(e)
    for name, r in rows.items():
        x_base = r["x_base"][None].to(x.device)
        with torch.no_grad():
            change = (model(x)[0, t] - model(x_base)[0, t]).item()
        assert r["total"] - r["delta"] == pytest.approx(change, abs=1e-4), name
    assert len(heatmaps(e)) == 4


def test_trusted_range_by_hand():
    ts = torch.linspace(-2, 2, 9)  # -2 -1.5 ... 2
    linear = 1 + ts
    exact = linear.clone()
    exact[ts >= 1.5] += 1.0  # wrong from t = 1.5 on
    exact[ts <= -1.0] -= 0.05  # 5% off at t = -1 and beyond: within 10% there
    exact[ts <= -2.0] -= 1.0
    assert trusted_range(ts, exact, linear) == (-1.5, 1.0)
    # float rounding at t = 0 does not close the band
    assert trusted_range(ts, linear + 1e-7, linear) == (-2.0, 2.0)


def test_linearisation_explorer_meets_the_line_at_zero():
    e = LinearisationExplorer(models=DIGITS, sync=True, n_samples=4, points=21).start()
    assert e.last_error is None
    r = e.result.extra
    model, x, t = sample(e)
    middle = len(r["ts"]) // 2
    assert r["ts"][middle].item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        s0 = model(x)[0, t].item()
    assert r["exact"][middle].item() == pytest.approx(s0, abs=1e-5)
    assert r["linear"][middle].item() == pytest.approx(s0, abs=1e-5)
    low, high = r["trusted"]
    assert low <= 0 <= high
    # the unit direction along the gradient: the line's slope is |grad|
    g = gradients.gradient(model, x, t)
    slope = (r["linear"][-1] - r["linear"][0]) / (r["ts"][-1] - r["ts"][0])
    assert slope.item() == pytest.approx(g.norm().item(), rel=1e-4)
    e.extra_widgets["direction"].value = "to black"
    assert torch.allclose(e.result.extra["d"], -x.cpu() / x.norm())
    before = e.result
    e.view_widgets["t / reach"].value = -1.0
    assert e.result is before  # the t slider only redraws


def test_linearisation_band_is_visible_at_the_default_settings():
    """The band where the gradient is right within 10% is not empty, and not everything."""
    e = LinearisationExplorer(models=["cluttered-digits"], sync=True, n_samples=4).start()
    low, high = e.result.extra["trusted"]
    reach = e.result.extra["reach"]
    assert low < 0 < high and (high - low) / (2 * reach) > 0.02
    assert (low, high) != (-reach, reach)
    band = next(s for s in e.figure.layout.shapes if s.type == "rect")
    assert (band.x0, band.x1) == (low, high) and band.opacity >= 0.2


def test_noise_explorer_builds_its_controls_from_smoothgrads_options():
    e = NoiseExplorer(models=DIGITS, sync=True, n_samples=2, samples=3).start()
    spec = gradients.smoothgrad.options["sigma_fraction"]
    sigma = e.extra_widgets["sigma_fraction"]
    assert (sigma.min, sigma.max, sigma.value) == (spec.low, spec.high, spec.default)
    assert e.extra_widgets["samples"].value == 3
    request = e.request()
    assert request.extras["samples"] == 3
    e.extra_widgets["samples"].value = 25
    coarse = e.coarse(e.request())
    assert coarse.extras["samples"] == 4 and coarse.coarse == "4 samples"


def test_token_explorer_reports_the_share_on_the_deciding_tokens():
    e = TokenExplorer(sync=True, n_samples=4).start()
    assert e.last_error is None
    data = zoo.dataset("reviews", n=4)
    model = e.result.request.model
    a = gradients.per_token(gradients.integrated_gradients, model, data.x[:1], e.result.target)
    n = len(data.tokens[0])
    share = (a[0, :n].abs() * data.relevant[0, :n]).sum() / a[0, :n].abs().sum()
    assert e.result.extra["share"] == pytest.approx(share.item(), rel=1e-4)
    assert "deciding tokens" in e.status_line.value
    e.method_picker.value = "gradient"
    assert e.last_error is None


def test_image_explorers_skip_imagenet_models_without_weights(monkeypatch, tmp_path):
    from xai_course.zoo import imagenet

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache, on any machine
    assert not imagenet.cached("resnet50-imagenet")
    e = LinearisationExplorer(models=["resnet50-imagenet", "digits"], sync=True,
                              n_samples=2).start()
    assert "not available" in e.note.value and e.model_picker.value == "digits"
    assert e.last_error is None


def test_explorers_take_a_model_of_ones_own():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)).eval()
    data = zoo.dataset("cluttered-digits", n=3)
    e = MethodGrid(models={"mine": model}, data=data, sync=True, samples=2, steps=4).start()
    assert e.last_error is None
    assert e.result.extra["maps"]["Guided Backprop"].shape == (3, 64, 64)
    assert len(model[1]._forward_pre_hooks) == 0


def test_method_grid_on_an_imagenet_architecture_and_photo():
    """The ImageNet path (224 x 224 photos, normalisation inside), with random weights."""
    import torchvision

    from xai_course.zoo.imagenet import ImageNetClassifier

    torch.manual_seed(0)
    net = ImageNetClassifier(torchvision.models.resnet18()).eval()
    photos = zoo.dataset("photos", n=1)
    e = MethodGrid(models={"resnet18 (random)": net}, data=photos, sync=True, samples=1,
                   steps=2).start()
    assert e.last_error is None
    maps = e.result.extra["maps"]
    assert all(m.shape == (3, 224, 224) for m in maps.values())
    model, x, t = sample(e)
    assert torch.allclose(maps["Guided Backprop"], gradients.guided_backprop(model, x, t)[0])


def test_the_check_of_a_randomised_method_uses_the_same_noise_on_both_sides():
    from xai_course import gradients
    from xai_course.widgets.base import Explorer

    e = Explorer({"smoothgrad": gradients.smoothgrad}, models=["digits"], device="cpu",
                 sync=True, n_samples=4, check=True).start()
    assert e.last_error is None
    assert e.result.reference_error < 1e-5
    first = e.result.attribution.clone()
    e.sample_picker.value = 1
    e.sample_picker.value = 0  # from the cache
    assert torch.equal(first, e.result.attribution)
