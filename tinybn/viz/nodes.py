"""What the viz tools need to know about one graph node, for either engine.

A node is a scalar ``Value`` or a ``Tensor``. Both have ``data``, ``grad``, ``label``,
``op`` and ``_parents``; this module turns those into the words and numbers that the
drawings, trees and step-by-step printouts show, and answers two questions about
a node's name: which batch-norm stage it belongs to (its *role*) and whether it is a
learnable scale/shift parameter (γ/β).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tinybn.scalar import Value
from tinybn.tensor import Tensor

# The labels functional.batch_norm gives its intermediates, in the order of
# Ioffe & Szegedy's Algorithm 1. On scalars each element is labelled "role[i,j]".
BN_ROLES = ("μ", "x − μ", "(x − μ)²", "σ²", "σ² + ε", "√(σ² + ε)", "x̂", "γ·x̂", "y")

# Pretty op names for drawings: what a learner writes on paper.
OP_SYMBOLS = {"*": "×", "/": "÷", "-": "−", "neg": "−x", "sum": "Σ", "@": "@", "sqrt": "√"}

_INDEX = re.compile(r"^(?P<role>.*?)\[(?P<index>[0-9, ]+)\]$")


def is_tensor(node: Any) -> bool:
    return isinstance(node, Tensor)


def check_node(node: Any, caller: str) -> None:
    """TypeError unless ``node`` is one graph node: a Value or a Tensor (e.g. the loss)."""
    if not isinstance(node, (Value, Tensor)):
        raise TypeError(
            f"{caller}: expected a Value or a Tensor (e.g. the loss), got {type(node).__name__}"
        )


def role(node: Any) -> str:
    """The label before "[": "x̂[3,1]" → "x̂"; an unindexed label is its own role."""
    match = _INDEX.match(node.label or "")
    return match.group("role") if match else (node.label or "")


def index(node: Any) -> tuple[int, ...] | None:
    """The element index in the label: "x̂[3,1]" → (3, 1); None when there is none."""
    match = _INDEX.match(node.label or "")
    if not match:
        return None
    return tuple(int(part) for part in match.group("index").split(","))


def parameter_kind(node: Any) -> str | None:
    """ "γ" for a scale parameter, "β" for a shift parameter, else None.

    Recognised by name: labels starting with γ / β (but not the batch-norm stage
    "γ·x̂"), or whose last dotted part is gamma/beta/weight/bias ("1.weight").
    """
    name = role(node)
    if not name or name in BN_ROLES:
        return None
    last = name.rsplit(".", 1)[-1].lower()
    if name.startswith("γ") or last in ("gamma", "weight"):
        return "γ"
    if name.startswith("β") or last in ("beta", "bias"):
        return "β"
    return None


def name_parameters(module: Any) -> Any:
    """Label each unlabelled parameter of an ``nn.Module`` by its state_dict name
    ("1.weight", "1.bias", ...) so drawings name it and highlight its gradient path."""
    for key, parameter in module.named_parameters():
        if not parameter.label:
            parameter.label = key
    return module


def op_symbol(op: str) -> str:
    return OP_SYMBOLS.get(op, op)


def summarize(array: Any, precision: int = 4) -> str:
    """A short text for a number or an array: all entries if few, else mean and range."""
    if array is None:
        return "None"
    values = np.asarray(array, dtype=float)
    if values.size == 1:
        return f"{values.item():.{precision}g}"
    if values.size <= 4:
        return "[" + ", ".join(f"{v:.{precision}g}" for v in values.ravel()) + "]"
    mean = values.mean()
    if abs(mean) <= 1e-12 * np.abs(values).max():  # zero up to rounding, e.g. Σ x̂ = 0
        mean = 0.0
    return (
        f"mean {mean:.{precision}g}, "
        f"range [{values.min():.{precision}g}, {values.max():.{precision}g}]"
    )


def shape_text(node: Any) -> str:
    shape = node.shape
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def name(node: Any) -> str:
    """What to call a node in text: its label, else its op, else "leaf"."""
    if node.label:
        return node.label
    if node.op:
        return f"({node.op})"
    return "leaf"


def describe(node: Any, precision: int = 4) -> str:
    """One line: name, data and grad (a Tensor also shows its shape)."""
    if is_tensor(node):
        grad = summarize(node.grad, precision) if node.grad is not None else "None"
        return (
            f"{name(node)} {shape_text(node)}  data {summarize(node.data, precision)}  grad {grad}"
        )
    return f"{name(node)}  data {node.data:.{precision}g}  grad {node.grad:.{precision}g}"


def consumers_of(order: list[Any]) -> dict[int, list[tuple[Any, int]]]:
    """For each node id: the (consumer, parent position) pairs that use it."""
    using: dict[int, list[tuple[Any, int]]] = {id(node): [] for node in order}
    for node in order:
        for position, parent in enumerate(node._parents):
            using[id(parent)].append((node, position))
    return using
