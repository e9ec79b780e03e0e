"""The fused batch-norm kernel (tinybn/fast/kernels.py) equals the composed graph and the
closed form.

The composed ``F.batch_norm`` is the reference the whole project teaches from; the fused
kernel must give the same outputs, statistics and gradients of x, γ and β — in training and
eval, for (N, C) and (N, C, L), in float32 and float64 — and the closed form of Ioffe &
Szegedy (``tinybn.check.batch_norm_backward``, an independent derivation).
"""

from __future__ import annotations

import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, nn
from tinybn import functional as F
from tinybn.check import batch_norm_backward, check_tensor_grad
from tinybn.fast import kernels
from tinybn.fast.per_channel import dot_per_channel as _dot_per_channel
from tinybn.fast.per_channel import per_channel as _per_channel

# (3000, 4) takes the kernel's BLAS path for per-channel sums (8192 values or more); the last
# three (2¹⁷ values or more) take the long-row path of the per-channel arithmetic: N a multiple
# of the samples per long row (2048 = 16·128), and not (4100 = 16·256 + 4, 1030 = 16·64 + 6)
SHAPES = [(16, 5), (6, 5, 3), (3000, 4), (2048, 64), (4100, 32), (1030, 8, 16)]
SHAPE_IDS = ["N,C", "N,C,L", "large N,C", "long rows", "long rows + rest", "long rows N,C,L"]
DTYPES = [np.float64, np.float32]


