"""Pure functions of the math: normalization, activations, losses. No state.

``batch_norm`` and ``layer_norm`` are written once, against the op vocabulary that both
engines share (``mean``, ``-``, ``**``, ``+``, ``sqrt``, ``/``, ``*``). Handed rows of
scalar ``Value``s they build a graph with one node per scalar operation, each labelled
with its role in Ioffe & Szegedy's Algorithm 1; handed a ``Tensor`` they build one node
per array operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from tinybn.conv import avg_pool2d, conv2d, max_pool2d
from tinybn.fast import kernels as fused_kernels
from tinybn.random import default_generator
from tinybn.scalar import Value
from tinybn.scalar_array import ValueArray
from tinybn.tensor import Tensor
from tinybn.tensor import _axes as _tensor_axes

# The norms take either engine's input and answer in the same form: a Tensor, a ValueArray,
# or nested lists of scalar Values, of shape (N, C, ...)
Batch = Tensor | ValueArray | Sequence[Any]
# γ, β or given statistics, one value per channel (C,): the same forms or a numpy array
PerChannel = Tensor | ValueArray | Sequence[Any] | np.ndarray | None


# -- engine dispatch ------------------------------------------------------------------


def _as_array(x: Any, name: str) -> Tensor | ValueArray:
    """A Tensor stays a Tensor; nested lists of Values/numbers become a ValueArray."""
    if isinstance(x, (Tensor, ValueArray)):
        return x
    if isinstance(x, np.ndarray) and x.dtype != object:
        return Tensor(x)
    if isinstance(x, (list, tuple, np.ndarray)):
        return ValueArray(x)
    raise TypeError(f"{name}: expected a Tensor or nested lists of Values, got {type(x).__name__}")


def _param(
    p: Any,
    name: str,
    engine: type[Tensor] | type[ValueArray],
    shape: tuple[int, ...],
    broadcast: bool = True,
) -> Any:
    """gamma/beta (length C) reshaped to broadcast against the input: (1, C) or (1, C, 1).

    ``broadcast=False`` checks the length but returns the (C,) array itself (the fused
    kernel broadcasts internally, saving two reshape nodes per call).
    """
    if p is None:
        return None
    if engine is ValueArray and not isinstance(p, ValueArray) and not _all_values(p):
        # plain numbers would become constants no one can read a gradient from: the
        # caller's own list would have no .grad after backward()
        raise TypeError(
            f"{name} for the scalar engine must hold Values, got plain numbers ({p!r}); "
            f"make them with tb.values, e.g. {name} = tb.values([1.0, ...], {name!r}), so "
            f"that backward() fills {name}[i].grad"
        )
    array = p if isinstance(p, engine) else engine(p)
    channels = shape[1]  # shape is (1, C) or (1, C, 1)
    if array.shape != (channels,):
        raise ValueError(
            f"{name} has {array.shape[0] if array.ndim else 1} value(s) in shape "
            f"{array.shape}, but the input has {channels} feature(s)"
        )
    if not broadcast:
        return array
    return array.reshape(shape) if array.ndim != len(shape) else array


def _all_values(p: Any) -> bool:
    """True if ``p`` is a Value or (nested) sequence of nothing but Values."""
    if isinstance(p, Value):
        return True
    if isinstance(p, (list, tuple, np.ndarray)):
        return all(_all_values(item) for item in (p.flat if isinstance(p, np.ndarray) else p))
    return False


def _statistic(stat: Any, name: str, x: Tensor | ValueArray, shape: tuple[int, ...]) -> Any:
    """A given (C,) mean or variance as a constant of x's engine and dtype, shaped to broadcast."""
    array = np.asarray(getattr(stat, "data", stat), dtype=float)
    if array.size != int(np.prod(shape)):
        raise ValueError(
            f"{name} has {array.size} value(s), but the input has {int(np.prod(shape))} feature(s)"
        )
    if isinstance(x, Tensor):
        return Tensor(array.reshape(shape).astype(x.dtype), label=name)
    return ValueArray(array.reshape(shape)).named(name)


def _check_eps(eps: Any, op: str) -> None:
    """ε must be a real number >= 0; checked up front, so a negative ε is named as such
    instead of surfacing later as "sqrt of a negative" deep inside the graph."""
    if type(eps) is float and eps >= 0.0:  # the common case, without the slower ABC check
        return
    if isinstance(eps, bool) or not isinstance(eps, Real):
        raise TypeError(f"{op}: eps must be a real number, got {type(eps).__name__} {eps!r}")
    if not float(eps) >= 0:  # also refuses NaN
        raise ValueError(f"{op}: eps must be >= 0, got {eps!r}")


def _back_to_input_form(result: Any, original: Any) -> Any:
    return result.tolist() if isinstance(original, (list, tuple)) else result


# -- normalization -----------------------------------------------------------------------


# The stages of the normalizing transform, in the order of Ioffe & Szegedy's Algorithm 1:
# role → (the label the stage's nodes get, the same name in ASCII). ``_normalize`` sets both
# on the nodes it builds; drawings, ``backward_steps`` and ``tinybn.nodes`` read them there.
NORM_STAGES: dict[str, tuple[str, str]] = {
    "mean": ("μ", "mu"),
    "centered": ("x − μ", "x - mu"),
    "squared": ("(x − μ)²", "(x - mu)^2"),
    "var": ("σ²", "var"),
    "eps": ("ε", "eps"),
    "var_eps": ("σ² + ε", "var + eps"),
    "std": ("√(σ² + ε)", "sqrt(var + eps)"),
    "xhat": ("x̂", "xhat"),
    "scaled": ("γ·x̂", "gamma*xhat"),
    "shifted": ("y", "y"),
}


