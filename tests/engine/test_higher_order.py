"""Gradients as graphs: backward(create_graph=True), tb.grad, hvp and the top Hessian
eigenvalue, on both engines, against torch.autograd.grad(..., create_graph=True) and against
finite differences of first derivatives."""

import math

import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, Value, nn
from tinybn import functional as F
from tinybn.autograd import hvp, top_hessian_eigenvalue
from tinybn.fast import kernels

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 3))
POSITIVE = RNG.uniform(0.5, 2.0, size=(4, 3))
W = RNG.normal(size=(4, 3))  # weights of the first-order loss L = Σ w ⊙ f(x)
V = RNG.normal(size=(4, 3))  # the direction of the second derivative: ∂(∇L · v)/∂x
TIES = np.array([[1.0, 3.0, 3.0], [2.0, -1.0, 2.0], [0.5, 0.5, 0.5], [4.0, 1.0, -2.0]])

# name → (tinybn f, torch f, input): f maps one (4, 3) tensor to a tensor
OPS = {
    "add": (lambda x: x * x + x * 2.0, lambda x: x * x + x * 2.0, X),
    "sub": (lambda x: 1.5 - x * x, lambda x: 1.5 - x * x, X),
    "mul": (lambda x: x * x * x, lambda x: x * x * x, X),
    "div": (lambda x: (x + 3.0) / (x * x + 1.0), lambda x: (x + 3.0) / (x * x + 1.0), X),
    "rdiv": (lambda x: 1.0 / x, lambda x: 1.0 / x, POSITIVE),
    "neg": (lambda x: -(x * x), lambda x: -(x * x), X),
    "pow2": (lambda x: x**2 * x, lambda x: x**2 * x, X),
    "pow3": (lambda x: x**3, lambda x: x**3, X),
    "pow_half": (lambda x: x**0.5, lambda x: x**0.5, POSITIVE),
    "pow0": (lambda x: x**0 + x * x, lambda x: x**0 + x * x, X),
    "rpow": (lambda x: 2.0**x, lambda x: 2.0**x, X),
    "exp": (lambda x: x.exp(), torch.exp, X),
    "log": (lambda x: x.log(), torch.log, POSITIVE),
    "sqrt": (lambda x: x.sqrt(), torch.sqrt, POSITIVE),
    "tanh": (lambda x: x.tanh(), torch.tanh, X),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid, X),
    "relu": (lambda x: x.relu() * x, lambda x: torch.relu(x) * x, X),
    "abs": (lambda x: x.abs() * x, lambda x: x.abs() * x, X),
    "clip": (lambda x: x.clip(-0.5, 0.5) * x, lambda x: x.clamp(-0.5, 0.5) * x, X),
    "sum": (lambda x: (x * x).sum(axis=0) * x, lambda x: (x * x).sum(dim=0) * x, X),
    "mean": (
        lambda x: (x * x).mean(axis=1, keepdims=True) * x,
        lambda x: (x * x).mean(dim=1, keepdim=True) * x,
        X,
    ),
    "var": (lambda x: x.var(axis=0) * x, lambda x: x.var(dim=0, unbiased=False) * x, X),
    "var_unbiased": (
        lambda x: x.var(axis=1, keepdims=True, unbiased=True) * x,
        lambda x: x.var(dim=1, keepdim=True, unbiased=True) * x,
        X,
    ),
    "max_ties": (
        lambda x: x.max(axis=1, keepdims=True) * x,
        lambda x: x.amax(dim=1, keepdim=True) * x,
        TIES,
    ),
    "matmul": (lambda x: x @ (x.T * 0.5), lambda x: x @ (x.T * 0.5), X),
    "matmul_vector": (
        lambda x: (x @ Tensor(np.arange(3.0))) * x.sum(axis=1),
        lambda x: (x @ torch.arange(3.0, dtype=torch.float64)) * x.sum(dim=1),
        X,
    ),
    "reshape_transpose": (
        lambda x: x.reshape(3, 4).T * x,
        lambda x: x.reshape(3, 4).T * x,
        X,
    ),
    "index": (lambda x: x[1:3] * x[[0, 0]], lambda x: x[1:3] * x[[0, 0]], X),
    "concat_stack": (
        lambda x: tb.concatenate([x * x, x], axis=1) * tb.stack([x, x], axis=1).reshape(4, 6),
        lambda x: torch.cat([x * x, x], dim=1) * torch.stack([x, x], dim=1).reshape(4, 6),
        X,
    ),
    "astype": (
        lambda x: (x * x).astype(np.float32).astype(np.float64) * x,
        lambda x: (x * x).float().double() * x,
        X,
    ),
    "log_softmax": (
        lambda x: F.log_softmax(x, axis=1),
        lambda x: torch.log_softmax(x, dim=1),
        X,
    ),
    # the ops of the peer suites (comparisons give constants: only the selection is graphed)
    "where": (
        lambda x: tb.where(x.data > 0, x * x, x * 3.0),
        lambda x: torch.where(x > 0, x * x, x * 3.0),
        X,
    ),
    "maximum_minimum": (
        lambda x: x.maximum(x * x * 0.5) + x.minimum(x.tanh()) * x,
        lambda x: torch.maximum(x, x * x * 0.5) + torch.minimum(x, x.tanh()) * x,
        X,
    ),
    "min_ties": (
        lambda x: x.min(axis=0, keepdims=True) * x,
        lambda x: x.amin(dim=0, keepdim=True) * x,
        -TIES,
    ),
    "std": (
        lambda x: x.std(axis=1, keepdims=True) * x,
        lambda x: x.std(dim=1, keepdim=True, unbiased=False) * x,
        X,
    ),
    "logsumexp": (
        lambda x: x.logsumexp(axis=1, keepdims=True) * x,
        lambda x: torch.logsumexp(x, dim=1, keepdim=True) * x,
        X,
    ),
    "expand": (
        lambda x: (x.sum(axis=0, keepdims=True) * x[:1]).expand(4, 3) * x,
        lambda x: (x.sum(dim=0, keepdim=True) * x[:1]).expand(4, 3) * x,
        X,
    ),
    "rsqrt": (lambda x: x.rsqrt(), torch.rsqrt, POSITIVE),
    "leaky_relu": (
        lambda x: F.leaky_relu(x, 0.1) * x,
        lambda x: torch.nn.functional.leaky_relu(x, 0.1) * x,
        X,
    ),
    "permute_transpose": (
        lambda x: x.reshape(2, 2, 3).permute(2, 0, 1).transpose(0, 1).reshape(4, 3) * x,
        lambda x: x.reshape(2, 2, 3).permute(2, 0, 1).transpose(0, 1).reshape(4, 3) * x,
        X,
    ),
}

