"""The digit models and data sets of the zoo: accuracies, determinism, masks, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from xai_course import zoo
from xai_course.zoo import digits as zd
from xai_course.zoo import weights

N_EVAL = 1000  # canvases per accuracy check: a 95% accuracy has a standard error of 0.7 points
IMAGE_MODELS = ["digits", "cluttered-digits", "shortcut-digits"]


@pytest.fixture(scope="module")
def shortcut_test():
    return zoo.dataset("shortcut-digits", "test", n=N_EVAL)


@pytest.fixture(scope="module")
def shortcut_moved():
    return zoo.dataset("shortcut-digits", "moved", n=N_EVAL)


# ------------------------------------------------------------------------------------------
# The shipped models reach their targets


def test_digits_model_accuracy():
    model = zoo.load_model("digits", device="cpu")
    test = zoo.dataset("digits", "test")
    acc = zoo.accuracy(model, test)
    print(f"digits: test accuracy {acc:.2%} on {len(test)} images")
    assert len(test) == 359
    assert acc >= 0.97


def test_cluttered_digits_model_accuracy():
    model = zoo.load_model("cluttered-digits", device="cpu")
    test = zoo.dataset("cluttered-digits", "test", n=N_EVAL)
    acc = zoo.accuracy(model, test)
    print(f"cluttered-digits: test accuracy {acc:.2%} on {len(test)} canvases")
    assert acc >= 0.95


def test_shortcut_model_learned_the_mark(shortcut_test, shortcut_moved):
    model = zoo.load_model("shortcut-digits", device="cpu")
    acc_test = zoo.accuracy(model, shortcut_test)
    acc_moved = zoo.accuracy(model, shortcut_moved)
    print(f"shortcut-digits: test {acc_test:.2%}, mark moved {acc_moved:.2%}, "
          f"drop {100 * (acc_test - acc_moved):.1f} points")
    assert acc_test >= 0.95
    assert acc_test - acc_moved >= 0.30


def test_cluttered_model_does_not_rely_on_a_mark(shortcut_test, shortcut_moved):
    """The mark means nothing to the model trained without it: moving it changes little."""
    model = zoo.load_model("cluttered-digits", device="cpu")
    acc_test = zoo.accuracy(model, shortcut_test[:500])
    acc_moved = zoo.accuracy(model, shortcut_moved[:500])
    print(f"cluttered-digits model on shortcut canvases: test {acc_test:.2%}, "
          f"moved {acc_moved:.2%}")
    assert abs(acc_test - acc_moved) < 0.05


def test_a_plain_gradient_exposes_the_shortcut(shortcut_test):
    """The demo the set exists for: the shortcut model's saliency peaks on the mark."""
    data = shortcut_test[:100]
    mark = zd.shortcut_mark_mask("test", n=100)
    near_mark = torch.nn.functional.max_pool2d(mark[:, None], 9, 1, 4)[:, 0]  # mark + 4 px
    peak_on_mark = {}
    for name in ("cluttered-digits", "shortcut-digits"):
        model = zoo.load_model(name, device="cpu")
        x = data.x.clone().requires_grad_(True)
        model(x).gather(1, data.y[:, None]).sum().backward()
        peak = x.grad.abs().amax(dim=1).flatten(1).argmax(dim=1)
        peak_on_mark[name] = near_mark.flatten(1)[torch.arange(100), peak].mean().item()
    print("share of |gradient| peaks on the mark:", peak_on_mark)
    assert peak_on_mark["shortcut-digits"] >= 0.9
    assert peak_on_mark["cluttered-digits"] <= 0.1


# ------------------------------------------------------------------------------------------
# Loading


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_load_model_is_frozen_and_in_eval_mode(name):
    model = zoo.load_model(name, device="cpu")
    assert not model.training
    assert all(not m.training for m in model.modules())
    params = list(model.parameters())
    assert params and all(not p.requires_grad for p in params)
    assert all(p.device.type == "cpu" for p in params)


