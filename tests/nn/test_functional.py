"""batch_norm and layer_norm: the math on scalars, the closed-form backward, both engines agree.

Losses are weighted sums Σ w·y, never Σ y: Σ x̂ = 0 makes Σ y's grads of x and γ exactly 0.
"""

import math

import numpy as np
import pytest
from helpers import check_op

import tinybn as tb
from tinybn import Tensor, Value, nn
from tinybn import functional as F
from tinybn.check import batch_norm_backward, check_grad
from tinybn.fast import kernels


def _fused_batch_norm(x, gamma, beta, eps):
    """F.batch_norm through the fused kernel registered for it (the layers' fast path)."""
    return kernels.batch_norm_with_stats(x, gamma, beta, eps)[0]


_fused_batch_norm.__name__ = "batch_norm"  # its errors name batch_norm

RNG = np.random.default_rng(2015)


def leaves(array):
    """A numpy array → the same nesting of leaf Values."""
    return tb.values(np.asarray(array, dtype=float).tolist())


def datas(nested):
    return np.vectorize(lambda v: v.data, otypes=[float])(np.array(nested, dtype=object))


def grads(nested):
    return np.vectorize(lambda v: v.grad, otypes=[float])(np.array(nested, dtype=object))


def weighted_sum(ys, weights):
    """L = Σ w ⊙ y over nested lists of Values, as ONE n-ary node."""
    flat = np.array(ys, dtype=object).ravel()
    return Value.sum(y * float(w) for y, w in zip(flat, np.ravel(weights)))


def run_scalar(norm, x, gamma, beta, dout, eps=1e-5, **kwargs):
    """Run ``norm`` on Value leaves; backward of Σ dout·y; return y and the grads as arrays."""
    xs, gs, bs = leaves(x), leaves(gamma), leaves(beta)
    ys = norm(xs, gs, bs, eps, **kwargs)
    weighted_sum(ys, dout).backward()
    return datas(ys), grads(xs), grads(gs), grads(bs)


def numpy_batch_norm(x, gamma, beta, eps):
    axes = (0,) if x.ndim == 2 else (0, 2)
    shape = (1, -1) if x.ndim == 2 else (1, -1, 1)
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return gamma.reshape(shape) * (x - mu) / np.sqrt(var + eps) + beta.reshape(shape)


# -- the normalizing transform, on scalars ---------------------------------------------------------


@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_gamma_1_beta_0_gives_mean_0_and_variance_shrunk_by_eps(eps):
    # a large eps makes σ²/(σ²+ε) visibly different from 1, so the test sees where ε goes
    x = RNG.normal(3.0, [[0.5, 1.0, 2.0]], size=(8, 3))
    ys = datas(F.batch_norm(leaves(x), leaves(np.ones(3)), leaves(np.zeros(3)), eps=eps))
    var = x.var(axis=0)
    np.testing.assert_allclose(ys.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ys.var(axis=0), var / (var + eps), rtol=1e-12)


def test_other_gamma_beta_give_mean_beta_and_std_gamma():
    eps = 0.3
    x = RNG.normal(-1.0, 2.0, size=(10, 4))
    gamma, beta = np.array([2.0, 0.5, -1.5, 3.0]), np.array([1.0, -2.0, 0.0, 7.5])
    ys = datas(F.batch_norm(leaves(x), leaves(gamma), leaves(beta), eps=eps))
    var = x.var(axis=0)
    np.testing.assert_allclose(ys.mean(axis=0), beta, atol=1e-12)
    np.testing.assert_allclose(ys.std(axis=0), np.abs(gamma) * np.sqrt(var / (var + eps)))


def test_identity_is_recovered_with_gamma_sqrt_var_eps_and_beta_mu():
    eps = 0.1
    x = RNG.normal(5.0, 3.0, size=(6, 3))
    mu, var = x.mean(axis=0), x.var(axis=0)
    ys = datas(F.batch_norm(leaves(x), leaves(np.sqrt(var + eps)), leaves(mu), eps=eps))
    np.testing.assert_allclose(ys, x, rtol=1e-12)


