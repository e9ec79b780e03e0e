"""The Tensor engine: every op's output and gradient (with broadcasting) vs numpy and finite
differences in float64; dtypes, grad mode, errors, anomaly detection and losses."""

import numpy as np
import pytest
from helpers import check_op, garbage_after_building
from hypothesis import given, settings
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import tinybn as tb
from tinybn import Tensor, Value
from tinybn import functional as F
from tinybn.check import GradientCheckError, check_tensor_grad
from tinybn.fast.paths import chain_order

RNG = np.random.default_rng(7)


def randn(*shape):
    return RNG.normal(size=shape)


def away_from_zero(*shape, low=0.3):
    """Random values with |v| >= low, so kinks (relu, abs) and poles (1/x) are far away."""
    return RNG.uniform(low, 2.0, size=shape) * RNG.choice([-1.0, 1.0], size=shape)


def positive(*shape):
    return RNG.uniform(0.3, 3.0, size=shape)


# -- binary arithmetic, broadcasting in both directions --------------------------------------------

BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((4,), (3, 4)),
    ((3, 1), (1, 4)),
    ((2, 3, 4), (3, 1)),
    ((), (2, 3)),
    ((2, 1, 4), (3, 1)),
]
BINARY_OPS = {
    "+": (lambda a, b: a + b, np.add),
    "-": (lambda a, b: a - b, np.subtract),
    "*": (lambda a, b: a * b, np.multiply),
    "/": (lambda a, b: a / b, np.divide),
}


@pytest.mark.parametrize("op", list(BINARY_OPS))
@pytest.mark.parametrize("shape_a, shape_b", BROADCAST_SHAPES, ids=str)
def test_binary_op_with_broadcasting(op, shape_a, shape_b):
    fn, ref = BINARY_OPS[op]
    check_op(fn, [randn(*shape_a), away_from_zero(*shape_b)], ref)


def test_broadcast_grads_are_summed_back_to_each_input_shape():
    a, b = randn(3, 1), randn(1, 4)

    def closed_form(a_, b_, dout):  # d(a·b): dout·b summed over the stretched axes
        return (dout * b_).sum(axis=1, keepdims=True), (dout * a_).sum(axis=0, keepdims=True)

    check_op(lambda x, y: x * y, [a, b], np.multiply, grad_reference=closed_form, fd=False)


def test_numbers_and_arrays_on_either_side():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    ys = [x + 1, 1 + x, x - 1, 1 - x, x * 2, 2 * x, x / 2, 2 / x, np.array([1.0, 1.0]) + x]
    assert all(isinstance(y, Tensor) for y in ys)
    assert [y.data.tolist() for y in ys[:8]] == [
        [2, 3],
        [2, 3],
        [0, 1],
        [0, -1],
        [2, 4],
        [2, 4],
        [0.5, 1],
        [2, 1],
    ]
    (np.array([3.0, 4.0]) * x).sum().backward()  # numpy on the left still builds our graph
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


# -- powers, matmul, elementwise functions ---------------------------------------------------------

UNARY_OPS = [
    ("neg", lambda a: -a, np.negative, randn),
    ("exp", lambda a: a.exp(), np.exp, randn),
    ("log", lambda a: a.log(), np.log, positive),
    ("tanh", lambda a: a.tanh(), np.tanh, randn),
    ("relu", lambda a: a.relu(), lambda a: np.maximum(a, 0), away_from_zero),
    ("sigmoid", lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), randn),
    ("sqrt", lambda a: a.sqrt(), np.sqrt, positive),
    ("abs", lambda a: a.abs(), np.abs, away_from_zero),
    ("clip", lambda a: a.clip(-0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5), away_from_zero),
    ("clip low", lambda a: a.clip(min=0.8), lambda a: np.maximum(a, 0.8), away_from_zero),
    ("pow 2", lambda a: a**2, np.square, randn),
    ("pow 3", lambda a: a**3, lambda a: a**3, randn),
    ("pow 0.5", lambda a: a**0.5, np.sqrt, positive),
    ("pow -1.5", lambda a: a**-1.5, lambda a: a**-1.5, positive),
    ("pow -1", lambda a: a**-1, lambda a: 1 / a, away_from_zero),
]


@pytest.mark.parametrize("name, fn, ref, make", UNARY_OPS, ids=[u[0] for u in UNARY_OPS])
def test_unary_op(name, fn, ref, make):
    check_op(fn, [make(3, 4)], ref)


