"""tinybn.keras against Keras 3's documented conventions, checked with hand-computed numbers."""

import math

import numpy as np
import pytest

from tinybn import Tensor, data, no_grad
from tinybn.keras import (
    SGD,
    Activation,
    Adam,
    BatchNormalization,
    Dense,
    Dropout,
    Input,
    RMSprop,
    Sequential,
    binary_crossentropy,
    categorical_crossentropy,
    mean_squared_error,
    sparse_categorical_crossentropy,
)


def seed_model(seed=None):
    """The lecture notes' Keras model: 2 → 3 → BN → 2 → BN → 1."""
    model = Sequential(seed=seed)
    model.add(Dense(3, activation="relu", input_dim=2))
    model.add(BatchNormalization())
    model.add(Dense(2, activation="relu"))
    model.add(BatchNormalization())
    model.add(Dense(1, activation="sigmoid"))
    return model


# -- BatchNormalization ----------------------------------------------------------------------


def test_bn_moving_statistics_follow_keras_momentum_and_biased_variance():
    rng = np.random.default_rng(0)
    bn = BatchNormalization()
    assert (bn.momentum, bn.epsilon) == (0.99, 1e-3)
    batches = [rng.normal(3.0, 2.0, (4, 3)).astype(np.float32) for _ in range(3)]
    moving_mean, moving_var = np.zeros(3), np.ones(3)
    for x in batches:
        y = bn(Tensor(x), training=True)
        mean, var = x.mean(axis=0), x.var(axis=0)  # biased: divide by 4, not 3
        np.testing.assert_allclose(y.data, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)
        moving_mean = moving_mean * 0.99 + mean * 0.01
        moving_var = moving_var * 0.99 + var * 0.01
    np.testing.assert_allclose(bn.moving_mean.data, moving_mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.data, moving_var, rtol=1e-5)
    # PyTorch's unbiased running variance would be visibly different here
    unbiased = np.ones(3)
    for x in batches:
        unbiased = unbiased * 0.99 + x.var(axis=0, ddof=1) * 0.01
    assert not np.allclose(bn.moving_variance.data, unbiased, rtol=1e-3)
    # inference normalizes with the moving statistics
    x = batches[0]
    y = bn(Tensor(x), training=False)
    np.testing.assert_allclose(
        y.data, (x - moving_mean) / np.sqrt(moving_var + 1e-3), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(bn.moving_mean.data, moving_mean, rtol=1e-5)  # not updated


def test_bn_gamma_beta_and_custom_momentum():
    bn = BatchNormalization(momentum=0.5, epsilon=0.1)
    x = np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32)
    bn.build(2)
    bn.gamma.data[:] = [2.0, -1.0]
    bn.beta.data[:] = [0.5, 1.0]
    y = bn(Tensor(x), training=True)
    xhat = (x - x.mean(0)) / np.sqrt(x.var(0) + 0.1)
    np.testing.assert_allclose(y.data, xhat * [2.0, -1.0] + [0.5, 1.0], rtol=1e-5)
    np.testing.assert_allclose(bn.moving_mean.data, 0.5 * x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.data, 0.5 + 0.5 * x.var(0), rtol=1e-6)


def test_bn_training_batch_of_one_yields_beta_with_exact_gradients():
    bn = BatchNormalization()
    bn.build(3)
    bn.gamma.data[:] = [1.5, -2.0, 0.3]
    bn.beta.data[:] = [0.25, -1.0, 4.0]
    x = Tensor(np.array([[0.7, -3.0, 10.0]], dtype=np.float32), requires_grad=True)
    y = bn(x, training=True)
    assert y.shape == (1, 3)
    np.testing.assert_allclose(y.data, [[0.25, -1.0, 4.0]], atol=1e-6)
    upstream = np.array([[2.0, -1.0, 0.5]], dtype=np.float32)
    (y * upstream).sum().backward()
    np.testing.assert_allclose(bn.beta.grad, upstream[0])  # dy/dβ = 1
    np.testing.assert_allclose(bn.gamma.grad, 0.0, atol=1e-6)  # x̂ = 0
    np.testing.assert_allclose(x.grad, 0.0, atol=1e-4)  # y does not depend on x
    # the moving statistics saw mean = x and variance 0
    np.testing.assert_allclose(bn.moving_mean.data, 0.01 * x.data[0], rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.data, 0.99, rtol=1e-6)


def test_bn_center_scale_off_and_frozen_layer():
    bn = BatchNormalization(center=False, scale=False)
    bn.build(2)
    assert bn.gamma is None and bn.beta is None and bn.count_params() == 4
    assert bn.trainable_weights == []
    frozen = BatchNormalization(trainable=False)
    frozen.build(2)
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    y = frozen(Tensor(x), training=True)  # Keras: a frozen BN layer runs in inference mode
    np.testing.assert_allclose(y.data, x / np.sqrt(1 + 1e-3), rtol=1e-6)
    np.testing.assert_allclose(frozen.moving_mean.data, 0.0)
    assert len(frozen.non_trainable_weights) == 4