def test_the_lecture_notes_identity_claim_is_wrong():
    """The lecture notes: "if γ = 1/√(σ²+ε) and β = μ/√(σ²+ε); z_Norm = ẑ". It does not hold:
    y = (x − μ)/(σ²+ε) + μ/√(σ²+ε), neither z_Norm (that takes γ = 1, β = 0) nor the
    input (that takes γ = √(σ²+ε), β = μ, test above)."""
    eps = 1e-5
    x = RNG.normal(5.0, 3.0, size=(6, 3))
    mu, var = x.mean(axis=0), x.var(axis=0)
    root = np.sqrt(var + eps)
    ys = datas(F.batch_norm(leaves(x), leaves(1 / root), leaves(mu / root), eps=eps))
    np.testing.assert_allclose(ys, (x - mu) / (var + eps) + mu / root, rtol=1e-10)
    assert np.abs(ys - (x - mu) / root).max() > 1.0  # not z_Norm
    assert np.abs(ys - x).max() > 1.0  # not the input


@pytest.mark.parametrize("engine", ["scalar", "tensor", "fused"])
def test_the_lecture_notes_gamma_0_init_outputs_beta_and_blocks_the_gradient_to_x(engine):
    """One lecture initializes "γ ← 0, β ← 0". Then y = 0·x̂ + β = β for every row and
    ∂L/∂x̂ = γ·∂L/∂y = 0: no gradient reaches x (or anything below), only γ and β learn."""
    x = RNG.normal(5.0, 3.0, size=(6, 3))
    gamma, beta = np.zeros(3), np.array([0.5, -1.0, 2.0])
    dout = RNG.uniform(0.5, 1.5, size=x.shape)
    if engine == "scalar":
        ys, dx, dgamma, dbeta = run_scalar(F.batch_norm, x, gamma, beta, dout)
    else:
        xs, gs, bs = (Tensor(a.copy(), requires_grad=True) for a in (x, gamma, beta))
        y = (kernels if engine == "fused" else F).batch_norm_with_stats(xs, gs, bs, 1e-5)[0]
        y.backward(dout)
        ys, dx, dgamma, dbeta = y.data, xs.grad, gs.grad, bs.grad
    assert np.array_equal(ys, np.broadcast_to(beta, x.shape))
    assert np.array_equal(dx, np.zeros_like(x))
    want_dgamma = batch_norm_backward(dout, x, gamma, 1e-5)[1]
    np.testing.assert_allclose(dgamma, want_dgamma, rtol=1e-9, atol=1e-12)
    assert np.all(dgamma != 0)
    np.testing.assert_allclose(dbeta, dout.sum(axis=0), rtol=1e-12)