def test_power_0_has_zero_grad_even_at_0():
    x = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    y = x**0
    y.sum().backward()
    np.testing.assert_array_equal(y.data, [1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_clip_passes_grad_only_inside():
    # as torch.clamp: the bounds themselves count as inside
    x = Tensor(np.array([-2.0, -1.0, -0.1, 0.2, 1.0, 3.0]), requires_grad=True)
    x.clip(-1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0, 1.0, 1.0, 0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_keeps_relative_precision_for_very_negative_inputs(dtype):
    # σ(z) ≈ e^z there: 0.5·(1 + tanh(z/2)) would round it to 0 (float32 already at z = −17)
    z = np.array([-700.0 if dtype == np.float64 else -80.0, -40.0, -20.0, -17.0, -1.0, 3.0, 30.0])
    y = Tensor(z.astype(dtype)).sigmoid()
    assert y.dtype == dtype
    np.testing.assert_allclose(
        y.data, 1 / (1 + np.exp(-z)), rtol=1e-6 if dtype == np.float32 else 1e-14
    )
    # so the loss of a confidently wrong float32 prediction is its true size, not the −100 clamp
    loss = F.binary_cross_entropy(Tensor(np.array([-20.0], dtype=np.float32)).sigmoid(), [1.0])
    assert loss.item() == pytest.approx(20.0, rel=1e-6)


def test_sigmoid_is_stable_for_large_inputs():
    x = Tensor(np.array([-1000.0, 1000.0]), requires_grad=True)
    y = x.sigmoid()
    y.sum().backward()
    np.testing.assert_array_equal(y.data, [0.0, 1.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((1, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (3, 4, 2)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (2, 4, 5)),
    ((2, 3, 4), (4,)),
    ((4,), (4,)),
]


@pytest.mark.parametrize("shape_a, shape_b", MATMUL_SHAPES, ids=str)
def test_matmul(shape_a, shape_b):
    check_op(lambda a, b: a @ b, [randn(*shape_a), randn(*shape_b)], np.matmul)


def test_matmul_closed_form_2d():
    a, b = randn(3, 4), randn(4, 2)
    check_op(
        lambda x, y: x @ y,
        [a, b],
        np.matmul,
        grad_reference=lambda a_, b_, dout: (dout @ b_.T, a_.T @ dout),
        fd=False,
    )


# -- reductions ------------------------------------------------------------------------------------

REDUCTIONS = [
    ("sum", lambda a: a.sum(), lambda a: a.sum()),
    ("sum axis 0", lambda a: a.sum(axis=0), lambda a: a.sum(axis=0)),
    ("sum axis -1 keep", lambda a: a.sum(-1, keepdims=True), lambda a: a.sum(-1, keepdims=True)),
    ("sum axes (0, 2)", lambda a: a.sum(axis=(0, 2)), lambda a: a.sum(axis=(0, 2))),
    ("mean", lambda a: a.mean(), lambda a: a.mean()),
    ("mean axis 1", lambda a: a.mean(axis=1), lambda a: a.mean(axis=1)),
    ("mean (0,2) keep", lambda a: a.mean((0, 2), True), lambda a: a.mean((0, 2), keepdims=True)),
    ("var", lambda a: a.var(), lambda a: a.var()),
    ("var axis 0", lambda a: a.var(axis=0), lambda a: a.var(axis=0)),
    ("var unbiased", lambda a: a.var(axis=1, unbiased=True), lambda a: a.var(axis=1, ddof=1)),
    ("var correction", lambda a: a.var(axis=2, correction=1), lambda a: a.var(axis=2, ddof=1)),
    ("var (0,2) keep", lambda a: a.var((0, 2), True), lambda a: a.var(axis=(0, 2), keepdims=True)),
    ("max", lambda a: a.max(), lambda a: a.max()),
    ("max axis 1", lambda a: a.max(axis=1), lambda a: a.max(axis=1)),
    ("max axis 0 keep", lambda a: a.max(0, keepdims=True), lambda a: a.max(0, keepdims=True)),
]


@pytest.mark.parametrize("name, fn, ref", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction(name, fn, ref):
    check_op(fn, [randn(2, 3, 4)], ref)


def test_var_is_biased_by_default_and_unbiased_on_request():
    x = Tensor(np.array([1.0, 2.0, 3.0, 6.0]))
    assert x.var().item() == pytest.approx(3.5)  # Σ(x − 3)² = 14, / 4
    assert x.var(unbiased=True).item() == pytest.approx(14 / 3)
    assert x.var(correction=1).item() == pytest.approx(14 / 3)
    with pytest.raises(ValueError, match="correction 1"):
        Tensor(np.array([1.0])).var(unbiased=True)


def test_max_ties_share_the_gradient_equally():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [5.0, 0.0, 1.0]]), requires_grad=True)
    x.max(axis=1).backward(np.array([1.0, 3.0, 2.0]))
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1, 1, 1], [2, 0, 0]])
    x.grad = None
    x.max().backward()
    np.testing.assert_allclose(x.grad, [[0, 0, 0], [0, 0, 0], [1, 0, 0]])
    y = Tensor(np.array([4.0, 1.0, 4.0, 4.0]), requires_grad=True)
    y.max().backward()
    np.testing.assert_allclose(y.grad, [1 / 3, 0, 1 / 3, 1 / 3])


