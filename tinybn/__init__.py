"""tinybn: a small autograd framework that teaches Batch Normalization by building it."""

from tinybn import functional
from tinybn.autograd import detect_anomaly, enable_grad, is_grad_enabled, no_grad
from tinybn.scalar import Value, values
from tinybn.scalar_array import ValueArray
from tinybn.tensor import Tensor, concatenate, get_default_dtype, set_default_dtype, stack

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "Value",
    "ValueArray",
    "values",
    "functional",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "detect_anomaly",
    "concatenate",
    "stack",
    "get_default_dtype",
    "set_default_dtype",
]
