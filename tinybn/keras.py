"""A Keras-style facade over ``tinybn.nn``: Sequential, Dense, BatchNormalization, fit.

The lecture notes' snippet runs as written, with only the import changed::

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

This module is an adapter, not a second framework. A Keras ``Sequential`` IS an
``nn.Sequential`` whose children are named like Keras's layers, and every layer is built
from ``nn`` layers: ``Dense`` holds an ``nn.Linear`` (and its activation module),
``BatchNormalization`` IS an ``nn.BatchNorm1d`` and ``Dropout`` an ``nn.Dropout``. So
``state_dict``, ``tb.save``/``tb.load``, ``nn.fold_batchnorm``, ``modules()``, drawing and
``tinybn.interop.to_torch`` work on a Keras model. The optimizers are ``tinybn.optim``
optimizers with Keras's names and update rules. What remains here is what Keras does
differently (Keras 3):

* ``BatchNormalization(momentum=0.99, epsilon=1e-3)``: the momentum weighs the OLD value,
  ``moving = moving·momentum + batch·(1 − momentum)``, and ``moving_variance`` tracks the
  BIASED batch variance (PyTorch: momentum 0.1 on the new value, unbiased running_var).
  A training batch of one sample is allowed: μ = x and σ² = 0, so the output is β.
* ``Dense`` shows its kernel as (input_dim, units) (``nn.Linear.weight`` is the transpose),
  initialized glorot-uniform, bias zero.
* Optimizers use Keras's defaults and update rules (``Adam``: epsilon 1e-7 added to √v,
  not to the bias-corrected √v̂; ``SGD``: learning rate 0.01, velocity form of momentum;
  ``RMSprop``: epsilon inside the square root).
* Calls default to inference (``model(x)`` is ``model(x, training=False)``); a model
  starts in eval mode. Weights and inputs are float32 (Keras's ``floatx``).

Randomness (weight initialization, shuffling in ``fit``, dropout masks) comes from the
model's own generator, made by ``_generator``: ``Sequential(seed=0)`` makes everything
reproducible.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import numpy as np

from tinybn import functional as F
from tinybn import nn, optim
from tinybn.autograd import no_grad
from tinybn.data import batch_indices
from tinybn.serialization import load, save
from tinybn.tensor import Tensor

FLOATX = np.float32
EPSILON = 1e-7  # keras.config.epsilon(): the clip used by the cross-entropy losses


def _generator(seed: int | None) -> np.random.Generator:
    """THE source of randomness of this module: a model's generator (weight init, shuffling,
    dropout seeds) and a layer's when it is built on its own. Change it here to change all."""
    return np.random.default_rng(seed)


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


@contextmanager
def _mode(module: nn.Module, training: bool) -> Iterator[None]:
    """Run ``module`` in training (True) or inference mode, then restore every submodule's mode.

    Keras passes ``training`` to each call; ``nn`` keeps it as module state. This maps one to
    the other for the duration of a call.
    """
    saved = [(m, m.training) for m in module.modules()]
    module.train(bool(training))
    try:
        yield
    finally:
        for m, training_before in saved:
            object.__setattr__(m, "training", training_before)


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

# the nn module of each named activation ('linear' has none: nothing is applied)
_ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=-1),
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


class CustomActivation(nn.Module):
    """A user's activation function (a callable on Tensors) as a module."""

    def __init__(self, function: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)

    def extra_repr(self) -> str:
        return getattr(self.function, "__name__", "custom")


def _activation_module(identifier: str | Callable | None) -> tuple[str, nn.Module | None]:
    """(name, nn module) of an activation; no module for 'linear' (so a Dense without an
    activation is a bare Linear, which ``nn.fold_batchnorm`` can fold into the next BN)."""
    name, function = get_activation(identifier)
    if function is _linear:
        return name, None
    if isinstance(identifier, str):
        return name, _ACTIVATION_MODULES[name]()
    return name, CustomActivation(function)


# -- layers ----------------------------------------------------------------------------------


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


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


