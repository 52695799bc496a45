"""Chapter 09: evaluating explanations, checked against the paper's toy finding, Quantus 0.6,
pytorch-grad-cam's ROAD imputation and hand-computed cases.

Where our definitions and Quantus's differ, and how the tests bridge them:

- Deletion: Quantus `PixelFlipping` ranks the *values* of the input (a map (N, 1, H, W) is
  broadcast over the channels), ours the *pixels* (a map summed over channels, every channel
  of a pixel removed at once). On a one-channel image the two are the same, so the check uses
  the `digits` model (1 x 32 x 32). Quantus's curve starts after the first step (no point at
  0 removed) and its AUC is np.trapz with dx=1 over the steps; ours has the point at 0 and
  integrates over the fraction removed in [0, 1] (RISE's area). So the curves are compared
  point for point (ours from the second point on), not the areas. Quantus sorts with
  np.argsort (not stable), ours with a stable sort: the map gets a 1e-7 tie-breaker, the
  same map for both.
- Insertion: Quantus has no insertion metric; PixelFlipping started from the blurred image,
  with a perturbation function that puts the original values back, is insertion by
  definition, and is compared the same way.
- Pointing game: Quantus `PointingGame` is ours with tolerance=0 (a hit when any maximal
  pixel is in the mask); normalise/abs off, as neither changes the maximum of a CAM.
- Energy in mask: Quantus `RelevanceMassAccuracy` on a non-negative map (Grad-CAM), and
  `AttributionLocalisation(positive_attributions=True)`, which adds 1e-9 to the denominator.
- Effective heat ratio: no installed library has it (it is InputIBA's evaluation code):
  checked on a hand-computed map.
"""

import concurrent.futures
import contextlib
import functools
import io
import math

import numpy as np
import pandas as pd
import pytest
import torch

from xai_course import cam, evaluation, gradients, zoo
from xai_course.images import gaussian_blur

TOL = 1e-6


@functools.cache
def _model(name):
    return zoo.load_model(name, device="cpu")


@functools.cache
def _data(name, n, split="test"):
    return zoo.dataset(name, split=split, n=n)


def _table(frame, index, value="accuracy"):
    return frame.groupby(index)[value].mean().unstack(index[-1]).round(3)


# --------------------------------------------------------------------------- toy ROAR
@pytest.fixture(scope="module")
def toy():
    return evaluation.toy_roar()


def test_toy_roar_reproduces_the_papers_finding(toy):
    """Retrained, the inverted ranking keeps the accuracy until 12 of 16 features are gone
    while the true ranking loses it at once; not retrained, the inverted ranking already
    loses accuracy (Hooker et al. 2019, Sec. 3)."""
    mean = toy.groupby(["retrained", "ranking", "removed"]).accuracy.mean()
    print("\ntoy ROAR, test accuracy (mean of 5 seeds) by features removed:")
    print(_table(toy, ["retrained", "ranking", "removed"]).to_string())
    full = mean[True, "true", 0]
    assert full > 0.75
    for k in (2, 4, 6, 8, 10, 12):
        assert mean[True, "inverted", k] > full - 0.01, k  # flat until 12 of 16
    assert mean[True, "inverted", 14] < full - 0.1  # ... and then it drops
    assert mean[True, "true", 2] < full - 0.02  # the true ranking drops at once
    assert mean[True, "true", 4] < 0.55  # all 4 informative features gone: chance
    assert mean[True, "random", 8] < full - 0.03  # random: in between
    assert mean[True, "random", 8] > mean[True, "true", 8] + 0.1
    for k in (8, 10, 12):  # without retraining, the inverted ranking is punished
        assert mean[False, "inverted", k] < mean[True, "inverted", k] - 0.03, k


def test_toy_roar_is_fast_and_reproducible():
    import time

    start = time.perf_counter()
    a = evaluation.toy_roar()
    seconds = time.perf_counter() - start
    print(f"\ntoy ROAR full sweep: {seconds:.2f} s ({len(a)} rows)")
    assert seconds < 10
    assert a.equals(evaluation.toy_roar())