def _stage(node: Any, role: str) -> Any:
    """Name ``node`` (a Tensor or ValueArray) as the stage ``role`` of the transform."""
    return node.named(NORM_STAGES[role][0], role=role)


def _epsilon(eps: float, x: Tensor | ValueArray) -> Tensor | Value:
    """ε as one named constant node of x's engine (and dtype), shared by every feature."""
    if isinstance(x, Tensor):
        return Tensor(np.asarray(eps, dtype=x.dtype)).named("ε", role="eps")
    return Value(float(eps)).named("ε", role="eps")


def _normalize(
    x: Tensor | ValueArray,
    axes: tuple[int, ...],
    gamma: Any,
    beta: Any,
    eps: float,
    mean: Any = None,
    var: Any = None,
) -> tuple[Any, Any, Any]:
    """The normalizing transform, step by step, each intermediate named for its role.

        μ  = mean(x over axes)          σ² = mean((x - μ)² over axes)     (biased, 1/m)
        x̂  = (x - μ) / √(σ² + ε)        y  = γ·x̂ + β

    If ``mean`` and ``var`` are given (inference with running statistics) they replace
    the statistics of x. Returns (y, μ, σ²).
    """
    if mean is None:
        mean = _stage(x.mean(axis=axes, keepdims=True), "mean")
    centered = _stage(x - mean, "centered")
    if var is None:
        squared = _stage(centered**2, "squared")
        var = _stage(squared.mean(axis=axes, keepdims=True), "var")
    std = _stage(_stage(var + _epsilon(eps, x), "var_eps").sqrt(), "std")
    y = _stage(centered / std, "xhat")
    if gamma is not None:
        y = _stage(gamma * y, "scaled")
    if beta is not None:
        y = _stage(y + beta, "shifted")
    return y, mean, var


