"""tinybn.nn: modules, BatchNorm1d's running statistics, state_dict, fold_batchnorm, learning."""

import copy

import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, nn, optim
from tinybn import functional as F
from tinybn.data import moons

DESIGN_KEYS = [
    "0.weight",
    "0.bias",
    "1.weight",
    "1.bias",
    "1.running_mean",
    "1.running_var",
    "1.num_batches_tracked",
    "3.weight",
    "3.bias",
]


def design_model(seed: int = 0) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Linear(2, 3, rng=rng), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1, rng=rng)
    )


def randn(*shape, seed=0, scale=1.0, shift=0.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


# -- Module machinery ------------------------------------------------------------------------------


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(2, 4, rng=np.random.default_rng(0))
        self.norm = nn.BatchNorm1d(4)
        self.out = nn.Linear(4, 1, rng=np.random.default_rng(1))
        self.scale = 3.0  # a plain attribute: not state

    def forward(self, x):
        return self.out(self.norm(self.hidden(x)).relu()) * self.scale


def test_parameter_is_a_tensor_that_requires_grad():
    p = nn.Parameter(np.zeros((2, 3)))
    assert isinstance(p, Tensor) and p.requires_grad and p.dtype == np.float64
    assert nn.Parameter([1.0, 2.0]).dtype == np.float32
    assert repr(p).startswith("Parameter containing:")


def test_registration_by_assignment_names_like_pytorch():
    model = TwoLayer()
    assert [name for name, _ in model.named_parameters()] == [
        "hidden.weight",
        "hidden.bias",
        "norm.weight",
        "norm.bias",
        "out.weight",
        "out.bias",
    ]
    assert [name for name, _ in model.named_buffers()] == [
        "norm.running_mean",
        "norm.running_var",
        "norm.num_batches_tracked",
    ]
    assert [name for name, _ in model.named_children()] == ["hidden", "norm", "out"]
    assert [name for name, _ in model.named_modules()] == ["", "hidden", "norm", "out"]
    assert list(model.children()) == [model.hidden, model.norm, model.out]
    assert "scale" not in model.state_dict()
    assert len(list(model.parameters(recurse=False))) == 0
    out = model(Tensor(randn(5, 2)))
    assert out.shape == (5, 1)


def test_reassigning_keeps_order_and_none_removes_from_state():
    model = design_model()
    model[0] = nn.Linear(2, 3)  # replaced in place: still first
    assert list(model.state_dict()) == DESIGN_KEYS
    lin = nn.Linear(2, 2)
    lin.bias = None
    assert list(lin.state_dict()) == ["weight"]
    with pytest.raises(TypeError, match="parameter .weight."):
        lin.weight = np.zeros((2, 2))  # a parameter slot takes a Parameter or None


def test_attribute_reads_follow_every_registry_change():
    # registered entries are also plain attributes (a speed-up): every change keeps them in step
    lin = nn.Linear(2, 3)
    new_weight = nn.Parameter(np.ones((3, 2)))
    lin.weight = new_weight
    assert lin.weight is new_weight and lin._parameters["weight"] is new_weight
    lin.bias = None
    assert lin.bias is None and "bias" not in lin.state_dict()
    lin.register_buffer("weight", np.zeros(3))  # a parameter name re-filed as a buffer
    assert "weight" not in lin._parameters and lin.weight is lin._buffers["weight"]
    lin.weight = np.full(3, 2.0)  # assigning to a buffer name wraps the array
    np.testing.assert_array_equal(lin.weight.data, [2.0, 2.0, 2.0])
    assert lin.weight is lin._buffers["weight"]
    del lin.weight
    assert "weight" not in lin.state_dict()
    with pytest.raises(AttributeError, match="no attribute 'weight'"):
        lin.weight
    seq = nn.Sequential(nn.ReLU())
    replacement = nn.Tanh()
    seq[0] = replacement
    assert getattr(seq, "0") is replacement and list(seq) == [replacement]
    twin = copy.deepcopy(seq)
    assert getattr(twin, "0") is twin._modules["0"] is not replacement


def test_shared_parameter_listed_once_but_under_each_state_key():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.weight = a.weight
    model = nn.Sequential(a, b)
    assert len(list(model.parameters())) == 3
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_forgetting_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match=r"super\(\)\.__init__\(\)"):
        Broken()


