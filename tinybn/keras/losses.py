"""Keras's losses (predictions clipped to [1e-7, 1 − 1e-7]) and accuracy metrics."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinybn.tensor import Tensor

EPSILON = 1e-7  # keras.config.epsilon(): the clip used by the cross-entropy losses


# -- losses and metrics ----------------------------------------------------------------------
# A loss takes the targets (numpy, already shaped like the predictions; class indices (N,)
# for the sparse loss) and the predictions (Tensor (N, units)) and returns the mean over
# the batch as a scalar Tensor.


def binary_crossentropy(y_true: np.ndarray, y_pred: Tensor) -> Tensor:
    """mean of −[y log p + (1 − y) log(1 − p)], p clipped to [1e-7, 1 − 1e-7] as Keras does.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor
        >>> from tinybn.keras import binary_crossentropy
        >>> round(float(binary_crossentropy(np.array([[1.0]]), Tensor([[0.5]])).data), 4)  # log 2
        0.6931
    """
    p = y_pred.clip(EPSILON, 1.0 - EPSILON)
    return -(y_true * p.log() + (1.0 - y_true) * (1.0 - p).log()).mean()


def _class_probabilities(y_pred: Tensor) -> Tensor:
    # Keras rescales the outputs to sum to one, then clips, before taking the log
    return (y_pred / y_pred.sum(axis=-1, keepdims=True)).clip(EPSILON, 1.0 - EPSILON)


def categorical_crossentropy(y_true: np.ndarray, y_pred: Tensor) -> Tensor:
    """mean over the batch of −Σ_k y_k log p_k (y one-hot or soft labels, (N, K)).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor
        >>> from tinybn.keras import categorical_crossentropy
        >>> loss = categorical_crossentropy(np.array([[0.0, 1.0]]), Tensor([[0.5, 0.5]]))
        >>> round(float(loss.data), 4)
        0.6931
    """
    return -(y_true * _class_probabilities(y_pred).log()).sum(axis=-1).mean()


def sparse_categorical_crossentropy(y_true: np.ndarray, y_pred: Tensor) -> Tensor:
    """mean over the batch of −log p[target] (y integer class indices, (N,)).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor
        >>> from tinybn.keras import sparse_categorical_crossentropy
        >>> loss = sparse_categorical_crossentropy(np.array([1]), Tensor([[0.5, 0.5]]))
        >>> round(float(loss.data), 4)
        0.6931
    """
    p = _class_probabilities(y_pred)
    return -p[np.arange(len(y_true)), y_true].log().mean()


def mean_squared_error(y_true: np.ndarray, y_pred: Tensor) -> Tensor:
    """mean of (y − ŷ)².

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor
        >>> from tinybn.keras import mean_squared_error
        >>> float(mean_squared_error(np.array([[0.0, 0.0]]), Tensor([[1.0, 3.0]])).data)
        5.0
    """
    return ((y_pred - y_true) ** 2).mean()


_LOSSES: dict[str, Callable[[np.ndarray, Tensor], Tensor]] = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
}

_METRICS = (
    "accuracy",
    "acc",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
)


def _resolve_metric(name: str, y_true: np.ndarray, output_dim: int) -> str:
    """Keras's rule for 'accuracy': binary if the output has one unit, sparse categorical if
    the targets are class indices, else categorical."""
    if name not in ("accuracy", "acc"):
        return name
    if output_dim == 1:
        return "binary_accuracy"
    if y_true.ndim < 2 or y_true.shape[-1] == 1:
        return "sparse_categorical_accuracy"
    return "categorical_accuracy"


def _metric_values(kind: str, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-sample scores (N,) of one metric; its value is their mean over all samples."""
    if kind == "binary_accuracy":
        y_true = y_true.reshape(y_pred.shape) if y_true.size == y_pred.size else y_true
        return ((y_pred > 0.5).astype(float) == y_true).mean(axis=-1)
    predicted_class = y_pred.argmax(axis=-1)
    if kind == "sparse_categorical_accuracy":
        return (predicted_class == y_true.reshape(-1)).astype(float)
    return (predicted_class == y_true.argmax(axis=-1)).astype(float)


__all__ = [
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "mean_squared_error",
]