def test_worked_example_from_the_notes():
    """The lecture notes: x1, x2 as two features of a batch of 10, normalized step by step.

    By hand: μ1 = 595/10 = 59.5, σ1² = 5656.5/10 = 565.65; μ2 = 78/10 = 7.8,
    σ2² = 17.6/10 = 1.76 (biased, 1/m).
    """
    x1 = [33, 72, 40, 104, 52, 56, 89, 24, 52, 73]
    x2 = [9, 8, 7, 10, 5, 8, 7, 9, 8, 7]
    xs = tb.values([list(row) for row in zip(x1, x2)], label="x")
    gamma, beta = tb.values([1.0, 1.0], "γ"), tb.values([0.5, 0.5], "β")
    y, mu, var = F.batch_norm_with_stats(xs, gamma, beta, eps=1e-5)
    assert all(isinstance(a, list) for a in (y, mu, var))  # all three in the form of x
    np.testing.assert_allclose(tb.ValueArray(mu).data, [[59.5, 7.8]], rtol=1e-15)
    np.testing.assert_allclose(tb.ValueArray(var).data, [[565.65, 1.76]], rtol=1e-14)
    # x̂ of x1 = 104 and of x2 = 5, from the statistics above
    assert y[3][0].data == pytest.approx(44.5 / math.sqrt(565.65 + 1e-5) + 0.5, rel=1e-14)
    assert y[4][1].data == pytest.approx(-2.8 / math.sqrt(1.76 + 1e-5) + 0.5, rel=1e-14)
    assert y[3][0].label == "y[3,0]" and mu[0][0].label == "μ[0,0]"
    # μ and σ² of a feature are each ONE mean node over the whole batch column
    assert mu[0][0].op == "mean" and mu[0][0].parents == tuple(row[0] for row in xs)
    assert var[0][1].op == "mean" and len(var[0][1].parents) == 10
    assert [p.label for p in var[0][1].parents[:2]] == ["(x − μ)²[0,1]", "(x − μ)²[1,1]"]

    # L = ½ Σ y²: dL/dγ = Σ y·x̂ = γ·m·σ²/(σ²+ε) (as Σ x̂ = 0), dL/dβ = Σ y = m·β
    loss = Value.sum(v * v for row in y for v in row) * 0.5
    loss.backward()
    assert gamma[0].grad == pytest.approx(10 * 565.65 / (565.65 + 1e-5), rel=1e-12)
    assert gamma[1].grad == pytest.approx(10 * 1.76 / (1.76 + 1e-5), rel=1e-12)
    assert beta[0].grad == pytest.approx(5.0) and beta[1].grad == pytest.approx(5.0)
    # and dL/dx = γ²·x̂·ε / ((σ²+ε)^(3/2)): BN makes ½Σy² almost blind to x
    for i, (row, v1, v2) in enumerate(zip(xs, x1, x2)):
        for x, value, m, s2 in ((row[0], v1, 59.5, 565.65), (row[1], v2, 7.8, 1.76)):
            expected = (value - m) * 1e-5 / (s2 + 1e-5) ** 2
            assert x.grad == pytest.approx(expected, rel=1e-6, abs=1e-15), (i, x.label)


# -- gradients: closed form, finite differences, Σ dL/dx = 0 ---------------------------------------


def test_scalar_batch_norm_grads_equal_closed_form():
    x = RNG.normal(size=(7, 3)) * [1.0, 5.0, 0.2]
    gamma, beta = np.array([1.5, -0.5, 2.0]), np.array([0.1, 0.2, -0.3])
    dout = RNG.uniform(-1, 1, size=(7, 3))
    ys, dx, dgamma, dbeta = run_scalar(F.batch_norm, x, gamma, beta, dout)
    np.testing.assert_allclose(ys, numpy_batch_norm(x, gamma, beta, 1e-5), rtol=1e-12)
    want_dx, want_dgamma, want_dbeta = batch_norm_backward(dout, x, gamma, 1e-5)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dgamma, want_dgamma, rtol=1e-12)
    np.testing.assert_allclose(dbeta, want_dbeta, rtol=1e-12)
    # Σ over the batch of ∂L/∂x is 0 for each feature: shifting a whole feature changes nothing
    np.testing.assert_allclose(dx.sum(axis=0), 0.0, atol=1e-12)
    assert np.abs(dx).max() > 0.01


def test_scalar_batch_norm_grads_equal_finite_differences():
    n, c = 5, 2
    x = RNG.normal(size=(n, c))
    gamma, beta = RNG.uniform(0.5, 2, size=c), RNG.normal(size=c)
    dout = RNG.uniform(-1, 1, size=(n, c))

    def loss(*flat):
        xs = [list(flat[i * c : (i + 1) * c]) for i in range(n)]
        ys = F.batch_norm(xs, list(flat[n * c : n * c + c]), list(flat[n * c + c :]), eps=1e-3)
        return weighted_sum(ys, dout)

    check_grad(loss, [*x.ravel(), *gamma, *beta], atol=1e-7, rtol=1e-5)


def test_closed_form_agrees_with_finite_differences():
    """The closed form itself is checked independently, so neither side grades itself."""
    x = RNG.normal(size=(4, 2, 3))
    gamma, beta = np.array([0.7, -1.2]), np.array([0.0, 0.4])
    dout = RNG.uniform(-1, 1, size=x.shape)
    dx, dgamma, dbeta = batch_norm_backward(dout, x, gamma, 1e-3)
    from tinybn.check import numerical_gradient

    def loss_of(x_=x, gamma_=gamma, beta_=beta):
        return float((numpy_batch_norm(x_, gamma_, beta_, 1e-3) * dout).sum())

    np.testing.assert_allclose(dx, numerical_gradient(lambda a: loss_of(x_=a), x), atol=1e-7)
    np.testing.assert_allclose(dgamma, numerical_gradient(lambda g: loss_of(gamma_=g), gamma))
    np.testing.assert_allclose(dbeta, numerical_gradient(lambda b: loss_of(beta_=b), beta))


