"""The public API of ../shared/DESIGN.md, exercised as an outside user would write it."""

import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, Value, nn, optim
from tinybn import functional as F


def test_scalar_engine_micrograd_example():
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = (a * b + a**2).relu()
    c.backward()
    # c = relu(-6 + 4) = 0, so no gradient flows through the relu
    assert c.data == 0.0 and a.grad == 0.0 and b.grad == 0.0
    d = a * b + a**2
    d.backward()
    assert a.grad == pytest.approx(b.data + 2 * a.data) and b.grad == pytest.approx(a.data)
    assert (a.label, d.op) == ("a", "+")


def test_scalar_batch_norm_returns_same_structure():
    x = [[Value(float(i + 3 * j)) for j in range(3)] for i in range(4)]
    gamma = [Value(1.0) for _ in range(3)]
    beta = [Value(0.0) for _ in range(3)]
    ys = F.batch_norm(x, gamma, beta, eps=1e-5)
    assert len(ys) == 4 and all(len(row) == 3 for row in ys)
    assert all(isinstance(v, Value) for row in ys for v in row)


def test_tensor_engine_example():
    data = np.random.default_rng(0).standard_normal((4, 3))
    t = Tensor(data, requires_grad=True)
    (t.mean(axis=0) ** 2).sum().backward()
    assert isinstance(t.grad, np.ndarray)
    np.testing.assert_allclose(t.grad, np.broadcast_to(2 * data.mean(axis=0) / 4, (4, 3)))
    with tb.no_grad():
        assert not (t * 2).requires_grad


def test_nn_example_state_dict_keys_and_modes(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1))
    assert model[0].weight.shape == (3, 2)
    bn = model[1]
    assert (bn.eps, bn.momentum, bn.affine, bn.track_running_stats) == (1e-5, 0.1, True, True)
    keys = list(model.state_dict())
    assert keys == [
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
    model.train()
    out = model(Tensor(np.random.default_rng(1).standard_normal((8, 2)).astype(np.float32)))
    assert out.shape == (8, 1)
    model.eval()
    assert not bn.training and len(list(model.parameters())) == 6
    assert len(list(model.modules())) == 5

    path = tmp_path / "ckpt.npz"
    tb.save(model.state_dict(), path)
    loaded = tb.load(path)
    assert all(isinstance(v, np.ndarray) for v in loaded.values())
    model.load_state_dict(loaded)

    folded = nn.fold_batchnorm(model)
    x = Tensor(np.random.default_rng(2).standard_normal((5, 2)).astype(np.float32))
    with tb.no_grad():
        np.testing.assert_allclose(folded(x).data, model(x).data, rtol=1e-4, atol=1e-5)

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.zero_grad()
    opt.step()


def test_losses_exist_and_reduce_by_mean():
    logits = Tensor(np.array([[2.0, 0.0], [0.0, 2.0]]))
    targets = np.array([0, 0])
    expected = np.mean([np.log(1 + np.exp(-2.0)), np.log(1 + np.exp(2.0))])
    assert F.cross_entropy(logits, targets).item() == pytest.approx(expected)
    p = Tensor(np.array([0.9, 0.2]))
    y = np.array([1.0, 0.0])
    assert F.binary_cross_entropy(p, y).item() == pytest.approx(-np.mean(np.log([0.9, 0.8])))
    assert F.mse_loss(Tensor(np.array([1.0, 3.0])), np.array([0.0, 0.0])).item() == 5.0


def test_keras_seed_snippet_summary_counts(capsys):
    from tinybn.keras import BatchNormalization, Dense, Sequential

    model = Sequential()
    model.add(Dense(3, activation="relu", input_dim=2))
    model.add(BatchNormalization())
    model.add(Dense(2, activation="relu"))
    model.add(BatchNormalization())
    model.add(Dense(1, activation="sigmoid"))
    model.summary()
    printed = capsys.readouterr().out
    assert "40" in printed and "30" in printed and "10" in printed
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2))
    y = (X[:, 0] > 0).astype(int)
    history = model.fit(X, y, epochs=2, batch_size=32, validation_split=0.2, verbose=0)
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert model.predict(X[:3]).shape == (3, 1)