class Layer(nn.Module):
    """Keras's layer API on an ``nn.Module``. Works on (N, features) float32 Tensors.

    A layer is *built* once its input width is known (Keras's deferred building; PyTorch's
    Lazy modules do the same); building creates its nn layers and weights. ``weights``
    lists the weight tensors in Keras's order (trainable ones first within a layer);
    ``get_weights``/``set_weights`` use Keras's layouts (a Dense kernel as (in, units)).
    ``layer(x, training=...)`` runs in that mode; ``training=None`` keeps the module's mode,
    which starts as inference, as Keras's calls default to.
    """

    def _init_layer(self, name: str | None, trainable: bool) -> None:
        """Keras's attributes; call after the nn base class's __init__."""
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        self.name = name
        self._trainable = bool(trainable)
        self.built = False
        self.input_dim: int | None = None
        self.output_dim: int | None = None
        self.declared_input_dim: int | None = None  # from input_dim= / input_shape=
        object.__setattr__(self, "training", False)  # Keras's calls default to inference

    # subclasses override these
    def _create_weights(self, rng: np.random.Generator) -> None:
        pass

    def _output_dim(self, input_dim: int) -> int:
        return input_dim

    @property
    def weights(self) -> list[Tensor]:
        return []

    def _trainable_flags(self) -> list[bool]:
        return [True] * len(self.weights)

    def _keras_layout(self, index: int, array: np.ndarray) -> np.ndarray:
        """Weight ``index`` as Keras lays it out (and back: the map is its own inverse)."""
        return array

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable}

    # shared machinery
    @property
    def trainable(self) -> bool:
        """False freezes the layer: its weights get no gradients and fit leaves them alone."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        self.requires_grad_(self._trainable)

    def build(self, input_dim: int, rng: np.random.Generator | None = None) -> None:
        """Create the weights for inputs of width ``input_dim``."""
        input_dim = _check_positive_int(input_dim, "input_dim")
        if self.name is None:  # a layer used on its own; in a model, the model names it
            self.name = _snake_case(type(self).__name__)
        self.input_dim = input_dim
        self.output_dim = self._output_dim(input_dim)
        self._create_weights(rng if rng is not None else _generator(None))
        self.train(self.training)  # the nn layers just made take the layer's mode
        self.built = True
        self.requires_grad_(self._trainable)

    def __call__(self, x: Any, training: bool | None = None) -> Tensor:
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
        if training is None or bool(training) == self.training:
            return self.forward(x)
        with _mode(self, training):
            return self.forward(x)

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
        return [self._keras_layout(i, w.data).copy() for i, w in enumerate(self.weights)]


class Dense(Layer, nn.Sequential):
    """Fully connected layer: ``activation(x @ kernel + bias)``, as
    ``nn.Sequential(linear=nn.Linear(input_dim, units), activation=...)``.

    Args:
        units: output width.
        activation: 'relu', 'sigmoid', 'tanh', 'softmax', 'linear' / None, or a callable.
            None/'linear' adds no module: the layer is its Linear alone.
        use_bias: add a bias vector.
        input_dim / input_shape: the input width (input_shape=(d,)); needed on the first
            layer of a model unless the model is built from data.
    Weights: kernel (input_dim, units), glorot-uniform: U(−l, l), l = √(6 / (fan_in + fan_out));
        bias (units,), zeros. ``kernel`` is a view of ``linear.weight``, (units, input_dim).
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
        nn.Sequential.__init__(self)
        self._init_layer(name, trainable)
        self.units = _check_positive_int(units, "units")
        self.activation_name, module = _activation_module(activation)
        object.__setattr__(self, "_activation", module)  # a child once built, after linear
        self.use_bias = use_bias
        self.declared_input_dim = _declared_width(input_dim, input_shape)

    def _output_dim(self, input_dim: int) -> int:
        return self.units

    def _create_weights(self, rng: np.random.Generator) -> None:
        limit = math.sqrt(6.0 / (self.input_dim + self.units))
        kernel = rng.uniform(-limit, limit, (self.input_dim, self.units)).astype(FLOATX)
        # nn.Linear draws PyTorch's init, which the glorot kernel replaces: that draw uses a
        # fixed throwaway generator, so it never consumes the model's stream
        linear = nn.Linear(self.input_dim, self.units, self.use_bias, rng=np.random.default_rng(0))
        linear.weight.data = np.ascontiguousarray(kernel.T)
        linear.weight.label = f"{self.name}/kernel"
        if self.use_bias:
            linear.bias.data = np.zeros(self.units, dtype=FLOATX)
            linear.bias.label = f"{self.name}/bias"
        self.add_module("linear", linear)
        if self._activation is not None:
            self.add_module("activation", self._activation)

    @property
    def activation(self) -> Callable[[Tensor], Tensor]:
        """The activation, as a module (or the identity function for 'linear')."""
        module = self._modules.get("activation")
        return _linear if module is None else module

    @property
    def kernel(self) -> Tensor | None:
        """The (input_dim, units) kernel: a view of linear.weight (writes go through)."""
        if not self.built:
            return None
        return Tensor(self.linear.weight.data.T, label=f"{self.name}/kernel")

    @property
    def bias(self) -> Tensor | None:
        return self.linear.bias if self.built else None

    @property
    def weights(self) -> list[Tensor]:
        if not self.built:
            return []
        return [self.linear.weight] + ([self.linear.bias] if self.use_bias else [])

    def _keras_layout(self, index: int, array: np.ndarray) -> np.ndarray:
        return array.T if index == 0 else array

    def get_config(self) -> dict[str, Any]:
        if isinstance(self._activation, CustomActivation):
            raise TypeError(
                f'layer "{self.name}": a custom activation cannot be saved as JSON; save the '
                "weights with tb.save(model.state_dict(), path) instead"
            )
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation_name,
            "use_bias": self.use_bias,
            "input_dim": self.declared_input_dim,
        }

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}, activation={self.activation_name!r}"


