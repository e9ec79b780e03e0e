"""Gradient checking: is what backward() computed really the derivative?

Two independent references for a gradient:

* **finite differences** — nudge one input by ±h and watch the output:
  ∂f/∂xᵢ ≈ (f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h  (central differences, error O(h²));
* **the closed form** of batch norm's backward pass, worked out by hand in Ioffe &
  Szegedy (2015), section 3 — ``batch_norm_backward``.

``check_grad`` (scalar ``Value`` graphs) and ``check_tensor_grad`` (``Tensor`` graphs,
float64) run the engine's backward, compare it with finite differences, and return the
largest error, or raise ``GradientCheckError`` with a table of the entries that disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tinybn.scalar import Value
from tinybn.tensor import Tensor


class GradientCheckError(AssertionError):
    """backward() and finite differences disagree (the message lists where)."""


def numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    """Central-difference gradient of a scalar function of an array.

    Args:
        f: maps an array shaped like ``x`` to a float.
        x: the point, any shape (float64 for meaningful results).
        h: the step.
    Returns:
        an array shaped like ``x``: (f(x + h eᵢ) − f(x − h eᵢ)) / 2h for each entry i.

    Examples:
        >>> import numpy as np
        >>> from tinybn.check import numerical_gradient
        >>> def f(x):
        ...     return float((x**2).sum())
        >>> np.round(numerical_gradient(f, np.array([1.0, -2.0])), 4)  # 2x
        array([ 2., -4.])
    """
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        original = x[i]
        x[i] = original + h
        above = f(x.copy())
        x[i] = original - h
        below = f(x.copy())
        x[i] = original
        grad[i] = (above - below) / (2.0 * h)
    return grad


def _compare(
    names: Sequence[str],
    analytic: Sequence[np.ndarray],
    numeric: Sequence[np.ndarray],
    atol: float,
    rtol: float,
) -> float:
    """Largest |analytic − numeric|; raises listing every entry outside atol + rtol·|numeric|."""
    worst = 0.0
    failures = []
    for name, got, want in zip(names, analytic, numeric):
        got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
        error = np.abs(got - want)
        bad = ~(error <= atol + rtol * np.abs(want))  # NaN counts as bad
        if error.size:
            worst = max(worst, np.inf if np.isnan(error).any() else float(error.max()))
        for i in np.ndindex(bad.shape):
            if not bad[i]:
                continue
            where = f"[{', '.join(map(str, i))}]" if i else ""
            failures.append(
                f"  {name}{where}: backward {float(got[i])!r}, "
                f"finite differences {float(want[i])!r}"
            )
    if failures:
        shown = "\n".join(failures[:20])
        more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
        raise GradientCheckError(
            f"gradient check failed for {len(failures)} entr{'y' if len(failures) == 1 else 'ies'} "
            f"(atol={atol}, rtol={rtol}, max error {worst:.3g}):\n{shown}{more}"
        )
    return worst


def check_grad(
    f: Callable[..., Value],
    inputs: Sequence[float],
    *,
    h: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
) -> float:
    """Check the scalar engine: backward() of ``f`` against central differences.

    Args:
        f: takes one leaf ``Value`` per input and returns a ``Value``.
        inputs: the point, one number per argument of ``f``.
        h: finite-difference step.
        atol: absolute tolerance.
        rtol: relative tolerance.
            (|backward − numeric| <= atol + rtol·|numeric| for every input).
    Returns:
        the largest absolute error. Raises ``GradientCheckError`` listing each bad input.

    Examples:
        >>> from tinybn.check import check_grad
        >>> error = check_grad(lambda a, b: a * b + a, [2.0, -3.0])  # raises if a grad is wrong
        >>> error < 1e-6
        True
    """
    point = [float(x) for x in inputs]
    leaves = [Value(x, label=f"x{i}") for i, x in enumerate(point)]
    out = f(*leaves)
    if not isinstance(out, Value):
        raise TypeError(f"check_grad: f must return a Value, got {type(out).__name__}")
    out.backward()
    analytic = np.array([leaf.grad for leaf in leaves])

    def f_of_array(x: np.ndarray) -> float:
        return f(*(Value(float(v)) for v in x)).data

    numeric = numerical_gradient(f_of_array, np.array(point), h)
    names = [f"x{i}" for i in range(len(point))]
    return _compare(names, [analytic[i] for i in range(len(point))], list(numeric), atol, rtol)


def check_tensor_grad(
    f: Callable[..., Tensor],
    inputs: Sequence[np.ndarray],
    *,
    h: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    seed: int = 0,
) -> float:
    """Check the Tensor engine: backward() of ``f`` against central differences.

    A non-scalar output is reduced by a fixed random weighting, L = Σ w ⊙ f(inputs), so
    that every output entry's gradient is checked, with a different weight each.

    Args:
        f: takes one ``Tensor`` (requires_grad) per input and returns a ``Tensor``.
        inputs: float arrays of any shapes; converted to float64 (finite differences in
            float32 are too coarse to check anything).
        h: finite-difference step.
        atol: absolute tolerance.
        rtol: relative tolerance.
        seed: for the weights w.
    Returns:
        the largest absolute error over all inputs. Raises ``GradientCheckError``.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> from tinybn.check import check_tensor_grad
        >>> def f(x):
        ...     return (F.batch_norm(x) * Tensor([[1.0], [2.0], [3.0]])).sum()
        >>> error = check_tensor_grad(f, [np.array([[1.0], [2.0], [4.0]])])
        >>> error < 1e-6
        True
    """
    arrays = [np.array(x, dtype=np.float64) for x in inputs]
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = f(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"check_tensor_grad: f must return a Tensor, got {type(out).__name__}")
    weights = np.random.default_rng(seed).uniform(0.5, 1.5, size=out.shape)
    if out.shape == ():
        weights = np.asarray(1.0)
    out.backward(weights)
    analytic = [t.grad if t.grad is not None else np.zeros_like(a) for t, a in zip(tensors, arrays)]

    numeric = []
    for k in range(len(arrays)):

        def f_of_one(x: np.ndarray, k: int = k) -> float:
            args = [Tensor(x if j == k else a) for j, a in enumerate(arrays)]
            return float((f(*args).data * weights).sum())

        numeric.append(numerical_gradient(f_of_one, arrays[k], h))
    names = [f"input{k}" for k in range(len(arrays))]
    return _compare(names, analytic, numeric, atol, rtol)


def batch_norm_backward(
    dy: np.ndarray, x: np.ndarray, gamma: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The closed-form backward pass of batch norm (Ioffe & Szegedy 2015, section 3).

    With m values per feature, μ and σ² the batch mean and biased variance, and
    x̂ = (x − μ)/√(σ² + ε), y = γx̂ + β, the chain rule gives:

        ∂L/∂x̂  = ∂L/∂y · γ
        ∂L/∂σ² = Σ ∂L/∂x̂ · (x − μ) · (−½)(σ² + ε)^(−3/2)
        ∂L/∂μ  = Σ ∂L/∂x̂ · (−1/√(σ² + ε)) + ∂L/∂σ² · Σ −2(x − μ) / m
        ∂L/∂x  = ∂L/∂x̂ / √(σ² + ε) + ∂L/∂σ² · 2(x − μ)/m + ∂L/∂μ / m
        ∂L/∂γ  = Σ ∂L/∂y · x̂
        ∂L/∂β  = Σ ∂L/∂y

    (sums over the batch). This is an independent derivation to test the composed
    batch_norm against; the forward statistics are recomputed here on purpose.

    Args:
        dy: ∂L/∂y, shape (N, C) or (N, C, L).
        x: the batch-norm input, same shape as dy.
        gamma: (C,) scale.
        eps: the ε of the forward pass.
    Returns:
        dx shaped like x, dgamma (C,), dbeta (C,).

    Examples:
        >>> import numpy as np
        >>> from tinybn.check import batch_norm_backward
        >>> x = np.array([[1.0], [2.0], [4.0]])
        >>> dx, dgamma, dbeta = batch_norm_backward(np.array([[1.0], [0.0], [-1.0]]), x, np.ones(1))
        >>> np.round(dx.sum(axis=0), 12) + 0.0, dbeta  # Σ dx = 0; dβ = Σ dy
        (array([0.]), array([0.]))
    """
    dy, x = np.asarray(dy, dtype=np.float64), np.asarray(x, dtype=np.float64)
    if dy.shape != x.shape or x.ndim not in (2, 3):
        raise ValueError(
            f"batch_norm_backward: dy {dy.shape} and x {x.shape} must be equal "
            "(N, C) or (N, C, L) shapes"
        )
    axes = (0,) if x.ndim == 2 else (0, 2)
    shape = (1, -1) if x.ndim == 2 else (1, -1, 1)
    gamma = np.asarray(gamma, dtype=np.float64).reshape(shape)
    m = int(np.prod([x.shape[a] for a in axes]))

    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv_std

    dxhat = dy * gamma
    dvar = (dxhat * (x - mu) * -0.5 * (var + eps) ** -1.5).sum(axis=axes, keepdims=True)
    dmu = (dxhat * -inv_std).sum(axis=axes, keepdims=True) + dvar * (-2.0 * (x - mu)).sum(
        axis=axes, keepdims=True
    ) / m
    dx = dxhat * inv_std + dvar * 2.0 * (x - mu) / m + dmu / m
    dgamma = (dy * xhat).sum(axis=axes)
    dbeta = dy.sum(axis=axes)
    return dx, dgamma, dbeta


__all__ = [
    "GradientCheckError",
    "numerical_gradient",
    "check_grad",
    "check_tensor_grad",
    "batch_norm_backward",
]
