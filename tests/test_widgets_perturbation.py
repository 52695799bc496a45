"""Chapter 04 explorer driven in plain pytest: set values, assert on the numbers drawn."""

import numpy as np
import pytest
import torch

from xai_course import perturbation, zoo
from xai_course.widgets.perturbation import PerturbationExplorer, cost_comparison, cost_figure


@pytest.fixture(scope="module")
def models():
    return {name: zoo.load_model(name, "cpu") for name in ("cluttered-digits", "digits")}


def heatmaps(explorer):
    return [t for t in explorer.figure.data if t.type == "heatmap"]


def test_occlusion_window_stride_and_counted_passes(models):
    e = PerturbationExplorer(models=models, sync=True, n_samples=4).start()
    assert e.last_error is None and e.method_picker.value == "occlusion"
    controls = e.option_widgets("occlusion")
    with e.holding():
        controls["window"].value = 16
    controls["stride"].value = 8
    x, target = e.result.request.x, e.result.target
    expected = perturbation.occlusion(models["cluttered-digits"], x, target, window=16, stride=8)
    # the explorer runs the model prepared for many passes (fast.for_many_passes): the same
    # function, rounded differently
    assert torch.allclose(e.result.attribution, expected[0], atol=1e-4 * expected.abs().max())
    positions = 7 * 7  # ceil((64 - 16) / 8) + 1 = 7 per side
    assert e.result.extra["passes"].forward == 1 + positions
    assert f"<b>{1 + positions}</b> forward passes" in e.status_line.value
    e.check_box.value = True  # against Captum Occlusion
    assert e.result.reference_error < 1e-5 and "Captum" in e.status_line.value


def test_meaningful_perturbation_is_played_back(models):
    e = PerturbationExplorer(models=models, sync=True, n_samples=4).start()
    with e.holding():  # few steps before the first run
        e.method_picker.value = "meaningful perturbation"
        controls = e.option_widgets("meaningful perturbation")
        controls["steps"].value = 12
        controls["mask_size"].value = 8
    controls["tv"].value = 0.0
    assert e.last_error is None
    history = e.result.extra["history"]
    step = e.view_widgets["step"]  # moves through the optimisation's step numbers
    assert history.steps == [0, 5, 10, 12] and step.max == 12 and step.value == 12
    assert "at step 12" in e.figure.layout.annotations[0].text
    lines = [t for t in e.figure.data if t.type == "scatter"]
    assert [t.name for t in lines] == ["score", "l1", "tv", "total"]
    assert list(lines[2].y) == [0.0] * 12  # tv switched off
    drawn = np.array(heatmaps(e)[-1].z, dtype=float)
    step.value = 0  # the starting mask: 0.5 everywhere
    start = np.array(heatmaps(e)[-1].z, dtype=float)
    assert np.allclose(start, 0.5) and not np.allclose(drawn, 0.5)
    assert e.result.extra["passes"].backward == 12
    assert "12</b> backward" in e.status_line.value


def test_extremal_area_slider_and_errors_leave_it_usable(models):
    e = PerturbationExplorer(models=models, sync=True, n_samples=4).start()
    with e.holding():
        e.method_picker.value = "extremal perturbation"
        controls = e.option_widgets("extremal perturbation")
        controls["steps"].value = 20
        controls["variant"].value = "delete"
    controls["area"].value = 0.3
    assert e.last_error is None
    assert "deleted region at step 20" in e.figure.layout.annotations[0].text
    e.view_widgets["step"].value = 13  # between two recorded masks: the one before
    assert "deleted region at step 10" in e.figure.layout.annotations[0].text
    assert [t.name for t in e.figure.data if t.type == "scatter"] == ["score", "area", "total"]
    e.method_picker.value = "occlusion"
    e.option_widgets("occlusion")["window"].value = 64
    e.model_picker.value = "digits"  # 32 x 32 images: a 64-pixel window does not fit
    assert isinstance(e.last_error, ValueError) and "larger than the input" in e.error.value
    e.option_widgets("occlusion")["window"].value = 8  # the explorer stays usable
    assert e.last_error is None and e.result.attribution.shape == (1, 32, 32)


def test_cost_comparison_counts_passes(models):
    model = models["digits"]
    x = zoo.dataset("digits", n=1).x
    rows = cost_comparison(model, x, 0, window=8, stride=8, steps=(5, 7))
    passes = {r["method"]: (r["forward"], r["backward"]) for r in rows}
    assert passes == {"gradient": (1, 1), "occlusion 8/8": (1 + 16, 0),
                      "meaningful (5 steps)": (1 + 5, 5), "extremal (7 steps)": (1 + 7, 7)}
    assert all(r["ms"] > 0 for r in rows)
    fig = cost_figure(rows)
    assert [t.type for t in fig.data] == ["bar"] * 3


def test_optimisations_come_coarse_first(models):
    e = PerturbationExplorer(models=models, sync=True, n_samples=4).start()
    assert e.coarse(e.request()).opts["stride"] == 8  # occlusion: windows side by side
    e.method_picker.value = "extremal perturbation"
    coarse = e.coarse(e.request())
    assert coarse.opts["steps"] == 10 and coarse.coarse == "10 steps"
    assert e.compute(coarse).extra["history"].steps[-1] == 10
