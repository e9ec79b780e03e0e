"""The ops and loss options that ported peer suites expect (comparisons, where, maximum,
minimum, min, std, logsumexp, expand, rsqrt, leaky_relu, permute, transpose(dim0, dim1);
reduction=, nll_loss, label smoothing, probability targets, pos_weight), against PyTorch
and finite differences, and the fixes for 0-d reductions and length-0 matmuls."""

from __future__ import annotations

import operator

import numpy as np
import pytest
from helpers import check_op, torch_reference

import tinybn as tb
from tinybn import Tensor
from tinybn import functional as F
from tinybn.autograd import topological_order

torch = pytest.importorskip("torch")
TF = torch.nn.functional

RNG = np.random.default_rng(0)
A, B = RNG.normal(size=(3, 4)), RNG.normal(size=(4,))


# -- comparisons ----------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["lt", "le", "gt", "ge", "eq", "ne"])
def test_comparisons_return_bool_tensors_without_grad(op):
    compare = getattr(operator, op)
    a = Tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
    other = np.array([[2.0], [3.0]])
    result = compare(a, Tensor(other))
    expected = compare(torch.tensor(a.data), torch.tensor(other)).numpy()
    assert isinstance(result, Tensor) and result.dtype == bool and not result.requires_grad
    np.testing.assert_array_equal(result.data, expected)
    np.testing.assert_array_equal(compare(a, 2.0).data, compare(a.data, 2.0))
    np.testing.assert_array_equal(compare(2.0, a).data, compare(2.0, a.data))  # reflected


def test_tensors_stay_hashed_by_identity():
    a, b = Tensor(np.ones(3)), Tensor(np.ones(3))
    assert len({a, b}) == 2 and a in {a} and b not in {a}
    assert (a == None) is False and (a != None) is True  # noqa: E711
    with pytest.raises(ValueError, match="ambiguous"):
        bool(a == b)
    assert bool(Tensor(np.array(2.0)) > 1)
    # the graph walk (a set of nodes) still finds every node once
    x = Tensor(np.ones(2), requires_grad=True)
    y = (x * 2 + x * 2).sum()
    assert len(topological_order(y)) == 7  # x, two constants 2, two products, +, sum


# -- elementwise and reductions against torch -----------------------------------------------------

UNARY = [
    ("min axis", lambda t: t.min(axis=1), lambda t: t.amin(dim=1)),
    ("min keepdims", lambda t: t.min(axis=0, keepdims=True), lambda t: t.amin(0, keepdim=True)),
    ("min all", lambda t: t.min(), lambda t: t.amin()),
    ("std", lambda t: t.std(axis=1), lambda t: t.std(dim=1, unbiased=False)),
    ("std unbiased", lambda t: t.std(0, unbiased=True), lambda t: t.std(dim=0)),
    ("logsumexp", lambda t: t.logsumexp(axis=1), lambda t: t.logsumexp(dim=1)),
    ("logsumexp all", lambda t: t.logsumexp(keepdims=True), lambda t: t.logsumexp((0, 1), True)),
    ("expand", lambda t: t[:, :1].expand(2, 3, 4), lambda t: t[:, :1].expand(2, 3, 4)),
    ("expand -1", lambda t: t[:1].expand(3, -1), lambda t: t[:1].expand(3, -1)),
    ("rsqrt", lambda t: (t * t + 0.5).rsqrt(), lambda t: (t * t + 0.5).rsqrt()),
    ("leaky_relu", lambda t: t.leaky_relu(0.2), lambda t: TF.leaky_relu(t, 0.2)),
    ("F.leaky_relu", lambda t: F.leaky_relu(t), lambda t: TF.leaky_relu(t)),
    (
        "permute",
        lambda t: t.reshape(3, 2, 2).permute(2, 0, 1),
        lambda t: t.reshape(3, 2, 2).permute(2, 0, 1),
    ),
    (
        "transpose 2 ints",
        lambda t: t.reshape(3, 2, 2).transpose(0, 2),
        lambda t: t.reshape(3, 2, 2).transpose(0, 2),
    ),
    ("transpose(0, 1) 2-d", lambda t: t.transpose(0, 1), lambda t: t.transpose(0, 1)),
    ("transpose(-1, -2)", lambda t: t.transpose(-1, -2), lambda t: t.transpose(-1, -2)),
    (
        "transpose permutation",
        lambda t: t.reshape(3, 2, 2).transpose(1, 2, 0),
        lambda t: t.reshape(3, 2, 2).permute(1, 2, 0),
    ),
]


