"""``draw``: a computation graph as a Graphviz picture, micrograd style.

Each value is a box ``label | data | grad`` (a Tensor also shows its shape and a
summary of its arrays); the op that made it is a small ellipse in front of it.
Batch-norm stages (μ, x − μ, ..., y) are grouped into boxes named by their role, the
γ and β parameters are filled and every edge on a path from them to the loss — the
edges their gradient travels back along — is drawn thick and coloured.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphviz

from tinybn.autograd import topological_order
from tinybn.functional import NORM_STAGES
from tinybn.viz.collapse import (
    Folded,
    HiddenGroup,
    collector_paused,
    fold_samples,
    folded_size,
    sample_lanes,
)
from tinybn.viz.nodes import (
    BN_ROLES,
    check_node,
    consumers_of,
    is_tensor,
    op_symbol,
    parameter_kind,
    shape_text,
    stage,
    summarize,
    value_of,
)

PARAMETER_FILL = {"γ": "#ffd591", "β": "#bcd7ff"}
GRADIENT_COLOR = {"γ": "darkorange", "β": "royalblue"}
STAGE_FILL = "#f4f4f4"


INSTALL_HINT = (
    "Graphviz's `dot` program is not on PATH, so no picture was made. Install it with "
    "`apt-get install -y graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
    "`dnf install graphviz` (Fedora) or `conda install graphviz` (conda), then run again."
)


class GraphTooLargeError(ValueError):
    """The graph has more nodes than ``draw`` will hand to Graphviz."""


class GraphvizNotFoundError(RuntimeError):
    """`dot` is missing. ``source_path`` is the DOT file that was written anyway."""

    def __init__(self, message: str, source_path: Path | None) -> None:
        super().__init__(message)
        self.source_path = source_path


class Drawing(graphviz.Digraph):
    """The ``graphviz.Digraph`` that ``draw`` returns; its ``render`` explains a missing `dot`.

    graphviz's own ``render`` saves the DOT source before it calls `dot`, so when `dot` is
    missing the source is already next to the requested file: the error says where.
    """

    def render(self, *args: Any, **kwargs: Any) -> str:
        try:
            return super().render(*args, **kwargs)
        except graphviz.ExecutableNotFound as error:
            raise GraphvizNotFoundError(
                f"{INSTALL_HINT} The DOT source was written to {self.filepath}.",
                Path(self.filepath),
            ) from error


def jupyter_svg(root: Any) -> str | None:
    """SVG of ``root``'s graph for Jupyter, or None (plain repr) if it cannot be drawn."""
    try:
        return draw(root)._repr_image_svg_xml()
    except (GraphTooLargeError, graphviz.ExecutableNotFound):
        return None