def test_plain_sum_loss_gives_zero_gradients():
    """Why tests never use Σ y: Σ x̂ = 0, so dΣy/dγ = 0 and dΣy/dx = 0."""
    x = RNG.normal(size=(6, 2))
    _, dx, dgamma, dbeta = run_scalar(F.batch_norm, x, [1.3, 0.8], [0.0, 0.0], np.ones((6, 2)))
    np.testing.assert_allclose(dgamma, 0.0, atol=1e-12)
    np.testing.assert_allclose(dx, 0.0, atol=1e-12)
    np.testing.assert_allclose(dbeta, 6.0)


def test_value_array_ops_on_either_side():
    a = tb.ValueArray([[1.0, 2.0], [3.0, 5.0]])
    results = {
        "1 - a": 1.0 - a,
        "a - 1": a - 1.0,
        "2 * a": 2.0 * a,
        "1 + a": 1.0 + a,
        "a / 2": a / 2.0,
        "-a": -a,
        "a ** 2": a**2,
        "a.sqrt()": a.sqrt(),
    }
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    expected = [1 - x, x - 1, 2 * x, 1 + x, x / 2, -x, x**2, np.sqrt(x)]
    for (name, got), want in zip(results.items(), expected):
        np.testing.assert_allclose(got.data, want, err_msg=name)
    assert a.sum().data == 11.0 and a.mean(axis=0).data.tolist() == [2.0, 3.5]
    assert a.sum(axis=1, keepdims=True).shape == (2, 1)


# -- bad input -------------------------------------------------------------------------------------


def test_batch_of_one_in_training_is_a_value_error():
    for x in ([[1.0, 2.0]], Tensor(np.ones((1, 2))), Tensor(np.ones((1, 3, 1)))):
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            F.batch_norm(x, None, None)


def test_ragged_rows_name_the_lengths():
    with pytest.raises(ValueError, match=r"row lengths \[2, 3\]"):
        F.batch_norm([[1.0, 2.0], [1.0, 2.0, 3.0]], [1.0, 1.0], [0.0, 0.0])