IMAGES = RNG.normal(size=(2, 4, 6, 5))
KERNELS = RNG.normal(size=(6, 2, 3, 2)) * 0.5
CONV_BIAS = RNG.normal(size=6)

# name → (tinybn f, torch f) of one (2, 4, 6, 5) input
CONV_OPS = {
    "conv2d": (
        lambda x: F.conv2d(x * x, Tensor(KERNELS), Tensor(CONV_BIAS), padding=1, groups=2),
        lambda x: torch.nn.functional.conv2d(
            x * x, torch.tensor(KERNELS), torch.tensor(CONV_BIAS), padding=1, groups=2
        ),
    ),
    "conv2d_stride_dilation": (
        lambda x: F.conv2d(x, Tensor(KERNELS), stride=2, dilation=(1, 2), groups=2).tanh(),
        lambda x: torch.nn.functional.conv2d(
            x, torch.tensor(KERNELS), stride=2, dilation=(1, 2), groups=2
        ).tanh(),
    ),
    "max_pool2d": (
        lambda x: F.max_pool2d(x * x, 2, padding=1) * F.max_pool2d(x, 2, padding=1),
        lambda x: (
            torch.nn.functional.max_pool2d(x * x, 2, padding=1)
            * torch.nn.functional.max_pool2d(x, 2, padding=1)
        ),
    ),
    "avg_pool2d": (
        lambda x: F.avg_pool2d(x * x, 3, stride=2, padding=1, count_include_pad=False),
        lambda x: torch.nn.functional.avg_pool2d(
            x * x, 3, stride=2, padding=1, count_include_pad=False
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(CONV_OPS))
def test_second_derivatives_of_the_convolution_ops_equal_torch(name):
    ours, theirs = CONV_OPS[name]
    shape = tuple(ours(Tensor(IMAGES)).shape)
    weights, direction = RNG.normal(size=shape), RNG.normal(size=IMAGES.shape)
    first, second = tinybn_second(ours, IMAGES, weights, direction)
    want_first, want_second = torch_second(theirs, IMAGES, weights, direction)
    np.testing.assert_allclose(first, want_first, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(second, want_second, rtol=1e-8, atol=1e-9)


def test_second_derivative_through_a_conv_layer_with_reflect_padding_and_its_weights():
    layer = nn.Conv2d(4, 3, 3, padding=1, padding_mode="reflect").double()
    twin = torch.nn.Conv2d(4, 3, 3, padding=1, padding_mode="reflect").double()
    twin.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    x = Tensor(IMAGES.copy(), requires_grad=True)
    (gx,) = tb.grad((layer(x) ** 2).sum(), x, create_graph=True)
    ours = tb.grad((gx * Tensor(IMAGES)).sum(), [x, layer.weight])
    xt = torch.tensor(IMAGES, requires_grad=True)
    (gxt,) = torch.autograd.grad((twin(xt) ** 2).sum(), xt, create_graph=True)
    theirs = torch.autograd.grad((gxt * torch.tensor(IMAGES)).sum(), [xt, twin.weight])
    for got, want in zip(ours, theirs):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-9)


def tinybn_second(f, x0, weights=W, direction=V):
    """∂(∇ₓ(Σ w ⊙ f(x)) · v)/∂x, and the first derivative, with tb.grad twice."""
    x = Tensor(x0.copy(), requires_grad=True)
    out = f(x)
    w = Tensor(np.resize(weights, out.shape))
    (first,) = tb.grad((out * w).sum(), x, create_graph=True)
    assert isinstance(first, Tensor) and first.requires_grad
    (second,) = tb.grad((first * Tensor(direction)).sum(), x)
    return first.data, second


def torch_second(f, x0, weights=W, direction=V):
    x = torch.tensor(x0, requires_grad=True)
    out = f(x)
    w = torch.tensor(np.resize(weights, tuple(out.shape)))
    (first,) = torch.autograd.grad((out * w).sum(), x, create_graph=True)
    (second,) = torch.autograd.grad((first * torch.tensor(direction)).sum(), x)
    return first.detach().numpy(), second.numpy()


@pytest.mark.parametrize("name", sorted(OPS))
def test_second_derivative_of_every_op_equals_torch(name):
    ours, theirs, x0 = OPS[name]
    first, second = tinybn_second(ours, x0)
    want_first, want_second = torch_second(theirs, x0)
    np.testing.assert_allclose(first, want_first, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(second, want_second, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["mul", "div", "tanh", "var", "matmul", "log_softmax", "pow3"])
def test_second_derivative_equals_finite_differences_of_the_first(name):
    f, _, x0 = OPS[name]
    _, second = tinybn_second(f, x0)

    def directional_first(x_values):
        x = Tensor(x_values, requires_grad=True)
        out = f(x)
        (out * Tensor(np.resize(W, out.shape))).sum().backward()
        return float((x.grad * V).sum())

    h = 1e-6
    numeric = np.zeros_like(x0)
    for index in np.ndindex(x0.shape):
        step = np.zeros_like(x0)
        step[index] = h
        numeric[index] = (directional_first(x0 + step) - directional_first(x0 - step)) / (2 * h)
    np.testing.assert_allclose(second, numeric, rtol=1e-5, atol=1e-6)


LOSSES = {
    "cross_entropy": (
        lambda z: F.cross_entropy(z, np.array([0, 2, 1, 2])),
        lambda z: torch.nn.functional.cross_entropy(z, torch.tensor([0, 2, 1, 2])),
        X,
    ),
    "bce": (
        lambda p: F.binary_cross_entropy(p, Tensor(np.resize([0.0, 1.0, 1.0], (4, 3)))),
        lambda p: torch.nn.functional.binary_cross_entropy(
            p, torch.tensor(np.resize([0.0, 1.0, 1.0], (4, 3)))
        ),
        RNG.uniform(0.1, 0.9, size=(4, 3)),
    ),
    "bce_with_logits": (
        lambda z: F.binary_cross_entropy_with_logits(z, Tensor(np.resize([0.0, 1.0], (4, 3)))),
        lambda z: torch.nn.functional.binary_cross_entropy_with_logits(
            z, torch.tensor(np.resize([0.0, 1.0], (4, 3)))
        ),
        X,
    ),
    "mse": (
        lambda a: F.mse_loss(a * a, Tensor(W)),
        lambda a: torch.nn.functional.mse_loss(a * a, torch.tensor(W)),
        X,
    ),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_second_derivatives_of_the_fused_losses_equal_torch(name):
    ours, theirs, x0 = LOSSES[name]
    first, second = tinybn_second(ours, x0, weights=np.ones(1))
    want_first, want_second = torch_second(theirs, x0, weights=np.ones(1))
    np.testing.assert_allclose(first, want_first, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(second, want_second, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_cross_derivative_x_gamma_equals_torch(fused, training):
    """∂²L/∂x∂γ: the gradient w.r.t. x, dotted with v, differentiated w.r.t. γ (and x)."""
    gamma0, beta0 = np.array([1.0, 2.0, 0.5]), np.array([0.1, -0.2, 0.3])
    mean0, var0 = np.array([0.2, -0.1, 0.0]), np.array([1.5, 0.7, 2.0])

    def ours():
        x = Tensor(X.copy(), requires_grad=True)
        gamma = Tensor(gamma0.copy(), requires_grad=True)
        beta = Tensor(beta0.copy(), requires_grad=True)
        stats = {} if training else {"mean": mean0, "var": var0}
        y = (kernels if fused else F).batch_norm_with_stats(x, gamma, beta, **stats)[0]
        (gx,) = tb.grad((y * y * Tensor(W)).sum(), x, create_graph=True)
        return tb.grad((gx * Tensor(V)).sum(), [x, gamma, beta], allow_unused=True)

    def theirs():
        x = torch.tensor(X, requires_grad=True)
        gamma = torch.tensor(gamma0, requires_grad=True)
        beta = torch.tensor(beta0, requires_grad=True)
        stats = (None, None) if training else (torch.tensor(mean0), torch.tensor(var0))
        y = torch.nn.functional.batch_norm(x, *stats, gamma, beta, training=training, eps=1e-5)
        (gx,) = torch.autograd.grad((y * y * torch.tensor(W)).sum(), x, create_graph=True)
        return torch.autograd.grad((gx * torch.tensor(V)).sum(), [x, gamma, beta])

    for got, want in zip(ours(), theirs()):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-9)


def mlp_with_bn(seed=0):
    tb.manual_seed(seed) if hasattr(tb, "manual_seed") else None
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 2))
    model.double()
    data = np.random.default_rng(seed).normal(size=(8, 3))
    targets = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    return model, data, targets


def torch_twin(model):
    twin = torch.nn.Sequential(
        torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5), torch.nn.Tanh(), torch.nn.Linear(5, 2)
    ).double()
    twin.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in model.state_dict().items()})
    return twin