# --------------------------------------------------------------------------- deletion / insertion
def test_deletion_and_insertion_match_quantus_pixel_flipping(assert_unchanged):
    quantus = pytest.importorskip("quantus")
    model = _model("digits")
    data = _data("digits", 4)
    x, y = data.x, data.y
    attr = gradients.gradient(model, x, y)[:, 0]
    attr = attr + 1e-7 * torch.randn(attr.shape, generator=torch.Generator().manual_seed(0))
    with assert_unchanged(model):
        deletion, insertion = evaluation.deletion_insertion(model, x, y, attr, steps=16,
                                                            blur_sigma=10.0)
    common = dict(features_in_step=64, normalise=False, abs=False, disable_warnings=True)
    call = dict(model=model, y_batch=y.numpy(), a_batch=attr[:, None].numpy(), device="cpu",
                softmax=True, channel_first=True)
    ours = deletion.scores[:, 1:].numpy()
    theirs = np.array(quantus.PixelFlipping(perturb_baseline="black", **common)(
        x_batch=x.numpy(), **call))
    flat = x.numpy().reshape(len(x), -1)

    def put_back(arr, indices, **kwargs):
        out = arr.copy()
        np.put_along_axis(out, indices, np.take_along_axis(flat, indices, 1), 1)
        return out

    theirs_ins = np.array(quantus.PixelFlipping(perturb_func=put_back, **common)(
        x_batch=gaussian_blur(x, 10.0).numpy(), **call))
    d_del = np.abs(theirs - ours).max()
    d_ins = np.abs(theirs_ins - insertion.scores[:, 1:].numpy()).max()
    print(f"\ndeletion AUC {deletion.auc.numpy().round(3)}, insertion AUC "
          f"{insertion.auc.numpy().round(3)}; max |ours - Quantus|: deletion {d_del:.1e}, "
          f"insertion {d_ins:.1e}")
    assert d_del <= TOL and d_ins <= TOL
    assert torch.allclose(deletion.fractions, torch.linspace(0, 1, 17))
    assert torch.allclose(deletion.auc, torch.trapezoid(deletion.scores, deletion.fractions))


def test_deletion_most_relevant_first_drops_faster_than_least_relevant_first():
    """Grad-CAM's order against its reverse; and a random order, which scatters black dots
    over the canvas: an image unlike any in training, whose score falls for that reason."""
    model = _model("cluttered-digits")
    data = _data("cluttered-digits", 8)
    x, y = data.x, data.y
    grad_cam = cam.grad_cam(model, x, y)
    noise = torch.rand(grad_cam.shape, generator=torch.Generator().manual_seed(0))
    auc = {name: evaluation.deletion_insertion(model, x, y, maps, steps=16)[0].auc.mean()
           for name, maps in (("Grad-CAM", grad_cam), ("reversed Grad-CAM", -grad_cam),
                              ("random", noise))}
    print("\ndeletion AUC on cluttered-digits: " +
          ", ".join(f"{name} {value:.3f}" for name, value in auc.items()))
    assert auc["Grad-CAM"] < auc["reversed Grad-CAM"] - 0.1


def test_deletion_insertion_rejects_a_map_of_the_wrong_size():
    model = _model("digits")
    x = _data("digits", 2).x
    with pytest.raises(ValueError, match="attribution must have"):
        evaluation.deletion_insertion(model, x, 0, torch.zeros(2, 16, 16))
    with pytest.raises(ValueError, match="score must be one of"):
        evaluation.deletion_insertion(model, x, 0, torch.zeros(2, 32, 32), score="accuracy")


# --------------------------------------------------------------------------- localisation
def test_pointing_game_and_energy_in_mask_match_quantus():
    quantus = pytest.importorskip("quantus")
    model = _model("cluttered-digits")
    data = _data("cluttered-digits", 16)
    x, y, mask = data.x, data.y, data.mask
    call = dict(model=model, x_batch=x.numpy(), y_batch=y.numpy(), s_batch=mask[:, None].numpy(),
                device="cpu", channel_first=True)
    quiet = dict(normalise=False, abs=False, disable_warnings=True)
    rows = []
    for name, maps in (("gradient", gradients.gradient(model, x, y).abs().sum(1)),
                       ("grad_cam", cam.grad_cam(model, x, y))):
        ours = evaluation.pointing_game(maps, mask).numpy()
        theirs = np.array(quantus.PointingGame(**quiet)(a_batch=maps[:, None].numpy(), **call),
                          dtype=float)
        assert np.array_equal(ours, theirs), name
        energy = evaluation.energy_in_mask(maps, mask).numpy()
        mass = np.array(quantus.RelevanceMassAccuracy(**quiet)(
            a_batch=maps[:, None].numpy(), **call))
        with contextlib.redirect_stdout(io.StringIO()):  # its advice to set abs=True
            localisation = np.array(quantus.AttributionLocalisation(
                positive_attributions=True, **quiet)(a_batch=maps[:, None].numpy(), **call))
        d = max(np.abs(energy - mass).max(), np.abs(energy - localisation).max())
        assert d <= TOL, name
        ehr = evaluation.effective_heat_ratio(maps, mask).numpy()
        rows.append((name, ours.mean(), energy.mean(), ehr.mean(), d))
    print("\nmethod     pointing  energy  EHR    max |ours - Quantus| (energy)")
    for name, hit, energy, ehr, d in rows:
        print(f"{name:10s} {hit:8.3f} {energy:7.3f} {ehr:6.3f} {d:.1e}")
    print(f"(the digit covers {mask.mean():.3f} of a canvas)")