# -- Dense, activations, dropout ------------------------------------------------------------------


def test_dense_kernel_shape_glorot_bound_zero_bias_and_forward():
    model = Sequential([Dense(3, input_dim=2)], seed=0)
    dense = model.layers[0]
    assert dense.kernel.shape == (2, 3) and dense.bias.shape == (3,)
    limit = math.sqrt(6 / (2 + 3))
    assert np.all(np.abs(dense.kernel.data) <= limit) and np.all(dense.bias.data == 0)
    dense.bias.data[:] = [1.0, 2.0, 3.0]
    x = np.array([[1.0, -2.0]], dtype=np.float32)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), x @ dense.kernel.data + [1.0, 2.0, 3.0], rtol=1e-6
    )
    # a big layer's kernel fills the glorot range uniformly: variance l²/3
    big = Sequential([Dense(200, input_dim=300)], seed=1).layers[0].kernel.data
    assert big.var() == pytest.approx((6 / 500) / 3, rel=0.03)
    # same seed, same weights
    again = Sequential([Dense(3, input_dim=2)], seed=0).layers[0].kernel.data
    np.testing.assert_array_equal(
        again, Sequential([Dense(3, input_dim=2)], seed=0).get_weights()[0]
    )


@pytest.mark.parametrize(
    "name, expected",
    [
        ("relu", lambda z: np.maximum(z, 0)),
        ("sigmoid", lambda z: 1 / (1 + np.exp(-z))),
        ("tanh", np.tanh),
        ("softmax", lambda z: np.exp(z) / np.exp(z).sum(-1, keepdims=True)),
        ("linear", lambda z: z),
        (None, lambda z: z),
    ],
)
def test_activations_by_name(name, expected):
    z = np.array([[-1.5, 0.0, 2.0], [3.0, -0.5, 0.1]], dtype=np.float32)
    out = Activation(name)(Tensor(z)).data
    np.testing.assert_allclose(out, expected(z.astype(float)), rtol=1e-5, atol=1e-7)


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="swish_typo"):
        Dense(3, activation="swish_typo")
    with pytest.raises(ValueError, match="gelu"):
        Activation("gelu")


def test_dropout_scales_in_training_and_is_identity_in_inference():
    layer = Dropout(0.25, seed=3)
    x = Tensor(np.ones((400, 50), dtype=np.float32))
    y = layer(x, training=True).data
    kept = y != 0
    assert kept.mean() == pytest.approx(0.75, abs=0.02)
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(layer(x, training=False).data, x.data)
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.5)


def test_training_gradients_match_finite_differences():
    model = Sequential(
        [Dense(3, activation="tanh", input_dim=2), BatchNormalization(), Dense(1, "sigmoid")],
        seed=0,
    )
    for w in model.weights:  # float64 so that central differences are accurate
        w.data = w.data.astype(np.float64)
    model.layers[1].gamma.data[:] = [1.5, 0.5, -1.0]
    model.layers[1].beta.data[:] = [0.1, -0.2, 0.3]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 2))
    targets = rng.integers(0, 2, (6, 1)).astype(np.float64)

    def loss_value():
        with no_grad():
            return binary_crossentropy(targets, model(X, training=True)).item()

    loss = binary_crossentropy(targets, model(X, training=True))
    loss.backward()
    assert len(model.trainable_weights) == 6
    for w in model.trainable_weights:
        numeric = np.zeros_like(w.data)
        for i in np.ndindex(w.shape):
            saved = w.data[i]
            w.data[i] = saved + 1e-6
            up = loss_value()
            w.data[i] = saved - 1e-6
            down = loss_value()
            w.data[i] = saved
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(w.grad, numeric, rtol=1e-5, atol=1e-8, err_msg=w.label)


# -- summary, building, weights --------------------------------------------------------------------


def test_summary_counts_seed_model(capsys):
    model = seed_model()
    model.summary()
    out = capsys.readouterr().out
    assert "Total params: 40 (160.00 B)" in out
    assert "Trainable params: 30 (120.00 B)" in out
    assert "Non-trainable params: 10 (40.00 B)" in out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    names = [line.split("│")[1].strip() for line in rows]
    shapes = [line.split("│")[2].strip() for line in rows]
    params = [int(line.split("│")[3].strip()) for line in rows]
    assert names == [
        "dense (Dense)",
        "batch_normalization (BatchNormalization)",
        "dense_1 (Dense)",
        "batch_normalization_1 (BatchNormalization)",
        "dense_2 (Dense)",
    ]
    assert shapes == ["(None, 3)", "(None, 3)", "(None, 2)", "(None, 2)", "(None, 1)"]
    assert params == [9, 12, 8, 8, 3]
    assert model.count_params() == 40
    assert sum(w.size for w in model.trainable_weights) == 30
    assert sum(w.size for w in model.non_trainable_weights) == 10


