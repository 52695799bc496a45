"""Make the README's chapter pictures: `.venv/bin/python docs/make_pictures.py`.

Static PNGs for the README (the notebooks draw the same things interactively with plotly).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from xai_course import cam, gradients, perturbation, zoo  # noqa: E402

HERE = Path(__file__).parent


def show(ax, image, attribution=None, title=""):
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    if attribution is not None:
        a = attribution.sum(0) if attribution.ndim == 3 else attribution
        limit = a.abs().max().item() or 1.0
        ax.imshow(a.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.6)
    ax.set_title(title, fontsize=10)
    ax.axis("off")


def main():
    model = zoo.load_model("cluttered-digits", "cpu")
    data = zoo.dataset("cluttered-digits", n=4)
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
    for i, ax in enumerate(axes):
        show(ax, data.x[i], title=f"label {data.classes[data.y[i]]}")
        ax.contour(data.mask[i].numpy(), levels=[0.5], colors="yellow", linewidths=0.8)
    fig.suptitle("00 · cluttered-digits canvases, the digit's mask outlined")
    fig.savefig(HERE / "00_welcome.png", dpi=80, bbox_inches="tight")

    x, y = data.x[:1], data.y[:1]
    occ = perturbation.occlusion(model, x, y, window=12, stride=6, baseline=0.5)
    grad = gradients.gradient(model, x, y)
    fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
    show(axes[0], x[0], title="canvas")
    show(axes[1], x[0], occ[0], title="occlusion")
    show(axes[2], x[0], grad[0], title="gradient")
    fig.suptitle("01 · two local explanations of the same prediction")
    fig.savefig(HERE / "01_local_global.png", dpi=80, bbox_inches="tight")

    g = torch.Generator().manual_seed(0)
    maps = {
        "gradient": grad[0],
        "SmoothGrad": gradients.smoothgrad(model, x, y, samples=25, generator=g)[0],
        "Integrated Gradients": gradients.integrated_gradients(model, x, y, steps=50)[0],
        "Guided Backprop": gradients.guided_backprop(model, x, y)[0],
    }
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
    for ax, (name, attribution) in zip(axes, maps.items()):
        show(ax, x[0], attribution, title=name)
    fig.suptitle("02 · from gradients to Integrated Gradients")
    fig.savefig(HERE / "02_gradients.png", dpi=80, bbox_inches="tight")

    maps = {"CAM": cam.cam(model, x, y), "Grad-CAM": cam.grad_cam(model, x, y),
            "Grad-CAM++": cam.grad_cam_pp(model, x, y), "Score-CAM": cam.score_cam(model, x, y)}
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
    for ax, (name, heat) in zip(axes, maps.items()):
        show(ax, x[0], heat[0], title=name)
    fig.suptitle("03 · class activation maps at the last convolution")
    fig.savefig(HERE / "03_cam.png", dpi=80, bbox_inches="tight")

    perturbation_chapter(model, x, y)
    activation_max_chapter()
    surrogates(model, x, y)
    bottleneck_chapter(model, x, y)
    shapley_chapter()
    evaluation_chapter()


def perturbation_chapter(model, x, y):
    """Chapter 04: occlusion, Meaningful Perturbation (smooth and without TV), extremal."""
    occ = perturbation.occlusion(model, x, y, window=8, stride=4)
    smooth = perturbation.meaningful_perturbation(model, x, y, l1=0.3, steps=150)
    speckle = perturbation.meaningful_perturbation(model, x, y, l1=0.3, tv=0.0, mask_size=64,
                                                   steps=150)
    extremal = perturbation.extremal_perturbation(model, x, y, area=0.1, steps=300)
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
    show(axes[0], x[0], occ[0], title="occlusion 8/4")
    show(axes[1], x[0], 1 - smooth[0], title="meaningful: deleted")
    show(axes[2], x[0], 1 - speckle[0], title="no smoothness: adversarial")
    show(axes[3], x[0], extremal[0], title="extremal, 10% kept")
    fig.suptitle("04 · perturbation: occlusion and learned masks")
    fig.savefig(HERE / "04_perturbation.png", dpi=80, bbox_inches="tight")


def surrogates(model, x, y):
    """Chapter 05: superpixels, linear and tree LIME, the tree's fidelity against depth."""
    from skimage.segmentation import find_boundaries

    from xai_course import surrogates

    segments = surrogates.superpixels(x[0], "slic", n=30)
    options = dict(segments=segments, samples=1000, return_surrogate=True)
    linear, (fit,) = surrogates.lime(model, x, y, generator=torch.Generator().manual_seed(0),
                                     **options)
    tree, _ = surrogates.lime(model, x, y, surrogate="tree", max_depth=3,
                              generator=torch.Generator().manual_seed(0), **options)
    depths = [1, 2, 3, 4, 6, 8]
    fidelity = [surrogates.fit_surrogate(fit.z, fit.y, fit.weights, "tree", max_depth=d).fidelity
                for d in depths]
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.8))
    show(axes[0], x[0], title=f"{int(segments.max()) + 1} superpixels (SLIC)")
    axes[0].contour(find_boundaries(segments.numpy()), levels=[0.5], colors="yellow",
                    linewidths=0.6)
    show(axes[1], x[0], linear[0], title=f"linear LIME (R² {fit.fidelity:.2f})")
    show(axes[2], x[0], tree[0], title="tree LIME, depth 3")
    axes[3].plot(depths, fidelity, "o-")
    axes[3].axhline(fit.fidelity, color="grey", linestyle="--", label="linear")
    axes[3].set(xlabel="tree depth", ylabel="fidelity R²", title="fidelity vs depth")
    axes[3].legend(fontsize=8)
    fig.suptitle("05 · LIME with linear and tree surrogates")
    fig.savefig(HERE / "05_surrogates.png", dpi=80, bbox_inches="tight")