def test_reductions_are_one_node():
    x = Tensor(randn(64, 3), requires_grad=True)
    for y in (x.sum(axis=0), x.mean(axis=0), x.var(axis=0)):
        assert y.parents == (x,)


def test_bad_axis_is_a_value_error():
    with pytest.raises(ValueError, match="axis 2 is out of range.*2 dimensions"):
        Tensor(randn(2, 3)).sum(axis=2)


# -- shape ops, indexing, joining ------------------------------------------------------------------

SHAPE_OPS = [
    ("reshape", lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6)),
    ("reshape tuple -1", lambda a: a.reshape((-1, 2)), lambda a: a.reshape(-1, 2)),
    ("transpose", lambda a: a.transpose(), lambda a: a.transpose()),
    ("transpose axes", lambda a: a.transpose(1, 0, 2), lambda a: a.transpose(1, 0, 2)),
    ("T", lambda a: a.T, lambda a: a.T),
    ("negative axes", lambda a: a.transpose(-1, 0, 1), lambda a: a.transpose(-1, 0, 1)),
    ("axes tuple", lambda a: a.transpose((2, 0, 1)), lambda a: a.transpose(2, 0, 1)),
    ("slice", lambda a: a[:, 1:3], lambda a: a[:, 1:3]),
    ("step slice", lambda a: a[::-1, :, ::2], lambda a: a[::-1, :, ::2]),
    ("int", lambda a: a[1], lambda a: a[1]),
    ("negative int", lambda a: a[-1, 0], lambda a: a[-1, 0]),
    ("int array", lambda a: a[np.array([1, 0, 1])], lambda a: a[np.array([1, 0, 1])]),
    ("repeated", lambda a: a[:, [2, 2, 2, 0]], lambda a: a[:, [2, 2, 2, 0]]),
    ("pairs", lambda a: a[[0, 1, 1], [2, 2, 2]], lambda a: a[[0, 1, 1], [2, 2, 2]]),
    ("mask", lambda a: a[a.data > 0], lambda a: a[a > 0]),
]


@pytest.mark.parametrize("name, fn, ref", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_op(name, fn, ref):
    check_op(fn, [randn(2, 3, 4)], ref)


def test_repeated_indices_scatter_add():
    x = Tensor(np.zeros(4), requires_grad=True)
    x[np.array([1, 1, 3, 1])].backward(np.array([1.0, 10.0, 100.0, 1000.0]))
    np.testing.assert_array_equal(x.grad, [0.0, 1011.0, 0.0, 100.0])


def test_index_with_a_tensor_of_integers():
    x = Tensor(np.arange(5.0), requires_grad=True)
    idx = Tensor(np.array([4, 4, 0]))
    assert idx.dtype.kind == "i"
    x[idx].sum().backward()
    np.testing.assert_array_equal(x.grad, [1, 0, 0, 0, 2])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(axis):
    shapes = {0: [(2, 3), (1, 3), (4, 3)], 1: [(2, 1), (2, 3), (2, 2)], -1: [(2, 1), (2, 3)]}
    arrays = [randn(*s) for s in shapes[axis]]
    check_op(lambda *ts: tb.concatenate(ts, axis=axis), arrays, lambda *a: np.concatenate(a, axis))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(axis):
    arrays = [randn(2, 3) for _ in range(3)]
    check_op(lambda *ts: tb.stack(ts, axis=axis), arrays, lambda *a: np.stack(a, axis))


def test_a_composite_graph_with_reuse():
    def f(w, x, b):
        h = (x @ w + b).tanh()
        return (h * h).mean(axis=0) + h.max(axis=0) - (h - h.mean()).abs().sum(axis=0)

    check_op(f, [randn(3, 4), randn(5, 3), randn(4)], None)


# -- autograd semantics ----------------------------------------------------------------------------


def test_backward_twice_accumulates_and_zero_grad_resets():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    hidden = a * 3.0
    loss = (hidden * a).sum()  # 3a²
    loss.backward()
    np.testing.assert_array_equal(a.grad, [6.0, 12.0])
    np.testing.assert_array_equal(hidden.grad, [1.0, 2.0])
    with pytest.warns(UserWarning, match="without zero_grad"):
        loss.backward()
    np.testing.assert_array_equal(a.grad, [12.0, 24.0])  # leaf grads add up
    np.testing.assert_array_equal(hidden.grad, [2.0, 4.0])  # so do interior grads
    loss.zero_grad()
    assert a.grad is None and hidden.grad is None


def test_first_grads_are_never_shared_between_tensors():
    # a leaf's first grad is taken without a copy only when the rule made it for that leaf
    # alone; the incoming grad (add), or one array for two parents, is copied
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    total = a + b
    total.backward(np.array([1.0, 1.0]))
    assert a.grad is not b.grad and a.grad is not total.grad
    a.grad += 10.0  # an optimizer may change a leaf's grad in place
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    np.testing.assert_array_equal(total.grad, [1.0, 1.0])
    c = Tensor(np.array([1.5, -2.0]), requires_grad=True)
    (c * c).sum().backward()  # two fresh arrays for the same leaf: the second adds in place
    np.testing.assert_array_equal(c.grad, [3.0, -4.0])
    from tinybn.fast.paths import _made_for_one

    g, other, incoming = np.ones(2), np.ones(2), np.ones(2)
    assert _made_for_one(g, incoming, [(a, g), (b, other)])
    assert not _made_for_one(g, incoming, [(a, g), (b, g)])  # one array handed to two parents
    assert not _made_for_one(incoming, incoming, [(a, incoming), (b, other)])
    view = g[:1]
    assert not _made_for_one(view, incoming, [(a, view), (b, other)])  # a view of another array


def test_first_grad_takes_the_leaf_dtype():
    w = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    x = Tensor(np.array([0.5, 0.25]))  # float64: w * x is float64
    (w * x).sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad, [0.5, 0.25])


