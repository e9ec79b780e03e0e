"""A Keras-style facade over ``tinybn.nn``: Sequential, Dense, Conv2D, MaxPooling2D,
Flatten, BatchNormalization, fit.

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

This package is an adapter, not a second framework. A Keras ``Sequential`` IS an
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
* Images are channels last, (N, H, W, C) (nn: (N, C, H, W)): ``Conv2D`` holds an
  ``nn.Conv2d`` that transposes at its boundary, with Keras's 'valid'/'same' padding and
  kernel layout (kh, kw, C_in, filters); ``MaxPooling2D`` pools as ``nn.MaxPool2d`` and
  ``Flatten`` is an ``nn.Flatten`` on that layout; ``BatchNormalization`` on (N, H, W, C)
  normalizes each channel over N·H·W (spatial batch norm). ``nn.fold_batchnorm`` folds a
  ``Conv2D`` without activation into the ``BatchNormalization`` after it.
* Optimizers use Keras's defaults and update rules (``Adam``: epsilon 1e-7 added to √v,
  not to the bias-corrected √v̂; ``SGD``: learning rate 0.01, velocity form of momentum;
  ``RMSprop``: epsilon inside the square root).
* Calls default to inference (``model(x)`` is ``model(x, training=False)``); a model
  starts in eval mode. Weights and inputs are float32 (Keras's ``floatx``).

Randomness (weight initialization, shuffling in ``fit``, dropout masks) comes from the
model's own generator, made by ``layers._generator``: ``Sequential(seed=0)`` makes everything
reproducible.

Modules: ``layers`` (the layers, built from nn), ``layers_conv`` (the image layers),
``losses`` (losses and accuracy metrics),
``optimizers`` (Keras's update rules on tinybn.optim), ``models`` (Sequential: compile, fit,
evaluate, predict, summary, get/set_weights, save; ``load_model``).
"""

from tinybn.keras import layers, layers_conv, losses, models, optimizers
from tinybn.keras.layers import (
    Activation,
    BatchNormalization,
    Dense,
    Dropout,
    Input,
    InputLayer,
    Layer,
    get_activation,
)
from tinybn.keras.layers_conv import Conv2D, Flatten, MaxPooling2D
from tinybn.keras.losses import (
    binary_crossentropy,
    categorical_crossentropy,
    mean_squared_error,
    sparse_categorical_crossentropy,
)
from tinybn.keras.models import History, Sequential, load_model
from tinybn.keras.optimizers import SGD, Adam, Optimizer, RMSprop

__all__ = [
    "Sequential",
    "Layer",
    "Dense",
    "Conv2D",
    "MaxPooling2D",
    "Flatten",
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
    "layers",
    "layers_conv",
    "losses",
    "optimizers",
    "models",
    "load_model",
    "get_activation",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "mean_squared_error",
]
