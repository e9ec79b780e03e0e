"""ε in batch/layer norm: 0 is allowed where PyTorch allows it; a negative ε is named up front."""

import math

import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, nn
from tinybn import functional as F
from tinybn.fast import kernels


def _fused_batch_norm(x, gamma, beta, eps):
    """F.batch_norm through the fused kernel registered for it (the layers' fast path)."""
    return kernels.batch_norm_with_stats(x, gamma, beta, eps)[0]


_fused_batch_norm.__name__ = "batch_norm"  # its errors name batch_norm

RNG = np.random.default_rng(7)


def test_batchnorm1d_accepts_eps_0_and_uses_it_in_eval():
    bn = nn.BatchNorm1d(3, eps=0)
    bn.running_mean.data[...] = [0.5, -1.0, 2.0]
    bn.running_var.data[...] = [4.0, 0.25, 1.0]
    bn.weight.data[...] = [2.0, 1.0, -1.0]
    bn.bias.data[...] = [0.0, 1.0, 0.5]
    bn.eval()
    x = np.array([[1.5, 0.0, 3.0], [0.5, -1.5, 1.0]], dtype=np.float32)
    # y = γ (x − running_mean) / √running_var + β, with no ε at all
    expected = [[2.0 * 1.0 / 2.0, 1.0 / 0.5 + 1.0, -1.0 + 0.5], [0.0, -0.5 / 0.5 + 1.0, 1.5]]
    np.testing.assert_allclose(bn(Tensor(x)).data, expected, rtol=1e-6)


def test_batchnorm1d_with_eps_0_refuses_batch_statistics_like_pytorch_before_any_update():
    # PyTorch: "batch_norm eps must be positive during training" (and with no running stats)
    x = Tensor(RNG.normal(size=(4, 2)))
    for bn in (nn.BatchNorm1d(2, eps=0.0), nn.BatchNorm1d(2, eps=0.0, track_running_stats=False)):
        if not bn.track_running_stats:
            bn.eval()  # eval without running statistics still normalizes by the batch
        with pytest.raises(ValueError, match="BatchNorm1d: eps must be positive"):
            bn(x)
    trained = nn.BatchNorm1d(2, eps=0.0)
    with pytest.raises(ValueError):
        trained(x)
    assert int(trained.num_batches_tracked.data) == 0
    np.testing.assert_array_equal(trained.running_mean.data, [0.0, 0.0])


@pytest.mark.parametrize("eps", [-1e-5, math.nan])
def test_batchnorm1d_and_layernorm_refuse_a_negative_or_nan_eps(eps):
    with pytest.raises(ValueError, match="BatchNorm1d: eps must be >= 0"):
        nn.BatchNorm1d(3, eps=eps)
    with pytest.raises(ValueError, match="LayerNorm: eps must be >= 0"):
        nn.LayerNorm(3, eps=eps)


@pytest.mark.parametrize(
    "fn, engine, kwargs",
    [
        (F.batch_norm, "scalar", {}),
        (F.batch_norm, "tensor", {}),
        (_fused_batch_norm, "tensor", {}),
        (F.layer_norm, "scalar", {}),
        (F.layer_norm, "tensor", {}),
    ],
)
def test_functional_norms_name_a_negative_eps_instead_of_failing_in_sqrt(fn, engine, kwargs):
    x = [[1.0, 2.0], [3.0, 5.0], [0.0, 1.0]]
    data = tb.values(x) if engine == "scalar" else Tensor(np.array(x))
    name = fn.__name__
    # eps = -0.5 would otherwise reach √(σ² + ε) with σ² + ε < 0 for the first feature
    with pytest.raises(ValueError, match=rf"{name}: eps must be >= 0, got -0\.5"):
        fn(data, None, None, eps=-0.5, **kwargs)
    with pytest.raises(TypeError, match=rf"{name}: eps must be a real number"):
        fn(data, None, None, eps="1e-5", **kwargs)


def test_functional_batch_norm_still_allows_eps_0_with_given_statistics():
    x = Tensor(np.array([[2.0, 1.0], [4.0, 3.0]]))
    y = F.batch_norm(x, None, None, eps=0.0, mean=np.array([3.0, 1.0]), var=np.array([4.0, 1.0]))
    np.testing.assert_allclose(y.data, [[-0.5, 0.0], [0.5, 2.0]])
