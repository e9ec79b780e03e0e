"""A bridge to PyTorch: ``to_torch(model)`` and ``from_torch(module)``.

Both build the equivalent model layer by layer, with copies of every parameter and
buffer (running statistics included), the same ``requires_grad`` flags and the same train
or eval mode, so the two give the same outputs. The layers both frameworks have:
Sequential, Linear, Conv2d, MaxPool2d, AvgPool2d, Flatten, BatchNorm1d, BatchNorm2d,
LayerNorm, Dropout, ReLU, Sigmoid, Tanh, Softmax and Identity. A ``tinybn.keras`` model
converts through the nn layers it is made of (a Keras ``BatchNormalization`` becomes a
``torch.nn.BatchNorm1d`` with momentum 1 − Keras's). Keras's image layers work on
channels-last (N, H, W, C) batches; they become subclasses of torch's Conv2d, MaxPool2d and
BatchNorm2d, made here, that permute to channels first and back around torch's forward
(and pad as Keras's padding='same'), so the torch model takes the same (N, H, W, C) input
and has the same state_dict keys. ``from_torch`` always returns plain ``tinybn.nn``
modules (and refuses those channels-last subclasses).

torch is imported inside these functions only: importing tinybn never imports it.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections import OrderedDict
from typing import Any, cast

import numpy as np

from tinybn import keras, nn
from tinybn.keras.layers_conv import ChannelsLastConv2d, same_pads

_SUPPORTED = (
    "Sequential, Linear, Conv2d, MaxPool2d, AvgPool2d, Flatten, BatchNorm1d, BatchNorm2d, "
    "LayerNorm, Dropout, ReLU, Sigmoid, Tanh, Softmax, Identity"
)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(
            "tinybn.interop needs PyTorch: pip install torch (tinybn itself does not)"
        ) from None
    return torch


def _unsupported(module: Any, direction: str) -> TypeError:
    return TypeError(
        f"{direction}: cannot convert a {type(module).__module__}.{type(module).__name__}; "
        f"the layers both frameworks have are {_SUPPORTED}"
    )


# -- tinybn → torch --------------------------------------------------------------------------


def to_torch(model: nn.Module) -> Any:
    """The ``torch.nn`` module equivalent to a tinybn ``nn`` (or ``keras``) model.

    Parameters and buffers are copied (same dtype), ``requires_grad`` and each module's
    train/eval mode carried over; children keep their names, so the two state_dicts have
    the same keys. Raises TypeError naming the first module type it cannot convert.

    A Keras BatchNormalization becomes torch's BatchNorm1d with momentum 1 − Keras's
    momentum: eval outputs agree exactly, but further training in torch updates
    running_var with PyTorch's unbiased variance, and refuses a training batch of one.

    Examples:
        >>> from tinybn import nn
        >>> from tinybn.interop import to_torch
        >>> model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
        >>> torch_model = to_torch(model)  # needs torch; the same weights and running statistics
        >>> type(torch_model[1]).__name__
        'BatchNorm1d'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"to_torch expects a tinybn nn.Module, got {type(model).__name__}")
    torch = _torch()
    with torch.no_grad():
        return _to_torch(model, torch)


def _parameter(torch: Any, tensor: Any) -> Any:
    return torch.nn.Parameter(
        torch.from_numpy(np.array(tensor.data)), requires_grad=tensor.requires_grad
    )


def _buffer(torch: Any, tensor: Any) -> Any:
    return torch.from_numpy(np.array(tensor.data))