def test_pointing_game_tolerance_counts_near_misses():
    maps = torch.zeros(1, 9, 9)
    maps[0, 4, 4] = 1.0
    mask = torch.zeros(1, 9, 9)
    mask[0, 4, 6] = 1.0  # two pixels to the right of the maximum
    assert evaluation.pointing_game(maps, mask).item() == 0.0
    assert evaluation.pointing_game(maps, mask, tolerance=1).item() == 0.0
    assert evaluation.pointing_game(maps, mask, tolerance=2).item() == 1.0
    assert math.isnan(evaluation.pointing_game(maps, torch.zeros(1, 9, 9)).item())


def test_localisation_scores_reject_a_mask_of_another_size():
    with pytest.raises(ValueError, match="mask"):
        evaluation.energy_in_mask(torch.rand(2, 8, 8), torch.ones(2, 4, 4))
    with pytest.raises(TypeError, match="attribution must be a torch.Tensor"):
        evaluation.pointing_game(np.ones((2, 8, 8)), torch.ones(2, 8, 8))


def test_effective_heat_ratio_by_hand():
    """Map [1 (on the object), 0.5 (off), 0 (on), 0 (off)]: the pixels with heat >= 0.1 are
    {1, 0.5}; at q = 0 the threshold is 0.5, both pixels pass and the object holds heat 1 of
    2 pixels: r = 1/2; for q >= 0.1 the threshold (0.5 + 0.5 q, at most 0.99) passes only the
    1 on the object: r = 1. Area: 0.1 (1/2 + 1)/2 + 0.9 = 0.975."""
    maps = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])
    mask = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    assert abs(evaluation.effective_heat_ratio(maps, mask).item() - 0.975) < 1e-6
    assert abs(evaluation.effective_heat_ratio(maps, mask, weight_by_heat=False).item()
               - 0.975) < 1e-6
    on_object = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    assert abs(evaluation.effective_heat_ratio(on_object, mask).item() - 1.0) < 1e-6
    assert abs(evaluation.energy_in_mask(maps, mask).item() - 1 / 1.5) < 1e-6


# --------------------------------------------------------------------------- ROAD
@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")  # in the reference
def test_road_imputation_solves_its_system_and_matches_pytorch_grad_cam():
    road_module = pytest.importorskip("pytorch_grad_cam.metrics.road")
    image = _data("cluttered-digits", 1).x[0].double()
    missing = torch.rand(64, 64, generator=torch.Generator().manual_seed(0)) < 0.5
    missing[:8, :8] = True  # a hole in the corner: its values come from far away
    ours = evaluation.noisy_linear_imputation(image, missing, noise=0.0)
    a, b, index = evaluation.imputation_system(image.numpy(), missing.numpy())
    u = ours.reshape(3, -1)[:, index].numpy().T
    residual = np.abs(a @ u - b).max()
    theirs = road_module.NoisyLinearImputer(noise=0.0)(image.float(), (~missing).float())
    d = (theirs.double() - ours).abs().max().item()
    print(f"\nROAD imputation: {len(index)} unknowns, residual {residual:.1e}, "
          f"max |ours - pytorch-grad-cam| {d:.1e}")
    assert residual < 1e-6
    assert d <= TOL
    assert torch.equal(ours[:, ~missing], image[:, ~missing])  # known pixels untouched