class BatchNormalization(Layer, nn.BatchNorm1d):
    """Batch normalization with Keras's conventions: an ``nn.BatchNorm1d`` configured so.

    Training (in ``fit``):  y = γ·(x − μ_B)/√(σ²_B + ε) + β with the batch's mean μ_B and
    biased variance σ²_B (``tinybn.functional.batch_norm_with_stats``, as every BN), then
        moving_mean     = moving_mean·momentum     + μ_B·(1 − momentum)
        moving_variance = moving_variance·momentum + σ²_B·(1 − momentum)
    Inference (``predict``, ``evaluate``, validation): the moving statistics replace μ_B, σ²_B.
    A batch of one sample is allowed in training: μ_B = x, σ²_B = 0, y = β.

    Args:
        momentum: weight of the OLD moving value (Keras 0.99; PyTorch's 0.1 is 1 − this).
        epsilon: added to the variance (Keras 1e-3).
        center: learn β (else no shift). scale: learn γ (else no scale).
        axis: the feature axis, -1 (channels last; for (N, C) input the same as axis 1).
    Weights (each (C,)): gamma (ones), beta (zeros) — trainable; moving_mean (zeros),
        moving_variance (ones) — non-trainable. They are nn's weight, bias, running_mean
        and running_var (state_dict keys); nn's num_batches_tracked counts the steps.
    """

    _allow_batch_of_one = True

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
        nn.Module.__init__(self)  # nn.BatchNorm1d.__init__ runs in build, once C is known
        if axis not in (-1, 1):
            raise ValueError(f"tinybn.keras normalizes the feature axis (-1) only, got axis={axis}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        self._init_layer(name, trainable)
        self.momentum = float(momentum)
        self.eps = float(epsilon)
        self.center = center
        self.scale = scale

    @property
    def epsilon(self) -> float:
        return self.eps

    def _create_weights(self, rng: np.random.Generator) -> None:
        training = self.training
        nn.BatchNorm1d.__init__(
            self,
            self.input_dim,
            eps=self.eps,
            momentum=self.momentum,  # Keras's meaning; see _running_average_weights
            affine=self.center or self.scale,
            bias=self.center,
        )
        if not self.scale:
            self.register_parameter("weight", None)
        self.float()  # Keras's floatx, whatever tinybn's default dtype
        object.__setattr__(self, "training", training)
        for key, keras_name in (
            ("weight", "gamma"),
            ("bias", "beta"),
            ("running_mean", "moving_mean"),
            ("running_var", "moving_variance"),
        ):
            tensor = getattr(self, key)
            if tensor is not None:
                tensor.label = f"{self.name}/{keras_name}"

    def _running_average_weights(self, m: int) -> tuple[float, float, float]:
        # Keras: momentum weighs the old value, and the variance averaged is the biased one
        return self.momentum, 1.0 - self.momentum, 1.0 - self.momentum

    def forward(self, x: Any) -> Tensor:
        if self.training and not self.trainable:  # Keras: a frozen BN layer runs in inference
            with _mode(self, False):
                return nn.BatchNorm1d.forward(self, x)
        return nn.BatchNorm1d.forward(self, x)

    @property
    def gamma(self) -> Tensor | None:
        return self._parameters.get("weight")

    @property
    def beta(self) -> Tensor | None:
        return self._parameters.get("bias")

    @property
    def moving_mean(self) -> Tensor | None:
        return self._buffers.get("running_mean")

    @property
    def moving_variance(self) -> Tensor | None:
        return self._buffers.get("running_var")

    @property
    def weights(self) -> list[Tensor]:
        if not self.built:
            return []
        params = [w for w in (self.gamma, self.beta) if w is not None]
        return params + [self.moving_mean, self.moving_variance]

    def _trainable_flags(self) -> list[bool]:
        return [True] * (len(self.weights) - 2) + [False, False]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "epsilon": self.eps,
            "center": self.center,
            "scale": self.scale,
        }

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, momentum={self.momentum} (Keras: weight of the old value), "
            f"epsilon={self.eps}, center={self.center}, scale={self.scale}"
        )


class Dropout(Layer, nn.Dropout):
    """Inverted dropout (``nn.Dropout``): in training, zero each entry with probability
    ``rate`` and scale the rest by 1/(1 − rate); identity at inference. ``seed`` fixes the
    masks; otherwise they come from the model's generator."""

    def __init__(self, rate: float, seed: int | None = None, name: str | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"Dropout rate must be a float in [0, 1], got {rate}")
        nn.Dropout.__init__(self, float(rate), rng=_generator(seed))
        self._init_layer(name, True)
        self.seed = seed

    @property
    def rate(self) -> float:
        return self.p

    def _create_weights(self, rng: np.random.Generator) -> None:
        seed = self.seed if self.seed is not None else int(rng.integers(2**63))
        self.rng = _generator(seed)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "rate": self.p, "seed": self.seed}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, rate={self.p}"


