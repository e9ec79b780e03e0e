"""Every nn layer with a PyTorch twin, through ``check_module`` (``helpers.check_op``): the
output and the grads of the input and of every parameter equal torch.nn's (float64,
``torch.func.functional_call`` with the same parameters and buffers) and finite differences,
in training and in eval mode."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check_module

from tinybn import nn

torch = pytest.importorskip("torch")
TNN = torch.nn


def randomized(module: nn.Module, seed: int) -> nn.Module:
    """Parameters and float buffers drawn at random (γ ≠ 1, β ≠ 0, running σ² > 0), so a
    weight that is never used, or a buffer read in the wrong place, changes the numbers."""
    rng = np.random.default_rng(seed)
    for _, param in module.named_parameters():
        param.data = rng.uniform(0.5, 1.5, param.shape) * rng.choice([-1.0, 1.0], param.shape)
    for name, buffer in module.named_buffers():
        if buffer is not None and buffer.dtype.kind == "f":
            low = 0.5 if name.endswith("running_var") else -1.0
            buffer.data = rng.uniform(low, 1.5, buffer.shape)
    return module


def evaluating(module: nn.Module) -> nn.Module:
    module.eval()
    return module


# (id, tinybn layer, its torch twin, input shape)
LAYERS = [
    ("Linear", lambda: nn.Linear(4, 3), lambda: TNN.Linear(4, 3), (5, 4)),
    (
        "Linear no bias",
        lambda: nn.Linear(4, 3, bias=False),
        lambda: TNN.Linear(4, 3, False),
        (5, 4),
    ),
    ("Linear on (N, L, C)", lambda: nn.Linear(4, 2), lambda: TNN.Linear(4, 2), (2, 3, 4)),
    ("BatchNorm1d train", lambda: nn.BatchNorm1d(3), lambda: TNN.BatchNorm1d(3), (6, 3)),
    ("BatchNorm1d train (N,C,L)", lambda: nn.BatchNorm1d(2), lambda: TNN.BatchNorm1d(2), (3, 2, 4)),
    (
        "BatchNorm1d eval",
        lambda: evaluating(nn.BatchNorm1d(3)),
        lambda: TNN.BatchNorm1d(3),
        (4, 3),
    ),
    (
        "BatchNorm1d eval (N,C,L)",
        lambda: evaluating(nn.BatchNorm1d(2)),
        lambda: TNN.BatchNorm1d(2),
        (3, 2, 4),
    ),
    (
        "BatchNorm1d no affine",
        lambda: nn.BatchNorm1d(3, affine=False),
        lambda: TNN.BatchNorm1d(3, affine=False),
        (5, 3),
    ),
    (
        "BatchNorm1d no running stats, eval",
        lambda: evaluating(nn.BatchNorm1d(3, track_running_stats=False)),
        lambda: TNN.BatchNorm1d(3, track_running_stats=False),
        (5, 3),
    ),
    (
        "BatchNorm1d eps 0.1",
        lambda: nn.BatchNorm1d(3, eps=0.1),
        lambda: TNN.BatchNorm1d(3, eps=0.1),
        (4, 3),
    ),
    ("BatchNorm2d train", lambda: nn.BatchNorm2d(2), lambda: TNN.BatchNorm2d(2), (3, 2, 3, 3)),
    (
        "BatchNorm2d eval",
        lambda: evaluating(nn.BatchNorm2d(2)),
        lambda: TNN.BatchNorm2d(2),
        (2, 2, 3, 3),
    ),
    ("LayerNorm last axis", lambda: nn.LayerNorm(4), lambda: TNN.LayerNorm(4), (3, 4)),
    ("LayerNorm two axes", lambda: nn.LayerNorm((2, 3)), lambda: TNN.LayerNorm((2, 3)), (2, 2, 3)),
    (
        "LayerNorm no affine",
        lambda: nn.LayerNorm(4, elementwise_affine=False),
        lambda: TNN.LayerNorm(4, elementwise_affine=False),
        (3, 4),
    ),
    (
        "LayerNorm no bias",
        lambda: nn.LayerNorm(4, bias=False),
        lambda: TNN.LayerNorm(4, bias=False),
        (3, 4),
    ),
    ("GroupNorm 2 groups", lambda: nn.GroupNorm(2, 4), lambda: TNN.GroupNorm(2, 4), (2, 4, 3)),
    (
        "GroupNorm 1 group 4-d",
        lambda: nn.GroupNorm(1, 2),
        lambda: TNN.GroupNorm(1, 2),
        (2, 2, 2, 3),
    ),
    (
        "InstanceNorm1d affine",
        lambda: nn.InstanceNorm1d(2, affine=True),
        lambda: TNN.InstanceNorm1d(2, affine=True),
        (3, 2, 5),
    ),
    ("InstanceNorm2d", lambda: nn.InstanceNorm2d(2), lambda: TNN.InstanceNorm2d(2), (2, 2, 3, 3)),
    (
        "InstanceNorm2d tracked, eval",
        lambda: evaluating(nn.InstanceNorm2d(2, affine=True, track_running_stats=True)),
        lambda: TNN.InstanceNorm2d(2, affine=True, track_running_stats=True),
        (2, 2, 3, 3),
    ),
    ("RMSNorm", lambda: nn.RMSNorm(4, eps=1e-6), lambda: TNN.RMSNorm(4, eps=1e-6), (3, 4)),
    (
        "RMSNorm two axes, no affine",
        lambda: nn.RMSNorm((2, 3), eps=1e-6, elementwise_affine=False),
        lambda: TNN.RMSNorm((2, 3), eps=1e-6, elementwise_affine=False),
        (2, 2, 3),
    ),
    ("Conv2d", lambda: nn.Conv2d(2, 3, 3), lambda: TNN.Conv2d(2, 3, 3), (2, 2, 5, 5)),
    (
        "Conv2d stride 2 padding 1",
        lambda: nn.Conv2d(2, 2, 3, stride=2, padding=1),
        lambda: TNN.Conv2d(2, 2, 3, stride=2, padding=1),
        (1, 2, 5, 5),
    ),
    (
        "Conv2d dilation 2 no bias",
        lambda: nn.Conv2d(1, 2, 2, dilation=2, bias=False),
        lambda: TNN.Conv2d(1, 2, 2, dilation=2, bias=False),
        (2, 1, 5, 5),
    ),
    (
        "Conv2d groups 2",
        lambda: nn.Conv2d(4, 2, 2, groups=2),
        lambda: TNN.Conv2d(4, 2, 2, groups=2),
        (1, 4, 3, 3),
    ),
    (
        "Conv2d padding same, reflect",
        lambda: nn.Conv2d(1, 2, 3, padding="same", padding_mode="reflect"),
        lambda: TNN.Conv2d(1, 2, 3, padding="same", padding_mode="reflect"),
        (1, 1, 4, 4),
    ),
    (
        "Conv2d circular padding",
        lambda: nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular"),
        lambda: TNN.Conv2d(1, 1, 3, padding=1, padding_mode="circular"),
        (1, 1, 4, 4),
    ),
    ("MaxPool2d", lambda: nn.MaxPool2d(2), lambda: TNN.MaxPool2d(2), (2, 2, 4, 4)),
    (
        "MaxPool2d overlapping, padded",
        lambda: nn.MaxPool2d(3, stride=2, padding=1),
        lambda: TNN.MaxPool2d(3, stride=2, padding=1),
        (1, 2, 5, 5),
    ),
    (
        "MaxPool2d ceil mode",
        lambda: nn.MaxPool2d(2, ceil_mode=True),
        lambda: TNN.MaxPool2d(2, ceil_mode=True),
        (1, 1, 5, 5),
    ),
    ("AvgPool2d", lambda: nn.AvgPool2d(2), lambda: TNN.AvgPool2d(2), (2, 2, 4, 4)),
    (
        "AvgPool2d padded, pad not counted",
        lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
        lambda: TNN.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
        (1, 2, 5, 5),
    ),
    ("Flatten", lambda: nn.Flatten(), lambda: TNN.Flatten(), (2, 2, 3)),
    ("ReLU", lambda: nn.ReLU(), lambda: TNN.ReLU(), (4, 3)),
    ("Sigmoid", lambda: nn.Sigmoid(), lambda: TNN.Sigmoid(), (4, 3)),
    ("Tanh", lambda: nn.Tanh(), lambda: TNN.Tanh(), (4, 3)),
    ("LeakyReLU 0.2", lambda: nn.LeakyReLU(0.2), lambda: TNN.LeakyReLU(0.2), (4, 3)),
    ("Softmax dim 1", lambda: nn.Softmax(dim=1), lambda: TNN.Softmax(dim=1), (4, 3)),
    ("Softmax dim 0", lambda: nn.Softmax(dim=0), lambda: TNN.Softmax(dim=0), (4, 3)),
    ("Identity", lambda: nn.Identity(), lambda: TNN.Identity(), (4, 3)),
    (
        "Sequential MLP with BN",
        lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)),
        lambda: TNN.Sequential(TNN.Linear(3, 4), TNN.BatchNorm1d(4), TNN.ReLU(), TNN.Linear(4, 2)),
        (5, 3),
    ),
    (
        "Sequential CNN with BN2d, eval",
        lambda: evaluating(
            nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten())
        ),
        lambda: TNN.Sequential(TNN.Conv2d(1, 2, 3), TNN.BatchNorm2d(2), TNN.ReLU(), TNN.Flatten()),
        (2, 1, 4, 4),
    ),
]


@pytest.mark.parametrize(
    ("make", "make_twin", "shape"), [row[1:] for row in LAYERS], ids=[row[0] for row in LAYERS]
)
def test_layer_equals_its_torch_twin(make, make_twin, shape):
    module = randomized(make(), seed=len(shape))
    x = np.random.default_rng(1).normal(size=shape)
    check_module(module, make_twin(), x)