def test_road_morf_falls_below_lerf(assert_unchanged):
    model = _model("cluttered-digits")
    data = _data("cluttered-digits", 4)
    x, y = data.x, data.y
    maps = cam.grad_cam(model, x, y)
    fractions = (0.1, 0.3, 0.5)
    with assert_unchanged(model):
        morf = evaluation.road(model, x, y, maps, fractions,
                               generator=torch.Generator().manual_seed(0))
        lerf = evaluation.road(model, x, y, maps, fractions, most_relevant_first=False,
                               generator=torch.Generator().manual_seed(0))
    print(f"\nROAD (Grad-CAM) target probability at {fractions}: MoRF "
          f"{morf.scores.mean(0).numpy().round(3)}, LeRF {lerf.scores.mean(0).numpy().round(3)}")
    assert (morf.scores.mean(0) < lerf.scores.mean(0)).all()


# --------------------------------------------------------------------------- sanity checks
def test_sanity_check_gradient_changes_guided_backprop_barely(assert_unchanged):
    model = _model("cluttered-digits")
    data = _data("cluttered-digits", 1)
    x, y = data.x, data.y
    layers = ["fc", "features.bn5", "features.conv5", "features.bn4"]
    tables = {}
    for method in (gradients.gradient, gradients.guided_backprop):
        with assert_unchanged(model):
            tables[method.__name__] = evaluation.sanity_check(
                model, method, x, y, layers=layers, generator=torch.Generator().manual_seed(0))
    print("\ncascading randomisation from the top, similarity to the trained model's map:")
    per_layer = {name: t.groupby(["step", "layer"], sort=False)[["spearman", "ssim"]].mean()
                 for name, t in tables.items()}
    print(pd.concat(per_layer, axis=1).round(3).to_string())
    grad, gb = per_layer["gradient"], per_layer["guided_backprop"]
    assert (grad.iloc[1:]["spearman"] < 0.8).all()  # the gradient's map changes
    assert (gb.iloc[1:4]["spearman"] > 0.8).all()  # Guided Backprop's barely does
    assert (gb.iloc[1:]["spearman"] > grad.iloc[1:]["spearman"] + 0.15).all()
    assert (gb.iloc[1:]["ssim"] > grad.iloc[1:]["ssim"] + 0.15).all()


def test_sanity_check_names_the_valid_layers():
    model = _model("cluttered-digits")
    x = _data("cluttered-digits", 1).x
    with pytest.raises(ValueError, match="valid"):
        evaluation.sanity_check(model, gradients.gradient, x, 0, layers=["head"])


# --------------------------------------------------------------------------- ROAR
def _sweep(executor=None, path=None, seeds=2, train_fn=None):
    model = _model("cluttered-digits")
    train = _data("cluttered-digits", 128, "train")
    test = _data("cluttered-digits", 64)
    train_fn = train_fn or functools.partial(evaluation.train_canvas_model, epochs=1, width=8)
    return evaluation.roar({"gradient": gradients.gradient}, (train, test), train_fn,
                           fractions=(0.5,), seeds=seeds, executor=executor, path=path,
                           model=model, controls=("random",), progress=False)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """The tiny sweep run serially in two goes: seed 0, then seeds 0 and 1 from the saved
    table. Returns (first table, second table, path, the seeds train_fn was called with)."""
    calls = []

    def counting(data, seed):
        calls.append(seed)
        return evaluation.train_canvas_model(data, seed, epochs=1, width=8)

    path = tmp_path_factory.mktemp("roar") / "roar.csv"
    first = _sweep(path=path, seeds=1, train_fn=counting)
    second = _sweep(path=path, seeds=2, train_fn=counting)
    return first, second, path, calls, counting


@pytest.fixture(scope="module")
def serial(resumed):
    return resumed[1]


def test_roar_table_is_tidy_and_resumable(resumed):
    first, second, path, calls, counting = resumed
    assert path.exists() and path.with_suffix(".json").exists()
    assert calls == [0, 0, 1, 1]  # the second call ran only the seed-1 jobs
    print("\nROAR sweep (tiny configuration):\n" + second.to_string())
    assert list(second.columns) == ["estimator", "fraction", "seed", "keep", "accuracy", "loss"]
    assert len(first) == 2 and len(second) == 4
    assert second[second.seed == 0].reset_index(drop=True).equals(first)
    assert second.attrs["settings"]["keep"] is False
    data = (_data("cluttered-digits", 128, "train"), _data("cluttered-digits", 64))
    with pytest.raises(ValueError, match="other settings"):
        evaluation.roar({"gradient": gradients.gradient}, data, counting, fractions=(0.5,),
                        seeds=1, keep=True, path=path, model=_model("cluttered-digits"),
                        controls=("random",), progress=False)
    with pytest.raises(ValueError, match="fill must be one of"):
        evaluation.roar({}, data, counting, fill="median")


