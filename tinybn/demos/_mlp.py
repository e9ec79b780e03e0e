"""The small fully connected classifiers the Demos I experiments train, and their loop.

One place for "an MLP with or without batch norm" and "train it for N steps with SGD",
so that every demo compares the same kind of network in the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import tinybn as tb
from tinybn import Tensor, nn
from tinybn import functional as F
from tinybn.data import DataLoader
from tinybn.demos._common import progress

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}


def build_mlp(
    sizes: list[int],
    activation: str = "relu",
    bn: str | None = "before",
    dropout: float = 0.0,
    init_scale: float | None = None,
    rng: np.random.Generator | None = None,
) -> nn.Sequential:
    """Linear layers of ``sizes`` (e.g. [64, 100, 100, 10]); every hidden layer gets

    ``bn="before"``: Linear → BatchNorm1d → act   (normalize z, as Ioffe & Szegedy do)
    ``bn="after"``:  Linear → act → BatchNorm1d   (normalize a, the other placement)
    ``bn=None``:     Linear → act
    and then Dropout(dropout) if dropout > 0. The last Linear gives the logits.

    Weights come from ``rng`` (so runs are reproducible): PyTorch's default init, or, if
    ``init_scale`` is given, W ~ N(0, init_scale² / fan_in) with zero biases
    (1.0 is LeCun-normal, √2 is He-normal).
    """
    if bn not in ("before", "after", None):
        raise ValueError(f"bn must be 'before', 'after' or None, got {bn!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    rng = rng if rng is not None else np.random.default_rng(0)
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out, rng=rng))
        if i == len(sizes) - 2:
            break
        if bn == "before":
            layers.append(nn.BatchNorm1d(fan_out))
        layers.append(ACTIVATIONS[activation]())
        if bn == "after":
            layers.append(nn.BatchNorm1d(fan_out))
        if dropout > 0:
            layers.append(nn.Dropout(dropout, rng=rng))
    model = nn.Sequential(*layers)
    if init_scale is not None:
        rescale_init(model, rng, init_scale)
    return model


def rescale_init(model: nn.Module, rng: np.random.Generator, scale: float) -> None:
    """Redraw every Linear's weight (out, in) as N(0, scale² / fan_in) and zero its bias."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            fan_in = module.weight.shape[1]
            weight = rng.normal(0.0, scale / np.sqrt(fan_in), size=module.weight.shape)
            module.weight.data = weight.astype(module.weight.dtype)
            module.bias.data = np.zeros_like(module.bias.data)


def endless_batches(
    X: np.ndarray, y: np.ndarray, batch_size: int, seed: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """Shuffled mini-batches (xb, yb) as Tensors, epoch after epoch; each epoch's short
    last batch is dropped so every batch has ``batch_size`` examples.

    Raises ValueError (at the call, not at the first batch) if there are fewer examples
    than one batch: every epoch would be empty, and the loop would never yield.
    """
    if len(X) < batch_size:
        raise ValueError(
            f"endless_batches: {len(X)} example(s) cannot fill one batch of {batch_size} "
            "(the short last batch is dropped, so every epoch would be empty); use more "
            "data or a batch size of at most the number of examples"
        )
    loader = DataLoader(X, y, batch_size=batch_size, shuffle=True, drop_last=True, seed=seed)
    return _forever(loader)


def _forever(loader: DataLoader) -> Iterator[tuple[Tensor, Tensor]]:
    while True:
        yield from loader


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block ``model`` is in eval mode and no graph is recorded; afterwards it is
    back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        with tb.no_grad():
            yield model
    finally:
        model.train(was_training)


@contextmanager
def state_restored(model: nn.Module) -> Iterator[nn.Module]:
    """Afterwards ``model``'s parameters and running statistics are as they were before the
    block: for probes that take steps or run batches in training mode, then undo them."""
    saved = {name: value.copy() for name, value in model.state_dict().items()}
    try:
        yield model
    finally:
        model.load_state_dict(saved)


def evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` in eval mode; its mode is restored after."""
    with evaluating(model):
        logits = model(Tensor(X))
        loss = F.cross_entropy(logits, y).item()
    accuracy = float(np.mean(logits.data.argmax(axis=1) == y))
    return loss, accuracy


def train_classifier(
    model: nn.Module,
    optimizer: Any,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    steps: int,
    batch_size: int,
    seed: int,
    eval_every: int,
    on_eval: Callable[[int], None] | None = None,
    desc: str = "",
) -> dict[str, Any]:
    """Mini-batch training with cross-entropy; evaluates every ``eval_every`` steps.

    Returns a history: "step", "train_loss" (of the whole training set, eval mode),
    "train_acc", "test_loss", "test_acc" at each evaluation, and "batch_loss" at every step.
    A run whose loss becomes NaN/inf stops there ("diverged" is then True).
    ``on_eval(step)`` is called at each evaluation (to record activations, say).
    """
    evaluated = ("step", "train_loss", "train_acc", "test_loss", "test_acc")
    history: dict[str, Any] = {key: [] for key in evaluated}
    history["batch_loss"] = []
    history["diverged"] = False

    def record(step: int) -> None:
        train_loss, train_acc = evaluate(model, *train)
        test_loss, test_acc = evaluate(model, *test)
        for key, value in zip(evaluated, (step, train_loss, train_acc, test_loss, test_acc)):
            history[key].append(value)
        if on_eval is not None:
            on_eval(step)

    model.train()
    record(0)
    batches = endless_batches(*train, batch_size, seed)
    # a diverging run (too high a learning rate) overflows on its way to inf; that is a
    # result here, not an error, so numpy's warnings about it are silenced
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for step in progress(range(1, steps + 1), desc=desc or "training"):
            xb, yb = next(batches)
            loss = F.cross_entropy(model(xb), yb)
            if not np.isfinite(loss.item()):
                history["diverged"] = True
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history["batch_loss"].append(loss.item())
            if step % eval_every == 0 or step == steps:
                record(step)
    return history


def steps_to_threshold(batch_loss: list[float], threshold: float, window: int = 20) -> int | None:
    """First step at which the mean of the last ``window`` batch losses is below threshold."""
    losses = np.asarray(batch_loss, dtype=float)
    if len(losses) < window:
        return None
    smoothed = np.convolve(losses, np.ones(window) / window, mode="valid")
    below = np.nonzero(smoothed < threshold)[0]
    return int(below[0] + window) if below.size else None


def digits_split(seed: int, n_train: int | None = None) -> tuple[tuple, tuple]:
    """The 8×8 digits, standardized with the training split's statistics, as float32.

    Returns ((X_train, y_train), (X_test, y_test)); a quarter of the data is the test set.
    ``n_train``: keep only the first n_train training examples (a small training set).
    """
    from tinybn import data

    X, y = data.digits()
    X_train, X_test, y_train, y_test = data.train_test_split(X, y, test_size=0.25, seed=seed)
    if n_train is not None:
        X_train, y_train = X_train[:n_train], y_train[:n_train]
    X_train, X_test, _ = data.standardize(X_train, X_test)
    return (
        (X_train.astype(np.float32), y_train.astype(np.int64)),
        (X_test.astype(np.float32), y_test.astype(np.int64)),
    )
