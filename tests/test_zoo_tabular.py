"""The zoo's table: the breast-cancer data and the shipped MLP (accuracy, split, weights)."""

import pytest
import torch

from xai_course import zoo
from xai_course.zoo import tabular, weights


def test_breast_cancer_model_accuracy_and_loading():
    model = zoo.load_model("breast-cancer", device="cpu")
    test = zoo.dataset("breast-cancer", "test")
    accuracy = zoo.accuracy(model, test)
    print(f"breast-cancer: test accuracy {accuracy:.2%} on {len(test)} cases")
    assert len(test) == 113
    assert accuracy >= 0.95
    assert not model.training and all(not p.requires_grad for p in model.parameters())
    assert zoo.model_info("breast-cancer").tabular
    assert "breast-cancer" in zoo.models() and "breast-cancer" in zoo.datasets()


def test_split_scaling_and_features():
    train, test = zoo.dataset("breast-cancer", "train"), zoo.dataset("breast-cancer", "test")
    assert train.x.shape == (456, 30) and test.x.shape == (113, 30)
    assert train.x.dtype == torch.float32 and train.classes == ["malignant", "benign"]
    assert len(train.features) == 30 and train.features[0] == "mean radius"
    assert train.x.mean(0).abs().max() < 1e-5  # z-scores of the train split
    assert (train.x.std(0, unbiased=False) - 1).abs().max() < 1e-4
    mean, std = tabular.feature_scale()
    from sklearn.datasets import load_breast_cancer

    raw = torch.from_numpy(load_breast_cancer().data).float()
    back = mean + std * train.x  # back to the units of the table
    assert torch.isclose(back[:, None], raw[None], rtol=1e-4, atol=1e-3).all(-1).any(1).all()
    for split in (train, test):  # stratified: both classes in the same proportion
        assert abs(split.y.float().mean().item() - 357 / 569) < 0.01
    again = zoo.dataset("breast-cancer", "test", n=10, seed=3)
    assert torch.equal(again.x, zoo.dataset("breast-cancer", "test", n=10, seed=3).x)
    assert again[2:4].features == again.features
    with pytest.raises(ValueError, match="valid splits: train, test"):
        zoo.dataset("breast-cancer", "moved")


def test_shipped_weights_are_recorded_and_small():
    path = weights.weights_path("breast-cancer")
    assert weights.expected_sums()["breast-cancer.pt"] == weights.sha256(path)
    assert path.stat().st_size < 50_000
    assert set(weights.load_state("breast-cancer")) == set(tabular.TabularMLP().state_dict())


def test_explorers_offer_the_table_only_where_it_fits():
    from xai_course.widgets.base import Explorer

    explorer = Explorer(None, sync=True, n_samples=4, models=None)
    assert "breast-cancer" not in explorer.model_picker.options  # image and text views
    explorer.close()