def test_train_eval_reach_every_submodule_and_return_self():
    model = TwoLayer()
    assert model.eval() is model
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.train(False)
    assert not model.norm.training


def test_zero_grad_none_or_zeros():
    model = design_model()
    loss = model(Tensor(randn(4, 2))).sum()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_double_and_float_cast_floating_state_only():
    model = design_model().double()
    state = model.state_dict()
    assert state["0.weight"].dtype == np.float64 and state["1.running_var"].dtype == np.float64
    assert state["1.num_batches_tracked"].dtype == np.int64
    assert model(Tensor(randn(4, 2))).dtype == np.float64
    assert model.float().state_dict()["1.running_mean"].dtype == np.float32


def test_repr_matches_pytorch():
    assert repr(design_model()) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, "
        "track_running_stats=True)\n"
        "  (2): ReLU()\n"
        "  (3): Linear(in_features=3, out_features=1, bias=True)\n"
        ")"
    )


# -- Linear ----------------------------------------------------------------------------------------


def test_linear_shapes_and_affine_map():
    lin = nn.Linear(4, 3, rng=np.random.default_rng(0))
    assert lin.weight.shape == (3, 4) and lin.bias.shape == (3,)
    assert lin.weight.dtype == np.float32
    x = randn(5, 4)
    expected = x @ lin.weight.data.T + lin.bias.data
    np.testing.assert_allclose(lin(Tensor(x)).data, expected, rtol=1e-6)
    # batched and single-row inputs
    assert lin(Tensor(randn(2, 5, 4))).shape == (2, 5, 3)
    assert lin(Tensor(randn(4))).shape == (3,)
    no_bias = nn.Linear(4, 3, bias=False)
    assert no_bias.bias is None and list(no_bias.state_dict()) == ["weight"]
    np.testing.assert_allclose(no_bias(Tensor(x)).data, x @ no_bias.weight.data.T, rtol=1e-6)