def test_implied_seed_is_a_one_of_the_output_shape():
    a = Tensor(np.array([[2.0]], dtype=np.float32), requires_grad=True)
    a.backward()  # a leaf root: its grad is its own writable array
    assert a.grad.shape == (1, 1) and a.grad.dtype == np.float32
    a.grad += 1.0
    np.testing.assert_array_equal(a.grad, [[2.0]])
    b = Tensor(np.array([[3.0]]), requires_grad=True)
    (b * b).backward()
    np.testing.assert_array_equal(b.grad, [[6.0]])


def test_topological_order_without_leaves_is_the_interior_in_order():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    h = a * b
    loss = ((h + a) * h).sum()
    full = tb.autograd.topological_order(loss)
    interior = tb.autograd.topological_order(loss, leaves=False)
    assert interior == [node for node in full if node._parents]
    assert len(full) == len(interior) + 2
    assert tb.autograd.topological_order(a, leaves=False) == []
    assert tb.autograd.topological_order(a) == [a]


def test_chain_order_is_the_topological_order_of_a_chain_and_none_otherwise():
    a = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    w = Tensor(np.array([0.5, 3.0]), requires_grad=True)
    h = (a * w).relu()
    square = h * h  # the same parent twice is still a chain
    loss = (square + w).sum()
    assert chain_order(loss) == tb.autograd.topological_order(loss, leaves=False)
    diamond = ((a * w) + (a * 2.0)).sum()  # two parents with parents
    assert chain_order(diamond) is None
    # backward through either kind of graph gives the closed-form grads
    loss.backward()
    np.testing.assert_allclose(a.grad, [2 * 0.5 * 0.5 * 1.0, 0.0])
    np.testing.assert_allclose(w.grad, [2 * 0.5 * 1.0 * 1.0 + 1.0, 1.0])
    a.grad = w.grad = None
    diamond.backward()
    np.testing.assert_allclose(a.grad, [2.5, 5.0])
    np.testing.assert_allclose(w.grad, [1.0, -2.0])


def test_scalar_is_a_read_only_0d_array_for_floats_and_the_number_otherwise():
    from tinybn.fast.paths import scalar as _scalar

    half = _scalar(0.5, np.dtype(np.float32))
    assert half.shape == () and half.dtype == np.float32 and not half.flags.writeable
    assert _scalar(0.5, np.dtype(np.float32)) is half  # cached
    assert _scalar(0, np.dtype(np.int64)) == 0 and type(_scalar(0, np.dtype(np.int64))) is int
    assert type(_scalar(0.0, np.dtype(np.int64))) is float  # 0 and 0.0 are cached apart
    values = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    np.testing.assert_array_equal(values * _scalar(0.3, values.dtype), values * 0.3)


