"""tinybn.optim: SGD and Adam against updates computed by hand, PyTorch's defaults and errors."""

import math

import numpy as np
import pytest

from tinybn import Tensor, nn, optim

GRADS = [1.0, 2.0, -1.0]  # the gradient seen at steps 1, 2, 3


def run(make_optimizer, grads=GRADS, start=1.0):
    """Final value of a one-element parameter after one step per grad."""
    p = nn.Parameter(np.array([start]))
    opt = make_optimizer([p])
    for g in grads:
        p.grad = np.array([g])
        opt.step()
    return p.data[0]


def test_sgd_defaults_match_pytorch():
    p = nn.Parameter(np.zeros(2))
    group = optim.SGD([p]).param_groups[0]
    assert group["lr"] == 1e-3 and group["momentum"] == 0 and group["dampening"] == 0
    assert group["weight_decay"] == 0 and group["nesterov"] is False


def test_plain_sgd():
    # p ← p − lr·g: 1 − 0.1·(1 + 2 − 1)
    assert run(lambda ps: optim.SGD(ps, lr=0.1)) == pytest.approx(0.8)


def test_sgd_momentum_buffer_starts_at_the_first_grad():
    # b1 = 1 → p = 0.9;  b2 = 0.9·1 + 2 = 2.9 → p = 0.61;  b3 = 0.9·2.9 − 1 = 1.61 → p = 0.449
    assert run(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9)) == pytest.approx(0.449)
    # one step: no 0.1·g damping of the first buffer (it IS the first grad)
    assert run(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), grads=[1.0]) == pytest.approx(0.9)


def test_sgd_dampening():
    # b1 = 1 → 0.9;  b2 = 0.9 + 0.5·2 = 1.9 → 0.71;  b3 = 1.71 − 0.5 = 1.21 → 0.589
    make = lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5)  # noqa: E731
    assert run(make) == pytest.approx(0.589)


def test_sgd_nesterov():
    # d = g + μ·b:  b1 = 1, d = 1.9 → 0.81;  b2 = 2.9, d = 4.61 → 0.349;
    #               b3 = 1.61, d = 0.449 → 0.3041
    make = lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)  # noqa: E731
    assert run(make) == pytest.approx(0.3041)


def test_sgd_weight_decay_adds_l2_gradient():
    # g' = g + 0.1·p:  1.1 → 0.89;  2.089 → 0.6811;  −0.93189 → 0.774289
    make = lambda ps: optim.SGD(ps, lr=0.1, weight_decay=0.1)  # noqa: E731
    assert run(make) == pytest.approx(0.774289)


def adam_by_hand(grads, lr, beta1, beta2, eps, weight_decay=0.0, start=1.0):
    p, m, v = start, 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
    return p


def test_adam_defaults_match_pytorch():
    group = optim.Adam([nn.Parameter(np.zeros(2))]).param_groups[0]
    assert group["lr"] == 1e-3 and group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8
    assert group["weight_decay"] == 0


def test_adam_first_step_is_lr_times_sign_of_grad():
    # bias correction makes m̂ = g and v̂ = g², so the first step is lr·g/(|g| + ε) ≈ lr·sign(g)
    for g in (1e-4, 3.0, -250.0):
        assert run(lambda ps: optim.Adam(ps, lr=0.1), grads=[g]) == pytest.approx(
            1.0 - 0.1 * g / (abs(g) + 1e-8), rel=1e-12
        )


def test_adam_matches_hand_computation_over_steps():
    expected = adam_by_hand(GRADS, 0.1, 0.9, 0.999, 1e-8)
    assert run(lambda ps: optim.Adam(ps, lr=0.1)) == pytest.approx(expected, rel=1e-12)
    # step 2 by hand: m̂ = 0.29/0.19, v̂ = 0.004999/0.001999
    two_steps = 0.9 - 0.1 * (0.29 / 0.19) / (math.sqrt(0.004999 / 0.001999) + 1e-8)
    assert run(lambda ps: optim.Adam(ps, lr=0.1), grads=GRADS[:2]) == pytest.approx(two_steps)
    expected = adam_by_hand(GRADS, 0.05, 0.8, 0.99, 1e-3, weight_decay=0.1)
    make = lambda ps: optim.Adam(ps, 0.05, (0.8, 0.99), 1e-3, weight_decay=0.1)  # noqa: E731
    assert run(make) == pytest.approx(expected, rel=1e-12)


def test_adam_state_holds_step_and_moments():
    p = nn.Parameter(np.array([1.0, 2.0]))
    opt = optim.Adam([p], lr=0.1)
    for g in ([1.0, -1.0], [3.0, 1.0]):
        p.grad = np.array(g)
        opt.step()
    state = opt.state[p]
    assert state["step"] == 2
    np.testing.assert_allclose(state["exp_avg"], [0.09 * 1 + 0.1 * 3, -0.09 + 0.1])
    np.testing.assert_allclose(state["exp_avg_sq"], [0.000999 + 0.009, 0.000999 + 0.001])