def _batch_axes(x: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Reduction axes and parameter shape for (N, C), (N, C, L) or (N, C, H, W) input:
    every axis but the channels', and (1, C) with a 1 for each of the others."""
    if x.ndim in (2, 3, 4):
        return (0, *range(2, x.ndim)), _channel_shape(x)
    raise ValueError(
        f"batch_norm expects input of shape (N, C), (N, C, L) or (N, C, H, W), got {x.shape}"
    )


def _channel_shape(x: Any) -> tuple[int, ...]:
    """(1, C, 1, ...): a per-channel array that broadcasts against x (N, C, ...)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batch_norm_with_stats(
    x: Batch,
    gamma: PerChannel = None,
    beta: PerChannel = None,
    eps: float = 1e-5,
    *,
    mean: PerChannel = None,
    var: PerChannel = None,
    allow_batch_of_one: bool = False,
) -> tuple[Any, Any, Any]:
    """``batch_norm`` that also returns the batch mean μ and biased variance σ² it used.

    A module updates its running statistics from these (see ``nn.BatchNorm1d``).
    Shapes: x (N, C), (N, C, L) or (N, C, H, W); gamma, beta (C,); μ and σ² keep x's ndim
    with size-1 reduced axes, e.g. (1, C). All three come back in the form of x: Tensors,
    ValueArrays, or nested lists of Values.
    ``allow_batch_of_one=True`` accepts one value per channel, as Keras does: μ = x, σ² = 0,
    so x̂ = 0 and y = β (PyTorch refuses it).

    Examples:
        >>> from tinybn import Tensor, functional as F
        >>> y, mean, var = F.batch_norm_with_stats(Tensor([[1.0], [3.0]]))
        >>> mean.data, var.data  # shapes (1, C): the biased variance
        (array([[2.]], dtype=float32), array([[1.]], dtype=float32))
    """
    return _batch_norm(
        x, gamma, beta, eps, mean=mean, var=var, allow_batch_of_one=allow_batch_of_one, kernel=None
    )


def _batch_norm(
    x: Any,
    gamma: Any,
    beta: Any,
    eps: float,
    *,
    mean: Any,
    var: Any,
    allow_batch_of_one: bool,
    kernel: Any,
) -> tuple[Any, Any, Any]:
    """``batch_norm_with_stats``, y computed by the composed source ``_normalize`` (``kernel``
    None) or by a fused Tensor kernel with the same meaning (``fast.kernels.batch_norm``,
    called through ``fast.kernels.batch_norm_with_stats``)."""
    _check_eps(eps, "batch_norm")
    array = _as_array(x, "batch_norm")
    _check_float_input(array, "batch_norm")
    if kernel is not None and not isinstance(array, Tensor):
        raise TypeError("batch_norm: the fused kernel needs a Tensor input; scalar Values compose")
    axes, param_shape = _batch_axes(array)
    values_per_channel = array.shape[0] * int(np.prod(array.shape[2:], dtype=int))  # N·H·W
    if mean is None and values_per_channel < (1 if allow_batch_of_one else 2):
        raise ValueError(
            f"batch_norm: expected more than 1 value per channel when training, got input of "
            f"shape {array.shape}; batch statistics of one sample have zero variance "
            "(use eval mode with running statistics for single examples)"
        )
    return _normalize_per_channel(
        "batch_norm", x, array, axes, param_shape, gamma, beta, eps, mean, var, kernel
    )


def _normalize_per_channel(
    op: str,
    x: Any,
    array: Tensor | ValueArray,
    axes: tuple[int, ...],
    shape: tuple[int, ...],
    gamma: Any,
    beta: Any,
    eps: float,
    mean: Any,
    var: Any,
    kernel: Any = None,
) -> tuple[Any, Any, Any]:
    """What batch and instance norm share after their own input checks: γ and β (C,) and the
    given statistics checked and shaped to ``shape`` (1, C, 1, ...), float16 computed in
    float32 (its sums overflow from 65504 on, as PyTorch's kernels avoid), then the transform
    over ``axes`` — composed (``_normalize``) or by ``kernel`` — and y, μ, σ² in the form of x.
    """
    if (mean is None) != (var is None):
        raise ValueError(f"{op}: pass both mean= and var= (inference), or neither")
    engine = Tensor if isinstance(array, Tensor) else ValueArray
    gamma = _param(gamma, "gamma", engine, shape, broadcast=kernel is None)
    beta = _param(beta, "beta", engine, shape, broadcast=kernel is None)
    half = isinstance(array, Tensor) and array.dtype == np.float16
    if isinstance(array, Tensor) and half:
        array = array.astype(np.float32)
    if mean is not None:
        mean = _statistic(mean, "running_mean", array, shape)
        var = _statistic(var, "running_var", array, shape)
    if kernel is None:
        y, used_mean, used_var = _normalize(array, axes, gamma, beta, eps, mean, var)
    else:
        y, used_mean, used_var = kernel(array, gamma, beta, eps, mean, var)
    if half:
        y = y.astype(np.float16)
    form = _back_to_input_form
    return form(y, x), form(used_mean, x), form(used_var, x)


def _check_float_input(array: Tensor | ValueArray, op: str) -> None:
    """TypeError for an integer or bool Tensor: PyTorch's batch norm is not implemented for
    them (its sums would wrap around in uint8/int8, and x̂ is not an integer)."""
    if isinstance(array, Tensor) and array.dtype.kind != "f":
        raise TypeError(
            f"{op}: expected a floating-point input, got dtype {array.dtype}; convert it "
            "first, e.g. x.astype(np.float32)"
        )


def batch_norm(
    x: Batch,
    gamma: PerChannel = None,
    beta: PerChannel = None,
    eps: float = 1e-5,
    *,
    mean: PerChannel = None,
    var: PerChannel = None,
) -> Any:
    r"""Batch normalization (Ioffe & Szegedy 2015, Algorithm 1). Taught in chapter 2.

    For each feature \(c\), over the \(m\) values of the batch (axis 0, and the positions L
    or H, W of (N, C, L) or (N, C, H, W) input: spatial batch norm, one μ and σ² per
    channel over N·H·W):

    \[
    \mu_c = \frac{1}{m}\sum_i x_{ic}, \qquad
    \sigma^2_c = \frac{1}{m}\sum_i (x_{ic} - \mu_c)^2, \qquad
    \hat{x}_{ic} = \frac{x_{ic} - \mu_c}{\sqrt{\sigma^2_c + \epsilon}}, \qquad
    y_{ic} = \gamma_c \hat{x}_{ic} + \beta_c .
    \]

    Args:
        x: a Tensor of shape (N, C), (N, C, L) or (N, C, H, W), or nested lists of scalar
            Values of one of those shapes.
        gamma: optional (C,) scale γ (a Tensor, or for rows of Values a list of Values made
            with tb.values: plain numbers are refused with a TypeError, as their gradient
            would have nowhere to go); None (the default) means γ = 1.
        beta: optional (C,) shift β, as gamma; None (the default) means β = 0.
        eps: ε, added to σ² so that a constant feature does not divide by zero; >= 0
            (0 is allowed, as in PyTorch; negative → ValueError).
        mean: optional (C,) statistic to use instead of the batch's μ (inference).
        var: optional (C,) statistic to use instead of the batch's σ² (inference).
    Returns:
        y in the form of x (a Tensor, or nested lists of Values).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> x = Tensor([[33.0, 9.0], [72.0, 8.0], [40.0, 7.0], [104.0, 10.0]])
        >>> y = F.batch_norm(x)
        >>> np.round(y.data, 4)
        array([[-1.036 ,  0.4472],
               [ 0.3453, -0.4472],
               [-0.788 , -1.3416],
               [ 1.4787,  1.3416]], dtype=float32)
        >>> np.round(y.data.mean(axis=0), 6) + 0.0, np.round(y.data.var(axis=0), 4)
        (array([0., 0.], dtype=float32), array([1., 1.], dtype=float32))
    """
    return batch_norm_with_stats(x, gamma, beta, eps, mean=mean, var=var)[0]


def batch_norm_backward(dy: Batch, x: Batch, gamma: PerChannel = None, eps: float = 1e-5) -> tuple:
    r"""The closed-form backward of batch norm (Ioffe & Szegedy 2015, section 3), composed
    from the same primitives as ``batch_norm``, on either engine. Taught in chapter 3.

    \[
    d\beta = \sum_i dy_i, \qquad d\gamma = \sum_i dy_i\,\hat{x}_i, \qquad
    dx = \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}
         \left(dy - \frac{d\beta}{m} - \hat{x}\,\frac{d\gamma}{m}\right)
    \]

    with \(m\) values per channel. Autodiff through ``batch_norm`` gives the same numbers by
    three routes (through x̂, σ² and μ); this is those routes added up by hand.

    Args:
        dy: ∂L/∂y, like x: a Tensor (N, C) or (N, C, L), or N rows of C numbers/Values.
        x: the input batch norm was applied to, the same shape.
        gamma: (C,) scale, or None for γ = 1.
        eps: as in ``batch_norm``.
    Returns:
        (dx, dγ, dβ): dx in the form of x; dγ and dβ of shape (C,) (lists for scalars).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> x = Tensor([[1.0], [2.0], [4.0]], requires_grad=True)
        >>> dy = Tensor([[1.0], [0.0], [-1.0]])
        >>> (F.batch_norm(x) * dy).sum().backward()  # autodiff, for comparison
        >>> dx, dgamma, dbeta = F.batch_norm_backward(dy, x)
        >>> bool(np.allclose(dx.data, x.grad, atol=1e-6)), dbeta.data
        (True, array([0.], dtype=float32))
    """
    _check_eps(eps, "batch_norm_backward")
    array = _as_array(x, "batch_norm_backward")
    grad = _as_array(dy, "batch_norm_backward")
    if grad.shape != array.shape:
        raise ValueError(f"batch_norm_backward: dy has shape {grad.shape}, x {array.shape}")
    axes, param_shape = _batch_axes(array)
    engine = Tensor if isinstance(array, Tensor) else ValueArray
    gamma = _param(gamma, "gamma", engine, param_shape)
    m = int(np.prod([array.shape[a] for a in axes]))
    xhat, _, var = _normalize(array, axes, None, None, eps)
    dbeta = grad.sum(axis=axes, keepdims=True).named("Σ dy")
    dgamma = (grad * xhat).sum(axis=axes, keepdims=True).named("Σ dy·x̂")
    std = (var + _epsilon(eps, array)).sqrt()
    inner = grad - dbeta * (1.0 / m) - xhat * dgamma * (1.0 / m)
    dx = (inner / std if gamma is None else gamma * inner / std).named("dx")
    flat = (-1,)
    if engine is ValueArray:
        return (
            _back_to_input_form(dx, x),
            dgamma.reshape(flat).tolist(),
            dbeta.reshape(flat).tolist(),
        )
    return dx, dgamma.reshape(flat), dbeta.reshape(flat)


def layer_norm(
    x: Batch,
    gamma: PerChannel = None,
    beta: PerChannel = None,
    eps: float = 1e-5,
    *,
    normalized_ndim: int | None = None,
) -> Any:
    r"""Layer normalization (Ba, Kiros & Hinton 2016): the same transform per example.
    Taught in chapter 6 (and exercise ``layer_norm`` of chapter 5).

    Each example is normalized over its last ``normalized_ndim`` axes (default: gamma's
    ndim, or 1), with \(H\) values there:
    \(\mu = \frac{1}{H}\sum_i a_i\), \(\sigma^2 = \frac{1}{H}\sum_i (a_i - \mu)^2\),
    \(y = \gamma\,\frac{a - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta\).

    Args:
        x: a Tensor (..., H) or rows of H scalar Values.
        gamma: optional scale γ of the normalized shape, e.g. (H,); None means 1.
        beta: optional shift β of the normalized shape; None means 0.
        eps: ε, added to σ² (>= 0).
        normalized_ndim: optional number of trailing axes to normalize over.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> y = F.layer_norm(Tensor([[1.0, 2.0, 3.0], [10.0, 10.0, 40.0]]))
        >>> np.round(y.data, 4)
        array([[-1.2247,  0.    ,  1.2247],
               [-0.7071, -0.7071,  1.4142]], dtype=float32)
    """
    _check_eps(eps, "layer_norm")
    array = _as_array(x, "layer_norm")
    engine = Tensor if isinstance(array, Tensor) else ValueArray
    if normalized_ndim is None:
        gamma_data: Any = getattr(gamma, "data", gamma)
        normalized_ndim = 1 if gamma is None else np.ndim(gamma_data)
    if not 1 <= normalized_ndim <= array.ndim:
        raise ValueError(f"layer_norm: cannot normalize {normalized_ndim} axes of {array.shape}")
    normalized_shape = array.shape[array.ndim - normalized_ndim :]
    gamma, beta = _affine_params(gamma, beta, engine, normalized_shape, "layer_norm")
    axes = tuple(range(array.ndim - normalized_ndim, array.ndim))
    y, _, _ = _normalize(array, axes, gamma, beta, eps)
    return _back_to_input_form(y, x)


def _affine_params(
    gamma: Any,
    beta: Any,
    engine: type[Tensor] | type[ValueArray],
    shape: tuple,
    op: str,
    what: str = "normalized shape",
) -> list[Tensor | ValueArray | None]:
    """gamma and beta as ``engine`` arrays of ``shape`` (None stays None); ``what`` names
    where the shape comes from, for the error."""
    params: list[Tensor | ValueArray | None] = []
    for p, name in ((gamma, "gamma"), (beta, "beta")):
        if p is not None:
            p = p if isinstance(p, engine) else engine(p)
            if p.shape != shape:
                raise ValueError(
                    f"{op}: {name} has shape {p.shape}, but the input's {what} is {shape}"
                )
        params.append(p)
    return params


def _channels_first(x: Any, op: str) -> Tensor | ValueArray:
    """The input of a per-channel norm: (N, C, *) with at least one position axis."""
    array = _as_array(x, op)
    if array.ndim < 3:
        raise ValueError(
            f"{op}: expected input of shape (N, C, L) or (N, C, H, W), got {array.ndim}-d "
            f"input of shape {array.shape}"
        )
    return array


def group_norm(
    x: Batch, num_groups: int, gamma: PerChannel = None, beta: PerChannel = None, eps: float = 1e-5
) -> Any:
    """Group normalization (Wu & He 2018): per example, the C channels split into G groups
    of C/G, each group normalized over its channels and positions, then γ, β per channel.

    Computed as batch norm's steps (``_normalize``) on x viewed as (N, G, C/G, *): μ and σ²
    over the last axes, one pair per (example, group). G = 1 is layer norm over (C, H, W)
    with per-channel γ, β; G = C is instance norm.

    Args:
        x: (N, C, *) Tensor or nested lists of Values; C divisible by num_groups.
        gamma: optional (C,) scale, or None.
        beta: optional (C,) shift, or None.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> x = Tensor(np.random.default_rng(0).normal(size=(2, 4, 3, 3)))
        >>> y = F.group_norm(x, 2)  # 2 groups of 2 channels
        >>> np.round(y.data[0, :2].mean(), 6) + 0.0, np.round(y.data[0, :2].std(), 4)
        (np.float64(0.0), np.float64(1.0))
    """
    _check_eps(eps, "group_norm")
    array = _as_array(x, "group_norm")
    if array.ndim < 2:
        raise ValueError(f"group_norm: expected input of shape (N, C, *), got {array.shape}")
    channels = array.shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)):
        raise TypeError(f"group_norm: num_groups must be an int, got {num_groups!r}")
    if num_groups < 1 or channels % num_groups:
        raise ValueError(
            f"group_norm: num_groups={num_groups} must divide the {channels} input channels"
        )
    engine = Tensor if isinstance(array, Tensor) else ValueArray
    gamma, beta = _affine_params(gamma, beta, engine, (channels,), "group_norm", "channel shape")
    n, rest = array.shape[0], array.shape[2:]
    grouped_shape = (n, num_groups, channels // num_groups, *rest)
    param_shape = (1, num_groups, channels // num_groups) + (1,) * len(rest)
    grouped = array.reshape(grouped_shape)
    gamma = gamma.reshape(param_shape) if gamma is not None else None
    beta = beta.reshape(param_shape) if beta is not None else None
    y, _, _ = _normalize(grouped, tuple(range(2, grouped.ndim)), gamma, beta, eps)
    return _back_to_input_form(y.reshape(array.shape), x)


def instance_norm_with_stats(
    x: Batch,
    gamma: PerChannel = None,
    beta: PerChannel = None,
    eps: float = 1e-5,
    *,
    mean: PerChannel = None,
    var: PerChannel = None,
) -> tuple[Any, Any, Any]:
    """``instance_norm`` that also returns the μ and biased σ² it used, each (N, C, 1, ...)
    from the input (or the given (C,) statistics, shaped (1, C, 1, ...)).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> y, mean, var = F.instance_norm_with_stats(Tensor(np.arange(8.0).reshape(1, 2, 4)))
        >>> mean.data.ravel(), var.data.ravel()  # one per (example, channel)
        (array([1.5, 5.5]), array([1.25, 1.25]))
    """
    _check_eps(eps, "instance_norm")
    array = _channels_first(x, "instance_norm")
    positions = int(np.prod(array.shape[2:], dtype=int))
    if mean is None and positions < 2:
        raise ValueError(
            f"instance_norm: expected more than 1 spatial element when training, got input of "
            f"shape {array.shape}"
        )
    axes = tuple(range(2, array.ndim))
    return _normalize_per_channel(
        "instance_norm", x, array, axes, _channel_shape(array), gamma, beta, eps, mean, var
    )


def instance_norm(
    x: Batch,
    gamma: PerChannel = None,
    beta: PerChannel = None,
    eps: float = 1e-5,
    *,
    mean: PerChannel = None,
    var: PerChannel = None,
) -> Any:
    """Instance normalization (Ulyanov et al. 2016): each channel of each example normalized
    over its own positions, μ_nc = mean over (H, W) of x[n, c], σ²_nc likewise; then γ, β
    per channel. ``mean``, ``var``: (C,) statistics to use instead (eval with running stats).

    Args:
        x: (N, C, L) or (N, C, H, W), a Tensor or nested lists of Values.
        gamma: optional (C,) scale, or None.
        beta: optional (C,) shift, or None.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> x = Tensor(np.random.default_rng(0).normal(size=(2, 3, 4, 4)))
        >>> y = F.instance_norm(x)  # each (example, channel) map on its own
        >>> np.round(y.data.mean(axis=(2, 3)), 6).max() + 0.0
        np.float64(0.0)
    """
    return instance_norm_with_stats(x, gamma, beta, eps, mean=mean, var=var)[0]


def rms_norm(
    x: Batch,
    normalized_shape: int | tuple[int, ...],
    gamma: PerChannel = None,
    eps: float | None = None,
) -> Any:
    """RMS normalization (Zhang & Sennrich 2019), as PyTorch's ``F.rms_norm``: no centering,
    y = x / √(mean(x²) + ε) · γ over the last len(normalized_shape) axes.

    Args:
        x: (..., *normalized_shape), a Tensor or nested lists of Values.
        gamma: normalized_shape, or None.
        eps: None means the machine epsilon of x's dtype (PyTorch's default).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> np.round(F.rms_norm(Tensor([[3.0, 4.0]]), 2).data, 4)  # x / √((9 + 16) / 2)
        array([[0.8485, 1.1314]], dtype=float32)
    """
    array = _as_array(x, "rms_norm")
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if not shape or array.shape[array.ndim - k :] != shape or array.ndim < k:
        raise ValueError(
            f"rms_norm: input of shape {array.shape} does not end in normalized_shape {shape}"
        )
    if eps is None:
        eps = float(np.finfo(array.dtype if isinstance(array, Tensor) else np.float64).eps)
    _check_eps(eps, "rms_norm")
    engine = Tensor if isinstance(array, Tensor) else ValueArray
    gamma, _ = _affine_params(gamma, None, engine, shape, "rms_norm")
    axes = tuple(range(array.ndim - k, array.ndim))
    mean_square = (array**2).named("x²").mean(axis=axes, keepdims=True).named("mean(x²)")
    rms = (mean_square + eps).named("mean(x²) + ε").sqrt().named("√(mean(x²) + ε)")
    y = (array / rms).named("x̂")
    if gamma is not None:
        y = (gamma * y).named("γ·x̂")
    return _back_to_input_form(y, x)


# -- layers ---------------------------------------------------------------------------------


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b, as PyTorch's ``F.linear``; one graph node (``tinybn.fast.kernels.linear``).

    Args:
        x: (..., in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None.
    Returns:
        (..., out_features).

    Examples:
        >>> from tinybn import Tensor, functional as F
        >>> weight, bias = Tensor([[1.0, 1.0], [0.0, 1.0]]), Tensor([0.5, 0.0])
        >>> F.linear(Tensor([[1.0, 2.0]]), weight, bias).data  # x Wᵀ + b
        array([[3.5, 2. ]], dtype=float32)
    """
    # checked in one expression; the loop that names the culprit runs only when one is wrong
    if not (
        isinstance(x, Tensor)
        and isinstance(weight, Tensor)
        and (bias is None or isinstance(bias, Tensor))
    ):
        for name, t in (("x", x), ("weight", weight), ("bias", bias)):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"linear: {name} must be a Tensor, got {type(t).__name__}")
    x_shape, weight_shape = x.data.shape, weight.data.shape
    if len(weight_shape) != 2 or not x_shape or x_shape[-1] != weight_shape[1]:
        raise ValueError(
            f"linear: x of shape {x_shape} and weight of shape {weight_shape} do not fit: "
            "weight must be (out_features, in_features) with in_features = x.shape[-1]"
        )
    if bias is not None and bias.data.shape != (weight_shape[0],):
        raise ValueError(f"linear: bias shape {bias.shape} != ({weight_shape[0]},)")
    return fused_kernels.linear(x, weight, bias)


