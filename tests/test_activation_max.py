"""Chapter 06 core (chapter 01's teaser): plain gradient ascent on a class score."""

import pytest
import torch

from conftest import TinyLinear
from xai_course import activation_max, zoo


def test_gradient_ascent_on_a_linear_model_goes_to_the_corners():
    # S(x) = w.x: the maximiser in [0, 1]^d is 1 where w > 0 and 0 where w < 0.
    w = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
    model = TinyLinear(w).eval()
    x, scores = activation_max.gradient_ascent(model, 0, (4,), steps=20, lr=0.1,
                                               return_history=True)
    assert torch.equal(x, torch.tensor([[1.0, 0.0, 1.0, 0.0]]))
    assert scores[-1] > scores[0]


def test_gradient_ascent_raises_the_class_score_of_a_zoo_model(assert_unchanged):
    model = zoo.load_model("digits", device="cpu")
    g = torch.Generator().manual_seed(0)
    with assert_unchanged(model):
        x, scores = activation_max.gradient_ascent(model, 3, (1, 32, 32), steps=30,
                                                   generator=g, return_history=True)
    assert x.shape == (1, 1, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert model(x).argmax(1).item() == 3
    assert scores[-1] > scores[0] + 1.0
    again = activation_max.gradient_ascent(model, 3, (1, 32, 32), steps=30,
                                           generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)


def test_gradient_ascent_bad_target():
    with pytest.raises(ValueError, match="2 classes"):
        activation_max.gradient_ascent(TinyLinear(torch.ones(2, 3)), 5, (3,), steps=1)
