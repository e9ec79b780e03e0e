"""Fused kernels: one graph node per layer, with the backward pass in closed form.

The composed ``functional.batch_norm`` builds nine nodes per call (μ, x − μ, (x − μ)², σ², ...)
and its backward pass walks them one by one — the clearest way to see where each gradient
comes from, and the default. ``batch_norm`` here computes the same y in one node whose
backward is the closed form of Ioffe & Szegedy (2015, section 3), with m values per channel:

    dβ = Σ dy        dγ = Σ dy·x̂        dx = (γ / (m·√(σ² + ε))) · (m·dy − dβ − x̂·dγ)

i.e. dx = (1/m)·(γ/σ)·(m·dy − Σdy − x̂·Σ(dy·x̂)). It is the one fast path registered for
``functional.batch_norm`` (``batch_norm_with_stats`` below): the norm layers run it unless
built with ``composed=True``; tests/nn/test_fused.py and tests/nn/test_norm_paths.py check
it against the composed graph.

Benchmark: bn_op (256×512, 4096×64) — 1.16× / 1.24× PyTorch, 0.68× / 0.44× hand numpy; the
composed graph's nine nodes walked one by one cost several times that (benchmarks/README.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinybn.fast.paths import scalar
from tinybn.fast.per_channel import dot_per_channel, per_channel_ops, sum_per_channel
from tinybn.tensor import Tensor, _graph_mode, _through_composed


def batch_norm_with_stats(
    x: Tensor,
    gamma: Tensor | None = None,
    beta: Tensor | None = None,
    eps: float = 1e-5,
    *,
    mean: Tensor | None = None,
    var: Tensor | None = None,
    allow_batch_of_one: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """``functional.batch_norm_with_stats`` on a Tensor, fast: the same checks and the same
    (y, μ, σ²), y computed by ``batch_norm`` below (one node, closed-form backward).

    μ and σ² are constants here, not graph nodes (a layer reads them only to update its
    running statistics). Scalar Values always compose: TypeError.
    """
    from tinybn import functional

    return functional._batch_norm(
        x,
        gamma,
        beta,
        eps,
        mean=mean,
        var=var,
        allow_batch_of_one=allow_batch_of_one,
        kernel=batch_norm,
    )


def batch_norm(
    x: Tensor,
    gamma: Tensor | None,
    beta: Tensor | None,
    eps: float,
    mean: Tensor | None = None,
    var: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Batch norm as a single node; called through ``batch_norm_with_stats`` above.

    Args:
        x: (N, C), (N, C, L) or (N, C, H, W).
        gamma: (C,) scale, or None.
        beta: (C,) shift, or None.
        eps: added to σ² before the square root.
        mean: a given mean (inference) of shape (1, C) or (1, C, 1), or None for the
            batch's.
        var: a given variance, as mean.
    Returns:
        (y, μ, σ²): y like x; μ and σ² (biased) of shape (1, C) or (1, C, 1). Unlike the composed
        graph's, μ and σ² here are constants (no gradient flows through them); a module
        reads them only to update its running statistics.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> from tinybn.fast import kernels
        >>> x = Tensor(np.random.default_rng(0).normal(size=(8, 3)))
        >>> y, mean, var = kernels.batch_norm(x, None, None, 1e-5)  # one node
        >>> bool(np.allclose(y.data, F.batch_norm(x).data, atol=1e-6))  # = the composed graph
        True
    """
    data = x.data
    training = mean is None
    m = data.size // data.shape[1]  # values per channel
    per_channel = (1, -1) + (1,) * (data.ndim - 2)  # (C,) → (1, C) or (1, C, 1)
    subtract, multiply, add = per_channel_ops(data)
    if training:
        mu = sum_per_channel(data) * (1.0 / m)
        centered = subtract(data, mu)
        y = np.square(centered)  # the squares' buffer is reused for y below
        variance = sum_per_channel(y) * (1.0 / m)  # biased: Σ(x − μ)²/m
    else:
        assert mean is not None and var is not None  # given together (functional checks)
        mu, variance = mean.data, var.data
        centered = subtract(data, mu)
        y = np.empty_like(centered)
    inv_std = 1.0 / np.sqrt(variance + eps)
    # y = γ·x̂ + β = (γ/√(σ² + ε))·(x − μ) + β: x̂ is never stored (one pass fewer); the
    # backward pass folds 1/√(σ² + ε) into its per-channel factors instead
    scale = inv_std * gamma.data.reshape(per_channel) if gamma is not None else inv_std
    multiply(centered, scale, out=y)
    if beta is not None:
        add(y, beta.data.reshape(per_channel), out=y)
    parents = tuple(p for p in (x, gamma, beta) if p is not None)
    given = None if training else (mean, var)
    saved = (centered, inv_std, scale, training, gamma is not None, beta is not None, eps, given)
    out = x._make(y, parents, "batch_norm", _batch_norm_backward, saved)
    if training:
        return out, Tensor(mu).named("μ", role="mean"), Tensor(variance).named("σ²", role="var")
    assert mean is not None and var is not None
    return out, mean, var