# -- activations ---------------------------------------------------------------------------


def relu(x: Tensor) -> Tensor:
    """max(0, x).

    Examples:
        >>> from tinybn import Tensor, functional as F
        >>> F.relu(Tensor([-1.0, 0.0, 2.0])).data
        array([0., 0., 2.], dtype=float32)
    """
    return x.relu()


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^(−x)).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> np.round(F.sigmoid(Tensor([0.0, 2.0])).data, 4)
        array([0.5   , 0.8808], dtype=float32)
    """
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    """(e^x − e^(−x)) / (e^x + e^(−x)).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> np.round(F.tanh(Tensor([0.0, 1.0])).data, 4)
        array([0.    , 0.7616], dtype=float32)
    """
    return x.tanh()


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, else negative_slope·x.

    Examples:
        >>> from tinybn import Tensor, functional as F
        >>> F.leaky_relu(Tensor([-2.0, 3.0]), 0.1).data
        array([-0.2,  3. ], dtype=float32)
    """
    return x.leaky_relu(negative_slope)


def log_softmax(logits: Tensor, axis: int = -1) -> Tensor:
    """z − max z − log Σ exp(z − max z): the max is subtracted so that exp cannot overflow.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> np.round(F.log_softmax(Tensor([[0.0, 0.0]])).data, 4)  # log ½
        array([[-0.6931, -0.6931]], dtype=float32)
    """
    axes = _tensor_axes(axis, logits.ndim)  # a 0-d tensor takes axis 0 or −1, as PyTorch
    shifted = logits - logits.data.max(axis=axes, keepdims=True)
    return shifted - shifted.exp().sum(axis=axes, keepdims=True).log()