def activation_max_chapter():
    """Chapter 06: the same three digits by plain ascent, hand-made priors, Fourier and the
    generator as the prior, each with the judge's verdict."""
    from xai_course import activation_max as am

    model, gan = zoo.load_model("digits", "cpu"), zoo.load_model("digits-gan", "cpu")
    judge = am.digit_judge()
    objectives, shape = [("class", c) for c in (0, 3, 8)], (1, 32, 32)

    def seeded():
        return torch.Generator().manual_seed(0)

    rows = {
        "no prior": am.maximize(model, objectives, shape, init="noise", generator=seeded()),
        "L2, TV, jitter, blur": am.maximize(model, objectives, shape, l2=0.05, tv=0.5, jitter=2,
                                            blur_every=4, init="noise", generator=seeded()),
        "Fourier": am.maximize(model, objectives, shape, parametrization="fourier", jitter=2,
                               init="noise", generator=seeded()),
        "generator prior": am.maximize_latent(model, gan, objectives, generator=seeded()),
    }
    fig, axes = plt.subplots(3, 4, figsize=(9, 7))
    for column, (name, images) in enumerate(rows.items()):
        verdict = judge(images)
        for row, (_, c) in enumerate(objectives):
            seen = (f"read as {verdict.label[row].item()}" if verdict.typical[row]
                    else "no digit")
            show(axes[row, column], images[row].expand(3, -1, -1),
                 title=f"{name}\nclass {c} · {seen}" if row == 0 else f"class {c} · {seen}")
    fig.suptitle("06 · what the digits model wants to see, under four priors "
                 "(the judge's verdict)")
    fig.savefig(HERE / "06_activation_max.png", dpi=80, bbox_inches="tight")


def bottleneck_chapter(model, x, y):
    """Chapter 07: IBA at an early, a middle and a late layer, and InputIBA, on one canvas
    with the digit's mask outlined."""
    from xai_course.bottleneck import feature_stats, iba, input_iba

    train = zoo.dataset("cluttered-digits", split="train", n=1000)
    mask = zoo.dataset("cluttered-digits", n=1).mask[0]
    maps = {}
    for layer, places in (("relu1", "64x64"), ("relu3", "16x16"), ("relu5", "8x8")):
        stats = feature_stats(model, f"features.{layer}", train.x)
        maps[f"IBA at {layer} ({places})"] = iba(model, x, y, f"features.{layer}", stats=stats,
                                                 generator=torch.Generator().manual_seed(0))[0]
    stats = feature_stats(model, "features.relu3", train.x)
    maps["InputIBA (relu3 prior)"] = input_iba(model, x, y, "features.relu3", stats=stats,
                                               generator=torch.Generator().manual_seed(0))[0]
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
    for ax, (name, heat) in zip(axes, maps.items()):
        show(ax, x[0], heat, title=name)
        ax.contour(mask.numpy(), levels=[0.5], colors="cyan", linewidths=0.8)
    fig.suptitle("07 · information bottlenecks: late layers blur, early ones lose the digit, "
                 "InputIBA")
    fig.savefig(HERE / "07_bottleneck.png", dpi=80, bbox_inches="tight")