def _batch_norm_composed(out: Tensor) -> Any:
    """The composed source of a fused batch-norm node: ``functional._normalize``."""
    from tinybn.functional import _normalize

    *_, has_gamma, has_beta, eps, given = out._saved
    mean, var = given if given is not None else (None, None)
    axes = (0,) if out.ndim == 2 else (0, *range(2, out.ndim))
    per_channel = (1, -1) + (1,) * (out.ndim - 2)

    def composed(x: Tensor, *affine: Tensor) -> Tensor:
        gamma = affine[0].reshape(per_channel) if has_gamma else None
        beta = affine[-1].reshape(per_channel) if has_beta else None
        return _normalize(x, axes, gamma, beta, eps, mean, var)[0]

    return composed


def _batch_norm_backward(out: Tensor, dy: np.ndarray) -> tuple:
    if _graph_mode(dy):
        return _through_composed(out, dy, _batch_norm_composed(out))
    centered, inv_std, scale, training, has_gamma, has_beta, _, _ = out._saved
    x = out._parents[0]
    gamma = out._parents[1] if has_gamma else None
    need_beta = has_beta and out._parents[-1].requires_grad
    need_gamma = gamma is not None and gamma.requires_grad
    need_x = x.requires_grad
    dbeta = sum_per_channel(dy) if (need_beta or (training and need_x)) else None
    # dγ = Σ dy·x̂ = Σ dy·(x − μ) / √(σ² + ε)
    dgamma = dot_per_channel(dy, centered) * inv_std if (need_gamma or training) else None
    dx = None
    if need_x:
        _, multiply, add = per_channel_ops(dy)
        if training:
            assert dbeta is not None and dgamma is not None  # both computed when training
            # the closed form dx = (γ/√(σ² + ε))·(dy − Σdy/m − x̂·dγ/m), in four passes:
            # x̂·dγ/m = (x − μ)·(dγ·inv_std/m) is one, and the constant Σdy/m joins it there
            m = dy.size // dbeta.size
            dx = multiply(centered, dgamma * (inv_std * (1.0 / m)))
            add(dx, dbeta * (1.0 / m), out=dx)
            np.subtract(dy, dx, out=dx)
            multiply(dx, scale, out=dx)  # γ/√(σ² + ε)
        else:  # μ and σ² are constants: y is affine in x
            dx = multiply(dy, scale)
    grads: list[Any] = [dx]
    if has_gamma:
        grads.append(dgamma.reshape(-1) if need_gamma and dgamma is not None else None)
    if has_beta:
        grads.append(dbeta.reshape(-1) if need_beta and dbeta is not None else None)
    return tuple(grads)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b as one node; called by ``functional.linear`` (shapes checked there).

    Composed, this is three nodes (Wᵀ, @, +) and the gradient of W arrives transposed and
    is copied back; here the backward pass writes each gradient in its final layout:

        dx = dy W        dW = dyᵀ x        db = Σ dy (over every axis but the last)

    Args:
        x: (..., in_features); weight: (out_features, in_features); bias: (out_features,).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> from tinybn.fast import kernels
        >>> x, w, b = Tensor([[1.0, 2.0]]), Tensor([[1.0, 1.0], [0.0, 1.0]]), Tensor([0.5, 0.0])
        >>> kernels.linear(x, w, b).data  # one node; the same numbers as F.linear
        array([[3.5, 2. ]], dtype=float32)
    """
    y = x.data @ weight.data.T
    if bias is not None:
        y += bias.data  # in place: y is a fresh array
    parents = (x, weight) if bias is None else (x, weight, bias)
    return x._make(y, parents, "linear", _linear_backward)


def _linear_composed(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The composed source of a fused linear node: x Wᵀ (+ b)."""
    y = x @ weight.T
    return y if bias is None else y + bias


