"""`cluttered-digits-readout`: a Readout Bottleneck for the `cluttered-digits` CNN (chapter 07).

IBA's per-sample bottleneck optimises a mask for every input: 10 steps of 10 noisy passes. The
Readout Bottleneck (Schulz et al. 2020, section 3.2; `bottleneck.Readout`) learns once, over
the training canvases, to predict that mask from what the model computes for the input, and
then explains any canvas in one forward pass (`bottleneck.readout_bottleneck`).

Where it sits: the bottleneck at `features.relu3` (64 maps of 16 x 16, after two poolings:
the place of the authors' VGG-16 conv3_1 and ResNet-50 layer1, a quarter of the input's
side); the readout reads `features.relu3`, `features.relu4`, `features.relu5` and the
logits `fc` (the authors read four conv blocks and the output). 202 readout channels ->
101 -> 128 -> 64, about 42,000 weights.

`xai-course train cluttered-digits-readout` (several CPU minutes) retrains it: the
statistics mu, sigma of the four layers on STATS_CANVASES training canvases (they ship with
the weights), then EPOCHS epochs of Adam on `bottleneck.readout_loss` (`iba`'s loss, beta =
10, with each canvas's true label) over fresh training canvases. It returns, and the command
prints, the model's test accuracy with the readout's bottleneck in place (the shipped
weights: 99.2% without, 74.8% with it, one noise draw per canvas, 500 test canvases).

What the training goes through: at first the capacity term (5 nats per element at alpha = 5,
times beta) outweighs the cross-entropy everywhere, and every alpha falls together; within
~100 steps the bottleneck closes almost everywhere and the accuracy through it drops to
chance; then the cross-entropy teaches the readout where to open again, and it recovers.
A learning rate of 1e-3 or more overshoots past the clamp at -5, where no gradient flows,
and never recovers (measured: 10.6% accuracy through the bottleneck); hence 3e-4.
"""

from __future__ import annotations

import torch

from ..bottleneck import Readout, feature_stats, readout_bottleneck, readout_loss
from . import ModelSpec

__all__ = ["MODELS", "DATASETS", "BOTTLENECK", "LAYERS", "cluttered_digits_readout",
           "train_cluttered_digits_readout"]

BOTTLENECK = "features.relu3"  # (64, 16, 16)
LAYERS = {  # the readout layers and their features per canvas
    "features.relu3": (64, 16, 16),
    "features.relu4": (64, 16, 16),
    "features.relu5": (64, 8, 8),
    "fc": (10,),
}
BETA = 10.0  # `iba`'s beta on the mean capacity
STATS_CANVASES = 2000  # training canvases for mu, sigma (the authors warn below 1,000)
TRAIN_CANVASES = 5000  # the training canvases of one epoch (seed 0: the model's first epoch)
EPOCHS = 6
BATCH_SIZE = 32
LR = 3e-4
TEST_CANVASES = 500  # for the accuracy with the bottleneck


def cluttered_digits_readout() -> Readout:
    """The readout network for `cluttered-digits`, untrained (statistics 0 and 1)."""
    return Readout(BOTTLENECK, LAYERS[BOTTLENECK], LAYERS)


def _with_bottleneck(model, readout, data, generator) -> tuple[float, float]:
    """(accuracy of `model` on `data` with the readout's bottleneck in place, one noise draw
    per canvas; mean bits per canvas that the bottleneck lets through)."""
    correct, bits = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(data), BATCH_SIZE):
            x, y = data.x[start:start + BATCH_SIZE], data.y[start:start + BATCH_SIZE]
            _, logits, _ = readout_loss(model, x, y, readout, BETA, generator)
            correct += (logits.argmax(1) == y).sum().item()
            bits += readout_bottleneck(model, x, y, readout).sum().item()
    return correct / len(data), bits / len(data)


def train_cluttered_digits_readout(progress: bool = True) -> tuple[Readout, float]:
    """Train the readout of `cluttered-digits`: statistics, then `digits.fit` (Adam, cosine
    learning rate) on `readout_loss` over fresh training canvases each epoch (epoch e: seed
    e). Returns (readout, test accuracy of the model with the readout's bottleneck)."""
    from . import accuracy, load_model
    from .digits import cluttered_digits, fit

    torch.manual_seed(0)
    noise = torch.Generator().manual_seed(0)
    model = load_model("cluttered-digits", "cpu")
    canvases = cluttered_digits("train", n=STATS_CANVASES)
    stats = [feature_stats(model, name, canvases.x, progress=progress) for name in LAYERS]
    readout = cluttered_digits_readout()
    readout.set_stats(stats[list(LAYERS).index(BOTTLENECK)], stats)

    def loss_fn(readout, x, y):
        return readout_loss(model, x, y, readout, BETA, noise)[0]

    fit(readout, lambda epoch: cluttered_digits("train", n=TRAIN_CANVASES, seed=epoch),
        EPOCHS, LR, BATCH_SIZE, progress, "cluttered-digits-readout", loss_fn)
    test = cluttered_digits("test", n=TEST_CANVASES)
    bottlenecked, bits = _with_bottleneck(model, readout, test, noise)
    print(f"cluttered-digits-readout: test accuracy {accuracy(model, test):.2%} without the "
          f"bottleneck, {bottlenecked:.2%} with it (one noise draw per canvas); the readout's "
          f"maps pass {bits:.0f} bits per canvas on average ({TEST_CANVASES} test canvases)")
    return readout, bottlenecked


MODELS = [
    ModelSpec(
        name="cluttered-digits-readout", build=cluttered_digits_readout,
        dataset="cluttered-digits", train=train_cluttered_digits_readout,
        explains="cluttered-digits",
        description="A Readout Bottleneck for cluttered-digits (chapter 07): from the model's "
                    "features, the IBA mask at features.relu3 in one pass.",
    ),
]

DATASETS: dict = {}
