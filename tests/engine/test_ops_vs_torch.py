"""Every Tensor and Value op with a PyTorch twin, through ``helpers.check_op``: the output and
the gradient of every input equal torch's (float64, ``out.backward(dout)`` with random
weights dout) and central finite differences. Broadcasting shapes included: their grads are
summed back to each input's shape."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check_op, torch_reference

from tinybn.tensor import concatenate, stack

torch = pytest.importorskip("torch")

MASK = np.array([[True, False, True, True], [False, True, False, True], [True, True, False, False]])


def normal(shape, rng):
    return rng.normal(size=shape)


def positive(shape, rng):
    return rng.uniform(0.5, 2.0, size=shape)


def apart(shape, rng):
    """Values at least 0.1 apart (no ties: max/min/sort grads are unique) and from 0."""
    n = int(np.prod(shape))
    return rng.permutation(np.linspace(-2.0, 2.0, n) + 0.05).reshape(shape)


# (id, tinybn fn, torch fn, input shapes, sampler of the inputs)
TENSOR_OPS = [
    ("add", lambda a, b: a + b, lambda a, b: a + b, [(3, 4), (3, 4)], normal),
    ("add row broadcast", lambda a, b: a + b, lambda a, b: a + b, [(3, 4), (4,)], normal),
    ("add outer broadcast", lambda a, b: a + b, lambda a, b: a + b, [(3, 1), (1, 4)], normal),
    ("add a number", lambda a: a + 2.5, lambda a: a + 2.5, [(3, 4)], normal),
    ("number plus", lambda a: 2.5 + a, lambda a: 2.5 + a, [(3, 4)], normal),
    ("sub", lambda a, b: a - b, lambda a, b: a - b, [(3, 4), (3, 4)], normal),
    ("sub broadcast", lambda a, b: a - b, lambda a, b: a - b, [(2, 3, 4), (3, 1)], normal),
    ("number minus", lambda a: 2.5 - a, lambda a: 2.5 - a, [(3, 4)], normal),
    ("mul", lambda a, b: a * b, lambda a, b: a * b, [(3, 4), (3, 4)], normal),
    ("mul broadcast", lambda a, b: a * b, lambda a, b: a * b, [(3, 4), (3, 1)], normal),
    ("mul by itself", lambda a: a * a, lambda a: a * a, [(3, 4)], normal),
    ("number times", lambda a: -1.5 * a, lambda a: -1.5 * a, [(3, 4)], normal),
    ("div", lambda a, b: a / b, lambda a, b: a / b, [(3, 4), (3, 4)], positive),
    ("div broadcast", lambda a, b: a / b, lambda a, b: a / b, [(3, 4), (4,)], positive),
    ("number over", lambda a: 3.0 / a, lambda a: 3.0 / a, [(3, 4)], positive),
    ("neg", lambda a: -a, lambda a: -a, [(3, 4)], normal),
    ("pow 2", lambda a: a**2, lambda a: a**2, [(3, 4)], normal),
    ("pow 3", lambda a: a**3, lambda a: a**3, [(3, 4)], normal),
    ("pow 0.5", lambda a: a**0.5, lambda a: a**0.5, [(3, 4)], positive),
    ("pow -1.5", lambda a: a**-1.5, lambda a: a**-1.5, [(3, 4)], positive),
    ("rpow 2", lambda a: 2.0**a, lambda a: 2.0**a, [(3, 4)], normal),
    ("matmul", lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4, 5)], normal),
    ("matmul vector", lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4,)], normal),
    ("vector matmul", lambda a, b: a @ b, lambda a, b: a @ b, [(4,), (4, 3)], normal),
    ("dot", lambda a, b: a @ b, lambda a, b: a @ b, [(4,), (4,)], normal),
    ("batched matmul", lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (4, 2)], normal),
    ("matmul both batched", lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (2, 4, 2)], normal),
    ("exp", lambda a: a.exp(), torch.exp, [(3, 4)], normal),
    ("log", lambda a: a.log(), torch.log, [(3, 4)], positive),
    ("sqrt", lambda a: a.sqrt(), torch.sqrt, [(3, 4)], positive),
    ("rsqrt", lambda a: a.rsqrt(), torch.rsqrt, [(3, 4)], positive),
    ("tanh", lambda a: a.tanh(), torch.tanh, [(3, 4)], normal),
    ("sigmoid", lambda a: a.sigmoid(), torch.sigmoid, [(3, 4)], normal),
    ("relu", lambda a: a.relu(), torch.relu, [(3, 4)], apart),
    (
        "leaky_relu",
        lambda a: a.leaky_relu(0.1),
        lambda a: torch.nn.functional.leaky_relu(a, 0.1),
        [(3, 4)],
        apart,
    ),  # noqa: E501
    ("abs", lambda a: a.abs(), torch.abs, [(3, 4)], apart),
    ("clip", lambda a: a.clip(-0.5, 0.7), lambda a: a.clamp(-0.5, 0.7), [(3, 4)], apart),
    ("clip below only", lambda a: a.clip(min=0.2), lambda a: a.clamp(min=0.2), [(3, 4)], apart),
    ("sum", lambda a: a.sum(), torch.sum, [(3, 4)], normal),
    ("sum axis 0", lambda a: a.sum(axis=0), lambda a: a.sum(dim=0), [(3, 4)], normal),
    (
        "sum axis -1 keepdims",
        lambda a: a.sum(axis=-1, keepdims=True),
        lambda a: a.sum(dim=-1, keepdim=True),
        [(3, 4)],
        normal,
    ),  # noqa: E501
    (
        "sum axes (0, 2)",
        lambda a: a.sum(axis=(0, 2)),
        lambda a: a.sum(dim=(0, 2)),
        [(2, 3, 4)],
        normal,
    ),  # noqa: E501
    ("mean", lambda a: a.mean(), torch.mean, [(3, 4)], normal),
    ("mean axis 1", lambda a: a.mean(axis=1), lambda a: a.mean(dim=1), [(3, 4)], normal),
    (
        "mean axes keepdims",
        lambda a: a.mean(axis=(0, 2), keepdims=True),
        lambda a: a.mean(dim=(0, 2), keepdim=True),
        [(2, 3, 4)],
        normal,
    ),  # noqa: E501
    ("var biased", lambda a: a.var(), lambda a: a.var(correction=0), [(3, 4)], normal),
    (
        "var axis 0 unbiased",
        lambda a: a.var(axis=0, unbiased=True),
        lambda a: a.var(dim=0),
        [(3, 4)],
        normal,
    ),  # noqa: E501
    (
        "var correction 2",
        lambda a: a.var(axis=1, correction=2),
        lambda a: a.var(dim=1, correction=2),
        [(3, 5)],
        normal,
    ),  # noqa: E501
    (
        "std biased keepdims",
        lambda a: a.std(axis=1, keepdims=True),
        lambda a: a.std(dim=1, correction=0, keepdim=True),
        [(3, 4)],
        normal,
    ),  # noqa: E501
    ("std unbiased", lambda a: a.std(unbiased=True), lambda a: a.std(), [(3, 4)], normal),
    ("max", lambda a: a.max(), torch.max, [(3, 4)], apart),
    ("max axis 1", lambda a: a.max(axis=1), lambda a: a.amax(dim=1), [(3, 4)], apart),
    (
        "max axis 0 keepdims",
        lambda a: a.max(axis=0, keepdims=True),
        lambda a: a.amax(dim=0, keepdim=True),
        [(3, 4)],
        apart,
    ),  # noqa: E501
    ("min", lambda a: a.min(), torch.min, [(3, 4)], apart),
    ("min axis 0", lambda a: a.min(axis=0), lambda a: a.amin(dim=0), [(3, 4)], apart),
    (
        "logsumexp axis 1",
        lambda a: a.logsumexp(axis=1),
        lambda a: a.logsumexp(dim=1),
        [(3, 4)],
        normal,
    ),  # noqa: E501
    ("logsumexp all", lambda a: a.logsumexp(), lambda a: a.logsumexp(dim=(0, 1)), [(3, 4)], normal),  # noqa: E501
    ("maximum", lambda a, b: a.maximum(b), torch.maximum, [(3, 4), (3, 4)], apart),
    ("maximum broadcast", lambda a, b: a.maximum(b), torch.maximum, [(3, 4), (4,)], normal),
    ("minimum", lambda a, b: a.minimum(b), torch.minimum, [(3, 4), (3, 4)], apart),
    (
        "where",
        lambda a, b: a.where(MASK, b),
        lambda a, b: torch.where(torch.tensor(MASK), a, b),
        [(3, 4), (3, 4)],
        normal,
    ),  # noqa: E501
    ("reshape", lambda a: a.reshape(4, 3), lambda a: a.reshape(4, 3), [(3, 4)], normal),
    ("reshape -1", lambda a: a.reshape(-1), lambda a: a.reshape(-1), [(2, 3, 2)], normal),
    ("transpose", lambda a: a.transpose(), lambda a: a.T, [(3, 4)], normal),
    ("T", lambda a: a.T, lambda a: a.T, [(3, 4)], normal),
    (
        "transpose dims 0, 2",
        lambda a: a.transpose(0, 2),
        lambda a: a.transpose(0, 2),
        [(2, 3, 4)],
        normal,
    ),  # noqa: E501
    ("permute", lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), [(2, 3, 4)], normal),
    ("expand", lambda a: a.expand(2, 3, 4), lambda a: a.expand(2, 3, 4), [(3, 1)], normal),
    ("index row", lambda a: a[1], lambda a: a[1], [(3, 4)], normal),
    ("slice", lambda a: a[1:, ::2], lambda a: a[1:, ::2], [(3, 4)], normal),
    ("index repeated rows", lambda a: a[[0, 2, 0]], lambda a: a[[0, 2, 0]], [(3, 4)], normal),
    ("boolean mask", lambda a: a[MASK], lambda a: a[torch.tensor(MASK)], [(3, 4)], normal),
    (
        "concatenate",
        lambda a, b: concatenate([a, b], axis=1),
        lambda a, b: torch.cat([a, b], dim=1),
        [(3, 2), (3, 4)],
        normal,
    ),  # noqa: E501
    (
        "stack",
        lambda a, b: stack([a, b], axis=0),
        lambda a, b: torch.stack([a, b]),
        [(3, 4), (3, 4)],
        normal,
    ),  # noqa: E501
    (
        "a small network's expression",
        lambda x, w, b: ((x @ w + b).tanh() * 2.0 - (x @ w).sigmoid()).sum(axis=0),
        lambda x, w, b: ((x @ w + b).tanh() * 2.0 - (x @ w).sigmoid()).sum(dim=0),
        [(5, 3), (3, 2), (2,)],
        normal,
    ),
]


@pytest.mark.parametrize(
    ("ours", "theirs", "shapes", "sample"),
    [row[1:] for row in TENSOR_OPS],
    ids=[row[0] for row in TENSOR_OPS],
)
def test_tensor_op_equals_torch(ours, theirs, shapes, sample):
    rng = np.random.default_rng(len(shapes) + sum(map(len, shapes)))
    inputs = [sample(shape, rng) for shape in shapes]
    check_op(ours, inputs, **torch_reference(theirs))


# Value (the scalar engine) ops: the same twins on 0-d tensors
VALUE_OPS = [
    ("add", lambda a, b: a + b, lambda a, b: a + b, (0.7, -1.3)),
    ("sub", lambda a, b: a - b, lambda a, b: a - b, (0.7, -1.3)),
    ("mul", lambda a, b: a * b, lambda a, b: a * b, (0.7, -1.3)),
    ("div", lambda a, b: a / b, lambda a, b: a / b, (0.7, -1.3)),
    ("number over", lambda a: 2.0 / a, lambda a: 2.0 / a, (1.3,)),
    ("number minus", lambda a: 2.0 - a, lambda a: 2.0 - a, (1.3,)),
    ("neg", lambda a: -a, lambda a: -a, (1.3,)),
    ("pow 3", lambda a: a**3, lambda a: a**3, (-1.3,)),
    ("pow -0.5", lambda a: a**-0.5, lambda a: a**-0.5, (1.3,)),
    ("rpow", lambda a: 3.0**a, lambda a: 3.0**a, (0.4,)),
    ("exp", lambda a: a.exp(), torch.exp, (0.4,)),
    ("log", lambda a: a.log(), torch.log, (0.4,)),
    ("sqrt", lambda a: a.sqrt(), torch.sqrt, (0.4,)),
    ("tanh", lambda a: a.tanh(), torch.tanh, (0.4,)),
    ("sigmoid", lambda a: a.sigmoid(), torch.sigmoid, (-0.4,)),
    ("relu of a positive", lambda a: a.relu(), torch.relu, (0.4,)),
    ("relu of a negative", lambda a: a.relu(), torch.relu, (-0.4,)),
    (
        "one neuron",
        lambda x, w, b: (x * w + b).tanh() * (x * w + b).sigmoid(),
        lambda x, w, b: (x * w + b).tanh() * (x * w + b).sigmoid(),
        (0.5, -1.2, 0.3),
    ),
    (
        "batch norm of one value against the mean of two",
        lambda x, y: (x - (x + y) / 2) / (((x - y) ** 2 / 4 + 1e-5) ** 0.5),
        lambda x, y: (x - (x + y) / 2) / (((x - y) ** 2 / 4 + 1e-5) ** 0.5),
        (1.5, -0.5),
    ),
]


@pytest.mark.parametrize(
    ("ours", "theirs", "inputs"),
    [row[1:] for row in VALUE_OPS],
    ids=[row[0] for row in VALUE_OPS],
)
def test_value_op_equals_torch(ours, theirs, inputs):
    check_op(ours, inputs, **torch_reference(theirs))


def test_the_tables_check_what_they_claim():
    """A wrong twin is caught: the helper is not vacuous (tanh checked against sigmoid)."""
    with pytest.raises(AssertionError, match="output"):
        check_op(lambda a: a.tanh(), [np.linspace(-1, 1, 5)], **torch_reference(torch.sigmoid))
    with pytest.raises(AssertionError, match="grad of input 1"):  # a wrong gradient rule
        check_op(
            lambda a, b: a * b,
            [np.ones(3), np.full(3, 2.0)],
            **torch_reference(lambda a, b: a * b.detach()),
            fd=False,
        )