def test_hvp_and_top_eigenvalue_equal_torch_on_an_mlp_with_batch_norm():
    model, data, targets = mlp_with_bn()
    params = list(model.parameters())
    vector = [np.random.default_rng(1).normal(size=p.shape) for p in params]
    loss = F.cross_entropy(model(Tensor(data)), targets)
    ours = hvp(loss, params, vector)

    twin = torch_twin(model)
    twin_params = list(twin.parameters())
    twin_loss = torch.nn.functional.cross_entropy(twin(torch.tensor(data)), torch.tensor(targets))
    grads = torch.autograd.grad(twin_loss, twin_params, create_graph=True)
    dot = sum((g * torch.tensor(v)).sum() for g, v in zip(grads, vector))
    theirs = torch.autograd.grad(dot, twin_params)
    for got, want in zip(ours, theirs):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-8, atol=1e-10)

    # the top eigenvalue: power iteration here vs the full Hessian's spectrum in torch
    eigenvalue, direction = top_hessian_eigenvalue(loss, params, iterations=300, tol=1e-12)
    flat = torch.cat([p.reshape(-1) for p in twin_params]).detach()
    sizes = [p.numel() for p in twin_params]

    def loss_of(flat_params):
        chunks = torch.split(flat_params, sizes)
        state = {
            name: chunk.reshape(p.shape)
            for (name, p), chunk in zip(twin.named_parameters(), chunks)
        }
        out = torch.func.functional_call(twin, state, (torch.tensor(data),))
        return torch.nn.functional.cross_entropy(out, torch.tensor(targets))

    spectrum = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat)).numpy()
    largest = spectrum[np.argmax(np.abs(spectrum))]
    assert eigenvalue == pytest.approx(largest, rel=1e-6)
    norm = math.sqrt(sum(float((d * d).sum()) for d in direction))
    assert norm == pytest.approx(1.0)


