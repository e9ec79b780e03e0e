"""The autodiff core shared by both engines.

A graph node (a scalar ``Value`` or a ``Tensor``) answers one question, by its own
local rule — the chain rule, written once per engine beside the ops:

* ``node.parents`` — the nodes it was computed from (empty for a leaf);
* ``node.pushes(grad)`` — given dL/d(node), what it sends to each parent:
  ``(parent, ∂node/∂parent · grad)`` for every parent that takes a gradient;
* ``node.push_grad()`` — one chain-rule step: ``node.pushes(node.grad)``, each amount
  added to its parent's grad.

``backward()``, ``tinybn.backward_steps`` (one step at a time), ``contributions`` (the
routes of a gradient), ``draw`` and the explorer all use these; none has a backward rule of
its own. Everything else — the order in which nodes are visited, accumulating gradients
over repeated ``backward()`` calls, switching gradient recording off — lives here, once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from tinybn import fast

if TYPE_CHECKING:  # the engines import this module; their classes are only named here
    from tinybn.scalar import Value
    from tinybn.tensor import Tensor

# a node of either engine's graph
Node = Union["Value", "Tensor"]

# The only global mutable state in tinybn: whether new operations are recorded into a
# graph, and whether every new op's output is checked for NaN/inf.
_grad_enabled = True
_detect_anomaly = False


def is_grad_enabled() -> bool:
    """True when operations are being recorded for ``backward()`` (not inside ``no_grad``).

    Examples:
        >>> import tinybn as tb
        >>> tb.is_grad_enabled()
        True
        >>> with tb.no_grad():
        ...     tb.is_grad_enabled()
        False
    """
    return _grad_enabled


@contextmanager
def no_grad() -> Iterator[None]:
    """Context in which no graph is recorded (inference, parameter updates).

    Examples:
        >>> import tinybn as tb
        >>> w = tb.tensor([1.0, 2.0], requires_grad=True)
        >>> with tb.no_grad():
        ...     y = w * 3
        >>> y.requires_grad
        False
    """
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


@contextmanager
def enable_grad() -> Iterator[None]:
    """Context that turns graph recording back on inside ``no_grad``.

    Examples:
        >>> import tinybn as tb
        >>> w = tb.tensor([1.0], requires_grad=True)
        >>> with tb.no_grad():
        ...     with tb.enable_grad():
        ...         y = w * 3
        >>> y.requires_grad
        True
    """
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, True
    try:
        yield
    finally:
        _grad_enabled = previous


def is_anomaly_enabled() -> bool:
    """True inside ``detect_anomaly()``.

    Examples:
        >>> import tinybn as tb
        >>> from tinybn.autograd import is_anomaly_enabled
        >>> with tb.detect_anomaly():
        ...     print(is_anomaly_enabled())
        True
        >>> is_anomaly_enabled()
        False
    """
    return _detect_anomaly


@contextmanager
def detect_anomaly() -> Iterator[None]:
    """Context in which NaN/inf is caught where it is made, naming the op.

    Forward: every Tensor op checks its output as it is made; a Value graph's outputs are
    checked when ``backward()`` runs inside the context. Backward (both engines): after
    each node's backward rule, the grads it pushed to its parents are checked. Either
    raises FloatingPointError. Outside the context nothing is checked.

    Examples:
        >>> import tinybn as tb
        >>> x = tb.tensor([-1.0], requires_grad=True)
        >>> with tb.detect_anomaly():
        ...     try:
        ...         x.log().sum().backward()
        ...     except Exception as error:
        ...         print(type(error).__name__)
        ValueError
    """
    global _detect_anomaly
    previous, _detect_anomaly = _detect_anomaly, True
    try:
        yield
    finally:
        _detect_anomaly = previous


def topological_order(root: Node, leaves: bool = True) -> list[Any]:
    """Every node that ``root`` depends on, each listed after all of its parents.

    ``leaves=False`` lists only the nodes that have parents — the ones a backward pass
    visits.

    An explicit stack instead of recursion, so a chain a million nodes deep works.
    Each stack entry is ``(node, iterator over its parents)``: the walk descends into the
    first parent not yet seen, and a node is appended once its iterator is exhausted,
    i.e. after all of its parents have been appended.

    Examples:
        >>> from tinybn import Value
        >>> from tinybn.autograd import topological_order
        >>> a, b = Value(2.0, label="a"), Value(3.0, label="b")
        >>> L = (a * b + a).named("L")
        >>> [node.label or node.op for node in topological_order(L)]  # inputs first, L last
        ['a', 'b', '*', 'L']
    """
    order: list[Any] = []
    seen: set[Any] = {root}
    stack: list[tuple[Any, Iterator[Any]]] = [(root, iter(root._parents))]
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if parent not in seen:
                seen.add(parent)
                stack.append((parent, iter(parent._parents)))
                break
        else:  # every parent is in the order: so can this node be
            stack.pop()
            if leaves or node._parents:
                order.append(node)
    return order


class BackwardPass:
    """One backward pass through the graph of ``root``: the nodes in the order they push.

    Gradients accumulate, as in PyTorch: a second pass adds to the grads of the first.
    Interior nodes are zeroed for the duration of the pass, so that what they push to
    their parents is this pass's gradient only; ``finish()`` adds their earlier grad back
    (without that, a second pass would push the first pass's gradient twice).

    ``backward()`` runs all of it at once; ``tinybn.backward_steps`` one node at a time.
    """

    def __init__(self, root: Any, seed: Any, order: list[Any] | None = None) -> None:
        if order is not None:
            interior = [node for node in order if node._parents]
        elif not root._parents:
            interior = []
        else:
            interior = fast.chain_order(root) or topological_order(root, leaves=False)
        interior.reverse()
        self.root = root
        self.nodes = interior  # the root first, then towards the inputs
        # only the nodes that already hold a grad (from an earlier pass) are set aside
        self._held = [node for node in interior if node.grad is not None]
        self._earlier = [node.grad for node in self._held]
        for node in self._held:
            node._zero_grad()
        root._accumulate_grad(seed)

    def finish(self) -> None:
        """Give the interior nodes their grads from earlier passes back (added)."""
        for node, grad in zip(self._held, self._earlier):
            node._accumulate_grad(grad)
        self._held, self._earlier = [], []


def run_backward(root: Any, seed: Any, create_graph: bool = False) -> None:
    """Backpropagate ``seed`` (dL/droot) through the graph of ``root``: every interior node,
    from the root towards the inputs, takes one chain-rule step (``node.push_grad()``).

    ``create_graph``: ``seed`` is a node, and so is every grad made (recorded as a graph,
    also inside ``no_grad``); each accumulated grad is named after its node ("∂L/∂x̂[3,0]").
    """
    _warn_if_repeated(root)
    backward = BackwardPass(root, seed)
    with enable_grad() if create_graph else nullcontext():
        if _detect_anomaly:  # checked once per call: outside the context the loop is bare
            _check_forward(list(reversed(backward.nodes)))
            for node in backward.nodes:
                _backward_checked(node)
        else:
            for node in backward.nodes:
                node.push_grad()
    backward.finish()
    if create_graph:
        name_grads(root)


def name_grads(root: Node) -> None:
    """Label each grad node of a create_graph pass after the node it is the gradient of:
    ``x.grad.label == "∂L/∂x"`` (L is the root's label)."""
    top = root.label or "L"
    for node in topological_order(root):
        grad: Any = node.grad  # a node under create_graph
        if node.label and hasattr(grad, "parents") and not grad.label:
            grad.label = f"∂{top}/∂{node.label}"


def grad(
    outputs: Node | Sequence[Node],
    inputs: Node | Sequence[Node],
    grad_outputs: Any = None,
    create_graph: bool = False,
    retain_graph: bool | None = None,
    allow_unused: bool = False,
) -> tuple[Any, ...]:
    """d(outputs)/d(inputs), returned instead of accumulated into ``.grad`` — PyTorch's
    ``torch.autograd.grad``, on either engine.

    Args:
        outputs: a Value or Tensor, or a sequence of them (their gradients add up).
        inputs: a node or a sequence of nodes to differentiate with respect to.
        grad_outputs: dL/d(output) for each output; None means 1 (one-element outputs).
        create_graph: the returned gradients are nodes with graphs of their own, so they can
            be differentiated again (second derivatives, Hessian-vector products).
        retain_graph: accepted for PyTorch's signature; tinybn never frees a graph.
        allow_unused: an input the outputs do not depend on gives None instead of an error.
    Returns:
        one gradient per input: a float / numpy array, or a Value / Tensor with create_graph.
        Every ``.grad`` in the graph is left as it was.

    Examples:
        >>> import tinybn as tb
        >>> x = tb.tensor([3.0], requires_grad=True)
        >>> y = (x * x * x).sum()
        >>> (dy,) = tb.grad(y, x, create_graph=True)  # 3x², itself a graph
        >>> dy.data
        array([27.], dtype=float32)
        >>> (d2y,) = tb.grad(dy.sum(), x)  # 6x
        >>> d2y
        array([18.], dtype=float32)
    """
    del retain_graph  # graphs are kept as long as their nodes are referenced
    outputs = _as_nodes(outputs, "outputs")
    inputs = _as_nodes(inputs, "inputs")
    seeds = [None] * len(outputs) if grad_outputs is None else _as_list(grad_outputs)
    if len(seeds) != len(outputs):
        raise ValueError(f"grad: {len(outputs)} output(s) but {len(seeds)} grad_outputs")
    orders = [topological_order(output) for output in outputs]
    order = {id(node): node for nodes in orders for node in nodes}
    for position, node in enumerate(inputs):
        if getattr(node, "requires_grad", True) is False:
            raise ValueError(f"grad: input {position} does not require grad")
    # only the nodes on a path from an input to an output need to push (as in PyTorch): the
    # rest of the graph below — e.g. the whole network under one layer — is left alone
    on_paths = {id(node) for node in inputs}
    for nodes in orders:
        for node in nodes:
            if any(id(parent) in on_paths for parent in node._parents):
                on_paths.add(id(node))
    kept = [(node, node.grad) for node in order.values()]
    for node in order.values():
        node._zero_grad()
    try:
        with enable_grad() if create_graph else nullcontext():
            for output, nodes, seed in zip(outputs, orders, seeds):
                needed = [node for node in nodes if id(node) in on_paths]
                backward = BackwardPass(output, output._backward_seed(seed, create_graph), needed)
                for node in backward.nodes:
                    node.push_grad()
                backward.finish()
        found: list[Any] = []
        for position, node in enumerate(inputs):
            if id(node) not in order:
                if not allow_unused:
                    raise ValueError(
                        f"grad: input {position} ({node.label or node.op or 'a leaf'}) is not "
                        "used by the outputs; pass allow_unused=True to get None for it"
                    )
                found.append(None)
            else:
                found.append(node.grad)
        if create_graph:
            for output in outputs:
                name_grads(output)
    finally:
        for node, earlier in kept:
            node.grad = earlier
    return tuple(found)


def _as_list(items: Any) -> list[Any]:
    return list(items) if isinstance(items, (list, tuple)) else [items]


def _as_nodes(items: Any, what: str) -> list[Any]:
    nodes = _as_list(items)
    if not nodes:
        raise ValueError(f"grad: {what} is empty")
    for node in nodes:
        if not hasattr(node, "push_grad"):
            raise TypeError(f"grad: {what} must be Values or Tensors, got {type(node).__name__}")
    return nodes


def hvp(
    loss: Tensor, params: Iterable[Tensor], vector: np.ndarray | Sequence[np.ndarray]
) -> list[np.ndarray]:
    """The Hessian of ``loss`` times ``vector``, H·v, by double backward (Tensor engine).

    H·v = ∂/∂θ (∇L(θ) · v): the gradient is made with create_graph, dotted with v, and
    differentiated again — no Hessian is ever formed.

    Args:
        loss: a one-element Tensor.
        params: the Tensors θ (e.g. ``model.parameters()``).
        vector: one array per parameter, each of its parameter's shape.
    Returns:
        one array per parameter: the matching block of H·v.

    Examples:
        >>> import numpy as np
        >>> import tinybn as tb
        >>> from tinybn.autograd import hvp
        >>> w = tb.tensor([1.0, 2.0], requires_grad=True)
        >>> loss = (w * w * w).sum()  # Hessian diag(6w)
        >>> [np.round(h, 4) for h in hvp(loss, [w], [np.array([1.0, 1.0])])]
        [array([ 6., 12.], dtype=float32)]
    """
    params, vector = list(params), list(vector)
    if len(vector) != len(params):
        raise ValueError(f"hvp: {len(params)} parameter(s) but {len(vector)} vector part(s)")
    for position, (param, part) in enumerate(zip(params, vector)):
        if np.shape(part) != param.shape:
            raise ValueError(
                f"hvp: vector part {position} has shape {np.shape(part)}, its parameter "
                f"{param.shape}"
            )
    grads = grad(loss, params, create_graph=True, allow_unused=True)
    return _hessian_times(grads, params, vector)


def _hessian_times(grads: Sequence[Any], params: list[Any], vector: list[Any]) -> list[np.ndarray]:
    """H·v = ∂(Σᵢ gᵢ·vᵢ)/∂θ, from the gradients g made with create_graph (one per θ)."""
    dot = None
    for g, part in zip(grads, vector):
        if g is not None and g.requires_grad:  # else its block of the Hessian is 0
            term = (g * np.asarray(part, dtype=g.dtype)).sum()
            dot = term if dot is None else dot + term
    second = [None] * len(params) if dot is None else grad(dot, params, allow_unused=True)
    return [np.zeros(p.shape, dtype=p.dtype) if s is None else s for p, s in zip(params, second)]


def top_hessian_eigenvalue(
    loss: Any, params: Any, iterations: int = 20, seed: int = 0, tol: float = 1e-6
) -> tuple[float, list[np.ndarray]]:
    """The eigenvalue of the loss's Hessian largest in magnitude, by power iteration on H·v.

    v ← H·v / ‖H·v‖ repeated; λ = v·H·v (the Rayleigh quotient), until λ changes by less
    than ``tol`` (relative) or after ``iterations`` steps. The gradient's graph is built
    once and differentiated again at every step.

    Returns:
        (λ, v): the eigenvalue and its unit eigenvector (one array per parameter).

    Examples:
        >>> import tinybn as tb
        >>> from tinybn.autograd import top_hessian_eigenvalue
        >>> w = tb.tensor([1.0, 2.0], requires_grad=True)
        >>> loss = (w * w * w).sum()  # Hessian diag(6, 12)
        >>> value, vector = top_hessian_eigenvalue(loss, [w])
        >>> round(value, 3)
        12.0
    """
    params = list(params)
    if iterations < 1:
        raise ValueError(f"top_hessian_eigenvalue: iterations must be >= 1, got {iterations}")
    grads = grad(loss, params, create_graph=True, allow_unused=True)
    rng = np.random.default_rng(seed)
    vector = [rng.normal(size=p.shape) for p in params]
    eigenvalue = 0.0
    for _ in range(iterations):
        vector = _unit(vector)
        product = [np.asarray(h, dtype=float) for h in _hessian_times(grads, params, vector)]
        previous = eigenvalue
        eigenvalue = sum(float((v * h).sum()) for v, h in zip(vector, product))
        vector = product
        if abs(eigenvalue - previous) <= tol * max(1.0, abs(eigenvalue)):
            break
    return eigenvalue, _unit(vector)


def _unit(vector: list[np.ndarray]) -> list[np.ndarray]:
    """The vector (one array per parameter) scaled to norm 1 (left as is if it is 0)."""
    norm = math.sqrt(sum(float((v * v).sum()) for v in vector)) or 1.0
    return [v / norm for v in vector]


def _warn_if_repeated(root: Any) -> None:
    """Warn once per graph when its root's backward runs again over grads it already filled.

    PyTorch's semantics are kept — grads accumulate — but a second ``backward()`` without
    ``zero_grad()`` in between is micrograd's most-asked question ("why did my gradient
    double?"), so it is named, with the fix. ``backward(retain_graph=True)`` on the first
    call says the repeat is meant, as in PyTorch.
    """
    runs = root._backward_runs
    root._backward_runs = runs + 1 if runs >= 0 else runs
    if runs <= 0 or runs > 1:  # first pass, opted out (negative), or warned already
        return
    leaves = [node for node in topological_order(root) if not node._parents]
    if not any(_holds_grad(leaf.grad) for leaf in leaves):  # zeroed in between: nothing doubles
        root._backward_runs = 1
        return
    name = root.label or root.op or "this node"
    warnings.warn(
        f"backward() ran again on {name!r} without zero_grad(): gradients accumulate (they "
        "add to the grads of the last backward(), as in PyTorch), so every .grad now holds "
        "the sum of both passes. Call zero_grad() (on the optimizer, the model or the root) "
        "between passes, or pass retain_graph=True to the first backward() if the sum is "
        "what you want.",
        stacklevel=4,
    )


def _holds_grad(grad: Any) -> bool:
    if grad is None:
        return False
    if isinstance(grad, float):
        return grad != 0.0
    return bool(np.any(grad))


def _is_finite(grad: Any) -> bool:
    """No NaN/inf in a grad: a float (Value), an array or None (Tensor)."""
    if grad is None:
        return True
    grad = getattr(grad, "data", grad)  # a grad with a graph (create_graph): its value
    if isinstance(grad, float):
        return math.isfinite(grad)
    return bool(np.isfinite(grad).all())


def _check_forward(interior: list[Any]) -> None:
    """Name the first op, in forward order, whose output is NaN/inf from finite inputs.

    Tensor ops check their outputs as they are made inside ``detect_anomaly()``; a scalar
    Value graph (whose ops are too many and too small for a check each) is checked here,
    once, when backward runs in the context.
    """
    for node in interior:
        if not _is_finite(node.data) and all(_is_finite(p.data) for p in node._parents):
            names = ", ".join(p.label or p.op or "leaf" for p in node._parents)
            raise FloatingPointError(
                f"detect_anomaly: op '{node.op}' produced NaN/inf from {names} (found by backward)"
            )


def _backward_checked(node: Any) -> None:
    """``node.push_grad()``, then name the node if its rule made a parent's grad NaN/inf.

    As PyTorch's anomaly mode ("Function 'MulBackward0' returned nan values in its 0th
    output"). A grad that was already NaN/inf before this step is not blamed on it.
    """
    finite_before = [_is_finite(parent.grad) for parent in node._parents]
    node.push_grad()
    for i, (parent, was_finite) in enumerate(zip(node._parents, finite_before)):
        if was_finite and not _is_finite(parent.grad):
            name = parent.label or parent.op or "leaf"
            shape = f" of shape {tuple(parent.shape)}" if hasattr(parent, "shape") else ""
            raise FloatingPointError(
                f"detect_anomaly: the backward of op '{node.op}' produced NaN/inf in the "
                f"gradient of its input {i} ({name}{shape})"
            )


def zero_grad_graph(root: Node) -> None:
    """Reset the grad of every node in the graph of ``root`` (and its repeat-warning count).

    Examples:
        >>> import tinybn as tb
        >>> from tinybn import Value
        >>> a, b = Value(2.0, label="a"), Value(3.0, label="b")
        >>> L = (a * b + a).named("L")
        >>> L.backward()
        >>> from tinybn.autograd import zero_grad_graph
        >>> zero_grad_graph(L)
        >>> a.grad, b.grad, L.grad
        (0.0, 0.0, 0.0)
    """
    for node in topological_order(root):
        node._zero_grad()
    if root._backward_runs > 0:
        root._backward_runs = 0
