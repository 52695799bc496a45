"""`resnet50-imagenet`, `vgg16-imagenet`: torchvision's pretrained ImageNet models, optional.

The weights (about 100 MB and 530 MB) are not shipped with the course. They live in
torchvision's own cache, `torch.hub.get_dir()/checkpoints/` (that is `$TORCH_HOME/hub/...`,
by default `~/.cache/torch/hub/checkpoints/`), where any torchvision user may already have them
and where the Binder image prefetches them. Fetch them once, online, with

    xai-course fetch-weights resnet50-imagenet        (or: vgg16-imagenet)

Offline and not cached, `zoo.load_model("resnet50-imagenet")` raises `zoo.WeightsNotCached`
naming that command; the rest of the course carries on with its embedded models.

Before loading, the file's sha256 is checked against the prefix torchvision writes into the
file name (resnet50-11ad3fa6.pth: the sha256 starts with 11ad3fa6), then it is read with
`torch.load(weights_only=True)`.

Like every image model of the course, these take RGB images in [0, 1]: `ImageNetClassifier`
normalises with the ImageNet mean and std inside, then runs the torchvision model, kept as
`.net`. So layer names carry a `net.` prefix: `model.net.layer4` (ResNet-50's last block, the
usual Grad-CAM layer) and `model.net.features[28]`, named "net.features.28" (VGG-16's last
convolution).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from . import ModelSpec
from . import weights as _weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> (torchvision builder, torchvision weights entry). ResNet-50 uses the newer V2 weights
# (80.9% top-1); VGG-16 has only V1 (71.6%).
ARCHITECTURES = {
    "resnet50-imagenet": (torchvision.models.resnet50,
                          torchvision.models.ResNet50_Weights.IMAGENET1K_V2),
    "vgg16-imagenet": (torchvision.models.vgg16, torchvision.models.VGG16_Weights.IMAGENET1K_V1),
}
# name -> the URL torchvision downloads from; its file name carries the sha256 prefix.
WEIGHTS_URLS = {name: weights.url for name, (_, weights) in ARCHITECTURES.items()}
HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # the same pattern as torch.hub's HASH_REGEX


class ImageNetClassifier(nn.Module):
    """Images in [0, 1], (N, 3, H, W) -> ImageNet logits (N, 1000).

    forward(x) = net((x - mean) / std), with `net` the torchvision model and mean / std the
    ImageNet channel statistics (buffers, so they follow the model to its device; not saved in
    the state dict, which is therefore torchvision's with a "net." prefix).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.mean) / self.std)


def _check_name(name: str) -> None:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown ImageNet model {name!r}; valid: {', '.join(ARCHITECTURES)}")


def cache_path(name: str) -> Path:
    """Where torchvision keeps the weights of `name`: torch.hub.get_dir()/checkpoints/<file>."""
    _check_name(name)
    file_name = Path(urlparse(WEIGHTS_URLS[name]).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def cached(name: str) -> bool:
    """Whether the weights file of `name` is in torchvision's cache (hash checked on load)."""
    return cache_path(name).is_file()


def build(name: str) -> ImageNetClassifier:
    """The architecture of `name` with random weights (nothing is downloaded)."""
    _check_name(name)
    builder, _ = ARCHITECTURES[name]
    return ImageNetClassifier(builder(weights=None))


def load(name: str) -> ImageNetClassifier:
    """The pretrained model `name` from torchvision's cache, after a sha256 check.

    Raises zoo.WeightsNotCached (naming the command that fetches them) when the file is not
    there, and zoo.weights.WeightsHashMismatch when it is there but corrupt.
    """
    path = cache_path(name)
    if not path.is_file():
        raise _weights.WeightsNotCached(
            f"the pretrained weights of {name!r} are not in torchvision's cache ({path}).\n"
            f"Fetch them once, online, with:  xai-course fetch-weights {name}\n"
            f"Meanwhile the course carries on with its embedded models "
            f"(digits, cluttered-digits, reviews, ...)."
        )
    match = HASH_IN_NAME.search(path.name)
    if match is None:
        raise ValueError(f"{path.name} carries no sha256 prefix to check it against")
    state = _weights.load_checked(path, match.group(1))
    model = build(name)
    model.net.load_state_dict(state)
    return model


def fetch_weights(name: str, progress: bool = True) -> Path:
    """Download the weights of `name` into torchvision's cache, the way torchvision does
    (`torch.hub.load_state_dict_from_url` with its hash check). Needs the network."""
    path = cache_path(name)
    if path.is_file():
        return path
    try:
        torch.hub.load_state_dict_from_url(WEIGHTS_URLS[name], progress=progress,
                                           check_hash=True, weights_only=True)
    except Exception as error:  # any network / file error: say what to do
        raise ConnectionError(
            f"could not download the weights of {name!r} from {WEIGHTS_URLS[name]} into "
            f"{path}: {type(error).__name__}: {error}. This needs the internet (behind a proxy "
            f"set HTTPS_PROXY); or copy the file there by hand from a machine that has it. "
            f"The course works without it, on its embedded models."
        ) from error
    return path


def _spec(name: str, description: str) -> ModelSpec:
    return ModelSpec(name=name, build=lambda: build(name), dataset="photos",
                     description=description, load=lambda: load(name))


MODELS = [
    _spec("resnet50-imagenet",
          "torchvision ResNet-50 (IMAGENET1K_V2 weights, from torchvision's cache); images "
          "in [0, 1], normalised inside; Grad-CAM layer: net.layer4"),
    _spec("vgg16-imagenet",
          "torchvision VGG-16 (IMAGENET1K_V1 weights, from torchvision's cache); images in "
          "[0, 1], normalised inside; last convolution: net.features.28"),
]
DATASETS = {}
