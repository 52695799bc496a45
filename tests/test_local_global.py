"""Chapter 01 core: one patch's effect, the share of an explanation on a region, shortcut."""

import pytest
import torch

from conftest import TinyLinear
from xai_course import gradients, local_global, zoo
from xai_course.zoo import digits


def test_patch_effect_by_hand():
    # two classes, S_0 = sum of the top-left 2x2 pixels, S_1 = 0: hiding that patch with 0
    w = torch.zeros(2, 16)
    w[0, [0, 1, 4, 5]] = 1.0
    model = TinyLinear(w).eval()
    x = torch.ones(1, 1, 4, 4)
    before, after = local_global.patch_effect(model, x, 0, top=0, left=0, size=2, baseline=0.0)
    assert torch.allclose(before, torch.sigmoid(torch.tensor([4.0])))
    assert torch.allclose(after, torch.tensor([0.5]))
    # a patch elsewhere changes nothing
    _, elsewhere = local_global.patch_effect(model, x, 0, top=2, left=2, size=2, baseline=0.0)
    assert torch.allclose(elsewhere, before)


def test_patch_effect_refuses_a_patch_outside_the_image():
    model = TinyLinear(torch.zeros(2, 16))
    with pytest.raises(ValueError, match="leaves the 4x4 image"):
        local_global.patch_effect(model, torch.ones(1, 1, 4, 4), 0, top=3, left=0, size=2)
    with pytest.raises(ValueError, match="size"):
        local_global.patch_effect(model, torch.ones(1, 1, 4, 4), 0, top=0, left=0, size=5)


def test_mass_inside_by_hand():
    a = torch.tensor([[[1.0, -3.0], [0.0, 4.0]]])
    region = torch.tensor([[[1, 1], [0, 0]]])
    assert torch.allclose(local_global.mass_inside(a, region), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="same"):
        local_global.mass_inside(a, region[:, :1])


def test_the_shortcut_model_looks_at_the_mark():
    model = zoo.load_model("shortcut-digits", device="cpu")
    data = zoo.dataset("shortcut-digits", split="test", n=300)
    moved = zoo.dataset("shortcut-digits", split="moved", n=300)
    mark = digits.shortcut_mark_mask("test", n=300)
    report = local_global.shortcut_report(model, data, moved, mark, gradients.gradient)
    print(report)
    assert report.drop >= 0.30
    # the gradient puts far more of its mass on the tiny mark than the mark's area
    assert report.mark_share > 5 * report.mark_area
    clean = zoo.load_model("cluttered-digits", device="cpu")
    fair = local_global.shortcut_report(clean, data, moved, mark, gradients.gradient)
    print(fair)
    assert fair.mark_share < report.mark_share
