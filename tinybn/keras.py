"""A Keras-style facade: ``Sequential``, ``Dense``, ``BatchNormalization``, ``compile``, ``fit``.

The lecture notes' Keras snippet runs as written, with only the import changed::

    from tinybn.keras import Sequential, Dense, BatchNormalization
    model = Sequential()
    model.add(Dense(3, activation='relu', input_dim=2))
    model.add(BatchNormalization())
    model.add(Dense(2, activation='relu'))
    model.add(BatchNormalization())
    model.add(Dense(1, activation='sigmoid'))
    model.summary()            # Total params: 40, Trainable: 30, Non-trainable: 10
    model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
    history = model.fit(X, y, epochs=50, batch_size=32, validation_split=0.2)

Underneath, every layer is tinybn ``Tensor`` arithmetic and the batch-norm math is
``tinybn.functional.batch_norm_with_stats`` — the same function ``nn.BatchNorm1d`` calls.
What differs from PyTorch is Keras's conventions, followed here exactly (Keras 3):

* ``BatchNormalization(momentum=0.99, epsilon=1e-3)``: the momentum weighs the OLD value,
  ``moving = moving·momentum + batch·(1 − momentum)``, and ``moving_variance`` tracks the
  BIASED batch variance (PyTorch: momentum 0.1 on the new value, unbiased running_var).
  A training batch of one sample is allowed: μ = x and σ² = 0, so the output is β.
* ``Dense`` keeps its kernel as (input_dim, units) (PyTorch's Linear.weight is the
  transpose), initialized glorot-uniform, bias zero.
* Optimizers use Keras's defaults and update rules (``Adam``: epsilon 1e-7 added to √v,
  not to the bias-corrected √v̂; ``SGD``: learning rate 0.01).
* Weights and inputs are float32 (Keras's ``floatx``).

Randomness (weight initialization, shuffling in ``fit``, dropout masks) comes from the
model's own generator: ``Sequential(seed=0)`` makes everything reproducible.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from tinybn import functional as F
from tinybn.autograd import no_grad
from tinybn.data import batch_indices
from tinybn.tensor import Tensor, concatenate

FLOATX = np.float32
EPSILON = 1e-7  # keras.config.epsilon(): the clip used by the cross-entropy losses


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


# -- activations -----------------------------------------------------------------------------


def _linear(x: Tensor) -> Tensor:
    return x


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "softmax": F.softmax,  # over the last axis, as Keras
    "linear": _linear,
}


def get_activation(identifier: str | Callable | None) -> tuple[str, Callable[[Tensor], Tensor]]:
    """An activation by name ('relu', 'sigmoid', 'tanh', 'softmax', 'linear' / None) or callable."""
    if identifier is None:
        return "linear", _linear
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {identifier!r}; known: {', '.join(sorted(_ACTIVATIONS))} "
                "(or None, or a callable on Tensors)"
            )
        return key, _ACTIVATIONS[key]
    if callable(identifier):
        return getattr(identifier, "__name__", "custom"), identifier
    raise TypeError(f"activation must be a name, None or a callable, got {identifier!r}")


# -- layers ----------------------------------------------------------------------------------


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Layer:
    """One step of a ``Sequential`` model. Works on (N, features) float32 Tensors.

    A layer is *built* once its input width is known; building creates its weights.
    ``weights`` lists them in Keras's order; each is a ``Tensor`` (trainable ones have
    ``requires_grad=True``; BatchNormalization's moving statistics do not).
    """

    def __init__(self, name: str | None = None, trainable: bool = True) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        self.name = name
        self.trainable = trainable
        self.built = False
        self.input_dim: int | None = None
        self.output_dim: int | None = None
        self.declared_input_dim: int | None = None  # from input_dim= / input_shape=

    # subclasses override these three
    def _create_weights(self, rng: np.random.Generator) -> None:
        pass

    def _output_dim(self, input_dim: int) -> int:
        return input_dim

    def call(self, x: Tensor, training: bool = False) -> Tensor:
        raise NotImplementedError

    @property
    def weights(self) -> list[Tensor]:
        return []

    def _trainable_flags(self) -> list[bool]:
        return [True] * len(self.weights)

    # shared machinery
    def build(self, input_dim: int, rng: np.random.Generator | None = None) -> None:
        """Create the weights for inputs of width ``input_dim``."""
        input_dim = _check_positive_int(input_dim, "input_dim")
        if self.name is None:  # a layer used on its own; in a model, the model names it
            self.name = _snake_case(type(self).__name__)
        self.input_dim = input_dim
        self.output_dim = self._output_dim(input_dim)
        self._create_weights(rng if rng is not None else np.random.default_rng())
        self.built = True

    def __call__(self, x: Tensor, training: bool = False) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x, dtype=FLOATX))
        if x.ndim != 2:
            raise ValueError(
                f'Layer "{self.name}" expects input of shape (batch, features), got {x.shape}'
            )
        if not self.built:
            self.build(x.shape[1])
        if x.shape[1] != self.input_dim:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected axis '
                f"-1 of input shape to have value {self.input_dim}, but received input with "
                f"shape {(None, x.shape[1])}"
            )
        return self.call(x, training)

    @property
    def trainable_weights(self) -> list[Tensor]:
        if not self.trainable:
            return []
        return [w for w, flag in zip(self.weights, self._trainable_flags()) if flag]

    @property
    def non_trainable_weights(self) -> list[Tensor]:
        if not self.trainable:
            return list(self.weights)
        return [w for w, flag in zip(self.weights, self._trainable_flags()) if not flag]

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def get_weights(self) -> list[np.ndarray]:
        return [w.data.copy() for w in self.weights]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _declared_width(input_dim: int | None, input_shape: Sequence[int] | None) -> int | None:
    if input_dim is not None and input_shape is not None:
        raise ValueError("give input_dim or input_shape, not both")
    if input_shape is not None:
        shape = tuple(input_shape)
        if len(shape) != 1:
            raise ValueError(
                f"tinybn.keras works on flat feature vectors: input_shape must be (features,), "
                f"got {shape}"
            )
        input_dim = shape[0]
    return None if input_dim is None else _check_positive_int(input_dim, "input_dim")


class Dense(Layer):
    """Fully connected layer: ``activation(x @ kernel + bias)``.

    Args:
        units: output width.
        activation: 'relu', 'sigmoid', 'tanh', 'softmax', 'linear' / None, or a callable.
        use_bias: add a bias vector.
        input_dim / input_shape: the input width (input_shape=(d,)); needed on the first
            layer of a model unless the model is built from data.
    Weights: kernel (input_dim, units), glorot-uniform: U(−l, l), l = √(6 / (fan_in + fan_out));
        bias (units,), zeros.
    """

    def __init__(
        self,
        units: int,
        activation: str | Callable | None = None,
        use_bias: bool = True,
        input_dim: int | None = None,
        input_shape: Sequence[int] | None = None,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        self.units = _check_positive_int(units, "units")
        self.activation_name, self.activation = get_activation(activation)
        self.use_bias = use_bias
        self.declared_input_dim = _declared_width(input_dim, input_shape)
        self.kernel: Tensor | None = None
        self.bias: Tensor | None = None

    def _output_dim(self, input_dim: int) -> int:
        return self.units

    def _create_weights(self, rng: np.random.Generator) -> None:
        limit = math.sqrt(6.0 / (self.input_dim + self.units))
        kernel = rng.uniform(-limit, limit, (self.input_dim, self.units)).astype(FLOATX)
        self.kernel = Tensor(kernel, requires_grad=True, label=f"{self.name}/kernel")
        if self.use_bias:
            bias = np.zeros(self.units, dtype=FLOATX)
            self.bias = Tensor(bias, requires_grad=True, label=f"{self.name}/bias")

    @property
    def weights(self) -> list[Tensor]:
        if not self.built:
            return []
        return [self.kernel] + ([self.bias] if self.use_bias else [])

    def call(self, x: Tensor, training: bool = False) -> Tensor:
        out = x @ self.kernel
        if self.use_bias:
            out = out + self.bias
        return self.activation(out)


class BatchNormalization(Layer):
    """Batch normalization with Keras's conventions.

    Training (in ``fit``):  y = γ·(x − μ_B)/√(σ²_B + ε) + β with the batch's mean μ_B and
    biased variance σ²_B (computed by ``tinybn.functional.batch_norm_with_stats``), then
        moving_mean     = moving_mean·momentum     + μ_B·(1 − momentum)
        moving_variance = moving_variance·momentum + σ²_B·(1 − momentum)
    Inference (``predict``, ``evaluate``, validation): the moving statistics replace μ_B, σ²_B.

    Args:
        momentum: weight of the OLD moving value (Keras 0.99; PyTorch's 0.1 is 1 − this).
        epsilon: added to the variance (Keras 1e-3).
        center: learn β (else no shift). scale: learn γ (else no scale).
    Weights (each (C,)): gamma (ones), beta (zeros) — trainable; moving_mean (zeros),
        moving_variance (ones) — non-trainable.
    """

    def __init__(
        self,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        axis: int = -1,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        if axis not in (-1, 1):
            raise ValueError(f"tinybn.keras normalizes the feature axis (-1) only, got axis={axis}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.gamma: Tensor | None = None
        self.beta: Tensor | None = None
        self.moving_mean: Tensor | None = None
        self.moving_variance: Tensor | None = None

    def _create_weights(self, rng: np.random.Generator) -> None:
        c = self.input_dim
        if self.scale:
            self.gamma = Tensor(np.ones(c, FLOATX), requires_grad=True, label=f"{self.name}/gamma")
        if self.center:
            self.beta = Tensor(np.zeros(c, FLOATX), requires_grad=True, label=f"{self.name}/beta")
        self.moving_mean = Tensor(np.zeros(c, FLOATX), label=f"{self.name}/moving_mean")
        self.moving_variance = Tensor(np.ones(c, FLOATX), label=f"{self.name}/moving_variance")

    @property
    def weights(self) -> list[Tensor]:
        if not self.built:
            return []
        params = [w for w in (self.gamma, self.beta) if w is not None]
        return params + [self.moving_mean, self.moving_variance]

    def _trainable_flags(self) -> list[bool]:
        return [True] * (len(self.weights) - 2) + [False, False]

    def call(self, x: Tensor, training: bool = False) -> Tensor:
        if not (training and self.trainable):  # a frozen BN layer runs in inference mode
            y, _, _ = F.batch_norm_with_stats(
                x,
                self.gamma,
                self.beta,
                self.epsilon,
                mean=self.moving_mean.data,
                var=self.moving_variance.data,
            )
            return y
        if x.shape[0] == 1:
            # Keras allows one sample: μ = x, σ² = 0, x̂ = 0, y = β. functional refuses a
            # single sample (PyTorch's rule), so hand it the row twice: [x; x] has the same
            # mean and (biased) variance as x, and the gradients that reach x cancel as they do.
            y, mean, var = F.batch_norm_with_stats(
                concatenate([x, x]), self.gamma, self.beta, self.epsilon
            )
            y = y[:1]
        else:
            y, mean, var = F.batch_norm_with_stats(x, self.gamma, self.beta, self.epsilon)
        m = self.momentum
        batch_mean = mean.data.reshape(-1).astype(FLOATX)
        batch_var = var.data.reshape(-1).astype(FLOATX)
        self.moving_mean.data = self.moving_mean.data * m + batch_mean * (1.0 - m)
        self.moving_variance.data = self.moving_variance.data * m + batch_var * (1.0 - m)
        return y


class Dropout(Layer):
    """Inverted dropout: in training, zero each entry with probability ``rate`` and scale the
    rest by 1/(1 − rate); identity at inference. ``seed`` fixes the masks; otherwise they
    come from the model's generator."""

    def __init__(self, rate: float, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"Dropout rate must be a float in [0, 1], got {rate}")
        self.rate = float(rate)
        self.seed = seed
        self._rng: np.random.Generator | None = None

    def _create_weights(self, rng: np.random.Generator) -> None:
        seed = self.seed if self.seed is not None else int(rng.integers(2**63))
        self._rng = np.random.default_rng(seed)

    def call(self, x: Tensor, training: bool = False) -> Tensor:
        return F.dropout(x, self.rate, training, self._rng)


class Activation(Layer):
    """Apply an activation by name ('relu', 'sigmoid', 'tanh', 'softmax', 'linear') or callable."""

    def __init__(self, activation: str | Callable | None, name: str | None = None) -> None:
        super().__init__(name)
        self.activation_name, self.activation = get_activation(activation)

    def call(self, x: Tensor, training: bool = False) -> Tensor:
        return self.activation(x)


class InputLayer(Layer):
    """Declares the input width; made by ``Input(shape=(d,))``. Not listed in ``model.layers``."""

    def __init__(self, shape: Sequence[int], name: str | None = None) -> None:
        super().__init__(name)
        self.declared_input_dim = _declared_width(None, shape)

    def call(self, x: Tensor, training: bool = False) -> Tensor:
        return x


def Input(shape: Sequence[int], name: str | None = None) -> InputLayer:
    """``Input(shape=(d,))`` as the first entry of a Sequential model fixes its input width."""
    return InputLayer(shape, name)


# -- losses and metrics ----------------------------------------------------------------------
# A loss takes the targets (numpy, already shaped like the predictions; class indices (N,)
# for the sparse loss) and the predictions (Tensor (N, units)) and returns the mean over
# the batch as a scalar Tensor.


def binary_crossentropy(y_true: np.ndarray, y_pred: Tensor) -> Tensor:
    """mean of −[y log p + (1 − y) log(1 − p)], p clipped to [1e-7, 1 − 1e-7] as Keras does."""
    p = y_pred.clip(EPSILON, 1.0 - EPSILON)
    return -(y_true * p.log() + (1.0 - y_true) * (1.0 - p).log()).mean()


def _class_probabilities(y_pred: Tensor) -> Tensor:
    # Keras rescales the outputs to sum to one, then clips, before taking the log
    return (y_pred / y_pred.sum(axis=-1, keepdims=True)).clip(EPSILON, 1.0 - EPSILON)


def categorical_crossentropy(y_true: np.ndarray, y_pred: Tensor) -> Tensor:
    """mean over the batch of −Σ_k y_k log p_k (y one-hot or soft labels, (N, K))."""
    return -(y_true * _class_probabilities(y_pred).log()).sum(axis=-1).mean()


def sparse_categorical_crossentropy(y_true: np.ndarray, y_pred: Tensor) -> Tensor:
    """mean over the batch of −log p[target] (y integer class indices, (N,))."""
    p = _class_probabilities(y_pred)
    return -p[np.arange(len(y_true)), y_true].log().mean()


def mean_squared_error(y_true: np.ndarray, y_pred: Tensor) -> Tensor:
    """mean of (y − ŷ)²."""
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


# -- optimizers (Keras's update rules) ---------------------------------------------------------


class Optimizer:
    """Base class: ``apply(grads, variables)`` updates each variable in place.

    Per-variable state is created on the first call (Keras's ``build``); ``iterations``
    counts the calls. Every variable is updated with the same step number.
    """

    def __init__(self, learning_rate: float) -> None:
        if not (np.isfinite(learning_rate) and learning_rate >= 0):
            raise ValueError(f"learning_rate must be a finite number >= 0, got {learning_rate}")
        self.learning_rate = float(learning_rate)
        self.iterations = 0
        self._shapes: list[tuple[int, ...]] | None = None

    def _build(self, variables: Sequence[Tensor]) -> None:
        pass

    def _update(self, i: int, grad: np.ndarray, variable: Tensor) -> None:
        raise NotImplementedError

    def apply(self, grads: Sequence[np.ndarray | None], variables: Sequence[Tensor]) -> None:
        """One optimization step: update each variable from its gradient (None = skip)."""
        if len(grads) != len(variables):
            raise ValueError(f"{len(grads)} gradients for {len(variables)} variables")
        shapes = [tuple(v.shape) for v in variables]
        if self._shapes is None:
            self._shapes = shapes
            self._build(variables)
        elif shapes != self._shapes:
            raise ValueError(
                "this optimizer was built for other variables (shapes "
                f"{self._shapes}); use a new optimizer for a new model"
            )
        for i, (grad, variable) in enumerate(zip(grads, variables)):
            if grad is not None:
                self._update(i, np.asarray(grad, dtype=variable.dtype), variable)
        self.iterations += 1


class SGD(Optimizer):
    """Keras SGD: w ← w − lr·g; with momentum: v ← momentum·v − lr·g, w ← w + v
    (Nesterov: w ← w + momentum·v − lr·g). Defaults: lr 0.01, momentum 0."""

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False
    ) -> None:
        super().__init__(learning_rate)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be a float in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.nesterov = nesterov
        self.velocities: list[np.ndarray] = []

    def _build(self, variables: Sequence[Tensor]) -> None:
        self.velocities = [np.zeros_like(v.data) for v in variables]

    def _update(self, i: int, grad: np.ndarray, variable: Tensor) -> None:
        if self.momentum == 0:
            variable.data -= self.learning_rate * grad
            return
        velocity = self.velocities[i]
        velocity *= self.momentum
        velocity -= self.learning_rate * grad
        if self.nesterov:
            variable.data += self.momentum * velocity - self.learning_rate * grad
        else:
            variable.data += velocity


