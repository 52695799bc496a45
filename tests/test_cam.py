"""Chapter 03: CAM, Grad-CAM, Grad-CAM++ and Score-CAM, checked by hand and against references.

References: Captum `LayerGradCam` and pytorch-grad-cam (`GradCAM`, `GradCAMPlusPlus`,
`ScoreCAM`). The bridges between their conventions and ours, all in `reference_map` /
`captum_map` below:

- pytorch-grad-cam always applies ReLU, resizes with cv2.resize (bilinear, the same numbers
  as F.interpolate(align_corners=False), to ~1e-7) and min-max normalises per image; so we
  compare with relu=True, upsample="bilinear", normalize="minmax". It min-maxes both before
  and after resizing; min-max is an increasing affine map and bilinear resizing is linear
  with weights that sum to 1, so doing it once after resizing gives the same map.
- it can only hook a layer output that requires grad: the zoo models have frozen parameters,
  so it gets the input with requires_grad=True (a gradient w.r.t. the input is not used).
- it calls model.eval() for good: it runs inside `unchanged(model)` (our models are in eval
  mode already, so this changes no number).
- Grad-CAM++: its eps = 1e-6 in the denominator of a_kij is our default (the paper has none;
  eps=0 differs by ~1e-2 on ResNet-18, checked below).
- Score-CAM: its masks are upsampled with align_corners=True and its weights are the softmax
  over channels of the logits; ours are by construction (see `score_cam`'s docstring). It
  takes its batch size as an attribute; we set it to ours (this changes no number beyond
  float rounding).
- Captum `LayerGradCam` applies no ReLU, upsampling or normalisation itself: we pass
  relu_attributions, then `LayerAttribution.interpolate(..., "bilinear")`, then min-max.
"""

import functools
import math

import pytest
import torch
import torchvision
from torch import nn

from xai_course import cam, zoo
from xai_course.convention import unchanged

TOL = 1e-4  # max |difference| after min-max, the bar


# --------------------------------------------------------------------------- helpers
@functools.cache
def _zoo_data(name):
    return zoo.dataset(zoo.model_info(name).dataset, n=2).x


def zoo_inputs(name, n=2):
    return _zoo_data(name)[:n]


def frozen(model):
    """Random weights, eval mode, no parameter gradients (pytorch-grad-cam's backward would
    otherwise compute every weight's gradient: slow, and unused)."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return frozen(torchvision.models.resnet18())


@pytest.fixture(scope="module")
def vgg11():
    torch.manual_seed(0)
    return frozen(torchvision.models.vgg11())


def reference_map(name, model, x, target, layer, batch_size=None):
    """pytorch-grad-cam's map for the same call, as a tensor (bridges: module docstring)."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = [ClassifierOutputTarget(int(t)) for t in torch.as_tensor(target).expand(len(x))]
    with unchanged(model):
        method = getattr(pytorch_grad_cam, name)(model, [model.get_submodule(layer)])
        if batch_size is not None:
            method.batch_size = batch_size
        try:
            maps = method(x.detach().clone().requires_grad_(True), targets)
        finally:
            method.activations_and_grads.release()
    return torch.from_numpy(maps)


def captum_map(model, x, target, layer):
    """Captum LayerGradCam + ReLU + bilinear interpolate + min-max (cam.grad_cam.reference)."""
    return cam.grad_cam.reference(model, x, target, layer, relu=True, upsample="bilinear",
                                  normalize="minmax")


def maxdiff(a, b):
    return (a.float() - b.float()).abs().max().item()