def _to_torch(module: Any, torch: Any) -> Any:
    tnn = torch.nn
    kind = type(module)
    if isinstance(module, (keras.Layer, keras.Sequential)) and not module.built:
        raise ValueError(
            f"to_torch: the Keras layer {module.name!r} is not built yet (its input width is "
            "unknown); build the model first (input_dim=, build((None, d)), fit or predict)"
        )
    if isinstance(module, nn.Sequential) and kind.forward is nn.Sequential.forward:
        # nn.Sequential, and the Keras containers built on it (Sequential, Dense, Activation)
        out = tnn.Sequential(
            OrderedDict((name, _to_torch(child, torch)) for name, child in module.named_children())
        )
    elif kind is nn.Linear:
        out = tnn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
        out.weight = _parameter(torch, module.weight)
        if module.bias is not None:
            out.bias = _parameter(torch, module.bias)
    elif kind is nn.Conv2d:
        out = _conv_to_torch(module, torch, tnn.Conv2d, module.padding, module.padding_mode)
    elif kind is ChannelsLastConv2d:
        out = _conv_to_torch(module, torch, _channels_last(torch)["conv"], 0, "zeros")
        out.keras_padding = module.keras_padding
    elif kind is nn.MaxPool2d:
        out = tnn.MaxPool2d(
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            False,
            module.ceil_mode,
        )
    elif kind is keras.MaxPooling2D:
        out = _channels_last(torch)["max_pool"](module.pool_size, module.strides)
        out.keras_padding = module.padding
    elif kind is nn.AvgPool2d:
        out = tnn.AvgPool2d(
            module.kernel_size,
            module.stride,
            module.padding,
            module.ceil_mode,
            module.count_include_pad,
            module.divisor_override,
        )
    elif kind in (nn.Flatten, keras.Flatten):
        out = tnn.Flatten(module.start_dim, module.end_dim)
    elif kind in (nn.BatchNorm1d, nn.BatchNorm2d, keras.BatchNormalization):
        out = _batch_norm_to_torch(module, torch)
    elif kind is nn.LayerNorm:
        out = tnn.LayerNorm(
            module.normalized_shape,
            eps=module.eps,
            elementwise_affine=module.elementwise_affine,
            bias=module.bias is not None,
        )
        for name in ("weight", "bias"):
            if getattr(module, name) is not None:
                setattr(out, name, _parameter(torch, getattr(module, name)))
    elif kind in (nn.Dropout, keras.Dropout):
        out = tnn.Dropout(module.p)
    elif kind in (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Identity):
        out = getattr(tnn, kind.__name__)()
    elif kind is nn.Softmax:
        out = tnn.Softmax(dim=module.dim)
    else:
        raise _unsupported(module, "to_torch")
    # this module's mode only (torch's train() would reset the children's too); a frozen
    # Keras BN runs as in inference whatever its mode, as torch's BN does in eval
    frozen = isinstance(module, keras.BatchNormalization) and not module.trainable
    out.training = module.training and not frozen
    return out


@functools.cache
def _channels_last(torch: Any) -> dict[str, type]:
    """torch layers for Keras's channels-last image layers: torch's own, with a forward
    that permutes (N, H, W, C) to (N, C, H, W) and back, and pads as Keras's 'same'.
    Made once per torch module (torch is imported only when asked for)."""
    tnn, functional = torch.nn, torch.nn.functional
    conv_base: Any = tnn.Conv2d
    pool_base: Any = tnn.MaxPool2d
    norm_base: Any = tnn.BatchNorm2d

    def keras_pad(layer: Any, x: Any, kernel: Any, stride: Any, dilation: Any, value: float):
        if layer.keras_padding != "same":
            return x
        top, bottom, left, right = same_pads(x.shape[2:], kernel, stride, dilation)
        return functional.pad(x, (left, right, top, bottom), value=value)

    class ChannelsLastConv2d(conv_base):
        keras_padding = "valid"

        def forward(self, x: Any) -> Any:
            x = keras_pad(
                self, x.permute(0, 3, 1, 2), self.kernel_size, self.stride, self.dilation, 0.0
            )
            return super().forward(x).permute(0, 2, 3, 1)

    class ChannelsLastMaxPool2d(pool_base):
        keras_padding = "valid"

        def forward(self, x: Any) -> Any:
            x = keras_pad(
                self, x.permute(0, 3, 1, 2), self.kernel_size, self.stride, (1, 1), -math.inf
            )
            return super().forward(x).permute(0, 2, 3, 1)

    class ChannelsLastBatchNorm2d(norm_base):
        def forward(self, x: Any) -> Any:
            return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    return {
        "conv": ChannelsLastConv2d,
        "max_pool": ChannelsLastMaxPool2d,
        "batch_norm": ChannelsLastBatchNorm2d,
    }


def _conv_to_torch(module: Any, torch: Any, kind: type, padding: Any, padding_mode: str) -> Any:
    out = kind(
        module.in_channels,
        module.out_channels,
        module.kernel_size,
        stride=module.stride,
        padding=padding,
        dilation=module.dilation,
        groups=module.groups,
        bias=module.bias is not None,
        padding_mode=padding_mode,
    )
    out.weight = _parameter(torch, module.weight)
    if module.bias is not None:
        out.bias = _parameter(torch, module.bias)
    return out


