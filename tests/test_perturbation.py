"""Chapter 04 core (the part chapter 01 uses): occlusion vs hand-computed answers and Captum."""

import pytest
import torch
import torchvision

from conftest import TinyLinear
from xai_course import perturbation, zoo


def test_occlusion_tiling_windows_by_hand():
    # S(x) = w.x with x = 1: a window's drop is the sum of w over it.
    w = torch.arange(8.0).view(1, 8)
    model = TinyLinear(w).eval()
    x = torch.ones(1, 1, 2, 4)
    attr = perturbation.occlusion(model, x, 0, window=(1, 2, 2), stride=(1, 2, 2))
    assert torch.equal(attr[0, 0], torch.tensor([[10.0, 10, 18, 18], [10, 10, 18, 18]]))


def test_occlusion_overlapping_windows_are_averaged_by_hand():
    model = TinyLinear(torch.tensor([[1.0, 2.0, 3.0, 4.0]])).eval()
    attr = perturbation.occlusion(model, torch.ones(1, 4), 0, window=(2,), stride=(1,))
    # windows {0,1}: 3, {1,2}: 5, {2,3}: 7; each feature averages the windows covering it
    assert torch.equal(attr, torch.tensor([[3.0, 4.0, 6.0, 7.0]]))


def test_occlusion_window_cut_at_the_edge_by_hand():
    model = TinyLinear(torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])).eval()
    attr = perturbation.occlusion(model, torch.ones(1, 5), 0, window=(2,), stride=(2,))
    # positions 0, 2, 4: ceil((5 - 2) / 2) + 1 = 3 windows, the last one cut to {4}
    assert torch.equal(attr, torch.tensor([[3.0, 3.0, 7.0, 7.0, 5.0]]))
    assert perturbation.window_positions((5,), (2,), (2,)) == [(0,), (2,), (4,)]


def test_occlude_one_patch():
    x = torch.ones(2, 3, 6, 6)
    out = perturbation.occlude(x, (0, 1, 2), (3, 2, 3), baseline=0.25)
    assert out[:, :, 1:3, 2:5].eq(0.25).all()
    assert out.sum() == x.sum() - 2 * 3 * 2 * 3 * 0.75
    assert x.eq(1).all()  # the input itself is not modified


@pytest.mark.parametrize(
    "window, stride",
    [((3, 8, 8), (3, 4, 4)), ((3, 7, 5), (3, 3, 2)), ((1, 9, 9), (1, 5, 6)),
     ((2, 5, 5), (1, 3, 4)), ((3, 40, 44), (3, 1, 1))],
)
def test_occlusion_matches_captum_on_resnet18(window, stride, assert_unchanged):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.rand(2, 3, 40, 44)
    target = torch.tensor([1, 3])
    with assert_unchanged(model):
        ours = perturbation.occlusion(model, x, target, window=window, stride=stride,
                                      batch_size=17)
    ref = perturbation.occlusion.reference(model, x, target, window=window, stride=stride,
                                           batch_size=5)
    assert ours.abs().max() > 0
    assert (ours - ref).abs().max().item() <= 1e-5


def test_occlusion_with_probability_and_tensor_baseline_matches_captum():
    torch.manual_seed(1)
    model = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.rand(3, 3, 32, 32)
    baseline = torch.rand(1, 3, 32, 32)
    ours = perturbation.occlusion(model, x, 2, window=8, stride=4, baseline=baseline,
                                  output="probability")
    ref = perturbation.occlusion.reference(model, x, 2, window=(3, 8, 8), stride=(3, 4, 4),
                                           baseline=baseline, output="probability")
    assert (ours - ref).abs().max().item() <= 1e-6


@pytest.mark.parametrize("name, window, stride", [("digits", 4, 2), ("cluttered-digits", 8, 5)])
def test_occlusion_matches_captum_on_zoo_models(name, window, stride):
    model = zoo.load_model(name, device="cpu")
    data = zoo.dataset(name, n=4)
    c = data.x.shape[1]
    ours = perturbation.occlusion(model, data.x, data.y, window=window, stride=stride)
    ref = perturbation.occlusion.reference(model, data.x, data.y, window=(c, window, window),
                                           stride=(c, stride, stride), batch_size=8)
    assert (ours - ref).abs().max().item() <= 1e-5


def test_batch_size_does_not_change_the_answer():
    torch.manual_seed(2)
    model = torchvision.models.resnet18(num_classes=4).eval()
    x = torch.rand(2, 3, 24, 24)
    answers = [perturbation.occlusion(model, x, 0, window=6, stride=3, batch_size=b)
               for b in (1, 2, 7, 1000)]
    for a in answers[1:]:
        assert (a - answers[0]).abs().max() <= 1e-6


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(window=(3, 50, 4)), ValueError, "larger than the input"),
        (dict(window=(3, 4, 4), stride=(3, 8, 8)), ValueError, "stride"),
        (dict(window=(4, 4)), ValueError, "one per"),
        (dict(window=4, output="softmax"), ValueError, "logit"),
        (dict(window=4, batch_size=0), ValueError, "batch_size"),
    ],
)
def test_bad_occlusion_options(kwargs, error, words, assert_unchanged):
    model = torchvision.models.resnet18(num_classes=4).eval()
    with assert_unchanged(model), pytest.raises(error, match=words):
        perturbation.occlusion(model, torch.rand(1, 3, 16, 16), 0, **kwargs)


def test_occlusion_target_out_of_range_leaves_the_model(assert_unchanged):
    model = torchvision.models.resnet18(num_classes=4).train()
    with assert_unchanged(model), pytest.raises(ValueError, match="4 classes"):
        perturbation.occlusion(model, torch.rand(2, 3, 32, 32), 9, window=8)
