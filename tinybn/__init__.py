"""tinybn: a small autograd framework that teaches Batch Normalization by building it."""

import sys as _sys

from tinybn import check, data, functional, keras, nn, optim
from tinybn import tensor as tensor_module  # the module, before `tensor` names the function
from tinybn.autograd import detect_anomaly, enable_grad, grad, is_grad_enabled, no_grad
from tinybn.random import manual_seed
from tinybn.scalar import Value, values
from tinybn.scalar_array import ValueArray
from tinybn.serialization import load, save
from tinybn.tensor import (
    Tensor,
    concatenate,
    get_default_dtype,
    set_default_dtype,
    stack,
    tensor,
    where,
)
from tinybn.viz import backward_steps, contributions, draw, explore, nodes, tree

# ``tb.tensor`` is the factory function (as torch.tensor); the module that defines Tensor
# stays importable as ``from tinybn.tensor import Tensor`` and, whole, as
# ``from tinybn import tensor_module`` or ``import tinybn.tensor_module``
_sys.modules[f"{__name__}.tensor_module"] = tensor_module

__version__ = "0.1.0"

__all__ = [
    "check",
    "data",
    "keras",
    "draw",
    "tree",
    "backward_steps",
    "nodes",
    "contributions",
    "explore",
    "Tensor",
    "tensor",
    "tensor_module",
    "Value",
    "ValueArray",
    "values",
    "functional",
    "nn",
    "optim",
    "save",
    "manual_seed",
    "load",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "detect_anomaly",
    "grad",
    "concatenate",
    "stack",
    "where",
    "get_default_dtype",
    "set_default_dtype",
]
