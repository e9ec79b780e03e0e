"""Keras's Sequential model (an nn.Sequential): compile, fit, evaluate, predict, summary,
get/set_weights, save, and ``load_model``.

``from tinybn.keras import models; models.load_model(path)``, as in Keras.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinybn import nn, optim
from tinybn.autograd import no_grad
from tinybn.data import batch_indices
from tinybn.keras.layers import (
    _LAYERS,
    FLOATX,
    InputLayer,
    Layer,
    _check_positive_int,
    _check_sample_shape,
    _generator,
    _mode,
    _sample_shape,
    _shape_text,
    _snake_case,
    known_name,
)
from tinybn.keras.losses import _LOSSES, _METRICS, _metric_values, _resolve_metric
from tinybn.keras.optimizers import _OPTIMIZERS, Optimizer
from tinybn.serialization import load, save
from tinybn.tensor import Tensor


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


def _not_compiled(y_true: np.ndarray, y_pred: Tensor) -> Tensor:
    raise ValueError("You must call compile() before training or evaluating")


_CONFIG_KEY = "__keras_config__"  # the JSON config's entry in a saved model's .npz


class Sequential(nn.Sequential):
    """A linear stack of layers, built, compiled and trained as in Keras — and an
    ``nn.Sequential`` whose children are the layers, named as Keras names them.

    Args:
        layers: an optional list of layers (an ``Input(shape=(d,))`` or
            ``Input(shape=(H, W, C))`` may come first).
        name: the model's name in ``summary()``.
        seed: seed of the model's generator (weight init, shuffling, dropout masks).
    The model starts in inference (eval) mode: ``model(x)`` uses the moving statistics, as
    Keras's calls default to; ``model(x, training=True)`` or ``model.train()`` for training.

    Examples:
        >>> import numpy as np
        >>> from tinybn import keras
        >>> model = keras.Sequential(
        ...     [
        ...         keras.Dense(3, activation="relu", input_dim=2),
        ...         keras.BatchNormalization(),
        ...         keras.Dense(1, activation="sigmoid"),
        ...     ]
        ... )
        >>> model.compile(optimizer="adam", loss="binary_crossentropy")
        >>> model.count_params()  # 9 + 12 (γ, β and the two moving statistics) + 4
        25
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
        self._input_shape: tuple[int, ...] | None = None  # one sample's shape
        self.optimizer: optim.Optimizer | None = None
        self.loss: str | Callable | None = None
        self.metrics_names: list[str] = []
        self._loss_fn: Callable[[np.ndarray, Tensor], Tensor] = _not_compiled
        self.compiled = False
        self.history: History | None = None
        for layer in layers or []:
            self.add(layer)

    # -- building --------------------------------------------------------------------------

    def add(self, layer: nn.Module) -> None:
        """Append a layer; it is built at once if the model's input shape is known."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a tinybn.keras layer, got {layer!r}")
        if isinstance(layer, InputLayer):
            if self._modules or self._input_shape is not None:
                raise ValueError("Input(...) must be the first entry of a Sequential model")
            self._input_shape = layer.declared_input_shape
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
        if not layers and self._input_shape is None and layer.declared_input_shape is not None:
            self._input_shape = layer.declared_input_shape
        incoming = self._shape_after(layers) if layers else self._input_shape
        self._check_width(layer, name, incoming)
        layer.name = name
        self.add_module(name, layer)
        layer.train(self.training)
        if self._input_shape is not None:
            self._build_layers()

    def append(self, module: nn.Module) -> Sequential:
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

    def _shape_after(self, layers: Sequence[nn.Module]) -> tuple[int, ...] | None:
        """One sample's shape after ``layers`` (the model's first ones); None if unknown.
        An nn module put in by nn.fold_batchnorm (an Identity) keeps the shape."""
        shape = self._input_shape
        for layer in layers:
            if isinstance(layer, Layer):
                shape = layer._out_shape
        return shape

    @staticmethod
    def _check_width(layer: Any, name: str, shape: tuple[int, ...] | None) -> None:
        """A layer that declares or was built for an input shape must receive that shape."""
        if shape is None:
            return
        declared = getattr(layer, "declared_input_shape", None)
        if declared is not None and declared != shape:
            what = f"input_dim={declared[0]}" if len(declared) == 1 else f"input_shape={declared}"
            got = f"{shape[0]} features" if len(shape) == 1 else f"input of shape {shape}"
            raise ValueError(
                f'layer "{name}" declares {what}, but receives {got} from the layer before it'
            )
        if getattr(layer, "built", False) and layer._in_shape != shape:
            built = layer._in_shape
            if len(built) == len(shape) == 1:
                raise ValueError(
                    f'layer "{name}" was built for {built[0]} input features, '
                    f"but receives {shape[0]}"
                )
            raise ValueError(
                f'layer "{name}" was built for input of shape {_shape_text(built)}, '
                f"but receives {_shape_text(shape)}"
            )

    def _build_layers(self) -> None:
        """Build every layer not built yet, each from the shape its predecessor outputs.

        Every layer's shapes are checked first, so a model that cannot be built is left as
        it was."""
        shape = self._input_shape
        for name, layer in self._modules.items():
            if isinstance(layer, Layer) and shape is not None:
                self._check_width(layer, name, shape)
                if not layer.built:
                    layer._check_rank(shape)
                    shape = layer._output_shape(shape)
                else:
                    shape = layer._out_shape
        shape = self._input_shape
        for name, layer in self._modules.items():
            if not isinstance(layer, Layer):  # an nn module put in by nn.fold_batchnorm
                continue
            self._check_width(layer, name, shape)
            if not layer.built and shape is not None:
                layer.build(shape, self._rng)
            shape = layer._out_shape

    def build(self, input_shape: int | Sequence[int | None]) -> None:
        """Build the weights for inputs of shape (None, d) or (None, H, W, C) (or width d).

        As in Keras the shape includes the batch axis; its first entry (None or a batch
        size) is dropped. A width d or (d,) alone is accepted too."""
        if isinstance(input_shape, (int, np.integer)) or len(tuple(input_shape)) == 1:
            shape = _sample_shape(input_shape, "input_shape")
        else:
            shape = _sample_shape((None, *tuple(input_shape)[1:]), "input_shape")
        if self._input_shape is not None and self._input_shape != shape:
            if len(shape) == len(self._input_shape) == 1:
                raise ValueError(
                    f"model expects {self._input_shape[0]} input features, got {shape[0]}"
                )
            raise ValueError(
                f"model expects input of shape {_shape_text(self._input_shape)}, "
                f"got {_shape_text(shape)}"
            )
        if not self._modules:
            raise ValueError("cannot build a Sequential model with no layers")
        before, self._input_shape = self._input_shape, shape
        try:
            self._build_layers()
        except (ValueError, TypeError):
            self._input_shape = before
            raise

    @property
    def input_dim(self) -> int | None:
        """The last axis of the input (features, or channels of (N, H, W, C) images)."""
        return None if self._input_shape is None else self._input_shape[-1]

    @property
    def input_shape(self) -> tuple[int | None, ...] | None:
        """(None, *one sample's shape), once known."""
        return None if self._input_shape is None else (None, *self._input_shape)

    @property
    def output_shape(self) -> tuple[int | None, ...] | None:
        shape = self._shape_after(self.layers)
        return None if shape is None or not self.layers else (None, *shape)

    @property
    def built(self) -> bool:
        return bool(self._modules) and all(getattr(m, "built", True) for m in self.layers)

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"{what}: this model has not yet been built: give the first layer "
                "input_dim= (or input_shape=(d,) / (H, W, C)), start with Input(shape=...), "
                "or call build((None, d)), fit or predict first"
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
            w.data = np.ascontiguousarray(layer._nn_layout(i, a))

    # -- running ---------------------------------------------------------------------------

    def _inputs(self, x: Any) -> np.ndarray:
        """x as a float32 (N, d) or (N, H, W, C) array; builds the model from its shape if
        it is not built yet."""
        data = x.data if isinstance(x, Tensor) else x
        try:
            array = np.asarray(data, dtype=FLOATX)
        except (TypeError, ValueError):
            raise TypeError(f"x must be numeric, got {type(x).__name__}") from None
        if array.ndim < 2 or (self._input_shape is not None and len(self._input_shape) == 1):
            if array.ndim != 2:
                raise ValueError(f"x must have shape (samples, features), got {array.shape}")
        if not self._modules:
            raise ValueError("this Sequential model has no layers; add some first")
        if self._input_shape is None:
            self.build((None, *array.shape[1:]))
        assert self._input_shape is not None
        _check_sample_shape(
            array.shape, self._input_shape, f'x: Input 0 of layer "{self.layers[0].name}"'
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
            return np.zeros((0, *(self._shape_after(self.layers) or (0,))), dtype=FLOATX)
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
            key = known_name("optimizer", optimizer, _OPTIMIZERS, "or an Optimizer instance")
            optimizer_obj: optim.Optimizer = _OPTIMIZERS[key]()
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
        units = self.output_dim or 0
        return [(m, _resolve_metric(m.lower(), y_raw, units)) for m in self.metrics_names]

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
        if isinstance(self.optimizer, Optimizer):  # checked before a step changes anything
            self.optimizer.check_variables(self.trainable_weights)
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
                elif self.optimizer is not None:  # a tinybn.optim optimizer
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
        config: dict[str, Any] = {
            "name": self.name,
            "input_shape": None if self._input_shape is None else list(self._input_shape),
            "layers": layers,
        }
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
        rows, shape = [], self._input_shape
        for name, layer in self._modules.items():
            if isinstance(layer, Layer):
                shape, count = layer._out_shape, layer.count_params()
            else:  # an nn module (an Identity after nn.fold_batchnorm) keeps the shape
                count = sum(p.size for p in layer.parameters())
            assert shape is not None
            rows.append((f"{name} ({type(layer).__name__})", _shape_text(shape), f"{count:,}"))
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

    def __bool__(self) -> bool:  # a model is truthy, even with no layers (as in Keras)
        return True

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def load_model(path: str | os.PathLike) -> Sequential:
    """Rebuild a model written by ``Sequential.save``: layers from the JSON config, then
    every weight (checked: a missing, extra or misshapen array is a ValueError).

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from tinybn import keras
        >>> model = keras.Sequential([keras.Dense(2, input_dim=3)])
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> model.save(path)
        >>> again = keras.load_model(path)
        >>> x = np.ones((1, 3), dtype=np.float32)
        >>> bool(np.allclose(again.predict(x, verbose=0), model.predict(x, verbose=0)))
        True
    """
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
    input_shape = config.get("input_shape", config.get("input_dim"))  # older files: input_dim
    if input_shape is not None and not model.built:
        model.build((None, *input_shape) if isinstance(input_shape, list) else input_shape)
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


__all__ = ["Sequential", "History", "load_model"]