def _linear_backward(out: Tensor, dy: np.ndarray) -> tuple:
    if _graph_mode(dy):
        return _through_composed(out, dy, _linear_composed)
    x, weight = out._parents[0], out._parents[1]
    # batch axes flattened, so that 1-d and (N, in) and (B, N, in) inputs take one path
    # (an (N, in) input already is rows: the check costs less than two reshapes)
    x_rows, dy_rows = x.data, dy
    if dy.ndim != 2:
        x_rows, dy_rows = x_rows.reshape(-1, x_rows.shape[-1]), dy.reshape(-1, dy.shape[-1])
    dx = dy @ weight.data if x.requires_grad else None
    dweight = dy_rows.T @ x_rows if weight.requires_grad else None
    if len(out._parents) == 2:
        return dx, dweight
    # Σ dy over the rows: by BLAS for large arrays, as batch norm's per-channel sums; small
    # ones take add.reduce directly (no helper call, no .sum() wrapper)
    if out._parents[2].requires_grad:
        small = dy_rows.size < 8192
        dbias = np.add.reduce(dy_rows, axis=0) if small else sum_per_channel(dy_rows)[0]
    else:
        dbias = None
    return dx, dweight, dbias


def _reduced(terms: np.ndarray, reduction: str, count: float | None = None) -> np.ndarray:
    """The loss from its per-element terms: 'none' (the terms), 'sum', or 'mean' (the sum
    over ``count``, by default the number of terms)."""
    if reduction == "none":
        return terms
    # add.reduce / n rather than .mean(): the same pairwise sum without the Python-level
    # wrappers of .mean() and .sum()
    total = np.add.reduce(terms, axis=None)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 = nan, as PyTorch
            total = total / (terms.size if count is None else count)
    return np.asarray(total, dtype=terms.dtype)


def _term_grads(grad: np.ndarray, reduction: str, count: float) -> np.ndarray:
    """dL/d(each term): the incoming grad ('none', 'sum'), or it over ``count`` ('mean')."""
    return grad / count if reduction == "mean" else grad