def _batch_norm_to_torch(module: Any, torch: Any) -> Any:
    has_affine = module.weight is not None or module.bias is not None
    momentum = module.momentum
    kind = torch.nn.BatchNorm2d if isinstance(module, nn.BatchNorm2d) else torch.nn.BatchNorm1d
    if isinstance(module, keras.BatchNormalization):
        # Keras weighs the old value (never None), PyTorch the new one
        momentum = 1.0 - cast(float, module.momentum)
        if module.input_shape is not None and len(module.input_shape) == 4:  # (N, H, W, C)
            kind = _channels_last(torch)["batch_norm"]
    options: dict[str, Any] = {}
    if module.weight is not None and module.bias is None and _has_bias_option(torch):
        options["bias"] = False  # PyTorch ≥ 2.13's BatchNorm(bias=False), as nn's
    out = kind(
        module.num_features,
        eps=module.eps,
        momentum=momentum,
        affine=has_affine,
        track_running_stats=module.track_running_stats,
        **options,
    )
    if has_affine:
        # a γ or β that only one side has (Keras's scale=False or center=False, or β on an
        # older PyTorch) is held fixed at 1 or 0 on the torch side
        for name in ("weight", "bias"):
            tensor = getattr(module, name)
            if tensor is not None:
                setattr(out, name, _parameter(torch, tensor))
            elif getattr(out, name) is not None:
                getattr(out, name).requires_grad_(False)
    if module.track_running_stats:
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            setattr(out, name, _buffer(torch, getattr(module, name)))
    return out


def _has_bias_option(torch: Any) -> bool:
    return "bias" in inspect.signature(torch.nn.BatchNorm1d.__init__).parameters


# -- torch → tinybn --------------------------------------------------------------------------


def from_torch(module: Any) -> nn.Module:
    """The ``tinybn.nn`` module equivalent to a ``torch.nn`` one (the reverse of ``to_torch``).

    Parameters and buffers become numpy arrays of the same dtype; ``requires_grad`` and
    each module's train/eval mode carry over. Only the exact layer classes listed in the
    module docstring convert (a subclass may compute something else): anything else raises
    TypeError naming its type.

    Examples:
        >>> import torch
        >>> from tinybn.interop import from_torch
        >>> model = from_torch(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)))
        >>> [type(layer).__name__ for layer in model]
        ['Linear', 'BatchNorm1d']
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch expects a torch.nn.Module, got {type(module).__name__}")
    with torch.no_grad():
        return _from_torch(module, torch)


def _array(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()


def _load(target: nn.Module, source: Any) -> None:
    """Copy source's parameters (with requires_grad) and buffers into target, by name."""
    for name, param in source.named_parameters(recurse=False):
        mine = getattr(target, name)
        mine.data = _array(param)
        mine.requires_grad = param.requires_grad
    for name, buffer in source.named_buffers(recurse=False):
        if getattr(target, name, None) is not None:
            getattr(target, name).data = _array(buffer)


def _from_torch(module: Any, torch: Any) -> nn.Module:
    tnn = torch.nn
    kind = type(module)
    out: nn.Module
    if kind is tnn.Sequential:
        out = nn.Sequential()
        for name, child in module.named_children():
            out.add_module(name, _from_torch(child, torch))
    elif kind is tnn.Linear:
        # the throwaway generator: nn.Linear's random init is overwritten at once
        out = nn.Linear(
            module.in_features,
            module.out_features,
            bias=module.bias is not None,
            rng=np.random.default_rng(0),
        )
    elif kind is tnn.Conv2d:
        out = nn.Conv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            module.groups,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
            rng=np.random.default_rng(0),  # overwritten at once, as Linear's
        )
    elif kind is tnn.MaxPool2d:
        if module.return_indices:
            raise ValueError("from_torch: MaxPool2d(return_indices=True) is not supported")
        out = nn.MaxPool2d(
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            ceil_mode=module.ceil_mode,
        )
    elif kind is tnn.AvgPool2d:
        out = nn.AvgPool2d(
            module.kernel_size,
            module.stride,
            module.padding,
            module.ceil_mode,
            module.count_include_pad,
            module.divisor_override,
        )
    elif kind is tnn.Flatten:
        out = nn.Flatten(module.start_dim, module.end_dim)
    elif kind in (tnn.BatchNorm1d, tnn.BatchNorm2d):
        out = getattr(nn, kind.__name__)(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
            bias=module.bias is not None or not module.affine,
        )
    elif kind is tnn.LayerNorm:
        out = nn.LayerNorm(
            tuple(module.normalized_shape),
            eps=module.eps,
            elementwise_affine=module.elementwise_affine,
            bias=module.bias is not None,
        )
    elif kind is tnn.Dropout:
        out = nn.Dropout(module.p)
    elif kind in (tnn.ReLU, tnn.Sigmoid, tnn.Tanh, tnn.Identity):
        out = getattr(nn, kind.__name__)()
    elif kind is tnn.Softmax:
        if module.dim is None:
            raise ValueError("from_torch: torch.nn.Softmax(dim=None) has no axis; give it a dim")
        out = nn.Softmax(dim=module.dim)
    else:
        raise _unsupported(module, "from_torch")
    _load(out, module)
    object.__setattr__(out, "training", module.training)
    return out


__all__ = ["to_torch", "from_torch"]