def draw(
    root: Any,
    rankdir: str = "LR",
    *,
    between: Any = None,
    with_inputs: bool = False,
    max_nodes: int = 300,
    collapse: bool | str = "auto",
    samples_shown: int = 3,
    clusters: bool = True,
    precision: int = 4,
    highlight: Any = None,
    grads_filled: set[int] | None = None,
) -> graphviz.Digraph:
    """The graph that ``root`` was computed from, as a ``graphviz.Digraph``.

    Args:
        root: a Value or Tensor (usually the loss).
        rankdir: "LR" (inputs on the left) or "TB" (inputs on top).
        between: a node or a list of nodes; draw only the nodes on a path from one of
            them to ``root`` (e.g. ``between=gamma`` shows where γ's gradient comes from).
        with_inputs: with ``between``, also draw the direct inputs of the nodes on those
            paths (e.g. the x̂ that multiplies γ), without what they were computed from.
        max_nodes: the most nodes (value boxes + op ellipses + summaries) to draw. A
            larger graph is folded per sample (see ``collapse``); if it is still too
            large, GraphTooLargeError (a ValueError) says what to do instead.
        collapse: "auto" folds per-sample structure only when the graph exceeds
            max_nodes; True always folds; False never does.
        samples_shown: how many samples per feature to keep when folding.
        clusters: group batch-norm stages into boxes named by role.
        precision: significant digits of the numbers shown.
        highlight: a node to outline in red (``Stepper.draw``: the node that just pushed).
        grads_filled: ids of the nodes whose grad to show; the others show "grad ·"
            (``Stepper.draw``: the grads backward has not reached yet). None shows all.
    Returns:
        a graphviz.Digraph: ``.source`` is the DOT text, ``.render(path, format="png")``
        writes a picture (see also ``tinybn.viz.render``).

    Examples:
        >>> import tinybn as tb
        >>> from tinybn import Value
        >>> a, b = Value(2.0, label="a"), Value(3.0, label="b")
        >>> L = (a * b + a).named("L")
        >>> L.backward()
        >>> graph = tb.draw(L)  # a graphviz.Digraph: .render(), or shown inline in Jupyter
        >>> type(graph).__name__
        'Drawing'
        >>> "grad 4" in graph.source  # a.grad = b + 1, drawn in a's box
        True
    """
    check_node(root, "draw")
    if rankdir not in ("LR", "TB"):
        raise ValueError(f"draw: rankdir must be 'LR' or 'TB', got {rankdir!r}")
    if collapse not in (True, False, "auto"):
        raise ValueError(f"draw: collapse must be True, False or 'auto', got {collapse!r}")
    if samples_shown < 1:
        raise ValueError(f"draw: samples_shown must be >= 1, got {samples_shown}")
    whole = topological_order(root)
    order = whole if between is None else nodes_between(whole, between, with_inputs)

    # count before folding or laying out anything, so a huge graph is refused in a moment
    folded = Folded(order, {}, set(), {})
    drawn = before = _count(order)
    if collapse is True or (collapse == "auto" and before > max_nodes):
        # users outside the drawn part count too, so between= needs all of them
        with collector_paused():
            consumers = None if between is None else consumers_of(whole)
            stages: dict[int, str] = {}
            lanes = sample_lanes(order, consumers, stages)
            drawn = folded_size(order, lanes, samples_shown, stages)
            if drawn <= max_nodes:
                consumers = consumers or consumers_of(whole)
                folded = fold_samples(order, consumers, samples_shown, lanes)
    if drawn > max_nodes:
        raise GraphTooLargeError(
            f"draw: {drawn} nodes to draw ({before} before folding samples), more "
            f"than max_nodes={max_nodes}. Graphviz would take minutes to lay this out. "
            "Draw part of it with between=[node, ...], raise max_nodes, or print "
            "tinybn.tree(root, depth=...) instead."
        )
    look = _Look(precision, rankdir, highlight, grads_filled)
    return _build(order, folded, clusters, look)


def nodes_between(order: list[Any], start: Any, with_inputs: bool = False) -> list[Any]:
    """The nodes of ``order`` on some path from a node in ``start`` to the root
    (and, with ``with_inputs``, the direct inputs of those nodes)."""
    chosen = list(start) if isinstance(start, Iterable) and not _is_node(start) else [start]
    in_graph = {id(node) for node in order}
    for node in chosen:
        if id(node) not in in_graph:
            raise ValueError(f"between: {node!r} is not in the graph of the root being drawn")
    reached = {id(node) for node in chosen}
    for node in order:  # parents come first, so one pass finds every descendant
        if any(id(parent) in reached for parent in node.parents):
            reached.add(id(node))
    if with_inputs:
        on_paths = [node for node in order if id(node) in reached]
        reached |= {id(parent) for node in on_paths for parent in node.parents}
    return [node for node in order if id(node) in reached]


def _is_node(item: Any) -> bool:
    return hasattr(item, "parents")


def _count(nodes: list[Any]) -> int:
    """Boxes plus op ellipses."""
    return len(nodes) + sum(1 for node in nodes if node.parents)


