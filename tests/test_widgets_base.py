"""The explorer frame, driven in plain pytest (ipywidgets' DummyComm; no kernel, no browser).

Set `.value`, then assert on the FigureWidget's data and the widgets' state. The models and
data are tiny and made here, so every expected number is computed in the test.
"""

import datetime
import io
import threading
import time

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image
from torch import nn

from xai_course import viz, zoo
from xai_course.convention import Option, options
from xai_course.widgets import base
from xai_course.widgets.base import UPLOAD, Explorer, option_widget, update_figure

CLASSES = ["zero", "one", "two"]


# --------------------------------------------------------------------------- fixtures
def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 3)).eval()


def toy_data() -> zoo.Dataset:
    gen = torch.Generator().manual_seed(1)
    return zoo.Dataset("toy", torch.rand(5, 1, 8, 8, generator=gen),
                       torch.tensor([0, 1, 2, 0, 1]), CLASSES)


def input_x_gradient(model, inputs, target):
    """x * dS_target/dx, written out here so that the test knows the numbers."""
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(model(x)[:, target].sum(), x)
    return x.detach() * grad


def make_method(calls: list, slow: dict | None = None):
    """input x gradient times `scale`; records each call; blocks on slow[scale] if given."""

    def shifted(model, inputs, target, scale=1.0):
        return scaled(model, inputs, target, scale) + 0.25

    @options(Option("scale", "float", 1.0, low=0.0, high=2.0, step=0.25, help="factor"))
    def scaled(model, inputs, target, scale=1.0):
        calls.append((scale, target))
        if slow and scale in slow:
            assert slow[scale].wait(10)
        if scale > 1.6:
            raise ValueError(f"scale {scale} is too large for this test")
        return scale * input_x_gradient(model, inputs, target)

    # what convention.reference attaches (the reference, what it is called)
    scaled.reference, scaled.reference_name = shifted, "shifted by 0.25"
    return scaled


def expected_map(model, x, target, scale):
    return (scale * input_x_gradient(model, x, target))[0].sum(0).numpy()


@pytest.fixture
def explorer():
    calls = []
    e = Explorer(methods={"scaled": make_method(calls)}, models={"tiny": tiny_cnn()},
                 data=toy_data(), sync=True).start()
    e.calls = calls
    e.normalize.value = "none"  # raw values in the figure (redraw only, no recompute)
    yield e
    e.close()


def heat_z(e: Explorer) -> np.ndarray:
    return np.asarray(e.figure.data[1].z)


# --------------------------------------------------------------------------- controls
def test_option_widgets_follow_the_declared_options():
    built = {
        "int": option_widget(Option("steps", "int", 50, low=1, high=200)),
        "log_float": option_widget(Option("sigma", "float", 0.1, low=1e-3, high=10, log=True)),
        "log_int": option_widget(Option("samples", "int", 16, low=1, high=1024, log=True)),
        "short_choice": option_widget(Option("method", "choice", "riemann",
                                             choices=("riemann", "gausslegendre"))),
        "long_choice": option_widget(Option("baseline", "choice", "black",
                                            choices=("black", "white", "blur", "noise", "mean"))),
        "bool": option_widget(Option("abs", "bool", False)),
        "cheap": option_widget(Option("alpha", "float", 0.5, low=0, high=1, expensive=False)),
        "unbounded": option_widget(Option("seed", "int", 3)),
    }
    assert isinstance(built["int"], widgets.IntSlider)
    assert (built["int"].min, built["int"].max, built["int"].value) == (1, 200, 50)
    assert isinstance(built["log_float"], widgets.FloatLogSlider)
    assert (built["log_float"].min, built["log_float"].max) == pytest.approx((-3, 1))
    assert isinstance(built["log_int"], widgets.SelectionSlider)
    assert built["log_int"].options[0] == 1 and built["log_int"].options[-1] == 1024
    assert built["log_int"].value == 16
    assert isinstance(built["short_choice"], widgets.ToggleButtons)
    assert built["short_choice"].value == "riemann"
    assert isinstance(built["long_choice"], widgets.Dropdown)
    assert isinstance(built["bool"], widgets.Checkbox) and built["bool"].value is False
    assert isinstance(built["unbounded"], widgets.IntText)
    # expensive (the default) updates on release; cheap ones while dragging
    assert built["int"].continuous_update is False
    assert built["cheap"].continuous_update is True
    assert built["int"].description == "steps"
    assert built["short_choice"].style.button_width == "auto"  # no label cut short


