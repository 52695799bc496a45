"""Chapter 02: from gradients to Integrated Gradients.

Question (1) of the course: *if this feature changed, how would the output change?* The
first answer is the derivative of the class score S_c with respect to each input feature.

Checked against Captum: `gradient` == `Saliency(abs=False)`, `input_x_gradient` ==
`InputXGradient` (tests/test_gradients.py).
"""

from __future__ import annotations

import torch
from torch import nn

from .convention import check_model_and_inputs, class_scores, reference, unchanged

__all__ = ["gradient", "input_x_gradient"]


def _captum_saliency(model, inputs, target):
    from captum.attr import Saliency

    return Saliency(model).attribute(inputs, target=target, abs=False)


def _captum_input_x_gradient(model, inputs, target):
    from captum.attr import InputXGradient

    return InputXGradient(model).attribute(inputs, target=target)


@reference(_captum_saliency, "Captum Saliency(abs=False)")
def gradient(model: nn.Module, inputs: torch.Tensor, target) -> torch.Tensor:
    """The gradient ("vanilla saliency") of the class score with respect to the input.

        attr_i = dS_c(x) / dx_i

    Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks: Visualising Image
    Classification Models and Saliency Maps", ICLR workshop 2014. The paper shows |attr|,
    max over colour channels; we return the signed gradient (Captum `Saliency(abs=False)`)
    and leave absolute values to the plot. S_c is the model's output for class c (the logit).

    It is the ratio of output change to input change for an infinitesimal change: a local,
    first-order answer, which later sections of the chapter put to the test.
    """
    inputs = check_model_and_inputs(model, inputs)
    x = inputs.detach().clone().requires_grad_(True)
    with unchanged(model), torch.enable_grad():
        scores = class_scores(model, x, target)
        (grad,) = torch.autograd.grad(scores.sum(), x)
    return grad


@reference(_captum_input_x_gradient, "Captum InputXGradient")
def input_x_gradient(model: nn.Module, inputs: torch.Tensor, target) -> torch.Tensor:
    """Input times gradient: attr_i = x_i * dS_c(x) / dx_i.

    Shrikumar et al., "Not Just a Black Box: Learning Important Features Through Propagating
    Activation Differences", 2016. For a linear model S_c = w.x + b this is exactly each
    feature's contribution w_i x_i to the score.
    """
    return inputs.detach() * gradient(model, inputs, target)
