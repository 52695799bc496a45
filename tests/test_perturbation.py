"""Chapter 04: occlusion against hand-computed answers and Captum; meaningful perturbation by
hand and by the pointing game on cluttered digits; extremal perturbation against TorchRay."""

import pytest
import torch
import torchvision

from conftest import TinyLinear
from xai_course import perturbation, zoo
from xai_course.convention import unchanged
from xai_course.images import gaussian_blur
from xai_course.perturbation import count_passes


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


# --------------------------------------------------------------------------- building blocks
def test_gaussian_blur_matches_torchvision_and_keeps_constants():
    from torchvision.transforms import functional as tv

    torch.manual_seed(3)
    x = torch.rand(2, 3, 20, 24)
    ours = gaussian_blur(x, 1.5)
    assert torch.allclose(ours, tv.gaussian_blur(x, kernel_size=11, sigma=1.5), atol=1e-6)
    grey = torch.full((1, 3, 16, 16), 0.4)
    assert torch.allclose(gaussian_blur(grey, 3.0), grey)  # reflected border
    dark = gaussian_blur(grey, 3.0, border="zeros")  # black beyond the border
    assert dark[0, 0, 0, 0] < 0.25 and abs(dark[0, 0, 8, 8].item() - 0.4) < 0.01


def test_pyramid_blurs_each_pixel_as_much_as_its_mask_says():
    torch.manual_seed(4)
    x = torch.rand(2, 3, 16, 16)
    pyramid = perturbation.blur_pyramid(x, levels=5, max_blur=4.0)
    assert torch.equal(pyramid[-1], x) and pyramid.shape == (5, 2, 3, 16, 16)
    ones, zeros = torch.ones(2, 1, 16, 16), torch.zeros(2, 1, 16, 16)
    assert torch.allclose(perturbation.apply_pyramid(pyramid, ones), x)
    assert torch.allclose(perturbation.apply_pyramid(pyramid, zeros), pyramid[0])
    # mask 0.375 = level 1.5 of 0..4: halfway between levels 1 and 2
    half = perturbation.apply_pyramid(pyramid, torch.full((2, 1, 16, 16), 0.375))
    assert torch.allclose(half, (pyramid[1] + pyramid[2]) / 2, atol=1e-6)


def test_smooth_mask_is_a_smooth_max_of_bumps():
    m = torch.zeros(1, 1, 8, 8)
    m[0, 0, 3, 4] = 1.0  # one grid point, at pixel (6, 8) with step 2
    mask = perturbation.smooth_mask(m, (16, 16), step=2, sigma=4.0)[0, 0]
    assert mask.shape == (16, 16) and 0 <= mask.min() and mask.max() <= 1
    assert mask[6, 8] == mask.max() and mask[6, 8] > 0.45  # flat top, pulled down by zeros
    assert mask[6, 9] == mask[6, 7] and mask[0, 0] < 0.05  # symmetric, fading out
    full = perturbation.smooth_mask(torch.ones(2, 1, 8, 8), (16, 16), 2, 4.0, margin=4)
    assert full.shape == (2, 1, 24, 24)
    assert full[:, :, 4:20, 4:20].min() > 0.98  # (nearly) all ones inside the image
    assert full[0, 0, 0, 0] < full[0, 0, 4, 4]  # fading out in the margin


def test_total_variation_by_hand():
    m = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    # |dx|^3: two pairs of 1 -> mean 1; |dy|^3: two pairs of 0 -> mean 0
    assert perturbation.total_variation(m, beta=3).item() == 1.0
    assert perturbation.total_variation(m.transpose(2, 3), beta=2).item() == 1.0


def test_perturbations():
    torch.manual_seed(5)
    x = torch.rand(2, 3, 12, 12)
    constant = perturbation.perturb(x, "constant")
    assert torch.allclose(constant[:, :, 3, 5], x.mean(dim=(2, 3)))
    noisy = [perturbation.perturb(x, "noise", 10.0, torch.Generator().manual_seed(1))
             for _ in range(2)]
    assert torch.equal(noisy[0], noisy[1])  # the generator repeats the noise
    assert abs((noisy[0] - x).std().item() - 0.1) < 0.02
    with pytest.raises(ValueError, match="blur"):
        perturbation.perturb(x, "smudge")


