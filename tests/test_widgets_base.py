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
import pytest
import torch
from PIL import Image
from torch import nn

from xai_course import zoo
from xai_course.convention import Option, options, reference
from xai_course.widgets import base
from xai_course.widgets.base import UPLOAD, Explorer, option_widget

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

    @reference(shifted, "shifted by 0.25")
    @options(Option("scale", "float", 1.0, low=0.0, high=2.0, step=0.25, help="factor"))
    def scaled(model, inputs, target, scale=1.0):
        calls.append((scale, target))
        if slow and scale in slow:
            assert slow[scale].wait(10)
        if scale > 1.6:
            raise ValueError(f"scale {scale} is too large for this test")
        return scale * input_x_gradient(model, inputs, target)

    return scaled


def expected_map(model, x, target, scale):
    return (scale * input_x_gradient(model, x, target))[0].sum(0).numpy()


@pytest.fixture
def explorer():
    calls = []
    e = Explorer(methods={"scaled": make_method(calls)}, models={"tiny": tiny_cnn()},
                 data=toy_data(), sync=True)
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
    assert isinstance(e.widget, widgets.VBox) and e.figure in e.widget.children
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
                 data=toy_data(), sync=True, check=True)
    assert e.check_box.layout.display is None  # the method has a reference
    assert e.check_box.description == "check against shifted by 0.25"
    assert "max |ours − shifted by 0.25| = <b>0.25</b>" in e.status_line.value
    assert e.result.reference_error == pytest.approx(0.25)
    e.check_box.value = False
    assert "max |ours" not in e.status_line.value


def test_method_picker_switches_controls_and_figure():
    calls = []
    e = Explorer(methods={"scaled": make_method(calls), "ixg": input_x_gradient},
                 models={"tiny": tiny_cnn()}, data=toy_data(), sync=True)
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
    before = heat_z(e).copy()
    scale.value = 1.75
    assert "<b>ValueError</b>: scale 1.75 is too large" in e.error.value
    assert "<details><summary>traceback</summary>" in e.error.value
    assert isinstance(e.last_error, ValueError)
    np.testing.assert_array_equal(heat_z(e), before)  # the old figure stays
    scale.value = 0.25
    assert e.error.value == "" and e.last_error is None
    np.testing.assert_allclose(heat_z(e), expected_map(model, data.x[:1], 0, 0.25), atol=1e-6)


def test_an_error_in_render_is_caught_too(explorer, monkeypatch):
    e = explorer
    monkeypatch.setattr(e, "render", lambda result: 1 / 0)
    e.sample_picker.value = 1
    assert "ZeroDivisionError" in e.error.value
    monkeypatch.undo()
    e.sample_picker.value = 2
    assert e.error.value == ""


# --------------------------------------------------------------------------- threads
def async_explorer(slow):
    calls = []
    e = Explorer(methods={"scaled": make_method(calls, slow)}, models={"tiny": tiny_cnn()},
                 data=toy_data(), sync=False)
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
                 sync=True)
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
    e = Explorer(methods={"ixg": input_x_gradient}, sync=True, n_samples=3)
    assert e.model_picker.options == ("tiny",) and e.model_picker.value == "tiny"
    assert "fetch-weights big-imagenet" in e.note.value
    assert "fetch-weights huge-imagenet" in e.note.value
    assert e.error.value == "" and e.sample_picker.max == 2
    assert e.result.request.model_name == "tiny"


def test_presentation_mode_is_large(explorer):
    e = Explorer(methods={"scaled": make_method([])}, models={"tiny": tiny_cnn()},
                 data=toy_data(), sync=True, presentation=True)
    assert e.figure.layout.height > explorer.figure.layout.height
    assert e.figure.layout.font.size > explorer.figure.layout.font.size


def test_subclass_hooks_compute_render_and_extra_controls():
    class Occluder(Explorer):
        """Grey out a patch and show the class probability: a chapter-style subclass."""

        def extra_controls(self):
            return {"row": widgets.IntSlider(0, min=0, max=6, description="row")}

        def compute(self, request):
            x = request.x.clone()
            r = request.extras["row"]
            x[..., r:r + 2, :] = 0.5
            probabilities = torch.softmax(request.model(x), 1)[0].detach()
            return base.Result(request, None, int(request.label), probabilities, 0.0,
                               extra={"x": x})

        def render(self, result):
            return base.viz.heatmap_overlay(result.extra["x"][0])

    e = Occluder(models={"tiny": tiny_cnn()}, data=toy_data(), sync=True)
    assert e.extra_box.children == (e.extra_widgets["row"],)
    e.extra_widgets["row"].value = 3
    image = np.asarray(e.figure.data[0].z)
    assert (image[3:5] == 128).all() and not (image[:3] == 128).all()
    assert e.result.request.extras == {"row": 3}


# --------------------------------------------------------------------------- real zoo models


@pytest.mark.parametrize("name, trace", [("digits", "image"), ("reviews", "heatmap")])
def test_gradient_on_an_embedded_model_is_timed_and_checked(name, trace):
    from xai_course import gradients

    e = Explorer(methods={"gradient": gradients.gradient}, models=[name], device="cpu",
                 sync=True, n_samples=8, check=True)
    assert e.error.value == "", e.error.value
    assert e.figure.data[0].type == trace
    for sample in (1, 2, 3):
        e.sample_picker.value = sample
        assert e.result.reference_error < 1e-5
        assert e.result.request.sample == sample
    assert f"{e.result.ms:.1f} ms" in e.status_line.value  # the time is shown, not asserted


def test_one_method_alone_and_bad_arguments():
    e = Explorer(input_x_gradient, models={"tiny": tiny_cnn()}, data=toy_data(), sync=True)
    assert list(e.methods) == ["input_x_gradient"] and e.error.value == ""
    with pytest.raises(ValueError, match=r"unknown model 'resnet'; choose from \['tiny'\]"):
        Explorer(input_x_gradient, models={"tiny": tiny_cnn()}, data=toy_data(), model="resnet")


def test_the_worker_runs_the_faster_copy_of_the_model(monkeypatch):
    """The worker may not trace with torch.fx (it patches the whole process): the explorer
    traces the model on the main thread when it builds a request, and the worker copies
    that graph for Integrated Gradients' passes (gradients.for_input_gradients)."""
    from xai_course import gradients

    made = []
    real = gradients.for_input_gradients

    def recording(model):
        fast = real(model)
        made.append((threading.current_thread() is threading.main_thread(), fast is not model))
        return fast

    monkeypatch.setattr(gradients, "for_input_gradients", recording)

    @options()
    def ig_in_passes(model, inputs, target):
        return gradients.integrated_gradients(model, inputs, target, steps=4, batch_size=1)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)).eval()
    e = Explorer(methods={"ig": ig_in_passes}, models={"bn": model}, data=toy_data(),
                 sync=False)
    e.wait()
    assert e.last_error is None
    assert made == [(False, True)]  # on the worker, a copy
    _, x, t = e.result.request.model, e.result.request.x, e.result.target
    assert torch.allclose(e.result.attribution, gradients.integrated_gradients(
        model, x, t, steps=4), atol=1e-6)
    e.close()