def test_tensor_keeps_a_plain_array_and_converts_the_rest():
    array = np.array([1.0, 2.0], dtype=np.float32)
    assert Tensor(array).data is array  # no copy, as np.asarray
    scalar = Tensor(np.float32(2.5))
    assert type(scalar.data) is np.ndarray and scalar.shape == () and scalar.dtype == np.float32
    masked = Tensor(np.ma.array([1.0, 2.0]))
    assert type(masked.data) is np.ndarray
    for bad in (np.array(["a", "b"]), np.array([1.0, None], dtype=object)):
        with pytest.raises(TypeError, match="numeric"):
            Tensor(bad)


def test_relu_grad_keeps_the_dtype_and_is_zero_off_the_positive_side():
    x = Tensor(np.array([-1.0, 0.0, 2.0, 3.0], dtype=np.float32), requires_grad=True)
    upstream = np.array([5.0, 6.0, 7.0, 8.0], dtype=np.float32)
    y = x.relu()
    y.backward(upstream)
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 7.0, 8.0])
    np.testing.assert_array_equal(upstream, [5.0, 6.0, 7.0, 8.0])  # not modified in place
    # every dtype keeps numpy's own result of max(x, 0)
    for dtype in (np.float64, np.float16, np.int32, np.uint8, np.bool_):
        values = np.array([-2, 0, 3]).astype(dtype)
        got = Tensor(values).relu().data
        assert got.dtype == np.maximum(values, 0).dtype
        np.testing.assert_array_equal(got, np.maximum(values, 0))


def test_constants_get_no_grad():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = Tensor(np.array([5.0, 6.0]))
    (a * c).sum().backward()
    assert c.grad is None and not c.requires_grad
    np.testing.assert_array_equal(a.grad, [5.0, 6.0])


def test_no_grad_detach_item_numpy():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with tb.no_grad():
        b = a * 2
        assert not tb.is_grad_enabled()
        with tb.enable_grad():
            assert (a * 2).requires_grad
    assert tb.is_grad_enabled()
    assert not b.requires_grad and b.parents == ()
    d = (a * 2).detach()
    assert (
        not d.requires_grad and d.parents == () and np.shares_memory(d.data, (a * 1).data) is False
    )
    assert (a * a).sum().item() == 5.0 and isinstance(a.sum().item(), float)
    assert a.numpy() is a.data
    with pytest.raises(ValueError, match="does not require grad"):
        b.sum().backward()


def test_tensor_graphs_hold_no_reference_cycles():
    def build():
        w = Tensor(randn(3, 3), requires_grad=True)
        x = Tensor(randn(4, 3))
        F.batch_norm((x @ w).relu(), Tensor(np.ones(3)), Tensor(np.zeros(3))).mean().backward()

    assert garbage_after_building(build, Tensor) == 0


# -- dtypes ----------------------------------------------------------------------------------------


def test_dtype_rules():
    assert Tensor(1.5).dtype == np.float32 and Tensor(3).dtype == np.float32
    assert Tensor([1, 2]).dtype == np.float32 and Tensor([[1.0], [2.0]]).dtype == np.float32
    assert Tensor(np.zeros(2)).dtype == np.float64
    assert Tensor(np.zeros(2, dtype=np.float32)).dtype == np.float32
    assert Tensor(np.array([1, 2])).dtype == np.int64
    assert Tensor(np.array([1, 2], dtype=np.int32)).dtype == np.int32
    x64 = Tensor(np.ones(2), requires_grad=True)
    x32 = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    for x in (x64, x32):  # Python numbers take the tensor's dtype
        assert {(x + 1).dtype, (2.5 * x).dtype, (x**2).dtype, (1 / x).dtype} == {x.dtype}
        (x * 3.0).sum().backward()
        assert x.grad.dtype == x.dtype
    assert (Tensor(np.array([1, 2])) + 1).dtype.kind == "i"  # int + int stays int


def test_default_dtype_can_be_float64():
    try:
        tb.set_default_dtype(np.float64)
        assert Tensor([1.0]).dtype == np.float64
        with pytest.raises(TypeError, match="floating"):
            tb.set_default_dtype(np.int32)
    finally:
        tb.set_default_dtype(np.float32)
    assert tb.get_default_dtype() == np.float32


def test_bad_data_and_int_grads_are_type_errors():
    with pytest.raises(TypeError, match="numbers"):
        Tensor("abc")
    with pytest.raises(TypeError, match="numeric"):
        Tensor(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="only floating"):
        Tensor(np.array([1, 2]), requires_grad=True)


# -- errors name the op and both shapes ------------------------------------------------------------


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_non_broadcasting_shapes_name_op_and_both_shapes(op):
    fn = BINARY_OPS[op][0]
    with pytest.raises(ValueError, match=rf"^\{op}: shapes \(2, 3\) and \(4,\) do not broadcast"):
        fn(Tensor(np.ones((2, 3))), Tensor(np.ones(4)))