def _gradient_routes(order: list[Any]) -> dict[int, set[str]]:
    """Node id → which parameter kinds ("γ", "β") it depends on (itself included)."""
    routes: dict[int, set[str]] = {}
    for node in order:
        kinds = {kind for kind in (parameter_kind(node),) if kind is not None}
        for parent in node.parents:
            kinds |= routes.get(id(parent), set())
        routes[id(node)] = kinds
    return routes


def _edge_style(kinds: set[str]) -> dict[str, str]:
    if not kinds:
        return {}
    colors = ":".join(GRADIENT_COLOR[k] for k in sorted(kinds, key="γβ".index))
    return {"color": colors, "penwidth": "2.5"}


@dataclass
class _Look:
    """How the value boxes are drawn (see ``draw``'s arguments of the same names)."""

    precision: int
    rankdir: str
    highlight: Any = None
    grads_filled: set[int] | None = None


def _fields(node: Any, look: _Look) -> list[str]:
    """The texts of a value box: label, (shape,) data, grad ("·" where not yet filled)."""
    precision = look.precision
    label = node.label or ("" if node.parents else "leaf")
    if look.grads_filled is not None and id(node) not in look.grads_filled:
        data = summarize(node.data, precision) if is_tensor(node) else f"{node.data:.{precision}g}"
        shape = [shape_text(node)] if is_tensor(node) else []
        return [
            field
            for field in [label or op_symbol(node.op), *shape, f"data {data}", "grad ·"]
            if field
        ]
    if is_tensor(node):
        grad = summarize(node.grad, precision) if node.grad is not None else "None"
        fields = [
            label or op_symbol(node.op),
            shape_text(node),
            f"data {summarize(node.data, precision)}",
            f"grad {grad}",
        ]
    else:
        grad = value_of(node.grad)
        fields = [label, f"data {node.data:.{precision}g}", f"grad {grad:.{precision}g}"]
    return [field for field in fields if field]


def _table(fields: list[str], rankdir: str) -> str:
    """An HTML-like label: the fields side by side (LR) or stacked (TB), ruled apart.

    Not ``shape=record``: `dot` cannot route an edge between adjacent nodes of the same
    rank (a "flat edge") when one of them is a record; inside clusters it then fails
    with "lost ... edge". HTML-like labels have no such limit.
    """
    cells = [f"<td>{html.escape(field, quote=False)}</td>" for field in fields]
    if rankdir == "LR":
        rows = "<tr>" + "".join(cells) + "</tr>"
        rules = 'columns="*"'
    else:
        rows = "".join(f"<tr>{cell}</tr>" for cell in cells)
        rules = 'rows="*"'
    return (
        f'<<table border="0" cellborder="0" cellspacing="0" cellpadding="3" {rules}>{rows}</table>>'
    )