@pytest.mark.parametrize("as_tensor", [False, True])
def test_wrong_gamma_or_beta_length_names_both_lengths(as_tensor):
    x = np.ones((4, 3))
    x = Tensor(x) if as_tensor else x.tolist()
    make = (lambda v: Tensor(np.array(v))) if as_tensor else (lambda v: tb.values(v, "p"))
    with pytest.raises(ValueError, match=r"gamma has 2 value.*3 feature"):
        F.batch_norm(x, make([1.0, 1.0]), make([0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"beta has 4 value.*3 feature"):
        F.batch_norm(x, make([1.0] * 3), make([0.0] * 4))
    with pytest.raises(ValueError, match="gamma has shape"):
        F.layer_norm(x, make([1.0, 1.0]), None)


def test_wrong_input_rank_and_half_given_statistics():
    with pytest.raises(ValueError, match=r"\(N, C\), \(N, C, L\) or \(N, C, H, W\)"):
        F.batch_norm(Tensor(np.ones(5)))
    with pytest.raises(ValueError, match="both mean= and var="):
        F.batch_norm(Tensor(np.ones((3, 2))), mean=np.zeros(2))
    with pytest.raises(ValueError, match="running_var has 3 value"):
        F.batch_norm(Tensor(np.ones((3, 2))), mean=np.zeros(2), var=np.ones(3))


def test_constant_feature_with_eps_0_names_the_zero_denominator():
    # the Value's own division-by-zero error, not a misleading "shapes do not broadcast"
    with pytest.raises(ValueError, match=r"division by zero .*label '√\(σ² \+ ε\)\[0,0\]'"):
        F.batch_norm([[1.0, 2.0], [1.0, 3.0]], None, None, eps=0.0)


def test_scalar_arrays_that_do_not_broadcast_name_both_shapes():
    with pytest.raises(ValueError, match=r"shapes \(1, 2\) and \(3,\) do not broadcast"):
        tb.ValueArray([[1.0, 2.0]]) + tb.ValueArray([1.0, 0.0, 3.0])


def test_non_numeric_rows_are_a_type_error():
    with pytest.raises(TypeError, match="real number"):
        F.batch_norm([["a", 1.0], [2.0, 3.0]])


# -- layer norm ------------------------------------------------------------------------------------


def test_layer_norm_against_a_hand_computed_case():
    # row [1, 2, 3]: μ = 2, σ² = ((−1)² + 0² + 1²)/3 = 2/3, x̂ = [−1, 0, 1]/√(2/3 + ε)
    # row [2, 2, 8]: μ = 4, σ² = (4 + 4 + 16)/3 = 8,    x̂ = [−2, −2, 4]/√(8 + ε)
    eps = 1e-5
    ys = datas(F.layer_norm([[1.0, 2.0, 3.0], [2.0, 2.0, 8.0]], [1.0, 2.0, 3.0], [0.0, 0.0, 1.0]))
    s1, s2 = math.sqrt(2 / 3 + eps), math.sqrt(8 + eps)
    expected = [[-1 / s1, 0.0, 3 / s1 + 1], [-2 / s2, -4 / s2, 12 / s2 + 1]]
    np.testing.assert_allclose(ys, expected, rtol=1e-14)


def test_layer_norm_over_the_last_two_axes():
    x, gamma, beta = RNG.normal(size=(2, 3, 4)), RNG.uniform(size=(3, 4)), RNG.normal(size=(3, 4))
    mu, var = x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True)
    check_op(
        lambda x_, g_, b_: F.layer_norm(x_, g_, b_, 1e-3),
        [x, gamma, beta],
        lambda *a: gamma * (x - mu) / np.sqrt(var + 1e-3) + beta,
    )


def test_layer_norm_is_per_example_so_a_single_example_works():
    y = datas(F.layer_norm([[4.0, 8.0]], None, None, eps=0.0))
    np.testing.assert_allclose(y, [[-1.0, 1.0]])


def test_scalar_layer_norm_grads_equal_finite_differences():
    n, h = 3, 4
    x = RNG.normal(size=(n, h))
    dout = RNG.uniform(-1, 1, size=(n, h))

    def loss(*flat):
        xs = [list(flat[i * h : (i + 1) * h]) for i in range(n)]
        ys = F.layer_norm(xs, list(flat[n * h : n * h + h]), list(flat[n * h + h :]), eps=1e-3)
        return weighted_sum(ys, dout)

    check_grad(loss, [*x.ravel(), *RNG.uniform(0.5, 2, size=h), *RNG.normal(size=h)], atol=1e-7)


# -- one source, two engines: scalar and Tensor agree ----------------------------------------------


def scalar_engine_reference(norm, eps, **kwargs):
    """reference / grad_reference for check_op, computed by the scalar Value engine."""

    def outputs(x, gamma, beta):
        return datas(norm(leaves(x), leaves(gamma), leaves(beta), eps, **kwargs))

    def gradients(x, gamma, beta, dout):
        return run_scalar(norm, x, gamma, beta, dout, eps, **kwargs)[1:]

    return outputs, gradients


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)], ids=["N,C", "N,C,L"])
def test_tensor_batch_norm_equals_scalar_engine_closed_form_and_finite_differences(shape):
    eps = 1e-3
    x = RNG.normal(2.0, 1.5, size=shape)
    gamma, beta = RNG.uniform(0.5, 2.0, size=3), RNG.normal(size=3)
    outputs, gradients = scalar_engine_reference(F.batch_norm, eps)

    def bn(x_, gamma_, beta_):
        return F.batch_norm(x_, gamma_, beta_, eps)

    _, (dx, _, _) = check_op(
        bn, [x, gamma, beta], outputs, grad_reference=gradients, atol=1e-10, rtol=1e-9
    )
    np.testing.assert_allclose(dx.sum(axis=(0,) if len(shape) == 2 else (0, 2)), 0.0, atol=1e-12)
    check_op(
        bn,
        [x, gamma, beta],
        lambda x_, g_, b_: numpy_batch_norm(x_, g_, b_, eps),
        grad_reference=lambda x_, g_, b_, dout: batch_norm_backward(dout, x_, g_, eps),
        atol=1e-10,
        rtol=1e-9,
        fd=False,
    )


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)], ids=["N,H", "N,T,H"])
def test_tensor_layer_norm_equals_scalar_engine_and_finite_differences(shape):
    eps = 1e-3
    x = RNG.normal(size=shape)
    gamma, beta = RNG.uniform(0.5, 2.0, size=4), RNG.normal(size=4)
    outputs, gradients = scalar_engine_reference(F.layer_norm, eps)

    def ln(x_, gamma_, beta_):
        return F.layer_norm(x_, gamma_, beta_, eps)

    check_op(ln, [x, gamma, beta], outputs, grad_reference=gradients, atol=1e-10, rtol=1e-9)
    mu, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    np.testing.assert_allclose(
        ln(Tensor(x), Tensor(gamma), Tensor(beta)).data,
        gamma * (x - mu) / np.sqrt(var + eps) + beta,
        rtol=1e-12,
    )


