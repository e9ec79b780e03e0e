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
