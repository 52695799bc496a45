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
A `DeepShapNet` stacks layers of modules (`butterfly_wiring`: pairs at strides 1, 2, 4, ...),
each layer's Shapley representation the next one's input: explanations layer by layer, with
local accuracy and missingness but no longer the exact values; `DeepConvShapNet` does the
same on patches of an image. Since the explanation comes out of the forward pass, training
can penalise it (`explanation_l1`), and a module whose inputs are all at the reference can
be skipped (per-instance pruning, `explain(x, prune=0.0)`).

Coalitions are 0/1 (bool) rows z of d switches, z_i = 1 when player i is in S; in
`all_coalitions` row s is the coalition whose members are the bits of the integer s.

Checked (tests/test_shapley.py): the four properties on random games and a game computed by
hand; `sampling_shapley` and `kernel_shap` against Captum `ShapleyValueSampling` and
`KernelShap` given the same random draws, and `kernel_shap` against the `shap` package's
`KernelExplainer`; both converge to `exact_shapley`; a shallow ShapNet's one-pass explanation
equals `exact_shapley` of the same network (random ones and the shipped
`breast-cancer-shapnet`), and so does a one-layer deep or convolutional one; deep ShapNets
keep local accuracy and missingness in every layer; pruning skips modules and keeps the
output; the regulariser makes explanations sparser.
"""

from __future__ import annotations

import contextlib
import itertools
import math

import torch
import torch.nn.functional as F
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
    "butterfly_wiring",
    "reach",
    "DeepShapNet",
    "DeepConvShapNet",
    "smallest_dropped",
    "explanation_l1",
    "explanation_sparsity",
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
    # the values as a 2 x 2 x ... x 2 table, one axis per player: table[b_{d-1}, ..., b_0] =
    # v[s] for s with bits b; player i's marginal contributions are differences along its axis
    table = v.reshape((2,) * d + tuple(v.shape[1:]))
    size = all_coalitions(d, v.device).sum(dim=1).view((2,) * d)  # |S|
    w = shapley_weights(d, v.dtype, v.device)
    phi = []
    for i in range(d):
        axis = d - 1 - i  # bit i of s
        marginal = table.select(axis, 1) - table.select(axis, 0)  # v(S u {i}) - v(S), S not i
        size_without_i = size.select(axis, 0)  # |S| of each S without i
        weight = w[size_without_i].view(size_without_i.shape + (1,) * (v.ndim - 1))
        terms = weight * marginal  # one per coalition S without i
        phi.append(terms.sum(dim=tuple(range(d - 1))) if d > 1 else terms)
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

    Inside, an ordinary network f: R^(m c) -> R^out (Linear, ReLU, Linear). The module runs
    f on all 2^m coalition inputs x_S (x where S is, the reference r elsewhere) in one
    batched pass and combines them with `shapley_from_values`:

        phi_i(x) = sum_{S not containing i} |S|! (m - |S| - 1)! / m! [ f(x_{S u i}) - f(x_S) ]

    It returns (phi (B, m, out), f(r) (B, out)); by efficiency f(r) + sum_i phi_i = f(x).
    With m = 2 that is 4 evaluations of a tiny f: exact values are cheap when the game is
    small. A feature may be a vector of c channels (a layer of a `DeepShapNet` hands on c
    numbers per feature): its channels come and go together, as one player.
    Wang, Wang & Inouye, "Shapley Explanation Networks", ICLR 2021, section 3.
    """

    def __init__(self, features: int = 2, out: int = 1, hidden: int = 16, channels: int = 1):
        super().__init__()
        self.features, self.channels = features, channels
        self.f = nn.Sequential(nn.Linear(features * channels, hidden), nn.ReLU(),
                               nn.Linear(hidden, out))

    def forward(self, x: torch.Tensor, reference: torch.Tensor):
        """x: (B, m) features, or (B, m, c) features of c channels; reference: their
        reference values r, (m,) or (m, c)."""
        z = all_coalitions(self.features, x.device)  # (2^m, m)
        if x.ndim == 2:  # one channel per feature
            x, reference = x[:, :, None], reference[:, None]
        x_s = torch.where(z[:, None, :, None], x, reference)  # (2^m, B, m, c): every x_S
        v = self.f(x_s.flatten(2))  # (2^m, B, out); v[0] = f(r), the empty coalition
        phi = shapley_from_values(v).transpose(0, 1)  # (B, m, out)
        return phi, v[0]


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


