"""Fused kernels: one graph node per layer, with the backward pass in closed form.

The composed ``functional.batch_norm`` builds nine nodes per call (μ, x − μ, (x − μ)², σ², ...)
and its backward pass walks them one by one — the clearest way to see where each gradient
comes from, and the default. ``batch_norm`` here computes the same y in one node whose
backward is the closed form of Ioffe & Szegedy (2015, section 3), with m values per channel:

    dβ = Σ dy        dγ = Σ dy·x̂        dx = (γ / (m·√(σ² + ε))) · (m·dy − dβ − x̂·dγ)

i.e. dx = (1/m)·(γ/σ)·(m·dy − Σdy − x̂·Σ(dy·x̂)). ``nn.BatchNorm1d`` runs it (through
``functional.batch_norm_with_stats(..., fused=True)``); tests/test_fused.py checks it
against the composed graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinybn.tensor import Tensor


def batch_norm(
    x: Tensor,
    gamma: Tensor | None,
    beta: Tensor | None,
    eps: float,
    axes: tuple[int, ...],
    mean: Tensor | None = None,
    var: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Batch norm as a single node; called by ``functional.batch_norm_with_stats``.

    Args:
        x: (N, C) or (N, C, L).
        gamma, beta: (1, C) or (1, C, 1) — already shaped to broadcast against x — or None.
        eps: added to σ² before the square root.
        axes: the axes statistics are taken over: (0,) or (0, 2).
        mean, var: given statistics (inference), shaped like gamma, or None for the batch's.
    Returns:
        (y, μ, σ²): y like x; μ and σ² (biased) shaped like gamma. Unlike the composed
        graph's, μ and σ² here are constants (no gradient flows through them); a module
        reads them only to update its running statistics.
    """
    data = x.data
    training = mean is None
    if training:
        mu = data.mean(axis=axes, keepdims=True)
        xhat = data - mu
        variance = np.square(xhat).mean(axis=axes, keepdims=True)
    else:
        mu, variance = mean.data, var.data
        xhat = data - mu
    inv_std = 1.0 / np.sqrt(variance + eps)
    xhat *= inv_std  # in place: xhat held x − μ, now (x − μ)/√(σ² + ε)
    y = xhat * gamma.data if gamma is not None else xhat.copy()
    if beta is not None:
        y += beta.data
    parents = tuple(p for p in (x, gamma, beta) if p is not None)
    saved = (xhat, inv_std, training, gamma is not None, beta is not None, axes)
    out = x._make(y, parents, "batch_norm", _batch_norm_backward, saved)
    if training:
        return out, Tensor(mu, label="μ"), Tensor(variance, label="σ²")
    return out, mean, var


def _batch_norm_backward(out: Tensor, dy: np.ndarray) -> tuple:
    xhat, inv_std, training, has_gamma, has_beta, axes = out._saved
    x = out._parents[0]
    gamma = out._parents[1] if has_gamma else None
    need_beta = has_beta and out._parents[-1].requires_grad
    need_gamma = has_gamma and gamma.requires_grad
    dbeta = dy.sum(axis=axes, keepdims=True) if (need_beta or training) else None
    dgamma = (dy * xhat).sum(axis=axes, keepdims=True) if (need_gamma or training) else None
    dx = None
    if x.requires_grad:
        scale = inv_std * gamma.data if has_gamma else inv_std
        if training:
            # the closed form: the mean and variance routes subtract Σdy and x̂·Σ(dy·x̂)
            m = dy.size // dbeta.size
            dx = dy - dbeta * (1.0 / m)
            dx -= xhat * (dgamma * (1.0 / m))
            dx *= scale
        else:  # μ and σ² are constants: y is affine in x
            dx = dy * scale
    grads: list[Any] = [dx]
    if has_gamma:
        grads.append(dgamma if need_gamma else None)
    if has_beta:
        grads.append(dbeta if need_beta else None)
    return tuple(grads)
