"""Convolution and pooling on Tensors: the windows copied into one matrix, then one matmul.

    conv2d:  y[n, o, i, j] = b[o] + Σ_{c, p, q} w[o, c, p, q] · x̃[n, c, i·s + p·d, j·s + q·d]

with x̃ the zero-padded input, s the stride and d the dilation (per axis), and with groups
the input channels c running only over the group of o. For each kernel offset (p, q) the
values it reads, x̃[:, :, p·d + s·i, q·d + s·j], are one strided slice of x̃; copied one
offset at a time into a matrix with rows (c, p, q) and columns (n, i, j) — "im2col" — the
whole sum is one matrix product with the kernels (C_out × C_in·KH·KW). The backward pass
is two more products (dW = dY·colsᵀ, dcols = Wᵀ·dY) and "col2im": each offset adds its
rows of dcols back onto the slice it read, KH·KW strided additions.

Pooling reads the same slices: max_pool2d keeps a running maximum over the offsets and
routes the grad to each window's maximum (the first at ties, as PyTorch), avg_pool2d
spreads it evenly over the window.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from tinybn.tensor import Tensor, _graph_mode, _shape_str, _through_composed, concatenate, stack

# -- arguments ------------------------------------------------------------------------


def _pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum (ValueError naming ``name`` otherwise)."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in pair
    ):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in pair):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_input(x: Any, op: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(
            f"{op}: expected input of shape (N, C, H, W), got {x.ndim}-d input of shape "
            f"{_shape_str(x.shape)}"
        )
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got dtype {x.dtype}")
    return x


def _output_size(size: int, kernel: int, stride: int, dilation: int, pad: int, op: str) -> int:
    """Positions of a kernel spanning dilation·(kernel − 1) + 1 over size + pad values."""
    span = dilation * (kernel - 1) + 1
    if size + pad < span:
        raise ValueError(
            f"{op}: kernel size {kernel} (dilation {dilation}, spanning {span}) is larger than "
            f"the padded input size {size + pad}"
        )
    return (size + pad - span) // stride + 1


def _window_slices(kernel: tuple, stride: tuple, dilation: tuple, out_hw: tuple) -> list:
    """For each kernel offset (p, q), in row-major order: the (rows, columns) slices of the
    padded input that offset reads at every output position."""
    slices = []
    for p in range(kernel[0]):
        top = p * dilation[0]
        rows = slice(top, top + stride[0] * (out_hw[0] - 1) + 1, stride[0])
        for q in range(kernel[1]):
            left = q * dilation[1]
            slices.append((rows, slice(left, left + stride[1] * (out_hw[1] - 1) + 1, stride[1])))
    return slices


def _padded(data: np.ndarray, pads: tuple[int, int, int, int], value: float) -> np.ndarray:
    """data (N, C, H, W) with (top, bottom, left, right) rows/columns of ``value`` around."""
    if not any(pads):
        return data
    top, bottom, left, right = pads
    return np.pad(data, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _unpadded(dxp: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = pads
    return dxp[:, :, top : dxp.shape[2] - bottom, left : dxp.shape[3] - right]


def _padded_tensor(x: Tensor, pads: tuple[int, int, int, int], value: float) -> Tensor:
    """``_padded`` in Tensor ops (constant rows and columns concatenated around x)."""
    top, bottom, left, right = pads

    def constant(shape: tuple[int, ...]) -> Tensor:
        return Tensor(np.full(shape, value, dtype=x.dtype))

    n, c, h, w = x.shape
    if top or bottom:
        x = concatenate([constant((n, c, top, w)), x, constant((n, c, bottom, w))], axis=2)
    if left or right:
        h = x.shape[2]
        x = concatenate([constant((n, c, h, left)), x, constant((n, c, h, right))], axis=3)
    return x


def _windows(x: Tensor, pads: tuple, value: float, slices: list) -> Tensor:
    """(N, C, K, OH, OW): what each of the K kernel offsets reads, in Tensor ops (the
    composed sources below, used when a graph of the gradient is wanted)."""
    padded = _padded_tensor(x, pads, value)
    return stack([padded[:, :, rows, columns] for rows, columns in slices], axis=2)


# -- conv2d ---------------------------------------------------------------------------


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation, as PyTorch's ``F.conv2d``.

    Args:
        x: (N, C_in, H, W).
        weight: (C_out, C_in / groups, KH, KW).
        bias: (C_out,) or None.
        stride, dilation: int or (h, w), >= 1.
        padding: int or (h, w) zeros on each side, or 'valid' (none) or 'same' (output
            size = input size; stride 1 only; an odd total puts the extra row at the end).
        groups: split the channels into this many groups, each convolved separately.
    Returns:
        (N, C_out, OH, OW), OH = ⌊(H + 2·pad − dilation·(KH − 1) − 1) / stride⌋ + 1.
    """
    x = _check_input(x, "conv2d")
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        raise ValueError(
            f"conv2d: weight must be a 4-d Tensor (C_out, C_in/groups, KH, KW), got "
            f"{getattr(weight, 'shape', type(weight).__name__)}"
        )
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"conv2d: groups must be an int >= 1, got {groups!r}")
    stride = _pair(stride, "conv2d: stride", 1)
    dilation = _pair(dilation, "conv2d: dilation", 1)
    n, c_in, h, w = x.shape
    c_out, c_group, kh, kw = weight.shape
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"conv2d: groups={groups} must divide both the input channels ({c_in}) and the "
            f"output channels ({c_out})"
        )
    if c_group * groups != c_in:
        raise ValueError(
            f"conv2d: input of shape {_shape_str(x.shape)} has {c_in} channels, but weight of "
            f"shape {_shape_str(weight.shape)} expects {c_group * groups} (C_in/groups = "
            f"{c_group}, groups = {groups})"
        )
    if bias is not None and (not isinstance(bias, Tensor) or bias.shape != (c_out,)):
        raise ValueError(
            f"conv2d: bias must be a Tensor of shape ({c_out},), got "
            f"{getattr(bias, 'shape', type(bias).__name__)}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"conv2d: input is {x.dtype} but {name} is {t.dtype}")
    pads = _conv_padding(padding, (kh, kw), stride, dilation)
    out_h = _output_size(h, kh, stride[0], dilation[0], pads[0] + pads[1], "conv2d")
    out_w = _output_size(w, kw, stride[1], dilation[1], pads[2] + pads[3], "conv2d")
    xp = _padded(x.data, pads, 0.0)
    # im2col, transposed: cols[c, p, q, n, i, j] = x̃[n, c, i·s + p·d, j·s + q·d], one strided
    # copy per kernel offset (each copies whole rows of output positions)
    cols = np.empty((c_in, kh, kw, n, out_h, out_w), dtype=x.dtype)
    for (p, q), (rows, columns) in zip(
        np.ndindex(kh, kw), _window_slices((kh, kw), stride, dilation, (out_h, out_w))
    ):
        cols[:, p, q] = xp[:, :, rows, columns].transpose(1, 0, 2, 3)
    cols = cols.reshape(groups, c_group * kh * kw, n * out_h * out_w)
    kernels = weight.data.reshape(groups, c_out // groups, -1)
    out = np.matmul(kernels, cols)  # (G, C_out/G, N·OH·OW): the one product per group
    # (C_out, N, OH, OW) → (N, C_out, OH, OW): a copy of whole OH·OW planes
    out = out.reshape(c_out, n, out_h, out_w).transpose(1, 0, 2, 3)
    if bias is not None:
        out = out + bias.data[:, None, None]  # also makes it contiguous, as the next line
    out = np.ascontiguousarray(out)
    parents = (x, weight) if bias is None else (x, weight, bias)
    saved = (cols, xp.shape, pads, stride, dilation, groups)
    return x._make(out, parents, "conv2d", _conv2d_backward, saved)


def _conv_padding(padding: Any, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """(top, bottom, left, right) from PyTorch's padding argument."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"conv2d: padding must be 'valid', 'same' or ints, got {padding!r}")
        if stride != (1, 1):
            raise ValueError("conv2d: padding='same' is not supported for strided convolutions")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
    ph, pw = _pair(padding, "conv2d: padding", 0)
    return (ph, ph, pw, pw)


def _conv2d_composed(out: Tensor) -> Any:
    """conv2d in Tensor ops: the windows stacked, one (batched) matmul with the kernels."""
    _, _, pads, stride, dilation, groups = out._saved
    n, c_out, out_h, out_w = out.shape

    def composed(x: Tensor, weight: Tensor, *bias: Tensor) -> Tensor:
        c_group, kh, kw = weight.shape[1:]
        slices = _window_slices((kh, kw), stride, dilation, (out_h, out_w))
        patches = _windows(x, pads, 0.0, slices)  # rows (c, p, q) as the kernels' columns
        patches = patches.reshape(n, groups, c_group * kh * kw, out_h * out_w)
        kernels = weight.reshape(groups, c_out // groups, c_group * kh * kw)
        y = (kernels @ patches).reshape(n, c_out, out_h, out_w)
        return y + bias[0].reshape(1, c_out, 1, 1) if bias else y

    return composed


def _conv2d_backward(out: Tensor, grad: np.ndarray) -> tuple:
    if _graph_mode(grad):
        return _through_composed(out, grad, _conv2d_composed(out))
    cols, padded_shape, pads, stride, dilation, groups = out._saved
    x, weight = out._parents[:2]
    n, c_out, out_h, out_w = grad.shape
    c_group, kh, kw = weight.shape[1:]
    # dY as (G, C_out/G, N·OH·OW), the layout of the forward product (a copy of planes)
    dy = np.ascontiguousarray(grad.transpose(1, 0, 2, 3)).reshape(groups, c_out // groups, -1)
    dweight = dx = dbias = None
    if weight.requires_grad:  # dW = dY · colsᵀ
        dweight = np.matmul(dy, cols.transpose(0, 2, 1)).reshape(weight.shape)
    if x.requires_grad:  # dcols = Wᵀ · dY, then col2im: each offset adds back what it read
        kernels = weight.data.reshape(groups, c_out // groups, -1)
        dcols = np.matmul(kernels.transpose(0, 2, 1), dy)  # (G, Cg·KH·KW, N·OH·OW)
        dcols = dcols.reshape(groups * c_group, kh, kw, n, out_h, out_w)
        dxp = np.zeros(padded_shape, dtype=grad.dtype)
        slices = _window_slices((kh, kw), stride, dilation, (out_h, out_w))
        for (p, q), (rows, columns) in zip(np.ndindex(kh, kw), slices):
            dxp[:, :, rows, columns] += dcols[:, p, q].transpose(1, 0, 2, 3)
        dx = _unpadded(dxp, pads)
    if len(out._parents) == 3 and out._parents[2].requires_grad:
        dbias = grad.sum(axis=(0, 2, 3))
    return (dx, dweight) if len(out._parents) == 2 else (dx, dweight, dbias)


# -- pooling ----------------------------------------------------------------------------


def _pool_setup(
    x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool, op: str
) -> tuple:
    """Checked pooling arguments and the output size; the ceil-mode overhang as extra pads."""
    x = _check_input(x, op)
    kernel = _pair(kernel_size, f"{op}: kernel_size", 1)
    stride = kernel if stride is None else _pair(stride, f"{op}: stride", 1)
    pad = _pair(padding, f"{op}: padding", 0)
    dilation = _pair(dilation, f"{op}: dilation", 1)
    if any(p > k // 2 for p, k in zip(pad, kernel)):
        raise ValueError(
            f"{op}: padding {pad} must be at most half the kernel size {kernel} (PyTorch's rule)"
        )
    out_hw, extra = [], []
    for size, k, s, p, d in zip(x.shape[2:], kernel, stride, pad, dilation):
        span = d * (k - 1) + 1
        if size + 2 * p < span:
            raise ValueError(
                f"{op}: kernel size {k} (dilation {d}, spanning {span}) is larger than the "
                f"padded input size {size + 2 * p}"
            )
        if ceil_mode:
            count = math.ceil((size + 2 * p - span) / s) + 1
            if (count - 1) * s >= size + p:  # the last window must start inside the input
                count -= 1
        else:
            count = (size + 2 * p - span) // s + 1
        out_hw.append(count)
        extra.append(max(0, (count - 1) * s + span - (size + 2 * p)))
    pads = (pad[0], pad[0] + extra[0], pad[1], pad[1] + extra[1])
    return x, kernel, stride, dilation, pads, tuple(out_hw), pad


def max_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
) -> Tensor:
    """The maximum of each (dilated) window, as PyTorch's ``F.max_pool2d``.

    x (N, C, H, W) → (N, C, OH, OW); stride defaults to kernel_size; padding (at most half
    the kernel) counts as −∞. The grad goes to the window's maximum, the first at ties.
    """
    x, kernel, stride, dilation, pads, out_hw, _ = _pool_setup(
        x, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d"
    )
    xp = _padded(x.data, pads, -np.inf)
    slices = _window_slices(kernel, stride, dilation, out_hw)  # type: ignore[arg-type]
    data = xp[:, :, slices[0][0], slices[0][1]].copy()
    # which offset holds each window's maximum (a byte each for kernels up to 15×15)
    argmax = np.zeros(data.shape, dtype=np.uint8 if len(slices) < 256 else np.intp)
    for k, (rows, columns) in enumerate(slices[1:], start=1):
        window = xp[:, :, rows, columns]
        larger = window > data  # strictly: the first maximum keeps a tie, as PyTorch
        np.copyto(data, window, where=larger)
        np.copyto(argmax, k, where=larger)
    saved = (argmax, xp.shape, pads, slices)
    return x._make(data, (x,), "max_pool2d", _max_pool2d_backward, saved)


def _max_pool2d_backward(out: Tensor, grad: np.ndarray) -> tuple:
    if _graph_mode(grad):  # composed: the max over the stacked windows (ties share the grad)
        _, _, pads, slices = out._saved
        return _through_composed(out, grad, lambda x: _windows(x, pads, -np.inf, slices).max(2))
    argmax, padded_shape, pads, slices = out._saved
    dxp = np.zeros(padded_shape, dtype=grad.dtype)
    for k, (rows, columns) in enumerate(slices):
        dxp[:, :, rows, columns] += np.where(argmax == k, grad, 0)
    return (_unpadded(dxp, pads),)


def avg_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """The mean of each window, as PyTorch's ``F.avg_pool2d``.

    x (N, C, H, W) → (N, C, OH, OW). The divisor is the window's size counting the zero
    padding (count_include_pad) or only the input values, but never a ceil-mode overhang
    past the padding; ``divisor_override`` replaces it.
    """
    x, kernel, stride, dilation, pads, out_hw, pad = _pool_setup(
        x, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d"
    )
    if divisor_override is not None and (
        isinstance(divisor_override, bool)
        or not isinstance(divisor_override, (int, np.integer))
        or divisor_override < 1
    ):
        raise ValueError(
            f"avg_pool2d: divisor_override must be an int >= 1, got {divisor_override}"
        )
    xp = _padded(x.data, pads, 0.0)
    slices = _window_slices(kernel, stride, dilation, out_hw)  # type: ignore[arg-type]
    sums = np.zeros(x.shape[:2] + out_hw, dtype=x.dtype)
    for rows, columns in slices:
        sums += xp[:, :, rows, columns]
    if divisor_override is not None:
        divisor = np.asarray(float(divisor_override))
    else:  # window sums of a map of the values that count: 1 inside, 0 in the overhang
        h, w = x.shape[2:]
        counted = np.zeros(xp.shape[2:])
        if count_include_pad:
            counted[: h + 2 * pad[0], : w + 2 * pad[1]] = 1
        else:
            counted[pad[0] : pad[0] + h, pad[1] : pad[1] + w] = 1
        divisor = sum(counted[rows, columns] for rows, columns in slices)
    data = (sums / divisor).astype(x.dtype)
    saved = (divisor, xp.shape, pads, slices)
    return x._make(data, (x,), "avg_pool2d", _avg_pool2d_backward, saved)


def _avg_pool2d_backward(out: Tensor, grad: np.ndarray) -> tuple:
    divisor, padded_shape, pads, slices = out._saved
    if _graph_mode(grad):  # composed: the stacked windows summed, over the divisor

        def composed(x: Tensor) -> Tensor:
            return _windows(x, pads, 0.0, slices).sum(axis=2) / divisor.astype(x.dtype)

        return _through_composed(out, grad, composed)
    share = (grad / divisor).astype(grad.dtype)
    dxp = np.zeros(padded_shape, dtype=grad.dtype)
    for rows, columns in slices:
        dxp[:, :, rows, columns] += share
    return (_unpadded(dxp, pads),)


# -- padding with copies of the input (Conv2d's padding_mode) -------------------------------

_NUMPY_PAD_MODES: dict[str, Literal["reflect", "edge", "wrap"]] = {
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
}


def pad2d(x: Tensor, pads: tuple[int, int, int, int], mode: str) -> Tensor:
    """x (N, C, H, W) padded by (top, bottom, left, right) with 'reflect' (mirror without
    the edge), 'replicate' (the edge repeated) or 'circular' (wrapped around) values.

    Each padded position reads one input position (an index map); the backward pass adds
    the grad of every position that read an input value onto it.
    """
    if mode not in _NUMPY_PAD_MODES:
        raise ValueError(f"pad2d: mode must be 'reflect', 'replicate' or 'circular', got {mode!r}")
    n, c, h, w = x.shape
    top, bottom, left, right = pads
    for size, before, after, axis in ((h, top, bottom, "height"), (w, left, right, "width")):
        limit = size - 1 if mode == "reflect" else size if mode == "circular" else None
        if limit is not None and max(before, after) > limit:
            raise ValueError(
                f"pad2d: {mode} padding of {max(before, after)} is too large for input {axis} "
                f"{size} (at most {limit})"
            )
    index = np.pad(
        np.arange(h * w).reshape(h, w), ((top, bottom), (left, right)), _NUMPY_PAD_MODES[mode]
    )
    data = x.data.reshape(n, c, h * w)[:, :, index]
    return x._make(data, (x,), f"pad {mode}", _pad2d_backward, index)


def _pad2d_backward(out: Tensor, grad: np.ndarray) -> tuple:
    (x,), index = out._parents, out._saved
    if _graph_mode(grad):  # composed: the same index map, read by the index op
        n, c, h, w = x.shape
        return _through_composed(out, grad, lambda x: x.reshape(n, c, h * w)[:, :, index])
    n, c, h, w = x.shape
    rows = grad.reshape(n * c, -1)
    dx = np.zeros((n * c, h * w), dtype=grad.dtype)
    np.add.at(dx, (slice(None), index.reshape(-1)), rows)  # type: ignore[arg-type]
    return (dx.reshape(x.shape),)