class Adam(Optimizer):
    """Keras Adam (defaults lr 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7). At step t:

        m ← m + (g − m)(1 − β₁)            v ← v + (g² − v)(1 − β₂)
        α = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)          w ← w − α·m / (√v + ε)

    ε is added to √v (the paper's "epsilon hat"), not to the bias-corrected √v̂ as in
    PyTorch — the two agree only when ε is negligible.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {beta}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.momentums: list[np.ndarray] = []
        self.velocities: list[np.ndarray] = []

    def _build(self, variables: Sequence[Tensor]) -> None:
        self.momentums = [np.zeros_like(v.data) for v in variables]
        self.velocities = [np.zeros_like(v.data) for v in variables]

    def _update(self, i: int, grad: np.ndarray, variable: Tensor) -> None:
        t = self.iterations + 1
        alpha = self.learning_rate * math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        m, v = self.momentums[i], self.velocities[i]
        m += (grad - m) * (1 - self.beta_1)
        v += (grad * grad - v) * (1 - self.beta_2)
        variable.data -= (m * alpha) / (np.sqrt(v) + self.epsilon)


class RMSprop(Optimizer):
    """Keras RMSprop (Keras's default optimizer; lr 0.001, rho 0.9, epsilon 1e-7):

        v ← ρ·v + (1 − ρ)·g²       w ← w − lr·g / √(v + ε)
    with momentum > 0: b ← momentum·b + lr·g/√(v + ε), w ← w − b.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho}")
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.velocities: list[np.ndarray] = []
        self.momentums: list[np.ndarray] = []

    def _build(self, variables: Sequence[Tensor]) -> None:
        self.velocities = [np.zeros_like(v.data) for v in variables]
        self.momentums = [np.zeros_like(v.data) for v in variables]

    def _update(self, i: int, grad: np.ndarray, variable: Tensor) -> None:
        velocity = self.velocities[i]
        velocity *= self.rho
        velocity += (1 - self.rho) * grad * grad
        increment = self.learning_rate * grad / np.sqrt(velocity + self.epsilon)
        if self.momentum > 0:
            buffer = self.momentums[i]
            buffer *= self.momentum
            buffer += increment
            variable.data -= buffer
        else:
            variable.data -= increment


