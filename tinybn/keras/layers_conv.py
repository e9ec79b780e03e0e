"""Keras's image layers as nn modules: Conv2D, MaxPooling2D and Flatten, channels last.

Keras lays a batch of images out as (N, H, W, C); ``nn`` (as PyTorch) as (N, C, H, W). Each
layer here takes and returns Keras's layout and transposes to nn's at its own boundary:
``Conv2D`` holds a ``ChannelsLastConv2d`` (an ``nn.Conv2d`` whose forward permutes in and
out) and its activation, ``MaxPooling2D`` permutes around ``F.max_pool2d``, and
``Flatten`` IS an ``nn.Flatten`` (flattening (H, W, C) in that order is Keras's order
already). ``BatchNormalization`` on (N, H, W, C) lives in ``layers`` with the 2-D case.

Keras's ``padding="same"`` (TensorFlow's rule): the output has ⌈H / stride⌉ rows, and the
P = max((OH − 1)·stride + span − H, 0) padded rows go ⌊P/2⌋ above and the rest below
(span = dilation·(k − 1) + 1); zeros for a convolution, −∞ for max pooling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinybn import conv, nn
from tinybn.keras.layers import (
    _LAYERS,
    FLOATX,
    CustomActivation,
    Layer,
    _activation_module,
    _adopt_weights,
    _check_positive_int,
    _linear,
    _sample_shape,
)
from tinybn.tensor import Tensor

_PADDINGS = ("valid", "same")


def _int_pair(value: Any, name: str) -> tuple[int, int]:
    """An int n (→ (n, n)) or a pair of positive ints, as Keras's kernel_size and strides."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        n = _check_positive_int(value, name)
        return n, n
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _check_positive_int(value[0], name), _check_positive_int(value[1], name)
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


def _check_data_format(value: Any) -> None:
    if value not in (None, "channels_last"):
        raise ValueError(
            f"data_format must be 'channels_last' (or None): tinybn.keras lays images out as "
            f"(N, H, W, C), got {value!r}"
        )


