"""`breast-cancer-shapnet` and `digits-shapnet`: networks that explain themselves (chapter 08).

Both are Shapley Explanation Networks (Wang, Wang & Inouye, ICLR 2021; `xai_course.shapley`),
trained on the zoo's own data, so that each can be set beside the plain network of the same
data (`breast-cancer`, `digits`):

- `breast-cancer-shapnet` (`ShallowShapNet`): one Shapley module of 8 hidden units on every
  pair of the 30 z-scores of `breast-cancer` (435 modules). Its one-pass explanation is the
  exact Shapley value of the whole network (reference: the average case, z = 0).
- `digits-shapnet` (`DeepConvShapNet`): three layers of Shapley modules on 2 x 2 patches
  with dilations 1, 2, 4 (the butterfly in two dimensions), on `digits`. Its players are
  the 8 x 8 blocks of 4 x 4 pixels (the scans behind the 32 x 32 digits are 8 x 8; reference:
  black). Its explanation keeps local accuracy and missingness, not exactness.

`fit_shapnet` is the training loop of both, with the explanation regulariser
`shapley.explanation_l1` as an option (`l1`): chapter 08 trains with several strengths to
show sparsity against accuracy.
"""

from __future__ import annotations

import torch
from torch import nn

from ..shapley import DeepConvShapNet, ShallowShapNet, explanation_l1
from . import Dataset, ModelSpec, accuracy
from .digits import digits, fit
from .tabular import breast_cancer

__all__ = ["MODELS", "DATASETS", "breast_cancer_shapnet", "digits_shapnet", "fit_shapnet",
           "logits_from_explanation", "train_breast_cancer_shapnet", "train_digits_shapnet"]


def breast_cancer_shapnet() -> ShallowShapNet:
    """A shallow ShapNet on the 30 breast-cancer z-scores: a module on every pair."""
    return ShallowShapNet(30, 2, hidden=8)


def digits_shapnet() -> DeepConvShapNet:
    """A deep convolutional ShapNet on 1 x 32 x 32 digits: 8 x 8 players of 4 x 4 pixels."""
    return DeepConvShapNet(1, 10, channels=16, hidden=32, dilations=(1, 2, 4), block=4)


def logits_from_explanation(phi: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """g(x) = g(r) + sum of the values (local accuracy): phi (B, d, classes) of a tabular
    ShapNet or (B, classes, H, W) of an image one."""
    return bias + (phi.sum(dim=1) if phi.ndim == 3 else phi.sum(dim=(2, 3)))


def fit_shapnet(model: nn.Module, train: Dataset, epochs: int, lr: float, l1: float = 0.0,
                batch_size: int = 64, progress: bool = True, desc: str = "shapnet") -> nn.Module:
    """`digits.fit` (Adam, cosine-annealed learning rate) on cross-entropy plus l1 *
    `explanation_l1` of the explanation; the explanation comes from the same forward pass as
    the logits. Shuffled by torch's global generator (seed it for a repeatable run)."""
    def loss_fn(model, x, y):
        phi, bias = model.explain(x)
        loss = nn.functional.cross_entropy(logits_from_explanation(phi, bias), y)
        return loss + l1 * explanation_l1(phi) if l1 else loss

    return fit(model, lambda epoch: train, epochs, lr, batch_size, progress, desc, loss_fn)


def train_breast_cancer_shapnet(progress: bool = True) -> tuple[nn.Module, float]:
    """Train `breast_cancer_shapnet` on the train split: 30 epochs of Adam, batches of 64."""
    torch.manual_seed(0)
    model = breast_cancer_shapnet()
    fit_shapnet(model, breast_cancer("train"), epochs=30, lr=1e-2, progress=progress,
                desc="breast-cancer-shapnet")
    test_accuracy = accuracy(model, breast_cancer("test"))
    print(f"breast-cancer-shapnet: test accuracy {test_accuracy:.2%}")
    return model, test_accuracy


def train_digits_shapnet(progress: bool = True) -> tuple[nn.Module, float]:
    """Train `digits_shapnet` on the digits' train split: 16 epochs of Adam, batches of 32.

    The last modules' output layer starts at 0, so the logits start at 0 rather than as a
    sum of 64 random values."""
    torch.manual_seed(0)
    model = digits_shapnet()
    nn.init.zeros_(model.layers[-1].f[-1].weight)
    fit_shapnet(model, digits("train"), epochs=16, lr=3e-3, batch_size=32, progress=progress,
                desc="digits-shapnet")
    test_accuracy = accuracy(model, digits("test"))
    print(f"digits-shapnet: test accuracy {test_accuracy:.2%}")
    return model, test_accuracy


MODELS = [
    ModelSpec(
        name="breast-cancer-shapnet", build=breast_cancer_shapnet, dataset="breast-cancer",
        train=train_breast_cancer_shapnet, tabular=True,
        description="A shallow Shapley explanation network (a module on every pair of the 30 "
                    "z-scores): its one-pass explanation is the exact Shapley value.",
    ),
    ModelSpec(
        name="digits-shapnet", build=digits_shapnet, dataset="digits",
        train=train_digits_shapnet,
        description="A deep convolutional Shapley explanation network (modules on 2 x 2 "
                    "patches, dilations 1, 2, 4) on 32x32 digits, 8 x 8 players.",
    ),
]

DATASETS: dict = {}