def test_construction_computes_nothing_until_started():
    calls = []
    e = Explorer(methods={"scaled": make_method(calls)}, models={"tiny": tiny_cnn()},
                 data=toy_data(), sync=True)
    assert calls == [] and e.result is None and e.figure.data == ()
    assert e.start() is e and calls == [(1.0, 0)]
    e.start()  # once only
    assert calls == [(1.0, 0)]


def test_explorer_builds_pickers_and_the_method_controls(explorer):
    e = explorer
    (scale,) = e.options_box.children
    assert isinstance(scale, widgets.FloatSlider) and scale.value == 1.0 and scale.step == 0.25
    assert e.model_picker.options == ("tiny",)
    assert e.data_picker.options == ("toy",)
    assert e.sample_picker.max == 4 and e.sample_picker.value == 0
    assert e.target_picker.value == "label"
    assert [label for label, _ in e.target_picker.options][2:] == ["0: zero", "1: one", "2: two"]
    assert "cpu" in e.device_picker.options and e.device_picker.value in e.device_picker.options
    assert e.method_picker.layout.display == "none"  # one method: no picker
    assert isinstance(e.widget, widgets.VBox) and e.figure_box in e.widget.children
    assert e.figure_box.children == (e.figure,)
    assert e.error.value == "" and "<b>cpu</b>" in e.status_line.value


def test_first_figure_shows_the_label_class_attribution(explorer):
    e, data, model = explorer, toy_data(), tiny_cnn()
    assert [t.type for t in e.figure.data] == ["image", "heatmap"]
    np.testing.assert_allclose(heat_z(e), expected_map(model, data.x[:1], 0, 1.0), atol=1e-6)
    assert np.asarray(e.figure.data[0].z).shape == (8, 8, 3)
    assert e.calls == [(1.0, 0)]
    assert " ms</b>" in e.status_line.value and "label 0 (zero)" in e.status_line.value


# --------------------------------------------------------------------------- updates
def test_slider_sample_and_target_change_the_figure(explorer):
    e, data, model = explorer, toy_data(), tiny_cnn()
    (scale,) = e.options_box.children
    scale.value = 0.5
    np.testing.assert_allclose(heat_z(e), expected_map(model, data.x[:1], 0, 0.5), atol=1e-6)
    e.sample_picker.value = 2  # label 2
    np.testing.assert_allclose(heat_z(e), expected_map(model, data.x[2:3], 2, 0.5), atol=1e-6)
    e.target_picker.value = 1
    np.testing.assert_allclose(heat_z(e), expected_map(model, data.x[2:3], 1, 0.5), atol=1e-6)
    e.target_picker.value = "prediction"
    predicted = int(model(data.x[2:3]).argmax())
    assert e.calls[-1] == (0.5, predicted)


def test_cache_hit_does_not_recompute(explorer):
    e = explorer
    (scale,) = e.options_box.children
    scale.value = 0.5
    scale.value = 1.0  # computed at start: from the cache
    first = heat_z(e).copy()
    scale.value = 0.5  # cached too
    scale.value = 1.0
    assert e.calls == [(1.0, 0), (0.5, 0)]
    np.testing.assert_array_equal(heat_z(e), first)


def test_display_controls_redraw_without_recomputing(explorer):
    e = explorer
    e.opacity.value = 0.2
    assert e.figure.data[1].opacity == 0.2
    e.normalize.value = "maxabs"
    assert np.abs(heat_z(e)).max() == pytest.approx(1.0)
    assert e.calls == [(1.0, 0)]