def _padding(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in _PADDINGS:
        raise ValueError(f"padding must be 'valid' or 'same', got {value!r}")
    return value.lower()


def output_size(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    """Keras's output length along one axis: ⌈size / stride⌉ for 'same'; for 'valid'
    ⌊(size − span) / stride⌋ + 1 with span = dilation·(kernel − 1) + 1 (0 if span > size)."""
    if padding == "same":
        return math.ceil(size / stride)
    span = dilation * (kernel - 1) + 1
    return 0 if span > size else (size - span) // stride + 1


def same_pads(
    hw: Sequence[int], kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of Keras's padding='same' for an H×W input (see above)."""
    pads = []
    for size, k, s, d in zip(hw, kernel, stride, dilation):
        total = max((math.ceil(size / s) - 1) * s + d * (k - 1) + 1 - size, 0)
        pads += [total // 2, total - total // 2]
    return pads[0], pads[1], pads[2], pads[3]


def _to_channels_first(x: Tensor) -> Tensor:
    return x.permute(0, 3, 1, 2)


def _to_channels_last(x: Tensor) -> Tensor:
    return x.permute(0, 2, 3, 1)


def _image_batch(x: Any, layer: str) -> Tensor:
    if not isinstance(x, Tensor):
        x = Tensor(np.asarray(x, dtype=FLOATX))
    if x.ndim != 4:
        raise ValueError(
            f"{layer}: expected input of shape (N, H, W, C) (channels last), got {x.ndim}-d "
            f"input of shape {x.shape}"
        )
    return x


class ChannelsLastConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` on (N, H, W, C_in) inputs giving (N, OH, OW, C_out), with Keras's
    'valid' / 'same' padding (zeros, the odd one below and right). The weight keeps nn's
    (C_out, C_in, KH, KW) layout, so ``nn.fold_batchnorm`` folds it as any Conv2d (into a
    channels-last batch norm after it)."""

    channels_last = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        stride: tuple[int, int] = (1, 1),
        padding: str = "valid",
        dilation: tuple[int, int] = (1, 1),
        bias: bool = True,
    ) -> None:
        # nn.Conv2d's random init is replaced by the caller: a fixed throwaway generator
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            0,
            dilation,
            bias=bias,
            rng=np.random.default_rng(0),
        )
        self.keras_padding = _padding(padding)

    def forward(self, x: Any) -> Tensor:
        x = _to_channels_first(_image_batch(x, "ChannelsLastConv2d"))
        if self.keras_padding == "same":
            pads = same_pads(x.shape[2:], self.kernel_size, self.stride, self.dilation)
            x = conv._padded_tensor(x, pads, 0.0)
        y = conv.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return _to_channels_last(y)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, keras_padding={self.keras_padding!r}, channels last"


class Conv2D(Layer, nn.Sequential):
    """2-D convolution on (N, H, W, C) images, as Keras: ``activation(conv(x) + bias)``, as
    ``nn.Sequential(conv=ChannelsLastConv2d(...), activation=...)``.

    Args:
        filters: C_out. kernel_size: int or (kh, kw). strides: int or (sh, sw).
        padding: 'valid' (no padding: OH = ⌊(H − kh)/sh⌋ + 1) or 'same' (OH = ⌈H/sh⌉).
        data_format: 'channels_last' / None only.
        dilation_rate: int or (dh, dw).
        activation: 'relu', 'sigmoid', 'tanh', 'softmax' (over channels), 'linear' / None,
            or a callable. None adds no module: the layer is its convolution alone.
        use_bias: add a bias vector (filters,).
        input_shape: (H, W, C) of one image; needed on the first layer of a model unless
            the model is built from data.
    Weights: kernel (kh, kw, C_in, filters) as Keras lays it out, glorot-uniform:
        U(−l, l), l = √(6 / (fan_in + fan_out)), fan_in = kh·kw·C_in, fan_out = kh·kw·filters;
        bias (filters,), zeros. nn keeps the kernel as conv.weight (filters, C_in, kh, kw).
    Parameters: kh·kw·C_in·filters + filters (Keras's summary count).
    """

    _sample_ndims = (3,)
    _expects = "input of shape (batch, height, width, channels)"

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | tuple[int, int] = (1, 1),
        activation: str | Callable | None = None,
        use_bias: bool = True,
        input_shape: Sequence[int] | None = None,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        _check_data_format(data_format)
        nn.Sequential.__init__(self)
        self._init_layer(name, trainable)
        self.filters = _check_positive_int(filters, "filters")
        self.kernel_size = _int_pair(kernel_size, "kernel_size")
        self.strides = _int_pair(strides, "strides")
        self.padding = _padding(padding)
        self.dilation_rate = _int_pair(dilation_rate, "dilation_rate")
        if self.strides != (1, 1) and self.dilation_rate != (1, 1):
            raise ValueError("strides > 1 together with dilation_rate > 1 is not supported")
        self.activation_name, module = _activation_module(activation)
        object.__setattr__(self, "_activation", module)  # a child once built, after conv
        self.use_bias = bool(use_bias)
        if input_shape is not None:
            shape = _sample_shape(input_shape)
            if len(shape) != 3:
                raise ValueError(
                    f"Conv2D: input_shape must be (height, width, channels), got {tuple(shape)}"
                )
            self.declared_input_shape = shape

    def _output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        out_hw = []
        for size, k, s, d, axis in zip(
            shape[:2], self.kernel_size, self.strides, self.dilation_rate, ("height", "width")
        ):
            n = output_size(size, k, s, self.padding, d)
            if n < 1:
                raise ValueError(
                    f'layer "{self.name}": kernel_size {self.kernel_size} (dilation '
                    f"{self.dilation_rate}) is larger than the input {axis} {size} with "
                    "padding='valid'"
                )
            out_hw.append(n)
        return (out_hw[0], out_hw[1], self.filters)

    def _create_weights(self, input_dim: int, rng: np.random.Generator) -> None:
        kh, kw = self.kernel_size
        fan_in, fan_out = kh * kw * input_dim, kh * kw * self.filters
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        kernel = rng.uniform(-limit, limit, (kh, kw, input_dim, self.filters)).astype(FLOATX)
        layer = ChannelsLastConv2d(
            input_dim,
            self.filters,
            self.kernel_size,
            self.strides,
            self.padding,
            self.dilation_rate,
            bias=self.use_bias,
        )
        _adopt_weights(self, "conv", layer, kernel.transpose(3, 2, 0, 1))

    @property
    def activation(self) -> Callable[[Tensor], Tensor]:
        module = self._modules.get("activation")
        return _linear if module is None else module

    @property
    def kernel(self) -> Tensor | None:
        """The (kh, kw, C_in, filters) kernel: a view of conv.weight (writes go through)."""
        if not self.built:
            return None
        return Tensor(self.conv.weight.data.transpose(2, 3, 1, 0), label=f"{self.name}/kernel")

    @property
    def bias(self) -> Tensor | None:
        return self.conv.bias if self.built else None

    @property
    def weights(self) -> list[Tensor]:
        if not self.built:
            return []
        return [self.conv.weight] + ([self.conv.bias] if self.conv.bias is not None else [])

    def _keras_layout(self, index: int, array: np.ndarray) -> np.ndarray:
        return array.transpose(2, 3, 1, 0) if index == 0 else array  # (out, in, kh, kw) → Keras

    def _nn_layout(self, index: int, array: np.ndarray) -> np.ndarray:
        return array.transpose(3, 2, 0, 1) if index == 0 else array  # (kh, kw, in, out) → nn

    def get_config(self) -> dict[str, Any]:
        if isinstance(self._activation, CustomActivation):
            raise TypeError(
                f'layer "{self.name}": a custom activation cannot be saved as JSON; save the '
                "weights with tb.save(model.state_dict(), path) instead"
            )
        declared = self.declared_input_shape
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
            "activation": self.activation_name,
            "use_bias": self.use_bias,
            "input_shape": None if declared is None else list(declared),
        }

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, filters={self.filters}, kernel_size={self.kernel_size}, "
            f"strides={self.strides}, padding={self.padding!r}, "
            f"activation={self.activation_name!r}"
        )


class MaxPooling2D(Layer):
    """The maximum of each pool_size window of (N, H, W, C) images, channel by channel:
    ``F.max_pool2d`` (as ``nn.MaxPool2d``) with Keras's channels-last layout and padding.

    Args:
        pool_size: int or (ph, pw). strides: int or pair; None (default) = pool_size.
        padding: 'valid' (OH = ⌊(H − ph)/sh⌋ + 1) or 'same' (OH = ⌈H/sh⌉, padded with −∞).
    No weights.
    """

    _sample_ndims = (3,)
    _expects = "input of shape (batch, height, width, channels)"

    def __init__(
        self,
        pool_size: int | tuple[int, int] = (2, 2),
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        data_format: str | None = None,
        name: str | None = None,
    ) -> None:
        _check_data_format(data_format)
        pool = _int_pair(pool_size, "pool_size")
        stride = pool if strides is None else _int_pair(strides, "strides")
        nn.Module.__init__(self)
        self._init_layer(name, True)
        self.pool_size, self.strides, self.padding = pool, stride, _padding(padding)

    def _output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        out_hw = []
        for size, k, s, axis in zip(shape[:2], self.pool_size, self.strides, ("height", "width")):
            n = output_size(size, k, s, self.padding)
            if n < 1:
                raise ValueError(
                    f'layer "{self.name}": pool_size {self.pool_size} is larger than the input '
                    f"{axis} {size} with padding='valid'"
                )
            out_hw.append(n)
        return (out_hw[0], out_hw[1], shape[2])

    def forward(self, x: Any) -> Tensor:
        x = _to_channels_first(_image_batch(x, "MaxPooling2D"))
        if self.padding == "same":
            pads = same_pads(x.shape[2:], self.pool_size, self.strides, (1, 1))
            x = conv._padded_tensor(x, pads, -np.inf)
        return _to_channels_last(conv.max_pool2d(x, self.pool_size, self.strides))

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, pool_size={self.pool_size}, strides={self.strides}, "
            f"padding={self.padding!r}"
        )


class Flatten(Layer, nn.Flatten):
    """(N, H, W, C) → (N, H·W·C), in Keras's (channels-last) order: an ``nn.Flatten``. A
    Dense after it sees the features in the order Keras's does. No weights."""

    def __init__(self, data_format: str | None = None, name: str | None = None) -> None:
        _check_data_format(data_format)
        nn.Flatten.__init__(self)
        self._init_layer(name, True)

    def _output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (int(np.prod(shape)),)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


_LAYERS.update({"Conv2D": Conv2D, "MaxPooling2D": MaxPooling2D, "Flatten": Flatten})

__all__ = ["Conv2D", "MaxPooling2D", "Flatten", "ChannelsLastConv2d", "same_pads", "output_size"]
