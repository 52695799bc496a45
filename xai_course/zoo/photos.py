"""`photos`: real photographs shipped inside scikit-image and scikit-learn, for ImageNet models.

Nothing is downloaded: the files are part of the installed packages. Each photo is
centre-cropped to a square and resized to 224 x 224 (the input size of the ImageNet models),
as RGB floats in [0, 1] (the ImageNet models of the zoo normalise inside).

Each photo's label `y` is the ImageNet-1k class that best names it; `classes` are the 1000
ImageNet category names, as torchvision ships them (no download). ImageNet has no class for a
person or a rocket, so two labels are the nearest thing in the picture: see PHOTOS.

Licences, as the packages' own files state them (skimage/data/_fetchers.py docstrings;
sklearn/datasets/images/README.txt): the scikit-image photos are public domain or CC0; the two
scikit-learn photos are CC-BY 2.0, which requires attribution (given in PHOTOS and `notes`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import Dataset

SIZE = 224


@dataclasses.dataclass(frozen=True)
class Photo:
    """One photo: how to load it, its ImageNet label, where it comes from and its licence."""

    name: str
    load: Callable[[], np.ndarray]  # (H, W, 3) or (H, W) uint8
    imagenet_class: int
    source: str
    licence: str


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _sklearn(file_name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(file_name)

    return load


PHOTOS = [
    Photo("chelsea", _skimage("chelsea"), 281,  # tabby
          "scikit-image skimage.data.chelsea(): Chelsea the cat, by Stefan van der Walt",
          "CC0 ('No copyright restrictions. CC0 by the photographer')"),
    Photo("coffee", _skimage("coffee"), 967,  # espresso
          "scikit-image skimage.data.coffee(): a cup of coffee, courtesy of Pikolo Espresso "
          "Bar, by Rachel Michetti",
          "CC0 ('No copyright restrictions. CC0 by the photographer')"),
    Photo("astronaut", _skimage("astronaut"), 812,  # space shuttle
          "scikit-image skimage.data.astronaut(): astronaut Eileen Collins, NASA Great Images "
          "database. ImageNet has no 'person' or 'astronaut' class: the label is the model "
          "space shuttle at the top right, a small object to find",
          "public domain ('No known copyright restrictions, released into the public domain')"),
    Photo("rocket", _skimage("rocket"), 657,  # missile
          "scikit-image skimage.data.rocket(): launch of DSCOVR on a Falcon 9, by SpaceX. "
          "ImageNet has no 'rocket' class: 'missile' is the nearest",
          "public domain ('captured by SpaceX and released in the public domain')"),
    Photo("camera", _skimage("camera"), 872,  # tripod
          "scikit-image skimage.data.camera(): a man with a camera on a tripod (grey), by Lav "
          "Varshney",
          "CC0 ('No copyright restrictions. CC0 by the photographer')"),
    Photo("china", _sklearn("china.jpg"), 698,  # palace
          "scikit-learn load_sample_image('china.jpg'): a tower of a Chinese palace; "
          "'Some rights reserved by danielbuechele', "
          "https://www.flickr.com/photos/danielbuechele/6061409035/, retrieved by Robert Layton",
          "CC-BY 2.0 (https://creativecommons.org/licenses/by/2.0/), attribution required"),
    Photo("flower", _sklearn("flower.jpg"), 985,  # daisy
          "scikit-learn load_sample_image('flower.jpg'): a dahlia (ImageNet's nearest flower "
          "class is 'daisy'); photographer https://www.flickr.com/photos/vultilion/ (the "
          "README's attribution line names danielbuechele, but its links point to vultilion), "
          "https://www.flickr.com/photos/vultilion/6056698931/, retrieved by Robert Layton",
          "CC-BY 2.0 (https://creativecommons.org/licenses/by/2.0/), attribution required"),
]


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k category names, in class-index order (shipped with torchvision)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def to_square_tensor(image: np.ndarray, size: int = SIZE) -> torch.Tensor:
    """uint8 (H, W[, 3]) -> float (3, size, size) in [0, 1]: centre crop to a square, resize
    with antialiasing (bilinear), grey repeated to RGB."""
    pixels = torch.from_numpy(np.array(image, dtype=np.float32)) / 255.0
    if pixels.ndim == 2:
        pixels = pixels[..., None].expand(-1, -1, 3)
    pixels = pixels[..., :3].permute(2, 0, 1)  # (3, H, W)
    height, width = pixels.shape[1:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = pixels[:, top:top + side, left:left + side]
    resized = F.interpolate(square[None], size=(size, size), mode="bilinear",
                            align_corners=False, antialias=True)[0]
    return resized.clamp(0.0, 1.0)


@functools.cache
def _all_photos() -> torch.Tensor:
    return torch.stack([to_square_tensor(photo.load()) for photo in PHOTOS])


def photos_dataset(split: str = "test", n: int | None = None,
                   seed: int | None = None) -> Dataset:
    """The photos as x (N, 3, 224, 224) in [0, 1], y = ImageNet class index, 1000 class names.

    split: only "test" (there is nothing to train on). seed: None keeps the order of PHOTOS;
    an int shuffles them with numpy's default_rng(seed). n: the first n after that (so a seed
    and n together pick a random subset). `notes` lists each photo's source and licence.
    """
    if split != "test":
        raise ValueError(f"unknown split {split!r} for 'photos'; valid: test")
    order = list(range(len(PHOTOS)))
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(PHOTOS)).tolist()
    if n is not None:
        if n > len(PHOTOS):
            raise ValueError(f"'photos' has {len(PHOTOS)} photos, cannot take n={n}")
        order = order[:n]
    chosen = [PHOTOS[i] for i in order]
    classes = imagenet_classes()
    notes = "\n".join(
        f"{photo.name} (label {classes[photo.imagenet_class]!r}): {photo.source}. "
        f"Licence: {photo.licence}." for photo in chosen)
    return Dataset(
        name="photos",
        x=_all_photos()[order],  # indexing with a list copies
        y=torch.tensor([photo.imagenet_class for photo in chosen], dtype=torch.long),
        classes=classes,
        notes=notes,
    )


MODELS = []
DATASETS = {"photos": photos_dataset}
