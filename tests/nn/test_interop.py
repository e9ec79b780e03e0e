"""tinybn.interop: to_torch / from_torch give the same model in the other framework."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinybn import Tensor, keras, nn, no_grad, optim
from tinybn import functional as F

ROOT = Path(__file__).resolve().parents[2]


def test_importing_tinybn_never_imports_torch():
    code = (
        "import sys, tinybn, tinybn.interop, tinybn.keras\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def mixed_model(rng):
    """Every layer type the bridge converts, nested."""
    return nn.Sequential(
        nn.Linear(4, 6, rng=rng),
        nn.BatchNorm1d(6),
        nn.ReLU(),
        nn.Sequential(nn.Linear(6, 5, rng=rng), nn.LayerNorm(5), nn.Tanh()),
        nn.Dropout(0.3, rng=rng),
        nn.Linear(5, 3, rng=rng),
        nn.Identity(),
        nn.Sigmoid(),
    )


def train_tinybn(model, X, y, steps=5):
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(model(Tensor(X)), y).backward()
        opt.step()


def assert_same_state(tinybn_model, torch_model, torch_only=()):
    """Equal keys, dtypes and values; ``torch_only``: keys torch adds (a fixed β of 0)."""
    ours = tinybn_model.state_dict()
    theirs = torch_model.state_dict()
    for key in torch_only:
        assert not theirs.pop(key).numpy().any(), key
    assert list(ours) == list(theirs)
    for key, value in ours.items():
        other = theirs[key].numpy()
        assert other.dtype == value.dtype, key
        np.testing.assert_array_equal(other, value, err_msg=key)


def test_a_model_trained_in_tinybn_gives_the_same_outputs_in_torch():
    torch = pytest.importorskip("torch")
    from tinybn.interop import to_torch

    rng = np.random.default_rng(0)
    model = mixed_model(rng)
    X = rng.normal(2.0, 3.0, (16, 4)).astype(np.float32)
    y = rng.normal(size=(16, 3)).astype(np.float32)
    train_tinybn(model, X, y)
    model.eval()
    converted = to_torch(model)
    assert isinstance(converted, torch.nn.Sequential) and not converted.training
    assert_same_state(model, converted)
    assert int(converted[1].num_batches_tracked) == 5
    with no_grad():
        ours = model(Tensor(X)).data
    with torch.no_grad():
        theirs = converted(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-6)
    assert np.abs(ours - 0.5).max() > 0.05  # not a trivially constant output


def test_train_mode_and_requires_grad_carry_over_per_module():
    pytest.importorskip("torch")
    from tinybn.interop import from_torch, to_torch

    model = mixed_model(np.random.default_rng(1))
    model.train()
    model[1].eval()  # one module in another mode than its parent
    model[0].bias.requires_grad_(False)
    converted = to_torch(model)
    assert converted.training and converted[2].training and not converted[1].training
    assert not converted[0].bias.requires_grad and converted[0].weight.requires_grad
    back = from_torch(converted)
    assert [m.training for m in back.modules()] == [m.training for m in model.modules()]
    assert not back[0].bias.requires_grad and back[0].weight.requires_grad


def test_a_model_trained_in_torch_gives_the_same_outputs_in_tinybn_and_trains_alike():
    torch = pytest.importorskip("torch")
    from tinybn.interop import from_torch

    torch.manual_seed(0)
    tnn = torch.nn
    model = tnn.Sequential(
        tnn.Linear(3, 8),
        tnn.BatchNorm1d(8, momentum=None),  # cumulative average
        tnn.ReLU(),
        tnn.Linear(8, 4),
        tnn.LayerNorm(4),
        tnn.Softmax(dim=-1),
    )
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3)).astype(np.float32)
    y = rng.normal(size=(12, 4)).astype(np.float32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(4):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(torch.from_numpy(X)), torch.from_numpy(y)).backward()
        opt.step()
    converted = from_torch(model)
    assert type(converted) is nn.Sequential and converted.training
    assert_same_state(converted, model)
    model.eval()
    converted.eval()
    with torch.no_grad():
        theirs = model(torch.from_numpy(X)).numpy()
    with no_grad():
        ours = converted(Tensor(X)).data
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    # one more training step in each: the same update (batch statistics, running averages)
    model.train()
    converted.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(torch.from_numpy(X)), torch.from_numpy(y)).backward()
    opt.step()
    ours_opt = optim.SGD(converted.parameters(), lr=0.1)
    ours_opt.zero_grad()
    F.mse_loss(converted(Tensor(X)), y).backward()
    ours_opt.step()
    for key, value in converted.state_dict().items():
        np.testing.assert_allclose(value, model.state_dict()[key].numpy(), atol=1e-6, err_msg=key)


def test_round_trip_keeps_every_array_bit_for_bit():
    pytest.importorskip("torch")
    from tinybn.interop import from_torch, to_torch

    model = mixed_model(np.random.default_rng(2)).double()
    X = np.random.default_rng(3).normal(size=(8, 4))
    train_tinybn(model, X, np.zeros((8, 3)), steps=2)
    back = from_torch(to_torch(model))
    assert [type(m) for m in back.modules()] == [type(m) for m in model.modules()]
    for (key, a), (key_back, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert key == key_back and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_a_keras_model_converts_through_its_nn_layers():
    torch = pytest.importorskip("torch")
    from tinybn.interop import to_torch

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.float32)
    model = keras.Sequential(
        [
            keras.Dense(8, input_dim=2),
            keras.BatchNormalization(),
            keras.Activation("relu"),
            keras.Dropout(0.2),
            keras.Dense(4, activation="tanh"),
            keras.BatchNormalization(center=False),
            keras.Dense(1, activation="sigmoid"),
        ],
        seed=0,
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(X, y, epochs=3, batch_size=16, verbose=0)
    converted = to_torch(model)
    assert not converted.training  # a Keras model is in inference mode between calls
    # center=False: no β; a PyTorch without BatchNorm's bias option holds it at 0
    no_bias = converted.batch_normalization_1.bias is None
    assert no_bias or not converted.batch_normalization_1.bias.requires_grad
    assert_same_state(
        model, converted, torch_only=[] if no_bias else ["batch_normalization_1.bias"]
    )
    bn = converted.batch_normalization
    assert bn.momentum == pytest.approx(0.01) and bn.eps == pytest.approx(1e-3)
    with torch.no_grad():
        theirs = converted(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(theirs, model.predict(X, verbose=0), rtol=0, atol=1e-6)
    # PyTorch's momentum 0.01 on the new value is Keras's 0.99 on the old one: one training
    # step moves the running mean to the same place in both
    batch = X[:16]
    with torch.no_grad():
        converted.train()(torch.from_numpy(batch))
    model(batch, training=True)
    np.testing.assert_allclose(
        bn.running_mean.numpy(), model.batch_normalization.moving_mean.data, rtol=1e-6, atol=1e-7
    )


def test_what_cannot_convert_is_a_type_error_naming_it():
    torch = pytest.importorskip("torch")
    from tinybn.interop import from_torch, to_torch

    class Doubler(nn.Module):
        def forward(self, x):
            return x * 2

    with pytest.raises(TypeError, match="Doubler"):
        to_torch(nn.Sequential(nn.Linear(2, 2), Doubler()))
    custom = keras.Sequential([keras.Dense(2, activation=lambda x: x * 2, input_dim=2)])
    with pytest.raises(TypeError, match="CustomActivation"):
        to_torch(custom)
    with pytest.raises(TypeError, match="Conv1d"):  # Conv2d converts since issue 16
        from_torch(torch.nn.Sequential(torch.nn.Conv1d(1, 1, 3)))
    with pytest.raises(TypeError, match="tinybn nn.Module"):
        to_torch(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        from_torch(nn.Linear(2, 2))


def test_an_unbuilt_keras_model_is_refused_rather_than_converted_empty():
    pytest.importorskip("torch")
    from tinybn.interop import to_torch

    model = keras.Sequential([keras.Dense(3), keras.BatchNormalization()])
    with pytest.raises(ValueError, match="not built"):
        to_torch(model)
    model.build((None, 2))
    assert len(list(to_torch(model).parameters())) == 4
