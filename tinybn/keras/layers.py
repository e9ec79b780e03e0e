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
    callable: (its name, a callable on Tensors).

    Examples:
        >>> from tinybn import Tensor
        >>> from tinybn.keras import get_activation
        >>> name, relu = get_activation("relu")
        >>> name, relu(Tensor([-1.0, 2.0])).data
        ('relu', array([0., 2.], dtype=float32))
    """
    name, module = _activation_module(identifier)
    return name, _linear if module is None else module


# -- layers ----------------------------------------------------------------------------------


def _snake_case(name: str) -> str:
    """Keras's ``to_snake_case``: BatchNormalization → batch_normalization, Conv2D → conv2d,
    MaxPooling2D → max_pooling2d (a layer's default name)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _declared_width(input_dim: int | None, input_shape: Sequence[int] | None) -> int | None:
    if input_dim is not None and input_shape is not None:
        raise ValueError("give input_dim or input_shape, not both")
    if input_shape is not None:
        shape = tuple(input_shape)
        if len(shape) != 1:
            raise ValueError(
                f"Dense works on flat feature vectors: input_shape must be (features,), "
                f"got {shape} (put a Flatten() before it)"
            )
        input_dim = shape[0]
    return None if input_dim is None else _check_positive_int(input_dim, "input_dim")


def _sample_shape(input_shape: Any, name: str = "input_shape") -> tuple[int, ...]:
    """The shape of one sample from Keras's ways of giving it: an int d (→ (d,)), a shape
    whose first entry is None (the batch axis: (None, 28, 28, 1) → (28, 28, 1)), or a
    shape of one sample ((d,) or (28, 28, 1))."""
    if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
        return (_check_positive_int(input_shape, name),)
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {input_shape!r}") from None
    if shape and shape[0] is None:
        shape = shape[1:]
    if not shape:
        raise ValueError(f"{name} must give at least one axis besides the batch, got {input_shape}")
    return tuple(_check_positive_int(n, name) for n in shape)


def _shape_text(shape: tuple[int, ...]) -> str:
    """(None, 8, 8, 1): a batch of samples of ``shape``, as Keras prints it."""
    return str((None, *shape))


def _check_sample_shape(shape: tuple[int, ...], expected: tuple[int, ...], what: str) -> None:
    """A batch of ``shape`` holds samples of ``expected`` shape; else a ValueError that names
    the first axis that differs, as Keras's message does."""
    if len(shape) != len(expected) + 1:
        raise ValueError(
            f"{what} is incompatible with the layer: expected ndim={len(expected) + 1}, "
            f"found ndim={len(shape)}: expected input of shape {_shape_text(expected)}, "
            f"got {shape}"
        )
    for axis in range(-1, -len(shape), -1):
        if shape[axis] != expected[axis]:
            raise ValueError(
                f"{what} is incompatible with the layer: expected axis {axis} of input shape "
                f"to have value {expected[axis]}, but received input with shape "
                f"{_shape_text(shape[1:])}"
            )


class Layer(nn.Module):
    """Keras's layer API on an ``nn.Module``. Works on float32 Tensors of shape
    (N, features) or, channels last as Keras, (N, H, W, C).

    A layer is *built* once its input shape is known (Keras's deferred building; PyTorch's
    Lazy modules do the same); building creates its nn layers and weights. ``input_shape``
    and ``output_shape`` are then (None, *one sample's shape*), as Keras prints them;
    ``input_dim`` / ``output_dim`` their last axes (features or channels). ``weights``
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
        self._in_shape: tuple[int, ...] | None = None  # one sample's shape, once built
        self._out_shape: tuple[int, ...] | None = None
        self.declared_input_shape: tuple[int, ...] | None = None  # input_dim= / input_shape=
        object.__setattr__(self, "training", False)  # Keras's calls default to inference

    # subclasses override these
    _sample_ndims: tuple[int, ...] | None = None  # the ranks of one sample it takes (None: any)
    _expects = "input"  # what a sample must be, for the error on a wrong rank

    def _create_weights(self, input_dim: int, rng: np.random.Generator) -> None:
        """Make the weights for samples of shape ``self._in_shape`` (last axis input_dim)."""

    def _output_dim(self, input_dim: int) -> int:
        return input_dim

    def _output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """One output sample's shape from one input sample's (default: the last axis by
        ``_output_dim``)."""
        return shape[:-1] + (self._output_dim(shape[-1]),)

    @property
    def input_dim(self) -> int | None:
        """The last axis of the input (features, or channels for (N, H, W, C))."""
        return None if self._in_shape is None else self._in_shape[-1]

    @property
    def output_dim(self) -> int | None:
        return None if self._out_shape is None else self._out_shape[-1]

    @property
    def input_shape(self) -> tuple[int | None, ...] | None:
        """(None, *sample shape) once built, as Keras shows it."""
        return None if self._in_shape is None else (None, *self._in_shape)

    @property
    def output_shape(self) -> tuple[int | None, ...] | None:
        return None if self._out_shape is None else (None, *self._out_shape)

    @property
    def declared_input_dim(self) -> int | None:
        """The width a flat layer was declared with (input_dim= or input_shape=(d,))."""
        shape = self.declared_input_shape
        return shape[-1] if shape is not None and len(shape) == 1 else None

    def _nn_layout(self, index: int, array: np.ndarray) -> np.ndarray:
        """The inverse of ``_keras_layout``: a weight given as Keras lays it out, as nn keeps it."""
        return self._keras_layout(index, array)

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

    def build(self, input_shape: Any, rng: np.random.Generator | None = None) -> None:
        """Create the weights for inputs of ``input_shape``: a width d, (None, *sample
        shape) as Keras, or one sample's shape ((d,), (H, W, C))."""
        shape = _sample_shape(input_shape)
        if self.name is None:  # a layer used on its own; in a model, the model names it
            self.name = _snake_case(type(self).__name__)
        self._check_rank(shape)
        out_shape = self._output_shape(shape)  # raises (e.g. a kernel larger than the input)
        self._in_shape, self._out_shape = shape, out_shape
        self._create_weights(shape[-1], rng if rng is not None else _generator(None))
        self.train(self.training)  # the nn layers just made take the layer's mode
        self.built = True
        self.requires_grad_(self._trainable)

    def _check_rank(self, shape: tuple[int, ...]) -> None:
        """One sample has a rank this layer takes."""
        if self._sample_ndims is not None and len(shape) not in self._sample_ndims:
            name = self.name or _snake_case(type(self).__name__)
            raise ValueError(
                f'layer "{name}" ({type(self).__name__}) expects {self._expects}, but receives '
                f"input of shape {_shape_text(shape)} ({len(shape) + 1}-d)"
            )

    def __call__(self, x: Any, training: bool | None = None) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x, dtype=FLOATX))
        if x.ndim < 2:
            raise ValueError(
                f'Layer "{self.name}" expects a batch of samples (batch, ...), got {x.shape}'
            )
        if not self.built:
            self.build(x.shape[1:])
        assert self._in_shape is not None
        _check_sample_shape(x.shape, self._in_shape, f'Input 0 of layer "{self.name}"')
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

    def set_weights(self, values: Sequence[Any]) -> None:
        """Replace this layer's weights (Keras's layouts, as get_weights); all checked first."""
        weights = self.weights
        if len(values) != len(weights):
            raise ValueError(
                f'layer "{self.name}": set_weights expected {len(weights)} arrays, got '
                f"{len(values)}"
            )
        arrays = [np.asarray(v, dtype=FLOATX) for v in values]
        for i, (w, a) in enumerate(zip(weights, arrays)):
            expected = self._keras_layout(i, w.data).shape
            if a.shape != expected:
                raise ValueError(
                    f"set_weights: shape mismatch: {w.label}: expected {expected}, got {a.shape}"
                )
        for i, (w, a) in enumerate(zip(weights, arrays)):
            w.data = np.ascontiguousarray(self._nn_layout(i, a))

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

    Examples:
        >>> import numpy as np
        >>> from tinybn import keras
        >>> dense = keras.Dense(4, activation="relu")
        >>> dense(np.ones((2, 3), dtype=np.float32)).shape
        (2, 4)
        >>> dense.count_params()  # 3 · 4 + 4
        16
    """

    _sample_ndims = (1,)
    _expects = "input of shape (batch, features) (put a Flatten() before it)"

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
        width = _declared_width(input_dim, input_shape)
        self.declared_input_shape = None if width is None else (width,)

    def _output_dim(self, input_dim: int) -> int:
        return self.units

    def _create_weights(self, input_dim: int, rng: np.random.Generator) -> None:
        limit = math.sqrt(6.0 / (input_dim + self.units))
        kernel = rng.uniform(-limit, limit, (input_dim, self.units)).astype(FLOATX)
        # nn.Linear draws PyTorch's init, which the glorot kernel replaces: that draw uses a
        # fixed throwaway generator, so it never consumes the model's stream
        linear = nn.Linear(input_dim, self.units, self.use_bias, rng=np.random.default_rng(0))
        _adopt_weights(self, "linear", linear, kernel.T)

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
        axis: the feature axis, -1: the last (for (N, C) input the same as 1; for
            (N, H, W, C) images, channels last as Keras, the same as 3).
    On (N, H, W, C) input this is spatial batch norm (``nn.BatchNorm2d``'s math with the
    channels last): one μ_B and σ²_B per channel over the N·H·W values of the batch. The
    input is viewed as (N, C, H·W), normalized as an ``nn.BatchNorm1d`` does, and viewed
    back.
    Weights (each (C,)): gamma (ones), beta (zeros) — trainable; moving_mean (zeros),
        moving_variance (ones) — non-trainable. They are nn's weight, bias, running_mean
        and running_var (state_dict keys); nn's num_batches_tracked counts the steps.

    Examples:
        >>> import numpy as np
        >>> from tinybn import keras
        >>> bn = keras.BatchNormalization()  # momentum 0.99 (on the old value), epsilon 1e-3
        >>> y = bn(np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32), training=True)
        >>> bn.moving_mean.data  # 0.99 · 0 + 0.01 · batch mean
        array([0.02      , 0.19999999], dtype=float32)
    """

    _allow_batch_of_one = True
    _sample_ndims = (1, 3)
    _expects = "input of shape (batch, features) or (batch, height, width, channels)"
    channels_last = True  # nn.fold_batchnorm folds it into a channels-last conv before it

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
        if isinstance(axis, bool) or axis not in (-1, 1, 3):
            raise ValueError(
                f"tinybn.keras normalizes the last axis (axis=-1; 1 for (N, C), 3 for "
                f"(N, H, W, C)) only, got axis={axis}"
            )
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        self._init_layer(name, trainable)
        self.momentum = float(momentum)
        self.eps = float(epsilon)
        self.center = center
        self.scale = scale
        self.axis = int(axis)

    @property
    def epsilon(self) -> float:
        return self.eps

    def _check_rank(self, shape: tuple[int, ...]) -> None:
        super()._check_rank(shape)
        if self.axis not in (-1, len(shape)):  # the last axis of (N, *shape)
            raise ValueError(
                f'layer "{self.name}": axis={self.axis} is not the last axis of input of shape '
                f"{_shape_text(shape)}; tinybn.keras normalizes the last axis (axis=-1) only"
            )

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
                return self._channels_last_forward(x)
        return self._channels_last_forward(x)

    def _channels_last_forward(self, x: Any) -> Tensor:
        """(N, C) as nn.BatchNorm1d; (N, ..., C) viewed as (N, C, L), normalized, viewed back."""
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x, dtype=FLOATX))
        if x.ndim <= 2:
            return nn.BatchNorm1d.forward(self, x)
        shape = x.shape
        by_channel = x.reshape(shape[0], -1, shape[-1]).permute(0, 2, 1)
        return nn.BatchNorm1d.forward(self, by_channel).permute(0, 2, 1).reshape(shape)

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
            "axis": self.axis,
        }

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, momentum={self.momentum} (Keras: weight of the old value), "
            f"epsilon={self.eps}, center={self.center}, scale={self.scale}"
        )


