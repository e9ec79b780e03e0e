"""Optimizer.state_dict() / load_state_dict(): PyTorch's structure, an exact resume."""

import copy

import numpy as np
import pytest

from tinybn import Tensor, nn, optim
from tinybn import functional as F

RNG = np.random.default_rng(3)
X = RNG.normal(size=(16, 2))
Y = (X[:, :1] * X[:, 1:] > 0).astype(np.float64)


def make_model() -> nn.Sequential:
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Linear(2, 4, rng=rng), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1, rng=rng)
    )
    for p in model.parameters():  # float64: an exact resume is compared bit for bit
        p.data = p.data.astype(np.float64)
    return model


def train(model: nn.Module, opt: optim.Optimizer, steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(model(Tensor(X)), Tensor(Y)).backward()
        opt.step()


OPTIMIZERS = {
    "sgd-momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1),
    "sgd-nesterov": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True),
    "adam": lambda ps: optim.Adam(ps, lr=0.01),
    "adam-amsgrad": lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True, weight_decay=1e-3),
}


@pytest.mark.parametrize("make_opt", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_save_then_resume_in_a_fresh_optimizer_equals_training_on(make_opt):
    model = make_model()
    opt = make_opt(model.parameters())
    train(model, opt, 3)
    saved_model, saved_opt = model.state_dict(), opt.state_dict()
    saved_model = {k: v.copy() for k, v in saved_model.items()}

    train(model, opt, 4)  # keep training
    kept_on = [p.data.copy() for p in model.parameters()]

    resumed = make_model()
    resumed.load_state_dict(saved_model)
    fresh_opt = make_opt(resumed.parameters())
    fresh_opt.load_state_dict(saved_opt)
    train(resumed, fresh_opt, 4)
    for a, b in zip(kept_on, (p.data for p in resumed.parameters())):
        np.testing.assert_array_equal(a, b)

    # without the optimizer's state the resume differs: the state is what made it equal
    restarted = make_model()
    restarted.load_state_dict(saved_model)
    train(restarted, make_opt(restarted.parameters()), 4)
    assert not all(np.array_equal(a, p.data) for a, p in zip(kept_on, restarted.parameters()))


def test_state_dict_has_pytorch_structure_indices_and_copies():
    w = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    b = Tensor(np.array([0.5]), requires_grad=True)
    idle = Tensor(np.array([3.0]), requires_grad=True)  # never gets a grad: no state
    opt = optim.Adam([{"params": [w, idle]}, {"params": [b], "lr": 0.1}], lr=0.01)
    w.grad, b.grad = np.array([0.5, 1.0]), np.array([-2.0])
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.01, 0.1]
    assert sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sorted(sd["state"]) == [0, 2]  # index 1 (idle) has no state
    assert sd["state"][0]["step"] == 1
    # after one step m = (1 − β1)·g, v = (1 − β2)·g²
    np.testing.assert_allclose(sd["state"][0]["exp_avg"], 0.1 * w.grad)
    np.testing.assert_allclose(sd["state"][2]["exp_avg_sq"], 0.001 * b.grad**2)
    before = sd["state"][0]["exp_avg"].copy()
    opt.step()  # the live moments change in place; the saved copy does not
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], before)
    assert sd["state"][0]["step"] == 1 and opt.state[w]["step"] == 2


def test_plain_sgd_has_no_state_and_loading_restores_group_options():
    p = Tensor(np.zeros(2), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.ones(2)
    opt.step()
    sd = opt.state_dict()
    assert sd["state"] == {}
    sd["param_groups"][0]["lr"] = 0.5
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["params"][0] is p
    opt.step()
    np.testing.assert_allclose(p.data, [-0.6, -0.6])  # −0.1 then −0.5


def test_loaded_state_is_cast_to_the_parameters_dtype_and_not_shared():
    p64 = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    opt = optim.SGD([p64], lr=0.1, momentum=0.9)
    p64.grad = np.array([1.0, 1.0])
    opt.step()
    p32 = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    other = optim.SGD([p32], lr=0.1, momentum=0.9)
    sd = opt.state_dict()
    other.load_state_dict(sd)
    buffer = other.state[p32]["momentum_buffer"]
    assert buffer.dtype == np.float32
    np.testing.assert_array_equal(buffer, [1.0, 1.0])
    buffer += 5.0
    np.testing.assert_array_equal(sd["state"][0]["momentum_buffer"], [1.0, 1.0])


def two_group_sgd():
    a = Tensor(np.ones(2), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.2}], lr=0.1, momentum=0.9)
    a.grad, b.grad = np.ones(2), np.ones(3)
    opt.step()
    return opt


def wrong_shape(sd):
    sd["state"][0]["momentum_buffer"] = np.zeros(5)
    return sd


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda sd: {**sd, "param_groups": sd["param_groups"][:1]}, "1 parameter group"),
        (lambda sd: {**sd, "param_groups": [sd["param_groups"][0]] * 3}, "3 parameter group"),
        (
            lambda sd: {
                **sd,
                "param_groups": [
                    sd["param_groups"][0],
                    {**sd["param_groups"][1], "params": [1, 2]},
                ],
            },
            "group 1 has 2 parameter",
        ),
        (wrong_shape, r"state 'momentum_buffer' of parameter 0 has shape \(5,\)"),
        (lambda sd: {"state": sd["state"]}, "'state' and 'param_groups'"),
        (lambda sd: {**sd, "state": {7: {}}}, "unknown parameter index 7"),
        (
            lambda sd: {**sd, "param_groups": [{**g, "lr": -1.0} for g in sd["param_groups"]]},
            "Invalid lr",
        ),
    ],
)
def test_a_mismatched_state_dict_is_refused_and_the_optimizer_is_unchanged(corrupt, message):
    opt = two_group_sgd()
    target = two_group_sgd()
    groups_before = copy.deepcopy(
        [{k: v for k, v in g.items() if k != "params"} for g in target.param_groups]
    )
    state_before = {id(p): s["momentum_buffer"].copy() for p, s in target.state.items()}
    with pytest.raises(ValueError, match=message):
        target.load_state_dict(corrupt(opt.state_dict()))
    assert [
        {k: v for k, v in g.items() if k != "params"} for g in target.param_groups
    ] == groups_before
    for p, s in target.state.items():
        np.testing.assert_array_equal(s["momentum_buffer"], state_before[id(p)])


def test_an_sgd_state_dict_does_not_load_into_adam():
    p = Tensor(np.ones(2), requires_grad=True)
    sgd = optim.SGD([p], lr=0.1, momentum=0.9)
    adam = optim.Adam([p])
    with pytest.raises(ValueError, match=r"options .* in this Adam"):
        adam.load_state_dict(sgd.state_dict())
    with pytest.raises(TypeError, match="expected a dict"):
        adam.load_state_dict([("state", {})])