def test_reference_check_shows_the_difference():
    e = Explorer(methods={"scaled": make_method([])}, models={"tiny": tiny_cnn()},
                 data=toy_data(), sync=True, check=True).start()
    assert e.check_box.layout.display is None  # the method has a reference
    assert e.check_box.description == "check against shifted by 0.25"
    assert "max |ours − shifted by 0.25| = <b>0.25</b>" in e.status_line.value
    assert e.result.reference_error == pytest.approx(0.25)
    e.check_box.value = False
    assert "max |ours" not in e.status_line.value


def test_every_check_box_shown_in_the_course_checks():
    """In every explorer of the course, for every method whose check box shows, ticking it
    shows the largest difference from the method's reference in the status line (explorers
    that compute their own pictures must run the reference too, or hide the box)."""
    from test_widgets_layout import CASES

    checked = []
    for name, make in CASES.items():
        e = make().start()
        shown = e.method_picker.layout.display != "none"
        for method in list(e.method_picker.options) if shown else []:
            e.method_picker.value = method
            if e.check_box.layout.display == "none":
                continue
            e.check_box.value = True
            assert e.last_error is None, f"{name}, {method}: {e.error.value}"
            error = e.result.reference_error
            assert error is not None, f"{name}: the box checks {method} against nothing"
            assert error < 1e-4, f"{name}, {method}: max |ours - reference| = {error:.2g}"
            assert "max |ours − " in e.status_line.value, f"{name}, {method}: status"
            checked.append(f"{name}: {method}")
            e.check_box.value = False
        e.close()
    assert len(checked) >= 11, checked  # in 01, 03, 04 and 09


def test_method_picker_switches_controls_and_figure():
    calls = []
    e = Explorer(methods={"scaled": make_method(calls), "ixg": input_x_gradient},
                 models={"tiny": tiny_cnn()}, data=toy_data(), sync=True).start()
    assert e.method_picker.layout.display is None
    assert len(e.options_box.children) == 1
    e.options_box.children[0].value = 2.0  # raises in the method (> 1.6)
    assert "ValueError" in e.error.value
    e.method_picker.value = "ixg"
    assert e.options_box.children == ()
    assert e.check_box.layout.display == "none"  # no reference
    assert e.error.value == ""
    e.normalize.value = "none"
    np.testing.assert_allclose(heat_z(e), expected_map(tiny_cnn(), toy_data().x[:1], 0, 1.0),
                               atol=1e-6)
    e.method_picker.value = "scaled"
    assert e.options_box.children[0].value == 2.0  # its value was kept


# --------------------------------------------------------------------------- errors
def test_an_exception_shows_and_the_next_valid_change_recovers(explorer):
    e, data, model = explorer, toy_data(), tiny_cnn()
    (scale,) = e.options_box.children
    scale.value = 1.75
    assert "<b>ValueError</b>: scale 1.75 is too large" in e.error.value
    assert "<details><summary>traceback</summary>" in e.error.value
    assert isinstance(e.last_error, ValueError)
    # no stale picture of the previous request: the figure says it has none
    assert e.figure.data == () and e.result is None and e.status_line.value == ""
    assert "no picture: ValueError" in e.figure.layout.title.text
    e.opacity.value = 0.3  # a redraw has nothing to draw, and does not fail
    assert e.figure.data == ()
    scale.value = 0.25
    assert e.error.value == "" and e.last_error is None
    np.testing.assert_allclose(heat_z(e), expected_map(model, data.x[:1], 0, 0.25), atol=1e-6)


def test_an_error_in_render_is_caught_too(explorer, monkeypatch):
    e = explorer
    monkeypatch.setattr(e, "render", lambda result: 1 / 0)
    e.sample_picker.value = 1
    assert "ZeroDivisionError" in e.error.value
    assert e.figure.data == ()  # the picture of sample 0 is not left under sample 1
    monkeypatch.undo()
    e.sample_picker.value = 2
    assert e.error.value == ""


