"""Chapter 03 explorers driven in plain pytest: set values, assert on the numbers drawn."""

import pytest
import torch

from xai_course import cam, zoo
from xai_course.widgets.cam import CamExplorer, CamLayers


@pytest.fixture(scope="module")
def models():
    return {name: zoo.load_model(name, "cpu") for name in ("cluttered-digits", "digits")}


def heatmaps(explorer):
    return [t for t in explorer.figure.data if t.type == "heatmap"]


def test_layer_dropdown_and_maps_match_the_core(models):
    e = CamExplorer(models=models, sync=True, n_samples=4).start()
    assert e.last_error is None
    layer = e.extra_widgets["layer"]
    labels = dict((value, text) for text, value in layer.options)
    assert layer.value == "features" and labels["features"].endswith("maps of 8x8")
    assert labels["features.conv1"] == "features.conv1: 16 maps of 64x64"
    assert "pool" not in labels  # 1 x 1 maps are not offered
    e.method_picker.value = "Grad-CAM"
    layer.value = "features.relu2"
    x = e.result.request.x
    expected = cam.grad_cam(models["cluttered-digits"], x, e.result.target, "features.relu2")
    assert torch.allclose(e.result.attribution, expected[0])
    assert e.result.extra["coarse"].shape == (32, 32)
    assert "features.relu2: 32 maps of 32x32" in e.status_line.value
    e.check_box.value = True  # against Captum LayerGradCam
    assert e.result.reference_error < 1e-5 and "Captum" in e.status_line.value


def test_how_the_map_is_made(models):
    e = CamExplorer(models=models, sync=True, n_samples=4).start()
    e.method_picker.value = "Grad-CAM++"
    e.view_widgets["view"].value = "how it is made"
    e.view_widgets["channels shown"].value = 4
    assert e.last_error is None
    assert len(heatmaps(e)) == 4 + 3  # 4 channel maps; the sum, after ReLU, on the image
    A, alpha = e.result.extra["activations"], e.result.extra["weights"]
    model, x = models["cluttered-digits"], e.result.request.x
    maps = cam.layer_maps(model, x, e.result.target, "features")
    assert torch.allclose(alpha, cam.grad_cam_pp_weights(model, x, maps)[0])
    assert torch.allclose(e.result.extra["coarse"], (alpha[:, None, None] * A).sum(0), atol=1e-6)
    titles = [a.text for a in e.figure.layout.annotations]
    top = (alpha * A.mean(dim=(1, 2))).abs().topk(4).indices
    assert titles[0] == f"A_{top[0].item()}<br>α={alpha[top[0]].item():.3g}"
    assert titles[4] == "Σ α_k A_k, all 64"
    e.view_widgets["view"].value = "coarse vs upsampled"
    panels = heatmaps(e)
    assert len(panels) == 3 and len(panels[0].z) == 8 and len(panels[2].z) == 64


def test_score_cam_coarse_first_and_cam_errors(models):
    e = CamExplorer(models=models, sync=True, n_samples=4).start()
    e.method_picker.value = "Score-CAM"
    assert "batch_size" not in e.option_widgets("Score-CAM")  # a speed setting, no control
    assert "normalize" not in e.option_widgets("Score-CAM")  # the display's "normalise" does it
    assert e.last_error is None
    full = e.result.attribution
    coarse = e.coarse(e.request())  # the first picture: 8 channels scored
    assert coarse.method is cam.score_cam_topk and coarse.opts["k"] == 8
    first = e.compute(coarse)
    model, x = models["cluttered-digits"], e.result.request.x
    expected = cam.score_cam_topk(model, x, e.result.target, "features", k=8)
    assert torch.allclose(first.attribution, expected[0], atol=1e-6)
    assert not torch.allclose(first.attribution, full)
    e.method_picker.value = "Grad-CAM"
    assert e.coarse(e.request()) is None  # one pass: no coarse picture
    e.method_picker.value = "CAM"
    e.model_picker.value = "digits"  # no global-average-pooling head
    assert isinstance(e.last_error, ValueError)
    assert "global-average-pooling + linear head" in e.error.value
    assert e.figure.data == ()  # no stale map of the other model
    assert e.extra_widgets["layer"].value == "features"  # the digits model's layers
    e.method_picker.value = "Grad-CAM"  # the explorer stays usable
    assert e.last_error is None and e.result.extra["layer"] == "features"
    assert e.result.attribution.shape == (32, 32)


def test_raw_map_is_drawn_as_blocks(models):
    e = CamExplorer(models=models, sync=True, n_samples=4).start()
    e.option_widgets("CAM")["upsample"].value = None
    assert e.result.attribution.shape == (8, 8)
    overlay = heatmaps(e)[0]
    assert len(overlay.z) == 64  # nearest-upsampled for the overlay


def test_layers_from_early_to_late(models):
    e = CamLayers(models=models, sync=True, n_samples=4).start()
    assert e.last_error is None
    assert e.depths("cluttered-digits")[-1] == "features"
    assert len(heatmaps(e)) == len(e.depths("cluttered-digits"))
    model, x = models["cluttered-digits"], e.result.request.x
    for name, m in e.result.extra["maps"].items():
        assert torch.allclose(m, cam.grad_cam(model, x, e.result.target, name)[0])
