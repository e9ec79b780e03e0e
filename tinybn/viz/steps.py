"""``backward_steps``: backpropagation one node at a time, each step explained.

It does what ``root.backward()`` does — the same order, the same arithmetic — but
pauses after each node has pushed its gradient to its parents and hands you a
``BackwardStep`` saying which node, its grad, the local derivative rule used for each
parent, and how much that added to the parent's grad:

    parent.grad += (∂node/∂parent) · node.grad
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinybn.autograd import topological_order
from tinybn.tensor import _unbroadcast
from tinybn.viz.nodes import check_node, describe, is_tensor, name, op_symbol, summarize
from tinybn.viz.rules import local_rule, operand_name


@dataclass
class Push:
    """What one step added to one parent's grad."""

    parent: Any
    operand: str  # how the rule calls this input: "a", "b", "v3"
    rule: str  # the local derivative in math, e.g. "d(a·b)/da = b"
    local: float | None  # its value (scalars only; for Tensors the rule maps G directly)
    added: Any  # the amount added to parent.grad
    grad_after: Any  # parent.grad after the addition


@dataclass
class BackwardStep:
    """One node's turn in backpropagation (``number`` counts from 1 to ``total``)."""

    number: int
    total: int
    node: Any
    grad: Any  # dL/d(node) when it pushed
    pushes: list[Push] = field(default_factory=list)

    def text(self, max_parents: int | None = 8, precision: int = 4) -> str:
        """The step as lines of text; ``max_parents=None`` lists every parent."""
        node = self.node
        header = (
            f"step {self.number}/{self.total}: {describe(node, precision)}  "
            f"(made by {op_symbol(node.op)} from {len(node._parents)} input(s))"
        )
        lines = [header]
        shown = self.pushes if max_parents is None else self.pushes[:max_parents]
        for push in shown:
            lines.append("    " + _push_text(push, self.grad, precision))
        hidden = self.pushes[len(shown) :]
        if hidden:
            lines.append(
                f"    … and {len(hidden)} more input(s), each by the rule {hidden[0].rule}"
            )
        if not self.pushes:
            lines.append("    (no input needs a gradient)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def _push_text(push: Push, grad: Any, precision: int) -> str:
    target = f"{push.operand} = {name(push.parent)}"
    if push.local is None:
        return (
            f"{target}: {push.rule};  adds {summarize(push.added, precision)}  "
            f"→ grad {summarize(push.grad_after, precision)}"
        )
    value = "" if _is_number(push.rule.rsplit("=", 1)[-1]) else f" = {push.local:.{precision}g}"
    return (
        f"{target}: {push.rule}{value};  adds "
        f"{push.local:.{precision}g} × {grad:.{precision}g} = {push.added:.{precision}g}  "
        f"→ grad {push.grad_after:.{precision}g}"
    )


def _is_number(text: str) -> bool:
    """True when a rule already ends in its value ("... = 1", "... = −1")."""
    try:
        float(text.strip().replace("−", "-"))
    except ValueError:
        return False
    return True


def backward_steps(root: Any, grad: Any = None) -> Iterator[BackwardStep]:
    """Run ``root.backward(grad)`` one node at a time, yielding a step after each node.

    Gradients accumulate exactly as in ``backward()``: after the last step every grad
    in the graph is what ``root.backward(grad)`` would have made it.

    Args:
        root: a Value, or a Tensor that requires grad (usually the loss).
        grad: dL/droot; defaults to 1 (a Tensor root must then hold one element).
    Yields:
        BackwardStep for each node that has parents, from the root towards the inputs.
    """
    check_node(root, "backward_steps")
    seed = _seed(root, grad)
    order = topological_order(root)
    interior = [node for node in order if node._parents]
    # as autograd.run_backward: this pass's gradient only, then add back earlier grads
    earlier = [node.grad for node in interior]
    for node in interior:
        node._zero_grad()
    root._accumulate_grad(seed)
    for number, node in enumerate(reversed(interior), start=1):
        pushes = _tensor_pushes(node) if is_tensor(node) else _value_pushes(node)
        yield BackwardStep(number, len(interior), node, _copy(node.grad), pushes)
    for node, old in zip(interior, earlier):
        if old is not None:
            node._accumulate_grad(old)


def _seed(root: Any, grad: Any) -> Any:
    if not is_tensor(root):
        return float(1.0 if grad is None else grad)
    if not root.requires_grad:
        raise ValueError("backward_steps: this tensor does not require grad and has no graph")
    if grad is None:
        if root.size != 1:
            raise ValueError(
                f"backward_steps: grad can be implied only for a single-element output, this "
                f"one has shape {root.shape}; pass grad= of that shape"
            )
        return np.ones_like(root.data)
    seed = np.asarray(getattr(grad, "data", grad), dtype=root.dtype)
    if seed.shape != root.shape:
        raise ValueError(f"backward_steps: grad shape {seed.shape} != output shape {root.shape}")
    return seed


def _value_pushes(node: Any) -> list[Push]:
    pushes, grad, n = [], node.grad, len(node._parents)
    for position, (parent, local) in enumerate(zip(node._parents, node._local_grads)):
        added = local * grad
        parent.grad += added  # the same arithmetic as Value._backward
        rule = local_rule(node.op, position, n)
        pushes.append(Push(parent, operand_name(position, n), rule, local, added, parent.grad))
    return pushes


def _tensor_pushes(node: Any) -> list[Push]:
    if node.grad is None:
        return []
    pushes, n = [], len(node._parents)
    grads = node._rule(node, node.grad)
    for position, (parent, grad) in enumerate(zip(node._parents, grads)):
        if not parent.requires_grad or grad is None:
            continue
        added = _unbroadcast(grad, parent.shape)  # the same as Tensor._backward
        parent._accumulate_grad(added)
        rule = local_rule(node.op, position, n, tensor=True)
        pushes.append(
            Push(parent, operand_name(position, n), rule, None, np.array(added), _copy(parent.grad))
        )
    return pushes


def _copy(grad: Any) -> Any:
    return np.array(grad) if isinstance(grad, np.ndarray) else grad
