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
from tinybn.viz.nodes import check_node, consumers_of, is_tensor, name, stage, summarize

BATCH_NORM_ROUTES = ("xhat", "mean", "var")  # roles (functional.NORM_STAGES)
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
        """The stage the route passes through ("x̂", "μ", "σ²"), else the op of its node."""
        return stage(self.via) or f"({self.via.op})"


@dataclass
class Contributions:
    """The routes of ``node``'s gradient; their amounts add up to ``node.grad``.

    Examples:
        >>> import tinybn as tb
        >>> from tinybn import Value, functional as F
        >>> x = tb.values([[1.0], [2.0], [4.0]], "x")
        >>> y = F.batch_norm(x)
        >>> L = Value.sum((i + 1) * row[0] for i, row in enumerate(y)).named("L")
        >>> L.backward()
        >>> routes = tb.contributions(x[0][0], L)
        >>> abs(sum(r.amount for r in routes.routes) - x[0][0].grad) < 1e-12  # they add up
        True
    """

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
            a list of stages ("x̂", or the role "xhat"; else a label before "["): the
            first node of one of these on each path to the root (paths meeting none end
            at the root);
            "auto": the batch-norm routes ("x̂", "μ", "σ²") when ``node`` is a batch-norm
            input, else None.
    Returns:
        Contributions: ``.routes``, ``.by_role()``, ``.total`` (== node.grad).

    Examples:
        >>> import tinybn as tb
        >>> from tinybn import Value, functional as F
        >>> x = tb.values([[1.0], [2.0], [4.0]], "x")
        >>> y = F.batch_norm(x, eps=1e-5)
        >>> L = Value.sum((i + 1) * row[0] for i, row in enumerate(y)).named("L")
        >>> L.backward()
        >>> routes = tb.contributions(x[2][0], L)
        >>> print(routes)
        x[2,0].grad = -0.05726, made up of:
          through μ[0,0]         -1.604  ∂L/∂μ · 1/m            (through the mean)
          through σ²[0,0]        -0.859  ∂L/∂σ² · 2(xᵢ − μ)/m   (through the variance)
          through x̂[2,0]         2.405  ∂L/∂x̂ᵢ · 1/√(σ² + ε)   (directly through x̂)
          sum                  -0.05726
    """
    check_node(node, "contributions")
    check_node(root, "contributions")
    order = topological_order(root)
    consumers = consumers_of(order)
    if id(node) not in consumers:
        raise ValueError(f"contributions: {name(node)} is not in the graph of {name(root)}")
    if root.grad is None or (not is_tensor(root) and root.grad == 0.0):
        raise ValueError(
            f"contributions: backward has not run on {name(root)} (its grad is "
            f"{root.grad}), so every route would be 0. Call {name(root)}.backward() first."
        )
    if is_tensor(node) and node.grad is None:
        raise ValueError(f"contributions: {name(node)} has no grad yet; call backward() first")
    if through == "auto":
        uses = {user.role for user, _ in consumers[id(node)]}
        through = BATCH_NORM_ROUTES if uses & {"centered", "mean"} else None
    if through is None:
        return Contributions(node, _direct(node, consumers[id(node)]))
    if isinstance(through, str) or not isinstance(through, Iterable):
        raise TypeError(f"contributions: through must be None, 'auto' or roles, got {through!r}")
    return Contributions(node, _through_roles(node, root, order, set(through)))


def _direct(node: Any, uses: list[tuple[Any, int]]) -> list[Route]:
    """One route per use of ``node``: what that user pushed to it (``user.pushes()``)."""
    routes, done = [], set()
    for user, _ in uses:
        if id(user) in done:  # a user of node twice (x·x) pushes to it twice: both listed
            continue
        done.add(id(user))
        routes += [Route(user, amount) for parent, amount in user.pushes() if parent is node]
    return routes


def _through_roles(node: Any, root: Any, order: list[Any], stops_at: set[str]) -> list[Route]:
    # walk forward from node; stop at the first route node on every path
    start = next(i for i, n in enumerate(order) if n is node)
    between, stops = {id(node)}, []
    for candidate in order[start + 1 :]:
        if any(id(parent) in between for parent in candidate.parents):
            if stage(candidate) in stops_at or candidate.role in stops_at or candidate is root:
                stops.append(candidate)
            else:
                between.add(id(candidate))
    inner = [n for n in order[start + 1 :] if id(n) in between]
    return [Route(stop, _carry_back(stop, inner, node, between)) for stop in stops]


def _carry_back(stop: Any, inner: list[Any], node: Any, between: set[int]) -> Any:
    """Backpropagate stop.grad to node through the ``inner`` nodes only (``pushes``)."""
    pending: dict[int, Any] = {id(stop): stop.grad}
    for current in [stop, *reversed(inner)]:
        grad = pending.pop(id(current), None)
        if grad is None:
            continue
        for parent, pushed in current.pushes(grad):
            if id(parent) in between:
                pending[id(parent)] = pending.get(id(parent), 0.0) + pushed
    return pending.get(id(node), np.zeros(node.shape) if is_tensor(node) else 0.0)