def test_corrupt_weights_file_is_refused(tmp_path):
    for file in ("digits.pt", "SHA256SUMS"):
        shutil.copy(weights.WEIGHTS_DIR / file, tmp_path / file)
    state = weights.load_state("digits", weights_dir=tmp_path)  # the intact copy loads
    assert set(state) == set(zd.DigitsCNN().state_dict())

    data = bytearray((tmp_path / "digits.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "digits.pt").write_bytes(bytes(data))
    with pytest.raises(weights.WeightsHashMismatch, match="sha256"):
        weights.load_state("digits", weights_dir=tmp_path)


def test_shipped_weights_are_small():
    sizes = {name: weights.weights_path(name).stat().st_size for name in IMAGE_MODELS}
    print({name: f"{size / 1e6:.2f} MB" for name, size in sizes.items()})
    assert sum(sizes.values()) < 3e6


# ------------------------------------------------------------------------------------------
# Architectures


@pytest.mark.parametrize("name, shape", [
    ("digits", (2, 1, 32, 32)),
    ("cluttered-digits", (2, 3, 64, 64)),
    ("shortcut-digits", (2, 3, 64, 64)),
])
def test_build_gives_ten_class_scores(name, shape):
    torch.manual_seed(0)
    model = zoo.model_info(name).build().eval()
    assert model(torch.rand(shape)).shape == (2, 10)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) >= 3 and not any(r.inplace for r in relus)  # hookable, one per place


def test_cluttered_head_is_gap_plus_linear():
    """y_c = b_c + sum_k w_ck mean(A_k): the identity that makes CAM exact."""
    model = zoo.load_model("cluttered-digits", device="cpu")
    assert isinstance(model.features[-1], nn.ReLU)
    assert isinstance(model.features[-3], nn.Conv2d)  # conv -> batch norm -> ReLU
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d)
    assert isinstance(model.fc, nn.Linear)
    x = zoo.dataset("cluttered-digits", n=4).x
    maps = model.features(x)  # (N, K, 8, 8)
    assert maps.shape == (4, model.fc.in_features, 8, 8)
    cam = torch.einsum("ck,nkij->ncij", model.fc.weight, maps)  # every class's CAM
    scores = cam.mean(dim=(2, 3)) + model.fc.bias
    torch.testing.assert_close(scores, model(x), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------
# Data: shapes, ranges, determinism


@pytest.mark.parametrize("name, split, shape", [
    ("digits", "train", (1, 32, 32)),
    ("digits", "test", (1, 32, 32)),
    ("cluttered-digits", "train", (3, 64, 64)),
    ("cluttered-digits", "test", (3, 64, 64)),
    ("shortcut-digits", "train", (3, 64, 64)),
    ("shortcut-digits", "test", (3, 64, 64)),
    ("shortcut-digits", "moved", (3, 64, 64)),
])
def test_shapes_dtypes_and_ranges(name, split, shape):
    data = zoo.dataset(name, split, n=120)
    assert len(data) == 120 and data.x.shape == (120, *shape)
    assert data.x.dtype == torch.float32 and data.y.dtype == torch.int64
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0
    assert data.x.std() > 0.1
    assert data.classes == [str(d) for d in range(10)]
    assert 0 <= data.y.min() and data.y.max() <= 9
    if name == "digits":
        assert data.mask is None
    else:
        assert data.mask.shape == (120, 64, 64) and data.mask.dtype == torch.float32
        assert set(data.mask.unique().tolist()) <= {0.0, 1.0}


def test_digits_split_is_fixed_stratified_and_disjoint():
    train, test = zoo.dataset("digits", "train"), zoo.dataset("digits", "test")
    assert (len(train), len(test)) == (1438, 359)
    test_share = torch.bincount(test.y, minlength=10) / (
        torch.bincount(test.y, minlength=10) + torch.bincount(train.y, minlength=10))
    print("share of each class in the test split:", [round(s, 3) for s in test_share.tolist()])
    assert ((test_share - 0.2).abs() < 0.01).all()
    # no test image is also a train image
    assert not {x.tobytes() for x in test.x.numpy()} & {x.tobytes() for x in train.x.numpy()}
    # seed=None: the fixed order; a seed: a shuffle of the same images
    again = zoo.dataset("digits", "test")
    assert torch.equal(test.x, again.x)
    shuffled = zoo.dataset("digits", "test", seed=3)
    assert not torch.equal(shuffled.y, test.y)
    assert torch.equal(shuffled.y.sort().values, test.y.sort().values)


@pytest.mark.parametrize("name", ["digits", "cluttered-digits", "shortcut-digits"])
def test_same_seed_same_data_other_seed_other_data(name):
    a = zoo.dataset(name, "test", n=150, seed=7)
    b = zoo.dataset(name, "test", n=150, seed=7)
    c = zoo.dataset(name, "test", n=150, seed=8)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    if a.mask is not None:
        assert torch.equal(a.mask, b.mask) and not torch.equal(a.mask, c.mask)


@pytest.mark.parametrize("name", ["cluttered-digits", "shortcut-digits"])
def test_first_n_do_not_depend_on_n_and_splits_differ(name):
    small = zoo.dataset(name, "train", n=150, seed=1)
    large = zoo.dataset(name, "train", n=333, seed=1)
    assert torch.equal(small.x, large.x[:150]) and torch.equal(small.mask, large.mask[:150])
    other_split = zoo.dataset(name, "test", n=150, seed=1)
    assert not torch.equal(small.x, other_split.x)
    default = zoo.dataset(name, "test", n=50)
    assert torch.equal(default.x, zoo.dataset(name, "test", n=50, seed=0).x)


def test_canvas_digits_come_from_their_split_and_match_y():
    images, labels, splits = zd._real_digits()
    for split in ("train", "test"):
        parts = zd._generate(split, 300, seed=5, shortcut=False)
        assert np.isin(parts["source"], splits[split]).all()
        assert (labels[parts["source"]] == parts["y"]).all()
    counts = torch.bincount(zoo.dataset("cluttered-digits", "test", n=2000).y, minlength=10)
    print("class counts of 2000 test canvases:", counts.tolist())
    assert counts.min() >= 140 and counts.max() <= 260


def test_masks_cover_one_whole_digit():
    data = zoo.dataset("cluttered-digits", "test", n=300)
    area = data.mask.sum(dim=(1, 2))
    print(f"mask area: min {area.min():.0f}, mean {area.mean():.0f}, max {area.max():.0f} px")
    assert area.min() >= 40 and area.max() <= 0.3 * 64 * 64
    rows, cols = data.mask.any(dim=2), data.mask.any(dim=1)  # (N, 64) each
    for occupied in (rows, cols):
        index = torch.arange(64).expand_as(occupied)
        first = torch.where(occupied, index, 64).min(dim=1).values
        last = torch.where(occupied, index, -1).max(dim=1).values
        extent = last - first + 1
        # the digit's box is 24-40 px (its soft edge adds a pixel or so either side), wholly
        # inside the canvas; thin digits (a "1") are narrow
        assert (extent >= 3).all() and (extent <= 44).all()
    height = rows.sum(dim=1)
    assert (height >= 15).all()
    # the digit is on top, so its pixels are brighter than the dark background on average
    brightness = data.x.mean(dim=1)
    inside = (brightness * data.mask).sum(dim=(1, 2)) / area
    outside = (brightness * (1 - data.mask)).sum(dim=(1, 2)) / (64 * 64 - area)
    assert (inside > outside).float().mean() > 0.95


def test_shortcut_mark_position_gives_the_label_away(shortcut_test, shortcut_moved):
    n = 200
    test, moved = shortcut_test[:n], shortcut_moved[:n]
    mark_test = zd.shortcut_mark_mask("test", n=n)
    mark_moved = zd.shortcut_mark_mask("moved", n=n)
    assert (mark_test.sum(dim=(1, 2)) == zd.MARK_SIZE ** 2).all()
    assert (test.x.permute(1, 0, 2, 3)[:, mark_test.bool()] == 1.0).all()  # a white square
    row, col = zd.mark_position(test.y.numpy())
    assert (mark_test[torch.arange(n), torch.from_numpy(row), torch.from_numpy(col)] == 1).all()
    # "moved": the very same canvases and labels, only the mark is somewhere else
    assert torch.equal(moved.y, test.y)
    assert not (mark_moved * mark_test).sum(dim=(1, 2)).any()
    differs = (moved.x != test.x).any(dim=1)
    assert not (differs & ~(mark_test.bool() | mark_moved.bool())).any()
    # the shortcut canvases are the cluttered canvases plus the mark
    plain = zoo.dataset("cluttered-digits", "test", n=n)
    assert torch.equal(plain.y, test.y)
    assert torch.equal(test.x * (1 - mark_test[:, None]), plain.x * (1 - mark_test[:, None]))
    assert not (test.mask * mark_test).any()


@pytest.mark.parametrize("name, bad", [
    ("digits", "moved"), ("digits", "validation"),
    ("cluttered-digits", "moved"), ("shortcut-digits", "Test"),
])
def test_unknown_split_is_a_clear_error(name, bad):
    with pytest.raises(ValueError, match="valid splits: train, test"):
        zoo.dataset(name, bad)


def test_the_training_loop_learns():
    """`xai-course train` runs `fit`: three epochs on the digits' train split already take
    the test accuracy far above chance (0.10) and leave the model in eval mode."""
    torch.manual_seed(0)
    model = zd.DigitsCNN()
    train = zd.digits("train")
    zd.fit(model, lambda epoch: train, epochs=3, lr=2e-3, progress=False)
    test_accuracy = zoo.accuracy(model, zd.digits("test"))
    print(f"digits after 3 epochs: {test_accuracy:.2%}")
    assert test_accuracy > 0.6
    assert not model.training