class Dropout(Layer, nn.Dropout):
    """Inverted dropout (``nn.Dropout``): in training, zero each entry with probability
    ``rate`` and scale the rest by 1/(1 − rate); identity at inference. ``seed`` fixes the
    masks; otherwise they come from the model's generator.

    Examples:
        >>> import numpy as np
        >>> from tinybn import keras
        >>> drop = keras.Dropout(0.5, seed=0)
        >>> drop(np.ones((1, 4), dtype=np.float32), training=False).data  # inference: unchanged
        array([[1., 1., 1., 1.]], dtype=float32)
    """

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
    """Apply an activation by name ('relu', 'sigmoid', 'tanh', 'softmax', 'linear') or callable.

    Examples:
        >>> import numpy as np
        >>> from tinybn import keras
        >>> keras.Activation("relu")(np.array([[-1.0, 2.0]], dtype=np.float32)).data
        array([[0., 2.]], dtype=float32)
    """

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
    """Declares the input shape of one sample; made by ``Input(shape=(d,))`` or
    ``Input(shape=(H, W, C))``. Not listed in ``model.layers``."""

    def __init__(self, shape: Sequence[int], name: str | None = None) -> None:
        nn.Module.__init__(self)
        self._init_layer(name, True)
        self.declared_input_shape = _sample_shape(shape, "shape")

    def forward(self, x: Tensor) -> Tensor:
        return x


def _adopt_weights(layer: Any, slot: str, module: nn.Module, weight: np.ndarray) -> None:
    """Make ``module`` (a fresh nn layer) the Keras ``layer``'s child ``slot`` with Keras's
    initial weights — ``weight`` (the glorot kernel, in nn's layout) and a zero bias — named
    "<layer>/kernel" and "<layer>/bias", followed by the layer's activation, if any."""
    module.weight.data = np.ascontiguousarray(weight)
    module.weight.label = f"{layer.name}/kernel"
    bias = getattr(module, "bias", None)
    if bias is not None:
        bias.data = np.zeros(bias.data.shape, dtype=FLOATX)
        bias.label = f"{layer.name}/bias"
    layer.add_module(slot, module)
    if layer._activation is not None:
        layer.add_module("activation", layer._activation)


def Input(shape: Sequence[int], name: str | None = None) -> InputLayer:
    """``Input(shape=(d,))`` or ``Input(shape=(H, W, C))`` as the first entry of a
    Sequential model fixes the shape of its samples.

    Examples:
        >>> from tinybn import keras
        >>> model = keras.Sequential([keras.Input(shape=(4,)), keras.Dense(2)])
        >>> model.count_params()  # 4 · 2 + 2
        10
    """
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