def butterfly_wiring(features: int, layers: int | None = None) -> list[list[tuple[int, ...]]]:
    """Which features each layer of a `DeepShapNet` pairs: layer l pairs feature j with
    j + 2^l (j with bit l clear), as the butterfly of the fast Fourier transform does.

    After layer l the representation of feature j depends on every feature that differs from
    j only in bits 0..l, so after L = log2 d layers every feature reaches every other, when
    d is a power of two. Otherwise a feature whose partner j + 2^l does not exist is a
    module of its own, (j,), some routes would pass through missing features, and the
    strides start again at 1 after layer ceil(log2 d) - 1: by default as many layers as it
    takes for every feature to reach every other (`reach`; at most 2 ceil(log2 d): any
    feature reaches feature 0 in one cycle, and 0 reaches any feature in the next).
    Returns one list of modules (tuples of feature indices) per layer; every feature is in
    exactly one module of each layer.
    """
    check_positive_int(features, "features")
    cycle = max(1, math.ceil(math.log2(features)))

    def wiring(layers):
        return [[(j, j + 2 ** (l % cycle)) if j + 2 ** (l % cycle) < features else (j,)
                 for j in range(features) if not j & 2 ** (l % cycle)] for l in range(layers)]

    if layers is not None:
        return wiring(check_positive_int(layers, "layers"))
    layers = cycle
    while not reach(wiring(layers), features).all():
        layers += 1
    return wiring(layers)


def reach(wiring: list[list[tuple[int, ...]]], features: int) -> torch.Tensor:
    """(d, d) bool: reach[j, i] when the last representation of feature j can depend on
    input feature i, following the modules of `wiring` layer by layer (a module mixes what
    its features have reached)."""
    reached = torch.eye(features, dtype=torch.bool)
    for modules in wiring:
        for s in modules:
            reached[list(s)] = reached[list(s)].any(dim=0)
    return reached