def binary_cross_entropy(p: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """−[y·max(log p, −100) + (1 − y)·max(log(1 − p), −100)] per element, reduced, as one
    node (p and y of the same shape; the clamp at −100 is PyTorch's, so p = 0 or 1 gives a
    finite loss).

    The backward pass is PyTorch's closed form, per term (before the reduction's 1/n):

        dL/dp = (p − y) / max(p·(1 − p), 1e-12)        dL/dy = log(1 − p) − log p

    i.e. the exact derivative of the unclamped loss, bounded where p·(1 − p) underflows: a
    saturated p that is wrong still gets a large gradient (composing the clamped logs would
    give it 0).

    Examples:
        >>> from tinybn import Tensor
        >>> from tinybn.fast import kernels
        >>> loss = kernels.binary_cross_entropy(Tensor([0.5]), Tensor([1.0]))
        >>> round(float(loss.data), 4)  # log 2
        0.6931
    """
    pd, yd = p.data, y.data
    with np.errstate(divide="ignore"):  # log 0 = −inf, then clamped
        log_p = np.maximum(np.log(pd), scalar(-100, pd.dtype))
        log_not_p = np.maximum(np.log1p(-pd), scalar(-100, pd.dtype))
    terms = -(yd * log_p + (1 - yd) * log_not_p)
    loss = _reduced(terms, reduction)
    return p._make(loss, (p, y), "bce", _bce_backward, reduction)


def _reduced_composed(terms: Tensor, reduction: str, count: float) -> Tensor:
    """The losses' reduction in Tensor ops: 'mean' (over ``count`` terms), 'sum' or 'none'."""
    if reduction == "none":
        return terms
    total = terms.sum()
    return total / count if reduction == "mean" else total


def _bce_composed(out: Tensor) -> Any:
    """The composed source of a fused BCE node: −[y·log p + (1 − y)·log(1 − p)], reduced."""
    reduction, count = out._saved, out._parents[0].data.size

    def composed(p: Tensor, y: Tensor) -> Tensor:
        terms = -(y * p.log() + (1.0 - y) * (1.0 - p).log())
        return _reduced_composed(terms, reduction, count)

    return composed


def _bce_backward(out: Tensor, grad: np.ndarray) -> tuple:
    if _graph_mode(grad):
        return _through_composed(out, grad, _bce_composed(out))
    p, y = out._parents
    pd, yd = p.data, y.data
    scale = _term_grads(grad, out._saved, pd.size)
    dp = dy = None
    if p.requires_grad:
        dp = (pd - yd) / np.maximum(pd * (1 - pd), scalar(1e-12, pd.dtype)) * scale
    if y.requires_grad:
        with np.errstate(divide="ignore"):  # ±inf where p is 0 or 1, as in PyTorch
            dy = (np.log1p(-pd) - np.log(pd)) * scale
    return dp, dy


def binary_cross_entropy_with_logits(
    z: Tensor, y: Tensor, reduction: str = "mean", pos_weight: Tensor | None = None
) -> Tensor:
    """max(z, 0) − z·y + log(1 + e^(−|z|)) per element, reduced, as one node (z and y of
    the same shape). With ``pos_weight`` w (broadcast over the last axis), PyTorch's
    −[w·y·log σ(z) + (1 − y)·log(1 − σ(z))] = (1 − y)·z + (1 + (w − 1)·y)·softplus(−z).

    Composed, this loss is ten nodes; its backward in closed form, per term, is

        dL/dz = (1 + (w − 1)·y)·σ(z) − w·y        dL/dy = (w − 1)·softplus(−z) − z

    (σ(z) − y and −z for w = 1), also exact at z = 0, where the composed max and |·| have kinks.

    Examples:
        >>> from tinybn import Tensor
        >>> from tinybn.fast import kernels
        >>> loss = kernels.binary_cross_entropy_with_logits(Tensor([0.0]), Tensor([1.0]))
        >>> round(float(loss.data), 4)
        0.6931
    """
    zd, yd = z.data, y.data
    # softplus(z) = log(1 + e^z) = max(z, 0) + log(1 + e^(−|z|)): numpy's logaddexp(0, z)
    # computes exactly this stable form in one call instead of five
    softplus = np.logaddexp(scalar(0, zd.dtype), zd)
    if pos_weight is None:
        terms = softplus - zd * yd
    else:  # softplus(−z) = softplus(z) − z
        weight = 1 + (pos_weight.data - 1) * yd
        terms = (1 - yd) * zd + weight * (softplus - zd)
    loss = _reduced(terms.astype(zd.dtype, copy=False), reduction)
    weight = None if pos_weight is None else pos_weight.data  # a constant, as in PyTorch
    saved = (softplus, reduction, weight)
    return z._make(loss, (z, y), "bce_with_logits", _bce_with_logits_backward, saved)


def _bce_with_logits_composed(out: Tensor) -> Any:
    """The composed source of a fused BCE-with-logits node: softplus(z) − z·y per term, or
    (1 − y)·z + (1 + (w − 1)·y)·softplus(−z) with pos_weight w, reduced; with
    softplus(z) = max(z, 0) + log(1 + e^(−|z|))."""
    _, reduction, weight = out._saved
    count = out._parents[0].data.size

    def softplus(z: Tensor) -> Tensor:
        return z.relu() + ((-z.abs()).exp() + 1.0).log()

    def composed(z: Tensor, y: Tensor) -> Tensor:
        if weight is None:
            terms = softplus(z) - z * y
        else:
            terms = (1.0 - y) * z + (1.0 + (weight - 1.0) * y) * softplus(-z)
        return _reduced_composed(terms, reduction, count)

    return composed


def _bce_with_logits_backward(out: Tensor, grad: np.ndarray) -> tuple:
    if _graph_mode(grad):
        return _through_composed(out, grad, _bce_with_logits_composed(out))
    z, y = out._parents
    softplus, reduction, w = out._saved
    scale = _term_grads(grad, reduction, z.data.size)
    dz = dy = None
    if z.requires_grad:
        # σ(z) = e^z / (1 + e^z) = exp(z − softplus(z)), reusing the forward pass's softplus;
        # the exponent is never positive, so exp cannot overflow
        dz = np.exp(z.data - softplus)
        if w is not None:
            dz = (1 + (w - 1) * y.data) * dz - w * y.data
        else:
            dz -= y.data
        dz *= scale
    if y.requires_grad:
        dy = -z.data * scale
        if w is not None:
            dy = dy + (w - 1) * (softplus - z.data) * scale
    return dz, dy


def cross_entropy(
    logits: Tensor,
    targets: np.ndarray | Tensor,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> Tensor:
    """−Σ_k t_k·log softmax(z)_k per row, reduced, as one node; called by
    ``functional.cross_entropy`` (shapes and classes checked there).

    Rows are the positions of logits (N, C, *) with the classes on axis 1. The target
    distribution t of a row is, as PyTorch's: for a class index c, (1 − ε)·onehot(c) + ε/C
    (zero for c = ignore_index; 'mean' divides by the rows not ignored); for class
    probabilities p (a float Tensor of the logits' shape), (1 − ε)·p + ε/C ('mean' divides
    by the number of rows). Composed, this is eight nodes; its backward in closed form is

        dL/dz = softmax(z)·Σ_k t_k − t        dL/dp = −(1 − ε)·log softmax(z)

    (softmax − onehot for a class index), times the reduction's 1/count.

    Args:
        logits: (N, C, *); targets: integer (N, *) array, or a float Tensor of logits' shape.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor
        >>> from tinybn.fast import kernels
        >>> round(float(kernels.cross_entropy(Tensor([[2.0, 0.0]]), np.array([0])).data), 4)
        0.1269
    """
    z = np.moveaxis(logits.data, 1, -1)  # rows × classes
    classes = z.shape[-1]
    z = z.reshape(-1, classes)
    shifted = z - z.max(axis=1, keepdims=True)  # so that exp cannot overflow
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    log_probs = shifted - np.log(sum_exp)
    exp /= sum_exp  # in place: exp is now softmax(z), kept for the backward pass
    smoothing = scalar(label_smoothing, z.dtype)
    if isinstance(targets, Tensor):  # class probabilities
        probs = np.moveaxis(targets.data, 1, -1).reshape(-1, classes)
        dist = probs * (1 - smoothing) + smoothing / classes
        count = len(z)
    else:
        flat = targets.reshape(-1)
        kept = flat != ignore_index
        dist = np.zeros_like(z)
        dist[np.arange(len(z))[kept], flat[kept]] = 1 - smoothing
        dist[kept] += smoothing / classes
        count = int(kept.sum())
    terms = -(dist * log_probs).sum(axis=1)
    out_shape = logits.shape[:1] + logits.shape[2:]
    loss = _reduced(terms.reshape(out_shape).astype(z.dtype, copy=False), reduction, count)
    parents = (logits, targets) if isinstance(targets, Tensor) else (logits,)
    saved = (exp, dist, log_probs, reduction, count, float(label_smoothing))
    return logits._make(loss, parents, "cross_entropy", _cross_entropy_backward, saved)


def _cross_entropy_composed(out: Tensor) -> Any:
    """The composed source of a fused cross-entropy node: −Σ_k t_k·log softmax(z)_k per row,
    reduced; t is the saved target distribution, or (1 − ε)·p + ε/C of probability targets."""
    from tinybn.functional import log_softmax

    _, dist, _, reduction, count, smoothing = out._saved
    logits = out._parents[0]
    classes = logits.shape[1]
    moved = logits.shape[:1] + logits.shape[2:] + logits.shape[1:2]
    constant = np.moveaxis(dist.reshape(moved), -1, 1)  # rows × classes → the logits' layout

    def composed(z: Tensor, *probabilities: Tensor) -> Tensor:
        if probabilities:
            target = probabilities[0] * (1.0 - smoothing) + smoothing / classes
        else:
            target = Tensor(constant.astype(z.dtype, copy=False))
        terms = -(target * log_softmax(z, axis=1)).sum(axis=1)
        return _reduced_composed(terms, reduction, count)

    return composed


def _cross_entropy_backward(out: Tensor, grad: np.ndarray) -> tuple:
    if _graph_mode(grad):
        return _through_composed(out, grad, _cross_entropy_composed(out))
    softmax, dist, log_probs, reduction, count, smoothing = out._saved
    logits = out._parents[0]
    scale = np.reshape(_term_grads(grad, reduction, count), (-1, 1))  # per row

    def to_logits_layout(rows: np.ndarray) -> np.ndarray:
        moved = logits.shape[:1] + logits.shape[2:] + logits.shape[1:2]
        return np.moveaxis(rows.reshape(moved), -1, 1)

    dz = None
    if logits.requires_grad:
        dz = softmax * dist.sum(axis=1, keepdims=True)  # a new array: softmax stays intact
        dz -= dist
        dz *= scale
        dz = to_logits_layout(dz)
    if len(out._parents) == 1:
        return (dz,)
    dp = None
    if out._parents[1].requires_grad:
        dp = to_logits_layout(-(1 - smoothing) * log_probs * scale)
    return dz, dp