def test_seeing_the_graph():
    x = [[Value(float(v)) for v in row] for row in ([1.0, 2.0], [3.0, 1.0], [0.0, 5.0])]
    gamma = [Value(1.0, label="γ[0]"), Value(1.0, label="γ[1]")]
    beta = [Value(0.0, label="β[0]"), Value(0.0, label="β[1]")]
    ys = F.batch_norm(x, gamma, beta)
    loss = Value.sum([v * (i + 1) for i, row in enumerate(ys) for v in row])
    steps = list(tb.backward_steps(loss))
    assert steps and all(str(step) for step in steps)
    graph = tb.draw(loss)
    assert "γ[0]" in graph.source
    assert "β" in tb.tree(loss) or "β" in tb.tree(loss, depth=20)


# -- audit: details and conventions of DESIGN.md, checked one by one -------------------------


def test_layer_norm_takes_batch_norms_signature_with_positional_eps():
    x = np.array([[1.0, 2.0, 6.0], [0.0, 4.0, 8.0]])
    gamma, beta = Tensor(np.array([1.0, 2.0, 1.0])), Tensor(np.array([0.0, 0.0, 1.0]))
    for norm, axis in ((F.batch_norm, 0), (F.layer_norm, 1)):
        y = norm(Tensor(x), gamma, beta, 0.5).data  # eps positional, third after x
        mu, var = x.mean(axis=axis, keepdims=True), x.var(axis=axis, keepdims=True)
        expected = (x - mu) / np.sqrt(var + 0.5) * gamma.data + beta.data
        np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_losses_accept_tensor_targets_like_numpy_ones():
    logits = Tensor(np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]))
    classes = np.array([0, 2])
    as_tensor, as_numpy = F.cross_entropy(logits, Tensor(classes)), F.cross_entropy(logits, classes)
    assert as_tensor.item() == as_numpy.item()
    p, y = Tensor(np.array([0.9, 0.2, 0.6])), np.array([1.0, 0.0, 0.0])
    for loss in (F.binary_cross_entropy, F.binary_cross_entropy_with_logits, F.mse_loss):
        assert loss(p, Tensor(y)).item() == pytest.approx(loss(p, y).item(), rel=1e-12)
    z = p.data
    expected = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    assert F.binary_cross_entropy_with_logits(p, y).item() == pytest.approx(expected)


def test_keras_compile_by_name_uses_keras_optimizer_defaults():
    from tinybn.keras import Dense, Sequential

    model = Sequential([Dense(1, input_dim=2)])
    model.compile(optimizer="adam", loss="mse")
    adam = model.optimizer
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (1e-3, 0.9, 0.999, 1e-7)
    model.compile(optimizer="sgd", loss="mse")
    assert (model.optimizer.learning_rate, model.optimizer.momentum) == (0.01, 0.0)


def test_keras_predict_returns_numpy_of_shape_n_by_units():
    from tinybn.keras import BatchNormalization, Dense, Sequential

    model = Sequential([Dense(4, input_dim=3), BatchNormalization(), Dense(5)])
    out = model.predict(np.ones((7, 3)), verbose=0)
    assert type(out) is np.ndarray and out.shape == (7, 5)


def test_optimizer_step_checks_every_grad_before_changing_anything():
    good, bad = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    for opt in (optim.SGD([good, bad], lr=0.1, momentum=0.9), optim.Adam([good, bad])):
        good.grad, bad.grad = np.ones(3), np.ones(5)  # bad's grad does not fit it
        with pytest.raises(ValueError, match=r"\(2,\).*\(5,\)"):
            opt.step()
        assert good.data.tolist() == [1.0, 1.0, 1.0] and bad.data.tolist() == [1.0, 1.0]
        assert opt.state == {} or all(not s for s in opt.state.values())
        bad.grad = [1.0, 1.0]  # a list, not an array
        with pytest.raises(TypeError, match="numpy array"):
            opt.step()
        assert good.data.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("bad", [None, [None, 1.0], "1.5", ["1", "2"], np.str_("a"), {}])
