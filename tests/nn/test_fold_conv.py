"""nn.fold_batchnorm on Conv2d → BatchNorm2d, and the conv layers through tinybn.interop."""

import numpy as np
import pytest

from tinybn import Tensor, nn, no_grad
from tinybn.keras.layers_conv import ChannelsLastConv2d


def with_statistics(bn, rng):
    """A BN with running statistics and affine parameters far from their defaults."""
    c = bn.num_features
    bn.running_mean.data = rng.normal(size=c).astype(np.float32)
    bn.running_var.data = rng.uniform(0.2, 3.0, size=c).astype(np.float32)
    if bn.weight is not None:
        bn.weight.data = rng.uniform(0.5, 2.0, size=c).astype(np.float32)
    if bn.bias is not None:
        bn.bias.data = rng.normal(size=c).astype(np.float32)
    return bn


def conv_bn_reference(x, conv, bn):
    """bn(conv(x)) in eval mode, by its definition: (z − E)/√(Var + ε)·γ + β per channel."""
    z = conv(Tensor(x)).data.astype(np.float64)
    c = bn.num_features
    gamma = bn.weight.data if bn.weight is not None else np.ones(c)
    beta = bn.bias.data if bn.bias is not None else np.zeros(c)
    mean, var = bn.running_mean.data, bn.running_var.data
    per_channel = [a.reshape(1, c, 1, 1) for a in (mean, var, gamma, beta)]
    mean, var, gamma, beta = per_channel
    return (z - mean) / np.sqrt(var + bn.eps) * gamma + beta


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"stride": 2, "padding": 1},
        {"padding": "same", "bias": False},
        {"groups": 2, "dilation": 2, "padding": 2},
        {"padding": 1, "padding_mode": "reflect"},
    ],
)
def test_conv2d_batchnorm2d_folds_into_one_conv_equal_in_eval(options):
    rng = np.random.default_rng(0)
    conv = nn.Conv2d(4, 6, 3, rng=rng, **options)
    bn = with_statistics(nn.BatchNorm2d(6, eps=1e-3), rng)
    model = nn.Sequential(conv, bn, nn.ReLU())
    x = rng.normal(size=(3, 4, 9, 8)).astype(np.float32)
    folded = nn.fold_batchnorm(model)
    assert isinstance(folded[0], nn.Conv2d) and isinstance(folded[1], nn.Identity)
    assert folded[0].bias is not None  # a folded conv always has a bias (β − γ·E/σ)
    expected = np.maximum(conv_bn_reference(x, conv, bn), 0)
    with no_grad():
        np.testing.assert_allclose(folded(Tensor(x)).data, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            folded(Tensor(x)).data, model.eval()(Tensor(x)).data, rtol=1e-5, atol=1e-5
        )
    # the options are kept, and the input model is not changed
    for key in ("stride", "padding", "dilation", "groups", "padding_mode"):
        assert getattr(folded[0], key) == getattr(conv, key)
    assert isinstance(model[1], nn.BatchNorm2d) and model[0].weight is conv.weight


def test_folded_weights_equal_the_closed_form():
    rng = np.random.default_rng(1)
    conv = nn.Conv2d(2, 3, 2, rng=rng)
    bn = with_statistics(nn.BatchNorm2d(3), rng)
    folded = nn.fold_batchnorm(nn.Sequential(conv, bn))[0]
    scale = bn.weight.data / np.sqrt(bn.running_var.data + bn.eps)
    np.testing.assert_allclose(
        folded.weight.data, conv.weight.data * scale[:, None, None, None], rtol=1e-6
    )
    np.testing.assert_allclose(
        folded.bias.data,
        scale * (conv.bias.data - bn.running_mean.data) + bn.bias.data,
        rtol=1e-5,
        atol=1e-6,
    )