# --------------------------------------------------------------------------- meaningful
class LeftHalf(torch.nn.Module):
    """S_0 = mean of the left half of the image, S_1 = 0: only the left half matters."""

    def forward(self, x):
        left = x[:, :, :, : x.shape[-1] // 2].mean(dim=(1, 2, 3))
        return torch.stack([left * 10, torch.zeros_like(left)], dim=1)


def test_meaningful_perturbation_deletes_where_the_score_is():
    x = torch.ones(2, 1, 16, 16)
    x[1, :, :, 8:] = 0.0  # the right half black: its mean differs from the left's
    mask = perturbation.meaningful_perturbation(LeftHalf(), x, 0, perturbation="constant",
                                                mask_size=8, steps=60, output="logit", l1=0.5)
    assert mask.shape == (2, 16, 16)
    deleted = 1 - mask
    # the left half deleted; the right one kept, but for the bilinear seam at the middle
    assert deleted[1, :, :8].mean() > 0.5 and deleted[1, :, 12:].max() < 0.05
    # image 0 is all ones: constant = itself, nothing to gain, so the L1 term keeps the mask
    assert deleted[0].mean() < 0.05


def test_meaningful_perturbation_is_batched_and_records_its_history(assert_unchanged):
    model = zoo.load_model("cluttered-digits", device="cpu")
    data = zoo.dataset("cluttered-digits", n=3)
    kwargs = dict(steps=6, mask_size=8, perturbation="noise")
    with assert_unchanged(model):
        masks, history = perturbation.meaningful_perturbation(
            model, data.x, data.y, generator=torch.Generator().manual_seed(0), history=True,
            record_every=2, **kwargs)
    again = perturbation.meaningful_perturbation(
        model, data.x, data.y, generator=torch.Generator().manual_seed(0), **kwargs)
    assert masks.shape == (3, 64, 64) and torch.equal(again, masks)  # the generator repeats
    # N independent optimisations: an image's mask does not depend on the others (blur: no
    # noise drawn, so the same image gets the same start alone or in a batch)
    blur = dict(steps=6, mask_size=8)
    both = perturbation.meaningful_perturbation(model, data.x, data.y, **blur)
    alone = perturbation.meaningful_perturbation(model, data.x[2:], data.y[2:], **blur)
    assert torch.allclose(both[2:], alone, atol=1e-4)
    assert history.steps == [0, 2, 4, 6] and history.masks.shape == (4, 3, 8, 8)
    assert history.score.shape == (6, 3)
    assert torch.allclose(history.total, history.score + history.l1 + history.tv)
    assert torch.equal(history.masks[0], torch.full((3, 8, 8), 0.5))
    assert history.total[-1].mean() < history.total[0].mean()  # the loss went down


def test_meaningful_perturbation_pointing_game_on_cluttered_digits(capsys):
    """The most-deleted point (max of 1 - m, smoothed by a Gaussian of 2 px so that a flat
    deleted blob points at its middle) lands on the digit far more often than the centre
    of the canvas does (the best guess of a centred Gaussian map)."""
    model = zoo.load_model("cluttered-digits", device="cpu")
    data = zoo.dataset("cluttered-digits", n=100)
    masks = perturbation.meaningful_perturbation(model, data.x, data.y, steps=30, lr=0.2)
    heat = gaussian_blur((1 - masks)[:, None], 2.0)[:, 0]
    points = heat.flatten(1).argmax(dim=1)
    digit = data.mask.flatten(1) > 0.5
    ours = digit.gather(1, points[:, None]).float().mean().item()
    h, w = masks.shape[-2:]
    centre = torch.full_like(points, (h // 2) * w + w // 2)
    gaussian = digit.gather(1, centre[:, None]).float().mean().item()
    with capsys.disabled():
        print(f"\npointing game, 100 cluttered digits: meaningful perturbation {ours:.2f}, "
              f"centred Gaussian {gaussian:.2f}")
    assert ours >= gaussian + 0.25  # measured: 0.80 against 0.39


# --------------------------------------------------------------------------- extremal
def test_extremal_perturbation_against_torchray(capsys):
    """TorchRay's `extremal_perturbation` (pip install torchray; it runs with this torch) on
    the same images, area, grid (step 2, sigma 6) and number of steps. Judged at the same
    area: each mask's top pixels, as many as the reference's masks cover on average, are kept
    and the rest replaced by the strongest blur (TorchRay's own `Perturbation`); the class
    logit that survives must be at least 95% of what survives TorchRay's mask."""
    from torchray.attribution.extremal_perturbation import Perturbation
    from torchray.attribution.extremal_perturbation import extremal_perturbation as torchray

    model = zoo.load_model("cluttered-digits", device="cpu")
    data = zoo.dataset("cluttered-digits", n=4)
    steps, area = 300, 0.1
    ours = perturbation.extremal_perturbation(model, data.x, data.y, area=area, steps=steps)
    with unchanged(model):  # TorchRay switches off every parameter's requires_grad
        ref = torch.cat([torchray(model, data.x[i:i + 1], int(data.y[i]), areas=[area],
                                  max_iter=steps, step=2, sigma=6)[0][:, 0]
                         for i in range(len(data.x))])
    kept = int(ref.mean().item() * ref[0].numel())

    def preserved(masks):
        top = masks.flatten(1).topk(kept, dim=1).indices
        hard = torch.zeros_like(masks.flatten(1)).scatter_(1, top, 1.0).view_as(masks)
        scores = []
        for i in range(len(masks)):
            blurred = Perturbation(data.x[i:i + 1]).apply(hard[i:i + 1, None])
            with torch.no_grad():
                scores.append(model(blurred)[0, data.y[i]])
        return torch.stack(scores)

    s_ours, s_ref = preserved(ours), preserved(ref)
    with capsys.disabled():
        print(f"\nextremal perturbation, area {kept / ref[0].numel():.3f}: class logit kept "
              f"ours {[round(s, 2) for s in s_ours.tolist()]} (sum {s_ours.sum():.2f}), "
              f"TorchRay {[round(s, 2) for s in s_ref.tolist()]} (sum {s_ref.sum():.2f}); "
              f"mask areas ours {ours.mean().item():.3f}, TorchRay {ref.mean().item():.3f}")
    assert s_ref.sum() > 0
    assert s_ours.sum() >= 0.95 * s_ref.sum()
    assert abs(ours.mean() - ref.mean()) < 0.03  # the constraint pulls both to the same area


def test_extremal_variants_history_and_unchanged_model(assert_unchanged):
    model = zoo.load_model("cluttered-digits", device="cpu").train()  # BatchNorm buffers
    data = zoo.dataset("cluttered-digits", n=2)
    with assert_unchanged(model):
        masks, history = perturbation.extremal_perturbation(
            model, data.x, data.y, area=0.2, variant="delete", steps=12, history=True,
            record_every=5)
    assert masks.shape == (2, 64, 64) and 0 <= masks.min() and masks.max() <= 1
    assert history.steps == [0, 5, 10, 12] and history.masks.shape == (4, 2, 64, 64)
    assert torch.allclose(history.total, history.score - history.area)
    assert (history.area[1:] < history.area[:-1]).float().mean() > 0.5  # the area shrinks


@pytest.mark.parametrize(
    "method, kwargs, error, words",
    [
        ("meaningful_perturbation", dict(perturbation="smudge"), ValueError, "blur"),
        ("meaningful_perturbation", dict(mask_size=0), ValueError, "mask_size"),
        ("meaningful_perturbation", dict(l1=-1.0), ValueError, "l1"),
        ("meaningful_perturbation", dict(output="softmax"), ValueError, "probability"),
        ("extremal_perturbation", dict(area=1.5), ValueError, r"\(0, 1\)"),
        ("extremal_perturbation", dict(variant="dual"), ValueError, "preserve"),
        ("extremal_perturbation", dict(steps=0), ValueError, "steps"),
        ("meaningful_perturbation", dict(), ValueError, "10 classes"),  # target 12
        ("extremal_perturbation", dict(), ValueError, "10 classes"),
    ],
)
def test_bad_mask_options_leave_the_model(method, kwargs, error, words, assert_unchanged):
    model = zoo.load_model("cluttered-digits", device="cpu")
    x = torch.rand(1, 3, 64, 64)
    target = 3 if kwargs else 12
    with assert_unchanged(model), pytest.raises(error, match=words):
        getattr(perturbation, method)(model, x, target, steps=kwargs.pop("steps", 2), **kwargs)


def test_mask_methods_need_images():
    model = TinyLinear(torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"images \(N, C, H, W\)"):
        perturbation.meaningful_perturbation(model, torch.rand(2, 4), 0)


# --------------------------------------------------------------------------- cost
def test_count_passes():
    model = zoo.load_model("cluttered-digits", device="cpu")
    x = zoo.dataset("cluttered-digits", n=2).x
    with count_passes(model) as occluding:
        perturbation.occlusion(model, x, 1, window=16, stride=16, batch_size=6)
    assert (occluding.forward, occluding.backward) == (2 + 16 * 2, 0)
    with count_passes(model) as optimising:
        perturbation.extremal_perturbation(model, x, 1, steps=3)
    assert (optimising.forward, optimising.backward) == (2 + 3 * 2, 3 * 2)
    assert not model._forward_hooks