def test_tensor_data_that_is_not_numbers_is_a_type_error_not_nan(bad):
    with pytest.raises(TypeError, match="Tensor data"):
        Tensor(bad)
    with pytest.raises(TypeError):
        Tensor(np.ones(2)) + bad


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda: nn.Linear("2", 3), TypeError),
        (lambda: nn.Linear(2.0, 3), TypeError),
        (lambda: nn.Linear(2, -1), ValueError),
        (lambda: nn.BatchNorm1d("3"), TypeError),
        (lambda: nn.BatchNorm1d(True), TypeError),
        (lambda: nn.BatchNorm1d(0), ValueError),
        (lambda: nn.BatchNorm1d(3, eps="small"), TypeError),
        (lambda: nn.BatchNorm1d(3, momentum="0.1"), TypeError),
        (lambda: nn.BatchNorm1d(3, momentum=1.5), ValueError),
        (lambda: nn.LayerNorm("3"), TypeError),
        (lambda: nn.LayerNorm((2, 1.5)), TypeError),
        (lambda: nn.LayerNorm(0), ValueError),
        (lambda: nn.LayerNorm(3, eps=-1.0), ValueError),
        (lambda: nn.Dropout("0.5"), TypeError),
        (lambda: nn.Dropout(1.5), ValueError),
    ],
)
def test_module_arguments_of_the_wrong_type_or_value(make, error):
    with pytest.raises(error, match=r"Linear|BatchNorm1d|LayerNorm|Dropout|dropout"):
        make()


def test_viz_tools_refuse_what_is_not_a_graph_node_with_a_type_error():
    ys = F.batch_norm(tb.values([[1.0, 2.0], [3.0, 5.0]]), None, None)  # a list of rows
    for show in (tb.draw, tb.tree, lambda n: list(tb.backward_steps(n))):
        with pytest.raises(TypeError, match="Value or a Tensor"):
            show(ys)
    with pytest.raises(TypeError, match="Value or a Tensor"):
        tb.contributions(3.0, ys[0][0])


def test_scalar_engine_matches_micrograd_on_every_listed_op():
    micrograd = pytest.importorskip("micrograd.engine")

    def program(a, b):
        c = a + b - a * b / (1 + b**2)
        d = (2 * c).relu() + (3 - c) + (1 / (a * a + 1)) - (-a)
        return d + 2 * c * c - 1 * b

    ours = [Value(-1.5), Value(2.0)]
    theirs = [micrograd.Value(-1.5), micrograd.Value(2.0)]
    out, ref = program(*ours), program(*theirs)
    out.backward()
    ref.backward()
    assert out.data == pytest.approx(ref.data)
    assert [v.grad for v in ours] == pytest.approx([v.grad for v in theirs])
    # the ops micrograd lacks (tanh, exp, log, sigmoid, sqrt), against their closed forms
    x = Value(0.7)
    for op, f, df in [
        ("tanh", np.tanh, lambda v: 1 - np.tanh(v) ** 2),
        ("exp", np.exp, np.exp),
        ("log", np.log, lambda v: 1 / v),
        ("sigmoid", lambda v: 1 / (1 + np.exp(-v)), lambda v: np.exp(-v) / (1 + np.exp(-v)) ** 2),
        ("sqrt", np.sqrt, lambda v: 0.5 / np.sqrt(v)),
    ]:
        x.grad = 0.0
        y = getattr(x, op)()
        y.backward()
        assert (y.op, y.data, x.grad) == (op, pytest.approx(f(0.7)), pytest.approx(df(0.7)))