def shapley_chapter():
    """Chapter 08: the running average over orders that becomes the Shapley value, the two
    estimates' error against model calls, and a deep ShapNet's explanation of a digit."""
    from xai_course import shapley as S
    from xai_course.widgets.shapley import (
        GROUPS,
        all_orders,
        coalition_values,
        order_contributions,
        player_groups,
    )

    model = zoo.load_model("breast-cancer", "cpu")
    patients = zoo.dataset("breast-cancer", n=1)
    x, label = patients.x[:1], int(patients.y[0])
    groups, names = player_groups(patients.features, GROUPS)
    v = coalition_values(model, x, label, groups)
    shuffle = torch.randperm(720, generator=torch.Generator().manual_seed(0))
    orders = all_orders(len(names))[shuffle]
    running = order_contributions(v, orders).cumsum(0) / torch.arange(1, 721)[:, None]
    phi = S.shapley_from_values(v)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), layout="constrained",
                             gridspec_kw=dict(width_ratios=[1.4, 1.2, 0.7, 0.7]))
    for k, name in enumerate(names):
        line, = axes[0].plot(range(1, 721), running[:, k], label=name, linewidth=1)
        axes[0].axhline(phi[k], color=line.get_color(), linestyle="--", linewidth=0.8)
    axes[0].set(xscale="log", xlabel="orders averaged", ylabel="contribution",
                title="average over orders → Shapley value")
    axes[0].legend(fontsize=6, ncol=2)
    measurements = player_groups(patients.features)[0]
    exact = S.player_values(S.exact_shapley(model, x, 0.0, label, measurements), measurements)[0]
    for method, budgets in ((S.sampling_shapley, [1, 4, 16, 64, 256]),
                            (S.kernel_shap, [16, 64, 256, 1024, 4096])):
        errors = [(S.player_values(method(model, x, label, samples=m, groups=measurements,
                                          generator=torch.Generator().manual_seed(0)),
                                   measurements)[0] - exact).pow(2).mean().sqrt().item()
                  for m in budgets]
        calls = [1 + 10 * m for m in budgets] if method is S.sampling_shapley else budgets
        axes[1].plot(calls, errors, "o-", label=method.__name__)
    axes[1].axvline(1024, color="k", linestyle="--", linewidth=0.8, label="exact: 1024 calls")
    axes[1].set(xscale="log", yscale="log", xlabel="model calls", ylabel="rms error",
                title="estimates against model calls")
    axes[1].legend(fontsize=7)
    net = zoo.load_model("digits-shapnet", "cpu")
    digit_set = zoo.dataset("digits", n=1)
    digit, c = digit_set.x[:1], int(digit_set.y[0])
    with torch.no_grad():
        layers, _ = net.explain(digit, layers=True)
    for ax, value, title in ((axes[2], layers[0][0].abs().sum(0), "digits-shapnet: |layer 1|"),
                             (axes[3], layers[-1][0, c], f"digits-shapnet: φ for {c}")):
        value = value.repeat_interleave(4, 0).repeat_interleave(4, 1)
        show(ax, digit[0].expand(3, -1, -1), value, title=title)
    fig.suptitle("08 · Shapley values: exact, estimated, and from a ShapNet's forward pass")
    fig.savefig(HERE / "08_shapley.png", dpi=80, bbox_inches="tight")


def evaluation_chapter():
    """Chapter 09: the toy set, and the shipped ROAR, KAR and no-retraining sweeps."""
    from xai_course import evaluation

    toy = evaluation.toy_roar()
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2), layout="constrained")
    for retrained, style in ((True, "-"), (False, ":")):
        part = toy[toy.retrained == retrained]
        for ranking in ("true", "random", "inverted"):
            means = part[part.ranking == ranking].groupby("removed")["accuracy"].mean()
            colour = {"true": "C0", "random": "C1", "inverted": "C2"}[ranking]
            axes[0].plot(means.index, means.values, style, color=colour, label=f"{ranking}"
                         f"{'' if retrained else ', not retrained'}")
    axes[0].set(xlabel="features removed (of 16)", ylabel="accuracy", title="toy set")
    axes[0].legend(fontsize=6)
    shown = ("oracle", "random", "sobel", "GRAD", "SG-SQ", "VAR-GRAD", "GRAD-CAM")
    for ax, sweep, title in ((axes[1], "roar", "ROAR (retrained)"),
                             (axes[2], "no-retrain", "removed, not retrained"),
                             (axes[3], "kar", "KAR (top t kept)")):
        table = evaluation.shipped_table(f"{sweep}-cluttered-digits")
        for name in shown:
            means = table[table.estimator == name].groupby("fraction")["accuracy"].mean()
            ax.plot(means.index, means.values, "o-", markersize=3, label=name)
        ax.set(xlabel="fraction of the values removed" if sweep != "kar"
               else "fraction kept", ylabel="test accuracy", title=title, ylim=(0, 1))
    axes[1].legend(fontsize=6)
    fig.suptitle("09 · evaluating explanations: the toy set, and ROAR / KAR on cluttered-digits")
    fig.savefig(HERE / "09_evaluation.png", dpi=80, bbox_inches="tight")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
