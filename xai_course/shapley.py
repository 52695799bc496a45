"""Chapter 08: Shapley values. Share a prediction fairly among the features that made it.

Treat the features of one input x as the players of a cooperative game. A coalition S of
players is an input h_S(x) that keeps the features in S and replaces the others by a
baseline b (a reference input: zeros, the mean of the data, a blurred image). The game's
value is the model's score on it,

    v(S) = f_c(h_S(x)),    h_S(x)_j = x_j if j in S else b_j,

and the Shapley value of player i is its marginal contribution, averaged over every order in
which the players could have joined (Shapley, "A Value for n-Person Games", 1953):

    phi_i = sum_{S subset of N \\ {i}}  |S|! (d - |S| - 1)! / d!  [ v(S u {i}) - v(S) ]

It is the only split with these four properties:

- efficiency:  sum_i phi_i = v(N) - v(empty) = f_c(x) - f_c(b)   (the whole difference is shared)
- symmetry:    two players that add the same to every coalition get the same value
- dummy:       a player that adds nothing to any coalition gets 0 (missingness)
- linearity:   the values of the game v + a w are phi(v) + a phi(w)

The exact value needs v on all 2^d coalitions: `exact_shapley`, for d <= 20 players. A
player need not be one number: `groups` makes a superpixel (chapter 05) or a cell of a grid
one player, so an image has ten players, not ten thousand. Beyond that, estimate:

- `sampling_shapley`: the average marginal contribution over random orders of the players
  (Castro, Gomez & Tejada 2009; Strumbelj & Kononenko 2010); d passes per order.
- `kernel_shap`: a weighted linear regression on random coalitions whose solution is the
  Shapley value (Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions",
  NeurIPS 2017).

Both estimates err about as 1 / sqrt(samples). ShapNet (Wang, Wang & Inouye, "Shapley
Explanation Networks", ICLR 2021) turns the problem around: build the network out of
`ShapleyModule`s, small networks on two or three features whose exact Shapley values cost
only 2^2 or 2^3 evaluations; a `ShallowShapNet` sums them, and since Shapley values add
over summed games, one forward pass gives the exact Shapley values of the whole network.

Coalitions are 0/1 (bool) rows z of d switches, z_i = 1 when player i is in S; in
`all_coalitions` row s is the coalition whose members are the bits of the integer s.

Checked (tests/test_shapley.py): the four properties on random games and a game computed by
hand; `sampling_shapley` and `kernel_shap` against Captum `ShapleyValueSampling` and
`KernelShap` given the same random draws, and `kernel_shap` against the `shap` package's
`KernelExplainer`; both converge to `exact_shapley`; a ShapNet's one-pass explanation equals
`exact_shapley` of the same network.
"""

from __future__ import annotations

import contextlib
import itertools
import math

import torch
from torch import nn
from tqdm.auto import tqdm

from .convention import (
    Option,
    check_inputs,
    check_model_and_inputs,
    check_positive_int,
    check_target,
    forward,
    options,
    reference,
    rows_per_pass,
    unchanged,
)

__all__ = [
    "MAX_EXACT_PLAYERS",
    "players",
    "coalition_inputs",
    "all_coalitions",
    "shapley_weights",
    "shapley_from_values",
    "player_values",
    "exact_shapley",
    "sample_permutations",
    "sampling_shapley",
    "coalition_size_probabilities",
    "sample_coalitions",
    "shapley_regression",
    "kernel_shap",
    "ShapleyModule",
    "ShallowShapNet",
]

MAX_EXACT_PLAYERS = 20  # 2^20 = 1,048,576 coalitions