_OPTIMIZERS: dict[str, type[Optimizer]] = {"adam": Adam, "sgd": SGD, "rmsprop": RMSprop}

optimizers = SimpleNamespace(SGD=SGD, Adam=Adam, RMSprop=RMSprop, Optimizer=Optimizer)
"""``from tinybn.keras import optimizers; optimizers.Adam(learning_rate=0.01)``, as in Keras."""


# -- the model -------------------------------------------------------------------------------


class History:
    """What ``fit`` returns: ``history`` maps 'loss', 'accuracy', 'val_loss', ... to one value
    per epoch; ``epoch`` lists the epoch indices; ``params`` the fit settings."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params = params

    def _record(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _readable_size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024:
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.2f} TB"


def _verbosity(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _progress_bar(total: int, desc: str) -> Any:
    """A tqdm bar over batches, or None when tqdm is not installed (then lines are printed)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="batch", file=sys.stdout, leave=True)


def _format_logs(logs: dict[str, float]) -> str:
    return " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())


class Sequential:
    """A linear stack of layers, built, compiled and trained as in Keras.

    Args:
        layers: an optional list of layers (an ``Input(shape=(d,))`` may come first).
        name: the model's name in ``summary()``.
        seed: seed of the model's generator (weight init, shuffling, dropout masks).
    """

    def __init__(
        self,
        layers: Sequence[Layer] | None = None,
        name: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.name = name or "sequential"
        self._rng = np.random.default_rng(seed)
        self._layers: list[Layer] = []
        self.input_dim: int | None = None
        self.optimizer: Optimizer | None = None
        self.loss: str | Callable | None = None
        self.metrics_names: list[str] = []
        self._loss_fn: Callable | None = None
        self.compiled = False
        self.history: History | None = None
        for layer in layers or []:
            self.add(layer)

    # -- building --------------------------------------------------------------------------

    def add(self, layer: Layer) -> None:
        """Append a layer; it is built at once if the model's input width is known."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a tinybn.keras layer, got {layer!r}")
        if isinstance(layer, InputLayer):
            if self._layers or self.input_dim is not None:
                raise ValueError("Input(...) must be the first entry of a Sequential model")
            self.input_dim = layer.declared_input_dim
            return
        if any(existing is layer for existing in self._layers):
            raise ValueError(f"layer {layer.name!r} is already in this model")
        if layer.name is None:
            layer.name = self._unique_name(_snake_case(type(layer).__name__))
        elif any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"All layers in a Sequential model need unique names: {layer.name!r}")
        if not self._layers and self.input_dim is None and layer.declared_input_dim is not None:
            self.input_dim = layer.declared_input_dim
        incoming = self._layers[-1].output_dim if self._layers else self.input_dim
        self._check_width(layer, incoming)
        self._layers.append(layer)
        if self.input_dim is not None:
            self._build_layers()

    def _unique_name(self, base: str) -> str:
        names = {layer.name for layer in self._layers}
        if base not in names:
            return base
        suffix = 1
        while f"{base}_{suffix}" in names:
            suffix += 1
        return f"{base}_{suffix}"

    @staticmethod
    def _check_width(layer: Layer, width: int | None) -> None:
        """A layer that declares or was built for an input width must receive that width."""
        if width is None:
            return
        declared = layer.declared_input_dim
        if declared is not None and declared != width:
            raise ValueError(
                f'layer "{layer.name}" declares input_dim={declared}, but receives {width} '
                "features from the layer before it"
            )
        if layer.built and layer.input_dim != width:
            raise ValueError(
                f'layer "{layer.name}" was built for {layer.input_dim} input features, '
                f"but receives {width}"
            )

    def _build_layers(self) -> None:
        """Build every layer not built yet, each from the width its predecessor outputs."""
        width = self.input_dim
        for layer in self._layers:
            self._check_width(layer, width)
            if not layer.built:
                layer.build(width, self._rng)
            width = layer.output_dim

    def build(self, input_shape: int | Sequence[int | None]) -> None:
        """Build the weights for inputs of shape (None, d) (or width d)."""
        width = input_shape if isinstance(input_shape, int) else tuple(input_shape)[-1]
        width = _check_positive_int(width, "input width")
        if self.input_dim is not None and self.input_dim != width:
            raise ValueError(f"model expects {self.input_dim} input features, got {width}")
        if not self._layers:
            raise ValueError("cannot build a Sequential model with no layers")
        self.input_dim = width
        self._build_layers()

    @property
    def built(self) -> bool:
        return bool(self._layers) and all(layer.built for layer in self._layers)

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"{what}: this model has not yet been built: give the first layer "
                "input_dim= (or input_shape=(d,)), start with Input(shape=(d,)), or call "
                "build((None, d)), fit or predict first"
            )

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    @property
    def output_dim(self) -> int | None:
        return self._layers[-1].output_dim if self._layers else None

    @property
    def weights(self) -> list[Tensor]:
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list[Tensor]:
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list[Tensor]:
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def count_params(self) -> int:
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self._layers)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight, layer by layer (Dense: kernel, bias; BN: γ, β, mean, var)."""
        self._require_built("get_weights")
        return [w.data.copy() for w in self.weights]

    def set_weights(self, values: Sequence[Any]) -> None:
        """Replace every weight (same order and shapes as get_weights); all checked first."""
        self._require_built("set_weights")
        weights = self.weights
        if len(values) != len(weights):
            raise ValueError(f"set_weights: expected {len(weights)} arrays, got {len(values)}")
        arrays = [np.asarray(v, dtype=FLOATX) for v in values]
        wrong = [
            f"{w.label}: expected {w.shape}, got {a.shape}"
            for w, a in zip(weights, arrays)
            if a.shape != w.shape
        ]
        if wrong:
            raise ValueError("set_weights: shape mismatch: " + "; ".join(wrong))
        for w, a in zip(weights, arrays):
            w.data = a.copy()

    # -- running ---------------------------------------------------------------------------

    def _inputs(self, x: Any) -> np.ndarray:
        """x as a float32 (N, d) array; builds the model from d if it is not built yet."""
        data = x.data if isinstance(x, Tensor) else x
        try:
            array = np.asarray(data, dtype=FLOATX)
        except (TypeError, ValueError):
            raise TypeError(f"x must be numeric, got {type(x).__name__}") from None
        if array.ndim != 2:
            raise ValueError(f"x must have shape (samples, features), got {array.shape}")
        if not self._layers:
            raise ValueError("this Sequential model has no layers; add some first")
        if self.input_dim is None:
            self.build(array.shape[1])
        if array.shape[1] != self.input_dim:
            raise ValueError(
                f'Input 0 of layer "{self._layers[0].name}" is incompatible with the layer: '
                f"expected axis -1 of input shape to have value {self.input_dim}, but received "
                f"input with shape {(None, array.shape[1])}"
            )
        return array

    def __call__(self, x: Any, training: bool = False) -> Tensor:
        """Forward pass as a Tensor graph (training=True: batch statistics, dropout on)."""
        out = Tensor(self._inputs(x))
        for layer in self._layers:
            out = layer(out, training)
        return out

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto") -> np.ndarray:
        """Outputs (N, units) in inference mode (moving statistics, no dropout), batch by batch.

        A sample's prediction does not depend on the other samples in its batch."""
        verbose = _verbosity(verbose)
        batch_size = _check_positive_int(32 if batch_size is None else batch_size, "batch_size")
        inputs = self._inputs(x)
        batches = batch_indices(len(inputs), batch_size)
        bar = _progress_bar(len(batches), "predict") if verbose == 1 else None
        outputs = []
        with no_grad():
            for index in batches:
                outputs.append(self(inputs[index], training=False).data)
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        if not outputs:
            return np.zeros((0, self.output_dim), dtype=FLOATX)
        return np.concatenate(outputs)

    # -- compiling and training --------------------------------------------------------------

    def compile(
        self,
        optimizer: str | Optimizer = "rmsprop",
        loss: str | Callable | None = None,
        metrics: Sequence[str] | None = None,
    ) -> None:
        """Choose the optimizer, the loss and the metrics (all checked before anything is set).

        Args:
            optimizer: 'adam', 'sgd', 'rmsprop' (Keras's default), or an Optimizer instance
                (``Adam(learning_rate=0.01)``) — Keras's defaults and update rules.
            loss: 'binary_crossentropy', 'categorical_crossentropy',
                'sparse_categorical_crossentropy', 'mse' / 'mean_squared_error', or a callable
                ``loss(y_true: ndarray, y_pred: Tensor) -> scalar Tensor``.
            metrics: a list drawn from 'accuracy' (alias 'acc'; binary, sparse or categorical
                chosen from the shapes, as Keras does), 'binary_accuracy',
                'categorical_accuracy', 'sparse_categorical_accuracy'.
        """
        if isinstance(optimizer, str):
            key = optimizer.lower()
            if key not in _OPTIMIZERS:
                raise ValueError(
                    f"Unknown optimizer {optimizer!r}; known: {', '.join(_OPTIMIZERS)} "
                    "(or an Optimizer instance)"
                )
            optimizer_obj = _OPTIMIZERS[key]()
        elif isinstance(optimizer, Optimizer):
            optimizer_obj = optimizer
        else:
            raise TypeError(
                "optimizer must be 'adam', 'sgd', 'rmsprop' or a tinybn.keras optimizer "
                f"(tinybn.optim optimizers are for tinybn.nn), got {optimizer!r}"
            )
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='binary_crossentropy'")
        if isinstance(loss, str):
            if loss.lower() not in _LOSSES:
                raise ValueError(f"Unknown loss {loss!r}; known: {', '.join(_LOSSES)}")
            loss_fn = _LOSSES[loss.lower()]
        elif callable(loss):
            loss_fn = loss
        else:
            raise TypeError(f"loss must be a name or a callable, got {loss!r}")
        if isinstance(metrics, str):
            raise TypeError(f"metrics must be a list, e.g. metrics=[{metrics!r}]")
        metric_names = list(metrics or [])
        unknown = [m for m in metric_names if not isinstance(m, str) or m.lower() not in _METRICS]
        if unknown:
            raise ValueError(f"Unknown metric(s) {unknown}; known: {', '.join(_METRICS)}")
        self.optimizer, self._loss_fn = optimizer_obj, loss_fn
        self.loss = loss.lower() if isinstance(loss, str) else loss
        self.metrics_names = metric_names
        self.compiled = True

    def _require_compiled(self, what: str) -> None:
        if not self.compiled:
            raise ValueError(f"You must call compile() before {what}()")

    def _targets(self, y: Any, n: int) -> np.ndarray:
        """Targets checked against the model's output and shaped for the loss."""
        y = np.asarray(y.data if isinstance(y, Tensor) else y)
        if y.ndim == 0 or len(y) != n:
            raise ValueError(
                f"x has {n} samples but y has {len(y) if y.ndim else 'no sample axis'}; "
                "they must match"
            )
        units = self.output_dim
        if self.loss == "sparse_categorical_crossentropy":
            classes = y.reshape(len(y), -1)
            if classes.shape[1] != 1 or np.any(classes != np.round(classes)):
                raise ValueError(
                    f"sparse_categorical_crossentropy needs integer class indices of shape "
                    f"(N,), got {y.shape} {y.dtype}"
                )
            classes = classes.reshape(-1).astype(np.int64)
            if classes.size and (classes.min() < 0 or classes.max() >= units):
                raise ValueError(
                    f"class indices must be in [0, {units}) for a model with {units} outputs"
                )
            return classes
        targets = y.astype(FLOATX)
        if targets.ndim == 1:
            targets = targets[:, None]  # (N,) targets for (N, 1) outputs, as Keras expands
        if callable(self.loss) and not isinstance(self.loss, str):
            return targets
        if targets.shape[1:] != (units,):
            raise ValueError(
                f"loss {self.loss!r}: targets of shape {y.shape} do not match the model's "
                f"output shape (None, {units})"
            )
        return targets

    def _split_validation(
        self, x: np.ndarray, y: np.ndarray, validation_split: float, validation_data: Any
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            return x, y, tuple(validation_data)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if validation_split == 0.0:
            return x, y, None
        # Keras holds out the LAST fraction of the samples, before any shuffling
        split_at = int(math.floor(len(x) * (1.0 - validation_split)))
        if split_at == 0 or split_at == len(x):
            raise ValueError(
                f"Training data contains {len(x)} samples, which is not sufficient to split it "
                f"into a validation and training set as specified by "
                f"validation_split={validation_split}"
            )
        return x[:split_at], y[:split_at], (x[split_at:], y[split_at:])

    def _metric_kinds(self, y_raw: np.ndarray) -> list[tuple[str, str]]:
        """(history key, metric kind) for each compiled metric."""
        return [(m, _resolve_metric(m.lower(), y_raw, self.output_dim)) for m in self.metrics_names]

    def _evaluate_arrays(
        self, x: np.ndarray, y_raw: np.ndarray, batch_size: int, bar: Any = None
    ) -> dict[str, float]:
        """Loss and metrics in inference mode, averaged over samples (batches weighted by size)."""
        targets = self._targets(y_raw, len(x))
        metrics = self._metric_kinds(y_raw)
        loss_sum, metric_sums = 0.0, [0.0] * len(metrics)
        with no_grad():
            for index in batch_indices(len(x), batch_size):
                pred = self(x[index], training=False)
                loss_sum += self._loss_fn(targets[index], pred).item() * len(index)
                for k, (_, kind) in enumerate(metrics):
                    metric_sums[k] += _metric_values(kind, y_raw[index], pred.data).sum()
                if bar is not None:
                    bar.update(1)
        n = max(len(x), 1)
        logs = {"loss": loss_sum / n}
        logs.update({key: float(s / n) for (key, _), s in zip(metrics, metric_sums)})
        return logs

    def fit(
        self,
        x: Any,
        y: Any,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: Any = "auto",
        validation_split: float = 0.0,
        validation_data: tuple[Any, Any] | None = None,
        shuffle: bool = True,
    ) -> History:
        """Train with mini-batches; returns a ``History``.

        Each step: forward in training mode (BatchNormalization uses the batch's statistics
        and updates its moving ones), loss, backward, one optimizer update. The epoch's
        ``loss``/metrics are averages over its samples as the model was at each step;
        ``val_*`` are computed in inference mode at the end of the epoch.

        Args:
            x: (N, d) inputs. y: targets — (N,) or (N, units); class indices (N,) for
                sparse_categorical_crossentropy.
            batch_size: samples per step (default 32; the last batch holds the remainder).
            epochs: passes over the training data.
            verbose: 0 silent, 1 (or 'auto') a progress bar per epoch, 2 one line per epoch.
            validation_split: fraction in [0, 1) of the samples held out for validation —
                the LAST ones, taken before shuffling (as Keras).
            validation_data: (x_val, y_val); takes precedence over validation_split.
            shuffle: reshuffle the training samples every epoch (the model's generator).
        """
        self._require_compiled("fit")
        verbose = _verbosity(verbose)
        batch_size = _check_positive_int(32 if batch_size is None else batch_size, "batch_size")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
        inputs = self._inputs(x)
        y_raw = np.asarray(y.data if isinstance(y, Tensor) else y)
        self._targets(y_raw, len(inputs))  # checks lengths and shapes before any training
        x_train, y_train, validation = self._split_validation(
            inputs, y_raw, validation_split, validation_data
        )
        if validation is not None:
            x_val = self._inputs(validation[0])
            y_val = np.asarray(getattr(validation[1], "data", validation[1]))
            self._targets(y_val, len(x_val))
        targets = self._targets(y_train, len(x_train))
        metrics = self._metric_kinds(y_train)
        history = History(
            {"epochs": epochs, "steps": math.ceil(len(x_train) / batch_size), "verbose": verbose}
        )
        for epoch in range(epochs):
            batches = batch_indices(len(x_train), batch_size, shuffle, rng=self._rng)
            bar = (
                _progress_bar(len(batches), f"Epoch {epoch + 1}/{epochs}") if verbose == 1 else None
            )
            loss_sum, metric_sums, seen = 0.0, [0.0] * len(metrics), 0
            for index in batches:
                pred, loss = self._train_step(x_train[index], targets[index])
                seen += len(index)
                loss_sum += loss * len(index)
                for k, (_, kind) in enumerate(metrics):
                    metric_sums[k] += _metric_values(kind, y_train[index], pred).sum()
                if bar is not None:
                    running = {"loss": loss_sum / seen}
                    running.update({key: s / seen for (key, _), s in zip(metrics, metric_sums)})
                    bar.set_postfix_str(_format_logs(running), refresh=False)
                    bar.update(1)
            logs = {"loss": loss_sum / max(seen, 1)}
            logs.update({key: float(s / max(seen, 1)) for (key, _), s in zip(metrics, metric_sums)})
            if validation is not None:
                val_logs = self._evaluate_arrays(x_val, y_val, batch_size)
                logs.update({f"val_{key}": value for key, value in val_logs.items()})
            history._record(epoch, logs)
            if bar is not None:
                bar.set_postfix_str(_format_logs(logs))
                bar.close()
            elif verbose:
                print(f"Epoch {epoch + 1}/{epochs} - {_format_logs(logs)}")
        self.history = history
        return history

    def _train_step(self, x: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float]:
        """One update on a batch; returns the batch's predictions and loss (before the update)."""
        pred = self(x, training=True)
        loss = self._loss_fn(targets, pred)
        weights = self.trainable_weights
        if weights and loss.requires_grad:
            for w in weights:
                w.grad = None
            loss.backward()
            with no_grad():
                self.optimizer.apply([w.grad for w in weights], weights)
        return pred.data, float(loss.item())

    def evaluate(
        self,
        x: Any,
        y: Any,
        batch_size: int | None = None,
        verbose: Any = "auto",
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        """Loss (and metrics) in inference mode: a float, or [loss, *metrics], or a dict."""
        self._require_compiled("evaluate")
        verbose = _verbosity(verbose)
        batch_size = _check_positive_int(32 if batch_size is None else batch_size, "batch_size")
        inputs = self._inputs(x)
        y_raw = np.asarray(y.data if isinstance(y, Tensor) else y)
        self._targets(y_raw, len(inputs))
        n_batches = math.ceil(len(inputs) / batch_size)
        bar = _progress_bar(n_batches, "evaluate") if verbose == 1 else None
        logs = self._evaluate_arrays(inputs, y_raw, batch_size, bar)
        if bar is not None:
            bar.set_postfix_str(_format_logs(logs))
            bar.close()
        elif verbose == 2:
            print(_format_logs(logs))
        if return_dict:
            return logs
        return logs["loss"] if not self.metrics_names else list(logs.values())

    # -- summary -----------------------------------------------------------------------------

    def summary(self, print_fn: Callable[[str], Any] | None = None) -> None:
        """Print each layer's name, output shape and parameter count, then the totals.

        Keras counts BatchNormalization's moving_mean and moving_variance as parameters
        (non-trainable): 4·C per layer, of which 2·C (γ, β) are trainable.
        """
        self._require_built("summary")
        print_fn = print_fn or print
        rows = [
            (
                f"{layer.name} ({type(layer).__name__})",
                f"(None, {layer.output_dim})",
                f"{layer.count_params():,}",
            )
            for layer in self._layers
        ]
        header = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(header[i]), *(len(r[i]) for r in rows)) + 2 for i in range(3)]
        widths = [max(widths[0], 33), max(widths[1], 24), max(widths[2], 13)]

        def line(left: str, fill: str, mid: str, right: str) -> str:
            return left + mid.join(fill * w for w in widths) + right

        def cells(values: Sequence[str], edge: str) -> str:
            parts = [
                f" {values[0]:<{widths[0] - 2}} ",
                f" {values[1]:<{widths[1] - 2}} ",
                f" {values[2]:>{widths[2] - 2}} ",
            ]
            return edge + edge.join(parts) + edge

        trainable = sum(w.size for w in self.trainable_weights)
        non_trainable = sum(w.size for w in self.non_trainable_weights)
        total = trainable + non_trainable
        bytes_per = np.dtype(FLOATX).itemsize
        lines = [f'Model: "{self.name}"', line("┏", "━", "┳", "┓"), cells(header, "┃")]
        lines.append(line("┡", "━", "╇", "┩"))
        for i, row in enumerate(rows):
            if i:
                lines.append(line("├", "─", "┼", "┤"))
            lines.append(cells(row, "│"))
        lines.append(line("└", "─", "┴", "┘"))
        for label, count in (
            ("Total params", total),
            ("Trainable params", trainable),
            ("Non-trainable params", non_trainable),
        ):
            lines.append(f" {label}: {count:,} ({_readable_size(count * bytes_per)})")
        print_fn("\n".join(lines))

    def __repr__(self) -> str:
        return f"<Sequential name={self.name}, layers={[layer.name for layer in self._layers]}>"


__all__ = [
    "Sequential",
    "Layer",
    "Dense",
    "BatchNormalization",
    "Dropout",
    "Activation",
    "Input",
    "InputLayer",
    "History",
    "Optimizer",
    "SGD",
    "Adam",
    "RMSprop",
    "optimizers",
    "get_activation",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "mean_squared_error",
]
