"""Every functional op and loss with a PyTorch twin, through ``helpers.check_op``: output and
the grads of every tensor argument (input, weights, γ, β, logits, predictions) equal
``torch.nn.functional``'s (float64) and central finite differences. Targets are constants."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check_op, torch_reference

from tinybn import conv
from tinybn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

CLASSES = np.array([2, 0, 1, 2, 1])  # a target class per example of (5, 3) logits
CLASSES_NL = np.array([[0, 2, 1, 1], [2, 2, 0, 1]])  # (N, L) targets of (2, 3, 4) logits
IGNORED = np.array([2, -100, 1, 0, -100])
SOFT = np.random.default_rng(3).dirichlet(np.ones(3), size=5)  # probability targets (5, 3)
BINARY = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
SOFT_BINARY = np.random.default_rng(4).uniform(0.1, 0.9, size=(4, 3))
MEAN, VAR = np.array([0.3, -0.2, 0.1]), np.array([0.5, 1.5, 2.0])  # given statistics (eval)
T = torch.tensor


def normal(shape, rng):
    return rng.normal(size=shape)


def probability(shape, rng):
    return rng.uniform(0.05, 0.95, size=shape)


def scale(shape, rng):
    """γ-like: away from 0, either sign."""
    return rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)


# (id, tinybn fn, torch fn, input shapes, samplers (one per input, or one for all))
FUNCTIONAL = [
    ("linear", F.linear, TF.linear, [(5, 4), (3, 4), (3,)], normal),
    ("linear no bias", lambda x, w: F.linear(x, w), TF.linear, [(5, 4), (3, 4)], normal),
    ("relu", F.relu, TF.relu, [(4, 3)], normal),
    ("sigmoid", F.sigmoid, torch.sigmoid, [(4, 3)], normal),
    ("tanh", F.tanh, torch.tanh, [(4, 3)], normal),
    (
        "leaky_relu",
        lambda x: F.leaky_relu(x, 0.2),
        lambda x: TF.leaky_relu(x, 0.2),
        [(4, 3)],
        normal,
    ),  # noqa: E501
    ("softmax", F.softmax, lambda z: TF.softmax(z, dim=-1), [(4, 3)], normal),
    (
        "softmax axis 0",
        lambda z: F.softmax(z, axis=0),
        lambda z: TF.softmax(z, dim=0),
        [(4, 3)],
        normal,
    ),  # noqa: E501
    ("log_softmax", F.log_softmax, lambda z: TF.log_softmax(z, dim=-1), [(4, 3)], normal),
    (
        "log_softmax (N,C,L) axis 1",
        lambda z: F.log_softmax(z, axis=1),
        lambda z: TF.log_softmax(z, dim=1),
        [(2, 3, 4)],
        normal,
    ),  # noqa: E501
    (
        "batch_norm train",
        lambda x, g, b: F.batch_norm(x, g, b),
        lambda x, g, b: TF.batch_norm(x, None, None, g, b, training=True),
        [(6, 3), (3,), (3,)],
        [normal, scale, normal],
    ),
    (
        "batch_norm train (N,C,L) eps 0.1",
        lambda x, g, b: F.batch_norm(x, g, b, eps=0.1),
        lambda x, g, b: TF.batch_norm(x, None, None, g, b, training=True, eps=0.1),
        [(3, 2, 4), (2,), (2,)],
        [normal, scale, normal],
    ),
    (
        "batch_norm train (N,C,H,W)",
        lambda x, g, b: F.batch_norm(x, g, b),
        lambda x, g, b: TF.batch_norm(x, None, None, g, b, training=True),
        [(2, 2, 3, 3), (2,), (2,)],
        [normal, scale, normal],
    ),
    (
        "batch_norm no affine",
        F.batch_norm,
        lambda x: TF.batch_norm(x, None, None, training=True),
        [(5, 3)],
        normal,
    ),  # noqa: E501
    (
        "batch_norm eval (given mean, var)",
        lambda x, g, b: F.batch_norm(x, g, b, mean=MEAN, var=VAR),
        lambda x, g, b: TF.batch_norm(x, T(MEAN), T(VAR), g, b, training=False),
        [(4, 3), (3,), (3,)],
        [normal, scale, normal],
    ),
    (
        "layer_norm",
        lambda x, g, b: F.layer_norm(x, g, b),
        lambda x, g, b: TF.layer_norm(x, (4,), g, b),
        [(3, 4), (4,), (4,)],
        [normal, scale, normal],
    ),
    (
        "layer_norm over two axes",
        lambda x, g, b: F.layer_norm(x, g, b, normalized_ndim=2),
        lambda x, g, b: TF.layer_norm(x, (3, 4), g, b),
        [(2, 3, 4), (3, 4), (3, 4)],
        [normal, scale, normal],
    ),
    ("layer_norm no affine", F.layer_norm, lambda x: TF.layer_norm(x, (4,)), [(3, 4)], normal),
    (
        "group_norm",
        lambda x, g, b: F.group_norm(x, 2, g, b),
        lambda x, g, b: TF.group_norm(x, 2, g, b),
        [(2, 4, 3), (4,), (4,)],
        [normal, scale, normal],
    ),
    (
        "instance_norm",
        lambda x, g, b: F.instance_norm(x, g, b),
        lambda x, g, b: TF.instance_norm(x, weight=g, bias=b),
        [(2, 3, 4), (3,), (3,)],
        [normal, scale, normal],
    ),
    (
        "rms_norm",
        lambda x, g: F.rms_norm(x, 4, g, eps=1e-6),
        lambda x, g: TF.rms_norm(x, (4,), g, eps=1e-6),
        [(3, 4), (4,)],
        [normal, scale],
    ),
    ("conv2d", conv.conv2d, TF.conv2d, [(2, 2, 4, 4), (3, 2, 3, 3), (3,)], normal),
    (
        "conv2d stride, padding, dilation",
        lambda x, w: conv.conv2d(x, w, stride=2, padding=2, dilation=2),
        lambda x, w: TF.conv2d(x, w, stride=2, padding=2, dilation=2),
        [(1, 2, 5, 5), (2, 2, 2, 2)],
        normal,
    ),
    (
        "conv2d groups",
        lambda x, w: conv.conv2d(x, w, groups=2),
        lambda x, w: TF.conv2d(x, w, groups=2),
        [(1, 4, 3, 3), (4, 2, 2, 2)],
        normal,
    ),
    (
        "max_pool2d",
        lambda x: conv.max_pool2d(x, 2),
        lambda x: TF.max_pool2d(x, 2),
        [(2, 2, 4, 4)],
        normal,
    ),
    (
        "avg_pool2d ceil mode",
        lambda x: conv.avg_pool2d(x, 2, ceil_mode=True),
        lambda x: TF.avg_pool2d(x, 2, ceil_mode=True),
        [(1, 2, 5, 5)],
        normal,
    ),
    *[
        (
            f"pad2d {mode}",
            lambda x, mode=mode: conv.pad2d(x, (1, 2, 2, 1), mode),
            lambda x, mode=mode: TF.pad(
                x, (2, 1, 1, 2), mode=mode
            ),  # torch: (left, right, top, bottom)
            [(1, 2, 3, 4)],
            normal,
        )
        for mode in ("reflect", "replicate", "circular")
    ],
]

LOSSES = [
    *[
        (
            f"cross_entropy {reduction}",
            lambda z, r=reduction: F.cross_entropy(z, CLASSES, reduction=r),
            lambda z, r=reduction: TF.cross_entropy(z, T(CLASSES), reduction=r),
            [(5, 3)],
            normal,
        )
        for reduction in ("mean", "sum", "none")
    ],
    (
        "cross_entropy label smoothing",
        lambda z: F.cross_entropy(z, CLASSES, label_smoothing=0.2),
        lambda z: TF.cross_entropy(z, T(CLASSES), label_smoothing=0.2),
        [(5, 3)],
        normal,
    ),
    (
        "cross_entropy ignore_index",
        lambda z: F.cross_entropy(z, IGNORED),
        lambda z: TF.cross_entropy(z, T(IGNORED)),
        [(5, 3)],
        normal,
    ),
    (
        "cross_entropy probability targets",
        lambda z: F.cross_entropy(z, SOFT),
        lambda z: TF.cross_entropy(z, T(SOFT)),
        [(5, 3)],
        normal,
    ),
    (
        "cross_entropy (N,C,L)",
        lambda z: F.cross_entropy(z, CLASSES_NL),
        lambda z: TF.cross_entropy(z, T(CLASSES_NL)),
        [(2, 3, 4)],
        normal,
    ),
    *[
        (
            f"nll_loss {reduction}",
            lambda z, r=reduction: F.nll_loss(z, CLASSES, reduction=r),
            lambda z, r=reduction: TF.nll_loss(z, T(CLASSES), reduction=r),
            [(5, 3)],
            normal,
        )
        for reduction in ("mean", "sum", "none")
    ],
    *[
        (
            f"binary_cross_entropy {reduction}",
            lambda p, r=reduction: F.binary_cross_entropy(p, BINARY, reduction=r),
            lambda p, r=reduction: TF.binary_cross_entropy(p, T(BINARY), reduction=r),
            [(4, 3)],
            probability,
        )
        for reduction in ("mean", "sum", "none")
    ],
    (
        "binary_cross_entropy soft targets",
        lambda p: F.binary_cross_entropy(p, SOFT_BINARY),
        lambda p: TF.binary_cross_entropy(p, T(SOFT_BINARY)),
        [(4, 3)],
        probability,
    ),
    *[
        (
            f"binary_cross_entropy_with_logits {reduction}",
            lambda z, r=reduction: F.binary_cross_entropy_with_logits(z, BINARY, reduction=r),
            lambda z, r=reduction: TF.binary_cross_entropy_with_logits(z, T(BINARY), reduction=r),
            [(4, 3)],
            normal,
        )
        for reduction in ("mean", "sum", "none")
    ],
    (
        "binary_cross_entropy_with_logits pos_weight",
        lambda z: F.binary_cross_entropy_with_logits(
            z, BINARY, pos_weight=np.array([0.5, 2.0, 3.0])
        ),  # noqa: E501
        lambda z: TF.binary_cross_entropy_with_logits(z, T(BINARY), pos_weight=T([0.5, 2.0, 3.0])),  # noqa: E501
        [(4, 3)],
        normal,
    ),
    *[
        (
            f"mse_loss {reduction}",
            lambda a, b, r=reduction: F.mse_loss(a, b, reduction=r),
            lambda a, b, r=reduction: TF.mse_loss(a, b, reduction=r),
            [(4, 3), (4, 3)],
            normal,
        )
        for reduction in ("mean", "sum", "none")
    ],
]


@pytest.mark.parametrize(
    ("ours", "theirs", "shapes", "samplers"),
    [row[1:] for row in FUNCTIONAL + LOSSES],
    ids=[row[0] for row in FUNCTIONAL + LOSSES],
)
def test_functional_equals_torch(ours, theirs, shapes, samplers):
    rng = np.random.default_rng(sum(map(len, shapes)))
    if callable(samplers):
        samplers = [samplers] * len(shapes)
    inputs = [sample(shape, rng) for sample, shape in zip(samplers, shapes)]
    check_op(ours, inputs, **torch_reference(theirs))
