"""`digits-gan`: a generator of digits, the learned prior of chapter 06.

G maps a code z ~ N(0, I) of `LATENT_DIM` numbers to a 1 x 32 x 32 image in [0, 1] that
looks like the zoo's `digits` (scikit-learn's handwritten digits, upsampled). It is the
generator of a DCGAN (Radford, Metz & Chintala 2016, "Unsupervised Representation Learning
with Deep Convolutional Generative Adversarial Networks"), trained against a discriminator D
that tells real digits from G's:

    D: maximise  log D(x) + log(1 - D(G(z)))      (real x from the data, z ~ N(0, I))
    G: maximise  log D(G(z))                       (the "non-saturating" loss of the GAN paper)

Goodfellow et al. 2014, "Generative Adversarial Nets". Chapter 06 then searches over z for the
image the `digits` classifier likes most (`activation_max.maximize_latent`): every image G can
draw looks like a digit, so the search needs no hand-made prior.

`xai-course train digits-gan` (a few CPU minutes) retrains it; only G ships (D is thrown away).
Per epoch the script prints the losses, D's mean verdict on real and on generated digits, and
what a reader would check: how often the `digits` classifier is confident (p > 0.9) about G's
samples, and which digits those are (a GAN that draws only a few classes has "collapsed").
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from tqdm.auto import tqdm

from . import ModelSpec

__all__ = ["MODELS", "DATASETS", "DigitsGenerator", "DigitsDiscriminator", "train_digits_gan",
           "LATENT_DIM"]

LATENT_DIM = 32  # the length of the code z
EPOCHS = 30  # passes over the 1,438 training digits
BATCH_SIZE = 32
CONFIDENT = 0.9  # the `digits` classifier is "confident" about a sample when max_c p_c > this
CHECK_SAMPLES = 500  # samples drawn after every epoch to check G


class DigitsGenerator(nn.Module):
    """G: z (N, latent_dim) -> digits (N, 1, 32, 32) in [0, 1], a DCGAN generator.

    project: linear -> 64 maps of 4 x 4; then three transposed convolutions (kernel 4, stride
    2) double the size 4 -> 8 -> 16 -> 32 while halving the maps; batch norm and ReLU between,
    a sigmoid at the end. `sample(n, generator)` draws n images from random codes.
    """

    def __init__(self, latent_dim: int = LATENT_DIM, width: int = 32):
        super().__init__()
        self.latent_dim = latent_dim
        w = width
        self.project = nn.Sequential(OrderedDict([
            ("fc", nn.Linear(latent_dim, 2 * w * 4 * 4)),
            ("unflatten", nn.Unflatten(1, (2 * w, 4, 4))),
            ("bn0", nn.BatchNorm2d(2 * w)), ("relu0", nn.ReLU()),
        ]))
        self.upsample = nn.Sequential(OrderedDict([
            ("deconv1", nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1)),  # 4 -> 8 px
            ("bn1", nn.BatchNorm2d(w)), ("relu1", nn.ReLU()),
            ("deconv2", nn.ConvTranspose2d(w, w // 2, 4, stride=2, padding=1)),  # 8 -> 16 px
            ("bn2", nn.BatchNorm2d(w // 2)), ("relu2", nn.ReLU()),
            ("deconv3", nn.ConvTranspose2d(w // 2, 1, 4, stride=2, padding=1)),  # 16 -> 32 px
            ("sigmoid", nn.Sigmoid()),
        ]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images G(z) from codes z ~ N(0, I) drawn with `generator`, on G's device."""
        device = next(self.parameters()).device
        where = generator.device if generator is not None else device
        z = torch.randn((n, self.latent_dim), generator=generator, device=where).to(device)
        with torch.no_grad():
            return self(z)