# --------------------------------------------------------------------------- the game
def players(inputs: torch.Tensor, groups=None) -> tuple[torch.Tensor, int]:
    """The players of the game: (groups with as many dimensions as `inputs`, d).

    groups: None (every element of an input is its own player, numbered in order), or an
    integer tensor of player ids 0..d-1, one per input element, broadcastable to the inputs
    as Captum's `feature_mask`: (H, W) superpixels for images (N, C, H, W) (all channels of a
    pixel play together), (N, 1, H, W) for one segmentation per image, (D,) for a table whose
    features play in groups. An id that no element has is a player that changes nothing
    (its value is 0).
    """
    example_shape = tuple(inputs.shape[1:])
    if groups is None:
        ids = torch.arange(math.prod(example_shape), device=inputs.device)
        return ids.view(1, *example_shape), ids.numel()
    if not isinstance(groups, torch.Tensor) or groups.is_floating_point() or (
            groups.dtype == torch.bool):
        raise TypeError(f"groups must be an integer tensor of player ids 0..d-1, one per input "
                        f"element (e.g. superpixels from surrogates.superpixels), got "
                        f"{groups.dtype if isinstance(groups, torch.Tensor) else type(groups)}")
    shape = (1,) * (inputs.ndim - groups.ndim) + tuple(groups.shape)
    fits = groups.ndim <= inputs.ndim and all(
        g in (1, n) for g, n in zip(shape, inputs.shape))
    if not fits or groups.numel() == 0:
        raise ValueError(f"groups of shape {tuple(groups.shape)} do not fit inputs of shape "
                         f"{tuple(inputs.shape)}: give one id per element of an input, "
                         f"broadcastable to it, e.g. {example_shape[-2:]} for images or "
                         f"{(inputs.shape[0], *example_shape)} for one grouping per example")
    groups = groups.reshape(shape).to(device=inputs.device, dtype=torch.long)
    if groups.min() < 0:
        raise ValueError(f"groups must hold player ids >= 0, got {int(groups.min())}")
    return groups, int(groups.max()) + 1


def coalition_inputs(x: torch.Tensor, baseline: torch.Tensor, groups: torch.Tensor,
                     z: torch.Tensor) -> torch.Tensor:
    """h(z): one input per coalition, each element from x where its player is in the
    coalition and from the baseline where it is not.

    x, baseline: one input (...); groups: its player ids (broadcastable to x); z: (S, d)
    bool coalitions. Returns (S, ...).
    """
    return torch.where(z[:, groups], x, baseline)


def player_values(attribution: torch.Tensor, groups=None) -> torch.Tensor:
    """Read the players' values (N, d) back from an attribution shaped like the inputs."""
    groups, d = players(attribution, groups)
    flat = groups.expand_as(attribution).flatten(1)
    elements = attribution.flatten(1).double()
    values = torch.zeros(attribution.shape[0], d, dtype=torch.float64,
                         device=attribution.device)
    counts = torch.zeros_like(values)
    values.scatter_add_(1, flat, elements)
    counts.scatter_add_(1, flat, torch.ones_like(elements))
    return (values / counts.clamp(min=1)).to(attribution.dtype)


# --------------------------------------------------------------------------- exact
def all_coalitions(d: int, device=None) -> torch.Tensor:
    """All 2^d coalitions (2^d, d) bool: row s holds the bits of s (player i in S iff bit i)."""
    s = torch.arange(2 ** d, device=device)
    return (s[:, None] >> torch.arange(d, device=device)) & 1 == 1


def shapley_weights(d: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """w(s) = s! (d - s - 1)! / d!, s = 0..d-1: the weight of a coalition of size s in phi_i,
    the chance that exactly those s players come before i in a random order."""
    return torch.tensor([math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d)
                         for s in range(d)], dtype=dtype, device=device)


