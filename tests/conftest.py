"""Shared test set-up: the network is blocked, tiny hand-set models, model-state checks."""

import os
import sys
from pathlib import Path

# Idle OpenMP threads spin by default and steal the other core on a busy 2-core machine;
# set before torch is imported (and inherited by the notebook kernels).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch
from torch import nn

NETBLOCK = Path(__file__).parent / "netblock"
sys.path.insert(0, str(NETBLOCK))
import sitecustomize  # noqa: E402,F401  (installs the socket guard in this process)

# ... and in every Python subprocess the tests start (notebook kernels, the CLI).
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(NETBLOCK)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)
# Small sizes for headless notebook runs (the notebooks read this).
os.environ.setdefault("XAI_COURSE_FAST", "1")

from xai_course.convention import model_state, same_state  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


class TinyLinear(nn.Module):
    """S(x) = W x + b on flattened input, with hand-set weights: gradients are W's rows."""

    def __init__(self, weight, bias=None):
        super().__init__()
        weight = torch.as_tensor(weight, dtype=torch.float32)
        self.fc = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(weight)
            self.fc.bias.copy_(torch.zeros(weight.shape[0]) if bias is None else
                               torch.as_tensor(bias, dtype=torch.float32))

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.fixture
def assert_unchanged():
    """Use as: `with assert_unchanged(model): method(model, ...)`; checks the model after."""
    from contextlib import contextmanager

    @contextmanager
    def check(model):
        before = model_state(model)
        try:
            yield
        finally:
            assert same_state(before, model_state(model)), "the method changed the model"

    return check