def test_matmul_and_reshape_shape_errors():
    with pytest.raises(ValueError, match=r"@: shapes \(2, 3\) and \(4, 5\) cannot be multiplied"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"@: shapes \(2, 2, 3\) and \(3, 3, 1\)"):
        Tensor(np.ones((2, 2, 3))) @ Tensor(np.ones((3, 3, 1)))
    with pytest.raises(ValueError, match="at least one dimension"):
        Tensor(np.ones(3)) @ Tensor(np.array(2.0))
    with pytest.raises(ValueError, match=r"reshape: cannot reshape \(2, 3\) to \(4,\)"):
        Tensor(np.ones((2, 3))).reshape(4)
    with pytest.raises(ValueError, match=r"concatenate: shapes \(2, 3\), \(2, 4\)"):
        tb.concatenate([Tensor(np.ones((2, 3))), Tensor(np.ones((2, 4)))])
    with pytest.raises(ValueError, match=r"stack: shapes \(2,\), \(3,\) differ"):
        tb.stack([Tensor(np.ones(2)), Tensor(np.ones(3))])


def test_backward_on_non_scalar_needs_a_grad():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"single-element output.*shape \(2, 3\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"grad shape \(3,\) != output shape \(2, 3\)"):
        (x * 2).backward(np.ones(3))
    (x * 2).backward(np.full((2, 3), 0.5))
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))


def test_domain_errors():
    with pytest.raises(ValueError, match="log"):
        Tensor(np.array([1.0, -1.0])).log()
    with pytest.raises(ValueError, match="sqrt"):
        Tensor(np.array([-1.0])).sqrt()
    with pytest.raises(ValueError, match="negative base to fractional power"):
        Tensor(np.array([-1.0, 2.0])) ** 0.5
    with pytest.raises(TypeError, match="exponent"):
        Tensor(np.ones(2)) ** Tensor(np.ones(2))
    with pytest.raises(ValueError, match=r"number \*\* Tensor needs a positive base, got -2"):
        (-2) ** Tensor(np.ones(2))


def test_number_to_the_power_of_a_tensor():
    # d(c^x)/dx = c^x·ln c, against the closed form and finite differences
    check_op(
        lambda x: 3.0**x,
        [randn(3, 4)],
        lambda x: 3.0**x,
        grad_reference=lambda x, dout: [dout * 3.0**x * np.log(3.0)],
    )


def test_detect_anomaly_names_the_first_op_that_made_nan_or_inf():
    x = Tensor(np.array([0.0, 1.0]), requires_grad=True)
    with np.errstate(all="ignore"):
        silent = ((x * 0) / x).exp()  # NaN flows silently without anomaly detection
        assert np.isnan(silent.data[0])
        with tb.detect_anomaly():
            with pytest.raises(FloatingPointError, match=r"op '/' produced NaN/inf"):
                ((x * 0) / x).exp()
            with pytest.raises(FloatingPointError, match=r"op 'log'"):
                x.log()
    assert (x.log().data[0]) == -np.inf  # outside the context: no check


# -- losses: numpy closed forms and finite differences ---------------------------------------------


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_cross_entropy():
    logits, targets = randn(6, 4) * 3, np.array([0, 3, 1, 1, 2, 0])
    onehot = np.eye(4)[targets]

    def reference(z):
        return -np.log(softmax(z)[np.arange(6), targets]).mean()

    check_op(
        lambda z: F.cross_entropy(z, targets),
        [logits],
        reference,
        grad_reference=lambda z, dout: [dout * (softmax(z) - onehot) / 6],
    )
    # a Tensor of int targets works the same; huge logits do not overflow
    big = Tensor(np.array([[1000.0, 0.0], [0.0, 1000.0]]))
    assert F.cross_entropy(big, Tensor(np.array([0, 0]))).item() == pytest.approx(500.0)


def test_cross_entropy_bad_targets():
    logits = Tensor(randn(3, 4))
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"in \[0, 4\)"):
        F.cross_entropy(logits, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match=r"targets shape \(2,\)"):
        F.cross_entropy(logits, np.array([0, 1]))


