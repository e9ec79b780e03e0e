"""``contributions``: how a node's gradient was made up, route by route.

A node used in several places gets the sum of what each use sends back. For an input
xᵢ of batch norm there are three such routes (Ioffe & Szegedy 2015, section 3):

    ∂L/∂xᵢ = ∂L/∂x̂ᵢ · 1/√(σ² + ε)      through x̂ᵢ directly
           + ∂L/∂σ² · 2(xᵢ − μ)/m       through the variance σ²
           + ∂L/∂μ  · 1/m               through the mean μ

Each route is measured on the graph itself: the gradient that arrived at the route's
node (x̂ᵢ, σ², μ) is carried back to xᵢ along only the paths that reach that node
without passing another route node first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinybn.autograd import topological_order
from tinybn.tensor import _unbroadcast
from tinybn.viz.nodes import check_node, consumers_of, is_tensor, name, role, summarize

BATCH_NORM_ROUTES = ("x̂", "μ", "σ²")
ROUTE_MEANING = {
    "x̂": "∂L/∂x̂ᵢ · 1/√(σ² + ε)   (directly through x̂)",
    "σ²": "∂L/∂σ² · 2(xᵢ − μ)/m   (through the variance)",
    "μ": "∂L/∂μ · 1/m            (through the mean)",
}


@dataclass
class Route:
    """The part of a node's gradient that came back through ``via``."""

    via: Any
    amount: Any  # a float, or an array of the node's shape

    @property
    def role(self) -> str:
        return role(self.via) or f"({self.via.op})"


@dataclass
class Contributions:
    """The routes of ``node``'s gradient; their amounts add up to ``node.grad``."""

    node: Any
    routes: list[Route]

    @property
    def total(self) -> Any:
        return sum((route.amount for route in self.routes), start=0.0)

    def by_role(self) -> dict[str, Any]:
        """Route amounts summed per role of the route node, e.g. {"x̂": ..., "μ": ..., "σ²": ...}."""
        grouped: dict[str, Any] = {}
        for route in self.routes:
            grouped[route.role] = grouped.get(route.role, 0.0) + route.amount
        return grouped

    def __str__(self) -> str:
        lines = [f"{name(self.node)}.grad = {summarize(self.node.grad)}, made up of:"]
        width = max((len(name(route.via)) for route in self.routes), default=0)
        for route in self.routes:
            meaning = ROUTE_MEANING.get(route.role, "")
            lines.append(
                f"  through {name(route.via):<{width}}  {summarize(route.amount):>12}  {meaning}"
            )
        lines.append(f"  {'sum':<{width + 8}}  {summarize(self.total):>12}")
        return "\n".join(lines)


def contributions(node: Any, root: Any, through: Any = "auto") -> Contributions:
    """Split ``node.grad`` into the parts that arrived by each route. Call after backward().

    Args:
        node: a Value or Tensor in the graph of ``root``.
        root: the node backward() was called on (the loss).
        through: which nodes count as routes —
            None: each direct use of ``node`` (one route per consumer edge);
            a list of roles (label before "["): the first node of one of these roles
            on each path to the root (paths meeting none end at the root);
            "auto": the batch-norm routes ("x̂", "μ", "σ²") when ``node`` is a batch-norm
            input, else None.
    Returns:
        Contributions: ``.routes``, ``.by_role()``, ``.total`` (== node.grad).
    """
    check_node(node, "contributions")
    check_node(root, "contributions")
    order = topological_order(root)
    consumers = consumers_of(order)
    if id(node) not in consumers:
        raise ValueError(f"contributions: {name(node)} is not in the graph of {name(root)}")
    if is_tensor(node) and node.grad is None:
        raise ValueError(f"contributions: {name(node)} has no grad yet; call backward() first")
    if through == "auto":
        uses = {role(user) for user, _ in consumers[id(node)]}
        through = BATCH_NORM_ROUTES if uses & {"x − μ", "μ"} else None
    if through is None:
        return Contributions(node, _direct(node, consumers[id(node)]))
    if isinstance(through, str) or not isinstance(through, Iterable):
        raise TypeError(f"contributions: through must be None, 'auto' or roles, got {through!r}")
    return Contributions(node, _through_roles(node, root, order, set(through)))


def _direct(node: Any, uses: list[tuple[Any, int]]) -> list[Route]:
    routes = []
    for user, position in uses:
        if is_tensor(user):
            amount = _unbroadcast(user._rule(user, user.grad)[position], node.shape)
        else:
            amount = user._local_grads[position] * user.grad
        routes.append(Route(user, amount))
    return routes


def _through_roles(node: Any, root: Any, order: list[Any], roles: set[str]) -> list[Route]:
    # walk forward from node; stop at the first route node on every path
    start = next(i for i, n in enumerate(order) if n is node)
    between, stops = {id(node)}, []
    for candidate in order[start + 1 :]:
        if any(id(parent) in between for parent in candidate._parents):
            if role(candidate) in roles or candidate is root:
                stops.append(candidate)
            else:
                between.add(id(candidate))
    inner = [n for n in order[start + 1 :] if id(n) in between]
    return [Route(stop, _carry_back(stop, inner, node, between)) for stop in stops]


def _carry_back(stop: Any, inner: list[Any], node: Any, between: set[int]) -> Any:
    """Backpropagate stop.grad to node through the ``inner`` nodes only."""
    pending: dict[int, Any] = {id(stop): stop.grad}
    for current in [stop, *reversed(inner)]:
        grad = pending.pop(id(current), None)
        if grad is None:
            continue
        for parent, pushed in _pushes(current, grad):
            if id(parent) in between:
                pending[id(parent)] = pending.get(id(parent), 0.0) + pushed
    return pending.get(id(node), np.zeros(node.shape) if is_tensor(node) else 0.0)


def _pushes(node: Any, grad: Any) -> list[tuple[Any, Any]]:
    if is_tensor(node):
        grads = node._rule(node, grad)
        return [
            (parent, _unbroadcast(g, parent.shape))
            for parent, g in zip(node._parents, grads)
            if g is not None and parent.requires_grad
        ]
    return [(parent, local * grad) for parent, local in zip(node._parents, node._local_grads)]