class Activation(Layer, nn.Sequential):
    """Apply an activation by name ('relu', 'sigmoid', 'tanh', 'softmax', 'linear') or callable."""

    def __init__(self, activation: str | Callable | None, name: str | None = None) -> None:
        nn.Sequential.__init__(self)
        self._init_layer(name, True)
        self.activation_name, module = _activation_module(activation)
        if module is not None:
            self.add_module("activation", module)

    def get_config(self) -> dict[str, Any]:
        if any(isinstance(m, CustomActivation) for m in self.children()):
            raise TypeError(f'layer "{self.name}": a custom activation cannot be saved as JSON')
        return {"name": self.name, "activation": self.activation_name}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, activation={self.activation_name!r}"


class InputLayer(Layer):
    """Declares the input width; made by ``Input(shape=(d,))``. Not listed in ``model.layers``."""

    def __init__(self, shape: Sequence[int], name: str | None = None) -> None:
        nn.Module.__init__(self)
        self._init_layer(name, True)
        self.declared_input_dim = _declared_width(None, shape)

    def forward(self, x: Tensor) -> Tensor:
        return x


def Input(shape: Sequence[int], name: str | None = None) -> InputLayer:
    """``Input(shape=(d,))`` as the first entry of a Sequential model fixes its input width."""
    return InputLayer(shape, name)


_LAYERS: dict[str, type[Layer]] = {
    "Dense": Dense,
    "BatchNormalization": BatchNormalization,
    "Dropout": Dropout,
    "Activation": Activation,
}


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


# -- optimizers: tinybn.optim optimizers with Keras's names, defaults and update rules ---------


def _hyperparameter(key: str) -> property:
    """An option readable and settable as an attribute (``opt.learning_rate = 0.01``), kept in
    the defaults and in every parameter group, as optim keeps options."""

    def get(self: Optimizer) -> Any:
        return (self.param_groups[0] if self.param_groups else self.defaults)[key]

    def set_(self: Optimizer, value: Any) -> None:
        self.defaults[key] = value
        for group in self.param_groups:
            group[key] = value

    return property(get, set_)


class Optimizer(optim.Optimizer):
    """A ``tinybn.optim.Optimizer`` that is built on its first ``apply`` (Keras creates its
    slots then), with Keras's option names. ``iterations`` counts the steps; Keras's rules
    use it as the step number t of every variable.

    Use ``apply(grads, variables)`` as in Keras, or, once built (``build(params)``), as any
    optim optimizer: ``zero_grad()``, ``loss.backward()``, ``step()``; ``state_dict()`` too.
    """

    learning_rate = _hyperparameter("learning_rate")

    def __init__(self, learning_rate: float, **options: Any) -> None:
        # optim.Optimizer.__init__ needs the parameters; it runs in build()
        self.defaults = {"learning_rate": learning_rate, **options}
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.iterations = 0
        self._check_options(self.defaults)
        self.defaults["learning_rate"] = float(learning_rate)

    def _check_options(self, group: dict[str, Any]) -> None:
        lr = group["learning_rate"]
        if not (np.isfinite(lr) and lr >= 0):
            raise ValueError(f"learning_rate must be a finite number >= 0, got {lr}")

    @property
    def built(self) -> bool:
        return bool(self.param_groups)

    def build(self, variables: Sequence[Tensor]) -> None:
        """Attach the variables this optimizer updates (once)."""
        optim.Optimizer.__init__(self, list(variables), self.defaults)

    def apply(self, grads: Sequence[np.ndarray | None], variables: Sequence[Tensor]) -> None:
        """One optimization step: update each variable from its gradient (None = skip).

        The gradients are stored in the variables' ``.grad`` (cast to their dtype), where
        ``step`` reads them.
        """
        grads, variables = list(grads), list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"{len(grads)} gradients for {len(variables)} variables")
        if not self.built:
            self.build(variables)
        elif [id(v) for v in variables] != [id(p) for p in self._all_params()]:
            raise ValueError(
                "this optimizer was built for other variables; use a new optimizer for a new "
                "model (or compile again after changing which layers are trainable)"
            )
        for grad, variable in zip(grads, variables):
            variable.grad = None if grad is None else np.asarray(grad, dtype=variable.dtype)
        self.step()

    def step(self) -> None:
        super().step()
        self.iterations += 1

    def get_config(self) -> dict[str, Any]:
        return dict(self.defaults)


class SGD(Optimizer):
    """Keras SGD: w ← w − lr·g; with momentum: v ← momentum·v − lr·g, w ← w + v
    (Nesterov: w ← w + momentum·v − lr·g). Defaults: lr 0.01, momentum 0.

    For a constant learning rate this is ``optim.SGD``'s update (PyTorch's b = −v/lr);
    Keras keeps lr inside the velocity, so a changed learning rate acts differently.
    """

    momentum = _hyperparameter("momentum")
    nesterov = _hyperparameter("nesterov")

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False
    ) -> None:
        super().__init__(learning_rate, momentum=float(momentum), nesterov=bool(nesterov))

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        if not 0.0 <= group["momentum"] <= 1.0:
            raise ValueError(f"momentum must be a float in [0, 1], got {group['momentum']}")

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        lr, momentum, grad = group["learning_rate"], group["momentum"], p.grad
        if momentum == 0:
            p.data -= lr * grad
            return
        if "velocity" not in state:
            state["velocity"] = np.zeros_like(p.data)
        velocity = state["velocity"]
        velocity *= momentum
        velocity -= lr * grad
        if group["nesterov"]:
            p.data += momentum * velocity - lr * grad
        else:
            p.data += velocity