def test_binary_cross_entropy():
    p, y = RNG.uniform(0.05, 0.95, size=(5, 2)), RNG.integers(0, 2, size=(5, 2)).astype(float)
    check_op(
        lambda q: F.binary_cross_entropy(q, y),
        [p],
        lambda q: -(y * np.log(q) + (1 - y) * np.log(1 - q)).mean(),
        grad_reference=lambda q, dout: [dout * (q - y) / (q * (1 - q)) / y.size],
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_at_exact_0_and_1_is_finite(dtype):
    """log is clamped at −100 as in PyTorch, and the backward is PyTorch's closed form
    (p − y)/max(p(1 − p), 1e-12)/n: finite, and large where a saturated p is wrong."""
    p = Tensor(np.array([0.0, 1.0, 0.0, 1.0, 0.5], dtype=dtype), requires_grad=True)
    y = Tensor(np.array([1.0, 0.0, 0.0, 1.0, 1.0], dtype=dtype), requires_grad=True)
    loss = F.binary_cross_entropy(p, y)
    assert loss.item() == pytest.approx((100 + 100 + 0 + 0 - np.log(0.5)) / 5, rel=1e-6)
    loss.backward()
    floor = float(dtype(1e-12))
    want = [-1 / floor / 5, 1 / floor / 5, 0.0, 0.0, -1 / 0.5 / 5]
    np.testing.assert_allclose(p.grad, want, rtol=1e-6)
    # dL/dy = (log(1 − p) − log p)/n, unclamped as in PyTorch: ±inf where p is 0 or 1
    np.testing.assert_array_equal(y.grad[:4], [np.inf, -np.inf, np.inf, -np.inf])
    assert y.grad[4] == 0.0
    # the values torch 2.14 gives for p = [0.3, 1e-20], y = [0.2, 1]
    p = Tensor(np.array([0.3, 1e-20]), requires_grad=True)
    y = Tensor(np.array([0.2, 1.0]), requires_grad=True)
    F.binary_cross_entropy(p, y).backward()
    np.testing.assert_allclose(p.grad * 2, [0.1 / 0.21, -1e12], rtol=1e-12)
    np.testing.assert_allclose(y.grad * 2, [np.log(0.7 / 0.3), np.log(1e20)], rtol=1e-12)
    # a saturated float32 sigmoid gives exactly 1.0: still a finite gradient
    z = Tensor(np.array([30.0, -30.0, 1.0], dtype=np.float32), requires_grad=True)
    F.binary_cross_entropy(z.sigmoid(), np.array([1.0, 0.0, 1.0])).backward()
    assert np.all(np.isfinite(z.grad))


def test_binary_cross_entropy_rejects_probabilities_outside_0_1():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.binary_cross_entropy(Tensor(np.array([1.5])), np.array([1.0]))
    with pytest.raises(ValueError, match=r"input shape \(2,\) != target shape \(3,\)"):
        F.binary_cross_entropy(Tensor(np.array([0.5, 0.5])), np.ones(3))


def test_binary_cross_entropy_with_logits():
    z, y = randn(4, 3) * 3, RNG.integers(0, 2, size=(4, 3)).astype(float)
    sig = 1 / (1 + np.exp(-z))
    check_op(
        lambda t: F.binary_cross_entropy_with_logits(t, y),
        [z],
        lambda t: -(y * np.log(sig) + (1 - y) * np.log(1 - sig)).mean(),
        grad_reference=lambda t, dout: [dout * (sig - y) / y.size],
    )
    # stable where sigmoid saturates: loss ≈ |z| for the wrong label, 0 for the right one
    big = Tensor(np.array([800.0, -800.0]), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(big, np.array([0.0, 0.0]))
    assert loss.item() == pytest.approx(400.0)
    loss.backward()
    np.testing.assert_allclose(big.grad, [0.5, 0.0])


def test_mse_loss():
    a, b = randn(4, 3), randn(4, 3)
    check_op(
        lambda x, t: F.mse_loss(x, t),
        [a, b],
        lambda x, t: ((x - t) ** 2).mean(),
        grad_reference=lambda x, t, dout: (2 * dout * (x - t) / 12, -2 * dout * (x - t) / 12),
    )
    with pytest.raises(ValueError, match="mse_loss"):
        F.mse_loss(Tensor(a), b[:2])


def test_log_softmax_and_softmax():
    z = randn(3, 5)
    check_op(lambda t: F.log_softmax(t), [z], lambda t: np.log(softmax(t)))
    check_op(lambda t: F.softmax(t, axis=1), [z], softmax)


# -- optional extra oracle: PyTorch (every behaviour above is already tested without it) -----------


def test_against_torch_if_available():
    torch = pytest.importorskip("torch")
    x, w, g, b = randn(6, 4), randn(4, 3), positive(3), randn(3)
    targets = np.array([0, 2, 1, 1, 0, 2])

    def loss_tinybn():
        ts = [Tensor(a.copy(), requires_grad=True) for a in (x, w, g, b)]
        h = F.batch_norm(ts[0] @ ts[1], ts[2], ts[3], 1e-5)
        loss = F.cross_entropy(h.tanh() * 2.0, targets) + F.mse_loss(h.sigmoid(), np.ones((6, 3)))
        loss.backward()
        return loss.item(), [t.grad for t in ts]

    def loss_torch():
        ts = [torch.tensor(a, requires_grad=True) for a in (x, w, g, b)]
        h = torch.nn.functional.batch_norm(ts[0] @ ts[1], None, None, ts[2], ts[3], True, 0.0, 1e-5)
        tf = torch.nn.functional
        loss = tf.cross_entropy(h.tanh() * 2.0, torch.tensor(targets)) + tf.mse_loss(
            h.sigmoid(), torch.ones(6, 3, dtype=torch.float64)
        )
        loss.backward()
        return loss.item(), [t.grad.numpy() for t in ts]

    (ours, our_grads), (theirs, their_grads) = loss_tinybn(), loss_torch()
    assert ours == pytest.approx(theirs, rel=1e-12)
    for got, want in zip(our_grads, their_grads):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_numpy_scalars_take_the_tensor_dtype():
    x = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    assert (x * np.int64(3)).dtype == np.float32 and (x + np.float64(0.5)).dtype == np.float32
    y = x ** np.int64(3)  # numpy integer exponents are numbers too
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


@settings(max_examples=40, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
def test_random_broadcast_shapes_match_finite_differences(shapes):
    a, b = (randn(*s) for s in shapes.input_shapes)
    b = b + np.sign(b) * 0.5  # keep the denominator away from 0
    check_op(lambda x, y: (x * y + x) / y - y, [a, b], lambda x, y: (x * y + x) / y - y)


def test_gradient_checker_catches_a_wrong_tensor_gradient():
    from tinybn import tensor_module

    def wrong_tanh(x):
        out = x.tanh()
        out._rule = tensor_module._exp_backward  # grad · tanh(x) instead of grad · (1 − tanh²)
        return out

    with pytest.raises(GradientCheckError, match=r"input0\[1, 2\]"):
        check_tensor_grad(wrong_tanh, [randn(2, 3)])


def test_dropout_is_inverted_and_identity_when_not_training():
    x = Tensor(np.full(2000, 3.0), requires_grad=True)
    y = F.dropout(x, 0.25, training=True, rng=np.random.default_rng(0))
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 3.0 / 0.75)  # survivors scaled by 1/(1 − p)
    assert 0.72 < kept.mean() < 0.78  # about 1 − p kept
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.75)  # the grad goes through the same mask
    assert F.dropout(x, 0.25, training=False) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).data, 0.0)
    same = [F.dropout(x, 0.5, rng=np.random.default_rng(5)).data for _ in range(2)]
    np.testing.assert_array_equal(*same)  # seeded: reproducible
    with pytest.raises(ValueError, match=r"\[0, 1\], got 1.5"):
        F.dropout(x, 1.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_matches_torch_at_the_edges(dtype):
    torch = pytest.importorskip("torch")
    p_values = np.array([0.0, 1.0, 1.0, 1e-20, 0.3, 0.5, 1 - 1e-7], dtype=dtype)
    y_values = np.array([1.0, 0.0, 1.0, 1.0, 0.2, 0.5, 0.0], dtype=dtype)
    p, y = Tensor(p_values, requires_grad=True), Tensor(y_values, requires_grad=True)
    loss = F.binary_cross_entropy(p, y)
    loss.backward()
    tp = torch.tensor(p_values, requires_grad=True)
    ty = torch.tensor(y_values, requires_grad=True)
    torch_loss = torch.nn.functional.binary_cross_entropy(tp, ty)
    torch_loss.backward()
    assert loss.item() == pytest.approx(torch_loss.item(), rel=1e-6)
    np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(y.grad, ty.grad.numpy(), rtol=1e-6)


# -- reprs; the tensor module ----------------------------------------------------------------------


def test_reprs_show_significant_digits():
    assert repr(Value(1e-9)) == "Value(data=1e-09, grad=0.0)"
    tiny = Value(1e-4)
    (tiny * 3e-4).backward()
    assert repr(tiny) == "Value(data=0.0001, grad=0.0003)"
    assert repr(Value(-1.1142234)) == "Value(data=-1.11422, grad=0.0)"
    assert repr(Value(55.0, label="b")) == "Value(label='b', data=55.0, grad=0.0)"
    assert "1.e-09" in repr(Tensor(np.array([1e-9])))
    assert repr(Tensor(np.array([3e-8, 1.0]))).startswith("Tensor([3.e-08 1.e+00]")


def test_the_tensor_module_stays_reachable():
    import tinybn.tensor_module as by_import

    from tinybn import tensor_module
    from tinybn.tensor import Tensor as FromModule

    assert FromModule is Tensor and tensor_module.Tensor is Tensor
    assert by_import is tensor_module and tensor_module.tensor is tb.tensor