def test_step_skips_parameters_without_grad_and_zero_grad():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    frozen = nn.Linear(2, 2)  # never used in the loss: its grads stay None
    params = list(model.parameters()) + list(frozen.parameters())
    opt = optim.SGD(params, lr=0.5, momentum=0.9)
    before = [p.data.copy() for p in params]
    model(Tensor(np.ones((3, 2)))).sum().backward()
    opt.step()
    assert all(not np.array_equal(p.data, b) for p, b in zip(params[:4], before[:4]))
    assert all(np.array_equal(p.data, b) for p, b in zip(params[4:], before[4:]))
    assert all(p not in opt.state for p in params[4:])
    opt.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in params[:4]) and params[4].grad is None
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_update_is_in_place_and_records_no_graph():
    p = nn.Parameter(np.array([1.0, 2.0]))
    data = p.data
    p.grad = np.array([1.0, 1.0])
    optim.Adam([p]).step()
    assert p.data is data and p._parents == () and p.requires_grad


def test_parameter_groups_with_their_own_options():
    a, b = nn.Parameter(np.array([1.0])), nn.Parameter(np.array([1.0]))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = np.array([1.0]), np.array([1.0])
    opt.step()
    assert a.data[0] == pytest.approx(0.9) and b.data[0] == pytest.approx(0.5)
    opt.param_groups[0]["lr"] = 0.2  # a schedule changes lr here
    opt.step()
    assert a.data[0] == pytest.approx(0.7)


def test_float32_parameters_stay_float32():
    p = nn.Parameter(np.ones(3, dtype=np.float32))
    p.grad = np.ones(3, dtype=np.float32)
    optim.Adam([p]).step()
    optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=1e-2).step()
    assert p.data.dtype == np.float32


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda ps: optim.SGD(ps, lr=-0.1), "lr"),
        (lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.5), "momentum"),
        (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1.0), "weight_decay"),
        (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "Nesterov"),
        (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nest"),
        (lambda ps: optim.Adam(ps, lr=-1e-3), "lr"),
        (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), "beta.*index 0"),
        (lambda ps: optim.Adam(ps, betas=(0.9, -0.1)), "beta.*index 1"),
        (lambda ps: optim.Adam(ps, eps=-1e-8), "eps"),
        (lambda ps: optim.Adam(ps, lr=float("nan")), "lr"),
    ],
)
def test_invalid_options_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make([nn.Parameter(np.zeros(2))])


def test_bad_params_argument():
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(nn.Parameter(np.zeros(2)), lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(TypeError, match="Tensors"):
        optim.SGD([np.zeros(2)], lr=0.1)
    p = nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="more than one"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="unknown"):
        optim.SGD([{"params": [p], "momentun": 0.9}], lr=0.1)


# -- PyTorch as an oracle (only where it is installed) -----------------------------------------


@pytest.mark.parametrize(
    "name, options",
    [
        ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
        ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
        ("Adam", dict(lr=0.01, weight_decay=0.1)),
        ("Adam", dict(lr=0.01, betas=(0.8, 0.9), amsgrad=True)),
    ],
)
def test_optimizers_match_pytorch(name, options):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 2))
    ours = nn.Parameter(start.copy())
    theirs = torch.nn.Parameter(torch.tensor(start.copy()))
    opt = getattr(optim, name)([ours], **options)
    their_opt = getattr(torch.optim, name)([theirs], **options)
    for _ in range(5):
        g = rng.normal(size=(3, 2))
        ours.grad, theirs.grad = g.copy(), torch.tensor(g.copy())
        opt.step()
        their_opt.step()
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


SGD_OPTIONS = [
    dict(lr=0.1, momentum=m, dampening=d, nesterov=n, weight_decay=w, maximize=x)
    for m in (0.0, 0.9)
    for d in (0.0, 0.3)
    for n in (False, True)
    for w in (0.0, 0.05)
    for x in (False, True)
    if not (n and (m == 0 or d != 0))  # Nesterov needs momentum and no dampening
]
ADAM_OPTIONS = [
    dict(lr=0.01, amsgrad=a, weight_decay=w, maximize=x, betas=b, eps=e)
    for a in (False, True)
    for w in (0.0, 0.1)
    for x in (False, True)
    for b in ((0.9, 0.999), (0.5, 0.9))
    for e in (1e-8, 1e-3)
]


@pytest.mark.parametrize(
    "name, options",
    [("SGD", o) for o in SGD_OPTIONS] + [("Adam", o) for o in ADAM_OPTIONS],
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={v[k]}" for k in v if k != "lr"),
)
def test_every_option_combination_matches_pytorch_with_skipped_grads_and_lr_changes(name, options):
    """Two parameters, some steps without a grad for one of them (skipped, its state
    untouched), the learning rate halved half-way: 10 steps equal torch.optim's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    starts = [rng.normal(size=3), rng.normal(size=(2, 2))]
    ours = [nn.Parameter(s.copy()) for s in starts]
    theirs = [torch.nn.Parameter(torch.tensor(s.copy())) for s in starts]
    opt = getattr(optim, name)(ours, **options)
    their_opt = getattr(torch.optim, name)(theirs, **options)
    for step in range(10):
        for k, (a, b) in enumerate(zip(ours, theirs)):
            if (step + k) % 3 == 0:
                a.grad, b.grad = None, None
            else:
                g = rng.normal(size=a.data.shape)
                a.grad, b.grad = g.copy(), torch.tensor(g)
        if step == 5:
            for group in (*opt.param_groups, *their_opt.param_groups):
                group["lr"] *= 0.5
        opt.step()
        their_opt.step()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-10, atol=1e-12)