# --------------------------------------------------------------------------- threads
def async_explorer(slow):
    calls = []
    e = Explorer(methods={"scaled": make_method(calls, slow)}, models={"tiny": tiny_cnn()},
                 data=toy_data(), sync=False).start()
    e.wait()
    e.normalize.value = "none"
    e.calls = calls
    return e


def wait_until_running(e: Explorer, call: tuple) -> None:
    """Wait until the worker thread is inside the method for `call`."""
    deadline = time.time() + 10
    while call not in e.calls and time.time() < deadline:
        time.sleep(0.005)
    assert call in e.calls


def test_a_slow_old_result_never_overwrites_a_newer_one():
    release = threading.Event()
    e = async_explorer({0.5: release})
    (scale,) = e.options_box.children
    shown_at_one = heat_z(e).copy()
    scale.value = 0.5  # slow: blocks in the worker
    wait_until_running(e, (0.5, 0))
    scale.value = 1.0  # newer, cached: drawn at once, before the old one finishes
    release.set()
    e.wait()
    assert (0.5, 0) in e.calls  # the old computation did finish ...
    np.testing.assert_array_equal(heat_z(e), shown_at_one)  # ... and was not drawn
    assert e.result.request.opts == {"scale": 1.0}
    scale.value = 0.5  # but it was cached for later
    assert e.calls.count((0.5, 0)) == 1
    np.testing.assert_allclose(heat_z(e), 0.5 * shown_at_one, atol=1e-6)
    e.close()


def test_requests_queued_behind_a_slow_one_skip_to_the_newest():
    release = threading.Event()
    e = async_explorer({0.25: release})
    (scale,) = e.options_box.children
    scale.value = 0.25  # blocks the worker
    wait_until_running(e, (0.25, 0))
    scale.value = 0.5  # queued, then stale: never computed
    scale.value = 0.75  # the newest
    release.set()
    e.wait()
    assert e.calls == [(1.0, 0), (0.25, 0), (0.75, 0)]
    np.testing.assert_allclose(heat_z(e), expected_map(tiny_cnn(), toy_data().x[:1], 0, 0.75),
                               atol=1e-6)
    e.close()


# --------------------------------------------------------------------------- upload
def upload_value(name: str, content: bytes) -> tuple:
    return ({"name": name, "type": "", "size": len(content), "content": memoryview(content),
             "last_modified": datetime.datetime(2026, 1, 1)},)


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def test_bad_upload_shows_the_refusal_and_keeps_the_data(explorer):
    e = explorer
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "GIF")
    e.upload.value = upload_value("cat.gif", buf.getvalue())
    assert "not a PNG or JPEG" in e.error.value
    assert e.data_picker.value == "toy" and UPLOAD not in e.data_picker.options
    e.sample_picker.value = 1  # still usable
    assert e.error.value == ""


def test_good_upload_is_read_at_the_models_input_size(explorer):
    e, model = explorer, tiny_cnn()
    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:, 8:24] = 255  # a white square in the middle of a black band
    e.upload.value = upload_value("square.png", png_bytes(pixels))
    assert e.error.value == ""
    assert e.data_picker.value == UPLOAD and e.sample_picker.disabled
    x = e.result.request.x
    assert x.shape == (1, 1, 8, 8) and x.min().item() == 1.0  # grey, centre-cropped
    predicted = int(model(x).argmax())
    assert e.result.target == predicted  # no label: the prediction
    np.testing.assert_allclose(heat_z(e), expected_map(model, x, predicted, 1.0), atol=1e-6)
    e.data_picker.value = "toy"
    assert not e.sample_picker.disabled and e.result.request.label == 0


