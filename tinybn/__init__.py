"""tinybn: a small autograd framework that teaches Batch Normalization by building it."""

from tinybn import check, data, functional, keras, nn, optim
from tinybn.autograd import detect_anomaly, enable_grad, is_grad_enabled, no_grad
from tinybn.scalar import Value, values
from tinybn.scalar_array import ValueArray
from tinybn.serialization import load, save
from tinybn.tensor import Tensor, concatenate, get_default_dtype, set_default_dtype, stack, where
from tinybn.viz import backward_steps, contributions, draw, tree

__version__ = "0.1.0"

__all__ = [
    "check",
    "data",
    "keras",
    "draw",
    "tree",
    "backward_steps",
    "contributions",
    "Tensor",
    "Value",
    "ValueArray",
    "values",
    "functional",
    "nn",
    "optim",
    "save",
    "load",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "detect_anomaly",
    "concatenate",
    "stack",
    "where",
    "get_default_dtype",
    "set_default_dtype",
]
