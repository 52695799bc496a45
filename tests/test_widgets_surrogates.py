"""Chapter 05 explorers, driven in plain pytest (no kernel): LIME on superpixels and on the
table, clicking superpixels off, the tree drawn, tree regularisation's two boundaries."""

import types

import pytest
import torch

from xai_course import surrogates, zoo
from xai_course.widgets.surrogates import (
    LimeExplorer,
    TabularLime,
    TreeRegularization,
    tree_figure,
)


@pytest.fixture(scope="module")
def explorer():
    e = LimeExplorer(models=["cluttered-digits"], sync=True, n_samples=4, device="cpu",
                     samples=100).start()
    yield e
    e.close()


def click(e, row, col):
    """What plotly sends when the student clicks pixel (row, col) of the superpixel trace."""
    trace = next(t for t in e.figure.data if t.name == "superpixels")
    assert trace.hovertemplate and trace.hoverinfo != "skip"  # plotly reports its clicks
    e._on_click(trace, types.SimpleNamespace(xs=[col], ys=[row], point_inds=[0]), None)


def test_clicking_a_superpixel_switches_it_off_and_back(explorer):
    e = explorer
    assert e.error.value == "", e.error.value
    before = e.result.extra
    assert before["off"] == [] and before["model_score"] == pytest.approx(
        before["original_score"], abs=1e-4)
    segment = int(before["segments"][20, 30])
    click(e, 20, 30)
    after = e.result.extra
    assert after["off"] == [segment] and e.extra_widgets["off"].value == str(segment)
    assert after["model_score"] != pytest.approx(before["model_score"])
    assert after["surrogate_score"] == pytest.approx(
        after["fit"].intercept + after["fit"].coefficients.sum().item()
        - after["fit"].coefficients[segment].item())
    shown = after["shown"]
    inside = after["segments"] == segment
    assert not torch.equal(shown[:, inside], e.result.request.x[0][:, inside])
    assert f"switched off: [{segment}]" in e.status_line.value
    click(e, 20, 30)  # and back on
    assert e.result.extra["off"] == []


def test_typed_ids_kernel_width_and_a_bad_entry(explorer):
    e = explorer
    e.extra_widgets["off"].value = "0, 2"
    assert e.result.extra["off"] == [0, 2]
    narrow = e.result.attribution.clone()
    e.extra_widgets["kernel_width"].value = 2.0
    assert not torch.allclose(e.result.attribution, narrow)
    e.extra_widgets["off"].value = "two"
    assert "type superpixel ids" in e.error.value
    e.extra_widgets["off"].value = ""
    assert e.error.value == ""
    e.extra_widgets["kernel_width"].value = 0.25


def test_tree_surrogate_draws_the_tree_and_the_fidelity_curve(explorer):
    e = explorer
    e.extra_widgets["segmenter"].value = "grid"
    e.extra_widgets["n"].value = 16
    e.extra_widgets["surrogate"].value = "tree"
    assert e.error.value == "", e.error.value
    fit = e.result.extra["fit"]
    assert fit.kind == "tree" and fit.z.shape[1] == 16
    tree = next(t for t in e.figure.data if t.name == "tree")
    assert any("off?" in text for text in tree.text)
    curve = e.result.extra["curves"]["on the samples"]
    assert curve[-1] > curve[0]
    e.extra_widgets["surrogate"].value = "linear"


def test_lime_controls_are_limes_own_options(explorer):
    from xai_course import surrogates as core

    assert set(core.lime.options) <= set(explorer.extra_widgets)
    width = explorer.extra_widgets["kernel_width"]
    assert width.value == pytest.approx(core.lime.options["kernel_width"].default)
    request = explorer.request()
    assert explorer.coarse(request).extras["samples"] == 60


def test_a_text_model_is_refused_in_the_error_area():
    e = LimeExplorer(models=["reviews"], sync=True, n_samples=4, device="cpu").start()
    assert "explains images" in e.error.value


def test_tabular_lime_bars_and_tree():
    e = TabularLime(sync=True, n_samples=4, device="cpu", samples=200).start()
    assert e.error.value == "", e.error.value
    bars = e.figure.data[0]
    assert bars.type == "bar" and len(bars.y) == 12
    names = zoo.dataset("breast-cancer", n=1).features
    assert all(label.split(" = ")[0] in names for label in bars.y)
    assert e.figure.layout.template.layout.yaxis.automargin  # the names are not clipped
    e.view_widgets["features shown"].value = 5
    assert len(e.figure.data[0].y) == 5
    largest = e.result.attribution.abs().max().item()
    assert max(abs(v) for v in bars.x) == pytest.approx(largest)
    e.extra_widgets["surrogate"].value = "tree"
    tree = next(t for t in e.figure.data if t.name == "tree")
    assert any("≤" in text for text in tree.text)
    assert "fidelity R²" in e.status_line.value


def test_tree_figure_names_every_split():
    from sklearn.tree import DecisionTreeRegressor

    x = torch.rand(200, 3, generator=torch.Generator().manual_seed(0)).numpy()
    tree = DecisionTreeRegressor(max_depth=2, random_state=0).fit(x, x[:, 1] > 0.5)
    fig = tree_figure(tree, ["a", "b", "c"])
    nodes = next(t for t in fig.data if t.name == "tree")
    assert len(nodes.x) == tree.tree_.node_count
    assert nodes.text[0].startswith("b ≤")  # the root splits on the feature that decides


def test_tree_regularization_shows_both_runs():
    view = TreeRegularization(steps=60, grid=20)
    assert view.error.value == "", view.error.value
    assert len([t for t in view.figure.data if t.type == "heatmap"]) == 4
    view.strength.value = 1.0
    view.button.click()
    assert set(view.runs) == {0.0, 3.0, 1.0}
    assert "strength 1: path length" in view.status_line.value
    assert isinstance(view.runs[1.0], surrogates.TreeRegularized)
