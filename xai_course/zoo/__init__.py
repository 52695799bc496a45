"""The course's model zoo: models and data that work offline.

    zoo.models()                      -> names of the models
    zoo.load_model(name, device=None) -> an nn.Module in eval mode on `device`
    zoo.datasets()                    -> names of the data sets
    zoo.dataset(name, split="test", n=None, seed=None) -> Dataset(.x, .y, .classes, ...)
    zoo.train(name)                   -> retrain a shipped model with its own script

Every embedded model was trained by the script next to its data (`xai-course train NAME`)
and ships as a small weights file checked against `weights/SHA256SUMS` before
`torch.load(weights_only=True)`. Image models take RGB or grey images in [0, 1]; the ImageNet
models normalise inside, so every image model in the course sees the same kind of input.

The ImageNet models come from torchvision's own cache; offline and not cached, loading one
raises an error naming the one command that fetches it (`xai-course fetch-weights NAME`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from ..convention import unchanged
from . import weights as _weights

__all__ = [
    "Dataset",
    "ModelSpec",
    "models",
    "load_model",
    "datasets",
    "dataset",
    "train",
    "accuracy",
    "model_info",
    "default_device",
    "is_text_model",
    "WeightsNotCached",
]

WeightsNotCached = _weights.WeightsNotCached


@dataclasses.dataclass
class Dataset:
    """A data set of the zoo.

    x: inputs, batch first (images (N, C, H, W) in [0, 1]; token ids (N, L) for text).
    y: labels (N,). classes: class names. mask: (N, H, W) ground-truth region where the data
    has one. relevant: (N, L) 0/1, the tokens that decide a text's label. tokens: the words
    of each text (padding left out). vocab: id -> word for text. notes: source and licence.
    features: the column names of a table.
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    mask: torch.Tensor | None = None
    relevant: torch.Tensor | None = None
    tokens: list[list[str]] | None = None
    vocab: list[str] | None = None
    notes: str = ""
    features: list[str] | None = None

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index) -> Dataset:
        """A sub-set: an int, a slice, a list or a tensor of indices; keeps the batch dimension."""
        idx = torch.arange(len(self))[index].reshape(-1)
        return dataclasses.replace(
            self,
            x=self.x[idx],
            y=self.y[idx],
            mask=None if self.mask is None else self.mask[idx],
            relevant=None if self.relevant is None else self.relevant[idx],
            tokens=None if self.tokens is None else [self.tokens[j] for j in idx.tolist()],
        )


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How to build, train and describe one model of the zoo.

    build(): the architecture with fresh weights. train(progress=True) -> (model, test
    accuracy): the script that made the shipped weights. load(): a custom loader for models
    whose weights are not shipped (the ImageNet ones), else None. tabular: the model reads
    rows of a table (N, features), not images or texts. generator: the model draws inputs
    from a code z (a GAN's generator) instead of classifying them; its training script
    returns the share of its samples the data's classifier is confident about. explains:
    the model is a readout network that explains the zoo model of that name (chapter 07's
    Readout Bottleneck), not a classifier of its own.
    """

    name: str
    build: Callable[[], nn.Module]
    dataset: str
    description: str
    train: Callable[..., tuple[nn.Module, float]] | None = None
    load: Callable[[], nn.Module] | None = None
    tabular: bool = False
    generator: bool = False
    explains: str | None = None


def _registry() -> tuple[dict[str, ModelSpec], dict[str, Callable[..., Dataset]]]:
    from . import digits, generators, imagenet, photos, readouts, reviews, shapnets, tabular

    specs: dict[str, ModelSpec] = {}
    data: dict[str, Callable[..., Dataset]] = {}
    for module in (digits, reviews, photos, imagenet, tabular, generators, shapnets, readouts):
        specs.update({s.name: s for s in module.MODELS})
        data.update(module.DATASETS)
    return specs, data


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def is_text_model(model: nn.Module) -> bool:
    """Whether `model` is one of the course's text models: it embeds token ids with
    `model.embedding` and classifies the embeddings with `model.encoder` (methods that need a
    float input run on `model.encoder`, see `gradients.per_token`)."""
    return hasattr(model, "embedding") and hasattr(model, "encoder")


def models() -> list[str]:
    """Names of the zoo's models."""
    return list(_registry()[0])


def datasets() -> list[str]:
    """Names of the zoo's data sets."""
    return list(_registry()[1])


def _spec(name: str) -> ModelSpec:
    specs = _registry()[0]
    if name not in specs:
        raise ValueError(f"unknown model {name!r}; the zoo has: {', '.join(specs)}")
    return specs[name]


def load_model(name: str, device: str | torch.device | None = None) -> nn.Module:
    """The zoo model `name`, with its weights, in eval mode, on `device` (default: CUDA if any).

    Embedded weights are checked against their sha256 before loading with
    `torch.load(weights_only=True)`; a mismatch raises, it never loads silently.
    """
    spec = _spec(name)
    device = torch.device(device) if device is not None else default_device()
    if spec.load is not None:
        model = spec.load()
    else:
        model = spec.build()
        model.load_state_dict(_weights.load_state(name))
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval().to(device)


def dataset(name: str, split: str = "test", n: int | None = None,
            seed: int | None = None) -> Dataset:
    """The zoo data set `name`: split "train" or "test" (some sets have more, see their docs).

    n: take the first n examples (None: all). seed: a different draw of generated data (or of
    the subset of real data); the same seed gives the same data on any machine.
    """
    data = _registry()[1]
    if name not in data:
        raise ValueError(f"unknown data set {name!r}; the zoo has: {', '.join(data)}")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    return data[name](split=split, n=n, seed=seed)


def accuracy(model: nn.Module, data: Dataset, batch_size: int = 256) -> float:
    """Fraction of `data` that `model` classifies right, in eval mode (the model's own mode
    is restored afterwards, so training loops can call it)."""
    device = next(model.parameters()).device
    correct = 0
    with unchanged(model), torch.no_grad():
        model.eval()
        for start in range(0, len(data), batch_size):
            x = data.x[start:start + batch_size].to(device)
            correct += (model(x).argmax(1).cpu() == data.y[start:start + batch_size]).sum().item()
    return correct / len(data)


def model_info(name: str) -> ModelSpec:
    """The spec of model `name`: its data set, description and training script."""
    return _spec(name)


def train(name: str, progress: bool = True, save: bool = True) -> tuple[nn.Module, float]:
    """Retrain model `name` with its own script; save the weights and their sha256 if `save`.

    Returns (model, test accuracy).
    """
    spec = _spec(name)
    if spec.train is None:
        raise ValueError(f"{name!r} is not trained by the course (its weights come from "
                         f"torchvision); trainable: "
                         f"{', '.join(s.name for s in _registry()[0].values() if s.train)}")
    model, accuracy = spec.train(progress=progress)
    if save:
        _weights.save_state(name, model)
    return model, accuracy