def test_batch_norm_keeps_float32_and_labels_the_stages():
    x = Tensor(RNG.normal(size=(8, 2)).astype(np.float32), requires_grad=True)
    y, mu, var = F.batch_norm_with_stats(x, Tensor([1.0, 1.0]), Tensor([0.0, 0.0]))
    assert y.dtype == np.float32 and mu.shape == (1, 2) and var.shape == (1, 2)
    assert (y.label, mu.label, var.label) == ("y", "μ", "σ²")
    np.testing.assert_allclose(var.data[0], x.data.var(axis=0), rtol=1e-5)


# -- eval mode: given mean= and var= ---------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 3), (1, 3), (2, 3, 4)], ids=["N,C", "one example", "N,C,L"])
def test_eval_mode_statistics_on_both_engines(shape):
    eps = 1e-2
    x = RNG.normal(size=shape)
    gamma, beta = np.array([1.5, 0.5, -1.0]), np.array([0.0, 1.0, 2.0])
    mean, var = np.array([0.5, -0.5, 1.0]), np.array([2.0, 0.5, 1.0])
    bshape = (1, 3) if len(shape) == 2 else (1, 3, 1)
    scale = (gamma / np.sqrt(var + eps)).reshape(bshape)
    expected = scale * (x - mean.reshape(bshape)) + beta.reshape(bshape)
    axes = (0,) if len(shape) == 2 else (0, 2)

    def closed_form_grads(x_, g_, b_, dout):
        xhat = (x_ - mean.reshape(bshape)) / np.sqrt(var + eps).reshape(bshape)
        return dout * scale, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)

    def bn(x_, g_, b_):
        return F.batch_norm(x_, g_, b_, eps, mean=mean, var=var)

    check_op(bn, [x, gamma, beta], lambda *a: expected, grad_reference=closed_form_grads)
    outputs, gradients = scalar_engine_reference(F.batch_norm, eps, mean=mean, var=var)
    np.testing.assert_allclose(outputs(x, gamma, beta), expected, rtol=1e-12)
    dout = RNG.uniform(size=shape)
    for got, want in zip(gradients(x, gamma, beta, dout), closed_form_grads(x, 0, 0, dout)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


# -- ε in batch/layer norm: 0 is allowed where PyTorch allows it; a negative ε is named up front.


EPS_RNG = np.random.default_rng(7)


def test_batchnorm1d_accepts_eps_0_and_uses_it_in_eval():
    bn = nn.BatchNorm1d(3, eps=0)
    bn.running_mean.data[...] = [0.5, -1.0, 2.0]
    bn.running_var.data[...] = [4.0, 0.25, 1.0]
    bn.weight.data[...] = [2.0, 1.0, -1.0]
    bn.bias.data[...] = [0.0, 1.0, 0.5]
    bn.eval()
    x = np.array([[1.5, 0.0, 3.0], [0.5, -1.5, 1.0]], dtype=np.float32)
    # y = γ (x − running_mean) / √running_var + β, with no ε at all
    expected = [[2.0 * 1.0 / 2.0, 1.0 / 0.5 + 1.0, -1.0 + 0.5], [0.0, -0.5 / 0.5 + 1.0, 1.5]]
    np.testing.assert_allclose(bn(Tensor(x)).data, expected, rtol=1e-6)


def test_batchnorm1d_with_eps_0_refuses_batch_statistics_like_pytorch_before_any_update():
    # PyTorch: "batch_norm eps must be positive during training" (and with no running stats)
    x = Tensor(EPS_RNG.normal(size=(4, 2)))
    for bn in (nn.BatchNorm1d(2, eps=0.0), nn.BatchNorm1d(2, eps=0.0, track_running_stats=False)):
        if not bn.track_running_stats:
            bn.eval()  # eval without running statistics still normalizes by the batch
        with pytest.raises(ValueError, match="BatchNorm1d: eps must be positive"):
            bn(x)
    trained = nn.BatchNorm1d(2, eps=0.0)
    with pytest.raises(ValueError):
        trained(x)
    assert int(trained.num_batches_tracked.data) == 0
    np.testing.assert_array_equal(trained.running_mean.data, [0.0, 0.0])


@pytest.mark.parametrize("eps", [-1e-5, math.nan])
def test_batchnorm1d_and_layernorm_refuse_a_negative_or_nan_eps(eps):
    with pytest.raises(ValueError, match="BatchNorm1d: eps must be >= 0"):
        nn.BatchNorm1d(3, eps=eps)
    with pytest.raises(ValueError, match="LayerNorm: eps must be >= 0"):
        nn.LayerNorm(3, eps=eps)


@pytest.mark.parametrize(
    "fn, engine, kwargs",
    [
        (F.batch_norm, "scalar", {}),
        (F.batch_norm, "tensor", {}),
        (_fused_batch_norm, "tensor", {}),
        (F.layer_norm, "scalar", {}),
        (F.layer_norm, "tensor", {}),
    ],
)
def test_functional_norms_name_a_negative_eps_instead_of_failing_in_sqrt(fn, engine, kwargs):
    x = [[1.0, 2.0], [3.0, 5.0], [0.0, 1.0]]
    data = tb.values(x) if engine == "scalar" else Tensor(np.array(x))
    name = fn.__name__
    # eps = -0.5 would otherwise reach √(σ² + ε) with σ² + ε < 0 for the first feature
    with pytest.raises(ValueError, match=rf"{name}: eps must be >= 0, got -0\.5"):
        fn(data, None, None, eps=-0.5, **kwargs)
    with pytest.raises(TypeError, match=rf"{name}: eps must be a real number"):
        fn(data, None, None, eps="1e-5", **kwargs)


def test_functional_batch_norm_still_allows_eps_0_with_given_statistics():
    x = Tensor(np.array([[2.0, 1.0], [4.0, 3.0]]))
    y = F.batch_norm(x, None, None, eps=0.0, mean=np.array([3.0, 1.0]), var=np.array([4.0, 1.0]))
    np.testing.assert_allclose(y.data, [[-0.5, 0.0], [0.5, 2.0]])


# -- batch norm: integer input refused, float16 accumulated in float32; scalar γ, β ----------------


INT_DTYPES = [np.int64, np.int32, np.int8, np.uint8, np.bool_]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int64, np.bool_])
@pytest.mark.parametrize("path", ["module", "fused", "composed"])
def test_batch_norm_refuses_integer_input_naming_the_dtype(dtype, path):
    x = Tensor(np.ones((256, 64), dtype=dtype))
    bn = nn.BatchNorm1d(64)
    before = {k: v.copy() for k, v in bn.state_dict().items()}
    with pytest.raises(TypeError, match=f"floating-point input, got dtype {np.dtype(dtype)}"):
        if path == "module":
            bn(x)
        else:
            (kernels if path == "fused" else F).batch_norm_with_stats(x, bn.weight, bn.bias)
    for key, value in bn.state_dict().items():
        np.testing.assert_array_equal(value, before[key])  # running stats untouched


