"""Convolution, pooling and flattening layers (PyTorch's names, defaults, state_dict keys).

The math is in ``tinybn.conv`` (``F.conv2d``, ``F.max_pool2d``, ``F.avg_pool2d``); these
modules hold the kernels and the options. Exported from ``tinybn.nn``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinybn import conv
from tinybn.nn import Module, Parameter, _as_tensor, _check_int
from tinybn.tensor import Tensor, get_default_dtype

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _batched(x: Tensor, layer: str) -> tuple[Tensor, bool]:
    """(N, C, H, W) as it is, or an unbatched (C, H, W) as a batch of one (and True)."""
    if x.ndim == 3:
        return x.reshape(1, *x.shape), True
    if x.ndim != 4:
        raise ValueError(
            f"{layer}: expected input of shape (N, C, H, W) or (C, H, W), got {x.ndim}-d input "
            f"of shape {x.shape}"
        )
    return x, False


class Conv2d(Module):
    """2-D convolution (cross-correlation) over (N, C_in, H, W) inputs.

    Args:
        in_channels: C_in, divisible by groups.
        out_channels: C_out, divisible by groups.
        kernel_size: int or (h, w).
        stride: int or (h, w).
        dilation: int or (h, w).
        padding: int or (h, w), or 'valid' / 'same' (stride 1).
        groups: channel groups convolved separately (groups = C_in: depthwise).
        bias: learn a bias (C_out,).
        padding_mode: 'zeros', or 'reflect' / 'replicate' / 'circular' copies of the input.
        rng: numpy Generator for the initial weights (a fresh unseeded one if None).
    Shapes: weight (C_out, C_in/groups, KH, KW); bias (C_out,); y (N, C_out, OH, OW) with
    OH = ⌊(H + 2·padding − dilation·(KH − 1) − 1)/stride⌋ + 1.
    Init (PyTorch's, kaiming_uniform with a=√5): weight and bias ~ U(−1/√fan_in, 1/√fan_in),
    fan_in = C_in/groups·KH·KW.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, nn
        >>> conv = nn.Conv2d(1, 4, kernel_size=3, padding=1)
        >>> tuple(conv.weight.shape)
        (4, 1, 3, 3)
        >>> conv(Tensor(np.zeros((2, 1, 8, 8), dtype=np.float32))).shape  # padding 1 keeps 8 × 8
        (2, 4, 8, 8)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = _check_int(in_channels, "Conv2d: in_channels", 1)
        self.out_channels = _check_int(out_channels, "Conv2d: out_channels", 1)
        self.groups = _check_int(groups, "Conv2d: groups", 1)
        if in_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) must be divisible by groups")
        if out_channels % groups:
            raise ValueError(f"Conv2d: out_channels ({out_channels}) must be divisible by groups")
        self.kernel_size = conv._pair(kernel_size, "Conv2d: kernel_size", 1)
        self.stride = conv._pair(stride, "Conv2d: stride", 1)
        self.dilation = conv._pair(dilation, "Conv2d: dilation", 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"Conv2d: padding must be 'valid', 'same' or ints, got {padding!r}"
                )
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("Conv2d: padding='same' is not supported for strided convolutions")
            self.padding: Any = padding
        else:
            self.padding = conv._pair(padding, "Conv2d: padding", 0)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"Conv2d: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}"
            )
        self.padding_mode = padding_mode
        rng = rng if rng is not None else np.random.default_rng()
        dtype = get_default_dtype()
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=√5): gain·√(3/fan_in) = 1/√fan_in
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(rng.uniform(-bound, bound, size=shape).astype(dtype))
        if bias:
            self.bias = Parameter(rng.uniform(-bound, bound, size=out_channels).astype(dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        x, unbatched = _batched(_as_tensor(x, "Conv2d"), "Conv2d")
        padding = self.padding
        if self.padding_mode != "zeros":
            pads = conv._conv_padding(padding, self.kernel_size, self.stride, self.dilation)
            x, padding = conv.pad2d(x, pads, self.padding_mode), 0
        y = conv.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)
        return y.reshape(y.shape[1:]) if unbatched else y

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


class MaxPool2d(Module):
    """The maximum of each window: (N, C, H, W) → (N, C, OH, OW) (see ``F.max_pool2d``).

    Args:
        kernel_size: int or (h, w); stride: defaults to kernel_size; padding: at most half
            the kernel, counted as −∞; dilation; ceil_mode: round the output size up.
        return_indices: not supported (False only).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, nn
        >>> x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
        >>> nn.MaxPool2d(2)(x).data
        array([[[[ 5.,  7.],
                 [13., 15.]]]])
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        if return_indices:
            raise ValueError("MaxPool2d: return_indices=True is not supported by tinybn")
        conv._pair(kernel_size, "MaxPool2d: kernel_size", 1)
        if stride is not None:
            conv._pair(stride, "MaxPool2d: stride", 1)
        conv._pair(padding, "MaxPool2d: padding", 0)
        conv._pair(dilation, "MaxPool2d: dilation", 1)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode

    def forward(self, x: Any) -> Tensor:
        x, unbatched = _batched(_as_tensor(x, "MaxPool2d"), "MaxPool2d")
        y = conv.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )
        return y.reshape(y.shape[1:]) if unbatched else y

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """The mean of each window: (N, C, H, W) → (N, C, OH, OW) (see ``F.avg_pool2d``).

    Args:
        kernel_size, stride (default kernel_size), padding (zeros, at most half the
        kernel), ceil_mode, count_include_pad (the zeros count in the divisor),
        divisor_override (a fixed divisor).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, nn
        >>> nn.AvgPool2d(2)(Tensor(np.arange(16.0).reshape(1, 1, 4, 4))).data
        array([[[[ 2.5,  4.5],
                 [10.5, 12.5]]]])
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        conv._pair(kernel_size, "AvgPool2d: kernel_size", 1)
        if stride is not None:
            conv._pair(stride, "AvgPool2d: stride", 1)
        conv._pair(padding, "AvgPool2d: padding", 0)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: Any) -> Tensor:
        x, unbatched = _batched(_as_tensor(x, "AvgPool2d"), "AvgPool2d")
        y = conv.avg_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )
        return y.reshape(y.shape[1:]) if unbatched else y

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Flatten(Module):
    """Axes start_dim … end_dim merged into one: (N, C, H, W) → (N, C·H·W) by default.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, nn
        >>> nn.Flatten()(Tensor(np.zeros((2, 3, 4, 4)))).shape
        (2, 48)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = _check_int(start_dim, "Flatten: start_dim", -(2**31))
        self.end_dim = _check_int(end_dim, "Flatten: end_dim", -(2**31))

    def forward(self, x: Any) -> Tensor:
        x = _as_tensor(x, "Flatten")
        ndim = max(x.ndim, 1)
        start, end = self.start_dim, self.end_dim
        if not (-ndim <= start < ndim and -ndim <= end < ndim):
            raise ValueError(
                f"Flatten: start_dim={start}, end_dim={end} out of range for input of shape "
                f"{x.shape}"
            )
        start, end = start % ndim, end % ndim
        if start > end:
            raise ValueError(
                f"Flatten: start_dim={self.start_dim} comes after end_dim={self.end_dim}"
            )
        if x.ndim == 0:
            return x.reshape(1)
        shape = x.shape[:start] + (-1,) + x.shape[end + 1 :]
        if 0 in x.shape:
            shape = x.shape[:start] + (int(np.prod(x.shape[start : end + 1])),) + x.shape[end + 1 :]
        return x.reshape(shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