def test_roar_on_a_process_pool_gives_the_serial_table(serial):
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        parallel = _sweep(executor=pool)
    print(f"\nprocess pool: test losses {parallel['loss'].round(6).tolist()}, serial "
          f"{serial['loss'].round(6).tolist()}")
    assert parallel.equals(serial)


@pytest.mark.filterwarnings("ignore:Sending large graph")
def test_roar_on_a_dask_cluster_gives_the_serial_table(serial):
    """Two jobs (seed 1), one for each of the cluster's two worker processes."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            on_dask = _sweep(executor=client.get_executor(), seeds=(1,))
    expected = serial[serial.seed == 1].reset_index(drop=True)
    print(f"\nDask LocalCluster: test losses {on_dask['loss'].round(6).tolist()}, serial "
          f"{expected['loss'].round(6).tolist()}")
    assert on_dask.equals(expected)


def test_roar_controls_without_retraining_the_oracle_hurts_most():
    """A train_fn that returns the trained model as it is: the sweep then measures removal
    without retraining (cheap), which is enough to see the built-in controls work. Removing
    the top 15% by the oracle removes the digit (about 11% of a canvas); by Sobel, the edges
    of the digit and the clutter; at random, scattered values."""
    model = _model("cluttered-digits")
    data = (_data("cluttered-digits", 64, "train"), _data("cluttered-digits", 128))
    table = evaluation.roar({}, data, lambda train, seed: model, fractions=(0.15,), seeds=1,
                            progress=False)
    print("\nremoval without retraining, 15% of the values:\n" + table.to_string())
    accuracy = dict(zip(table["estimator"], table["accuracy"]))
    assert list(accuracy) == ["random", "sobel", "oracle"]
    assert accuracy["oracle"] < 0.3 < accuracy["random"]


def test_sobel_matches_scipy_and_the_oracle_ranks_the_mask_first():
    from scipy import ndimage

    x = _data("cluttered-digits", 2).x
    ours = evaluation.sobel(x.double()).numpy()
    for image, edges in zip(x.double().numpy().reshape(-1, 64, 64), ours.reshape(-1, 64, 64)):
        gy = ndimage.sobel(image, axis=0, mode="nearest")  # one 2-D channel at a time
        gx = ndimage.sobel(image, axis=1, mode="nearest")
        assert np.abs(edges - np.hypot(gx, gy)).max() < 1e-12
    mask = _data("cluttered-digits", 2).mask
    ranks = evaluation.feature_ranks(evaluation.oracle_importance(x, mask))
    inside = mask.bool()[:, None].expand_as(x)
    for i in range(len(x)):
        assert ranks[i][inside[i]].max() < ranks[i][~inside[i]].min()


def test_paper_estimators_rank_every_value():
    model = _model("cluttered-digits")
    data = _data("cluttered-digits", 2)
    for name, method in evaluation.paper_estimators().items():
        e = evaluation._estimate(method, model, data.x, data.y, 64, name, False)
        assert e.shape == data.x.shape and torch.isfinite(e).all() and e.abs().sum() > 0, name


def test_feature_ranks_and_removal_by_hand():
    e = torch.tensor([[[0.1, -0.9, 0.5, 0.0]]])  # one example, values ranked by |e|
    assert evaluation.feature_ranks(e).tolist() == [[[2, 0, 1, 3]]]
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    ranks = evaluation.feature_ranks(e)
    fill = torch.tensor(0.0)
    assert evaluation.remove_features(x, ranks, 0.5, fill).tolist() == [[[1.0, 0.0, 0.0, 4.0]]]
    assert evaluation.remove_features(x, ranks, 0.5, fill, keep=True).tolist() == \
        [[[0.0, 2.0, 3.0, 0.0]]]


# --------------------------------------------------------------------------- cluttered-digits
def _mean_accuracy(table):
    """estimator -> accuracy averaged over fractions and seeds (the area under the curve, up
    to a constant: every estimator has the same fractions)."""
    return table.groupby("estimator", sort=False)["accuracy"].mean()


def test_roar_on_cluttered_digits_fast_configuration():
    """The shipped recipe on half the canvases: 2,000 training and 300 test canvases, 50% of
    the values removed, one seed. Removing the oracle's 50% removes every digit: chance (the
    Sobel edges may get there too, within a few canvases)."""
    train, test = data = evaluation.sweep_data(2000, 300)
    train_fn = evaluation.train_canvas_model
    model = train_fn(train, 0)
    clean = zoo.accuracy(model, test)
    course = evaluation.course_estimators()
    estimators = {name: course[name] for name in ("GRAD", "GRAD-CAM")}
    table = evaluation.roar(estimators, data, train_fn, fractions=(0.5,), seeds=1, model=model,
                            progress=False)
    accuracy = dict(zip(table["estimator"], table["accuracy"]))
    print(f"\nROAR, fast configuration, 50% removed (clean: {clean:.3f}):\n{table.to_string()}")
    assert clean > 0.6
    assert accuracy["oracle"] < 0.2 and accuracy["oracle"] <= min(accuracy.values()) + 0.03
    assert accuracy["random"] == max(accuracy.values())
    assert accuracy["random"] > accuracy["oracle"] + 0.4


@pytest.fixture(scope="module")
def shipped():
    return {name: evaluation.shipped_table(f"{name}-cluttered-digits")
            for name in evaluation.SWEEPS}


def test_the_shipped_sweeps_are_complete_and_say_how_they_were_made(shipped):
    names = [*evaluation.course_estimators(), "random", "sobel", "oracle"]
    for sweep, seeds in (("roar", 2), ("kar", 1), ("no-retrain", 1)):
        table, settings = shipped[sweep], shipped[sweep].attrs["settings"]
        assert settings["n_train"] == 4000 and settings["n_test"] == 500
        assert settings["keep"] is (sweep == "kar") and settings["fill"] == "channel-mean"
        assert sorted(set(table["estimator"])) == sorted(names), sweep
        assert len(table) == len(names) * 5 * seeds, sweep
        assert table.groupby(["estimator", "fraction"]).size().eq(seeds).all(), sweep
    assert shipped["roar"].attrs["settings"]["train_fn"] == \
        "xai_course.evaluation.train_canvas_model"
    assert shipped["no-retrain"].attrs["settings"]["train_fn"].endswith(
        "as_trained(ClutteredDigitsCNN)")


def test_a_shipped_roar_point_is_reproduced():
    """The oracle at 50% removed, seed 0, recomputed at the shipped size: the controls' ranks
    (seeded) and one retraining (one thread, seeded)."""
    data = evaluation.sweep_data()
    ranks = evaluation.rank_features({}, data, None, progress=False)
    point = evaluation.roar({}, data, evaluation.train_canvas_model, fractions=(0.5,),
                            seeds=(0,), controls=("oracle",), ranks=ranks, progress=False)
    table = evaluation.shipped_table("roar-cluttered-digits")
    shipped = table.query("estimator == 'oracle' and fraction == 0.5 and seed == 0")
    print(f"\noracle, 50% removed, seed 0: recomputed {point['accuracy'].iloc[0]:.4f}, "
          f"shipped {shipped['accuracy'].iloc[0]:.4f}")
    assert abs(point["accuracy"].iloc[0] - shipped["accuracy"].iloc[0]) <= 0.01


def test_the_shipped_roar_sweep_oracle_fastest_random_slowest(shipped):
    """The shipped sweep (`xai-course roar`): the oracle removes the digit, so up to half
    removed it degrades accuracy most; random degrades it least from 30% on, and on average
    over the fractions. Beyond half, the oracle's accuracy climbs back: the removal's shape
    (an untouched hole where the digit was) tells the digit, the leak ROAD closes. Printed:
    where every estimator falls."""
    means = {sweep: table.groupby(["estimator", "fraction"], sort=False)["accuracy"].mean()
             .unstack("fraction") for sweep, table in shipped.items()}
    for sweep, table in means.items():
        print(f"\n{sweep}, test accuracy (mean over seeds):\n{table.round(3).to_string()}")
    roar = means["roar"]
    average = _mean_accuracy(shipped["roar"]).sort_values()
    print("\nROAR, averaged over the fractions (lower: a better estimator):\n"
          + average.round(3).to_string())
    for t in (0.1, 0.3, 0.5):
        assert roar[t].idxmin() == "oracle", t
    for t in (0.3, 0.5, 0.7, 0.9):
        assert roar[t].idxmax() == "random", t
    assert average.idxmax() == "random"
    assert average["SG-SQ"] < average["GRAD"] and average["VAR-GRAD"] < average["GRAD"]
    assert roar.loc["oracle", 0.9] > roar.loc["oracle", 0.5] + 0.2  # the shape's leak