# --------------------------------------------------------------------------- hand-computed
class TinyCAMNet(nn.Module):
    """1 x 2 x 2 input -> 1x1 conv (3 maps) -> ReLU -> global average pool -> linear (2 classes).

    conv: A_0 = x, A_1 = 3 - x, A_2 = -1 (all zero after the ReLU).
    fc:   S_0 = 1 mean A_0 + 2 mean A_1 + 1 mean A_2 + 0.5,  S_1 = -mean A_0 + mean A_1.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0, 0.0]).view(3, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, 3.0, -1.0]))
            self.fc.weight.copy_(torch.tensor([[1.0, 2.0, 1.0], [-1.0, 1.0, 0.0]]))
            self.fc.bias.copy_(torch.tensor([0.5, 0.0]))

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
A0 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # conv map 0 (= x)
A1 = torch.tensor([[2.0, 1.0], [0.0, 0.0]])  # ReLU(3 - x)


def test_cam_by_hand():
    model = TinyCAMNet()
    raw = dict(relu=False, upsample=None)
    # class 0: (1 A_0 + 2 A_1 + 1 A_2) / 4
    expected0 = torch.tensor([[5.0, 4.0], [3.0, 4.0]]) / 4
    assert torch.allclose(cam.cam(model, X, 0, "relu", **raw)[0], expected0)
    # the map adds up to the score minus the bias: S_0 = 2.5 + 2 * 0.75 + 0.5 = 4.5
    assert cam.cam(model, X, 0, "relu", **raw).sum().item() == pytest.approx(4.5 - 0.5)
    # class 1: (-A_0 + A_1) / 4 = [[0.25, -0.25], [-0.75, -1]]; the ReLU keeps one place
    expected1 = torch.tensor([[0.25, -0.25], [-0.75, -1.0]])
    assert torch.allclose(cam.cam(model, X, 1, "relu", **raw)[0], expected1)
    assert torch.allclose(cam.cam(model, X, 1, "relu", upsample=None)[0],
                          torch.tensor([[0.25, 0.0], [0.0, 0.0]]))
    # min-max: (m - min) / (max - min) of expected0
    assert torch.allclose(cam.cam(model, X, 0, "relu", upsample=None, normalize="minmax")[0],
                          (expected0 - 0.75) / 0.5)
    # the same numbers from Grad-CAM (dS/dA_k = w_k / 4 everywhere)
    assert torch.allclose(cam.grad_cam(model, X, 0, "relu", **raw)[0], expected0)


def test_grad_cam_by_hand_before_the_relu():
    """At the conv layer (before the ReLU) the gradient of map 1 is w_1 / 4 = 0.5 where
    3 - x > 0 and 0 elsewhere (two places): alpha_1 = 0.25; map 0: alpha_0 = 1/4; map 2:
    ReLU(-1) = 0 blocks the gradient, alpha_2 = 0. M = (x + (3 - x)) / 4 = 0.75 everywhere."""
    model = TinyCAMNet()
    maps = cam.layer_maps(model, X, 0, "conv")
    assert torch.allclose(cam.grad_cam_weights(model, X, maps), torch.tensor([[0.25, 0.25, 0]]))
    assert torch.allclose(cam.grad_cam(model, X, 0, "conv", relu=False, upsample=None),
                          torch.full((1, 2, 2), 0.75))
    # and CAM refuses this layer: the head averages ReLU(conv), not conv
    with pytest.raises(ValueError, match="other than a global average pool sits between"):
        cam.cam(model, X, 0, "conv")


def test_grad_cam_pp_by_hand():
    """g_k = w_k / 4 at every place; a_k = g^2 / (2 g^2 + sum(A_k) g^3) (eps=0);
    alpha_k = 4 a_k ReLU(g_k). Class 0: sum A_0 = 10, sum A_1 = 3, sum A_2 = 0."""
    model = TinyCAMNet()
    g = [0.25, 0.5, 0.25]
    sums = [10.0, 3.0, 0.0]
    alpha = [4 * gk ** 2 / (2 * gk ** 2 + s * gk ** 3) * max(gk, 0) for gk, s in zip(g, sums)]
    maps = cam.layer_maps(model, X, 0, "relu")
    assert torch.allclose(cam.grad_cam_pp_weights(model, X, maps, eps=0.0),
                          torch.tensor([alpha]))
    assert alpha[0] == pytest.approx(2 / 9) and alpha[1] == pytest.approx(4 / 7)
    expected = alpha[0] * A0 + alpha[1] * A1
    assert torch.allclose(cam.grad_cam_pp(model, X, 0, "relu", upsample=None, eps=0.0)[0],
                          expected)


def test_score_cam_by_hand():
    """Masks H_k = minmax(A_k) (the map already has the input's size); the constant map 2
    gives the zero mask. Scores S_0(x * H_k) by the formula of TinyCAMNet, softmax, sum."""
    model = TinyCAMNet()
    x = X[0, 0]

    def score0(z):  # S_0 of a 2 x 2 input z, by hand
        return z.mean() + 2 * (3 - z).clamp(min=0).mean() + 0.5

    masks = [(A0 - 1) / 3, A1 / 2, torch.zeros(2, 2)]
    scores = torch.stack([score0(x * h) for h in masks])
    assert scores[2].item() == pytest.approx(6.5)  # the all-zero input: 2 * 3 + 0.5
    weights = scores.softmax(0)
    expected = weights[0] * A0 + weights[1] * A1
    maps = cam.layer_maps(model, X, 0, "relu", gradients=False)
    assert torch.allclose(cam.score_cam_weights(model, X, maps), weights[None], atol=1e-6)
    assert torch.allclose(cam.score_cam(model, X, 0, "relu", upsample=None)[0], expected,
                          atol=1e-6)


def test_upsampling_and_shapes(resnet18):
    x = torch.rand(3, 3, 64, 64)
    coarse = cam.grad_cam(resnet18, x, [1, 2, 3], "layer3", upsample=None)
    assert coarse.shape == (3, 4, 4)
    fine = cam.grad_cam(resnet18, x, [1, 2, 3], "layer3")
    assert fine.shape == (3, 64, 64) and fine.device == x.device
    nearest = cam.grad_cam(resnet18, x, [1, 2, 3], "layer3", upsample="nearest")
    blocks = coarse.repeat_interleave(16, dim=1).repeat_interleave(16, dim=2)
    assert torch.allclose(nearest, blocks)
    # the bilinear map stays within the coarse map's range; min-max puts it in [0, 1]
    assert fine.max() <= coarse.max() + 1e-6 and fine.min() >= coarse.min() - 1e-6
    scaled = cam.grad_cam(resnet18, x, [1, 2, 3], "layer3", normalize="minmax")
    assert scaled.amin(dim=(1, 2)).abs().max() < 1e-6
    assert (scaled.amax(dim=(1, 2)) - 1).abs().max() < 1e-6


# --------------------------------------------------------------------------- CAM == Grad-CAM
@pytest.mark.parametrize("name", ["cluttered-digits", "resnet18"])
def test_cam_equals_grad_cam_on_a_gap_linear_head(name, resnet18):
    if name == "resnet18":
        model, x, layer = resnet18, torch.rand(2, 3, 64, 64), "layer4"
    else:
        model, x, layer = zoo.load_model(name, "cpu"), zoo_inputs(name), "features"
    raw = dict(relu=False, upsample=None)
    for target in (0, [3, 7]):
        a = cam.cam(model, x, target, layer, **raw)
        b = cam.grad_cam(model, x, target, layer, **raw)
        assert maxdiff(a, b) <= 1e-5 * (1 + a.abs().max().item())
    # each map adds up to its logit minus the head's bias
    with torch.no_grad():
        logits = model(x)
    fc = resnet18.fc if name == "resnet18" else model.fc
    t = torch.tensor([3, 7])
    assert torch.allclose(a.sum(dim=(1, 2)), logits[[0, 1], t] - fc.bias[t], atol=1e-4)


# --------------------------------------------------------------------------- references
REFERENCE_CASES = [  # (model, layer, input size): last and earlier layers, zoo models
    ("resnet18", "layer4", 64),
    ("resnet18", "layer3", 64),
    ("vgg11", "features.19", 32),
    ("vgg11", "features.9", 32),
    ("cluttered-digits", "features", None),
    ("digits", "features.relu3", None),
]


def case_model(name, size, resnet18, vgg11):
    if name in ("resnet18", "vgg11"):
        model = resnet18 if name == "resnet18" else vgg11
        return model, torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    return zoo.load_model(name, "cpu"), zoo_inputs(name)


@pytest.mark.parametrize("name,layer,size", REFERENCE_CASES)
def test_grad_cam_and_grad_cam_pp_match_the_references(name, layer, size, resnet18, vgg11,
                                                       assert_unchanged):
    model, x = case_model(name, size, resnet18, vgg11)
    target = [1, 5]
    with assert_unchanged(model):
        ours = cam.grad_cam(model, x, target, layer, normalize="minmax")
        raw = cam.grad_cam(model, x, target, layer, relu=False, upsample=None)
        ours_pp = cam.grad_cam_pp(model, x, target, layer, normalize="minmax")
    assert ours.shape == (2, *x.shape[2:])
    assert maxdiff(ours, captum_map(model, x, target, layer)) <= TOL
    assert maxdiff(ours, reference_map("GradCAM", model, x, target, layer)) <= TOL
    assert maxdiff(ours_pp, reference_map("GradCAMPlusPlus", model, x, target, layer)) <= TOL
    # without ReLU, upsampling and normalisation: Captum's raw LayerGradCam
    from captum.attr import LayerGradCam

    captum_raw = LayerGradCam(model, model.get_submodule(layer)).attribute(x, target=target)
    assert maxdiff(raw, captum_raw[:, 0]) <= 1e-5 * (1 + raw.abs().max().item())


def test_grad_cam_pp_eps_is_the_bridge(resnet18):
    """eps = 1e-6 is pytorch-grad-cam's, not the paper's; without it the maps differ."""
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    theirs = reference_map("GradCAMPlusPlus", resnet18, x, 0, "layer4")
    paper = cam.grad_cam_pp(resnet18, x, 0, "layer4", normalize="minmax", eps=0.0)
    assert maxdiff(paper, theirs) > 10 * TOL


def test_pytorch_grad_cam_records_after_later_in_place_ops(resnet18):
    """A pitfall we do not copy: BasicBlock computes `out = bn2(out); out += identity;
    out = relu(out)` in place, so pytorch-grad-cam's hook on bn2 ends up holding the block's
    output, not bn2's. We (and Captum) explain bn2's own output."""
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    layer = "layer2.1.bn2"
    ours = cam.grad_cam(resnet18, x, 0, layer, normalize="minmax")
    assert maxdiff(ours, captum_map(resnet18, x, 0, layer)) <= TOL
    assert maxdiff(ours, reference_map("GradCAM", resnet18, x, 0, layer)) > 0.1


SCORE_CASES = [  # few channels or small inputs: Score-CAM costs one forward pass per channel
    ("resnet18", "layer3", 32),
    ("vgg11", "features.2", 32),
    ("cluttered-digits", "features", None),
    ("digits", "features.relu3", None),
]


@pytest.mark.parametrize("name,layer,size", SCORE_CASES)
def test_score_cam_matches_pytorch_grad_cam(name, layer, size, resnet18, vgg11,
                                            assert_unchanged):
    model, x = case_model(name, size, resnet18, vgg11)
    x, target = x[:1], 3
    with assert_unchanged(model):
        ours = cam.score_cam(model, x, target, layer, normalize="minmax", batch_size=64)
    theirs = reference_map("ScoreCAM", model, x, target, layer, batch_size=64)
    assert maxdiff(ours, theirs) <= TOL


def forward_batches(model):
    """A list that records the batch size of every forward pass of `model`, and the hook's
    handle (remove it after)."""
    sizes = []
    handle = model.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    return sizes, handle


def test_score_cam_batch_size_and_progress(assert_unchanged, capsys):
    model, x = zoo.load_model("cluttered-digits", "cpu"), zoo_inputs("cluttered-digits", n=2)
    a = cam.score_cam(model, x, [1, 2], batch_size=64)
    sizes, handle = forward_batches(model)
    try:
        b = cam.score_cam(model, x, [1, 2], batch_size=7, progress=True)
    finally:
        handle.remove()
    assert maxdiff(a, b) <= 1e-5 * a.abs().max().item()
    assert max(sizes) <= 7  # batches of at most 7 masked inputs, 64 channels an example
    assert len(sizes) >= math.ceil(64 / 7)
    assert "score-cam" in capsys.readouterr().err  # the tqdm bar
    with assert_unchanged(model):
        cam.score_cam(model, x, [1, 2], batch_size=7)


def test_score_cam_topk_is_exact_with_every_channel_and_cheaper_with_fewer(assert_unchanged):
    model, x = zoo.load_model("cluttered-digits", "cpu"), zoo_inputs("cluttered-digits", n=1)
    exact = cam.score_cam(model, x, 4, normalize="minmax")
    with assert_unchanged(model):
        every = cam.score_cam_topk(model, x, 4, k=64, normalize="minmax")
    sizes, handle = forward_batches(model)
    try:
        few = cam.score_cam_topk(model, x, 4, k=8, rank="grad_cam", normalize="minmax",
                                 batch_size=4)
    finally:
        handle.remove()
    assert maxdiff(every, exact) <= 1e-5
    assert sizes[-2:] == [4, 4] and sizes.count(4) == 2  # 8 channels in batches of 4
    assert few.shape == exact.shape
    with pytest.raises(ValueError, match="rank"):
        cam.score_cam_topk(model, x, 4, rank="size")


# --------------------------------------------------------------------------- layers, errors
def test_conv_layers_lists_maps_with_their_size(resnet18):
    model = zoo.load_model("cluttered-digits", "cpu")
    layers = {layer.name: layer for layer in cam.conv_layers(model, (3, 64, 64))}
    assert (layers["features.conv1"].channels, layers["features.conv1"].height) == (16, 64)
    assert str(layers["features"]) == "features: 64 maps of 8x8"
    assert "fc" not in layers and "flatten" not in layers
    names = [layer.name for layer in cam.conv_layers(resnet18, torch.rand(1, 3, 64, 64))]
    assert names.index("layer3") < names.index("layer4.0.conv1") < names.index("layer4")
    assert "layer1.0.relu" not in names  # BasicBlock's ReLU runs twice per pass
    assert "relu" in names  # the stem's ReLU runs once


def test_works_under_no_grad_and_with_trainable_parameters(assert_unchanged):
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()  # parameters require grad
    x = torch.rand(1, 3, 64, 64)
    with assert_unchanged(model):
        a = cam.grad_cam(model, x, 0, "layer3")
        with torch.no_grad():
            b = cam.grad_cam(model, x, 0, "layer3")
    assert torch.equal(a, b) and not a.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_default_layer_is_the_last_with_spatial_maps(resnet18):
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(cam.grad_cam(resnet18, x, 0), cam.grad_cam(resnet18, x, 0, "layer4"))
    assert torch.equal(cam.grad_cam(resnet18, x, 0, resnet18.layer4),
                       cam.grad_cam(resnet18, x, 0, "layer4"))


def test_clear_errors_and_the_model_unchanged(resnet18, assert_unchanged):
    x = torch.rand(1, 3, 64, 64)
    with assert_unchanged(resnet18):
        with pytest.raises(ValueError, match=r"unknown layer 'layer5'.*layer4: 512 maps of 2x2"):
            cam.grad_cam(resnet18, x, 0, "layer5")
        with pytest.raises(ValueError, match="runs more than once"):
            cam.grad_cam(resnet18, x, 0, "layer1.0.relu")
        with pytest.raises(ValueError, match=r"outputs shape \(1, 1000\)"):
            cam.grad_cam(resnet18, x, 0, "fc")
        with pytest.raises(ValueError, match="not a module of the model"):
            cam.grad_cam(resnet18, x, 0, nn.Conv2d(3, 3, 1))
        with pytest.raises(ValueError, match="1000 classes"):  # raised after the hook is in
            cam.grad_cam(resnet18, x, 1000, "layer4")
        with pytest.raises(ValueError, match="batch_size"):
            cam.score_cam(resnet18, x, 0, "layer4", batch_size=0)
        with pytest.raises(ValueError, match="upsample"):
            cam.grad_cam(resnet18, x, 0, "layer4", upsample="bicubic")
        with pytest.raises(TypeError, match="layer must be"):
            cam.grad_cam(resnet18, x, 0, 4)


def test_cam_names_what_the_head_is_missing(assert_unchanged):
    digits = zoo.load_model("digits", "cpu")
    x = zoo_inputs("digits", n=1)
    with assert_unchanged(digits):
        with pytest.raises(ValueError, match=r"global-average-pooling \+ linear head.*"
                                             r"classifier\.fc1 \(1024 -> 64\)"):
            cam.cam(digits, x, 0, "features")
        cam.grad_cam(digits, x, 0, "features")  # Grad-CAM needs no such head
    cluttered = zoo.load_model("cluttered-digits", "cpu")
    with pytest.raises(ValueError, match="other than a global average pool sits between"):
        cam.cam(cluttered, zoo_inputs("cluttered-digits", n=1), 0, "features.conv4")


def test_a_text_model_is_refused_with_the_reason(assert_unchanged):
    reviews = zoo.load_model("reviews", "cpu")
    tokens = zoo.dataset("reviews", n=2).x
    embedded = reviews.embedding(tokens).detach()
    encoder = reviews.encoder
    assert cam.conv_layers(encoder, embedded) == []
    with assert_unchanged(encoder):
        for method in (cam.cam, cam.grad_cam, cam.grad_cam_pp, cam.score_cam):
            with pytest.raises(ValueError, match="not a convolutional network"):
                method(encoder, embedded, 0)
        with pytest.raises(ValueError, match="'lstm' outputs a tuple.*not a convolutional"):
            cam.grad_cam(encoder, embedded, 0, "lstm")
        with pytest.raises(ValueError, match="unknown layer 'conv'.*not a convolutional"):
            cam.grad_cam(encoder, embedded, 0, "conv")


def test_a_model_in_train_mode_is_left_in_train_mode(assert_unchanged):
    torch.manual_seed(0)
    model = zoo.model_info("cluttered-digits").build().train()
    x = torch.rand(2, 3, 64, 64)
    with assert_unchanged(model):  # BatchNorm's running statistics are restored too
        for method in (cam.cam, cam.grad_cam, cam.grad_cam_pp):
            method(model, x, 0)
        cam.score_cam(model, x, 0, batch_size=64)
    assert model.training


def test_methods_declare_their_options():
    for method in (cam.cam, cam.grad_cam, cam.grad_cam_pp, cam.score_cam, cam.score_cam_topk):
        assert {"relu", "upsample", "normalize"} <= set(method.options)
        assert callable(method.channel_weights)
    # the batch size is a speed setting, not a lesson: no control, chosen from the input size
    assert "batch_size" not in cam.score_cam.options and cam.score_cam.masked_passes
    assert not cam.grad_cam.masked_passes
    assert cam.grad_cam.reference_name.startswith("Captum LayerGradCam")