@pytest.mark.parametrize("name, ours, theirs", UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops_match_torch(name, ours, theirs):
    check_op(ours, [A], **torch_reference(theirs), atol=1e-12)


BINARY = [
    ("where", lambda a, b: a.where(Tensor(a.data > 0), b), lambda a, b: torch.where(a > 0, a, b)),
    (
        "tb.where",
        lambda a, b: tb.where(a.data > 0, 1.5, b),
        lambda a, b: torch.where(a > 0, 1.5, b),
    ),
    ("maximum", lambda a, b: a.maximum(b), lambda a, b: torch.maximum(a, b)),
    ("minimum", lambda a, b: a.minimum(b), lambda a, b: torch.minimum(a, b)),
]


@pytest.mark.parametrize("name, ours, theirs", BINARY, ids=[b[0] for b in BINARY])
def test_binary_ops_match_torch_with_broadcasting(name, ours, theirs):
    check_op(ours, [A, B], **torch_reference(theirs), atol=1e-12)


def test_maximum_and_minimum_halve_the_grad_at_ties_and_min_shares_it():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])
    for ours, theirs in (("maximum", torch.maximum), ("minimum", torch.minimum)):
        check_op(lambda x, y: getattr(x, ours)(y), [a, b], **torch_reference(theirs), fd=False)
    check_op(
        lambda x: x.min(), [np.array([2.0, 1.0, 1.0])], **torch_reference(torch.amin), fd=False
    )


def test_logsumexp_does_not_overflow():
    big = Tensor(np.array([1000.0, 1000.0]), requires_grad=True)
    out = big.logsumexp(axis=0)
    out.backward()
    assert out.item() == pytest.approx(1000 + np.log(2))
    np.testing.assert_allclose(big.grad, [0.5, 0.5])


def test_shape_op_errors():
    t = Tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="axis 1 of size 3 cannot become 4"):
        t.expand(2, 4)
    with pytest.raises(ValueError, match="permute: 3 axes given"):
        t.permute(0, 1, 2)
    with pytest.raises(ValueError, match="transpose: axis 2 is out of range"):
        t.transpose(0, 2)
    with pytest.raises(ValueError, match="not a permutation"):
        Tensor(np.zeros((2, 3, 4))).transpose((0, 0, 1))
    with pytest.raises(TypeError, match="condition must be boolean"):
        t.where(np.zeros((2, 3)), 1.0)


# -- fixes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, -1])
def test_reductions_of_a_0d_tensor_along_axis_0_and_minus_1(axis):
    for ours, theirs in (
        (lambda t: t.sum(axis=axis), lambda t: t.sum(dim=axis)),
        (lambda t: t.mean(axis=axis) * 3, lambda t: t.mean(dim=axis) * 3),
        (lambda t: F.softmax(t, axis) * t, lambda t: TF.softmax(t, axis) * t),
        (lambda t: F.log_softmax(t, axis) + t, lambda t: TF.log_softmax(t, axis) + t),
    ):
        check_op(ours, [np.array(1.5)], **torch_reference(theirs))
    with pytest.raises(ValueError, match="axis 1 is out of range"):
        Tensor(np.array(1.0)).sum(axis=1)


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((0,), (0, 4)), ((3, 0), (0, 4)), ((2, 3, 0), (0,)), ((0,), (0,)), ((2, 0, 3), (3, 0))],
)
def test_matmul_backward_with_a_length_0_operand(a_shape, b_shape):
    rng = np.random.default_rng(1)
    check_op(
        lambda a, b: a @ b,
        [rng.normal(size=a_shape), rng.normal(size=b_shape)],
        **torch_reference(lambda a, b: a @ b),
        fd=False,
    )


# -- losses ------------------------------------------------------------------------------------