def test_linear_default_init_is_uniform_within_one_over_sqrt_fan_in():
    lin = nn.Linear(100, 400, rng=np.random.default_rng(0))
    bound = 1 / np.sqrt(100)
    w, b = lin.weight.data, lin.bias.data
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(−k, k) has variance k²/3: the whole range is used, not a narrower one
    assert w.var() == pytest.approx(bound**2 / 3, rel=0.05)
    assert np.abs(w).max() > 0.99 * bound
    same = nn.Linear(100, 400, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(same.weight.data, w)


def test_linear_gradients_closed_form():
    lin = nn.Linear(3, 2, rng=np.random.default_rng(0))
    x = randn(5, 3)
    upstream = randn(5, 2, seed=1)
    lin(Tensor(x)).backward(upstream)
    np.testing.assert_allclose(lin.weight.grad, upstream.T @ x, rtol=1e-5)
    np.testing.assert_allclose(lin.bias.grad, upstream.sum(axis=0), rtol=1e-5)


def test_linear_bad_input():
    lin = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"\(5, 4\).*in_features=3"):
        lin(Tensor(randn(5, 4)))
    with pytest.raises(TypeError):
        lin([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError):
        nn.Linear(-1, 2)


def test_gradient_accumulates_when_a_module_is_used_twice():
    lin = nn.Linear(2, 2, rng=np.random.default_rng(0))
    a, b = randn(3, 2), randn(4, 2, seed=1)
    (lin(Tensor(a)).sum() + lin(Tensor(b)).sum()).backward()
    # d/dW of Σ(xWᵀ + b) = Σ_rows x for each output row, from both uses
    expected_w = np.tile(a.sum(axis=0) + b.sum(axis=0), (2, 1))
    np.testing.assert_allclose(lin.weight.grad, expected_w, rtol=1e-5)
    np.testing.assert_allclose(lin.bias.grad, [7.0, 7.0])
    # and composed with itself: y = W(Wx + b) + b
    lin.zero_grad()
    x = randn(1, 2, seed=2)
    lin(lin(Tensor(x))).sum().backward()
    w, bias = lin.weight.data.astype(np.float64), lin.bias.data.astype(np.float64)
    h = x @ w.T + bias
    ones = np.ones((1, 2))
    expected_w = ones.T @ h + (ones @ w).T @ x  # outer use + inner use
    expected_b = ones.sum(axis=0) + (ones @ w).sum(axis=0)
    np.testing.assert_allclose(lin.weight.grad, expected_w, rtol=1e-5)
    np.testing.assert_allclose(lin.bias.grad, expected_b, rtol=1e-5)


# -- BatchNorm1d -----------------------------------------------------------------------------------


def test_batchnorm_defaults_and_buffers():
    bn = nn.BatchNorm1d(3)
    assert (bn.eps, bn.momentum, bn.affine, bn.track_running_stats) == (1e-5, 0.1, True, True)
    np.testing.assert_array_equal(bn.weight.data, np.ones(3))
    np.testing.assert_array_equal(bn.bias.data, np.zeros(3))
    np.testing.assert_array_equal(bn.running_mean.data, np.zeros(3))
    np.testing.assert_array_equal(bn.running_var.data, np.ones(3))
    count = bn.state_dict()["num_batches_tracked"]
    assert count.shape == () and count.dtype == np.int64 and count == 0
    assert list(bn.state_dict()) == [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]


def test_batchnorm_training_output_normalizes_with_batch_statistics():
    x = randn(16, 3, scale=4.0, shift=2.0)
    bn = nn.BatchNorm1d(3)
    bn.weight.data[:] = [1.0, 2.0, 3.0]
    bn.bias.data[:] = [0.0, -1.0, 1.0]
    y = bn(Tensor(x)).data
    xhat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
    np.testing.assert_allclose(y, xhat * [1.0, 2.0, 3.0] + [0.0, -1.0, 1.0], rtol=1e-5, atol=1e-6)


def test_batchnorm_running_stats_are_an_ema_of_mean_and_unbiased_var():
    bn = nn.BatchNorm1d(3, momentum=0.1)
    mean, var = np.zeros(3), np.ones(3)
    for step in range(4):
        x = randn(8, 3, seed=step, scale=step + 1.0, shift=step - 1.0)
        bn(Tensor(x))
        mean = 0.9 * mean + 0.1 * x.mean(axis=0)
        var = 0.9 * var + 0.1 * x.var(axis=0, ddof=1)  # unbiased: m/(m−1) of the batch var
    np.testing.assert_allclose(bn.running_mean.data, mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.data, var, rtol=1e-5)
    assert int(bn.num_batches_tracked.data) == 4


def test_batchnorm_running_stats_keep_a_float64_model_float64():
    bn = nn.BatchNorm1d(3, momentum=0.25).double()
    x = randn(6, 3, scale=2.0, shift=1.0)
    bn(Tensor(x))
    assert bn.running_mean.data.dtype == np.float64 and bn.running_var.data.dtype == np.float64
    np.testing.assert_allclose(bn.running_mean.data, 0.25 * x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(bn.running_var.data, 0.75 + 0.25 * x.var(axis=0, ddof=1), rtol=1e-14)
    assert bn.num_batches_tracked.data.dtype == np.int64 and int(bn.num_batches_tracked.data) == 1


def test_batchnorm_momentum_none_is_the_lecture_notes_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None)
    batches = [randn(6, 2, seed=s, scale=s + 1.0, shift=3.0 * s) for s in range(5)]
    for x in batches:
        bn(Tensor(x))
    # E[x] = E_B[μ_B], Var[x] = m/(m−1) E_B[σ²_B]
    expected_mean = np.mean([x.mean(axis=0) for x in batches], axis=0)
    expected_var = 6 / 5 * np.mean([x.var(axis=0) for x in batches], axis=0)
    np.testing.assert_allclose(bn.running_mean.data, expected_mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.data, expected_var, rtol=1e-5)


def test_batchnorm_eval_uses_running_stats_and_is_per_example():
    bn = nn.BatchNorm1d(3)
    bn.weight.data[:] = [0.5, 1.0, 2.0]
    bn.bias.data[:] = [1.0, 0.0, -1.0]
    for s in range(3):
        bn(Tensor(randn(10, 3, seed=s, scale=2.0, shift=1.0)))
    before = bn.state_dict()
    bn.eval()
    x = randn(4, 3, seed=9)
    rm, rv = bn.running_mean.data, bn.running_var.data
    expected = (x - rm) / np.sqrt(rv + 1e-5) * [0.5, 1.0, 2.0] + [1.0, 0.0, -1.0]
    np.testing.assert_allclose(bn(Tensor(x)).data, expected, rtol=1e-5, atol=1e-6)
    # one example alone gets the same answer as inside the batch; stats untouched
    np.testing.assert_allclose(bn(Tensor(x[1:2])).data, expected[1:2], rtol=1e-5, atol=1e-6)
    for key, value in bn.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_batchnorm_three_d_input_uses_n_times_l_values_per_channel():
    bn = nn.BatchNorm1d(2, momentum=0.5)
    x = randn(3, 2, 5, scale=2.0, shift=1.0)
    y = bn(Tensor(x)).data
    mean = x.mean(axis=(0, 2))
    var = x.var(axis=(0, 2))
    np.testing.assert_allclose(
        y, (x - mean[:, None]) / np.sqrt(var[:, None] + 1e-5), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(bn.running_mean.data, 0.5 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.data, 0.5 + 0.5 * var * 15 / 14, rtol=1e-5)
    bn.eval()
    expected = (x - 0.5 * mean[:, None]) / np.sqrt(bn.running_var.data[:, None] + 1e-5)
    np.testing.assert_allclose(bn(Tensor(x)).data, expected, rtol=1e-5, atol=1e-6)


def test_batchnorm_without_running_stats_always_uses_the_batch():
    bn = nn.BatchNorm1d(3, track_running_stats=False, affine=False)
    assert bn.running_mean is None and bn.state_dict() == {}
    assert list(bn.parameters()) == []
    x = randn(6, 3, scale=3.0, shift=5.0)
    expected = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
    np.testing.assert_allclose(bn(Tensor(x)).data, expected, rtol=1e-5, atol=1e-6)
    bn.eval()
    np.testing.assert_allclose(bn(Tensor(x)).data, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(Tensor(x[:1]))


def test_batchnorm_one_value_per_channel_in_training_raises_before_any_change():
    bn = nn.BatchNorm1d(3)
    bn(Tensor(randn(4, 3)))
    before = bn.state_dict()
    for bad in (randn(1, 3), randn(1, 3, 1)):
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            bn(Tensor(bad))
    for key, value in bn.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    bn(Tensor(randn(1, 3, 2)))  # N·L = 2 values per channel is enough
    assert int(bn.num_batches_tracked.data) == 2


def test_batchnorm_bad_shapes_name_them():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"\(4, 5\).*num_features=3"):
        bn(Tensor(randn(4, 5)))
    with pytest.raises(ValueError, match=r"\(N, C\) or \(N, C, L\).*\(4,\)"):
        bn(Tensor(randn(4)))
    with pytest.raises(ValueError, match="4-d"):
        bn(Tensor(randn(2, 3, 2, 2)))
    assert int(bn.num_batches_tracked.data) == 0
    with pytest.raises(ValueError):
        nn.BatchNorm1d(3, momentum=1.5)


def test_batchnorm_calls_functional_batch_norm_with_stats(monkeypatch):
    calls = []
    original = F._batch_norm  # behind F.batch_norm_with_stats and its fused fast path

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "_batch_norm", spy)
    bn = nn.BatchNorm1d(2)
    bn(Tensor(randn(4, 2)))
    bn.eval()
    bn(Tensor(randn(4, 2)))
    assert len(calls) == 2
    assert calls[0]["mean"] is None and calls[1]["mean"] is bn.running_mean.data


def test_batchnorm_gradients_flow_to_gamma_and_beta():
    bn = nn.BatchNorm1d(2)
    x = randn(5, 2, scale=2.0)
    upstream = randn(5, 2, seed=1)
    bn(Tensor(x)).backward(upstream)
    xhat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
    np.testing.assert_allclose(bn.weight.grad, (upstream * xhat).sum(axis=0), rtol=1e-4)
    np.testing.assert_allclose(bn.bias.grad, upstream.sum(axis=0), rtol=1e-5)


# -- LayerNorm, Dropout, activations, Sequential ---------------------------------------------------


def test_layernorm_normalizes_each_example():
    ln = nn.LayerNorm(4)
    assert ln.weight.shape == (4,) and list(ln.state_dict()) == ["weight", "bias"]
    ln.weight.data[:] = 2.0
    x = randn(3, 4, scale=5.0, shift=1.0)
    expected = (
        2 * (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-5)
    )
    np.testing.assert_allclose(ln(Tensor(x)).data, expected, rtol=1e-5, atol=1e-6)
    ln.eval()  # no running statistics: the same in eval
    np.testing.assert_allclose(ln(Tensor(x)).data, expected, rtol=1e-5, atol=1e-6)
    ln2 = nn.LayerNorm((2, 3), elementwise_affine=False)
    assert ln2.state_dict() == {}
    z = randn(4, 2, 3)
    flat = z.reshape(4, 6)
    expected2 = (flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln2(Tensor(z)).data.reshape(4, 6), expected2, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        ln(Tensor(randn(3, 5)))


def test_dropout_inverted_in_training_identity_in_eval():
    drop = nn.Dropout(0.25, rng=np.random.default_rng(0))
    x = np.ones((200, 50))
    y = drop(Tensor(x)).data
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert np.mean(y == 0) == pytest.approx(0.25, abs=0.02)
    assert y.mean() == pytest.approx(1.0, abs=0.03)
    drop.eval()
    np.testing.assert_array_equal(drop(Tensor(x)).data, x)
    with pytest.raises(ValueError):
        nn.Dropout(1.5)
    assert repr(nn.Dropout()) == "Dropout(p=0.5)"


def test_activations():
    x = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_allclose(nn.ReLU()(Tensor(x)).data, [[0.0, 0.0, 3.0]])
    np.testing.assert_allclose(nn.Sigmoid()(Tensor(x)).data, 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(nn.Tanh()(Tensor(x)).data, np.tanh(x))
    t = Tensor(x)
    assert nn.Identity(5, any="thing")(t) is t


def test_sequential_indexing_iteration_and_append():
    model = design_model()
    assert len(model) == 4
    assert isinstance(model[1], nn.BatchNorm1d) and model[-1] is model[3]
    assert [type(m).__name__ for m in model] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    head = model[:2]
    assert isinstance(head, nn.Sequential) and head[0] is model[0]
    assert list(head.state_dict())[:2] == ["0.weight", "0.bias"]
    tail = model[2:]
    assert list(tail.state_dict()) == ["3.weight", "3.bias"]  # keys kept, as PyTorch
    with pytest.raises(IndexError):
        model[4]
    model.append(nn.Sigmoid())
    assert len(model) == 5 and isinstance(model[4], nn.Sigmoid)
    out = model(Tensor(randn(6, 2))).data
    assert out.shape == (6, 1) and np.all((out > 0) & (out < 1))


# -- state_dict ------------------------------------------------------------------------------------


def test_state_dict_keys_of_the_design_model_and_snapshot():
    model = design_model()
    state = model.state_dict()
    assert list(state) == DESIGN_KEYS
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert state["0.weight"].shape == (3, 2) and state["1.num_batches_tracked"].dtype == np.int64
    model.train()
    model(Tensor(randn(8, 2)))
    assert state["1.num_batches_tracked"] == 0  # a copy, not a live view
    assert model.state_dict()["1.num_batches_tracked"] == 1


def test_load_state_dict_round_trip_and_casting():
    source = design_model(seed=0)
    source(Tensor(randn(8, 2)))  # running stats become non-trivial
    target = design_model(seed=1)
    # plain float64 arrays and a Python-int counter are cast to each tensor's dtype
    state = {k: v.astype(np.float64) for k, v in source.state_dict().items()}
    state["1.num_batches_tracked"] = int(state["1.num_batches_tracked"])
    result = target.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert target[0].weight.dtype == np.float32
    assert target[1].num_batches_tracked.dtype == np.int64
    x = Tensor(randn(5, 2, seed=3))
    source.eval(), target.eval()
    np.testing.assert_array_equal(target(x).data, source(x).data)


def test_load_state_dict_lists_every_problem_and_leaves_model_unchanged():
    model = design_model()
    before = model.state_dict()
    state = dict(before)
    del state["1.running_var"]
    state["9.weight"] = np.zeros(2)
    state["0.weight"] = np.zeros((2, 3))  # transposed
    with pytest.raises(ValueError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "'1.running_var'" in message and "'9.weight'" in message
    assert "'0.weight'" in message and "(2, 3)" in message and "(3, 2)" in message
    assert isinstance(error.value, RuntimeError)  # what PyTorch raises, for ported code
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_state_dict_non_strict_reports_keys_but_still_checks_shapes():
    model = design_model(seed=0)
    other = design_model(seed=1).state_dict()
    partial = {"0.weight": other["0.weight"], "extra": np.zeros(1)}
    result = model.load_state_dict(partial, strict=False)
    assert "extra" in result.unexpected_keys and "0.bias" in result.missing_keys
    np.testing.assert_array_equal(model[0].weight.data, other["0.weight"])
    with pytest.raises(ValueError, match="shape"):
        model.load_state_dict({"0.weight": np.zeros(3)}, strict=False)
    with pytest.raises(ValueError, match="non-numeric"):
        model.load_state_dict({**model.state_dict(), "0.bias": np.array(["a", "b", "c"])})


def test_a_module_used_twice_is_in_the_state_dict_under_both_names():
    # PyTorch: Sequential(l, ReLU(), l).state_dict() has 0.* and 2.*; loading writes both
    # keys into the one shared tensor, the later one last
    shared = nn.Linear(2, 2, rng=np.random.default_rng(0))
    model = nn.Sequential(shared, nn.ReLU(), shared)
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(list(model.parameters())) == 2  # parameters() still lists each tensor once
    assert [name for name, _ in model.named_modules()] == ["", "0", "1"]
    all_uses = model.named_modules(remove_duplicate=False)
    assert [name for name, _ in all_uses] == ["", "0", "1", "2"]
    state["2.weight"] = np.full((2, 2), 3.0)
    model.load_state_dict(state)
    np.testing.assert_array_equal(shared.weight.data, np.full((2, 2), 3.0))


def test_a_checkpoint_without_num_batches_tracked_loads_and_keeps_the_count():
    # PyTorch BatchNorm checkpoints before version 2 have no num_batches_tracked
    bn = nn.BatchNorm1d(3)
    for seed in range(3):
        bn(Tensor(np.random.default_rng(seed).normal(size=(8, 3)).astype(np.float32)))
    old = {"weight": np.full(3, 2.0), "bias": np.zeros(3)}
    old |= {"running_mean": np.arange(3.0), "running_var": np.ones(3)}
    result = bn.load_state_dict(old)
    assert result.missing_keys == [] and int(bn.num_batches_tracked.data) == 3
    np.testing.assert_array_equal(bn.running_mean.data, [0.0, 1.0, 2.0])
    del old["running_mean"]  # any other missing buffer is still an error
    with pytest.raises(ValueError, match="missing keys: 'running_mean'"):
        bn.load_state_dict(old)


# -- fold_batchnorm --------------------------------------------------------------------------------


def trained_bn_model(seed=0):
    rng = np.random.default_rng(seed)
    model = nn.Sequential(
        nn.Linear(2, 4, rng=rng),
        nn.BatchNorm1d(4),
        nn.ReLU(),
        nn.Linear(4, 3, bias=False, rng=rng),
        nn.BatchNorm1d(3, affine=False, momentum=None),
        nn.Tanh(),
        nn.Linear(3, 1, rng=rng),
    )
    model[1].weight.data[:] = rng.uniform(0.5, 2.0, 4)
    model[1].bias.data[:] = rng.normal(size=4)
    for s in range(5):
        model(Tensor(randn(16, 2, seed=s, scale=3.0, shift=2.0)))
    return model


def test_fold_batchnorm_matches_eval_and_leaves_input_unchanged():
    model = trained_bn_model()
    before = model.state_dict()
    folded = nn.fold_batchnorm(model)
    assert model.training and all(m.training for m in model.modules())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    assert not folded.training
    assert not any(isinstance(m, nn.BatchNorm1d) for m in folded.modules())
    assert sum(isinstance(m, nn.Linear) for m in folded.modules()) == 3
    assert folded[3].bias is not None  # a bias-free Linear gains BN's shift
    x = Tensor(randn(7, 2, seed=11, scale=3.0))
    with tb.no_grad():
        expected = model.eval()(x).data
        np.testing.assert_allclose(folded(x).data, expected, rtol=1e-5, atol=1e-5)
    # the folded Linear is the lecture notes' formula
    bn, lin = model[1], model[0]
    scale = bn.weight.data / np.sqrt(bn.running_var.data + bn.eps)
    np.testing.assert_allclose(folded[0].weight.data, scale[:, None] * lin.weight.data, rtol=1e-6)
    np.testing.assert_allclose(
        folded[0].bias.data,
        bn.bias.data + scale * (lin.bias.data - bn.running_mean.data),
        rtol=1e-5,
        atol=1e-6,
    )


def test_fold_batchnorm_reaches_nested_sequentials_and_skips_batch_stat_bn():
    inner = trained_bn_model(seed=1)
    model = nn.Sequential(inner, nn.Linear(1, 2), nn.BatchNorm1d(2, track_running_stats=False))
    folded = nn.fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in folded[0].modules())
    assert isinstance(folded[2], nn.BatchNorm1d)  # no running stats: nothing to fold
    x = Tensor(randn(6, 2, seed=4))
    np.testing.assert_allclose(folded(x).data, model.eval()(x).data, rtol=1e-5, atol=1e-5)


# -- a small network really learns -----------------------------------------------------------------


def test_mlp_with_batchnorm_learns_moons():
    rng = np.random.default_rng(0)
    X, y = moons(1000, noise=0.15, seed=0)  # shuffled
    X_train, y_train, X_test, y_test = X[:800], y[:800], X[800:], y[800:]
    model = nn.Sequential(
        nn.Linear(2, 32, rng=rng),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Linear(32, 32, rng=rng),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Linear(32, 2, rng=rng),
    )
    opt = optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for epoch in range(15):
        order = rng.permutation(800)
        for start in range(0, 800, 50):
            batch = order[start : start + 50]
            loss = F.cross_entropy(model(Tensor(X_train[batch])), y_train[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with tb.no_grad():
        predictions = model(Tensor(X_test)).data.argmax(axis=1)
    accuracy = np.mean(predictions == y_test)
    assert accuracy >= 0.95, accuracy
    # the folded model is as accurate, with no BatchNorm left
    folded = nn.fold_batchnorm(model)
    with tb.no_grad():
        assert np.array_equal(folded(Tensor(X_test)).data.argmax(axis=1), predictions)


# -- PyTorch as an oracle (only where it is installed) ---------------------------------------------


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_matches_pytorch(shape, momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    theirs = torch.nn.BatchNorm1d(3, momentum=momentum).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rng.uniform(0.5, 2, 3)))
        theirs.bias.copy_(torch.tensor(rng.normal(size=3)))
    ours = nn.BatchNorm1d(3, momentum=momentum)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for _ in range(3):
        x = rng.normal(2.0, 3.0, shape)
        np.testing.assert_allclose(
            ours(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6
        )
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-5, err_msg=key)
    ours.eval(), theirs.eval()
    x = rng.normal(size=shape)
    np.testing.assert_allclose(
        ours(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6
    )


def test_pytorch_state_dict_loads_as_is():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(
        torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3), torch.nn.ReLU(), torch.nn.Linear(3, 1)
    )
    theirs(torch.randn(8, 2))
    theirs.eval()
    ours = design_model()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    ours.eval()
    x = randn(5, 2).astype(np.float32)
    np.testing.assert_allclose(
        ours(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6
    )
    assert repr(ours) == repr(theirs)


# -- fold_batchnorm across nested Sequentials: a Linear and the BatchNorm1d that runs right after
# it are folded even when a Sequential boundary lies between them.


def trained(model: nn.Module, n_features: int, seed: int = 0) -> nn.Module:
    """A few training-mode batches, so that the running statistics are not 0 and 1."""
    rng = np.random.default_rng(seed)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm1d)):
        if bn.affine:
            bn.weight.data[:] = rng.uniform(0.5, 2.0, bn.num_features)
            bn.bias.data[:] = rng.normal(size=bn.num_features)
    for _ in range(4):
        model(Tensor(rng.normal(2.0, 3.0, size=(16, n_features))))
    return model


def nested_model() -> nn.Sequential:
    rng = np.random.default_rng(1)
    return nn.Sequential(
        nn.Sequential(nn.Linear(2, 4, rng=rng)),  # Linear ends one Sequential ...
        nn.Sequential(nn.BatchNorm1d(4), nn.ReLU()),  # ... BatchNorm1d starts the next
        nn.Linear(4, 3, bias=False, rng=rng),
        nn.Sequential(nn.Sequential(nn.BatchNorm1d(3, momentum=None)), nn.Tanh()),  # 2 deep
        nn.Sequential(nn.Linear(3, 2, rng=rng), nn.Sequential(), nn.BatchNorm1d(2)),
    )


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_pairs_split_by_sequential_boundaries_are_folded_and_outputs_equal_eval():
    model = trained(nested_model(), 2)
    folded = nn.fold_batchnorm(model)
    assert count(folded, nn.BatchNorm1d) == 0 and count(folded, nn.Linear) == 3
    assert count(model, nn.BatchNorm1d) == 3 and model.training  # the input is unchanged
    # the BatchNorm1d's place is an Identity: the other layers keep their positions
    assert isinstance(folded[1][0], nn.Identity) and isinstance(folded[1][1], nn.ReLU)
    assert isinstance(folded[3][0][0], nn.Identity)
    assert folded[2].bias is not None  # the bias-free Linear gained BN's shift
    x = Tensor(np.random.default_rng(5).normal(2.0, 3.0, size=(9, 2)))
    with tb.no_grad():
        expected = model.eval()(x).data
        np.testing.assert_allclose(folded(x).data, expected, rtol=1e-5, atol=1e-5)


def test_the_folded_linear_across_a_boundary_is_the_lecture_notes_formula():
    model = trained(nested_model(), 2)
    folded = nn.fold_batchnorm(model)
    linear, bn = model[0][0], model[1][0]
    scale = bn.weight.data / np.sqrt(bn.running_var.data + bn.eps)
    np.testing.assert_allclose(
        folded[0][0].weight.data, scale[:, None] * linear.weight.data, rtol=1e-6
    )
    np.testing.assert_allclose(
        folded[0][0].bias.data,
        bn.bias.data + scale * (linear.bias.data - bn.running_mean.data),
        rtol=1e-5,
        atol=1e-6,
    )


class Block(nn.Module):
    """A custom module (its forward is its own) holding a Sequential."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(2)
        self.body = nn.Sequential(
            nn.Sequential(nn.Linear(3, 5, rng=rng), nn.Sequential(nn.BatchNorm1d(5))),
            nn.ReLU(),
        )
        self.skip = nn.Linear(3, 5, rng=rng)

    def forward(self, x):
        return self.body(x) + self.skip(x)


def test_sequentials_inside_a_custom_module_are_folded_too():
    model = trained(Block(), 3)
    folded = nn.fold_batchnorm(model)
    assert count(folded, nn.BatchNorm1d) == 0
    x = Tensor(np.random.default_rng(6).normal(size=(4, 3)))
    with tb.no_grad():
        np.testing.assert_allclose(folded(x).data, model.eval()(x).data, rtol=1e-5, atol=1e-5)


# -- tb.manual_seed: unseeded layers, masks and shuffles repeat ------------------------------------


def test_manual_seed_makes_unseeded_layers_masks_and_shuffles_repeat():
    def build():
        tb.manual_seed(123)
        model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
        out = model(Tensor(np.ones((16, 4), dtype=np.float32))).data
        loader = tb.data.DataLoader(np.arange(20), batch_size=5, shuffle=True)
        order = np.concatenate([b.data for b in loader])
        X, _ = tb.data.moons(10)
        mask = F.dropout(Tensor(np.ones(50)), 0.5).data
        return [model[0].weight.data, model[2].bias.data, out, order, X, mask]

    first, second = build(), build()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    tb.manual_seed(124)
    other = nn.Linear(4, 8).weight.data
    assert not np.array_equal(other, first[0])


def test_manual_seed_refuses_what_is_not_a_seed():
    with pytest.raises(TypeError, match="int"):
        tb.manual_seed(1.5)
    with pytest.raises(ValueError, match=">= 0"):
        tb.manual_seed(-1)
