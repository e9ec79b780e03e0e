"""The autodiff core shared by both engines.

A graph node (a scalar ``Value`` or a ``Tensor``) needs only two things here:

* ``node._parents`` — the tuple of nodes it was computed from (empty for a leaf);
* ``node._backward()`` — push ``node.grad`` into its parents' grads, by the chain rule.

Everything else — the order in which nodes are visited, accumulating gradients over
repeated ``backward()`` calls, switching gradient recording off — lives here, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# The only global mutable state in tinybn: whether new operations are recorded into a
# graph, and whether every new op's output is checked for NaN/inf.
_grad_enabled = True
_detect_anomaly = False


def is_grad_enabled() -> bool:
    """True when operations are being recorded for backward()."""
    return _grad_enabled


@contextmanager
def no_grad() -> Iterator[None]:
    """Context in which no graph is recorded (inference, parameter updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


@contextmanager
def enable_grad() -> Iterator[None]:
    """Context that turns graph recording back on inside ``no_grad``."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, True
    try:
        yield
    finally:
        _grad_enabled = previous


def is_anomaly_enabled() -> bool:
    """True inside ``detect_anomaly()``."""
    return _detect_anomaly


@contextmanager
def detect_anomaly() -> Iterator[None]:
    """Context in which every op checks its output and names the first one that is NaN/inf."""
    global _detect_anomaly
    previous, _detect_anomaly = _detect_anomaly, True
    try:
        yield
    finally:
        _detect_anomaly = previous


def topological_order(root: Any) -> list[Any]:
    """Every node that ``root`` depends on, each listed after all of its parents.

    An explicit stack instead of recursion, so a chain a million nodes deep works.
    Each stack entry is ``(node, parents_done)``: a node is appended to the order only
    when it is popped the second time, after all of its parents have been appended.
    """
    order: list[Any] = []
    seen: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if id(parent) not in seen:
                stack.append((parent, False))
    return order


def run_backward(root: Any, seed: Any, order: list[Any] | None = None) -> None:
    """Backpropagate ``seed`` (dL/droot) through the graph of ``root``.

    Gradients accumulate, as in PyTorch: a second call adds to the grads of the first.
    Interior nodes are zeroed for the duration of the pass, so that what they push to
    their parents is this pass's gradient only, and then get their earlier grad back
    added — without that, a second call would push the first pass's gradient twice.
    """
    if order is None:
        order = topological_order(root)
    interior = [node for node in order if node._parents]
    earlier = [node.grad for node in interior]
    for node in interior:
        node._zero_grad()
    root._accumulate_grad(seed)
    for node in reversed(interior):
        node._backward()
    for node, grad in zip(interior, earlier):
        if grad is not None:
            node._accumulate_grad(grad)


def zero_grad_graph(root: Any) -> None:
    """Reset the grad of every node in the graph of ``root``."""
    for node in topological_order(root):
        node._zero_grad()