LOGITS = RNG.normal(size=(5, 4)) * 2
CLASSES = np.array([0, 3, 1, 1, 2])
LOGITS_3D = RNG.normal(size=(2, 4, 3))
CLASSES_2D = np.array([[0, 1, 3], [2, 2, -100]])
PROBS = RNG.dirichlet(np.ones(4), size=5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_with_class_indices_matches_torch(reduction, smoothing):
    for logits, classes in ((LOGITS, CLASSES), (LOGITS_3D, CLASSES_2D), (LOGITS[0], CLASSES[0])):
        check_op(
            lambda z: F.cross_entropy(z, classes, reduction, label_smoothing=smoothing),
            [logits],
            **torch_reference(
                lambda z: TF.cross_entropy(
                    z, torch.tensor(classes), reduction=reduction, label_smoothing=smoothing
                )
            ),
            atol=1e-12,
        )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_class_probabilities_matches_torch_including_the_target_grad(reduction):
    check_op(
        lambda z, p: F.cross_entropy(z, p, reduction, label_smoothing=0.1),
        [LOGITS, PROBS],
        **torch_reference(
            lambda z, p: TF.cross_entropy(z, p, reduction=reduction, label_smoothing=0.1)
        ),
        atol=1e-12,
    )
    # a numpy array of probabilities works too (a constant)
    loss = F.cross_entropy(Tensor(LOGITS), PROBS, reduction)
    theirs = TF.cross_entropy(torch.tensor(LOGITS), torch.tensor(PROBS), reduction=reduction)
    np.testing.assert_allclose(loss.data, theirs.numpy(), rtol=1e-12)


def test_cross_entropy_ignore_index_and_all_ignored():
    classes = np.array([0, -100, 1, -100, 2])
    check_op(
        lambda z: F.cross_entropy(z, classes),
        [LOGITS],
        **torch_reference(lambda z: TF.cross_entropy(z, torch.tensor(classes))),
    )
    all_ignored = F.cross_entropy(Tensor(LOGITS), np.full(5, 7), ignore_index=7)
    assert np.isnan(all_ignored.item())  # 0/0, as PyTorch


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_torch(reduction):
    for log_probs, classes in ((LOGITS, CLASSES), (LOGITS_3D, CLASSES_2D), (LOGITS[1], CLASSES[1])):
        check_op(
            lambda z: F.nll_loss(F.log_softmax(z, axis=min(1, z.ndim - 1)), classes, reduction),
            [log_probs],
            **torch_reference(
                lambda z: TF.nll_loss(
                    TF.log_softmax(z, dim=min(1, z.ndim - 1)),
                    torch.tensor(classes),
                    reduction=reduction,
                )
            ),
            atol=1e-12,
        )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_losses_and_mse_take_reduction_and_pos_weight(reduction):
    p, y = RNG.uniform(0.05, 0.95, size=(3, 4)), RNG.uniform(size=(3, 4))
    pos_weight = np.array([0.5, 1.0, 2.0, 3.0])
    cases = [
        (
            lambda a, b: F.binary_cross_entropy(a, b, reduction),
            lambda a, b: TF.binary_cross_entropy(a, b, reduction=reduction),
            [p, y],
        ),
        (
            lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction),
            lambda a, b: TF.binary_cross_entropy_with_logits(a, b, reduction=reduction),
            [A, y],
        ),
        (
            lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction, pos_weight=pos_weight),
            lambda a, b: TF.binary_cross_entropy_with_logits(
                a, b, reduction=reduction, pos_weight=torch.tensor(pos_weight)
            ),
            [A, y],
        ),
        (
            lambda a, b: F.mse_loss(a, b, reduction),
            lambda a, b: TF.mse_loss(a, b, reduction=reduction),
            [A, y],
        ),
    ]
    for ours, theirs, inputs in cases:
        check_op(ours, inputs, **torch_reference(theirs), atol=1e-12)


def test_loss_errors_name_the_argument():
    z = Tensor(LOGITS)
    for loss, args in (
        (F.cross_entropy, (z, CLASSES)),
        (F.nll_loss, (z, CLASSES)),
        (F.mse_loss, (z, LOGITS)),
        (F.binary_cross_entropy_with_logits, (z, LOGITS)),
    ):
        with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'"):
            loss(*args, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        F.cross_entropy(z, CLASSES, label_smoothing=1.5)
    with pytest.raises(ValueError, match="pos_weight of shape"):
        F.binary_cross_entropy_with_logits(z, LOGITS, pos_weight=np.ones(3))
    with pytest.raises(ValueError, match=r"targets must be in \[0, 4\)"):
        F.nll_loss(z, np.array([0, 1, 2, 3, 4]))


def test_every_new_op_has_a_rule_text_for_the_explorer():
    from tinybn.conv import avg_pool2d, conv2d, max_pool2d, pad2d
    from tinybn.viz.rules import TENSOR_RULES

    t = Tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    outputs = [
        t.where(Tensor(t.data > 0), 0.0),
        t.maximum(0.5),
        t.minimum(0.5),
        t.min(),
        t.logsumexp(),
        t[:, :, :1].expand(2, 1, 4, 4),
        t.rsqrt(),
        t.leaky_relu(),
        conv2d(t, Tensor(np.ones((1, 1, 2, 2)), requires_grad=True)),
        max_pool2d(t, 2),
        avg_pool2d(t, 2),
        *(pad2d(t, (1, 1, 1, 1), mode) for mode in ("reflect", "replicate", "circular")),
    ]
    for out in outputs:
        assert out.op in TENSOR_RULES, out.op
        assert len(TENSOR_RULES[out.op]) >= len(out.parents)