def softmax(logits: Tensor, axis: int = -1) -> Tensor:
    """exp(z) / Σ exp(z), computed stably.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> np.round(F.softmax(Tensor([[1.0, 2.0, 3.0]])).data, 4)
        array([[0.09  , 0.2447, 0.6652]], dtype=float32)
    """
    return log_softmax(logits, axis).exp()


def dropout(
    x: Tensor, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None
) -> Tensor:
    """Inverted dropout: zero each entry with probability p, scale the rest by 1/(1−p).

    The mask is drawn from ``rng``, or tinybn's default generator (``tb.manual_seed``).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> rng = np.random.default_rng(0)
        >>> y = F.dropout(Tensor(np.ones((1, 8))), p=0.5, training=True, rng=rng)
        >>> sorted(set(y.data.ravel().tolist()))  # dropped, or kept and scaled by 1/(1 − p)
        [0.0, 2.0]
        >>> F.dropout(Tensor([1.0, 2.0]), p=0.5, training=False).data  # eval: unchanged
        array([1., 2.], dtype=float32)
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    rng = rng if rng is not None else default_generator()
    keep = (rng.random(x.shape) >= p).astype(x.dtype) / (1.0 - p)
    return x * keep


# -- losses (reduction='mean' by default, 'sum' or 'none' as in PyTorch) ------------------------


def _targets(targets: Any) -> np.ndarray:
    return np.asarray(targets.data if isinstance(targets, Tensor) else targets)


def _check_reduction(reduction: Any, op: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_logits(logits: Any, op: str) -> None:
    if not isinstance(logits, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(logits).__name__}")
    if logits.ndim < 1:
        raise ValueError(f"{op}: input must be (C,), (N, C) or (N, C, *), got a 0-d tensor")


def _class_indices(
    logits: Tensor, targets: Any, ignore_index: int, op: str, classes: np.ndarray | None = None
) -> np.ndarray:
    """Integer targets checked against logits (N, C, *): shape (N, *), values in [0, C)."""
    classes = _targets(targets) if classes is None else classes
    if classes.dtype.kind not in "iu":
        expected = logits.shape[:1] + logits.shape[2:]
        raise TypeError(
            f"{op}: targets must be integer class indices of shape {expected}"
            f" or class probabilities of the input's shape {logits.shape}, got {classes.dtype} "
            f"of shape {classes.shape}"
        )
    expected = logits.shape[:1] + logits.shape[2:]
    if classes.shape != expected:
        raise ValueError(
            f"{op}: targets shape {classes.shape} does not match logits {logits.shape} "
            f"(expected {expected})"
        )
    used = classes[classes != ignore_index]
    if used.size and (used.min() < 0 or used.max() >= logits.shape[1]):
        raise ValueError(f"{op}: targets must be in [0, {logits.shape[1]}) (or ignore_index)")
    return classes


def cross_entropy(
    logits: Tensor,
    targets: Tensor | ArrayLike,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> Tensor:
    """−log softmax(logits)[target], as PyTorch's ``F.cross_entropy``.

    Args:
        logits: (N, C) unnormalized class scores; also (C,) for one example, or (N, C, *)
            with a class score per position.
        targets: integer class indices (N,) (or (), (N, *)), numpy array or Tensor; or class
            probabilities as a float array/Tensor of the logits' shape.
        reduction: 'mean' (over the targets not equal to ignore_index; over the rows for
            probabilities), 'sum', or 'none' (one loss per row, shape (N, *)).
        label_smoothing: ε in [0, 1]: the target becomes (1 − ε)·target + ε/C.
        ignore_index: a class index whose rows add nothing (class-index targets only).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> logits = Tensor([[2.0, 0.0], [0.0, 2.0]])
        >>> round(float(F.cross_entropy(logits, [0, 1]).data), 4)  # −log softmax of the right class
        0.1269
    """
    _check_logits(logits, "cross_entropy")
    _check_reduction(reduction, "cross_entropy")
    if isinstance(label_smoothing, bool) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if logits.ndim == 1:  # one example: (C,) with a () class or (C,) probabilities
        row: Tensor | np.ndarray
        if isinstance(targets, Tensor) and targets.ndim == 1:
            row = targets.reshape(1, -1)
        else:
            row = _targets(targets)
            row = row.reshape(1, -1) if row.ndim == 1 else row.reshape(1)
        loss = cross_entropy(logits.reshape(1, -1), row, reduction, label_smoothing, ignore_index)
        return loss.reshape(()) if reduction == "none" else loss
    raw = _targets(targets)
    if raw.dtype.kind == "f" and raw.shape == logits.shape:
        probs = targets if isinstance(targets, Tensor) else Tensor(raw.astype(logits.dtype))
        return fused_kernels.cross_entropy(logits, probs, reduction, label_smoothing)
    classes = _class_indices(logits, targets, ignore_index, "cross_entropy", raw)
    # one graph node with the closed-form gradient (softmax − target)/N (``tinybn.fast.kernels``)
    return fused_kernels.cross_entropy(logits, classes, reduction, label_smoothing, ignore_index)


def nll_loss(
    log_probs: Tensor,
    targets: Tensor | ArrayLike,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> Tensor:
    """−log_probs[target]: the negative log-likelihood of log-probabilities (e.g. from
    ``log_softmax``), as PyTorch's ``F.nll_loss``; ``cross_entropy`` is
    ``nll_loss(log_softmax(z))``. Shapes and reduction as ``cross_entropy`` with class
    indices. Composed: index, mask, sum (one node each).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, functional as F
        >>> log_probs = F.log_softmax(Tensor([[2.0, 0.0], [0.0, 2.0]]))
        >>> round(float(F.nll_loss(log_probs, [0, 1]).data), 4)  # = cross_entropy of the logits
        0.1269
    """
    _check_logits(log_probs, "nll_loss")
    _check_reduction(reduction, "nll_loss")
    if log_probs.ndim == 1:
        loss = nll_loss(
            log_probs.reshape(1, -1), _targets(targets).reshape(1), reduction, ignore_index
        )
        return loss.reshape(()) if reduction == "none" else loss
    classes = _class_indices(log_probs, targets, ignore_index, "nll_loss")
    rows = log_probs.permute(0, *range(2, log_probs.ndim), 1).reshape(-1, log_probs.shape[1])
    flat = classes.reshape(-1)
    kept = flat != ignore_index
    picked = rows[np.arange(len(flat)), np.where(kept, flat, 0)]
    terms = -(picked * kept.astype(log_probs.dtype))
    if reduction == "none":
        return terms.reshape(classes.shape)
    if reduction == "sum":
        return terms.sum()
    return terms.sum() / np.asarray(kept.sum(), dtype=log_probs.dtype)


def _check_same_shape(a: Tensor, b: Any, name: str) -> None:
    b_shape = b.data.shape if isinstance(b, Tensor) else np.shape(getattr(b, "data", b))
    if tuple(a.shape) != tuple(b_shape):
        raise ValueError(f"{name}: input shape {a.shape} != target shape {np.shape(b)}")


def binary_cross_entropy(p: Tensor, y: Tensor | ArrayLike, reduction: str = "mean") -> Tensor:
    """−[y log p + (1 − y) log(1 − p)] per element, reduced; each log is clamped at −100 as
    in PyTorch.

    One graph node with PyTorch's closed-form gradient (p − y)/max(p(1 − p), 1e-12)/n
    (``tinybn.fast.kernels``).

    Examples:
        >>> from tinybn import Tensor, functional as F
        >>> round(float(F.binary_cross_entropy(Tensor([0.5, 0.5]), [1.0, 0.0]).data), 4)  # log 2
        0.6931
    """
    _check_reduction(reduction, "binary_cross_entropy")
    _check_same_shape(p, y, "binary_cross_entropy")
    if np.any((p.data < 0) | (p.data > 1)):
        raise ValueError("binary_cross_entropy: probabilities must be in [0, 1]")
    y = y if isinstance(y, Tensor) else Tensor(np.asarray(y, dtype=p.dtype))
    return fused_kernels.binary_cross_entropy(p, y, reduction)


def binary_cross_entropy_with_logits(
    z: Tensor,
    y: Tensor | ArrayLike,
    reduction: str = "mean",
    pos_weight: Tensor | ArrayLike | None = None,
) -> Tensor:
    """BCE of sigmoid(z), computed stably: max(z, 0) − z·y + log(1 + e^(−|z|)) per element,
    reduced. ``pos_weight`` (broadcast over the last axis, e.g. (C,)) weighs the positive
    term: −[w·y·log σ(z) + (1 − y)·log(1 − σ(z))], as PyTorch.

    One graph node with the closed-form gradient (σ(z) − y)/n (``tinybn.fast.kernels``).

    Examples:
        >>> from tinybn import Tensor, functional as F
        >>> round(float(F.binary_cross_entropy_with_logits(Tensor([0.0]), [1.0]).data), 4)  # log 2
        0.6931
    """
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    _check_same_shape(z, y, "binary_cross_entropy_with_logits")
    y = y if isinstance(y, Tensor) else Tensor(np.asarray(y, dtype=z.dtype))
    if pos_weight is not None:
        if isinstance(pos_weight, Tensor) and pos_weight.requires_grad:
            raise ValueError(
                "binary_cross_entropy_with_logits: pos_weight is a constant and cannot require "
                "grad (as in PyTorch)"
            )
        if not isinstance(pos_weight, Tensor):
            pos_weight = Tensor(np.asarray(pos_weight, dtype=z.dtype))
        try:
            np.broadcast_shapes(pos_weight.shape, z.shape)
        except ValueError:
            raise ValueError(
                f"binary_cross_entropy_with_logits: pos_weight of shape {pos_weight.shape} does "
                f"not broadcast against the input {z.shape}"
            ) from None
    return fused_kernels.binary_cross_entropy_with_logits(z, y, reduction, pos_weight)


def mse_loss(a: Tensor, b: Tensor | ArrayLike, reduction: str = "mean") -> Tensor:
    """(a − b)² per element, reduced ('mean', 'sum' or 'none').

    Examples:
        >>> from tinybn import Tensor, functional as F
        >>> float(F.mse_loss(Tensor([1.0, 3.0]), Tensor([0.0, 0.0])).data)  # (1 + 9) / 2
        5.0
    """
    _check_reduction(reduction, "mse_loss")
    _check_same_shape(a, b, "mse_loss")
    squares = (a - b) ** 2
    if reduction == "none":
        return squares
    return squares.sum() if reduction == "sum" else squares.mean()


__all__ = [
    "linear",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "group_norm",
    "instance_norm",
    "instance_norm_with_stats",
    "rms_norm",
    "leaky_relu",
    "nll_loss",
    "batch_norm",
    "batch_norm_with_stats",
    "layer_norm",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "dropout",
    "cross_entropy",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "mse_loss",
]