def _inputs(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    # an offset and scale per channel, so that μ and σ² matter
    x = rng.normal(size=shape) * rng.uniform(0.5, 3.0, size=(1, c) + (1,) * (len(shape) - 2))
    x += rng.normal(size=(1, c) + (1,) * (len(shape) - 2)) * 4
    return {
        "x": x.astype(dtype),
        "gamma": rng.uniform(0.5, 2.0, size=c).astype(dtype),
        "beta": rng.normal(size=c).astype(dtype),
        "dy": rng.normal(size=shape).astype(dtype),  # a weighted loss, never a plain Σ y
        "mean": rng.normal(size=c).astype(dtype),
        "var": rng.uniform(0.5, 2.0, size=c).astype(dtype),
    }


def _run(d, fused, training, eps=1e-5):
    x = Tensor(d["x"].copy(), requires_grad=True)
    gamma = Tensor(d["gamma"].copy(), requires_grad=True)
    beta = Tensor(d["beta"].copy(), requires_grad=True)
    stats = {} if training else {"mean": d["mean"], "var": d["var"]}
    y, mu, var = (kernels if fused else F).batch_norm_with_stats(x, gamma, beta, eps, **stats)
    y.backward(d["dy"])
    return {
        "y": y.data,
        "mu": mu.data,
        "var": var.data,
        "dx": x.grad,
        "dgamma": gamma.grad,
        "dbeta": beta.grad,
    }


def _tol(dtype):
    return {"rtol": 1e-10, "atol": 1e-10} if dtype == np.float64 else {"rtol": 2e-4, "atol": 2e-5}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_equals_composed(shape, dtype, training):
    d = _inputs(shape, dtype)
    composed = _run(d, fused=False, training=training)
    fused = _run(d, fused=True, training=training)
    for key, want in composed.items():
        got = fused[key]
        assert got.dtype == dtype, key
        assert got.shape == want.shape, key
        np.testing.assert_allclose(got, want, err_msg=key, **_tol(dtype))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_fused_grads_equal_the_closed_form(shape):
    d = _inputs(shape, np.float64, seed=1)
    got = _run(d, fused=True, training=True, eps=1e-3)
    dx, dgamma, dbeta = batch_norm_backward(d["dy"], d["x"], d["gamma"], eps=1e-3)
    np.testing.assert_allclose(got["dx"], dx, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(got["dgamma"], dgamma, rtol=1e-10)
    np.testing.assert_allclose(got["dbeta"], dbeta, rtol=1e-10)
    # what the closed form implies: Σ over the batch of dL/dx is 0 for each channel
    axes = (0,) if len(shape) == 2 else (0, 2)
    np.testing.assert_allclose(got["dx"].sum(axis=axes), 0.0, atol=1e-10)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_grads_equal_finite_differences(training):
    d = _inputs((7, 3, 2), np.float64, seed=2)
    stats = {} if training else {"mean": d["mean"], "var": d["var"]}

    def f(x, gamma, beta):
        return kernels.batch_norm_with_stats(x, gamma, beta, 1e-5, **stats)[0]

    check_tensor_grad(f, [d["x"], d["gamma"], d["beta"]], atol=1e-6, rtol=1e-5)


def test_fused_statistics_are_the_batch_mean_and_biased_variance():
    d = _inputs((10, 4), np.float64)
    _, mu, var = kernels.batch_norm_with_stats(Tensor(d["x"]))
    assert mu.shape == var.shape == (1, 4)
    np.testing.assert_allclose(mu.data[0], d["x"].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var.data[0], d["x"].var(axis=0), rtol=1e-12)  # ddof=0


def test_fused_is_one_node_with_the_inputs_as_parents():
    d = _inputs((8, 3), np.float64)
    x, gamma, beta = (Tensor(d[k], requires_grad=True) for k in ("x", "gamma", "beta"))
    y = kernels.batch_norm_with_stats(x, gamma, beta)[0]
    assert y.op == "batch_norm"
    assert y.parents[0] is x
    composed = F.batch_norm(x, gamma, beta)
    assert len(tb.autograd.topological_order(y)) < len(tb.autograd.topological_order(composed))


@pytest.mark.parametrize("shape", [(9, 4), (4100, 32)], ids=["small", "long rows"])
def test_fused_without_affine_and_with_a_frozen_gamma(shape):
    d = _inputs(shape, np.float64)
    plain = _run_without(d, gamma=False, beta=False)
    x = Tensor(d["x"], requires_grad=True)
    y = F.batch_norm(x)
    y.backward(d["dy"])
    np.testing.assert_allclose(plain, x.grad, rtol=1e-10, atol=1e-12)
    # γ that does not require grad: x and β still get theirs, γ gets none
    x = Tensor(d["x"], requires_grad=True)
    gamma, beta = Tensor(d["gamma"]), Tensor(d["beta"], requires_grad=True)
    kernels.batch_norm_with_stats(x, gamma, beta)[0].backward(d["dy"])
    dx, _, dbeta = batch_norm_backward(d["dy"], d["x"], d["gamma"])
    assert gamma.grad is None
    np.testing.assert_allclose(x.grad, dx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(beta.grad, dbeta, rtol=1e-10)


@pytest.mark.parametrize(
    "shape",
    [(4096, 32), (4100, 32), (1030, 8, 16), (40, 5)],
    ids=["whole long rows", "rest", "N,C,L", "short path"],
)
@pytest.mark.parametrize("op", [np.subtract, np.multiply, np.add], ids=["-", "*", "+"])
def test_per_channel_equals_numpy_broadcasting(shape, op):
    """The long-row view repeats each channel's value in the right places, also for the
    samples left over when N is not a multiple of the samples per long row, and in place."""
    rng = np.random.default_rng(8)
    a = rng.normal(size=shape)
    row = rng.normal(size=(1, shape[1]) + (1,) * (len(shape) - 2))
    want = op(a, row)
    np.testing.assert_array_equal(_per_channel(op, a, row), want)
    inplace = a.copy()
    assert _per_channel(op, inplace, row, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, want)
    # a strided input (a view of every other sample) falls back to numpy's broadcasting
    np.testing.assert_array_equal(_per_channel(op, a[::2], row), op(a[::2], row))
    # integers with a float row give floats, as numpy's own operators do
    ints = np.arange(a.size).reshape(shape)
    assert _per_channel(op, ints, row).dtype == np.float64
    np.testing.assert_array_equal(_per_channel(op, ints, row), op(ints, row))


def _run_without(d, gamma, beta):
    x = Tensor(d["x"], requires_grad=True)
    y = kernels.batch_norm_with_stats(
        x,
        Tensor(d["gamma"]) if gamma else None,
        Tensor(d["beta"]) if beta else None,
    )[0]
    assert y.shape == d["x"].shape
    np.testing.assert_allclose(y.data.mean(axis=0), 0.0, atol=1e-12)
    y.backward(d["dy"])
    return x.grad


def test_fused_grads_accumulate_over_two_backward_calls():
    d = _inputs((6, 3), np.float64)
    x = Tensor(d["x"], requires_grad=True)
    y = kernels.batch_norm_with_stats(x, Tensor(d["gamma"]), None)[0]
    y.backward(d["dy"], retain_graph=True)
    once = x.grad.copy()
    y.backward(d["dy"])
    np.testing.assert_allclose(x.grad, 2 * once, rtol=1e-12)


def test_fused_refuses_scalar_values_and_keeps_the_errors_of_batch_norm():
    rows = tb.values([[1.0, 2.0], [3.0, 5.0]], "x")
    with pytest.raises(TypeError, match="fused"):
        kernels.batch_norm_with_stats(rows)[0]
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        kernels.batch_norm_with_stats(Tensor(np.ones((1, 3))))[0]
    with pytest.raises(ValueError, match="gamma"):
        kernels.batch_norm_with_stats(Tensor(np.ones((4, 3))), Tensor(np.ones(2)))[0]


def test_batchnorm1d_runs_the_fused_kernel_and_matches_the_composed_math():
    d = _inputs((12, 4), np.float32)
    layer = nn.BatchNorm1d(4)
    x = Tensor(d["x"], requires_grad=True)
    y = layer(x)
    assert y.op == "batch_norm"  # one node: the fused kernel
    y.backward(d["dy"])
    composed = _run(
        {**d, "gamma": np.ones(4, np.float32), "beta": np.zeros(4, np.float32)},
        fused=False,
        training=True,
    )
    np.testing.assert_allclose(y.data, composed["y"], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(x.grad, composed["dx"], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(layer.weight.grad, composed["dgamma"], rtol=2e-4, atol=2e-5)
    # running statistics from the fused μ and σ²: momentum 0.1, unbiased variance
    np.testing.assert_allclose(
        layer.running_mean.data, 0.1 * d["x"].mean(axis=0), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        layer.running_var.data, 0.9 + 0.1 * d["x"].var(axis=0, ddof=1), rtol=1e-5, atol=1e-6
    )


# -- linear: y = x Wᵀ + b as one node ----------------------------------------------------------


@pytest.mark.parametrize("x_shape", [(5,), (7, 5), (2, 3, 5)], ids=["1-d", "N,in", "B,N,in"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_linear_equals_the_composed_graph(x_shape, with_bias):
    rng = np.random.default_rng(3)
    x_data, w_data, b_data = rng.normal(size=x_shape), rng.normal(size=(4, 5)), rng.normal(size=4)
    dy = rng.normal(size=x_shape[:-1] + (4,))
    results = []
    for fused in (True, False):
        x, w = Tensor(x_data, requires_grad=True), Tensor(w_data, requires_grad=True)
        b = Tensor(b_data, requires_grad=True) if with_bias else None
        if fused:
            y = F.linear(x, w, b)
            assert y.op == "linear" and len(y.parents) == (3 if with_bias else 2)
        else:
            y = x @ w.T + b if with_bias else x @ w.T
        y.backward(dy)
        results.append([y.data, x.grad, w.grad] + ([b.grad] if with_bias else []))
    for got, want in zip(*results):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # and the closed form itself, for the 2-d case: dW = dyᵀ x, db = Σ dy, dx = dy W
    if len(x_shape) == 2:
        np.testing.assert_allclose(results[0][2], dy.T @ x_data, rtol=1e-12)
        np.testing.assert_allclose(results[0][1], dy @ w_data, rtol=1e-12)


def test_linear_grads_equal_finite_differences_and_keep_float32():
    rng = np.random.default_rng(4)
    check_tensor_grad(
        F.linear, [rng.normal(size=(6, 3)), rng.normal(size=(2, 3)), rng.normal(size=2)]
    )
    x = Tensor(rng.normal(size=(6, 3)).astype(np.float32))
    w = Tensor(rng.normal(size=(2, 3)).astype(np.float32), requires_grad=True)
    y = F.linear(x, w)
    y.backward(np.ones((6, 2), np.float32))
    assert y.dtype == w.grad.dtype == np.float32
    assert x.grad is None  # an input that does not require grad gets none


def test_linear_refuses_mismatched_shapes_and_non_tensors():
    x, w = Tensor(np.ones((4, 3))), Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="do not fit"):
        F.linear(Tensor(np.ones((4, 5))), w)
    with pytest.raises(ValueError, match="bias shape"):
        F.linear(x, w, Tensor(np.ones(3)))
    with pytest.raises(TypeError, match="weight must be a Tensor"):
        F.linear(x, np.ones((2, 3)))


def test_nn_linear_runs_one_node_and_matches_x_wt_plus_b():
    layer = nn.Linear(3, 2)
    x = Tensor(np.random.default_rng(5).normal(size=(4, 3)).astype(np.float32))
    y = layer(x)
    assert y.op == "linear"
    np.testing.assert_allclose(
        y.data, x.data @ layer.weight.data.T + layer.bias.data, rtol=1e-6, atol=1e-6
    )


# -- binary cross-entropy on logits as one node -------------------------------------------------


def _bce_composed(z, y):
    return (z.relu() - z * y + ((-z.abs()).exp() + 1.0).log()).mean()


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_bce_with_logits_equals_the_composed_formula(dtype):
    rng = np.random.default_rng(6)
    z_data = rng.normal(scale=3.0, size=(8, 3)).astype(dtype)
    y_data = rng.uniform(size=(8, 3)).astype(dtype)  # soft targets too
    results = []
    for loss_fn in (F.binary_cross_entropy_with_logits, _bce_composed):
        z, y = Tensor(z_data, requires_grad=True), Tensor(y_data, requires_grad=True)
        loss = loss_fn(z, y)
        loss.backward()
        results.append((loss.data, z.grad, y.grad))
    for got, want in zip(*results):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **_tol(dtype))


def test_bce_with_logits_gradient_is_sigmoid_minus_target_even_at_zero():
    z_data = np.array([-40.0, -1.0, 0.0, 0.0, 2.0, 40.0])
    y_data = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    z = Tensor(z_data, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(z, y_data)
    loss.backward()
    expected = (1.0 / (1.0 + np.exp(-z_data)) - y_data) / z_data.size
    np.testing.assert_allclose(z.grad, expected, rtol=1e-12, atol=1e-15)
    assert np.isfinite(loss.item())  # no overflow at |z| = 40
    check_tensor_grad(
        F.binary_cross_entropy_with_logits,
        [np.array([[-1.5, 0.3], [2.0, -0.7]]), np.array([[0.0, 1.0], [0.25, 1.0]])],
    )


def test_bce_with_logits_float32_at_large_logits():
    # softplus by logaddexp, σ(z) = exp(z − softplus(z)): finite and exact at |z| = 100
    z_data = np.array([-100.0, -20.0, -1.0, 0.0, 3.0, 20.0, 100.0], dtype=np.float32)
    y_data = np.array([1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0], dtype=np.float32)
    z = Tensor(z_data, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(z, y_data)
    loss.backward()
    z64, y64 = z_data.astype(np.float64), y_data.astype(np.float64)
    softplus = np.maximum(z64, 0) + np.log1p(np.exp(-np.abs(z64)))
    assert loss.dtype == np.float32
    assert loss.item() == pytest.approx(np.mean(softplus - z64 * y64), rel=1e-6)
    sigmoid = 1.0 / (1.0 + np.exp(-z64))
    assert z.grad.dtype == np.float32
    # relative precision where σ is tiny (z ≪ 0); near σ = 1, float32 rounding (≈ 6e-8)
    np.testing.assert_allclose(z.grad, (sigmoid - y64) / z64.size, rtol=1e-5, atol=1e-8)
    assert z.grad[0] != 0 and z.grad[1] == pytest.approx(sigmoid[1] / 7, rel=1e-5)


# -- cross-entropy as one node ------------------------------------------------------------------


def _cross_entropy_composed(z, classes):
    picked = F.log_softmax(z, axis=1)[np.arange(len(classes)), classes]
    return -picked.mean()


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_cross_entropy_equals_the_composed_graph_and_is_one_node(dtype):
    rng = np.random.default_rng(7)
    z_data = rng.normal(scale=3.0, size=(9, 4)).astype(dtype)
    classes = rng.integers(0, 4, size=9)
    results = []
    for loss_fn in (F.cross_entropy, _cross_entropy_composed):
        z = Tensor(z_data, requires_grad=True)
        loss = loss_fn(z, classes)
        loss.backward(retain_graph=True)
        loss.backward()  # a second call adds the same gradient again
        results.append((loss.data, z.grad))
    for got, want in zip(*results):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **_tol(dtype))
    loss = F.cross_entropy(Tensor(z_data, requires_grad=True), classes)
    assert loss.op == "cross_entropy" and len(loss.parents) == 1


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    z_data = np.array([[1000.0, 0.0, -1000.0], [0.5, -0.25, 2.0]])  # no overflow at ±1000
    classes = np.array([2, 0])
    z = Tensor(z_data, requires_grad=True)
    loss = F.cross_entropy(z, classes)
    loss.backward()
    shifted = z_data - z_data.max(axis=1, keepdims=True)
    softmax = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(z.grad, (softmax - np.eye(3)[classes]) / 2, rtol=1e-12, atol=1e-15)
    expected = -(shifted[[0, 1], classes] - np.log(np.exp(shifted).sum(axis=1))).mean()
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    check_tensor_grad(lambda z: F.cross_entropy(z, np.array([1, 0, 1])), [np.eye(3, 2) * 1.5])


@pytest.mark.parametrize(
    "shape",
    [(4096, 64), (256, 512), (512, 4, 8), (40, 5)],
    ids=["short samples: product + BLAS", "long samples: einsum", "N,C,L", "small"],
)
def test_dot_per_channel_is_the_per_channel_sum_of_products(shape):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=shape), rng.normal(size=shape)
    axes = (0,) if len(shape) == 2 else (0, 2)
    want = (a * b).sum(axis=axes, keepdims=True)
    got = _dot_per_channel(a, b)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