def test_pytorch_refuses_integer_batch_norm_too():
    torch = pytest.importorskip("torch")
    with pytest.raises((NotImplementedError, RuntimeError)):
        torch.nn.BatchNorm1d(4)(torch.ones(8, 4, dtype=torch.uint8))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "composed"])
def test_float16_batch_norm_accumulates_in_float32(fused):
    """N·C = 16384 values around 300: float16 sums overflow (they gave all NaN); the result
    must equal the float64 computation to float16 precision, and so must the running
    statistics and the gradients."""
    rng = np.random.default_rng(0)
    x16 = (300 + 50 * rng.standard_normal((256, 64))).astype(np.float16)
    x64 = x16.astype(np.float64)
    dy = rng.standard_normal((256, 64))
    mean, var = x64.mean(axis=0), x64.var(axis=0)
    xhat = (x64 - mean) / np.sqrt(var + 1e-5)

    bn = nn.BatchNorm1d(64)
    x = Tensor(x16, requires_grad=True)
    if fused:
        y = bn(x)
    else:
        y, batch_mean, batch_var = F.batch_norm_with_stats(x, bn.weight, bn.bias, 1e-5)
        np.testing.assert_allclose(batch_mean.data.reshape(-1), mean, rtol=1e-6)
        np.testing.assert_allclose(batch_var.data.reshape(-1), var, rtol=1e-4)
    assert y.dtype == np.float16 and np.all(np.isfinite(y.data))
    np.testing.assert_allclose(y.data, xhat, atol=2e-3)  # float16's rounding at |x̂| ≤ 4
    (y * Tensor(dy.astype(np.float16))).sum().backward()
    dx = (dy - dy.mean(0) - xhat * (dy * xhat).mean(0)) / np.sqrt(var + 1e-5)
    assert x.grad.dtype == np.float16
    np.testing.assert_allclose(x.grad, dx, atol=2e-4, rtol=2e-2)
    np.testing.assert_allclose(bn.weight.grad, (dy * xhat).sum(0), rtol=2e-2, atol=0.5)
    if fused:
        np.testing.assert_allclose(bn.running_mean.data, 0.1 * mean, rtol=1e-5)
        np.testing.assert_allclose(bn.running_var.data, 0.9 + 0.1 * x64.var(0, ddof=1), rtol=1e-5)