class Adam(Optimizer):
    """Keras Adam (defaults lr 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7). At step t:

        m ← m + (g − m)(1 − β₁)            v ← v + (g² − v)(1 − β₂)
        α = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)          w ← w − α·m / (√v + ε)

    ε is added to √v (the paper's "epsilon hat"), not to the bias-corrected √v̂ as in
    ``optim.Adam`` (PyTorch) — the two agree only when ε is negligible. amsgrad: v in the
    last line is the running maximum of v.
    """

    beta_1 = _hyperparameter("beta_1")
    beta_2 = _hyperparameter("beta_2")
    epsilon = _hyperparameter("epsilon")
    amsgrad = _hyperparameter("amsgrad")

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(
            learning_rate,
            beta_1=float(beta_1),
            beta_2=float(beta_2),
            epsilon=float(epsilon),
            amsgrad=bool(amsgrad),
        )

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        for name in ("beta_1", "beta_2"):
            if not 0.0 <= group[name] < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {group[name]}")

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        grad, beta_1, beta_2 = p.grad, group["beta_1"], group["beta_2"]
        if not state:
            state["momentum"] = np.zeros_like(p.data)
            state["velocity"] = np.zeros_like(p.data)
            if group["amsgrad"]:
                state["velocity_hat"] = np.zeros_like(p.data)
        t = self.iterations + 1
        alpha = group["learning_rate"] * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m, v = state["momentum"], state["velocity"]
        m += (grad - m) * (1 - beta_1)
        v += (grad * grad - v) * (1 - beta_2)
        if group["amsgrad"]:
            np.maximum(state["velocity_hat"], v, out=state["velocity_hat"])
            v = state["velocity_hat"]
        p.data -= (m * alpha) / (np.sqrt(v) + group["epsilon"])


class RMSprop(Optimizer):
    """Keras RMSprop (Keras's default optimizer; lr 0.001, rho 0.9, epsilon 1e-7):

        v ← ρ·v + (1 − ρ)·g²       w ← w − lr·g / √(v + ε)
    centered: also ḡ ← ρ·ḡ + (1 − ρ)·g, and the denominator is √(v − ḡ² + ε);
    with momentum > 0: b ← momentum·b + lr·g/√(...), w ← w − b.
    (PyTorch's RMSprop adds ε outside the square root and keeps lr outside the buffer.)
    """

    rho = _hyperparameter("rho")
    momentum = _hyperparameter("momentum")
    epsilon = _hyperparameter("epsilon")
    centered = _hyperparameter("centered")

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
    ) -> None:
        super().__init__(
            learning_rate,
            rho=float(rho),
            momentum=float(momentum),
            epsilon=float(epsilon),
            centered=bool(centered),
        )

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        if not 0.0 <= group["rho"] < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {group['rho']}")
        if not group["momentum"] >= 0.0:
            raise ValueError(f"momentum must be >= 0, got {group['momentum']}")

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        grad, rho, momentum = p.grad, group["rho"], group["momentum"]
        if not state:
            state["velocity"] = np.zeros_like(p.data)
            if momentum > 0:
                state["momentum"] = np.zeros_like(p.data)
            if group["centered"]:
                state["average_gradient"] = np.zeros_like(p.data)
        velocity = state["velocity"]
        velocity *= rho
        velocity += (1 - rho) * grad * grad
        if group["centered"]:
            average = state["average_gradient"]
            average *= rho
            average += (1 - rho) * grad
            denominator = velocity - average * average + group["epsilon"]
        else:
            denominator = velocity + group["epsilon"]
        increment = group["learning_rate"] * grad / np.sqrt(denominator)
        if momentum > 0:
            buffer = state.setdefault("momentum", np.zeros_like(p.data))
            buffer *= momentum
            buffer += increment
            p.data -= buffer
        else:
            p.data -= increment


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


def _require_samples(n: int, what: str) -> None:
    if n == 0:
        raise ValueError(
            f"{what}: the data has no samples (0 rows); there is nothing to compute a loss on"
        )


_CONFIG_KEY = "__keras_config__"  # the JSON config's entry in a saved model's .npz


