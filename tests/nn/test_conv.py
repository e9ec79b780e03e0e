"""Convolution and pooling (tinybn/conv.py, tinybn/nn_conv.py) against PyTorch and finite
differences: outputs, input and parameter grads, state_dict keys and shapes, reprs, errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check_op, torch_reference

from tinybn import Tensor, nn
from tinybn import functional as F
from tinybn.conv import pad2d

torch = pytest.importorskip("torch")
TF = torch.nn.functional

CONV_CASES = [
    # (x shape, weight shape, stride, padding, dilation, groups, bias)
    ((2, 3, 6, 5), (4, 3, 3, 3), 1, 1, 1, 1, True),
    ((1, 4, 7, 6), (6, 2, 3, 2), (2, 1), (1, 0), (2, 1), 2, False),
    ((2, 6, 5, 5), (6, 2, 3, 3), 1, "same", 1, 3, True),  # 'same' padding, grouped
    ((1, 2, 5, 6), (3, 2, 2, 2), 1, "same", 2, 1, True),  # even kernel: extra pad at the end
    ((2, 3, 4, 4), (2, 3, 4, 4), 1, 0, 1, 1, True),  # kernel = input: one position
    ((1, 4, 6, 7), (8, 1, 1, 1), 2, 0, 1, 4, True),  # depthwise-style 1×1, strided
    ((1, 2, 5, 5), (2, 2, 3, 3), 3, "valid", 1, 1, True),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[f"case{i}" for i in range(len(CONV_CASES))])
def test_conv2d_matches_torch_and_finite_differences(case):
    x_shape, w_shape, stride, padding, dilation, groups, bias = case
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=x_shape), rng.normal(size=w_shape)]
    if bias:
        inputs.append(rng.normal(size=w_shape[0]))

    def ours(x, w, b=None):
        return F.conv2d(x, w, b, stride, padding, dilation, groups)

    def theirs(x, w, b=None):
        return TF.conv2d(x, w, b, stride, padding, dilation, groups)

    check_op(ours, inputs, **torch_reference(theirs), atol=1e-9)


POOL_CASES = [
    # (kernel, stride, padding, dilation, ceil_mode)
    (2, None, 0, 1, False),
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    ((2, 3), (1, 2), (1, 1), (2, 1), True),
    (3, 3, 0, 1, True),  # ceil mode: a last window hanging over the edge
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[f"case{i}" for i in range(len(POOL_CASES))])
def test_max_pool2d_matches_torch_and_finite_differences(case):
    kernel, stride, padding, dilation, ceil_mode = case
    x = np.random.default_rng(1).permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) / 10.0  # no ties

    check_op(
        lambda t: F.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode),
        [x],
        **torch_reference(lambda t: TF.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode)),
        atol=1e-12,
    )


def test_max_pool2d_tie_goes_to_the_first_maximum_as_in_torch():
    x = np.ones((1, 1, 4, 4))
    ours = Tensor(x, requires_grad=True)
    F.max_pool2d(ours, 2).sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    TF.max_pool2d(theirs, 2).sum().backward()
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())
    assert ours.grad.sum() == 4 and ours.grad[0, 0, 0, 0] == 1


@pytest.mark.parametrize("case", POOL_CASES[:3] + POOL_CASES[4:], ids=["c0", "c1", "c2", "c4"])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("divisor_override", [None, 5])
def test_avg_pool2d_matches_torch(case, count_include_pad, divisor_override):
    kernel, stride, padding, _, ceil_mode = case
    x = np.random.default_rng(2).normal(size=(2, 3, 7, 8))
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    check_op(
        lambda t: F.avg_pool2d(t, *args),
        [x],
        **torch_reference(lambda t: TF.avg_pool2d(t, *args)),
        atol=1e-12,
        fd=divisor_override is None,  # linear: one finite-difference check per case is enough
    )


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad2d_matches_torch(mode):
    x = np.random.default_rng(3).normal(size=(2, 3, 4, 5))
    check_op(
        lambda t: pad2d(t, (1, 2, 3, 0), mode),
        [x],
        **torch_reference(lambda t: TF.pad(t, (3, 0, 1, 2), mode=mode)),
        atol=1e-12,
    )


# -- layers ---------------------------------------------------------------------------------


def _torch_twin(ours, theirs):
    """Load our module's parameters into the torch module (float64 both)."""
    theirs.double().load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    return theirs


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"stride": 2, "padding": 1, "bias": False},
        {"padding": "same", "dilation": 2, "groups": 2},
        {"padding": 1, "padding_mode": "reflect"},
        {"padding": (2, 1), "padding_mode": "circular", "stride": (1, 2)},
        {"padding": "same", "padding_mode": "replicate"},
    ],
)
def test_conv2d_layer_matches_torch(kwargs):
    ours = nn.Conv2d(4, 6, 3, rng=np.random.default_rng(0), **kwargs).double()
    theirs = _torch_twin(ours, torch.nn.Conv2d(4, 6, 3, **kwargs))
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert a.shape == tuple(b.shape), name
    x = np.random.default_rng(1).normal(size=(2, 4, 7, 6))
    dy = np.random.default_rng(2).normal(size=theirs(torch.tensor(x)).shape)
    tx, ttx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = ours(tx), theirs(ttx)
    y.backward(dy)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(tx.grad, ttx.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), atol=1e-10)
    if ours.bias is not None:
        np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), atol=1e-10)
    # an unbatched (C, H, W) input is a batch of one
    np.testing.assert_allclose(ours(Tensor(x[0])).data, y.data[0], atol=1e-12)


