"""tinybn.keras's image layers (Conv2D, MaxPooling2D, Flatten, BatchNormalization on
(N, H, W, C)) against numpy references, the same model built from nn layers, and torch."""

import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, data, nn
from tinybn.keras import (
    Adam,
    BatchNormalization,
    Conv2D,
    Dense,
    Flatten,
    Input,
    MaxPooling2D,
    Sequential,
    load_model,
)
from tinybn.keras.layers_conv import same_pads


def images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def conv_reference(x, kernel, bias, strides, padding):
    """Keras's convolution in plain numpy loops: x (N, H, W, C), kernel (kh, kw, C, F);
    'same' pads ⌊P/2⌋ zeros before and the rest after (TensorFlow's rule)."""
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    sh, sw = strides
    if padding == "same":
        oh, ow = -(-h // sh), -(-w // sw)
        ph, pw = max((oh - 1) * sh + kh - h, 0), max((ow - 1) * sw + kw - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            window = x[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]  # (N, kh, kw, C)
            out[:, i, j, :] = np.tensordot(window, kernel, axes=([1, 2, 3], [0, 1, 2])) + bias
    return out


def max_pool_reference(x, pool, strides, padding):
    n, h, w, c = x.shape
    (ph, pw), (sh, sw) = pool, strides
    if padding == "same":
        oh, ow = -(-h // sh), -(-w // sw)
        th, tw = max((oh - 1) * sh + ph - h, 0), max((ow - 1) * sw + pw - w, 0)
        pads = ((0, 0), (th // 2, th - th // 2), (tw // 2, tw - tw // 2), (0, 0))
        x = np.pad(x, pads, constant_values=-np.inf)
    else:
        oh, ow = (h - ph) // sh + 1, (w - pw) // sw + 1
    out = np.empty((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            out[:, i, j, :] = x[:, i * sh : i * sh + ph, j * sw : j * sw + pw, :].max(axis=(1, 2))
    return out


# -- summary: Keras's parameter counts -----------------------------------------------------------


def test_summary_counts_equal_keras_published_summary(capsys):
    """Keras's summary of this model, as published (Stack Overflow 60079783, "Difference
    between Keras BatchNormalization and PyTorch's BatchNorm2d"): Conv2D 320, BN 128,
    Flatten 0, Dense 13,107,300 and 1,010; total 13,108,758, of which 64 non-trainable
    (BN's moving mean and variance)."""
    model = Sequential(
        [
            Input(shape=(64, 64, 1)),
            Conv2D(32, (3, 3), padding="same", activation="relu"),
            BatchNormalization(momentum=0.15, axis=-1),
            Flatten(),
            Dense(100, activation="relu"),
            Dense(10, activation="softmax"),
        ],
        seed=0,
    )
    assert [layer.count_params() for layer in model.layers] == [320, 128, 0, 13107300, 1010]
    model.summary()
    out = capsys.readouterr().out
    assert "Total params: 13,108,758 " in out
    assert "Trainable params: 13,108,694 " in out and "Non-trainable params: 64 " in out
    assert "(None, 64, 64, 32)" in out and "(None, 131072)" in out


def test_summary_counts_of_the_brief_model_and_shapes(capsys):
    model = Sequential(
        [Conv2D(8, 3, input_shape=(28, 28, 1)), BatchNormalization(), MaxPooling2D(), Flatten()],
        seed=0,
    )
    model.add(Dense(10))
    assert [layer.count_params() for layer in model.layers] == [80, 32, 0, 0, 13530]
    assert [w.size for w in model.layers[1].non_trainable_weights] == [8, 8]
    assert [layer.output_shape for layer in model.layers] == [
        (None, 26, 26, 8),
        (None, 26, 26, 8),
        (None, 13, 13, 8),
        (None, 1352),
        (None, 10),
    ]
    assert [layer.name for layer in model.layers] == [
        "conv2d",
        "batch_normalization",
        "max_pooling2d",
        "flatten",
        "dense",
    ]
    model.summary()
    out = capsys.readouterr().out
    assert "Total params: 13,642 " in out and "Non-trainable params: 16 " in out


# -- the layers against numpy references ---------------------------------------------------------


@pytest.mark.parametrize(
    "shape, kernel_size, strides, padding",
    [
        ((2, 7, 6, 3), (3, 3), (1, 1), "valid"),
        ((2, 7, 6, 3), (3, 2), (1, 1), "same"),
        ((2, 7, 6, 3), (3, 3), (2, 2), "same"),  # P = 2 rows, 1 column: 0 before, 1 after
        ((2, 8, 5, 2), (2, 4), (3, 2), "valid"),
    ],
)
def test_conv2d_equals_numpy_loops_with_keras_padding(shape, kernel_size, strides, padding):
    x = images(shape)
    layer = Conv2D(4, kernel_size, strides=strides, padding=padding, use_bias=True)
    layer.build((None, *shape[1:]))
    kernel = images(layer.get_weights()[0].shape, seed=1)
    bias = images((4,), seed=2)
    layer.set_weights([kernel, bias])
    expected = conv_reference(x.astype(np.float64), kernel, bias, strides, padding)
    out = layer(x)
    assert out.shape == expected.shape == (shape[0], *layer.output_shape[1:])
    np.testing.assert_allclose(out.data, expected, rtol=1e-5, atol=1e-5)


def test_conv2d_same_output_sizes_are_ceil_of_input_over_stride():
    for size, stride in [(7, 2), (8, 3), (5, 5), (1, 2)]:
        layer = Conv2D(1, 3, strides=stride, padding="same")
        layer.build((None, size, size, 1))
        assert layer.output_shape == (None, -(-size // stride), -(-size // stride), 1)
    # TensorFlow's rule: total padding P, ⌊P/2⌋ before
    assert same_pads((7, 6), (3, 3), (2, 2), (1, 1)) == (1, 1, 0, 1)
    assert same_pads((5, 5), (2, 4), (1, 1), (1, 1)) == (0, 1, 1, 2)


@pytest.mark.parametrize(
    "pool, strides, padding",
    [((2, 2), None, "valid"), ((3, 3), (2, 2), "same"), ((2, 3), (1, 2), "same"), (3, 1, "valid")],
)
def test_max_pooling_equals_numpy_with_minus_infinity_padding(pool, strides, padding):
    x = images((2, 7, 6, 3)) - 5.0  # all negative: zero padding would show up in the max
    layer = MaxPooling2D(pool, strides=strides, padding=padding)
    pool2 = layer.pool_size
    expected = max_pool_reference(x, pool2, layer.strides, padding)
    np.testing.assert_array_equal(layer(x).data, expected)
    assert layer.output_shape == (None, *expected.shape[1:])


def test_flatten_keeps_keras_channels_last_order():
    x = images((2, 3, 4, 5))
    out = Flatten()(x)
    np.testing.assert_array_equal(out.data, x.reshape(2, 60))
    assert out.data[1, 5 * 4 + 2] == x[1, 1, 0, 2]  # (h, w, c) = (1, 0, 2)


def test_batch_normalization_on_images_is_per_channel_over_n_h_w():
    x = images((4, 3, 5, 2)) * np.array([1.0, 3.0], dtype=np.float32) + np.float32(2.0)
    layer = BatchNormalization()
    layer.build((None, 3, 5, 2))
    gamma, beta = np.array([0.5, 2.0]), np.array([1.0, -1.0])
    layer.set_weights([gamma, beta, np.zeros(2), np.ones(2)])
    y = layer(x, training=True).data
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))  # biased, over N·H·W = 60
    np.testing.assert_allclose(y, gamma * (x - mean) / np.sqrt(var + 1e-3) + beta, atol=1e-5)
    # Keras's moving averages: momentum 0.99 on the OLD value, the biased batch variance
    np.testing.assert_allclose(layer.moving_mean.data, 0.01 * mean, rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.data, 0.99 + 0.01 * var, rtol=1e-5)
    y_eval = layer(x).data  # inference: the moving statistics
    expected = gamma * (x - 0.01 * mean) / np.sqrt(0.99 + 0.01 * var + 1e-3) + beta
    np.testing.assert_allclose(y_eval, expected, atol=1e-5)


def test_glorot_uniform_kernel_and_zero_bias():
    layer = Conv2D(64, (3, 5))
    layer.build((None, 9, 9, 32))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 5, 32, 64) and kernel.dtype == np.float32
    limit = np.sqrt(6.0 / (15 * 32 + 15 * 64))  # fan_in = kh·kw·C_in, fan_out = kh·kw·filters
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.99 * limit
    assert abs(kernel.std() - limit / np.sqrt(3)) < 0.01 * limit  # U(−l, l) has std l/√3
    np.testing.assert_array_equal(bias, np.zeros(64))
    # nn keeps it as (filters, C_in, kh, kw): the same numbers
    np.testing.assert_array_equal(layer.conv.weight.data, kernel.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(layer.kernel.data, kernel)


# -- the same model from nn layers ---------------------------------------------------------------


def keras_and_nn_models():
    keras_model = Sequential(
        [
            Conv2D(3, (3, 2), input_shape=(6, 7, 2)),
            BatchNormalization(),
            MaxPooling2D(),
            Flatten(),
            Dense(4),
        ],
        seed=3,
    )
    kernel, bias, gamma, beta, mean, var, dense_kernel, dense_bias = keras_model.get_weights()
    gamma, beta = gamma + 0.5, beta - 0.25  # not the identity
    keras_model.set_weights([kernel, bias + 0.1, gamma, beta, mean, var, dense_kernel, dense_bias])
    conv = nn.Conv2d(2, 3, (3, 2))
    conv.weight.data = kernel.transpose(3, 2, 0, 1).copy()  # (kh, kw, in, out) → (out, in, kh, kw)
    conv.bias.data = bias + 0.1
    bn = nn.BatchNorm2d(3, eps=1e-3, momentum=0.01)
    bn.weight.data, bn.bias.data = gamma.copy(), beta.copy()
    linear = nn.Linear(3 * 2 * 3, 4)
    # Keras flattens (H, W, C), nn (C, H, W): the dense kernel's rows reordered
    linear.weight.data = dense_kernel.reshape(2, 3, 3, 4).transpose(2, 0, 1, 3).reshape(18, 4).T
    linear.bias.data = dense_bias.copy()
    nn_model = nn.Sequential(conv, bn, nn.MaxPool2d(2), nn.Flatten(), linear)
    return keras_model, nn_model


def test_outputs_and_gradients_equal_the_nn_model_with_transposed_weights():
    keras_model, nn_model = keras_and_nn_models()
    x = images((5, 6, 7, 2))
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    nn_model.train()
    out_keras = keras_model(x, training=True)
    out_nn = nn_model(Tensor(x_nchw))
    np.testing.assert_allclose(out_keras.data, out_nn.data, rtol=1e-5, atol=1e-5)
    # the same loss on both: the kernel's gradient is the conv weight's, transposed
    probe = images((5, 4), seed=9)
    (out_keras * Tensor(probe)).sum().backward()
    (out_nn * Tensor(probe)).sum().backward()
    conv_keras, conv_nn = keras_model.layers[0].conv, nn_model[0]
    np.testing.assert_allclose(conv_keras.weight.grad, conv_nn.weight.grad, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(conv_keras.bias.grad, conv_nn.bias.grad, rtol=1e-4, atol=1e-5)
    # the moving mean matches PyTorch's with momentum 1 − 0.99; the variance is Keras's biased one
    bn_keras = keras_model.layers[1]
    np.testing.assert_allclose(bn_keras.moving_mean.data, nn_model[1].running_mean.data, atol=1e-6)
    # inference after that step: both use their (now different) running variances, so
    # compare against the nn model given Keras's moving variance
    nn_model[1].running_var.data = bn_keras.moving_variance.data.copy()
    nn_model.eval()
    np.testing.assert_allclose(
        keras_model.predict(x, verbose=0), nn_model(Tensor(x_nchw)).data, rtol=1e-5, atol=1e-5
    )


# -- training ------------------------------------------------------------------------------------


def test_fit_reduces_the_loss_on_8x8_digits():
    pytest.importorskip("sklearn")
    X, y = data.digits()
    X = (X[:600] / 16.0).reshape(-1, 8, 8, 1).astype(np.float32)
    y = y[:600]
    model = Sequential(
        [
            Conv2D(8, 3, padding="same", activation="relu", input_shape=(8, 8, 1)),
            # Keras's momentum 0.99 keeps about half of the initial moving statistics after
            # these 76 steps (0.99⁷⁶ ≈ 0.47), and inference would use them: 0.9 here
            BatchNormalization(momentum=0.9),
            MaxPooling2D(),
            Flatten(),
            Dense(10, activation="softmax"),
        ],
        seed=0,
    )
    model.compile(
        optimizer=Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy", metrics=["acc"]
    )
    before = model.evaluate(X, y, verbose=0)[0]
    history = model.fit(X, y, epochs=4, batch_size=32, verbose=0)
    after, accuracy = model.evaluate(X, y, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert after < 0.1 * before and accuracy > 0.95  # seen: 2.36 → 0.057, accuracy 0.995
    assert model.layers[1].moving_mean.data.any()  # trained in training mode
    assert model.predict(X[:7], verbose=0).shape == (7, 10)


# -- bad input -----------------------------------------------------------------------------------


def test_bad_inputs_name_the_argument_and_change_nothing():
    model = Sequential([Conv2D(2, 3, input_shape=(8, 8, 1)), Flatten(), Dense(1)], seed=0)
    weights = model.get_weights()
    with pytest.raises(ValueError, match=r"x: .*expected ndim=4, found ndim=3"):
        model.predict(np.zeros((4, 8, 8)), verbose=0)
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 1"):
        model.predict(np.zeros((4, 8, 8, 3)), verbose=0)  # channels mismatch
    with pytest.raises(ValueError, match="expected axis -2 of input shape to have value 8"):
        model.predict(np.zeros((4, 8, 9, 1)), verbose=0)
    with pytest.raises(ValueError, match="expected axis -1 .* value 1"):
        model.layers[0](np.zeros((2, 8, 8, 2)))
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_layer_arguments_and_shapes():
    with pytest.raises(ValueError, match="filters"):
        Conv2D(0, 3)
    with pytest.raises(ValueError, match="strides"):
        Conv2D(2, 3, strides=0)
    with pytest.raises(TypeError, match="kernel_size"):
        Conv2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match="padding"):
        Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="data_format"):
        MaxPooling2D(data_format="channels_first")
    with pytest.raises(ValueError, match="input_shape"):
        Conv2D(2, 3, input_shape=(8, 8))
    with pytest.raises(ValueError, match="kernel_size .* larger than the input height 2"):
        Sequential([Conv2D(2, 3, input_shape=(2, 8, 1))])
    with pytest.raises(ValueError, match="pool_size .* larger than the input width 1"):
        Sequential([Input(shape=(4, 1, 1)), MaxPooling2D()])
    # a Dense on images without a Flatten, and a Conv2D on flat features
    with pytest.raises(ValueError, match=r"Flatten\(\)"):
        Sequential([Conv2D(2, 3, input_shape=(8, 8, 1)), Dense(3)])
    with pytest.raises(ValueError, match="height, width, channels"):
        Sequential([Dense(3, input_dim=4), Conv2D(2, 3)])
    with pytest.raises(ValueError, match="axis=1 is not the last axis"):
        Sequential([Input(shape=(4, 4, 2)), BatchNormalization(axis=1)])
    # a model that fails to build keeps no input shape
    model = Sequential([Conv2D(2, 3), Dense(3)])
    with pytest.raises(ValueError, match=r"Flatten\(\)"):
        model.predict(np.zeros((2, 8, 8, 1)), verbose=0)
    assert model.input_shape is None and not model.layers[0].built
    # a model without input_shape= builds from the first images it sees
    model = Sequential([Conv2D(2, 3), MaxPooling2D(), Flatten(), Dense(3)], seed=0)
    assert model.predict(np.zeros((2, 8, 7, 1)), verbose=0).shape == (2, 3)
    assert model.input_shape == (None, 8, 7, 1) and model.layers[3].kernel.shape == (2 * 3 * 2, 3)


# -- a Keras image model is an nn.Module ---------------------------------------------------------


def trained_image_model():
    model = Sequential(
        [
            Conv2D(3, 3, padding="same", input_shape=(6, 6, 2)),
            BatchNormalization(),
            MaxPooling2D(padding="same"),
            Conv2D(2, 2, strides=2, activation="tanh"),
            Flatten(),
            Dense(2, activation="softmax"),
        ],
        seed=1,
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(images((12, 6, 6, 2)), np.arange(12) % 2, epochs=2, batch_size=4, verbose=0)
    return model


def test_state_dict_save_load_and_load_model_round_trip(tmp_path):
    model = trained_image_model()
    x = images((3, 6, 6, 2), seed=5)
    expected = model.predict(x, verbose=0)
    assert list(model.state_dict())[:3] == [
        "conv2d.conv.weight",
        "conv2d.conv.bias",
        "batch_normalization.weight",
    ]
    assert model.state_dict()["conv2d.conv.weight"].shape == (3, 2, 3, 3)  # nn's layout
    tb.save(model.state_dict(), tmp_path / "weights.npz")
    fresh = Sequential(
        [
            Conv2D(3, 3, padding="same", input_shape=(6, 6, 2)),
            BatchNormalization(),
            MaxPooling2D(padding="same"),
            Conv2D(2, 2, strides=2, activation="tanh"),
            Flatten(),
            Dense(2, activation="softmax"),
        ],
        seed=7,
    )
    fresh.load_state_dict(tb.load(tmp_path / "weights.npz"))
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), expected)
    model.save(tmp_path / "model.npz")
    loaded = load_model(tmp_path / "model.npz")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Conv2D",
        "BatchNormalization",
        "MaxPooling2D",
        "Conv2D",
        "Flatten",
        "Dense",
    ]
    assert loaded.layers[2].padding == "same" and loaded.layers[3].strides == (2, 2)
    assert loaded.input_shape == (None, 6, 6, 2)


def test_fold_batchnorm_folds_conv2d_into_batch_normalization():
    model = trained_image_model()
    x = images((4, 6, 6, 2), seed=6)
    folded = nn.fold_batchnorm(model)
    assert isinstance(folded.batch_normalization, nn.Identity)
    assert model.layers[1].moving_mean.data.any()  # the statistics being folded are not trivial
    np.testing.assert_allclose(folded(x).data, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert isinstance(model.batch_normalization, BatchNormalization)  # the input is unchanged
    # the folded model still summarizes: the BN's 4·3 parameters are gone, shapes kept
    lines = []
    folded.summary(print_fn=lines.append)
    assert f"Total params: {model.count_params() - 12} " in lines[0]
    assert "batch_normalization (Identity)" in lines[0] and "(None, 6, 6, 3)" in lines[0]


def test_to_torch_gives_the_same_channels_last_model():
    torch = pytest.importorskip("torch")
    from tinybn import interop

    model = trained_image_model()
    x = images((4, 6, 6, 2), seed=8)
    converted = interop.to_torch(model)
    assert list(converted.state_dict()) == list(model.state_dict())
    out = converted(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(out, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # training mode: batch statistics on both sides, the same moving mean afterwards
    model_out = model(x, training=True).data
    converted.train()
    torch_out = converted(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(torch_out, model_out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        converted.batch_normalization.running_mean.numpy(),
        model.batch_normalization.moving_mean.data,
        rtol=1e-5,
        atol=1e-6,
    )