class Sequential(nn.Sequential):
    """A linear stack of layers, built, compiled and trained as in Keras — and an
    ``nn.Sequential`` whose children are the layers, named as Keras names them.

    Args:
        layers: an optional list of layers (an ``Input(shape=(d,))`` may come first).
        name: the model's name in ``summary()``.
        seed: seed of the model's generator (weight init, shuffling, dropout masks).
    The model starts in inference (eval) mode: ``model(x)`` uses the moving statistics, as
    Keras's calls default to; ``model(x, training=True)`` or ``model.train()`` for training.
    """

    def __init__(
        self,
        layers: Sequence[Layer] | None = None,
        name: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        object.__setattr__(self, "training", False)
        self.name = name or "sequential"
        self._rng = _generator(seed)
        self.input_dim: int | None = None
        self.optimizer: optim.Optimizer | None = None
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
            if self._modules or self.input_dim is not None:
                raise ValueError("Input(...) must be the first entry of a Sequential model")
            self.input_dim = layer.declared_input_dim
            return
        layers = self.layers
        if any(existing is layer for existing in layers):
            raise ValueError(f"layer {layer.name!r} is already in this model")
        if layer.name is None:
            name = self._unique_name(_snake_case(type(layer).__name__))
        elif layer.name in self._modules:
            raise ValueError(f"All layers in a Sequential model need unique names: {layer.name!r}")
        else:
            name = layer.name
        if "." in name or hasattr(type(self), name) or name in self.__dict__:
            raise ValueError(
                f"layer name {name!r} cannot name a child of the model (it holds a '.' or is "
                "the name of a model attribute); choose another name"
            )
        if not layers and self.input_dim is None and layer.declared_input_dim is not None:
            self.input_dim = layer.declared_input_dim
        incoming = layers[-1].output_dim if layers else self.input_dim
        self._check_width(layer, name, incoming)
        layer.name = name
        self.add_module(name, layer)
        layer.train(self.training)
        if self.input_dim is not None:
            self._build_layers()

    def append(self, module: Layer) -> Sequential:
        """``add`` (nn.Sequential's name)."""
        self.add(module)
        return self

    def _unique_name(self, base: str) -> str:
        if base not in self._modules:
            return base
        suffix = 1
        while f"{base}_{suffix}" in self._modules:
            suffix += 1
        return f"{base}_{suffix}"

    @staticmethod
    def _check_width(layer: Any, name: str, width: int | None) -> None:
        """A layer that declares or was built for an input width must receive that width."""
        if width is None:
            return
        declared = getattr(layer, "declared_input_dim", None)
        if declared is not None and declared != width:
            raise ValueError(
                f'layer "{name}" declares input_dim={declared}, but receives {width} '
                "features from the layer before it"
            )
        if getattr(layer, "built", False) and layer.input_dim != width:
            raise ValueError(
                f'layer "{name}" was built for {layer.input_dim} input features, '
                f"but receives {width}"
            )

    def _build_layers(self) -> None:
        """Build every layer not built yet, each from the width its predecessor outputs."""
        width = self.input_dim
        for name, layer in self._modules.items():
            if not isinstance(layer, Layer):  # an nn module put in by nn.fold_batchnorm
                continue
            self._check_width(layer, name, width)
            if not layer.built:
                layer.build(width, self._rng)
            width = layer.output_dim

    def build(self, input_shape: int | Sequence[int | None]) -> None:
        """Build the weights for inputs of shape (None, d) (or width d)."""
        width = input_shape if isinstance(input_shape, int) else tuple(input_shape)[-1]
        width = _check_positive_int(width, "input width")
        if self.input_dim is not None and self.input_dim != width:
            raise ValueError(f"model expects {self.input_dim} input features, got {width}")
        if not self._modules:
            raise ValueError("cannot build a Sequential model with no layers")
        self.input_dim = width
        self._build_layers()

    @property
    def built(self) -> bool:
        return bool(self._modules) and all(getattr(m, "built", True) for m in self.layers)

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"{what}: this model has not yet been built: give the first layer "
                "input_dim= (or input_shape=(d,)), start with Input(shape=(d,)), or call "
                "build((None, d)), fit or predict first"
            )

    @property
    def layers(self) -> list[Layer]:
        return list(self._modules.values())

    @property
    def _keras_layers(self) -> list[Layer]:
        return [layer for layer in self._modules.values() if isinstance(layer, Layer)]

    @property
    def output_dim(self) -> int | None:
        layers = self._keras_layers
        return layers[-1].output_dim if layers else None

    @property
    def weights(self) -> list[Tensor]:
        return [w for layer in self._keras_layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list[Tensor]:
        return [w for layer in self._keras_layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list[Tensor]:
        return [w for layer in self._keras_layers for w in layer.non_trainable_weights]

    def count_params(self) -> int:
        self._require_built("count_params")
        return sum(w.size for w in self.weights)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight in Keras's layouts, layer by layer (Dense: kernel
        (in, units), bias; BN: γ, β, moving mean, moving variance)."""
        self._require_built("get_weights")
        return [array for layer in self._keras_layers for array in layer.get_weights()]

    def set_weights(self, values: Sequence[Any]) -> None:
        """Replace every weight (same order and shapes as get_weights); all checked first."""
        self._require_built("set_weights")
        slots = [(layer, i, w) for layer in self._keras_layers for i, w in enumerate(layer.weights)]
        if len(values) != len(slots):
            raise ValueError(f"set_weights: expected {len(slots)} arrays, got {len(values)}")
        arrays = [np.asarray(v, dtype=FLOATX) for v in values]
        wrong = []
        for (layer, i, w), a in zip(slots, arrays):
            expected = layer._keras_layout(i, w.data).shape
            if a.shape != expected:
                wrong.append(f"{w.label}: expected {expected}, got {a.shape}")
        if wrong:
            raise ValueError("set_weights: shape mismatch: " + "; ".join(wrong))
        for (layer, i, w), a in zip(slots, arrays):
            w.data = np.ascontiguousarray(layer._keras_layout(i, a))

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
        if not self._modules:
            raise ValueError("this Sequential model has no layers; add some first")
        if self.input_dim is None:
            self.build(array.shape[1])
        if array.shape[1] != self.input_dim:
            raise ValueError(
                f'Input 0 of layer "{self.layers[0].name}" is incompatible with the layer: '
                f"expected axis -1 of input shape to have value {self.input_dim}, but received "
                f"input with shape {(None, array.shape[1])}"
            )
        return array

    def __call__(self, x: Any, training: bool | None = None) -> Tensor:
        """Forward pass as a Tensor graph. training=True: batch statistics, dropout on;
        False: inference; None (default): the model's mode (inference unless train())."""
        inputs = Tensor(self._inputs(x))
        if training is None or bool(training) == self.training:
            return self.forward(inputs)
        with _mode(self, training):
            return self.forward(inputs)

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto") -> np.ndarray:
        """Outputs (N, units) in inference mode (moving statistics, no dropout), batch by batch.

        A sample's prediction does not depend on the other samples in its batch."""
        verbose = _verbosity(verbose)
        batch_size = _check_positive_int(32 if batch_size is None else batch_size, "batch_size")
        inputs = self._inputs(x)
        batches = batch_indices(len(inputs), batch_size)
        bar = _progress_bar(len(batches), "predict") if verbose == 1 else None
        outputs = []
        with no_grad(), _mode(self, False):
            for index in batches:
                outputs.append(self.forward(Tensor(inputs[index])).data)
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
        optimizer: str | optim.Optimizer = "rmsprop",
        loss: str | Callable | None = None,
        metrics: Sequence[str] | None = None,
    ) -> None:
        """Choose the optimizer, the loss and the metrics (all checked before anything is set).

        Args:
            optimizer: 'adam', 'sgd', 'rmsprop' (Keras's default), a Keras optimizer
                (``Adam(learning_rate=0.01)``: Keras's defaults and update rules), or a
                ``tinybn.optim`` optimizer over this model's parameters (PyTorch's rules).
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
        elif isinstance(optimizer, optim.Optimizer):
            optimizer_obj = optimizer
        else:
            raise TypeError(
                "optimizer must be 'adam', 'sgd', 'rmsprop', a tinybn.keras optimizer or a "
                f"tinybn.optim optimizer, got {optimizer!r}"
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
        with no_grad(), _mode(self, False):
            for index in batch_indices(len(x), batch_size):
                pred = self.forward(Tensor(x[index]))
                loss_sum += self._loss_fn(targets[index], pred).item() * len(index)
                for k, (_, kind) in enumerate(metrics):
                    metric_sums[k] += _metric_values(kind, y_raw[index], pred.data).sum()
                if bar is not None:
                    bar.update(1)
        logs = {"loss": loss_sum / len(x)}
        logs.update({key: float(s / len(x)) for (key, _), s in zip(metrics, metric_sums)})
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
            x: (N, d) inputs, N >= 1. y: targets — (N,) or (N, units); class indices (N,)
                for sparse_categorical_crossentropy.
            batch_size: samples per step (default 32; the last batch holds the remainder).
            epochs: passes over the training data.
            verbose: 0 silent, 1 (or 'auto') a progress bar per epoch, 2 one line per epoch.
            validation_split: fraction in [0, 1) of the samples held out for validation —
                the LAST ones, taken before shuffling (as Keras).
            validation_data: (x_val, y_val); takes precedence over validation_split.
            shuffle: reshuffle the training samples every epoch (the model's generator).
        Raises:
            ValueError: no samples (in x or in validation_data), mismatched x and y, bad
                arguments — all before any weight changes.
        """
        self._require_compiled("fit")
        verbose = _verbosity(verbose)
        batch_size = _check_positive_int(32 if batch_size is None else batch_size, "batch_size")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
        inputs = self._inputs(x)
        _require_samples(len(inputs), "fit")
        y_raw = np.asarray(y.data if isinstance(y, Tensor) else y)
        self._targets(y_raw, len(inputs))  # checks lengths and shapes before any training
        x_train, y_train, validation = self._split_validation(
            inputs, y_raw, validation_split, validation_data
        )
        if validation is not None:
            x_val = self._inputs(validation[0])
            _require_samples(len(x_val), "fit: validation_data")
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
            with _mode(self, True):
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
            logs = {"loss": loss_sum / seen}
            logs.update({key: float(s / seen) for (key, _), s in zip(metrics, metric_sums)})
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
        """One update on a batch (the model in training mode); returns the batch's
        predictions and loss (before the update)."""
        pred = self.forward(Tensor(x))
        loss = self._loss_fn(targets, pred)
        weights = self.trainable_weights
        if weights and loss.requires_grad:
            for w in weights:
                w.grad = None
            loss.backward()
            with no_grad():
                if isinstance(self.optimizer, Optimizer):  # Keras's: apply(grads, variables)
                    self.optimizer.apply([w.grad for w in weights], weights)
                else:  # a tinybn.optim optimizer over the model's parameters
                    self.optimizer.step()
        return pred.data, float(loss.item())

    def evaluate(
        self,
        x: Any,
        y: Any,
        batch_size: int | None = None,
        verbose: Any = "auto",
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        """Loss (and metrics) in inference mode: a float, or [loss, *metrics], or a dict.

        Raises ValueError if x has no samples."""
        self._require_compiled("evaluate")
        verbose = _verbosity(verbose)
        batch_size = _check_positive_int(32 if batch_size is None else batch_size, "batch_size")
        inputs = self._inputs(x)
        _require_samples(len(inputs), "evaluate")
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

    # -- saving ------------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The architecture (and compile settings) as JSON-ready data; see ``save``."""
        layers = []
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"the model holds an nn module ({type(layer).__name__}) that is not a Keras "
                    "layer (e.g. after nn.fold_batchnorm); save its state_dict with tb.save"
                )
            layers.append({"class_name": type(layer).__name__, "config": layer.get_config()})
        config: dict[str, Any] = {"name": self.name, "input_dim": self.input_dim, "layers": layers}
        if self.compiled:
            if not isinstance(self.optimizer, Optimizer) or not isinstance(self.loss, str):
                raise TypeError(
                    "only a model compiled with a Keras optimizer and a loss by name can be "
                    "saved with its compile settings; save the weights with "
                    "tb.save(model.state_dict(), path) instead"
                )
            config["compile"] = {
                "optimizer": {
                    "class_name": type(self.optimizer).__name__,
                    "config": self.optimizer.get_config(),
                },
                "loss": self.loss,
                "metrics": self.metrics_names,
            }
        return config

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to one .npz file: every weight (state_dict keys) and the JSON
        config (architecture, compile settings) as UTF-8 bytes. No pickle: ``load_model``
        rebuilds the model from the config. The optimizer's state (moments) is not saved."""
        self._require_built("save")
        text = json.dumps({"format": "tinybn.keras", "version": 1, **self.get_config()})
        state = dict(self.state_dict())
        state[_CONFIG_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        save(state, path)

    def summary(self, print_fn: Callable[[str], Any] | None = None) -> None:
        """Print each layer's name, output shape and parameter count, then the totals.

        Keras counts BatchNormalization's moving_mean and moving_variance as parameters
        (non-trainable): 4·C per layer, of which 2·C (γ, β) are trainable.
        """
        self._require_built("summary")
        print_fn = print_fn or print
        rows, width = [], self.input_dim
        for name, layer in self._modules.items():
            if isinstance(layer, Layer):
                width, count = layer.output_dim, layer.count_params()
            else:  # an nn module (after nn.fold_batchnorm)
                width = getattr(layer, "out_features", width)
                count = sum(p.size for p in layer.parameters())
            rows.append((f"{name} ({type(layer).__name__})", f"(None, {width})", f"{count:,}"))
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

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def load_model(path: str | os.PathLike) -> Sequential:
    """Rebuild a model written by ``Sequential.save``: layers from the JSON config, then
    every weight (checked: a missing, extra or misshapen array is a ValueError)."""
    state = load(path)
    if _CONFIG_KEY not in state:
        raise ValueError(
            f"load_model: {os.fspath(path)!r} has no Keras config (was it written by "
            "model.save? a bare state_dict loads with model.load_state_dict(tb.load(path)))"
        )
    config = json.loads(state.pop(_CONFIG_KEY).tobytes().decode("utf-8"))
    if config.get("format") != "tinybn.keras":
        raise ValueError(f"load_model: {os.fspath(path)!r} is not a tinybn.keras model file")
    model = Sequential(name=config["name"])
    for entry in config["layers"]:
        model.add(_LAYERS[entry["class_name"]](**entry["config"]))
    if config["input_dim"] is not None and not model.built:
        model.build(config["input_dim"])
    model.load_state_dict(state)
    if "compile" in config:
        settings = config["compile"]
        optimizer_class = _OPTIMIZERS[settings["optimizer"]["class_name"].lower()]
        model.compile(
            optimizer=optimizer_class(**settings["optimizer"]["config"]),
            loss=settings["loss"],
            metrics=settings["metrics"],
        )
    return model


models = SimpleNamespace(Sequential=Sequential, load_model=load_model)
"""``from tinybn.keras import models; models.load_model(path)``, as in Keras."""


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
    "models",
    "load_model",
    "get_activation",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "mean_squared_error",
]