def test_pairs_that_do_not_compute_the_same_are_left_alone():
    rng = np.random.default_rng(2)
    no_stats = nn.BatchNorm2d(3, track_running_stats=False)
    cases = [
        nn.Sequential(nn.Conv2d(2, 3, 1, rng=rng), no_stats),  # batch statistics in eval too
        nn.Sequential(nn.Conv2d(2, 3, 1, rng=rng), nn.ReLU(), nn.BatchNorm2d(3)),  # not adjacent
        # channels last against channels first: the BN would normalize another axis
        nn.Sequential(ChannelsLastConv2d(2, 3, (1, 1)), nn.BatchNorm2d(3)),
        nn.Sequential(nn.Linear(2, 3, rng=rng), nn.BatchNorm2d(3)),
    ]
    for model in cases:
        folded = nn.fold_batchnorm(model)
        assert not any(isinstance(m, nn.Identity) for m in folded.modules())


def test_folding_reaches_nested_sequentials_and_mixes_with_linear():
    rng = np.random.default_rng(3)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=rng),
        nn.Sequential(with_statistics(nn.BatchNorm2d(4), rng), nn.ReLU()),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5, rng=rng),
        with_statistics(nn.BatchNorm1d(5), rng),
    )
    x = rng.normal(size=(2, 1, 6, 6)).astype(np.float32)
    folded = nn.fold_batchnorm(model)
    assert isinstance(folded[1][0], nn.Identity) and isinstance(folded[5], nn.Identity)
    with no_grad():
        np.testing.assert_allclose(
            folded(Tensor(x)).data, model.eval()(Tensor(x)).data, rtol=1e-5, atol=1e-5
        )


# -- interop -------------------------------------------------------------------------------------


def conv_net(rng):
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=1, padding=1, rng=rng),
        with_statistics(nn.BatchNorm2d(4), rng),
        nn.ReLU(),
        nn.MaxPool2d(2, stride=2, padding=1),
        nn.Conv2d(4, 4, 2, groups=2, bias=False, padding_mode="circular", padding=1, rng=rng),
        nn.AvgPool2d(2, count_include_pad=False, padding=1, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 3, rng=rng),
    )


def test_conv_layers_convert_to_torch_and_back():
    torch = pytest.importorskip("torch")
    from tinybn import interop

    rng = np.random.default_rng(4)
    model = conv_net(rng).eval()
    x = rng.normal(size=(2, 2, 7, 7)).astype(np.float32)
    converted = interop.to_torch(model)
    assert [type(m).__name__ for m in converted] == [
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "MaxPool2d",
        "Conv2d",
        "AvgPool2d",
        "Flatten",
        "Linear",
    ]
    assert list(converted.state_dict()) == list(model.state_dict())
    with no_grad():
        expected = model(Tensor(x)).data
    np.testing.assert_allclose(
        converted(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-5, atol=1e-6
    )
    back = interop.from_torch(converted)
    assert [type(m) for m in back] == [type(m) for m in model]
    assert back[4].padding_mode == "circular" and back[5].count_include_pad is False
    with no_grad():
        np.testing.assert_allclose(back(Tensor(x)).data, expected, rtol=1e-6, atol=1e-7)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value)


def test_batchnorm2d_converted_trains_as_torch():
    torch = pytest.importorskip("torch")
    from tinybn import interop

    rng = np.random.default_rng(5)
    bn = with_statistics(nn.BatchNorm2d(3, momentum=0.2), rng)
    converted = interop.to_torch(bn)
    assert converted.training and converted.momentum == 0.2
    x = rng.normal(size=(4, 3, 2, 5)).astype(np.float32)
    out = bn(Tensor(x)).data
    np.testing.assert_allclose(
        converted(torch.from_numpy(x)).detach().numpy(), out, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(converted.running_var.numpy(), bn.running_var.data, rtol=1e-5)


def test_from_torch_refuses_what_it_cannot_convert():
    torch = pytest.importorskip("torch")
    from tinybn import interop

    with pytest.raises(ValueError, match="return_indices"):
        interop.from_torch(torch.nn.MaxPool2d(2, return_indices=True))
    with pytest.raises(TypeError, match="Conv3d"):
        interop.from_torch(torch.nn.Conv3d(1, 1, 1))
