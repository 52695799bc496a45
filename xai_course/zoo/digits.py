"""Digits: the course's small image models and their data, all offline.

Three data sets, all built from scikit-learn's real handwritten digits (1,797 scans of 8x8
pixels, 16 grey levels; they ship inside scikit-learn, so nothing is downloaded):

- `digits`: the digits themselves, upsampled to 32x32, one grey channel. The easy case:
  every method's map can be read by eye.
- `cluttered-digits`: one digit at a random place, size and colour on a 64x64 RGB canvas
  among distractors (fragments of other digits, strokes, a textured background), with
  `.mask`, the digit's own pixels. Because we know where the evidence is, an explanation
  can be *scored* (how much of its mass falls on the digit?) instead of only looked at.
- `shortcut-digits`: the same canvases plus a small white square whose position gives the
  label away (split "train" and "test"). A model trained on it learns the square, not the
  digit; on split "moved" the square sits at a wrong class's position and the model's
  accuracy collapses. The explanation shows the shortcut before the accuracy does.

And three models, each with the script that trained its shipped weights
(`xai-course train NAME`, or `zoo.train(NAME)`):

- `digits`: a small CNN on `digits`.
- `cluttered-digits`: a CNN whose head is global average pooling + one linear layer, on
  `cluttered-digits`. With this head the class score is a weighted sum of the last feature
  maps' means, so the Class Activation Map (CAM) is exact, and equals Grad-CAM.
- `shortcut-digits`: the same architecture trained on `shortcut-digits`.

Every random choice comes from `numpy.random.Generator(PCG64(...))`, so a seed gives the
same data on any machine. Generated canvases are made in chunks of `CHUNK` with their own
seeds, so the first n examples of a draw do not depend on how many were asked for.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import Dataset, ModelSpec, accuracy

__all__ = [
    "CLASSES",
    "MODELS",
    "DATASETS",
    "digits",
    "cluttered_digits",
    "shortcut_digits",
    "shortcut_mark_mask",
    "mark_position",
    "DigitsCNN",
    "ClutteredDigitsCNN",
    "accuracy",
    "fit",
]

CLASSES = [str(d) for d in range(10)]
DIGIT_SIZE = 32  # side of the upsampled `digits` images
CANVAS_SIZE = 64  # side of the cluttered canvases
CHUNK = 100  # canvases per independently seeded chunk
MARK_SIZE = 4  # side of the shortcut's white square
CANVAS_EPOCHS = 20  # training epochs of 5,000 fresh canvases each, for both canvas models

# Which slice of the real digits each split of each set uses, and the default sizes.
DIGITS_SPLITS = ("train", "test")
CANVAS_SPLITS = ("train", "test")
SHORTCUT_SPLITS = ("train", "test", "moved")
CANVAS_DEFAULT_SIZE = {"train": 5000, "test": 2000, "moved": 2000}
_SPLIT_STREAM = {"train": 0, "test": 1}  # mixed into the seed, so splits never share a draw

_DIGITS_NOTES = (
    "scikit-learn's handwritten digits (sklearn.datasets.load_digits: the UCI 'Optical "
    "Recognition of Handwritten Digits' test set, 1,797 images of 8x8 pixels; CC BY 4.0)."
)


def _check_split(split: str, valid: tuple[str, ...], name: str) -> None:
    if split not in valid:
        raise ValueError(f"unknown split {split!r} for {name!r}; valid splits: {', '.join(valid)}")


# --------------------------------------------------------------------------------------------
# The real digits and their fixed train/test split


@functools.lru_cache(maxsize=1)
def _real_digits() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(images (1797, 8, 8) in [0, 1], labels, {split: indices}): a fixed stratified 80/20 split.

    For each class, a fixed random fifth of its examples is the test split; the rest is train.
    Each split's indices come in a fixed shuffled order, so its first n mix all classes.
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = raw.images.astype(np.float64) / 16.0
    labels = raw.target.astype(np.int64)
    rng = np.random.Generator(np.random.PCG64(2017))
    test = []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        test.append(members[: round(0.2 * len(members))])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    splits = {"train": rng.permutation(train_idx), "test": rng.permutation(test_idx)}
    return images, labels, splits


def _stretch_weights(start: np.ndarray, size: np.ndarray, src: int, out: int) -> np.ndarray:
    """(N, out, src) weights that stretch `src` pixels over output pixels [start, start + size).

    Bilinear interpolation along one axis: output pixel i takes source pixel k with weight
    max(0, 1 - |p_i - k|), where p_i is the centre of pixel i in source coordinates. Outside
    the source the weights fade to 0 (zero padding), so a pasted digit has soft edges.
    """
    p = (np.arange(out) + 0.5 - start[:, None]) * (src / size[:, None]) - 0.5  # (N, out)
    return np.clip(1.0 - np.abs(p[:, :, None] - np.arange(src)), 0.0, None)


def _paste(images: np.ndarray, top: np.ndarray, left: np.ndarray, size: np.ndarray,
           out: int) -> np.ndarray:
    """Scale each (h, w) image to a size x size box at (top, left) of an out x out canvas.

    Scaling along rows and columns is separable: canvas = R @ image @ C^T, with the
    bilinear weights R (N, out, h) and C (N, out, w) of `_stretch_weights`.
    """
    h, w = images.shape[1:]
    rows = _stretch_weights(top, size, h, out)
    cols = _stretch_weights(left, size, w, out)
    return rows @ images @ cols.transpose(0, 2, 1)


def _upsampled(indices: np.ndarray) -> np.ndarray:
    """The real digits at `indices`, upsampled from 8x8 to DIGIT_SIZE x DIGIT_SIZE."""
    images = _real_digits()[0][indices]
    n = len(indices)
    zeros, full = np.zeros(n), np.full(n, float(DIGIT_SIZE))
    return np.clip(_paste(images, zeros, zeros, full, DIGIT_SIZE), 0.0, 1.0)


def digits(split: str = "test", n: int | None = None, seed: int | None = None) -> Dataset:
    """scikit-learn's handwritten digits, upsampled to 1 x 32 x 32, values in [0, 1].

    split: "train" (1,438 images) or "test" (359), a fixed stratified 80/20 split. seed: None
    gives the split in its fixed order; a seed gives a shuffled order (same on any machine).
    n: the first n.
    """
    _check_split(split, DIGITS_SPLITS, "digits")
    _, labels, splits = _real_digits()
    indices = splits[split]
    if seed is not None:
        indices = np.random.Generator(np.random.PCG64(seed)).permutation(indices)
    indices = indices[:n]
    x = torch.from_numpy(_upsampled(indices).astype(np.float32)).unsqueeze(1)
    return Dataset(name="digits", x=x, y=torch.from_numpy(labels[indices]), classes=CLASSES,
                   notes=_DIGITS_NOTES + " Upsampled bilinearly to 32x32.")


# --------------------------------------------------------------------------------------------
# Cluttered canvases


def _colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) bright random colours: every channel >= 0.3, the brightest one 1."""
    colour = rng.random((n, 3))
    return 0.3 + 0.7 * colour / colour.max(axis=1, keepdims=True)


