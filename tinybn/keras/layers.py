"""Keras's layers as nn modules: Dense (an nn.Linear and its activation), BatchNormalization
(an nn.BatchNorm1d with Keras's conventions), Dropout, Activation, Input.

Also the one source of this package's randomness (``_generator``) and the map from Keras's
``training=`` call argument to nn's train/eval mode (``_mode``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np

from tinybn import nn
from tinybn import random as tinybn_random
from tinybn.tensor import Tensor

FLOATX = np.float32
EPSILON = 1e-7  # keras.config.epsilon(): the clip used by the cross-entropy losses


def _generator(seed: int | None) -> np.random.Generator:
    """THE source of randomness of this module: a model's generator (weight init, shuffling,
    dropout seeds) and a layer's when it is built on its own. Without a seed it is drawn
    from tinybn's default generator, so ``tb.manual_seed(n)`` makes a Keras model
    reproducible too."""
    return tinybn_random.generator(seed)


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


# each named activation as the nn module that applies it; 'linear' has none (nothing is
# applied, so a Dense without an activation is a bare Linear that nn.fold_batchnorm can fold)
_ACTIVATIONS: dict[str, Callable[[], nn.Module] | None] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=-1),  # over the last axis, as Keras
    "linear": None,
}


class CustomActivation(nn.Module):
    """A user's activation function (a callable on Tensors) as a module."""

    def __init__(self, function: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)

    def extra_repr(self) -> str:
        return getattr(self.function, "__name__", "custom")


def check_input_width(layer: str | None, expected: int | None, got: int) -> None:
    """Keras's error for an input whose last axis is not the width the layer was built for."""
    if got != expected:
        raise ValueError(
            f'Input 0 of layer "{layer}" is incompatible with the layer: expected axis -1 of '
            f"input shape to have value {expected}, but received input with shape {(None, got)}"
        )


def known_name(kind: str, name: str, table: Mapping[str, Any], otherwise: str) -> str:
    """``name`` lower-cased, as Keras looks names up; ValueError listing the known ones."""
    key = name.lower()
    if key not in table:
        raise ValueError(
            f"Unknown {kind} {name!r}; known: {', '.join(sorted(table))} ({otherwise})"
        )
    return key


def _activation_module(identifier: str | Callable | None) -> tuple[str, nn.Module | None]:
    """(name, nn module or None for 'linear') of an activation name, None, or a callable."""
    if identifier is None:
        return "linear", None
    if isinstance(identifier, str):
        key = known_name(
            "activation", identifier, _ACTIVATIONS, "or None, or a callable on Tensors"
        )
        make = _ACTIVATIONS[key]
        return key, None if make is None else make()
    if callable(identifier):
        return getattr(identifier, "__name__", "custom"), CustomActivation(identifier)
    raise TypeError(f"activation must be a name, None or a callable, got {identifier!r}")


def get_activation(identifier: str | Callable | None) -> tuple[str, Callable[[Tensor], Tensor]]:
    """An activation by name ('relu', 'sigmoid', 'tanh', 'softmax', 'linear' / None) or
    callable: (its name, a callable on Tensors)."""
    name, module = _activation_module(identifier)
    return name, _linear if module is None else module


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
    def _create_weights(self, input_dim: int, rng: np.random.Generator) -> None:
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
        self._create_weights(input_dim, rng if rng is not None else _generator(None))
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
        check_input_width(self.name, self.input_dim, x.shape[1])
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

    def __bool__(self) -> bool:  # a layer is truthy, even one that holds no nn layers yet
        return True


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
        bias (units,), zeros. ``kernel`` is an (input_dim, units) view of ``linear.weight``,
        which is (units, input_dim) as in PyTorch.
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

    def _create_weights(self, input_dim: int, rng: np.random.Generator) -> None:
        limit = math.sqrt(6.0 / (input_dim + self.units))
        kernel = rng.uniform(-limit, limit, (input_dim, self.units)).astype(FLOATX)
        # nn.Linear draws PyTorch's init, which the glorot kernel replaces: that draw uses a
        # fixed throwaway generator, so it never consumes the model's stream
        linear = nn.Linear(input_dim, self.units, self.use_bias, rng=np.random.default_rng(0))
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

    def _create_weights(self, input_dim: int, rng: np.random.Generator) -> None:
        training = self.training
        nn.BatchNorm1d.__init__(
            self,
            input_dim,
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
        momentum = float(cast(float, self.momentum))  # never None here (checked in __init__)
        return momentum, 1.0 - momentum, 1.0 - momentum

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
        weights = (self.gamma, self.beta, self.moving_mean, self.moving_variance)
        return [w for w in weights if w is not None]

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

    def _create_weights(self, input_dim: int, rng: np.random.Generator) -> None:
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


__all__ = [
    "Layer",
    "Dense",
    "BatchNormalization",
    "Dropout",
    "Activation",
    "Input",
    "InputLayer",
    "CustomActivation",
    "get_activation",
]