def test_conv2d_init_is_pytorchs_kaiming_uniform():
    layer = nn.Conv2d(8, 64, (3, 5), groups=2, rng=np.random.default_rng(0))
    bound = 1 / np.sqrt(8 // 2 * 3 * 5)
    for p in (layer.weight.data, layer.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.9 * bound
    assert layer.weight.shape == (64, 4, 3, 5) and layer.weight.dtype == np.float32
    # uniform on [−b, b]: variance b²/3
    assert layer.weight.data.var() == pytest.approx(bound**2 / 3, rel=0.1)


def test_pool_and_flatten_layers_match_torch():
    x = np.random.default_rng(4).normal(size=(2, 3, 7, 6))
    pairs = [
        (nn.MaxPool2d(2), torch.nn.MaxPool2d(2)),
        (nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
        (nn.AvgPool2d(2), torch.nn.AvgPool2d(2)),
        (nn.AvgPool2d(3, 2, 1, count_include_pad=False),) * 1
        + (torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False),),
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.Flatten(0, 2), torch.nn.Flatten(0, 2)),
        (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
        tx, ttx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = ours(tx), theirs(ttx)
        assert y.shape == tuple(ty.shape), repr(ours)
        dy = np.random.default_rng(5).normal(size=y.shape)
        y.backward(dy)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(y.data, ty.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(tx.grad, ttx.grad.numpy(), atol=1e-12)


def test_lenet_sized_model_trains_like_torch_for_one_step():
    """Conv-BN-ReLU-pool ×2, Flatten, Linear: one SGD step in both frameworks, same numbers."""
    from tinybn import optim

    def model(lib, **extra):
        return lib.Sequential(
            lib.Conv2d(1, 4, 3, padding=1, **extra),
            lib.BatchNorm2d(4),
            lib.ReLU(),
            lib.MaxPool2d(2),
            lib.Conv2d(4, 6, 3, **extra),
            lib.BatchNorm2d(6),
            lib.ReLU(),
            lib.AvgPool2d(2),
            lib.Flatten(),
            lib.Linear(6 * 1 * 1, 3, **extra),
        )

    ours = model(nn, rng=np.random.default_rng(0)).double()
    theirs = _torch_twin(ours, model(torch.nn))
    x = np.random.default_rng(6).normal(size=(5, 1, 8, 8))
    targets = np.array([0, 1, 2, 1, 0])
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    their_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        loss = F.cross_entropy(ours(Tensor(x)), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        their_loss = TF.cross_entropy(theirs(torch.tensor(x)), torch.tensor(targets))
        their_opt.zero_grad()
        their_loss.backward()
        their_opt.step()
        assert loss.item() == pytest.approx(their_loss.item(), rel=1e-10)
    for (key, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-9, atol=1e-12, err_msg=key)


# -- bad input: a clear error naming the problem -------------------------------------------------


def test_conv2d_errors_name_the_argument():
    x = Tensor(np.zeros((1, 3, 5, 5)))
    w = Tensor(np.zeros((4, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C, H, W\), got 3-d"):
        F.conv2d(Tensor(np.zeros((3, 5, 5))), w)
    with pytest.raises(ValueError, match="has 2 channels, but weight .* expects 3"):
        F.conv2d(Tensor(np.zeros((1, 2, 5, 5))), w)
    with pytest.raises(ValueError, match="groups=2 must divide both the input channels"):
        F.conv2d(x, Tensor(np.zeros((4, 1, 3, 3))), groups=2)
    with pytest.raises(ValueError, match="kernel size 8 .* larger than the padded input size 7"):
        F.conv2d(x, Tensor(np.zeros((4, 3, 8, 8))), padding=1)
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="bias must be a Tensor of shape \\(4,\\)"):
        F.conv2d(x, w, Tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        F.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="Conv2d: in_channels \\(3\\) must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="Conv2d: stride must be >= 1, got 0"):
        nn.Conv2d(3, 4, 3, stride=0)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="Conv2d: expected input of shape"):
        nn.Conv2d(3, 4, 3)(Tensor(np.zeros((5, 5))))
    with pytest.raises(ValueError, match="reflect padding of 5 is too large for input height 5"):
        nn.Conv2d(3, 4, 3, padding=5, padding_mode="reflect")(x)


def test_pool_errors_name_the_argument():
    x = Tensor(np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError, match="max_pool2d: kernel size 5 .* larger than"):
        F.max_pool2d(x, 5)
    with pytest.raises(ValueError, match="at most half the kernel size"):
        F.avg_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="max_pool2d: stride must be >= 1, got 0"):
        F.max_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match=r"max_pool2d: expected input of shape \(N, C, H, W\)"):
        F.max_pool2d(Tensor(np.zeros((4, 4))), 2)
    with pytest.raises(ValueError, match="MaxPool2d: kernel_size must be >= 1"):
        nn.MaxPool2d(0)