# --------------------------------------------------------------------------- text models
class TinyText(nn.Module):
    """Token ids -> embedding -> mean -> linear: attribution per token is easy to check."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(6, 4, padding_idx=0)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(5 * 4, 2))

    def forward(self, ids):
        return self.encoder(self.embedding(ids))


def test_text_models_get_token_figures():
    vocab = ["<pad>", "not", "good", "film", "a", "bad"]
    data = zoo.Dataset("words", x=torch.tensor([[1, 2, 3, 0, 0], [4, 5, 3, 0, 0]]),
                       y=torch.tensor([0, 0]), classes=["neg", "pos"],
                       relevant=torch.tensor([[1, 1, 0, 0, 0], [0, 1, 0, 0, 0]]),
                       tokens=[["not", "good", "film"], ["a", "bad", "film"]], vocab=vocab)
    model = TinyText().eval()
    e = Explorer(methods={"ixg": input_x_gradient}, models={"text": model}, data=data,
                 sync=True).start()
    assert e.error.value == "" and e.upload.disabled
    heat, marks = e.figure.data
    assert [str(t) for t in heat.text.flat[:3]] == ["<b>not</b>", "<b>good</b>", "film"]
    expected = input_x_gradient(model.encoder, model.embedding(data.x[:1]).detach(), 0)
    expected = expected[0].sum(-1)[:3].numpy()
    np.testing.assert_allclose(heat.customdata.flat[:3], expected, atol=1e-6)
    assert (np.sign(heat.z.flat[:3]) == np.sign(expected)).all()
    assert list(marks.x) == [0, 1]
    e.sample_picker.value = 1
    assert list(e.figure.data[1].x) == [1]


# --------------------------------------------------------------------------- zoo path
def test_models_without_weights_are_noted_and_skipped(monkeypatch):
    spec = type("Spec", (), {"dataset": "toy"})

    def load_model(name, device=None):
        if name.endswith("imagenet"):
            raise zoo.WeightsNotCached(f"run `xai-course fetch-weights {name}`")
        return tiny_cnn()

    monkeypatch.setattr(zoo, "models", lambda: ["big-imagenet", "huge-imagenet", "tiny"])
    monkeypatch.setattr(zoo, "load_model", load_model)
    monkeypatch.setattr(zoo, "model_info", lambda name: spec)
    monkeypatch.setattr(zoo, "dataset", lambda name, n=None: toy_data()[:n])
    e = Explorer(methods={"ixg": input_x_gradient}, sync=True, n_samples=3).start()
    assert e.model_picker.options == ("tiny",) and e.model_picker.value == "tiny"
    assert "fetch-weights big-imagenet" in e.note.value
    assert "fetch-weights huge-imagenet" in e.note.value
    assert e.error.value == "" and e.sample_picker.max == 2
    assert e.result.request.model_name == "tiny"


def test_presentation_mode_is_large(explorer):
    e = Explorer(methods={"scaled": make_method([])}, models={"tiny": tiny_cnn()},
                 data=toy_data(), sync=True, presentation=True).start()
    assert e.figure.layout.height > explorer.figure.layout.height
    assert e.figure.layout.font.size > explorer.figure.layout.font.size


def test_explorer_hooks_compute_render_and_declared_controls():
    class Occluder(Explorer):
        """Grey out a patch and show the class probability: a chapter-style explorer."""

        def __init__(self, **kwargs):
            super().__init__(controls=[Option("row", "int", 0, low=0, high=6)], **kwargs)

        def compute(self, request):
            result = self.predict(request)  # the shared opening: probabilities, target
            x = request.x.clone()
            r = request.extras["row"]
            x[..., r:r + 2, :] = 0.5
            result.extra["x"] = x
            return result

        def render(self, result):
            return base.viz.heatmap_overlay(result.extra["x"][0])

    e = Occluder(models={"tiny": tiny_cnn()}, data=toy_data(), sync=True).start()
    row = e.extra_widgets["row"]
    assert e.extra_box.children == (row,) and isinstance(row, widgets.IntSlider)
    assert e.result.target == 0 and e.result.probabilities.sum().item() == pytest.approx(1.0)
    row.value = 3
    image = np.asarray(e.figure.data[0].z)
    assert (image[3:5] == 128).all() and not (image[:3] == 128).all()
    assert e.result.request.extras == {"row": 3}
    assert e.value("row") == 3


def test_view_controls_only_redraw():
    calls = []
    seen = []

    class Tinted(Explorer):
        def __init__(self, **kwargs):
            super().__init__(view_controls=[Option("tint", "float", 0.0, low=0.0, high=1.0,
                                                   expensive=False)], **kwargs)

        def render(self, result):
            seen.append(self.value("tint"))
            return super().render(result)

    e = Tinted(methods={"scaled": make_method(calls)}, models={"tiny": tiny_cnn()},
               data=toy_data(), sync=True).start()
    e.view_widgets["tint"].value = 0.5
    assert calls == [(1.0, 0)] and seen == [0.0, 0.5]
    assert e.view_widgets["tint"] in e.display_box.children


# --------------------------------------------------------------------------- quick answers
def coarse_method(calls):
    @options(Option("steps", "int", 50, low=2, high=100))
    def stepped(model, inputs, target, steps=50):
        calls.append(steps)
        return steps * input_x_gradient(model, inputs, target)

    return stepped


def test_a_coarse_picture_comes_first_then_the_final_one():
    calls, shown = [], []
    base.COARSE["stepped"] = lambda o: ({**o, "steps": 4}, "4 steps") if o["steps"] > 4 \
        else None
    try:
        e = Explorer(methods={"stepped": coarse_method(calls)}, models={"tiny": tiny_cnn()},
                     data=toy_data(), sync=True, coarse_first=True)
        e.normalize.value = "none"
        e.status_line.observe(lambda change: shown.append(
            (change["new"], np.asarray(e.figure.data[1].z).copy())), names="value")
        e.start()
        assert calls == [4, 50]  # the coarse request first, then the full one
        (coarse_status, coarse_z), (final_status, final_z) = shown
        assert "coarse: 4 steps — refining…" in coarse_status and "coarse" not in final_status
        np.testing.assert_allclose(final_z, 50 / 4 * coarse_z, rtol=1e-5)  # another picture
        assert e.result.request.opts == {"steps": 50}
        e.sample_picker.value = 1
        e.sample_picker.value = 0  # the full result is cached: no coarse picture again
        assert calls == [4, 50, 4, 50] and "coarse" not in e.status_line.value
    finally:
        del base.COARSE["stepped"]


def test_sync_mode_computes_only_the_final_result():
    calls = []
    e = Explorer(methods={"stepped": coarse_method(calls)}, models={"tiny": tiny_cnn()},
                 data=toy_data(), sync=True).start()
    assert e.coarse_first is False and calls == [50]
    request = e.request()
    assert e.coarse(request) is None  # no rule for this method
    cheaper = request.variant("2 steps", options={"steps": 2})
    assert cheaper.opts == {"steps": 2} and cheaper.key != request.key
    assert cheaper.coarse == "2 steps" and cheaper.check is False


def test_coarse_rules_of_the_course_methods():
    from xai_course import gradients, perturbation, surrogates

    assert base.coarse_options(gradients.integrated_gradients, {"steps": 50}) == (
        {"steps": 8}, "8 steps")
    assert base.coarse_options(gradients.integrated_gradients, {"steps": 4}) is None
    assert base.coarse_options(perturbation.occlusion, {"window": 8, "stride": 2}) == (
        {"window": 8, "stride": 8}, "stride 8")
    assert base.coarse_options(surrogates.lime, {"samples": 500})[0] == {"samples": 60}
    assert base.coarse_options(gradients.gradient, {}) is None


def test_a_coarse_result_of_an_old_request_never_shows_after_a_newer_one():
    release = threading.Event()
    calls = []

    @options(Option("steps", "int", 50, low=2, high=100))
    def stepped(model, inputs, target, steps=50):
        calls.append(steps)
        if steps == 4 and len(calls) > 2:
            assert release.wait(10)
        return steps * input_x_gradient(model, inputs, target)

    base.COARSE["stepped"] = lambda o: ({**o, "steps": 4}, "4 steps")
    try:
        e = Explorer(methods={"stepped": stepped}, models={"tiny": tiny_cnn()},
                     data=toy_data(), sync=False).start()
        e.wait()
        assert e.result.request.opts == {"steps": 50} and e.result.request.coarse is None
        e.sample_picker.value = 1  # its coarse pass blocks in the worker
        deadline = time.time() + 10
        while len(calls) < 3 and time.time() < deadline:
            time.sleep(0.005)
        e.sample_picker.value = 0  # cached: drawn at once
        release.set()
        e.wait()
    finally:
        del base.COARSE["stepped"]
    assert calls == [4, 50, 4]  # sample 1's full pass never ran: it was stale
    assert e.result.request.sample == 0 and e.result.request.coarse is None
    e.close()


# --------------------------------------------------------------------------- figures
def test_update_figure_in_place_or_in_a_new_widget():
    widget = go.FigureWidget(go.Figure(go.Heatmap(z=np.eye(3)), layout=dict(title="first")))
    same = update_figure(widget, go.Figure(go.Heatmap(z=2 * np.eye(3), zmid=0),
                                           layout=dict(title="second")))
    assert same is widget  # the same structure: updated in place
    np.testing.assert_array_equal(widget.data[0].z, 2 * np.eye(3))
    assert widget.data[0].zmid == 0 and widget.layout.title.text == "second"
    update_figure(widget, go.Figure(go.Heatmap(z=np.eye(3))))
    assert widget.data[0].zmid is None and widget.layout.title.text is None  # reset
    two = go.Figure([go.Bar(y=[1, 2]), go.Scatter(y=[3, 1])])
    new = update_figure(widget, two)
    assert new is not widget and [t.type for t in new.data] == ["bar", "scatter"]
    grid = viz.method_grid(torch.rand(3, 4, 4), {"a": torch.rand(4, 4), "b": torch.rand(4, 4)})
    wider = update_figure(new, grid)  # more axes: a new widget, built from the figure
    assert wider is not new and wider.layout.xaxis2.domain == grid.layout.xaxis2.domain


def test_a_new_structure_swaps_the_widget_in_the_explorer(explorer):
    e = explorer
    first = e.figure
    e.sample_picker.value = 1
    assert e.figure is first  # same structure: in place
    e.show_figure(viz.method_grid(torch.rand(1, 8, 8), {"a": torch.rand(8, 8),
                                                        "b": torch.rand(8, 8)}))
    assert e.figure is not first and e.figure_box.children == (e.figure,)
    assert len(e.figure.data) == 4


def later_view(widget: go.FigureWidget) -> list[dict]:
    """The traces a view made now starts from (what `get_state()` sends a new view)."""
    return widget.get_state()["_widget_data"]


def test_a_new_figure_widget_opens_with_its_figure(monkeypatch):
    """The browser's copy of a new FigureWidget is made with the figure in it: plotly's own
    is made empty and gets the figure in a second message, and a view made in between
    stayed empty (seen in the browser tests, under load: empty axes, the status drawn)."""
    import comm

    opened = []
    create = comm.create_comm

    def spy(**kwargs):
        opened.append(kwargs["data"]["state"])
        return create(**kwargs)

    monkeypatch.setattr(comm, "create_comm", spy)
    widget = base.FigureWidget(go.Figure([go.Heatmap(z=np.eye(3)), go.Scatter(y=[1, 2])],
                                         layout=dict(title="first")))
    assert len(opened) == 1
    assert [t["type"] for t in opened[0]["_widget_data"]] == ["heatmap", "scatter"]
    assert opened[0]["_widget_layout"]["title"]["text"] == "first"
    assert widget.comm is not None and widget.data[1].y == (1, 2)


def test_displayed_again_the_explorer_shows_the_current_figure(explorer, monkeypatch):
    import IPython.display

    e = explorer
    monkeypatch.setattr(IPython.display, "display", lambda *args: None)
    first = e.figure
    for sample in (2, 3):  # drawn in place: the state a new view starts from follows
        e.sample_picker.value = sample
        assert e.figure is first
        np.testing.assert_array_equal(np.asarray(later_view(e.figure)[1]["z"]), heat_z(e))
    e._ipython_display_()  # a second view of the explorer: the same widget, up to date
    assert e.figure is first and e.figure_box.children == (first,)


def test_no_private_plotly_attributes_in_the_widgets():
    from pathlib import Path

    for path in (Path(base.__file__).parent).glob("*.py"):
        text = path.read_text()
        for private in ("_widget_data", "_widget_layout", "_layout_obj", "_props",
                        "_data_objs"):
            assert private not in text, f"{path.name} uses plotly's {private}"


def test_clicks_reach_the_clicked_hook():
    clicks = []

    class Clicky(Explorer):
        def render(self, result):
            fig = super().render(result)
            fig.add_trace(go.Heatmap(z=np.zeros((8, 8)), opacity=0.0, name="target"))
            return fig

        def clicked(self, trace_name, x, y):
            clicks.append((trace_name, x, y))

    e = Clicky(input_x_gradient, models={"tiny": tiny_cnn()}, data=toy_data(), sync=True,
               clickable=["target"]).start()
    trace = e.figure.data[-1]
    points = type("Points", (), {"xs": [3], "ys": [5]})()
    e._on_click(trace, points)  # what plotly's click callback calls
    e._on_click(trace, type("Points", (), {"xs": [], "ys": []})())  # a click elsewhere
    assert clicks == [("target", 3, 5)]


# --------------------------------------------------------------------------- real zoo models


@pytest.mark.parametrize("name, trace", [("digits", "image"), ("reviews", "heatmap")])
def test_gradient_on_an_embedded_model_is_timed_and_checked(name, trace):
    from xai_course import gradients

    e = Explorer(methods={"gradient": gradients.gradient}, models=[name], device="cpu",
                 sync=True, n_samples=8, check=True).start()
    assert e.error.value == "", e.error.value
    assert e.figure.data[0].type == trace
    for sample in (1, 2, 3):
        e.sample_picker.value = sample
        assert e.result.reference_error < 1e-5
        assert e.result.request.sample == sample
    assert f"{e.result.ms:.1f} ms" in e.status_line.value  # the time is shown, not asserted


def test_one_method_alone_and_bad_arguments():
    e = Explorer(input_x_gradient, models={"tiny": tiny_cnn()}, data=toy_data(),
                 sync=True).start()
    assert list(e.methods) == ["input_x_gradient"] and e.error.value == ""
    with pytest.raises(ValueError, match=r"unknown model 'resnet'; choose from \['tiny'\]"):
        Explorer(input_x_gradient, models={"tiny": tiny_cnn()}, data=toy_data(), model="resnet")


def test_the_explorer_runs_the_model_prepared_for_many_passes():
    """A zoo model with BatchNorm is folded (fast.for_many_passes), a given module stays as
    the user made it, and the explorer's answer is the model's up to rounding."""
    from xai_course import gradients
    from xai_course.convention import model_state, same_state

    given = zoo.load_model("cluttered-digits", "cpu")
    before = model_state(given)
    e = Explorer(gradients.gradient, models={"mine": given}, sync=True,
                 data=zoo.dataset("cluttered-digits", n=2)).start()
    prepared = e.model()
    assert prepared is not given and same_state(before, model_state(given))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in prepared.modules())
    x, target = e.result.request.x, e.result.target
    expected = gradients.gradient(given, x, target)[0]
    assert torch.allclose(e.result.attribution, expected, atol=1e-4 * expected.abs().max())


def test_by_default_an_explorer_offers_the_classifiers_of_images_and_texts():
    from xai_course import gradients

    e = Explorer(gradients.gradient, sync=True)
    names = e.model_picker.options
    assert "digits" in names and "reviews" in names
    kinds = [(zoo.model_info(m).tabular, zoo.model_info(m).generator) for m in names]
    assert not any(t or g for t, g in kinds), names  # no table, no GAN generator
    assert any(zoo.model_info(m).generator for m in zoo.models())  # there is one to leave out
    assert not any(zoo.model_info(m).explains for m in names), names  # no readout network
    assert any(zoo.model_info(m).explains for m in zoo.models())
    e.close()
