"""`breast-cancer`: a real table and a small network that reads it.

The data set is scikit-learn's copy of the Wisconsin Diagnostic Breast Cancer data (Street,
Wolberg & Mangasarian, 1993): 569 fine-needle aspirates of breast masses, each described by 30
numbers computed from a digitised image of the cell nuclei (the mean, the standard error and
the "worst" value of ten measurements: radius, texture, perimeter, area, smoothness,
compactness, concavity, concave points, symmetry, fractal dimension), labelled malignant or
benign. It ships inside scikit-learn, so nothing is downloaded.

- `breast_cancer(split)`: a fixed stratified 80/20 split; every feature standardised with the
  train split's mean and standard deviation, so that x holds z-scores (how many standard
  deviations a value is above the average mass of the train split). `.features` names the
  columns; `feature_scale()` gives the mean and standard deviation to go back to the units.
- `breast-cancer` (`TabularMLP`): 30 -> 32 -> 16 -> 2, ReLU between, trained by
  `train_breast_cancer` (`xai-course train breast-cancer`, a few seconds).
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import Dataset, ModelSpec, accuracy

__all__ = ["CLASSES", "MODELS", "DATASETS", "breast_cancer", "feature_scale", "TabularMLP",
           "train_breast_cancer"]

CLASSES = ["malignant", "benign"]  # scikit-learn's target 0 and 1
SPLITS = ("train", "test")
_NOTES = ("scikit-learn's breast-cancer table (sklearn.datasets.load_breast_cancer: the UCI "
          "Breast Cancer Wisconsin (Diagnostic) data, Street, Wolberg & Mangasarian 1993; "
          "CC BY 4.0). 569 cases, 30 features standardised with the train split's mean and "
          "standard deviation.")


@functools.lru_cache(maxsize=1)
def _table() -> tuple[np.ndarray, np.ndarray, list[str], dict[str, np.ndarray]]:
    """(features (569, 30), labels, feature names, {split: indices}): a fixed stratified split.

    For each class a fixed random fifth of its cases is the test split; each split's indices
    come in a fixed shuffled order, so its first n mix both classes.
    """
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    labels = raw.target.astype(np.int64)
    rng = np.random.Generator(np.random.PCG64(1993))
    test = []
    for c in range(len(CLASSES)):
        members = rng.permutation(np.flatnonzero(labels == c))
        test.append(members[: round(0.2 * len(members))])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    splits = {"train": rng.permutation(train_idx), "test": rng.permutation(test_idx)}
    return raw.data.astype(np.float64), labels, list(raw.feature_names), splits


def feature_scale() -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of each feature on the train split: value = mean + std * z-score."""
    values, _, _, splits = _table()
    train = values[splits["train"]]
    return torch.from_numpy(train.mean(0)).float(), torch.from_numpy(train.std(0)).float()


def breast_cancer(split: str = "test", n: int | None = None, seed: int | None = None) -> Dataset:
    """The breast-cancer table as z-scores (N, 30) and labels (0 malignant, 1 benign).

    split: "train" (456 cases) or "test" (113). seed: None gives the split in its fixed order,
    a seed a shuffled order (the same on any machine). n: the first n.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for 'breast-cancer'; valid splits: "
                         f"{', '.join(SPLITS)}")
    values, labels, names, splits = _table()
    indices = splits[split]
    if seed is not None:
        indices = np.random.Generator(np.random.PCG64(seed)).permutation(indices)
    indices = indices[:n]
    mean, std = feature_scale()
    x = (torch.from_numpy(values[indices]).float() - mean) / std
    return Dataset(name="breast-cancer", x=x, y=torch.from_numpy(labels[indices]),
                   classes=CLASSES, features=names, notes=_NOTES)


class TabularMLP(nn.Module):
    """A multi-layer perceptron for a table of z-scores: 30 -> 32 -> 16 -> 2 class scores."""

    def __init__(self, n_features: int = 30, n_classes: int = 2):
        super().__init__()
        self.layers = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(n_features, 32)), ("relu1", nn.ReLU()),
            ("fc2", nn.Linear(32, 16)), ("relu2", nn.ReLU()),
            ("fc3", nn.Linear(16, n_classes)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def train_breast_cancer(progress: bool = True) -> tuple[nn.Module, float]:
    """Train `TabularMLP` on the train split: 250 full-batch steps of Adam, a few seconds."""
    torch.manual_seed(0)
    model = TabularMLP()
    train = breast_cancer("train")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in tqdm(range(250), desc="breast-cancer", disable=not progress):
        loss = loss_fn(model(train.x), train.y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    test_accuracy = accuracy(model, breast_cancer("test"))
    print(f"breast-cancer: test accuracy {test_accuracy:.2%}")
    return model, test_accuracy


MODELS = [
    ModelSpec(
        name="breast-cancer", build=TabularMLP, dataset="breast-cancer",
        train=train_breast_cancer, tabular=True,
        description="A small MLP (30 -> 32 -> 16 -> 2) on the breast-cancer table (z-scores).",
    ),
]

DATASETS = {"breast-cancer": breast_cancer}