class DigitsDiscriminator(nn.Module):
    """D: digits (N, 1, 32, 32) -> (N,) logits of "real" (a DCGAN discriminator, training only).

    Three strided convolutions 32 -> 16 -> 8 -> 4 px with leaky ReLUs (batch norm on the last
    two), then one linear layer.
    """

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(1, w // 2, 4, stride=2, padding=1)), ("relu1", nn.LeakyReLU(0.2)),
            ("conv2", nn.Conv2d(w // 2, w, 4, stride=2, padding=1)), ("bn2", nn.BatchNorm2d(w)),
            ("relu2", nn.LeakyReLU(0.2)),
            ("conv3", nn.Conv2d(w, 2 * w, 4, stride=2, padding=1)),
            ("bn3", nn.BatchNorm2d(2 * w)), ("relu3", nn.LeakyReLU(0.2)),
        ]))
        self.fc = nn.Linear(2 * w * 4 * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))[:, 0]


def _check_generator(G: nn.Module, classifier: nn.Module, z: torch.Tensor) -> tuple[float, list]:
    """(share of samples G(z) the classifier is confident about, how many of them per class)."""
    was_training = G.training
    G.eval()
    with torch.no_grad():
        p = classifier(G(z)).softmax(1)
    G.train(was_training)
    confident = p.max(1).values > CONFIDENT
    counts = torch.bincount(p.argmax(1)[confident], minlength=10).tolist()
    return confident.float().mean().item(), counts


def train_digits_gan(progress: bool = True) -> tuple[nn.Module, float]:
    """Train the DCGAN on the digits' train split; return (G, share of confident samples).

    Adam (lr 2e-4, beta1 0.5) for both players, as in the DCGAN paper; batches of 32; real
    labels smoothed to 0.9 (one-sided label smoothing, Salimans et al. 2016), which keeps D
    from becoming too sure on a small data set. The returned number: how often the `digits`
    classifier is confident (p > 0.9) about a sample of G, after the last epoch.
    """
    from . import load_model
    from .digits import digits

    torch.manual_seed(0)
    real = digits("train").x
    G, D = DigitsGenerator(), DigitsDiscriminator()
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    classifier = load_model("digits", device="cpu")
    z_check = torch.randn(CHECK_SAMPLES, LATENT_DIM, generator=torch.Generator().manual_seed(1))
    G.train()
    D.train()
    for epoch in tqdm(range(EPOCHS), desc="digits-gan", disable=not progress):
        order = torch.randperm(len(real))
        sums = {"D loss": 0.0, "G loss": 0.0, "D(real)": 0.0, "D(G(z))": 0.0}
        batches = 0
        for start in range(0, len(real), BATCH_SIZE):
            x = real[order[start:start + BATCH_SIZE]]
            fake = G(torch.randn(len(x), LATENT_DIM))
            # D: real digits -> 0.9, generated ones -> 0
            d_real, d_fake = D(x), D(fake.detach())
            loss_D = (bce(d_real, torch.full_like(d_real, 0.9))
                      + bce(d_fake, torch.zeros_like(d_fake)))
            opt_D.zero_grad()
            loss_D.backward()
            opt_D.step()
            # G: make D call its digits real
            d_fake = D(fake)
            loss_G = bce(d_fake, torch.ones_like(d_fake))
            opt_G.zero_grad()
            loss_G.backward()
            opt_G.step()
            batches += 1
            sums["D loss"] += loss_D.item()
            sums["G loss"] += loss_G.item()
            sums["D(real)"] += torch.sigmoid(d_real).mean().item()
            sums["D(G(z))"] += torch.sigmoid(d_fake).mean().item()
        confident, counts = _check_generator(G, classifier, z_check)
        means = ", ".join(f"{k} {v / batches:.3f}" for k, v in sums.items())
        print(f"epoch {epoch + 1:3d}: {means}; {CHECK_SAMPLES} samples, the digits classifier is "
              f"confident on {confident:.1%}, per class {counts}")
    G.eval()
    confident, counts = _check_generator(G, classifier, z_check)
    print(f"digits-gan: the digits classifier is confident (p > {CONFIDENT}) on {confident:.1%} "
          f"of {CHECK_SAMPLES} samples; confident samples per class {counts}")
    return G, confident


MODELS = [
    ModelSpec(
        name="digits-gan", build=DigitsGenerator, dataset="digits", train=train_digits_gan,
        generator=True,
        description="A DCGAN generator: a code z of 32 numbers -> a 32x32 digit in [0, 1] "
                    "(the learned prior of chapter 06).",
    ),
]

DATASETS: dict = {}
