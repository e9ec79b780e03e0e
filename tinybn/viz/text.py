"""``tree``: a computation graph as indented text, for a terminal without pictures."""

from __future__ import annotations

from typing import Any

from tinybn.viz.nodes import check_node, describe, op_symbol


def tree(
    root: Any,
    depth: int = 8,
    *,
    max_children: int = 6,
    max_lines: int = 300,
    precision: int = 4,
) -> str:
    """The graph under ``root``, one node per line, inputs indented under their output.

    Each line shows the node's label (or op), data and grad, and "← op" for the op
    that made it. A node used by several others is expanded the first time only.

    Args:
        root: a Value or Tensor.
        depth: how many levels of inputs to show below the root.
        max_children: inputs listed per node (a 64-input mean shows 6 and "… 58 more").
        max_lines: stop after this many lines.
        precision: significant digits.

    Examples:
        >>> import tinybn as tb
        >>> from tinybn import Value
        >>> a, b = Value(2.0, label="a"), Value(3.0, label="b")
        >>> L = (a * b + a).named("L")
        >>> L.backward()
        >>> print(tb.tree(L))
        L  data 8  grad 1  ← +
        ├─ (*)  data 6  grad 1  ← ×
        │  ├─ a  data 2  grad 4
        │  └─ b  data 3  grad 2
        └─ a  data 2  grad 4
    """
    check_node(root, "tree")
    if depth < 0 or max_children < 1 or max_lines < 1:
        raise ValueError("tree: depth must be >= 0, max_children and max_lines >= 1")
    lines: list[str] = []
    expanded: set[int] = set()
    # explicit stack, so a graph a million nodes deep cannot overflow Python's recursion
    stack: list[tuple[Any, str, str, int]] = [(root, "", "", 0)]
    while stack:
        if len(lines) >= max_lines:
            lines.append(f"… (stopped at max_lines={max_lines})")
            break
        item, branch, indent, level = stack.pop()
        if isinstance(item, str):  # a "… n more" line
            lines.append(branch + item)
            continue
        node = item
        text = describe(node, precision)
        if node.parents:
            text += f"  ← {op_symbol(node.op)}"
            if id(node) in expanded:
                text += "  (inputs shown above)"
            elif level >= depth:
                text += f"  ({len(node.parents)} input(s) deeper than depth={depth})"
        lines.append(branch + text)
        if not node.parents or id(node) in expanded or level >= depth:
            continue
        expanded.add(id(node))
        children: list[Any] = list(node.parents[:max_children])
        if len(node.parents) > max_children:
            children.append(f"… {len(node.parents) - max_children} more input(s)")
        for i in reversed(range(len(children))):
            last = i == len(children) - 1
            child_branch = indent + ("└─ " if last else "├─ ")
            child_indent = indent + ("   " if last else "│  ")
            stack.append((children[i], child_branch, child_indent, level + 1))
    return "\n".join(lines)