def shapley_from_values(v: torch.Tensor) -> torch.Tensor:
    """The Shapley values from the game's value on every coalition.

        phi_i = sum_{S not containing i} w(|S|) [ v(S u {i}) - v(S) ]

    v: (2^d, ...) with v[s] the value of the coalition of `all_coalitions` row s (the bits
    of s); extra dimensions (a batch, several outputs) are games played side by side.
    Returns (d, ...).
    """
    d = round(math.log2(v.shape[0]))
    if 2 ** d != v.shape[0]:
        raise ValueError(f"v must hold one value per coalition, 2^d rows; got {v.shape[0]}")
    s = torch.arange(2 ** d, device=v.device)
    size = all_coalitions(d, v.device).sum(dim=1)  # |S|
    w = shapley_weights(d, v.dtype, v.device)
    phi = []
    for i in range(d):
        without_i = s[(s >> i) & 1 == 0]  # the coalitions S that do not contain i ...
        with_i = without_i | (1 << i)  # ... and S u {i}
        weight = w[size[without_i]].view(-1, *[1] * (v.ndim - 1))
        phi.append((weight * (v[with_i] - v[without_i])).sum(dim=0))
    return torch.stack(phi)


@reference("captum_shapley_values", "Captum ShapleyValues")
def exact_shapley(f, x: torch.Tensor, baseline=0.0, target=None, groups=None,
                  batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
    """The exact Shapley values of each input of x, from all 2^d coalitions (shaped like x).

        phi_i = sum_{S subset of N \\ {i}} |S|! (d - |S| - 1)! / d! [ v(S u {i}) - v(S) ],
        v(S) = f_c(h_S(x))

    Shapley, "A Value for n-Person Games", Contributions to the Theory of Games II, 1953.

    f: a model (nn.Module; target picks the class, as in every method of the course) or any
    function of a batch (B, ...) -> (B,) values (target None) or (B, outputs). x: (N, ...)
    inputs, one game each. baseline: what an absent feature becomes (a number or a tensor
    broadcastable to x). groups: which elements play together (`players`); at most
    MAX_EXACT_PLAYERS = 20 players. batch_size: coalitions per pass of f (None:
    `convention.rows_per_pass` without gradients). Each element of the result holds the
    value of its player (`player_values` reads them back).

    Cost: 2^d evaluations of f per input, in batches. Checked: the four properties to float
    precision, a game computed by hand, and Captum `ShapleyValues` (all d! orders).
    """
    x = _check_model_or_function(f, x)
    how = "from groups" if groups is not None else (
        "one per element of an input: group them with groups=, e.g. superpixels")
    groups, d = players(x, groups)
    if d > MAX_EXACT_PLAYERS:
        raise ValueError(f"exact_shapley evaluates all 2^d coalitions and takes at most "
                         f"{MAX_EXACT_PLAYERS} players (2^{MAX_EXACT_PLAYERS} = "
                         f"{2 ** MAX_EXACT_PLAYERS:,} evaluations); got d = {d} players "
                         f"({how}); or estimate with sampling_shapley or kernel_shap")
    b = _baseline(x, baseline)
    z = all_coalitions(d, x.device)
    batch_size = check_positive_int(batch_size, "batch_size", allow_none=True) or (
        rows_per_pass(x, rows=len(z), backward=False))
    attributions = []
    keep = unchanged(f) if isinstance(f, nn.Module) else contextlib.nullcontext()
    with keep, torch.no_grad():
        targets = _targets(f, x, target)
        for n in range(x.shape[0]):
            g = _group(groups, n)
            v = _values(_scorer(f, targets[n]), x[n], b[n], g, z, batch_size, progress,
                        "exact shapley")
            attributions.append(_paint(shapley_from_values(v), g, x[n]))
    return torch.stack(attributions)


# --------------------------------------------------------------------------- permutations
def sample_permutations(samples: int, d: int,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """(samples, d) random orders of the d players: row p is the order pi_p in which they
    join (`torch.randperm`, one order after the other, as Captum draws them). On the
    generator's device."""
    device = generator.device if generator is not None else None
    return torch.stack([torch.randperm(d, generator=generator, device=device)
                        for _ in range(samples)])


@reference("captum_shapley_value_sampling", "Captum ShapleyValueSampling")
@options(
    Option("samples", "int", 25, "random orders of the players (each costs d passes)",
           low=1, high=1000, log=True),
    Option("baseline", "float", 0.0, "what an absent feature becomes", low=-1.0, high=1.0),
)
def sampling_shapley(model: nn.Module, inputs: torch.Tensor, target, baseline=0.0,
                     samples: int = 25, groups=None, generator: torch.Generator | None = None,
                     batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
    """Shapley values estimated on random orders of the players (shaped like inputs).

        phi_i ~ (1/M) sum_{p=1..M} [ v(Pre_i(pi_p) u {i}) - v(Pre_i(pi_p)) ]

    Pre_i(pi) is the set of players that come before i in the order pi. Over all d! orders
    this average is the Shapley value exactly; M random orders give an unbiased estimate
    whose error falls as 1 / sqrt(M). One order costs d evaluations: adding its players one
    by one gives every player's contribution, v(first k) - v(first k - 1).

    Castro, Gomez & Tejada, "Polynomial calculation of the Shapley value based on
    sampling", Computers & Operations Research 2009; Strumbelj & Kononenko, "An Efficient
    Explanation of Individual Classifications using Game Theory", JMLR 2010.

    samples: M, the number of orders (Captum's n_samples), drawn once and shared by every
    input of the batch (`sample_permutations` with `generator`). baseline, groups,
    batch_size: as `exact_shapley`. Cost: 1 + M d forward passes per input, in batches.
    Checked against Captum `ShapleyValueSampling` on the same orders (its `torch.randperm`
    draws from the same random state).
    """
    inputs = check_model_and_inputs(model, inputs)
    check_positive_int(samples, "samples")
    groups, d = players(inputs, groups)
    b = _baseline(inputs, baseline)
    batch_size = check_positive_int(batch_size, "batch_size", allow_none=True) or (
        rows_per_pass(inputs, rows=1 + samples * d, backward=False))

    pi = sample_permutations(samples, d, generator).to(inputs.device)
    position = pi.argsort(dim=1)  # position[p, i]: how many players come before i in pi_p
    steps = torch.arange(d + 1, device=inputs.device)
    z = position[:, None, :] < steps[None, :, None]  # z[p, k]: the first k players of pi_p
    attributions = []
    with unchanged(model), torch.no_grad():
        targets = _targets(model, inputs, target)
        for n in range(inputs.shape[0]):
            g, score = _group(groups, n), _scorer(model, targets[n])
            v_empty = _values(score, inputs[n], b[n], g, z[:1, 0], 1, False, "")
            v_steps = _values(score, inputs[n], b[n], g, z[:, 1:].reshape(-1, d), batch_size,
                              progress, "sampling shapley").view(samples, d)
            v = torch.cat([v_empty.view(1, 1).expand(samples, 1), v_steps], dim=1)  # v[p, k]
            contributions = v.gather(1, position + 1) - v.gather(1, position)  # (M, d)
            attributions.append(_paint(contributions.mean(dim=0), g, inputs[n]))
    return torch.stack(attributions)


# --------------------------------------------------------------------------- KernelSHAP
def coalition_size_probabilities(d: int, device=None) -> torch.Tensor:
    """p(k) proportional to (d - 1) / (k (d - k)), k = 1..d-1 (returned for k = 1..d-1).

    The Shapley kernel pi(z) = (d - 1) / (C(d, |z|) |z| (d - |z|)) summed over the C(d, k)
    coalitions of size k: drawing a size from p and then a coalition of that size uniformly
    draws coalitions in proportion to the kernel. Sizes near 1 and d-1 are the likeliest.
    """
    k = torch.arange(1, d, dtype=torch.float64, device=device)
    p = (d - 1) / (k * (d - k))
    return p / p.sum()


def sample_coalitions(count: int, d: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """(count, d) bool coalitions drawn in proportion to the Shapley kernel: a size k from
    `coalition_size_probabilities`, then k players chosen uniformly (the k with the smallest
    of d uniform random numbers). On the generator's device."""
    device = generator.device if generator is not None else None
    p = coalition_size_probabilities(d, device)
    size = torch.multinomial(p, count, replacement=True, generator=generator) + 1
    u = torch.rand(count, d, generator=generator, device=device)
    rank = u.argsort(dim=1).argsort(dim=1)  # rank[s, i]: how many players drew less than i
    return rank < size[:, None]


def shapley_regression(z: torch.Tensor, v: torch.Tensor, v_all, v_none) -> torch.Tensor:
    """KernelSHAP's fit: the phi (d,) that solves

        min_phi  sum_s ( v_s - v_none - z_s . phi )^2   subject to   sum_i phi_i = v_all - v_none

    z: (S, d) coalitions drawn in proportion to the Shapley kernel (so each row weighs 1);
    v: (S,) their values; v_all = v(N), v_none = v(empty). The empty and the full coalition
    have infinite kernel weight: they are constraints, phi_0 = v(empty) and
    phi_0 + sum phi = v(N) (local accuracy). With a Lagrange multiplier lambda the optimum
    solves one linear system, the KKT system

        [ Z^T Z   1 ] [ phi    ]   [ Z^T (v - v_none) ]
        [ 1^T     0 ] [ lambda ] = [ v_all - v_none   ]

    solved by least squares (the smallest phi when the samples leave it undetermined).
    """
    z, y = z.double(), (v - v_none).double()
    d = z.shape[1]
    ones = torch.ones(d, 1, dtype=z.dtype, device=z.device)
    kkt = torch.cat([torch.cat([z.T @ z, ones], dim=1),
                     torch.cat([ones.T, torch.zeros(1, 1, dtype=z.dtype, device=z.device)],
                               dim=1)])
    rhs = torch.cat([z.T @ y, (v_all - v_none).double().reshape(1)])
    return (torch.linalg.pinv(kkt, hermitian=True) @ rhs)[:d]


@reference("captum_kernel_shap", "Captum KernelShap")
@options(
    Option("samples", "int", 1000, "coalitions evaluated (the full and empty ones included)",
           low=10, high=10000, log=True),
    Option("baseline", "float", 0.0, "what an absent feature becomes", low=-1.0, high=1.0),
)
def kernel_shap(model: nn.Module, inputs: torch.Tensor, target, baseline=0.0,
                samples: int = 1000, groups=None, generator: torch.Generator | None = None,
                batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
    """KernelSHAP: Shapley values as the solution of a weighted linear regression (shaped
    like inputs).

        phi = argmin_phi sum_z pi(z) ( v(z) - phi_0 - z . phi )^2,
        pi(z) = (d - 1) / ( C(d, |z|) |z| (d - |z|) )

    With this kernel, and the empty and full coalitions weighted infinitely, the solution
    over all 2^d coalitions is exactly the Shapley value (Lundberg & Lee, "A Unified
    Approach to Interpreting Model Predictions", NeurIPS 2017, Theorem 2). LIME's recipe
    (chapter 05) with a kernel chosen by the axioms instead of by hand.

    samples: evaluations per input, the full and empty coalitions included (Captum's
    n_samples); the other samples - 2 are drawn in proportion to the kernel, a fresh draw
    for each input (`sample_coalitions` with `generator`), so each weighs 1 in the fit
    (`shapley_regression`, which keeps the two infinite weights as exact constraints).
    baseline, groups, batch_size: as `exact_shapley`. Cost: `samples` forward passes per
    input, in batches. Checked against Captum `KernelShap` on the same coalitions, and the
    `shap` package's `KernelExplainer` within sampling error.
    """
    inputs = check_model_and_inputs(model, inputs)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 3:
        raise ValueError(f"samples must be an int >= 3 (the full and the empty coalition and "
                         f"at least one drawn), got {samples!r}")
    groups, d = players(inputs, groups)
    if d < 2:
        raise ValueError(f"kernel_shap needs at least 2 players, got {d}: with one player "
                         f"its value is f(x) - f(baseline)")
    b = _baseline(inputs, baseline)
    batch_size = check_positive_int(batch_size, "batch_size", allow_none=True) or (
        rows_per_pass(inputs, rows=samples, backward=False))
    full_and_empty = torch.tensor([[True] * d, [False] * d], device=inputs.device)
    attributions = []
    with unchanged(model), torch.no_grad():
        targets = _targets(model, inputs, target)
        for n in range(inputs.shape[0]):
            g = _group(groups, n)
            z = torch.cat([full_and_empty,
                           sample_coalitions(samples - 2, d, generator).to(inputs.device)])
            v = _values(_scorer(model, targets[n]), inputs[n], b[n], g, z, batch_size,
                        progress, "kernel shap")
            phi = shapley_regression(z[2:], v[2:], v_all=v[0], v_none=v[1])
            attributions.append(_paint(phi, g, inputs[n]))
    return torch.stack(attributions)


# --------------------------------------------------------------------------- ShapNet
class ShapleyModule(nn.Module):
    """A small network over m features whose outputs are their exact Shapley values.

    Inside, an ordinary network f: R^m -> R^out (Linear, ReLU, Linear). The module runs f
    on all 2^m coalition inputs x_S (x where S is, the reference r elsewhere) in one
    batched pass and combines them with `shapley_from_values`:

        phi_i(x) = sum_{S not containing i} |S|! (m - |S| - 1)! / m! [ f(x_{S u i}) - f(x_S) ]

    It returns (phi (B, m, out), f(r) (B, out)); by efficiency f(r) + sum_i phi_i = f(x).
    With m = 2 that is 4 evaluations of a tiny f: exact values are cheap when the game is
    small. Wang, Wang & Inouye, "Shapley Explanation Networks", ICLR 2021, section 3.
    """

    def __init__(self, features: int = 2, out: int = 1, hidden: int = 16):
        super().__init__()
        self.features = features
        self.f = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, x: torch.Tensor, reference: torch.Tensor):
        """x: (B, m) features; reference: (m,) their reference values r."""
        z = all_coalitions(self.features, x.device)  # (2^m, m)
        x_s = torch.where(z, x[:, None, :], reference)  # (B, 2^m, m): every coalition input
        v = self.f(x_s)  # (B, 2^m, out); v[:, 0] = f(r), the empty coalition
        phi = shapley_from_values(v.transpose(0, 1)).transpose(0, 1)  # (B, m, out)
        return phi, v[:, 0]


class ShallowShapNet(nn.Module):
    """A sum of Shapley modules, one per subset of the features (default: every pair):

        g(x) = sum_k f_k(x_{M_k}),   phi_i(g) = sum_{k: i in M_k} phi_i(f_k)

    A feature outside M_k changes nothing in f_k (a dummy of that game, value 0), and
    Shapley values add over summed games (linearity): so the modules' values, summed per
    feature, are the exact Shapley values of g, with the reference r as baseline, from one
    forward pass. `explain(x)` returns them (B, d, classes) with g(r) (B, classes);
    `forward(x)` returns g(x) = g(r) + sum_i phi_i, the logits, so the network is also an
    ordinary classifier for every other method of the course.

    Wang, Wang & Inouye, "Shapley Explanation Networks", ICLR 2021 (Shallow ShapNet).
    features: d; classes: outputs; hidden: width of each module's network; subsets: the
    modules' features M_k (tuples of feature indices); reference: r (d,), zeros by default.
    """

    def __init__(self, features: int, classes: int, hidden: int = 16, subsets=None,
                 reference: torch.Tensor | None = None):
        super().__init__()
        check_positive_int(features, "features")
        if subsets is None:
            subsets = list(itertools.combinations(range(features), 2)) or [(0,)]
        self.subsets = [tuple(int(i) for i in s) for s in subsets]
        for s in self.subsets:
            if not s or len(set(s)) != len(s) or min(s) < 0 or max(s) >= features:
                raise ValueError(f"each subset must hold distinct feature indices in "
                                 f"0..{features - 1}, got {s}")
        self.classes = classes
        self.shapley_modules = nn.ModuleList(ShapleyModule(len(s), classes, hidden)
                                             for s in self.subsets)
        self.register_buffer("reference", torch.zeros(features) if reference is None
                             else torch.as_tensor(reference, dtype=torch.float32).clone())

    def explain(self, x: torch.Tensor):
        """(phi (B, d, classes), g(r) (B, classes)): the exact Shapley values, one pass."""
        phi = torch.zeros(x.shape[0], x.shape[1], self.classes, dtype=x.dtype, device=x.device)
        bias = torch.zeros(x.shape[0], self.classes, dtype=x.dtype, device=x.device)
        for s, module in zip(self.subsets, self.shapley_modules):
            index = torch.tensor(s, device=x.device)
            phi_s, bias_s = module(x[:, index], self.reference[index])
            phi = phi.index_add(1, index, phi_s)  # each module's values to its own features
            bias = bias + bias_s
        return phi, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phi, bias = self.explain(x)
        return bias + phi.sum(dim=1)


# --------------------------------------------------------------------------- bookkeeping
def _values(score, x, baseline, groups, z, batch_size: int, progress: bool, desc: str):
    """v(z) = score(h(z)) for every coalition z (S, d): (S,) float64, batch_size a pass."""
    values = []
    for start in tqdm(range(0, len(z), batch_size), desc=desc, disable=not progress,
                      leave=False):
        batch = coalition_inputs(x, baseline, groups, z[start:start + batch_size])
        values.append(score(batch).double())
    return torch.cat(values)


def _scorer(f, target):
    """The game's payoff on a batch: f(batch)[:, target], or f(batch) when target is None."""
    def score(batch):
        out = forward(f, batch) if isinstance(f, nn.Module) else f(batch)
        return out if target is None else out[:, target]
    return score


def _targets(f, inputs: torch.Tensor, target) -> list:
    """One target (a class index, or None) per example, checked on one pass of f."""
    out = forward(f, inputs[:1]) if isinstance(f, nn.Module) else f(inputs[:1])
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"f must return a tensor, got {type(out).__name__}")
    if target is None:
        if out.shape != (1,):
            raise ValueError(f"f returns shape {tuple(out.shape)} for one input: pass target= "
                             f"(the output to explain), or let f return one value per row")
        return [None] * inputs.shape[0]
    if out.ndim != 2:
        raise ValueError(f"with a target, f must return (N, outputs) scores, got shape "
                         f"{tuple(out.shape)}")
    return check_target(target, inputs.shape[0], out.shape[1], inputs.device).tolist()


def _baseline(inputs: torch.Tensor, baseline) -> torch.Tensor:
    """The baseline as a tensor of the inputs' shape (a number, or broadcastable)."""
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, torch.Tensor)):
        raise TypeError(f"baseline must be a number or a tensor broadcastable to the inputs, "
                        f"got {type(baseline).__name__}")
    b = torch.as_tensor(baseline, dtype=inputs.dtype, device=inputs.device)
    try:
        b = b.expand_as(inputs)
    except RuntimeError as error:
        raise ValueError(f"baseline of shape {tuple(b.shape)} does not broadcast to the inputs "
                         f"{tuple(inputs.shape)}") from error
    if not torch.isfinite(b).all():
        raise ValueError("baseline contains NaN or infinite values")
    return b


def _check_model_or_function(f, x: torch.Tensor) -> torch.Tensor:
    if isinstance(f, nn.Module):
        return check_model_and_inputs(f, x)
    if not callable(f):
        raise TypeError(f"f must be an nn.Module or a function of a batch, got "
                        f"{type(f).__name__}")
    return check_inputs(x, name="x")


def _group(groups: torch.Tensor, n: int) -> torch.Tensor:
    """Example n's player ids (the shared ones when groups hold one grouping for all)."""
    return groups[0 if groups.shape[0] == 1 else n]


def _paint(phi: torch.Tensor, groups: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Each input element gets its player's value, as Captum paints a feature group."""
    return phi[groups].expand_as(x).to(x.dtype)
