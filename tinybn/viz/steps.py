"""``backward_steps``: backpropagation one node at a time, each step explained.

It does what ``root.backward()`` does — the same order, the same arithmetic (each node's
``push_grad()``) — but pauses after each node has pushed its gradient to its parents and
hands you a ``BackwardStep`` saying which node, its grad, the local derivative rule used
for each parent, and how much that added to the parent's grad:

    parent.grad += (∂node/∂parent) · node.grad

In a REPL (chapter 0 walks through this example; chapter 3 does it on batch norm):

Examples:
    >>> import tinybn as tb
    >>> from tinybn import Value
    >>> a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    >>> loss = (a * b).named("L")
    >>> st = tb.backward_steps(loss)
    >>> st
    <Stepper: step 0 of 1, next: L (×)>
    >>> print(st.step())
    step 1 of 1: L  data -6  grad 1
        L = u × v   with u = a, v = b
        → a (u): ∂(u·v)/∂u = v = -3;  adds -3 × 1 = -3  → grad -3
        → b (v): ∂(u·v)/∂v = u = 2;  adds 2 × 1 = 2  → grad 2

Also: ``st.run(k)`` (k steps), ``st.goto(k)``, ``st.reset()`` (grads back to 0, step 0),
``st.current`` (the last step) and ``st.draw()`` (the graph as of now).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinybn import autograd
from tinybn.autograd import topological_order
from tinybn.viz.nodes import check_node, describe, is_tensor, name, op_symbol, stage, summarize
from tinybn.viz.rules import local_rule, operand_name, symbols_for


@dataclass
class Push:
    """What one step added to one parent's grad."""

    parent: Any
    operand: str  # how the rule calls this input: "u", "v", "u₃"
    rule: str  # the local derivative in math, e.g. "∂(u·v)/∂u = v"
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
    symbols: tuple[str, str] = ("u", "v")  # the letters the rules use for the inputs

    def text(self, max_parents: int | None = 8, precision: int = 4) -> str:
        """The step as lines of text; ``max_parents=None`` lists every parent."""
        node = self.node
        lines = [
            f"step {self.number} of {self.total}: {describe(node, precision)}",
            f"    {name(node)} = {_formula(node, self.symbols)}",
        ]
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


def _formula(node: Any, symbols: tuple[str, str]) -> str:
    """How the node was made, in the rule's letters, and which input each letter is."""
    n = len(node.parents)
    names = [f"{operand_name(i, n, symbols)} = {name(p)}" for i, p in enumerate(node.parents)]
    listed = ", ".join(names[:4]) + (f", … ({n} inputs)" if n > 4 else "")
    return f"{_expression(node, symbols)}   with {listed}"


def _expression(node: Any, symbols: tuple[str, str]) -> str:
    """The op applied to its inputs' letters: "u × v", "u^2", "tanh(u)", "Σ(u₁, …, u₂₀)"."""
    n, op, (u, v) = len(node.parents), node.op, symbols
    symbol = op_symbol(op)
    if n == 2 and len(symbol) == 1:
        return f"{u} {symbol} {v}"
    if n == 1 and op.startswith("**"):
        return f"{u}^{op[2:]}"
    if n == 1 and op.endswith("**"):
        return f"{op[:-2]}^{u}"
    if n <= 3:
        return f"{symbol}({', '.join(operand_name(i, n, symbols) for i in range(n))})"
    return f"{symbol}({u}₁, …, {u}{_sub(n)})"


def _sub(number: int) -> str:
    return str(number).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def _push_text(push: Push, grad: Any, precision: int) -> str:
    target = f"→ {name(push.parent)} ({push.operand})"
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