def test_constructor_list_input_layer_and_zero_param_layers(capsys):
    model = Sequential(
        [
            Input(shape=(4,)),
            Dense(8, activation="tanh"),
            Dropout(0.5),
            Activation("relu"),
            Dense(3, activation="softmax"),
        ]
    )
    assert [type(layer).__name__ for layer in model.layers] == [
        "Dense",
        "Dropout",
        "Activation",
        "Dense",
    ]
    model.summary()
    out = capsys.readouterr().out
    assert "Total params: 67 " in out and "Non-trainable params: 0 " in out  # 4·8+8 + 8·3+3


def test_unbuilt_model_builds_from_data_but_summary_names_input_dim():
    model = Sequential([Dense(3, activation="relu"), Dense(1)], seed=0)
    with pytest.raises(ValueError, match="input_dim"):
        model.summary()
    out = model.predict(np.zeros((5, 4)), verbose=0)
    assert out.shape == (5, 1) and model.layers[0].kernel.shape == (4, 3)


def test_wrong_input_width_is_rejected():
    model = seed_model(seed=0)
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 2"):
        model.predict(np.zeros((4, 3)), verbose=0)
    with pytest.raises(ValueError, match="samples, features"):
        model.predict(np.zeros(2), verbose=0)


def test_get_set_weights_round_trip_and_refusal():
    model = seed_model(seed=0)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [
        (2, 3),
        (3,),
        (3,),
        (3,),
        (3,),
        (3,),
        (3, 2),
        (2,),
        (2,),
        (2,),
        (2,),
        (2,),
        (2, 1),
        (1,),
    ]
    other = seed_model(seed=1)
    x = np.random.default_rng(0).normal(size=(6, 2))
    assert not np.allclose(other.predict(x, verbose=0), model.predict(x, verbose=0))
    other.set_weights(weights)
    np.testing.assert_allclose(other.predict(x, verbose=0), model.predict(x, verbose=0))
    before = other.get_weights()
    bad = list(weights)
    bad[-1] = np.zeros(2)
    with pytest.raises(ValueError, match="expected \\(1,\\), got \\(2,\\)"):
        other.set_weights(bad)
    for a, b in zip(before, other.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- losses ----------------------------------------------------------------------------------------


def test_losses_match_keras_formulas():
    p = Tensor(np.array([[0.9], [0.2], [1.0]], dtype=np.float32))
    y = np.array([[1.0], [0.0], [0.0]], dtype=np.float32)
    # p = 1 with y = 0 is clipped to 1 − 1e-7 (in float32, as Keras; PyTorch would clamp the
    # log at −100 instead)
    clipped = np.float32(1.0) - np.float32(1.0 - 1e-7)
    expected = -np.mean([np.log(0.9), np.log(0.8), np.log(clipped)])
    assert binary_crossentropy(y, p).item() == pytest.approx(expected, rel=1e-3)

    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    one_hot = np.array([[1.0, 0, 0], [0, 0, 1.0]], dtype=np.float32)
    expected = -np.mean(np.log([0.7, 0.8]))
    assert categorical_crossentropy(one_hot, Tensor(probs)).item() == pytest.approx(expected, 1e-5)
    assert sparse_categorical_crossentropy(np.array([0, 2]), Tensor(probs)).item() == pytest.approx(
        expected, 1e-5
    )
    # outputs are rescaled to sum to one first, as Keras does
    assert sparse_categorical_crossentropy(np.array([0, 2]), Tensor(probs * 2)).item() == (
        pytest.approx(expected, 1e-5)
    )
    a = Tensor(np.array([[1.0, 2.0], [3.0, 5.0]]))
    assert mean_squared_error(np.array([[0.0, 0.0], [1.0, 1.0]]), a).item() == pytest.approx(
        (1 + 4 + 4 + 16) / 4
    )


# -- optimizers ------------------------------------------------------------------------------------


def run_optimizer(optimizer, start, grads):
    w = Tensor(np.array(start, dtype=np.float64), requires_grad=True)
    for g in grads:
        optimizer.apply([np.array(g, dtype=np.float64)], [w])
    return w.data


def test_keras_adam_update_with_epsilon_on_sqrt_v():
    adam = Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (1e-3, 0.9, 0.999, 1e-7)
    grads = [[1e-6, -2.0], [3e-6, 0.5], [-1e-6, 1.0]]
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    w, m, v = np.array([1.0, -1.0]), np.zeros(2), np.zeros(2)
    for t, g in enumerate(np.array(grads), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
    got = run_optimizer(Adam(learning_rate=0.1), [1.0, -1.0], grads)
    np.testing.assert_allclose(got, w, rtol=1e-12)
    # PyTorch's placement (ε on the bias-corrected √v̂) differs for tiny gradients
    w_torch, m, v = np.array([1.0, -1.0]), np.zeros(2), np.zeros(2)
    for t, g in enumerate(np.array(grads), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w_torch = w_torch - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    assert abs(got[0] - w_torch[0]) > 1e-4


def test_keras_sgd_and_rmsprop_updates():
    sgd = SGD()
    assert (sgd.learning_rate, sgd.momentum) == (0.01, 0.0)
    np.testing.assert_allclose(run_optimizer(sgd, [1.0], [[2.0], [4.0]]), [1.0 - 0.02 - 0.04])
    # momentum: v = 0.9 v − lr g; w = w + v
    got = run_optimizer(SGD(learning_rate=0.1, momentum=0.9), [0.0], [[1.0], [1.0]])
    np.testing.assert_allclose(got, [-0.1 + (-0.09 - 0.1)])
    # RMSprop: v = ρ v + (1 − ρ) g²; w −= lr g / √(v + ε)
    v1 = 0.1 * 4.0
    v2 = 0.9 * v1 + 0.1 * 1.0
    expected = 1.0 - 0.001 * 2.0 / math.sqrt(v1 + 1e-7) - 0.001 * 1.0 / math.sqrt(v2 + 1e-7)
    np.testing.assert_allclose(run_optimizer(RMSprop(), [1.0], [[2.0], [1.0]]), [expected])


def test_fit_applies_one_keras_sgd_step_per_batch():
    model = Sequential([Dense(1, input_dim=2)], seed=0)
    kernel0 = model.layers[0].kernel.data.astype(float).copy()
    X = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5], [2.0, 0.0]])
    y = np.array([1.0, 0.0, 2.0, -1.0])
    model.compile(optimizer=SGD(learning_rate=0.05), loss="mse")
    model.fit(X, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    pred = X @ kernel0
    grad_kernel = X.T @ (2 * (pred[:, 0] - y) / 4)[:, None]
    grad_bias = np.sum(2 * (pred[:, 0] - y) / 4)
    np.testing.assert_allclose(model.layers[0].kernel.data, kernel0 - 0.05 * grad_kernel, rtol=1e-5)
    np.testing.assert_allclose(model.layers[0].bias.data, [-0.05 * grad_bias], rtol=1e-5)
    assert model.optimizer.iterations == 1


# -- compile, fit, evaluate, predict ---------------------------------------------------------------


def test_seed_snippet_runs_unchanged_and_learns_placement():
    # the lecture notes' snippet, only the import changed
    model = Sequential()

    model.add(Dense(3, activation="relu", input_dim=2))
    model.add(BatchNormalization())
    model.add(Dense(2, activation="relu"))
    model.add(BatchNormalization())
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    X, y = data.placement(n=200, seed=1)
    model.fit(X, y, epochs=2, batch_size=32, validation_split=0.2, verbose=0)

    # seeded, on standardized features: it learns the placement rule. (On the raw features,
    # iq ~ 100, the moving statistics lag the fast-moving batch statistics and inference-mode
    # accuracy trails the training accuracy: scale your inputs.)
    model = seed_model(seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    X, y = data.placement(n=1000, seed=0)
    X_test, y_test = data.placement(n=500, seed=1)
    X, X_test, _ = data.standardize(X, X_test)
    history = model.fit(X, y, epochs=40, batch_size=32, validation_split=0.2, verbose=0)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.8
    loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
    assert accuracy > 0.8 and loss < 0.4


def test_history_keys_lengths_and_model_history():
    model = seed_model(seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    X, y = data.placement(n=100, seed=0)
    history = model.fit(X, y, epochs=3, batch_size=16, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 3 for values in history.history.values())
    assert history.epoch == [0, 1, 2] and model.history is history
    assert all(0.0 <= a <= 1.0 for a in history.history["val_accuracy"])
    no_val = model.fit(X, y, epochs=1, verbose=0)
    assert set(no_val.history) == {"loss", "accuracy"}
    # 33 samples in batches of 32: the last training batch holds one sample, which Keras's
    # BatchNormalization accepts
    one_left = model.fit(X[:33], y[:33], batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(one_left.history["loss"][0])


def test_validation_split_holds_out_the_last_fraction_before_shuffling():
    # a Dense-only model and a zero learning rate: training and inference agree, nothing moves
    model = Sequential([Dense(1, activation="sigmoid", input_dim=2)], seed=0)
    model.compile(optimizer=SGD(learning_rate=0.0), loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 2))
    y = rng.integers(0, 2, 10)
    history = model.fit(X, y, epochs=1, batch_size=3, validation_split=0.25, verbose=0)
    # floor(10 · 0.75) = 7 training samples; the last 3 validate
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(X[7:], y[7:], verbose=0))
    assert history.history["loss"][0] == pytest.approx(model.evaluate(X[:7], y[:7], verbose=0))
    assert history.history["val_loss"][0] != pytest.approx(model.evaluate(X[:3], y[:3], verbose=0))
    # validation_data takes precedence
    history = model.fit(X, y, epochs=1, validation_data=(X[:4], y[:4]), verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(X[:4], y[:4], verbose=0))
    with pytest.raises(ValueError, match="not sufficient"):
        model.fit(X[:1], y[:1], validation_split=0.1, verbose=0)


def test_evaluate_weights_batches_by_size():
    model = Sequential([Dense(1, input_dim=1, use_bias=False)], seed=0)
    model.set_weights([np.array([[1.0]])])
    model.compile(optimizer="sgd", loss="mse")
    X = np.arange(5.0)[:, None]
    y = np.zeros(5)
    # batches of 2, 2, 1: the mean over samples, not over batches
    assert model.evaluate(X, y, batch_size=2, verbose=0) == pytest.approx(np.mean(X**2))


def test_predict_shapes_and_single_example_matches_batch():
    model = seed_model(seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    X, y = data.placement(n=64, seed=0)
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    before = [w.copy() for w in model.get_weights()]
    out = model.predict(X, verbose=0)
    assert isinstance(out, np.ndarray) and out.shape == (64, 1) and out.dtype == np.float32
    for i in (0, 17, 63):
        alone = model.predict(X[i : i + 1], verbose=0)
        np.testing.assert_allclose(alone, out[i : i + 1], rtol=1e-6)
    assert model.predict(X, batch_size=5, verbose=0) == pytest.approx(out, rel=1e-6)
    for a, b in zip(before, model.get_weights()):  # inference leaves moving stats alone
        np.testing.assert_array_equal(a, b)
    # in training mode a batch's statistics are used, so the answers differ
    assert not np.allclose(model(X, training=True).data, out, atol=1e-3)


def test_multiclass_with_softmax_and_sparse_targets_learns_blobs():
    X, y = data.blobs(n=300, centers=3, noise=0.8, seed=0)
    model = Sequential(
        [
            Dense(16, activation="relu", input_dim=2),
            BatchNormalization(),
            Dense(3, activation="softmax"),
        ],
        seed=0,
    )
    model.compile(
        optimizer=Adam(learning_rate=0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(X, y, epochs=15, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    loss, accuracy = model.evaluate(X, y, verbose=0)
    predicted = model.predict(X, verbose=0)
    np.testing.assert_allclose(predicted.sum(axis=1), 1.0, rtol=1e-5)
    assert accuracy == pytest.approx(np.mean(predicted.argmax(1) == y))
    # one-hot targets: 'accuracy' becomes categorical accuracy
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    one_hot = np.eye(3)[y]
    assert model.evaluate(X, one_hot, verbose=0)[1] == pytest.approx(accuracy)


def test_fit_verbose_modes_print(capsys):
    model = seed_model(seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    X, y = data.placement(n=40, seed=0)
    model.fit(X, y, epochs=2, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch")]
    assert len(lines) == 2 and "loss:" in lines[0] and "accuracy:" in lines[0]
    model.fit(X, y, epochs=1, verbose=1)
    assert "Epoch 1/1" in capsys.readouterr().out  # the tqdm bar


# -- errors ----------------------------------------------------------------------------------------


def test_fit_before_compile_and_bad_compile_arguments():
    model = seed_model(seed=0)
    X, y = data.placement(n=20, seed=0)
    with pytest.raises(ValueError, match="compile"):
        model.fit(X, y, verbose=0)
    with pytest.raises(ValueError, match="hinge_typo"):
        model.compile(optimizer="adam", loss="hinge_typo")
    with pytest.raises(ValueError, match="adamw_typo"):
        model.compile(optimizer="adamw_typo", loss="mse")
    with pytest.raises(TypeError, match="optimizer"):
        model.compile(optimizer=3, loss="mse")
    with pytest.raises(ValueError, match="f1_typo"):
        model.compile(optimizer="adam", loss="mse", metrics=["f1_typo"])
    with pytest.raises(ValueError, match="loss"):
        model.compile(optimizer="adam")
    assert not model.compiled


def test_bad_fit_inputs_fail_before_any_change():
    model = seed_model(seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    X, y = data.placement(n=20, seed=0)
    before = model.get_weights()
    with pytest.raises(ValueError, match="20 samples but y has 19"):
        model.fit(X, y[:-1], verbose=0)
    with pytest.raises(ValueError, match="output shape"):
        model.fit(X, np.eye(2)[y], verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(X, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(X, y, validation_split=1.0, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    multi = Sequential([Dense(3, activation="softmax", input_dim=2)])
    multi.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        multi.fit(X, np.full(20, 3), verbose=0)


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="units"):
        Dense(0)
    with pytest.raises(ValueError, match="flat feature"):
        Dense(3, input_shape=(2, 2))
    with pytest.raises(TypeError):
        Sequential().add("dense")
    model = Sequential([Dense(2, input_dim=3)])
    with pytest.raises(ValueError, match="Input"):
        model.add(Input(shape=(3,)))
    with pytest.raises(ValueError, match="declares input_dim=5"):
        model.add(Dense(1, input_dim=5))


# -- a Keras model is an nn.Module ----------------------------------------------------------------


def test_keras_model_is_an_nn_module_with_pytorch_style_state():
    from tinybn import nn

    model = seed_model(seed=0)
    assert isinstance(model, nn.Sequential) and isinstance(model.layers[1], nn.BatchNorm1d)
    assert isinstance(model.layers[0].linear, nn.Linear)
    assert list(model.state_dict())[:7] == [
        "dense.linear.weight",
        "dense.linear.bias",
        "batch_normalization.weight",
        "batch_normalization.bias",
        "batch_normalization.running_mean",
        "batch_normalization.running_var",
        "batch_normalization.num_batches_tracked",
    ]
    kinds = [type(m).__name__ for m in model.modules()]
    assert kinds.count("Linear") == 3 and kinds.count("ReLU") == 2 and kinds.count("Sigmoid") == 1
    # the parameters nn sees are the weights Keras trains (kernels as nn.Linear's (out, in))
    assert [id(p) for p in model.parameters()] == [id(w) for w in model.trainable_weights]
    assert model.layers[0].linear.weight.shape == (3, 2) == model.layers[0].kernel.shape[::-1]
    # a fresh model is in inference mode, as Keras's calls default to
    assert not model.training and not any(m.training for m in model.modules())
    X = np.random.default_rng(0).normal(size=(5, 2))
    np.testing.assert_array_equal(model(X).data, model.predict(X, verbose=0))


def test_state_dict_through_tb_save_and_load_restores_a_trained_keras_model(tmp_path):
    import tinybn as tb

    model = seed_model(seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    X, y = data.placement(n=64, seed=0)
    X, _, _ = data.standardize(X, X)
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    tb.save(model.state_dict(), tmp_path / "keras.npz")
    other = seed_model(seed=1)
    assert not np.allclose(other.predict(X, verbose=0), model.predict(X, verbose=0))
    other.load_state_dict(tb.load(tmp_path / "keras.npz"))
    np.testing.assert_array_equal(other.predict(X, verbose=0), model.predict(X, verbose=0))
    assert int(other.layers[1].num_batches_tracked.data) == 8  # 2 epochs × 4 steps


def test_fold_batchnorm_folds_a_linear_dense_into_the_next_batch_normalization():
    from tinybn import nn

    model = Sequential(
        [
            Dense(4, input_dim=3),  # no activation: Linear then BN, foldable
            BatchNormalization(),
            Dense(3, activation="relu"),  # ReLU between: not foldable
            BatchNormalization(),
            Dense(1),
        ],
        seed=0,
    )
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    X = rng.normal(1.0, 2.0, (40, 3))
    model.fit(X, X.sum(1), epochs=3, batch_size=8, verbose=0)
    folded = nn.fold_batchnorm(model)
    assert isinstance(folded.layers[1], nn.Identity)
    assert isinstance(folded.layers[3], BatchNormalization)  # the ReLU blocks this one
    assert isinstance(model.layers[1], BatchNormalization)  # the input is unchanged
    np.testing.assert_allclose(
        folded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-5, atol=1e-5
    )
    assert folded.count_params() == model.count_params() - 4 * 4


def test_a_keras_loss_graph_draws_with_keras_labels():
    import tinybn as tb

    model = Sequential([Dense(2, input_dim=2), BatchNormalization()], seed=0)
    loss = mean_squared_error(np.zeros((3, 2)), model(np.ones((3, 2)), training=True))
    source = tb.draw(loss).source
    assert "dense/kernel" in source and "batch_normalization/gamma" in source


def test_bn_batch_of_one_uses_the_sample_once():
    bn = BatchNormalization()
    bn.build(2)
    x = Tensor(np.array([[1.0, -2.0]], dtype=np.float32), requires_grad=True)
    y = bn(x, training=True)
    assert y._parents[0] is x  # the sample itself, not a duplicated batch [x; x]
    np.testing.assert_array_equal(y.data, [[0.0, 0.0]])  # β


def test_fit_and_evaluate_on_empty_data_raise_before_any_change():
    model = seed_model(seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    before = model.get_weights()
    empty_x, empty_y = np.zeros((0, 2)), np.zeros(0)
    with pytest.raises(ValueError, match="no samples"):
        model.fit(empty_x, empty_y, verbose=0)
    with pytest.raises(ValueError, match="no samples"):
        model.evaluate(empty_x, empty_y, verbose=0)
    X, y = data.placement(n=20, seed=0)
    with pytest.raises(ValueError, match="validation_data: the data has no samples"):
        model.fit(X, y, validation_data=(empty_x, empty_y), verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


def test_model_save_and_load_model_round_trip_without_pickle(tmp_path):
    from tinybn.keras import load_model, models

    model = Sequential(
        [
            Input(shape=(2,)),
            Dense(4, activation="tanh"),
            BatchNormalization(momentum=0.9, epsilon=0.01, center=False),
            Dropout(0.25, seed=1),
            Dense(3, activation="softmax", name="out"),
        ],
        name="saved",
        seed=0,
    )
    model.compile(optimizer=Adam(learning_rate=0.02), loss="sparse_categorical_crossentropy")
    X, y = data.blobs(n=60, centers=3, seed=0)
    model.fit(X, y, epochs=2, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as archive:  # numbers only
        assert "out.linear.weight" in archive.files
    loaded = models.load_model(path)
    assert loaded.name == "saved" and [type(m) for m in loaded.layers] == [
        type(m) for m in model.layers
    ]
    bn = loaded.layers[1]
    assert (bn.momentum, bn.epsilon, bn.center, bn.beta) == (0.9, 0.01, False, None)
    assert loaded.layers[2].rate == 0.25 and loaded.layers[3].name == "out"
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
    assert isinstance(loaded.optimizer, Adam) and loaded.optimizer.learning_rate == 0.02
    assert loaded.loss == "sparse_categorical_crossentropy"
    loaded.fit(X, y, epochs=1, verbose=0)  # trains on
    custom = Sequential([Dense(2, activation=lambda t: t * 2, input_dim=2)])
    with pytest.raises(TypeError, match="custom activation"):
        custom.save(tmp_path / "custom.npz")
    import tinybn as tb

    tb.save(model.state_dict(), tmp_path / "bare.npz")
    with pytest.raises(ValueError, match="no Keras config"):
        load_model(tmp_path / "bare.npz")


def test_layer_names_that_would_shadow_model_attributes_are_refused():
    model = Sequential()
    for bad in ("fit", "layers", "a.b"):
        with pytest.raises(ValueError, match="cannot name a child"):
            model.add(Dense(1, input_dim=2, name=bad))
    assert model.layers == []


def test_compile_accepts_a_tinybn_optim_optimizer_with_the_same_plain_sgd_step():
    from tinybn import optim

    X = np.random.default_rng(0).normal(size=(12, 2))
    y = X[:, 0] - X[:, 1]
    results = []
    for make in (lambda m: SGD(learning_rate=0.1), lambda m: optim.SGD(m.parameters(), lr=0.1)):
        model = Sequential([Dense(3, "tanh", input_dim=2), BatchNormalization(), Dense(1)], seed=0)
        model.compile(optimizer=make(model), loss="mse")
        model.fit(X, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_keras_optimizers_are_tinybn_optim_optimizers():
    from tinybn import optim

    model = seed_model(seed=0)
    adam = Adam(learning_rate=0.01)
    assert isinstance(adam, optim.Optimizer) and not adam.built
    adam.build(model.trainable_weights)
    X, y = data.placement(n=16, seed=0)
    binary_crossentropy(y[:, None].astype(np.float32), model(X, training=True)).backward()
    adam.step()
    assert adam.iterations == 1
    state = adam.state_dict()
    assert state["param_groups"][0]["learning_rate"] == 0.01
    assert set(state["state"][0]) == {"momentum", "velocity"}
    adam.learning_rate = 0.5  # Keras's attribute, kept in the parameter group
    assert adam.param_groups[0]["learning_rate"] == 0.5
    with pytest.raises(ValueError, match="other variables"):
        adam.apply([np.zeros(3)], [Tensor(np.zeros(3))])


def test_keras_rmsprop_centered_and_adam_amsgrad_follow_keras_formulas():
    grads = [[2.0, -1e-3], [1.0, 3.0], [-0.5, 1e-4]]
    lr, rho, mu, eps = 0.01, 0.9, 0.5, 1e-7
    w, v, a, b = np.array([1.0, -1.0]), np.zeros(2), np.zeros(2), np.zeros(2)
    for g in np.array(grads):
        v = rho * v + (1 - rho) * g * g
        a = rho * a + (1 - rho) * g
        b = mu * b + lr * g / np.sqrt(v - a * a + eps)
        w = w - b
    optimizer = RMSprop(learning_rate=lr, momentum=mu, centered=True)
    np.testing.assert_allclose(run_optimizer(optimizer, [1.0, -1.0], grads), w, rtol=1e-12)
    b1, b2 = 0.9, 0.999
    w, m, v, v_max = np.array([1.0, -1.0]), np.zeros(2), np.zeros(2), np.zeros(2)
    grads = [[3.0, -1.0], [0.0, 2.0], [0.0, -2.0]]  # v shrinks after a large gradient
    for t, g in enumerate(np.array(grads), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_max = np.maximum(v_max, v)
        w = w - 0.1 * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v_max) + 1e-7)
    got = run_optimizer(Adam(learning_rate=0.1, amsgrad=True), [1.0, -1.0], grads)
    np.testing.assert_allclose(got, w, rtol=1e-12)
    plain = run_optimizer(Adam(learning_rate=0.1), [1.0, -1.0], grads)
    assert abs(plain[0] - got[0]) > 1e-5  # amsgrad changes the answer here


@pytest.mark.parametrize(
    "keras_make, torch_make",
    [
        # Keras's velocity form and PyTorch's buffer form agree at a constant learning rate
        (
            lambda: SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
            lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
        ),
        (
            lambda: SGD(learning_rate=0.05, momentum=0.8),
            lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.8),
        ),
        # with ε = 0, ε's place (inside or outside the square root) does not matter
        (
            lambda: RMSprop(learning_rate=0.01, rho=0.8, momentum=0.7, epsilon=0.0),
            lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.8, momentum=0.7, eps=0.0),
        ),
        (
            lambda: RMSprop(learning_rate=0.01, momentum=0.5, centered=True, epsilon=0.0),
            lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, centered=True, eps=0),
        ),
        (
            lambda: Adam(learning_rate=0.01, epsilon=0.0),
            lambda t, p: t.optim.Adam(p, lr=0.01, eps=0.0),
        ),
    ],
)
def test_keras_optimizers_match_torch_where_the_rules_coincide(keras_make, torch_make):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(6, 3))
    start = rng.normal(size=3)
    param = torch.nn.Parameter(torch.tensor(start))
    optimizer = torch_make(torch, [param])
    for g in grads:
        param.grad = torch.tensor(g)
        optimizer.step()
    got = run_optimizer(keras_make(), start, grads)
    np.testing.assert_allclose(got, param.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_an_optimizer_built_for_another_model_is_refused_before_any_step():
    shared = Adam()
    first, second = seed_model(seed=0), seed_model(seed=1)
    X, y = data.placement(n=20, seed=0)
    first.compile(optimizer=shared, loss="binary_crossentropy")
    first.fit(X, y, epochs=1, verbose=0)
    second.compile(optimizer=shared, loss="binary_crossentropy")
    before = second.get_weights()  # incl. the moving statistics a training forward would move
    with pytest.raises(ValueError, match="other variables"):
        second.fit(X, y, epochs=1, verbose=0)
    for a, b in zip(before, second.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_frozen_dense_layer_keeps_its_weights_and_counts_as_non_trainable(capsys):
    model = Sequential([Dense(3, "tanh", input_dim=2, trainable=False), Dense(1)], seed=0)
    frozen = model.layers[0]
    assert not frozen.linear.weight.requires_grad
    assert [id(w) for w in model.non_trainable_weights] == [id(w) for w in frozen.weights]
    model.summary()
    assert "Non-trainable params: 9 " in capsys.readouterr().out
    before = frozen.get_weights()
    model.compile(optimizer=SGD(learning_rate=0.1), loss="mse")
    X = np.random.default_rng(0).normal(size=(8, 2))
    model.fit(X, X[:, 0], epochs=2, verbose=0)
    for a, b in zip(before, frozen.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert frozen.linear.weight.grad is None  # no gradient was computed for it
    frozen.trainable = True
    assert frozen.linear.weight.requires_grad and len(model.trainable_weights) == 4


def test_manual_seed_makes_an_unseeded_keras_model_reproducible():
    import tinybn as tb
    from tinybn.keras import BatchNormalization, Dense, Sequential

    def build():
        model = Sequential()
        model.add(Dense(3, activation="relu", input_dim=2))
        model.add(BatchNormalization())
        model.add(Dense(1, activation="sigmoid"))
        return [w.copy() for w in model.get_weights()]

    tb.manual_seed(7)
    first = build()
    tb.manual_seed(7)
    again = build()
    different = build()
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], different[0])
