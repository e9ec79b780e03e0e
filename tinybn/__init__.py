"""tinybn: a small autograd framework that teaches Batch Normalization by building it."""

from tinybn import check, data, functional, keras, nn, optim
from tinybn.autograd import detect_anomaly, enable_grad, grad, is_grad_enabled, no_grad
from tinybn.scalar import Value, values
from tinybn.scalar_array import ValueArray
from tinybn.serialization import load, save
from tinybn.tensor import Tensor, concatenate, get_default_dtype, set_default_dtype, stack
from tinybn.viz import backward_steps, contributions, draw, explore, nodes, tree

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
    "grad",
    "concatenate",
    "stack",
    "get_default_dtype",
    "set_default_dtype",
]
