"""Chapter 00 explorer: the zoo tour, driven in plain pytest (no kernel)."""

import torch

from xai_course.widgets.welcome import ZooTour, top_classes


def test_top_classes_orders_by_probability():
    p = torch.tensor([0.1, 0.6, 0.05, 0.25])
    assert top_classes(p, ["a", "b", "c", "d"], k=2) == [("b", 0.6000000238418579),
                                                         ("d", 0.25)]


def test_zoo_tour_shows_the_image_and_the_probabilities():
    tour = ZooTour(models=["digits", "cluttered-digits"], sync=True, n_samples=8).start()
    assert tour.last_error is None
    bars = [t for t in tour.figure.data if t.type == "bar"]
    assert len(bars) == 1 and len(bars[0].x) == 5
    labels = next(t for t in tour.figure.data if t.type == "scatter")  # inside the panel
    assert labels.xaxis == bars[0].xaxis and len(labels.text) == 5
    assert abs(max(bars[0].x) - tour.result.probabilities.max().item()) < 1e-6
    first = tour.result.probabilities.clone()
    tour.sample_picker.value = 3
    assert not torch.equal(first, tour.result.probabilities)
    tour.model_picker.value = "cluttered-digits"
    images = [t for t in tour.figure.data if t.type == "image"]
    assert images and images[0].z.shape[:2] == (64, 64)


def test_zoo_tour_on_text():
    tour = ZooTour(models=["reviews"], sync=True, n_samples=8).start()
    assert tour.last_error is None
    assert any(t.type == "bar" for t in tour.figure.data)
    words = tour.figure.data[0]
    assert words.type == "heatmap" and (words.zmin, words.zmax) == (-1, 1)  # white, not blank
    assert [w for w in words.text.flatten() if w]