def _build(order: list[Any], folded: Folded, clusters: bool, look: _Look) -> graphviz.Digraph:
    graph = Drawing(
        name="tinybn",
        graph_attr={"rankdir": look.rankdir, "nodesep": "0.15", "ranksep": "0.3"},
        node_attr={"fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"arrowsize": "0.6"},
    )
    routes = _gradient_routes(order)
    shown = {id(node) for node in folded.shown}
    # DOT ids by position in the topological order, not by memory address: the same graph
    # gives the same DOT source (and picture) on every run
    names = {id(node): f"n{position}" for position, node in enumerate(order)}
    stages: dict[str, list[Any]] = {}
    summaries: dict[str, list[Any]] = {}  # stage → its folded groups

    for node in folded.shown:
        if clusters and node.role in BN_ROLES:
            stages.setdefault(node.role, []).append(node)
        else:
            _add_node(graph, node, names, look, routes)
    for group in folded.groups.values():
        if clusters and group.role in BN_ROLES:
            summaries.setdefault(group.role, []).append(group)
        else:
            _add_summary(graph, group, names, folded.beside.get((group.feature, group.stage)))

    for position, role in enumerate(BN_ROLES):  # one box per normalization stage, named
        if role not in stages and role not in summaries:
            continue
        with graph.subgraph(name=f"cluster_{position}") as box:
            box.attr(
                label=NORM_STAGES[role][0],
                style="rounded,filled",
                fillcolor=STAGE_FILL,
                color="gray70",
            )
            for node in stages.get(role, []):
                _add_node(box, node, names, look, routes)
            for group in summaries.get(role, []):
                _add_summary(box, group, names, folded.beside.get((group.feature, group.stage)))

    for node in folded.shown:
        for parent in node.parents:
            if id(parent) in shown:
                graph.edge(
                    names[id(parent)], names[id(node)] + "op", **_edge_style(routes[id(parent)])
                )

    # a summary stands for the value boxes AND the ops of its samples: edges into it come
    # from the visible inputs of those ops, edges out of it go where their values are used
    for parent_id, key in sorted(folded.into_summary, key=lambda edge: (names[edge[0]], edge[1])):
        style = _edge_style(routes[parent_id])
        graph.edge(names[parent_id], _summary_id(key), style="dashed", **style)
    for (key, target), hidden in folded.out_of_summary.items():
        style = _edge_style(set().union(*(routes[id(node)] for node in hidden)))
        head = names[target] + "op" if isinstance(target, int) else _summary_id(target)
        graph.edge(_summary_id(key), head, style="dashed", **style)

    legend = _legend(order)
    if legend:
        graph.attr(label=legend, labelloc="t", fontname="Helvetica", fontsize="11")
    return graph


def _legend(order: list[Any]) -> str:
    """ "darkorange = gradient path to γ · royalblue = gradient path to β" (names as found)."""
    names: dict[str, list[str]] = {"γ": [], "β": []}
    for node in order:
        kind = parameter_kind(node)
        if kind and stage(node) not in names[kind]:
            names[kind].append(stage(node))
    parts = []
    for kind, found in names.items():
        if found:
            shown = ", ".join(found[:4]) + (", …" if len(found) > 4 else "")
            parts.append(f"{GRADIENT_COLOR[kind]} = gradient path to {shown}")
    return " · ".join(parts)


def _add_node(
    graph: graphviz.Digraph,
    node: Any,
    names: dict[int, str],
    look: _Look,
    routes: dict[int, set[str]],
) -> None:
    kind = parameter_kind(node)
    style = {"style": "filled", "fillcolor": PARAMETER_FILL[kind], "penwidth": "2"} if kind else {}
    if node is look.highlight:
        style.update(color="red", penwidth="3")
    label = _table(_fields(node, look), look.rankdir)
    name = names[id(node)]
    graph.node(name, label, shape="box", margin="0", **style)
    # the op ellipse, unless none of the node's inputs is part of this drawing
    if any(id(parent) in routes for parent in node.parents):
        symbol = op_symbol(node.op).replace("\\", "\\\\")  # a plain label: only \ escapes
        graph.node(name + "op", symbol, shape="ellipse", width="0.3")
        graph.edge(name + "op", name, **_edge_style(routes[id(node)]))


def _add_summary(
    graph: graphviz.Digraph, group: HiddenGroup, names: dict[int, str], beside: Any | None
) -> None:
    """The dashed "× k more samples" note of one folded group, in the rank of ``beside``."""
    summary_id = _summary_id((group.feature, group.stage))
    graph.node(summary_id, group.text, shape="note", style="dashed", fontcolor="gray30")
    if beside is not None:
        with graph.subgraph() as same_rank:
            same_rank.attr(rank="same")
            same_rank.node(names[id(beside)])
            same_rank.node(summary_id)


def _summary_id(key: tuple[tuple[int, ...], str]) -> str:
    feature, stage = key
    # a stage name may hold any character: its code points keep the DOT id plain
    return "more_" + "_".join(map(str, feature)) + "_" + "_".join(str(ord(c)) for c in stage)