class Stepper:
    """``root.backward(grad)``, one chain-rule step at a time, with a place you can see.

    ``next(st)`` / ``st.step()`` runs one node and returns its ``BackwardStep``;
    ``st.run(k)`` runs k steps; ``st.goto(k)`` replays from the start to step k;
    ``st.reset()`` zeroes the graph's grads and goes back to step 0; ``st.current`` is the
    last step run; ``st.draw()`` draws the graph as of now; iterating runs the rest.

    Gradients accumulate exactly as in ``backward()``: after the last step every grad in
    the graph is what ``root.backward(grad)`` would have made it.

    Examples:
        >>> import tinybn as tb
        >>> from tinybn import Value
        >>> a, b = Value(2.0, label="a"), Value(3.0, label="b")
        >>> L = (a * b + a).named("L")
        >>> st = tb.backward_steps(L)
        >>> st
        <Stepper: step 0 of 2, next: L (+)>
        >>> last = st.run(2)
        >>> st
        <Stepper: step 2 of 2, done>
        >>> a.grad
        4.0
        >>> _ = st.reset()
        >>> st, a.grad
        (<Stepper: step 0 of 2, next: L (+)>, 0.0)
    """

    def __init__(self, root: Any, grad: Any = None) -> None:
        check_node(root, "backward_steps")
        self.root = root
        self._seed = _seed(root, grad)
        order = topological_order(root)
        self._order = order
        self._interior = [node for node in reversed(order) if node.parents]
        self.symbols = symbols_for(_label_words(order))
        self._pass: autograd.BackwardPass | None = None
        self.position = 0  # steps run so far
        self.current: BackwardStep | None = None
        self.filled: set[int] = set()  # ids of the nodes whose grad this pass has set

    @property
    def total(self) -> int:
        """How many steps the pass has: one per node with inputs."""
        return len(self._interior)

    @property
    def done(self) -> bool:
        return self.position >= self.total

    @property
    def next_node(self) -> Any | None:
        """The node that pushes at the next step (None when done)."""
        return None if self.done else self._interior[self.position]

    def step(self) -> BackwardStep:
        """Run one node's chain-rule step; StopIteration when every node has pushed."""
        if self.done:
            raise StopIteration
        if self._pass is None:  # the root is seeded at the first step, not before
            self._pass = autograd.BackwardPass(self.root, self._seed, self._order)
            self.filled.add(id(self.root))
        node = self._interior[self.position]
        grad = _copy(node.grad)
        n = len(node.parents)
        positions = _positions(node)
        pushes = []
        for parent, added in node.push_grad():
            position = positions[id(parent)].pop(0)
            self.filled.add(id(parent))
            pushes.append(
                Push(
                    parent,
                    operand_name(position, n, self.symbols),
                    local_rule(node.op, position, n, is_tensor(node), self.symbols),
                    None if is_tensor(node) else node.local_grads[position],
                    _copy(added),
                    _copy(parent.grad),
                )
            )
        self.position += 1
        self.current = BackwardStep(self.position, self.total, node, grad, pushes, self.symbols)
        if self.done:
            self._pass.finish()
        return self.current

    def __next__(self) -> BackwardStep:
        return self.step()

    def __iter__(self) -> Iterator[BackwardStep]:
        return self

    def run(self, k: int | None = None) -> BackwardStep | None:
        """Run ``k`` more steps (all the rest if None); returns the last one run."""
        if k is not None and k < 0:
            raise ValueError(f"run: k must be >= 0, got {k}")
        remaining = self.total - self.position if k is None else min(k, self.total - self.position)
        for _ in range(remaining):
            self.step()
        return self.current

    def reset(self) -> Stepper:
        """Zero every grad of the graph and go back to step 0."""
        autograd.zero_grad_graph(self.root)
        self._pass, self.position, self.current = None, 0, None
        self.filled = set()
        return self

    def goto(self, k: int) -> BackwardStep | None:
        """Be at step ``k`` (0 … total): from the start (grads zeroed), run k steps."""
        if not 0 <= k <= self.total:
            raise ValueError(f"goto: step must be between 0 and {self.total}, got {k}")
        self.reset()
        return self.run(k)

    def draw(self, **draw_options: Any) -> Any:
        """The graph as of now: the node that just pushed outlined in red, grads this pass
        has filled shown, the others blank (·). Options as ``tinybn.draw``."""
        from tinybn.viz.graph import draw

        current = self.current.node if self.current is not None else None
        return draw(self.root, highlight=current, grads_filled=self.filled, **draw_options)

    def __repr__(self) -> str:
        following = self.next_node
        if following is None:
            where = "done"
        else:
            n = len(following.parents)
            made = f"{op_symbol(following.op)} of {n} inputs" if n > 2 else op_symbol(following.op)
            where = f"next: {stage(following) or name(following)} ({made})"
        return f"<Stepper: step {self.position} of {self.total}, {where}>"


def backward_steps(root: Any, grad: Any = None) -> Stepper:
    """Run ``root.backward(grad)`` one node at a time: a ``Stepper`` (iterate it, or step).

    Args:
        root: a Value, or a Tensor that requires grad (usually the loss).
        grad: dL/droot; defaults to 1 (a Tensor root must then hold one element).
    Returns:
        a Stepper; iterating it yields a BackwardStep for each node that has parents, from
        the root towards the inputs.

    Examples:
        >>> import tinybn as tb
        >>> from tinybn import Value
        >>> a, b = Value(2.0, label="a"), Value(3.0, label="b")
        >>> L = (a * b).named("L")
        >>> st = tb.backward_steps(L)
        >>> print(st.step())
        step 1 of 1: L  data 6  grad 1
            L = u × v   with u = a, v = b
            → a (u): ∂(u·v)/∂u = v = 3;  adds 3 × 1 = 3  → grad 3
            → b (v): ∂(u·v)/∂v = u = 2;  adds 2 × 1 = 2  → grad 2
    """
    return Stepper(root, grad)


def _label_words(order: list[Any]) -> set[str]:
    """The names a graph's labels use ("x[0,1]" → "x"), which the rules' letters avoid."""
    words = set()
    for node in order:
        if node.label:
            words.add(node.label)
            words.add(stage(node))
    return words


def _positions(node: Any) -> dict[int, list[int]]:
    """parent id → its positions among node's inputs (a parent used twice, x·x, has two)."""
    positions: dict[int, list[int]] = {}
    for position, parent in enumerate(node.parents):
        positions.setdefault(id(parent), []).append(position)
    return positions


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


def _copy(grad: Any) -> Any:
    return np.array(grad) if isinstance(grad, np.ndarray) else grad
