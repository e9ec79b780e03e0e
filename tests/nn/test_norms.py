"""The normalization family: BatchNorm2d, GroupNorm, InstanceNorm1d/2d, RMSNorm (and the
shared _NormBase) against PyTorch — forward, grads of input and parameters, running
statistics, state_dict, repr — and F.group_norm / instance_norm / rms_norm / 4-d batch_norm
equal on the scalar and Tensor engines and to finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check_op, torch_reference

import tinybn as tb
from tinybn import Tensor, ValueArray, nn
from tinybn import functional as F
from tinybn.fast import kernels
from tinybn.nn import _NormBase

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _x(shape, seed=0):
    """Input with an offset and scale per channel, so that the statistics matter."""
    rng = np.random.default_rng(seed)
    c = (1, shape[1]) + (1,) * (len(shape) - 2)
    return rng.normal(size=shape) * rng.uniform(0.5, 3, size=c) + rng.normal(size=c) * 3


def _run_both(ours, theirs, x, dy):
    """Forward + backward(dy) through our module and the torch twin: equal outputs and grads."""
    ours.zero_grad()
    theirs.zero_grad()
    tx, ttx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = ours(tx), theirs(ttx)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-9, atol=1e-10)
    y.backward(dy)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(tx.grad, ttx.grad.numpy(), rtol=1e-8, atol=1e-10)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(
            p.grad, dict(theirs.named_parameters())[name].grad.numpy(), rtol=1e-8, atol=1e-10
        )


def _assert_same_state(ours, theirs):
    mine, their = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(their)
    for key in mine:
        np.testing.assert_allclose(mine[key], their[key].numpy(), rtol=1e-9, err_msg=key)
        assert mine[key].shape == tuple(their[key].shape)


LAYERS = [
    ("BatchNorm2d", (4,), {}, (5, 4, 3, 2)),
    ("BatchNorm2d", (4,), {"momentum": None}, (3, 4, 2, 2)),
    ("BatchNorm2d", (4,), {"affine": False, "momentum": 0.3}, (2, 4, 3, 3)),
    ("BatchNorm2d", (4,), {"track_running_stats": False}, (2, 4, 3, 3)),
    ("BatchNorm2d", (4,), {"bias": False}, (1, 4, 2, 1)),  # N = 1 with 2 positions: fine
    ("GroupNorm", (2, 4), {}, (3, 4, 3, 2)),
    ("GroupNorm", (1, 4), {"affine": False}, (3, 4, 5)),
    ("GroupNorm", (4, 4), {"eps": 1e-3}, (2, 4, 2, 2)),
    ("InstanceNorm1d", (3,), {}, (2, 3, 5)),
    ("InstanceNorm1d", (3,), {"affine": True, "track_running_stats": True}, (4, 3, 6)),
    ("InstanceNorm2d", (3,), {"affine": True}, (2, 3, 4, 3)),
    ("InstanceNorm2d", (3,), {"track_running_stats": True, "momentum": None}, (2, 3, 2, 3)),
    ("RMSNorm", (5,), {}, (3, 4, 5)),
    ("RMSNorm", ((4, 5),), {"eps": 1e-3}, (3, 4, 5)),
    ("RMSNorm", (5,), {"elementwise_affine": False}, (2, 5)),
    ("LayerNorm", ((2, 3),), {"bias": False}, (4, 2, 3)),
]


@pytest.mark.parametrize("name, args, kwargs, shape", LAYERS, ids=[str(i) for i in range(16)])
def test_layer_matches_torch_over_training_steps_and_in_eval(name, args, kwargs, shape):
    ours = getattr(nn, name)(*args, **kwargs).double()
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    assert isinstance(ours, _NormBase)
    assert repr(ours) == repr(theirs)
    rng = np.random.default_rng(1)
    for step in range(3):  # γ, β set to something other than 1, 0; statistics move
        with torch.no_grad():
            for (key, p), tp in zip(ours.named_parameters(), theirs.parameters()):
                p.data = rng.normal(size=p.shape)
                tp.copy_(torch.tensor(p.data))
        _run_both(ours, theirs, _x(shape, seed=step), rng.normal(size=shape))
        _assert_same_state(ours, theirs)
    ours.eval()
    theirs.eval()
    _run_both(ours, theirs, _x(shape, seed=9), rng.normal(size=shape))
    # a torch state_dict loads as is, and gives torch's eval outputs
    fresh = getattr(nn, name)(*args, **kwargs).double()
    fresh.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    _run_both(fresh.eval(), theirs, _x(shape, seed=10), rng.normal(size=shape))


def test_batchnorm1d_with_tracking_switched_off_after_training_uses_the_buffers_as_torch():
    ours, theirs = nn.BatchNorm1d(3).double(), torch.nn.BatchNorm1d(3).double()
    for seed in range(2):
        _run_both(ours, theirs, _x((6, 3), seed), np.ones((6, 3)))
    ours.track_running_stats = theirs.track_running_stats = False
    _run_both(ours, theirs, _x((6, 3), 5), np.ones((6, 3)))  # training: buffers not updated
    _assert_same_state(ours, theirs)
    ours.eval()
    theirs.eval()
    x = _x((1, 3), 7)  # eval: the running statistics, so a batch of one works
    _run_both(ours, theirs, x, np.ones((1, 3)))
    expected = (x - theirs.running_mean.numpy()) / np.sqrt(theirs.running_var.numpy() + 1e-5)
    np.testing.assert_allclose(ours(Tensor(x)).data, expected, rtol=1e-9)


def test_batchnorm2d_statistics_are_per_channel_over_n_h_w():
    bn = nn.BatchNorm2d(2, momentum=1.0).double()
    x = _x((3, 2, 4, 5))
    y = bn(Tensor(x)).data
    for c in range(2):
        values = x[:, c]
        np.testing.assert_allclose(bn.running_mean.data[c], values.mean())
        np.testing.assert_allclose(bn.running_var.data[c], values.var(ddof=1))  # unbiased
        np.testing.assert_allclose(y[:, c].mean(), 0, atol=1e-12)
        np.testing.assert_allclose(y[:, c].var(), values.var() / (values.var() + 1e-5))
    assert bn.num_batches_tracked.data == 1


def test_instance_norm_unbatched_input_is_a_batch_of_one():
    ours, theirs = (
        nn.InstanceNorm2d(3, affine=True).double(),
        torch.nn.InstanceNorm2d(3, affine=True),
    )
    x = _x((1, 3, 4, 4))[0]
    _run_both(ours, theirs.double(), x, np.random.default_rng(0).normal(size=x.shape))


def test_rms_norm_default_eps_is_the_dtype_machine_epsilon():
    x = np.full((2, 3), 1e-4, dtype=np.float32)
    ours = F.rms_norm(Tensor(x), 3).data
    theirs = TF.rms_norm(torch.tensor(x), (3,)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    eps32 = float(np.finfo(np.float32).eps)
    np.testing.assert_allclose(ours, x / np.sqrt(x**2 + eps32), rtol=1e-6)


# -- functional: torch, finite differences, both engines ------------------------------------------


FUNCTIONAL = [
    (
        "group_norm",
        lambda x, g, b: F.group_norm(x, 2, g, b, 1e-5),
        lambda x, g, b: TF.group_norm(x, 2, g, b, 1e-5),
        (3, 4, 2, 3),
    ),
    (
        "instance_norm",
        lambda x, g, b: F.instance_norm(x, g, b),
        lambda x, g, b: TF.instance_norm(x, weight=g, bias=b),
        (2, 4, 3, 2),
    ),
    (
        "batch_norm 4-d",
        lambda x, g, b: F.batch_norm(x, g, b),
        lambda x, g, b: TF.batch_norm(x, None, None, g, b, training=True),
        (2, 4, 3, 2),
    ),
]


@pytest.mark.parametrize("name, ours, theirs, shape", FUNCTIONAL, ids=[f[0] for f in FUNCTIONAL])
def test_functional_norm_matches_torch_and_finite_differences(name, ours, theirs, shape):
    rng = np.random.default_rng(0)
    inputs = [_x(shape), rng.uniform(0.5, 2, size=shape[1]), rng.normal(size=shape[1])]
    check_op(ours, inputs, **torch_reference(theirs), atol=1e-9)


def test_rms_norm_matches_torch_and_finite_differences():
    inputs = [_x((3, 2, 4)), np.random.default_rng(0).uniform(0.5, 2, size=(2, 4))]
    check_op(
        lambda x, g: F.rms_norm(x, (2, 4), g, 1e-6),
        inputs,
        **torch_reference(lambda x, g: TF.rms_norm(x, (2, 4), g, 1e-6)),
        atol=1e-9,
    )


def test_instance_norm_with_given_statistics_matches_torch_eval():
    x, mean, var = _x((2, 3, 4)), np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.5, 2.0])
    ours = F.instance_norm(Tensor(x), mean=mean, var=var).data
    theirs = TF.instance_norm(
        torch.tensor(x), torch.tensor(mean), torch.tensor(var), use_input_stats=False
    )
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12)


ENGINE_CASES = [
    ("group_norm", lambda x, g, b: F.group_norm(x, 2, g, b), (2, 4, 2, 1), True),
    ("instance_norm", lambda x, g, b: F.instance_norm(x, g, b), (2, 2, 3), True),
    ("batch_norm", lambda x, g, b: F.batch_norm(x, g, b), (2, 2, 2, 2), True),
    ("rms_norm", lambda x, g, b: F.rms_norm(x, 3, g, 1e-5), (2, 3, 3), False),  # no β
]


@pytest.mark.parametrize(
    "name, fn, shape, has_beta", ENGINE_CASES, ids=[c[0] for c in ENGINE_CASES]
)
def test_scalar_and_tensor_engines_agree(name, fn, shape, has_beta):
    """The same function of the same primitives: equal outputs and grads of x, γ, β."""
    rng = np.random.default_rng(3)
    x, dy = _x(shape), rng.normal(size=shape)
    c = shape[1]
    g, b = rng.uniform(0.5, 2, size=c), rng.normal(size=c)

    tx, tg, tb_ = (Tensor(a, requires_grad=True) for a in (x, g, b))
    y = fn(tx, tg, tb_)
    (y * Tensor(dy)).sum().backward()

    vx, vg, vb = ValueArray(x.tolist()), ValueArray(g.tolist()), ValueArray(b.tolist())
    vy = fn(vx.tolist(), vg, vb)
    assert isinstance(vy, list)  # nested lists in, nested lists out
    loss = (ValueArray(vy) * dy).sum()
    loss.backward()
    np.testing.assert_allclose(ValueArray(vy).data, y.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(vx.grad, tx.grad, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(vg.grad, tg.grad, rtol=1e-9, atol=1e-12)
    if has_beta:
        np.testing.assert_allclose(vb.grad, tb_.grad, rtol=1e-9, atol=1e-12)


# the second takes the kernel's BLAS and einsum paths (8192 values or more, long samples),
# the third its long-row path (2¹⁷ values or more)
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (8, 4, 16, 16), (64, 8, 16, 16)])
def test_fused_4d_batch_norm_equals_the_composed_source(shape):
    rng = np.random.default_rng(4)
    c = shape[1]
    x, g, b, dy = _x(shape), rng.uniform(0.5, 2, c), rng.normal(size=c), rng.normal(size=shape)
    results = []
    for fused in (False, True):
        leaves = [Tensor(a, requires_grad=True) for a in (x, g, b)]
        y, mu, var = (kernels if fused else F).batch_norm_with_stats(*leaves)
        y.backward(dy)
        results.append([y.data, mu.data, var.data] + [leaf.grad for leaf in leaves])
    for composed, fused in zip(*results):
        np.testing.assert_allclose(fused, composed, rtol=1e-10, atol=1e-12)


def test_spatial_batch_norm_on_scalars_shares_mu_per_channel_and_draws():
    """A (2, 2, 2, 2) input: each μ (and σ²) node reads exactly the 8 values of its channel
    (2 examples × 2 × 2 positions), and the graph renders."""
    x = ValueArray(_x((2, 2, 2, 2)).tolist()).named("x")
    y, mu, var = F.batch_norm_with_stats(x, tb.values([1.0, 1.0]), tb.values([0.0, 0.0]))
    assert mu.shape == var.shape == (1, 2, 1, 1)
    for c in range(2):
        channel = {id(v) for v in x.values[:, c].flat}
        assert {id(p) for p in mu.values[0, c, 0, 0]._parents} == channel
        assert len(channel) == 8
    loss = (ValueArray(y) * np.arange(16).reshape(2, 2, 2, 2)).sum()
    loss.backward()
    source = tb.draw(loss).source
    for c in range(2):
        assert f"μ[0,{c},0,0]" in source and f"σ²[0,{c},0,0]" in source


# -- bad input -----------------------------------------------------------------------------------


def test_norm_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected input of shape \(N, C, H, W\)"):
        nn.BatchNorm2d(3)(Tensor(np.zeros((4, 3))))
    with pytest.raises(ValueError, match="has 2 channels on axis 1, but num_features=3"):
        nn.BatchNorm2d(3)(Tensor(np.zeros((4, 2, 2, 2))))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm2d(3)(Tensor(np.zeros((1, 3, 1, 1))))
    with pytest.raises(
        ValueError, match=r"num_channels \(6\) must be divisible by num_groups \(4\)"
    ):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="num_groups=4 must divide the 6 input channels"):
        F.group_norm(Tensor(np.zeros((2, 6, 3))), 4)
    with pytest.raises(ValueError, match="GroupNorm: input of shape .* has 3 channels"):
        nn.GroupNorm(2, 4)(Tensor(np.zeros((2, 3, 5))))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        nn.InstanceNorm1d(3)(Tensor(np.zeros((2, 3, 1))))
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected input of shape \(N, C, H, W\)"):
        nn.InstanceNorm2d(3)(Tensor(np.zeros((2, 3, 4, 4, 4))))
    with pytest.raises(ValueError, match="has 4 channels on axis 1, but num_features=3"):
        nn.InstanceNorm1d(3, affine=True)(Tensor(np.zeros((2, 4, 5))))
    with pytest.warns(UserWarning, match="4 channels but num_features=3"):
        nn.InstanceNorm1d(3)(Tensor(np.random.default_rng(0).normal(size=(2, 4, 5))))
    with pytest.raises(ValueError, match="RMSNorm: input of shape .* does not end in"):
        nn.RMSNorm(4)(Tensor(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="BatchNorm2d: momentum must be in"):
        nn.BatchNorm2d(3, momentum=2.0)
    with pytest.raises(ValueError, match="InstanceNorm1d: eps must be >= 0"):
        nn.InstanceNorm1d(3, eps=-1.0)