class DeepShapNet(nn.Module):
    """Shapley modules stacked in layers: each layer's Shapley representation is the next
    layer's input.

        h^(0) = x,   h^(l)_i = phi_i( f^(l)_k ; h^(l-1) )  for the module k of layer l that
                     holds feature i,   g(x) = b + sum_i h^(L)_i

    Layer l is a row of disjoint Shapley modules (`butterfly_wiring`: pairs at stride 2^l),
    each reading the c channels of its two features and writing, for each of the two, its
    exact Shapley value in the module's c' outputs: the Shapley representation h^(l)
    (B, d, c'). The last layer writes one channel per class, and the output is its sum plus
    b = g(reference), the last modules' outputs at the reference. With `residual` (the
    authors' default) a layer adds its input to its output when their widths match.

    Wang, Wang & Inouye, "Shapley Explanation Networks", ICLR 2021 (Deep ShapNet; the
    butterfly wiring and the residual connection as in the authors' code).

    What holds, from one forward pass (`explain`):
    - local accuracy: sum_i h^(L)_i = g(x) - g(reference), exactly;
    - missingness: a feature at its reference gets 0 in every layer (a module gives 0 to a
      player that changes nothing, and 0 is the reference of the later layers), so it
      passes nothing on;
    - each layer is a shallow ShapNet of the layer before: its values are the exact Shapley
      values of that layer's modules.
    What does not: h^(L) is not the exact Shapley value of g as a function of x (the
    modules' games are played on representations, not on coalitions of the inputs; only
    the first layer, and so a one-layer DeepShapNet, is exact). `exact_shapley` shows the gap.

    Per-instance pruning (`explain(x, prune=0.0)`): a module whose inputs are all at their
    reference outputs 0 (missingness), so it is skipped; the output is the same.
    `skipped_modules` counts them per instance. prune = p in (0, 1) also sets to 0, before
    every layer after the first, the fraction p of each instance's features whose
    representation has the smallest L1 norm (`smallest_dropped`, the authors' pruning of
    each stage): more modules skipped, and an output that changes a little.

    features: d; classes: outputs; channels: c, the width of the hidden representations;
    hidden: width of each module's network; layers: L (default: log2 d for a power of two,
    as many as `butterfly_wiring` needs for every feature to reach every other); reference:
    the input's reference r (d,), zeros by default.
    """

    def __init__(self, features: int, classes: int, channels: int = 8, hidden: int = 16,
                 layers: int | None = None, residual: bool = True,
                 reference: torch.Tensor | None = None):
        super().__init__()
        self.wiring = butterfly_wiring(features, layers)
        self.classes, self.residual = check_positive_int(classes, "classes"), residual
        widths = [1] + [check_positive_int(channels, "channels")] * (len(self.wiring) - 1) + [
            classes]
        self.layers = nn.ModuleList(
            nn.ModuleList(ShapleyModule(len(s), widths[l + 1], hidden, channels=widths[l])
                          for s in modules) for l, modules in enumerate(self.wiring))
        self.register_buffer("reference", torch.zeros(features) if reference is None
                             else torch.as_tensor(reference, dtype=torch.float32).clone())

    def explain(self, x: torch.Tensor, layers: bool = False, prune: float | None = None):
        """(phi (B, d, classes), g(r) (B, classes)) from one pass; with `layers`, phi is the
        list of every layer's Shapley representation h^(1) .. h^(L) (the last is phi).
        prune: None (run every module), 0.0 (skip modules whose inputs are all at the
        reference: the same output) or a fraction p < 1 (also drop the fraction p of the
        features of smallest representation before each layer after the first)."""
        representations, bias, _ = self._run(x, prune)
        return (representations if layers else representations[-1]), bias

    def skipped_modules(self, x: torch.Tensor, prune: float = 0.0) -> torch.Tensor:
        """(B,) how many of the network's modules each instance skips with `prune`."""
        return self._run(x, prune)[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phi, bias = self.explain(x)
        return bias + phi.sum(dim=1)

    def _run(self, x: torch.Tensor, prune: float | None):
        """Every layer's representation, the bias and the modules skipped per instance."""
        x = check_inputs(x, ndim=2, name="x")
        if x.shape[1] != len(self.reference):
            raise ValueError(f"the network reads {len(self.reference)} features, got x of shape "
                             f"{tuple(x.shape)}")
        _check_prune(prune)
        h, r = x[:, :, None], self.reference[:, None]  # a feature of one channel, (B, d, 1)
        skipped = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        representations = []
        for l, (modules, shapley_modules) in enumerate(zip(self.wiring, self.layers)):
            if prune and l > 0:  # the smallest representations become absent
                h = h * smallest_dropped(h.abs().sum(dim=2), prune)[:, :, None]
            out = h.new_zeros(h.shape[0], h.shape[1], shapley_modules[0].f[-1].out_features)
            for s, module in zip(modules, shapley_modules):
                index = torch.tensor(s, device=x.device)
                h_s, r_s = h[:, index], r[index]
                present = (torch.ones_like(skipped, dtype=torch.bool) if prune is None
                           else (h_s != r_s).flatten(1).any(dim=1))
                rows = present.nonzero()[:, 0]
                out[rows[:, None], index] = module(h_s[rows], r_s)[0]  # 0 where skipped
                skipped += ~present
            if self.residual and out.shape == h.shape:
                out = out + h
            representations.append(out)
            h, r = out, torch.zeros_like(out[0])  # absent is 0 in every later layer
        reference_last = self.reference[:, None] if len(self.wiring) == 1 else torch.zeros(
            x.shape[1], self.layers[-1][0].channels, device=x.device)
        bias = sum(module.f(reference_last[list(s)].flatten())
                   for s, module in zip(self.wiring[-1], self.layers[-1]))
        return representations, bias.expand(x.shape[0], -1), skipped


class DeepConvShapNet(nn.Module):
    """A deep ShapNet for images: every layer runs one Shapley module on k x k patches.

    The players are the pixels (all channels of a pixel play together; with `block`, squares
    of block x block pixels, so "pixel" below means such a square). Layer l cuts its
    input (B, c, H, W) into k x k patches with dilation delta_l (`patches`: unfold, or a
    reshape when the patches tile the image),
    runs the same Shapley module over each patch's k^2 pixels (2^(k^2) coalitions, 16 for
    k = 2) and gives each pixel its values (`fold`, which adds them up where patches
    overlap): a shallow ShapNet whose modules share their weights, as a convolution shares
    its kernel. The representation keeps the image's size, c' channels per pixel; the last
    layer's c' = classes, and the output is

        g(x)_c = b_c + sum_{pixels p} h^(L)_{c, p},   b_c = g(0)_c (reference: black, 0)

    tile=True keeps only the patches that tile the image (corners whose row // delta_l and
    column // delta_l are multiples of k): each pixel is then in exactly one module of a
    layer, and with k = 2 and delta_l = 1, 2, 4, 8, 16 this is the butterfly of
    `DeepShapNet` in two dimensions (after 5 layers every pixel of a 32 x 32 image reaches
    every other), at a quarter of the cost. tile=False keeps every patch (stride 1, the
    convolution of the authors' code).

    Local accuracy and missingness hold as for `DeepShapNet` (a pixel at 0 gets 0 in every
    layer); a one-layer network is exact. Per-instance pruning skips the patches whose
    inputs are all 0 (the digits' background): `explain(x, prune=0.0)`, `skipped_modules`.

    Wang, Wang & Inouye, "Shapley Explanation Networks", ICLR 2021 (Deep ShapNet for images;
    the authors' code unfolds patches with nn.Unfold and also splits the channels as RealNVP
    does, which this plain version leaves out).

    in_channels: the image's channels; classes: outputs; channels: width of the hidden
    representations; hidden: width of each module's network; kernel: k; dilations: delta_l,
    one per layer; tile: tiling patches only (H and W multiples of k delta_l) or all; block:
    a player is a block x block square of pixels (their values in its channels), so the
    explanation has H / block x W / block values, each block's (1: every pixel a player).
    """

    def __init__(self, in_channels: int = 1, classes: int = 10, channels: int = 8,
                 hidden: int = 16, kernel: int = 2, dilations=(1, 2, 4, 8, 16),
                 tile: bool = True, residual: bool = True, block: int = 1):
        super().__init__()
        self.kernel, self.dilations = check_positive_int(kernel, "kernel"), tuple(dilations)
        self.block = check_positive_int(block, "block")
        for dilation in self.dilations:
            check_positive_int(dilation, "each dilation")
        self.classes, self.tile, self.residual = check_positive_int(classes, "classes"), tile, \
            residual
        widths = [in_channels * block ** 2] + [channels] * (len(self.dilations) - 1) + [classes]
        self.layers = nn.ModuleList(
            ShapleyModule(kernel ** 2, widths[l + 1], hidden, channels=widths[l])
            for l in range(len(self.dilations)))

    def explain(self, x: torch.Tensor, layers: bool = False, prune: float | None = None):
        """(phi (B, classes, H', W'), g(0) (B, classes)) from one pass, one value per player
        (H' = H / block); with `layers`, phi is the list of every layer's representation
        (B, c_l, H', W'). prune: as `DeepShapNet`."""
        representations, bias, _ = self._run(x, prune)
        return (representations if layers else representations[-1]), bias

    def skipped_modules(self, x: torch.Tensor, prune: float = 0.0) -> torch.Tensor:
        """(B,) how many patch modules (over all layers) each image skips with `prune`."""
        return self._run(x, prune)[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phi, bias = self.explain(x)
        return bias + phi.sum(dim=(2, 3))

    def patches(self, h: torch.Tensor, dilation: int) -> torch.Tensor:
        """(B P, k^2, c): the k x k patches of a layer with this dilation, pixels row by row.

        tile: a reshape, no copy of overlapping pixels: a side of H pixels is read as
        (H / (k delta), k, delta), pixel (k a + i) delta + r, so patch (a, r) holds the k
        pixels i = 0..k-1, delta apart. Otherwise `unfold` at stride 1."""
        (b, c, height, width), k = h.shape, self.kernel
        if not self.tile:
            x = F.unfold(h, k, dilation=dilation)  # (B, c k^2, P)
            return x.view(b, c, k * k, -1).permute(0, 3, 2, 1).reshape(-1, k * k, c)
        if height % (k * dilation) or width % (k * dilation):
            raise ValueError(f"tile=True needs images whose sides are multiples of kernel x "
                             f"dilation = {k * dilation}, got {height} x {width}; use tile=False "
                             f"or other dilations")
        x = h.reshape(b, c, height // (k * dilation), k, dilation, width // (k * dilation), k,
                      dilation)  # (B, c, a, i, r, a', i', r')
        return x.permute(0, 2, 4, 5, 7, 3, 6, 1).reshape(-1, k * k, c)

    def pixels(self, phi: torch.Tensor, shape, dilation: int) -> torch.Tensor:
        """(B, c', H, W): each pixel's values from the patches (B P, k^2, c') that hold it,
        added up where patches overlap (`fold`); the inverse of `patches` when they tile."""
        (b, _, height, width), k, out = shape, self.kernel, phi.shape[-1]
        if not self.tile:
            phi = phi.view(b, -1, k * k, out).permute(0, 3, 2, 1).reshape(b, out * k * k, -1)
            return F.fold(phi, (height, width), k, dilation=dilation)
        x = phi.view(b, height // (k * dilation), dilation, width // (k * dilation), dilation,
                     k, k, out)  # (B, a, r, a', r', i, i', c')
        return x.permute(0, 7, 1, 5, 2, 3, 6, 4).reshape(b, out, height, width)

    def _layer(self, module: ShapleyModule, h: torch.Tensor, dilation: int,
               prune: float | None):
        """One layer: the module on its patches, the values handed back to the pixels."""
        x = self.patches(h, dilation)  # (B P, k^2, c)
        p = len(x) // h.shape[0]  # patches per image
        if prune is None:
            phi = module(x, torch.zeros_like(x[0]))[0]
            return self.pixels(phi, h.shape, dilation), p, 0
        present = (x != 0).flatten(1).any(dim=1)
        rows = present.nonzero()[:, 0]
        phi = x.new_zeros(len(x), x.shape[1], module.f[-1].out_features)
        phi[rows] = module(x[rows], torch.zeros_like(x[0]))[0]  # 0 where skipped
        return self.pixels(phi, h.shape, dilation), p, (~present).view(-1, p).sum(dim=1)

    def _run(self, x: torch.Tensor, prune: float | None):
        x = check_inputs(x, ndim=4, name="x")
        channels = self.layers[0].channels // self.block ** 2
        if x.shape[1] != channels or x.shape[2] % self.block or x.shape[3] % self.block:
            raise ValueError(f"the network reads images of {channels} channels whose sides "
                             f"are multiples of block = {self.block}, got x of shape "
                             f"{tuple(x.shape)}")
        _check_prune(prune)
        h = F.pixel_unshuffle(x, self.block)  # a player: block x block pixels, as channels
        skipped = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        representations = []
        for l, (module, dilation) in enumerate(zip(self.layers, self.dilations)):
            if prune and l > 0:  # the smallest representations become absent
                norms = h.abs().sum(dim=1)  # (B, H', W')
                h = h * smallest_dropped(norms.flatten(1), prune).view_as(norms)[:, None]
            out, patches, skipped_here = self._layer(module, h, dilation, prune)
            if self.residual and out.shape == h.shape:
                out = out + h
            representations.append(out)
            skipped += skipped_here
            h = out
        last = self.layers[-1]  # b = (number of patches) f(0): every last module at 0
        bias = patches * last.f(torch.zeros(last.features * last.channels, device=x.device))
        return representations, bias.expand(x.shape[0], -1), skipped


def smallest_dropped(norms: torch.Tensor, fraction: float) -> torch.Tensor:
    """(B, n) bool: which features stay when the `fraction` of each instance's n features
    with the smallest norms is pruned (ties with the largest pruned norm go too)."""
    k = int(fraction * norms.shape[1])
    if k == 0:
        return torch.ones_like(norms, dtype=torch.bool)
    return norms > norms.kthvalue(k, dim=1, keepdim=True).values


def _check_prune(prune) -> None:
    if prune is not None and (isinstance(prune, bool) or not isinstance(prune, (int, float))
                              or not 0 <= prune < 1):
        raise ValueError(f"prune must be None, 0.0 (skip modules whose inputs are all at the "
                         f"reference) or a fraction in [0, 1) of the features to drop, got "
                         f"{prune!r}")


def explanation_l1(phi: torch.Tensor) -> torch.Tensor:
    """The explanation regulariser: the L1 norm of a Shapley representation, averaged over
    the instances,

        R(phi) = (1/B) sum_b sum_{i, c} |phi_{b, i, c}|,    loss = CE(g(x), y) + lambda R(phi)

    Trained with it, a ShapNet explains its predictions with fewer features: a penalty on
    the explanation itself, possible because a ShapNet computes its explanation in the
    forward pass, where gradients reach it (Wang, Wang & Inouye, ICLR 2021, explanation
    regularisation). phi: (B, ...) any representation (`explain(x)` or one of its layers).
    """
    return phi.abs().flatten(1).sum(dim=1).mean()


def explanation_sparsity(phi: torch.Tensor, tolerance: float = 0.05) -> float:
    """The share of features whose value is negligible: L1 norm over the classes at most
    `tolerance` times the largest of the same instance. phi: (B, d, classes) (the layout
    of `DeepShapNet.explain`) or (B, classes, H, W) (`DeepConvShapNet.explain`)."""
    norms = phi.abs().sum(dim=2) if phi.ndim == 3 else phi.abs().sum(dim=1).flatten(1)
    largest = norms.max(dim=1, keepdim=True).values
    return (norms <= tolerance * largest).float().mean().item()


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
