"""What the viz tools need to know about one graph node, for either engine.

A node is a scalar ``Value`` or a ``Tensor``. Both have ``data``, ``grad``, ``label``,
``op``, ``role`` and ``parents``; this module turns those into the words and numbers that
the drawings, trees and step-by-step printouts show: the *stage* a node stands for (its
normalization role's name, as ``functional.NORM_STAGES`` gives it, else the name part of
its label) and whether it is a learnable scale/shift parameter (γ/β).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from tinybn.autograd import topological_order
from tinybn.functional import NORM_STAGES
from tinybn.scalar import Value
from tinybn.tensor import Tensor

# The normalization stages a drawing boxes, in the order of Ioffe & Szegedy's Algorithm 1
# (ε, one constant shared by all, is drawn loose). On scalars each element is "name[i,j]".
BN_ROLES = tuple(role for role in NORM_STAGES if role != "eps")
BN_STAGES = tuple(NORM_STAGES[role][0] for role in BN_ROLES)

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


def stage(node: Any) -> str:
    """What a node stands for: its normalization role's name ("x̂" for role "xhat"), else
    its label before "[" ("x[3,1]" → "x"; an unindexed label is its own stage)."""
    if node.role is not None:
        return NORM_STAGES[node.role][0] if node.role in NORM_STAGES else node.role
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
    if node.role is not None:  # a stage of a normalization (γ·x̂, ...), not a parameter
        return None
    name = stage(node)
    if not name:
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


def value_of(item: Any) -> Any:
    """A number or array as is; a node (e.g. a grad made with create_graph) by its data."""
    return item.data if isinstance(item, (Value, Tensor)) else item


def summarize(array: Any, precision: int = 4) -> str:
    """A short text for a number or an array: all entries if few, else mean and range."""
    if array is None:
        return "None"
    array = value_of(array)
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
    if not is_tensor(node):  # a constant, e.g. a Python number lifted into the graph
        return f"{node.data:g}"
    return "leaf"


def describe(node: Any, precision: int = 4) -> str:
    """One line: name, data and grad (a Tensor also shows its shape)."""
    if is_tensor(node):
        grad = summarize(node.grad, precision) if node.grad is not None else "None"
        return (
            f"{name(node)} {shape_text(node)}  data {summarize(node.data, precision)}  grad {grad}"
        )
    return f"{name(node)}  data {node.data:.{precision}g}  grad {value_of(node.grad):.{precision}g}"


def consumers_of(order: list[Any]) -> dict[int, list[tuple[Any, int]]]:
    """For each node id: the (consumer, parent position) pairs that use it."""
    using: dict[int, list[tuple[Any, int]]] = {id(node): [] for node in order}
    for node in order:
        for position, parent in enumerate(node.parents):
            using[id(parent)].append((node, position))
    return using


# Unicode in labels → what a keyboard types; applied in this order ("σ²" before "σ")
_ASCII = (
    ("x̂", "xhat"),
    ("\u0302", "hat"),
    ("μ", "mu"),
    ("σ²", "var"),
    ("σ", "sigma"),
    ("ε", "eps"),
    ("γ", "gamma"),
    ("β", "beta"),
    ("√", "sqrt"),
    ("−", "-"),
    ("·", "*"),
    ("×", "*"),
    ("²", "^2"),
    ("Σ", "sum"),
)


def ascii_label(label: str) -> str:
    """A label as typed on a plain keyboard, without spaces: "√(σ² + ε)[0,1]" →
    "sqrt(var+eps)[0,1]", "x − μ[3,0]" → "x-mu[3,0]", "x̂[3,0]" → "xhat[3,0]"."""
    for unicode, typed in _ASCII:
        label = label.replace(unicode, typed)
    return "".join(label.split())


class GraphNodes(Mapping):
    """The labelled nodes of a graph by label; a label may be typed in Unicode as shown
    ("x̂[3,0]", "x − μ[0,0]") or in ASCII ("xhat[3,0]", "x - mu[0,0]", "x-mu[0,0]").

    Examples:
        >>> import tinybn as tb
        >>> from tinybn import Value
        >>> a, b = Value(2.0, label="a"), Value(3.0, label="b")
        >>> L = (a * b + a).named("L")
        >>> graph = tb.nodes(L)
        >>> sorted(graph)
        ['L', 'a', 'b']
        >>> graph["a"].data
        2.0
    """

    def __init__(self, order: list[Any]) -> None:
        self._by_label: dict[str, Any] = {}
        self._by_key: dict[str, list[Any]] = {}
        for node in order:
            if node.label:
                self._by_label.setdefault(node.label, node)
                self._by_key.setdefault(ascii_label(node.label), []).append(node)

    def __getitem__(self, label: str) -> Any:
        if not isinstance(label, str):
            raise TypeError(f"nodes: a label is a str, got {type(label).__name__}")
        found = self._by_key.get(ascii_label(label))
        if not found:
            near = [key for key in self._by_label if ascii_label(key)[:2] == ascii_label(label)[:2]]
            hint = f"; labels like it: {', '.join(near[:6])}" if near else ""
            raise KeyError(f"no node labelled {label!r} in this graph{hint}")
        if len(found) > 1:
            raise KeyError(
                f"{len(found)} nodes are labelled {label!r}; use nodes.all({label!r}) for all"
            )
        return found[0]

    def all(self, label: str) -> list[Any]:
        """Every node with this label (Unicode or ASCII), in topological order."""
        return list(self._by_key.get(ascii_label(label), []))

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_label)

    def __len__(self) -> int:
        return len(self._by_label)

    def __repr__(self) -> str:
        shown = ", ".join(list(self._by_label)[:8])
        more = f", … {len(self) - 8} more" if len(self) > 8 else ""
        return f"<GraphNodes: {len(self)} labelled nodes: {shown}{more}>"


def nodes(root: Any) -> GraphNodes:
    """The labelled nodes of ``root``'s graph as a mapping from label to node.

    ``tb.nodes(loss)["xhat[3,0]"] is tb.nodes(loss)["x̂[3,0]"]``: labels can be typed in
    ASCII (mu, var, eps, xhat, gamma, beta, sqrt, -, *, ^2; spaces ignored).

    Args:
        root: a Value or Tensor, or nested lists of them (e.g. the rows y of a scalar
            ``batch_norm``): the graphs of all of them.

    Examples:
        >>> import tinybn as tb
        >>> from tinybn import functional as F
        >>> x = tb.values([[1.0], [2.0], [4.0]], "x")
        >>> y = F.batch_norm(x, eps=1e-5)
        >>> graph = tb.nodes(y[0][0])
        >>> graph["xhat[0,0]"] is graph["x̂[0,0]"]  # ASCII or Unicode labels
        True
        >>> round(graph["mu[0,0]"].data, 4)
        2.3333
    """
    roots = _flatten(root)
    if not roots:
        raise ValueError("nodes: no Value or Tensor given")
    order, seen = [], set()
    for each in roots:
        check_node(each, "nodes")
        for node in topological_order(each):
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
    return GraphNodes(order)


def _flatten(item: Any) -> list[Any]:
    if isinstance(item, (list, tuple)):
        return [node for sub in item for node in _flatten(sub)]
    if hasattr(item, "tolist") and not isinstance(item, (Value, Tensor)):  # a ValueArray
        return _flatten(item.tolist())
    return [item]