def test_float16_batch_norm_in_eval_uses_float32_running_statistics():
    rng = np.random.default_rng(1)
    x16 = (300 + 50 * rng.standard_normal((64, 8))).astype(np.float16)
    bn = nn.BatchNorm1d(8)
    bn.running_mean.data[...] = 300.3  # not a float16 number: 300.25 or 300.5 there
    bn.running_var.data[...] = 2500.0
    y = bn.eval()(Tensor(x16))
    expected = (x16.astype(np.float64) - 300.3) / np.sqrt(2500.0 + 1e-5)
    np.testing.assert_allclose(y.data, expected, atol=1e-3)


def test_plain_numbers_as_scalar_gamma_are_refused_naming_tb_values():
    x = tb.values([[1.0, 2.0], [3.0, 5.0], [4.0, 4.0]], "x")
    with pytest.raises(TypeError, match="tb.values"):
        F.batch_norm(x, [1.0, 1.0], tb.values([0.0, 0.0], "β"))
    with pytest.raises(TypeError, match="beta .*tb.values"):
        F.batch_norm(x, tb.values([1.0, 1.0], "γ"), [0.0, 0.0])
    gamma, beta = tb.values([1.0, 1.0], "γ"), tb.values([0.0, 0.0], "β")
    y = F.batch_norm(x, gamma, beta)
    sum(v for row in y for v in row[:1]).backward()
    assert beta[0].grad == 3.0 and beta[1].grad == 0.0
