"""A bridge to PyTorch: ``to_torch(model)`` and ``from_torch(module)``.

Both build the equivalent model layer by layer, with copies of every parameter and
buffer (running statistics included), the same ``requires_grad`` flags and the same train
or eval mode, so the two give the same outputs. The layers both frameworks have:
Sequential, Linear, BatchNorm1d, LayerNorm, Dropout, ReLU, Sigmoid, Tanh, Softmax and
Identity. A ``tinybn.keras`` model converts through the nn layers it is made of (a Keras
``BatchNormalization`` becomes a ``torch.nn.BatchNorm1d`` with momentum 1 − Keras's);
``from_torch`` always returns plain ``tinybn.nn`` modules.

torch is imported inside these functions only: importing tinybn never imports it.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any, cast

import numpy as np

from tinybn import keras, nn

_SUPPORTED = (
    "Sequential, Linear, BatchNorm1d, LayerNorm, Dropout, ReLU, Sigmoid, Tanh, Softmax, Identity"
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
    elif kind in (nn.BatchNorm1d, keras.BatchNormalization):
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


def _batch_norm_to_torch(module: Any, torch: Any) -> Any:
    has_affine = module.weight is not None or module.bias is not None
    momentum = module.momentum
    if isinstance(module, keras.BatchNormalization):
        # Keras weighs the old value (never None), PyTorch the new one
        momentum = 1.0 - cast(float, module.momentum)
    options: dict[str, Any] = {}
    if module.weight is not None and module.bias is None and _has_bias_option(torch):
        options["bias"] = False  # PyTorch ≥ 2.13's BatchNorm(bias=False), as nn's
    out = torch.nn.BatchNorm1d(
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
    elif kind is tnn.BatchNorm1d:
        out = nn.BatchNorm1d(
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
