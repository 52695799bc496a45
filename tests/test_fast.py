"""fast.for_many_passes: the same function as the model, BatchNorm folded, channels-last."""

import torch
import torchvision
from torch import nn

from xai_course import cam, gradients
from xai_course.convention import model_state, same_state
from xai_course.fast import for_many_passes


def trained_resnet18(num_classes=10):
    """ResNet-18 with random weights and BatchNorm statistics as after training (not the
    identity), so that folding changes the weights."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=num_classes)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
    return net.eval()


def test_the_copy_computes_the_same_function_with_no_batchnorm_left():
    net = trained_resnet18()
    before = model_state(net)
    x = torch.rand(3, 3, 64, 64)
    fast = for_many_passes(net, x[:1])
    assert fast is not net
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    convs = [m for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20 and all(
        c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    with torch.no_grad():
        ours, theirs = fast(x), net(x)
    assert ((ours - theirs).abs().max() / theirs.abs().max()).item() < 1e-5
    assert same_state(before, model_state(net))  # the model itself is untouched
    assert all(p.is_contiguous() for p in net.parameters())
    # by hand: the first convolution is W gamma / sigma with bias (0 - mu) gamma / sigma + beta
    scale = net.bn1.weight / torch.sqrt(net.bn1.running_var + net.bn1.eps)
    assert torch.allclose(fast.conv1.weight, net.conv1.weight * scale.view(-1, 1, 1, 1))
    assert torch.allclose(fast.conv1.bias, net.bn1.bias - net.bn1.running_mean * scale)


def test_methods_on_the_copy_agree_with_captum_on_the_model():
    net = trained_resnet18()
    x = torch.rand(2, 3, 64, 64)
    fast = for_many_passes(net, x[:1])
    ours = gradients.integrated_gradients(fast, x, [1, 4], steps=8)
    ref = gradients.integrated_gradients.reference(net, x, [1, 4], steps=8)
    assert ((ours - ref).abs().max() / ref.abs().max()).item() < 1e-4
    # layer names stay valid: Grad-CAM at layer4 of the copy is the model's
    ours = cam.grad_cam(fast, x, [1, 4], layer="layer4")
    ref = cam.grad_cam.reference(net, x, [1, 4], layer="layer4")
    assert ((ours - ref).abs().max() / ref.abs().max()).item() < 1e-4


def test_the_model_itself_when_there_is_nothing_to_fold_or_it_would_be_wrong():
    x = torch.rand(2, 3, 16, 16)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten()).eval()
    assert for_many_passes(plain, x) is plain  # no BatchNorm
    net = trained_resnet18()
    assert for_many_passes(net.train(), x) is net  # BatchNorm uses each batch's statistics

    class ConvUsedTwice(nn.Module):  # the convolution's output also feeds the head directly
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            z = self.conv(x)
            return self.head((self.bn(z) + z).mean((2, 3)))

    torch.manual_seed(0)
    odd = ConvUsedTwice()
    with torch.no_grad():
        odd.bn.running_var.uniform_(0.5, 2)
        odd.bn.running_mean.uniform_(-1, 1)
    odd.eval()
    assert for_many_passes(odd, x) is odd  # checked on the example, and refused


def test_the_copy_keeps_requires_grad_flags_and_takes_text_models_as_they_are():
    from xai_course import zoo

    net = trained_resnet18()
    for p in net.parameters():
        p.requires_grad_(False)
    fast = for_many_passes(net, torch.rand(1, 3, 32, 32))
    assert fast is not net and not any(p.requires_grad for p in fast.parameters())
    reviews = zoo.load_model("reviews", "cpu")
    ids = zoo.dataset("reviews", n=1).x
    assert for_many_passes(reviews, ids) is reviews  # no convolution, no BatchNorm