def _strokes(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """(n, count, S, S) opacity of `count` straight anti-aliased strokes per canvas."""
    s = CANVAS_SIZE
    a = rng.uniform(-8, s + 8, (n, count, 2, 1, 1)).astype(np.float32)  # start (row, col)
    b = a + rng.uniform(-40, 40, (n, count, 2, 1, 1)).astype(np.float32)  # end
    width = rng.uniform(1.0, 2.5, (n, count, 1, 1)).astype(np.float32)
    centres = np.arange(s, dtype=np.float32) + 0.5
    dr, dc = centres[:, None] - a[:, :, 0], centres[None, :] - a[:, :, 1]  # pixel - start
    er, ec = b[:, :, 0] - a[:, :, 0], b[:, :, 1] - a[:, :, 1]  # end - start
    t = np.clip((dr * er + dc * ec) / (er * er + ec * ec + 1e-6), 0.0, 1.0)
    distance = np.sqrt((dr - t * er) ** 2 + (dc - t * ec) ** 2)  # to the nearest stroke point
    return np.clip(width / 2 + 0.5 - distance, 0.0, 1.0)


def _canvases(rng: np.random.Generator, pool: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """n cluttered canvases whose digits and fragments come from the real digits `pool`.

    Painted back to front: a textured background, 3 strokes, 2 fragments of other digits (a
    random 3-5 x 3-5 crop of an 8x8 digit), then the digit itself, on top, 24-40 px tall and
    wholly inside the canvas. Every layer has its own random colour from the same
    distribution, so colour says nothing about which layer is the digit.
    """
    s = CANVAS_SIZE
    images, labels, _ = _real_digits()

    # background: a dark base colour, a smooth random texture, and fine pixel noise
    base = rng.uniform(0.0, 0.35, (n, 3, 1, 1))
    coarse = rng.normal(0.0, 1.0, (n * 3, 6, 6))
    margin = np.full(n * 3, -8.0)
    texture = _paste(coarse, margin, margin, np.full(n * 3, s + 16.0), s).reshape(n, 3, s, s)
    amplitude = rng.uniform(0.03, 0.15, (n, 1, 1, 1))
    canvas = rng.random((n, 3, s, s), dtype=np.float32)  # fine noise, +-0.05 around ...
    canvas -= 0.5
    canvas *= 0.1
    canvas += (base + amplitude * texture).astype(np.float32)  # ... base colour + texture

    def paint(alpha: np.ndarray, colour: np.ndarray) -> None:
        """Alpha-blend one layer onto the canvas: canvas <- (1 - alpha) canvas + alpha colour."""
        change = colour.astype(np.float32)[:, :, None, None] - canvas
        change *= alpha.astype(np.float32)[:, None]
        canvas[...] += change

    # strokes
    strokes = _strokes(rng, n, 3)
    for k in range(strokes.shape[1]):
        paint(strokes[:, k], _colours(rng, n))

    # where the digit will go (it is painted last, on top)
    index = rng.choice(pool, n)
    size = rng.uniform(24.0, 40.0, n)
    top, left = rng.uniform(0.0, s - size, (2, n))
    centre = np.stack([top + size / 2, left + size / 2])  # (2, n)

    # fragments of other digits: a random 3-5 x 3-5 rectangle of an 8x8 digit, placed at the
    # farthest from the digit of 3 random places, so that they rarely merge with it
    rows, cols = np.arange(8)[None, :, None], np.arange(8)[None, None, :]
    for _ in range(2):
        source = images[rng.choice(pool, n)]
        h, w = rng.integers(3, 6, (2, n))
        r0, c0 = rng.integers(0, 9 - h), rng.integers(0, 9 - w)
        window = ((rows >= r0[:, None, None]) & (rows < (r0 + h)[:, None, None])
                  & (cols >= c0[:, None, None]) & (cols < (c0 + w)[:, None, None]))
        frag_size = rng.uniform(20.0, 36.0, n)
        corner = rng.uniform(-frag_size / 3, s - 2 * frag_size / 3, (3, 2, n))  # 3 candidates
        visible_centre = corner + np.stack([r0 + h / 2, c0 + w / 2]) / 8 * frag_size
        farthest = ((visible_centre - centre) ** 2).sum(axis=1).argmax(axis=0)
        frag_top, frag_left = corner[farthest, :, np.arange(n)].T
        alpha = np.clip(_paste(source * window, frag_top, frag_left, frag_size, s), 0, 1)
        paint(alpha, _colours(rng, n))

    # the digit, on top
    alpha = np.clip(_paste(images[index], top, left, size, s), 0, 1)
    paint(alpha, _colours(rng, n))
    return {
        "x": np.clip(canvas, 0.0, 1.0).astype(np.float32),
        "y": labels[index],
        "mask": (alpha > 0.3).astype(np.float32),
        "source": index,
    }


def mark_position(label) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of the top-left corner of the shortcut mark that stands for class `label`.

    Classes 0-4 sit along the top edge, 5-9 along the bottom edge, 14 px apart.
    """
    label = np.asarray(label)
    row = np.where(label < 5, 2, CANVAS_SIZE - 2 - MARK_SIZE)
    col = 2 + 14 * (label % 5)
    return row, col


def _generate(split: str, n: int | None, seed: int | None, shortcut: bool) -> dict:
    """Canvases of `split`, chunk by chunk; with `shortcut`, the marks painted on as well."""
    stream = _SPLIT_STREAM["test" if split == "moved" else split]
    pool = _real_digits()[2]["test" if split == "moved" else split]
    n = CANVAS_DEFAULT_SIZE[split] if n is None else n
    if n < 1:
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    seed = 0 if seed is None else seed
    out: dict[str, np.ndarray] = {}
    for chunk, start in enumerate(range(0, n, CHUNK)):
        canvas_seed, mark_seed = np.random.SeedSequence([seed, stream, chunk]).spawn(2)
        part = _canvases(np.random.Generator(np.random.PCG64(canvas_seed)), pool, CHUNK)
        if shortcut:
            mark_class = part["y"].copy()
            if split == "moved":  # the mark of a wrong class: label + 1..9, modulo 10
                shift = np.random.Generator(np.random.PCG64(mark_seed)).integers(1, 10, CHUNK)
                mark_class = (mark_class + shift) % 10
            row, col = mark_position(mark_class)
            rows, cols = np.arange(CANVAS_SIZE)[:, None], np.arange(CANVAS_SIZE)
            mark = ((rows >= row[:, None, None]) & (rows < row[:, None, None] + MARK_SIZE)
                    & (cols >= col[:, None, None]) & (cols < col[:, None, None] + MARK_SIZE))
            part["x"] = np.where(mark[:, None], np.float32(1.0), part["x"])  # white, on top
            part["mask"][mark] = 0.0  # the digit pixels the mark covers are no longer visible
            part["mark"], part["mark_class"] = mark.astype(np.float32), mark_class
        if not out:  # the first chunk: allocate the whole result once
            out = {key: np.empty((n, *v.shape[1:]), v.dtype) for key, v in part.items()}
        stop = min(start + CHUNK, n)
        for key, value in part.items():
            out[key][start:stop] = value[: stop - start]
    return out


def _canvas_dataset(name: str, parts: dict, notes: str) -> Dataset:
    return Dataset(name=name, x=torch.from_numpy(parts["x"]), y=torch.from_numpy(parts["y"]),
                   classes=CLASSES, mask=torch.from_numpy(parts["mask"]), notes=notes)


def cluttered_digits(split: str = "test", n: int | None = None,
                     seed: int | None = None) -> Dataset:
    """A real digit among distractors on a 3 x 64 x 64 canvas; `.mask`: the digit's pixels.

    split: "train" (canvases made from the train digits only) or "test" (test digits only).
    n: number of canvases (default 5,000 for "train", 2,000 for "test"). seed: which draw
    (default 0); the same seed gives the same canvases on any machine.
    """
    _check_split(split, CANVAS_SPLITS, "cluttered-digits")
    notes = ("Generated from " + _DIGITS_NOTES + " One digit, 24-40 px, at a random place and "
             "colour among strokes, fragments of other digits and a textured background.")
    return _canvas_dataset("cluttered-digits", _generate(split, n, seed, False), notes)


def shortcut_digits(split: str = "test", n: int | None = None,
                    seed: int | None = None) -> Dataset:
    """`cluttered-digits` plus a white 4 x 4 mark whose position gives the label away.

    split "train" / "test": the mark sits at its class's position (`mark_position`): a
    perfect, far easier cue than the digit. Split "moved": the very same canvases as "test",
    but each mark sits at the position of a wrong class. A seed gives the same canvases as
    `cluttered_digits` with that seed, plus the mark. `.mask`: the digit's visible pixels; the
    mark's pixels: `shortcut_mark_mask`. n: default 5,000 for "train", 2,000 otherwise.
    """
    _check_split(split, SHORTCUT_SPLITS, "shortcut-digits")
    notes = ("cluttered-digits canvases plus a 4x4 white mark at a position that depends on the "
             "label ('train', 'test') or on a wrong label ('moved').")
    return _canvas_dataset("shortcut-digits", _generate(split, n, seed, True), notes)


def shortcut_mark_mask(split: str = "test", n: int | None = None,
                       seed: int | None = None) -> torch.Tensor:
    """(N, 64, 64) 0/1: where the mark is on `shortcut_digits(split, n, seed)`."""
    _check_split(split, SHORTCUT_SPLITS, "shortcut-digits")
    return torch.from_numpy(_generate(split, n, seed, True)["mark"])



# --------------------------------------------------------------------------------------------
# Models


class DigitsCNN(nn.Module):
    """A small CNN for 1 x 32 x 32 digits: three conv blocks, then a two-layer classifier.

    features: (conv 3x3 -> ReLU -> max-pool 2) x 3, 32 -> 16 -> 8 -> 4 pixels.
    classifier: flatten -> linear -> ReLU -> linear, 10 class scores (logits).
    Every ReLU is its own module, so methods such as Guided Backprop can hook it.
    """

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(1, 16, 3, padding=1)), ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(16, 32, 3, padding=1)), ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
            ("conv3", nn.Conv2d(32, 64, 3, padding=1)), ("relu3", nn.ReLU()),
            ("pool3", nn.MaxPool2d(2)),
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(64 * 4 * 4, 64)), ("relu", nn.ReLU()),
            ("fc2", nn.Linear(64, n_classes)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ClutteredDigitsCNN(nn.Module):
    """A CNN for 3 x 64 x 64 canvases whose head is global average pooling + one linear layer.

    features: five conv blocks (conv 3x3 -> batch norm -> ReLU), max-pooled from 64 to 32, 16
    and 8 pixels; the output of the last one, relu5 = features[-1], is K = 64 maps A_k of 8 x 8
    places, each place seeing a 46 x 46 pixel window of the canvas. (Batch norm makes training
    fast and stable; in eval mode it is a fixed per-channel scale and shift, so every method
    sees a plain conv net.) pool: the maps' spatial means; fc: one linear layer. The score of
    class c is therefore

        y_c = b_c + sum_k w_ck mean_ij A_k[i, j] = b_c + mean_ij (sum_k w_ck A_k[i, j]),

    so CAM_c = sum_k w_ck A_k is exactly how much each place adds to the score: the reason
    this head is used (Zhou et al. 2016, "Learning Deep Features for Discriminative
    Localization"), and why Grad-CAM equals CAM here.
    """

    def __init__(self, n_classes: int = 10, width: int = 64):
        super().__init__()
        w = width
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, w // 4, 3, padding=1)), ("bn1", nn.BatchNorm2d(w // 4)),
            ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),  # 64 -> 32 px
            ("conv2", nn.Conv2d(w // 4, w // 2, 3, padding=1)), ("bn2", nn.BatchNorm2d(w // 2)),
            ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),  # 32 -> 16 px
            ("conv3", nn.Conv2d(w // 2, w, 3, padding=1)), ("bn3", nn.BatchNorm2d(w)),
            ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(w, w, 3, padding=1)), ("bn4", nn.BatchNorm2d(w)),
            ("relu4", nn.ReLU()), ("pool4", nn.MaxPool2d(2)),  # 16 -> 8 px
            ("conv5", nn.Conv2d(w, w, 3, padding=1)), ("bn5", nn.BatchNorm2d(w)),
            ("relu5", nn.ReLU()),  # the last feature maps: the layer CAM uses
        ]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(w, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.features(x))))


# --------------------------------------------------------------------------------------------
# Training scripts (`xai-course train NAME`)


def fit(model: nn.Module, epoch_data, epochs: int, lr: float, batch_size: int = 64,
        progress: bool = True, desc: str = "training", loss_fn=None) -> nn.Module:
    """Adam on cross-entropy, the learning rate annealed to 0 along a cosine.

    epoch_data(epoch) -> Dataset: the examples of one epoch (shuffled here, seeded by torch).
    loss_fn(model, x, y) -> loss: another loss (default: cross-entropy of model(x)).
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    first = epoch_data(0)
    steps_per_epoch = -(-len(first) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs * steps_per_epoch)
    if loss_fn is None:
        def loss_fn(model, x, y):
            return nn.functional.cross_entropy(model(x), y)
    model.train()
    with tqdm(total=epochs * steps_per_epoch, desc=desc, disable=not progress) as bar:
        for epoch in range(epochs):
            data = first if epoch == 0 else epoch_data(epoch)
            order = torch.randperm(len(data))
            for start in range(0, len(data), batch_size):
                batch = order[start:start + batch_size]
                loss = loss_fn(model, data.x[batch], data.y[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
    return model.eval()


def train_digits(progress: bool = True) -> tuple[nn.Module, float]:
    """Train `DigitsCNN` on the digits' train split: 20 epochs of Adam, about a minute."""
    torch.manual_seed(0)
    model = DigitsCNN()
    train = digits("train")
    fit(model, lambda epoch: train, epochs=20, lr=2e-3, progress=progress, desc="digits")
    test_accuracy = accuracy(model, digits("test"))
    print(f"digits: test accuracy {test_accuracy:.2%}")
    return model, test_accuracy


def _train_canvases(make, name: str, progress: bool) -> nn.Module:
    """Train `ClutteredDigitsCNN` on fresh canvases every epoch (epoch e: seed e).

    Fresh canvases are free to make, so the model never sees the same one twice: the
    places, sizes, colours and clutter are all new each epoch; only the 1,438 train digits
    repeat.
    """
    torch.manual_seed(0)
    model = ClutteredDigitsCNN()
    fit(model, lambda epoch: make("train", n=CANVAS_DEFAULT_SIZE["train"], seed=epoch),
         epochs=CANVAS_EPOCHS, lr=2e-3, progress=progress, desc=name)
    return model


def train_cluttered_digits(progress: bool = True) -> tuple[nn.Module, float]:
    """Train the CAM-ready CNN on `cluttered-digits`."""
    model = _train_canvases(cluttered_digits, "cluttered-digits", progress)
    test_accuracy = accuracy(model, cluttered_digits("test"))
    print(f"cluttered-digits: test accuracy {test_accuracy:.2%}")
    return model, test_accuracy


def train_shortcut_digits(progress: bool = True) -> tuple[nn.Module, float]:
    """Train the same CNN, with the same recipe and seed, on `shortcut-digits`.

    Only the data differ: a mark that predicts the label perfectly and is far easier to see
    than the digit. The model takes the shortcut: near-perfect on "test", where the mark still
    tells the truth, and far worse on "moved". Accuracy on data with the same shortcut cannot
    reveal it; an explanation (a saliency map, CAM) that lights up the mark instead of the
    digit can.
    """
    model = _train_canvases(shortcut_digits, "shortcut-digits", progress)
    test_accuracy = accuracy(model, shortcut_digits("test"))
    moved_accuracy = accuracy(model, shortcut_digits("moved"))
    print(f"shortcut-digits: test accuracy {test_accuracy:.2%}, with the mark moved to a wrong "
          f"class {moved_accuracy:.2%} ({100 * (test_accuracy - moved_accuracy):.1f} points less)")
    return model, test_accuracy


MODELS = [
    ModelSpec(
        name="digits", build=DigitsCNN, dataset="digits", train=train_digits,
        description="A small CNN (3 conv blocks + 2 linear layers) on 32x32 handwritten digits.",
    ),
    ModelSpec(
        name="cluttered-digits", build=ClutteredDigitsCNN, dataset="cluttered-digits",
        train=train_cluttered_digits,
        description="A CNN with a global-average-pooling + linear head (CAM is exact) on "
                    "digits among clutter.",
    ),
    ModelSpec(
        name="shortcut-digits", build=ClutteredDigitsCNN, dataset="shortcut-digits",
        train=train_shortcut_digits,
        description="The same CNN trained where a small mark gives the label away: it learns "
                    "the mark (a shortcut).",
    ),
]

DATASETS = {
    "digits": digits,
    "cluttered-digits": cluttered_digits,
    "shortcut-digits": shortcut_digits,
}