def test_scalar_engine_second_derivatives_equal_torch():
    def f(a, b, tanh, exp, log):
        return tanh(a * b) + exp(a) / (b * b + 1.0) + log(b) * a**3 + 2.0**b - (-a) ** 2

    a, b = Value(0.7, label="a"), Value(1.3, label="b")
    out = f(a, b, Value.tanh, Value.exp, Value.log)
    da, db = tb.grad(out, [a, b], create_graph=True)
    assert isinstance(da, Value) and da.label == "∂L/∂a"
    second = tb.grad(da * 0.4 + db * -1.1, [a, b])

    at = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    out_t = f(at, bt, torch.tanh, torch.exp, torch.log)
    dat, dbt = torch.autograd.grad(out_t, [at, bt], create_graph=True)
    want = torch.autograd.grad(dat * 0.4 + dbt * -1.1, [at, bt])
    assert (da.data, db.data) == pytest.approx((dat.item(), dbt.item()), rel=1e-12)
    assert second == pytest.approx([w.item() for w in want], rel=1e-10)


def test_scalar_batch_norm_second_derivative_equals_the_tensor_engine():
    x_rows = X[:, :2]
    x = tb.values(x_rows.tolist(), "x")
    gamma, beta = tb.values([1.0, 2.0], "γ"), tb.values([0.1, -0.2], "β")
    y = F.batch_norm(x, gamma, beta)
    loss = Value.sum(v * v * float(W[i, j]) for i, row in enumerate(y) for j, v in enumerate(row))
    loss.backward(create_graph=True)
    dot = Value.sum(row[j].grad * float(V[i, j]) for i, row in enumerate(x) for j in range(2))
    second = tb.grad(dot, [v for row in x for v in row] + gamma)

    xt = Tensor(x_rows.copy(), requires_grad=True)
    gt = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    yt = F.batch_norm(xt, gt, Tensor(np.array([0.1, -0.2])))
    (gx,) = tb.grad((yt * yt * Tensor(W[:, :2])).sum(), xt, create_graph=True)
    want_x, want_gamma = tb.grad((gx * Tensor(V[:, :2])).sum(), [xt, gt])
    np.testing.assert_allclose(second[:8], want_x.ravel(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(second[8:], want_gamma, rtol=1e-9, atol=1e-10)


def test_without_create_graph_grads_stay_plain_numbers():
    a = Value(0.5)
    (a.tanh() * a).backward()
    assert type(a.grad) is float
    x = Tensor(X.copy(), requires_grad=True)
    (x.tanh() * x).sum().backward()
    assert type(x.grad) is np.ndarray
    (g,) = tb.grad((x * x).sum(), x)
    assert type(g) is np.ndarray and x.grad is not g
    np.testing.assert_allclose(g, 2 * X)


def test_grad_leaves_every_grad_as_it_was_and_checks_its_arguments():
    x = Tensor(X.copy(), requires_grad=True)
    unused = Tensor(X.copy(), requires_grad=True)
    (x * 3.0).sum().backward()
    before = x.grad.copy()
    (g,) = tb.grad((x * x).sum(), x)
    np.testing.assert_array_equal(x.grad, before)  # not accumulated into .grad
    with pytest.raises(ValueError, match="allow_unused=True"):
        tb.grad((x * x).sum(), [x, unused])
    assert tb.grad((x * x).sum(), [x, unused], allow_unused=True)[1] is None
    with pytest.raises(ValueError, match="does not require grad"):
        tb.grad((x * x).sum(), Tensor(X))
    with pytest.raises(ValueError, match="grad_outputs"):
        tb.grad([(x * x).sum()], x, grad_outputs=[None, None])
    with pytest.raises(TypeError, match="Values or Tensors"):
        tb.grad((x * x).sum(), [X])
    with pytest.raises(ValueError, match="vector part 0 has shape"):
        hvp((x * x).sum(), [x], [np.ones(3)])


def test_the_gradient_graph_can_be_drawn_stepped_and_explored(tmp_path):
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    out = (a * b + a**2).tanh().named("L")
    out.backward(create_graph=True)
    assert a.grad.label == "∂L/∂a" and b.grad.label == "∂L/∂b"
    da = a.grad
    assert "∂L/∂a" in tb.draw(da).source
    page = tb.explore(da)
    assert page.data["total"] == sum(1 for n in tb.autograd.topological_order(da) if n.parents)
    assert "∂L/∂a" in page.save(tmp_path / "grad.html").read_text(encoding="utf-8")
    want = tb.grad(da, [a, b])  # ∂²L/∂a², ∂²L/∂a∂b
    a.grad = b.grad = 0.0
    steps = list(tb.backward_steps(da))  # stepping the gradient's own graph
    assert steps[0].node is da and steps[-1].number == len(steps)
    assert (a.grad, b.grad) == pytest.approx(want)
    # the closed form: L = tanh(u), u = ab + a², ∂L/∂a = (1 − L²)(b + 2a)
    u = 2.0 * -3.0 + 4.0
    t = math.tanh(u)
    assert want[0] == pytest.approx(-2 * t * (1 - t * t) * (-3.0 + 4.0) ** 2 + 2 * (1 - t * t))


@pytest.mark.parametrize("shape", [(6, 3), (4, 2, 5)])
def test_closed_form_backward_equals_autodiff_on_tensors(shape):
    rng = np.random.default_rng(3)
    x0, dy0 = rng.normal(size=shape), rng.normal(size=shape)
    gamma0 = rng.uniform(0.5, 1.5, size=shape[1])
    x = Tensor(x0.copy(), requires_grad=True)
    gamma = Tensor(gamma0.copy(), requires_grad=True)
    beta = Tensor(np.zeros(shape[1]), requires_grad=True)
    F.batch_norm(x, gamma, beta).backward(dy0)
    dx, dgamma, dbeta = F.batch_norm_backward(Tensor(dy0), Tensor(x0), Tensor(gamma0))
    np.testing.assert_allclose(dx.data, x.grad, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dgamma.data, gamma.grad, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dbeta.data, beta.grad, rtol=1e-12)
    with pytest.raises(ValueError, match="dy has shape"):
        F.batch_norm_backward(Tensor(dy0[:2]), Tensor(x0))


def test_closed_form_backward_on_scalars_equals_the_autodiff_gradient_graph():
    """The lecture notes' batch: ∂L/∂x built by autodiff (create_graph) and the paper's
    closed form written from primitives give the same numbers; the closed form is smaller."""
    x1 = [33, 72, 40, 104, 52, 56, 89, 24, 52, 73]
    x = tb.values([[v] for v in x1], "x")
    gamma = tb.values([1.0], "γ")
    y = F.batch_norm(x, gamma, tb.values([0.0], "β"))
    loss = Value.sum((i + 1) * row[0] for i, row in enumerate(y)).named("L")
    forward = {id(n) for n in tb.autograd.topological_order(loss)}
    loss.backward(create_graph=True)
    autodiff = [row[0].grad for row in x]
    dy = [[float(i + 1)] for i in range(10)]
    dx, dgamma, dbeta = F.batch_norm_backward(dy, x, gamma)
    assert [g.data for g in autodiff] == pytest.approx([row[0].data for row in dx], rel=1e-12)
    assert dgamma[0].data == pytest.approx(gamma[0].grad.data) and dbeta[0].data == 55.0
    xhat = tb.nodes(dx)["x̂[0,0]"]  # the closed form's own forward pass (x̂ recomputed)
    own_forward = {id(n) for n in tb.autograd.topological_order(xhat)}

    def new_nodes(roots, old):
        found = {id(n) for r in roots for n in tb.autograd.topological_order(r)}
        return len(found - old)

    autodiff_nodes = new_nodes(autodiff, forward)
    closed_nodes = new_nodes([row[0] for row in dx], own_forward | forward)
    assert closed_nodes < autodiff_nodes
