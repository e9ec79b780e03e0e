"""``explore``: the graph as a web page that steps through backpropagation, one file, no server.

    ex = tb.explore(loss)          # runs backward one step at a time, draws the graph
    ex.save("bn.html")             # ONE self-contained HTML file; open it from disk
    ex                             # in Jupyter: the same page, inline

The page holds the SVG that Graphviz makes of ``tinybn.draw(loss)`` (folded and unfolded
when both can be drawn), the steps of ``tinybn.backward_steps(loss)`` as data, and a
little JavaScript that replays them: **Next step** runs one node's chain rule, its grad
and the grads it pushed to its parents appear in the drawing; a node not reached yet
shows "grad ·". Clicking a node shows its local rule per parent and, for an input of
batch norm, the three routes of its gradient (``tinybn.contributions``).

Nothing is fetched when the page is viewed (a Content-Security-Policy forbids it), and
every label is escaped: a label is shown as text, never run as markup.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphviz
import numpy as np

from tinybn.autograd import topological_order
from tinybn.viz.graph import INSTALL_HINT, GraphTooLargeError, GraphvizNotFoundError, draw
from tinybn.viz.graph import nodes_between as _nodes_between
from tinybn.viz.nodes import check_node, is_tensor, name, parameter_kind, stage, summarize
from tinybn.viz.routes import contributions
from tinybn.viz.steps import backward_steps

ASSETS = Path(__file__).resolve().parent
# nothing may leave the page: no fetch, no image, no font, no frame; inline code only
CONTENT_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
# the roles whose users mark a node as an input of batch norm (display and ASCII names)
BATCH_NORM_INPUT_USERS = {"μ", "x − μ", "mean", "centered"}


@dataclass
class View:
    """One drawing of the graph, ready for the page: ``folded`` or not."""

    folded: bool
    svg: str  # the <svg> element, prepared (see ``prepare_svg``)
    width: float  # Graphviz's size in points
    height: float
    value_nodes: int  # value boxes drawn


@dataclass
class Explorer:
    """A self-contained explorer page for one graph. Make it with ``explore(root)``.

    Examples:
        >>> import tinybn as tb
        >>> from tinybn import Value
        >>> a, b = Value(2.0, label="a"), Value(3.0, label="b")
        >>> L = (a * b + a).named("L")
        >>> page = tb.explore(L)
        >>> type(page).__name__, len(page.html) > 1000
        ('Explorer', True)
    """

    title: str
    data: dict[str, Any]  # what the page's script reads: nodes, steps, γ/β paths
    views: list[View] = field(default_factory=list)
    fold_note: str = ""  # why the fold toggle is disabled ("" when it works)

    @property
    def html(self) -> str:
        """The whole page as one string."""
        return _page(self)

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path`` (folders are created) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html, encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        # the page in a sandboxed frame: its ids and script stay apart from the notebook's
        page = html.escape(self.html, quote=True)
        return (
            f'<iframe srcdoc="{page}" sandbox="allow-scripts" title="{html.escape(self.title)}" '
            'style="width: 100%; height: 640px; border: 1px solid #ccc"></iframe>'
        )

    def __repr__(self) -> str:
        kinds = " and ".join("folded" if view.folded else "unfolded" for view in self.views)
        return (
            f"<Explorer: {len(self.data['nodes'])} nodes, {self.data['total']} steps, "
            f"drawn {kinds}; .save(path) writes the page>"
        )


def explore(root: Any, **draw_options: Any) -> Explorer:
    """An explorer page of ``root``'s graph and its backward pass, step by step.

    Runs one backward pass step by step on the graph itself, from zeroed grads (what a
    first ``root.backward()`` would give), and then puts every grad back as it was:
    calling ``explore`` changes no grad.

    Args:
        root: a Value, or a single-element Tensor that requires grad (usually the loss).
        **draw_options: passed to ``tinybn.draw`` (max_nodes, samples_shown, rankdir,
            precision, ...). The page starts with the drawing ``draw(root, **draw_options)``
            makes and offers the other one (folded ↔ unfolded) when that can be drawn too.
    Raises:
        GraphTooLargeError: as ``draw`` raises it, with its message.
        GraphvizNotFoundError: Graphviz's ``dot`` is missing (the page embeds its SVG).

    Examples:
        >>> import tinybn as tb
        >>> from tinybn import Value
        >>> a, b = Value(2.0, label="a"), Value(3.0, label="b")
        >>> L = (a * b + a).named("L")
        >>> page = tb.explore(L)
        >>> import os, tempfile
        >>> path = page.save(os.path.join(tempfile.mkdtemp(), "L.html"))  # one offline HTML page
        >>> path.name
        'L.html'
        >>> "Next step" in page.html  # its buttons; _repr_html_ shows it in Jupyter
        True
    """
    check_node(root, "explore")
    precision = int(draw_options.get("precision", 4))
    draw(root, **draw_options)  # refuses a graph too large exactly as draw does, quickly
    order = topological_order(root)
    saved = [_copy(node.grad) for node in order]
    try:
        for node in order:  # one clean backward pass, whatever was accumulated before
            node.grad = None if is_tensor(node) else 0.0
        positions = {id(node): position for position, node in enumerate(order)}
        steps, step_of = _record_steps(root, positions, precision)
        views, fold_note = _views(root, order, draw_options)
        drawn = {int(p) for view in views for p in re.findall(r'data-node="(\d+)"', view.svg)}
        nodes = [
            _node_record(node, step_of.get(position, 0), precision)
            for position, node in enumerate(order)
        ]
        inputs = _batch_norm_inputs(order)
        for position in sorted(drawn):
            if id(order[position]) in inputs:
                nodes[position]["routes"] = _routes(order[position], root, positions, precision)
    finally:
        for node, grad in zip(order, saved):
            node.grad = grad
    data = {
        "total": len(steps),
        "precision": precision,
        "root": name(root),
        "nodes": nodes,
        "steps": steps,
        "paths": _parameter_paths(order),
    }
    return Explorer(f"tinybn explorer: {name(root)}", data, views, fold_note)


# -- the backward pass, recorded ------------------------------------------------------------


def grad_text(grad: Any, precision: int = 4) -> str:
    """A grad as ``draw`` prints it (``precision`` significant digits)."""
    return "None" if grad is None else summarize(grad, precision)


def _record_steps(
    root: Any, positions: dict[int, int], precision: int
) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """Each step as the page replays it: who pushed, its grad, each parent's grad after.

    Only what changed is kept (not every grad after every step), so a graph of n nodes
    gives O(edges) numbers, not O(n²).
    """
    steps, step_of = [], {}
    for step in backward_steps(root):
        position = positions[id(step.node)]
        step_of[position] = step.number
        steps.append(
            {
                "node": position,
                "grad": grad_text(step.grad, precision),
                "pushes": [
                    [
                        positions[id(push.parent)],
                        grad_text(push.grad_after, precision),
                        grad_text(push.added, precision),
                        push.rule,
                    ]
                    for push in step.pushes
                ],
                "text": str(step),
            }
        )
    return steps, step_of


def _node_record(node: Any, step: int, precision: int) -> dict[str, Any]:
    shape = list(node.shape) if is_tensor(node) else None
    return {
        "label": node.label or "",
        "name": name(node),
        "op": node.op or "",
        "role": getattr(node, "role", None) or stage(node),
        "data": summarize(node.data, precision),
        "grad": grad_text(node.grad, precision),
        "shape": shape,
        "step": step,
        "parents": len(node.parents),
    }


def _batch_norm_inputs(order: list[Any]) -> set[int]:
    """Ids of the nodes that batch norm normalizes: the inputs of its μ and x − μ nodes."""
    return {
        id(parent)
        for node in order
        if _role_names(node) & BATCH_NORM_INPUT_USERS
        for parent in node.parents
        if not _role_names(parent) & {"μ", "mean"}  # x − μ's other input
    }


def _routes(node: Any, root: Any, positions: dict[int, int], precision: int) -> dict[str, Any]:
    """The routes of an input of batch norm (through μ, σ², x̂), each amount and their sum."""
    split = contributions(node, root)
    return {
        "routes": [
            [positions.get(id(route.via), -1), name(route.via), grad_text(route.amount, precision)]
            for route in split.routes
        ],
        "sum": grad_text(split.total, precision),
    }


def _role_names(node: Any) -> set[str]:
    """The node's role, as the label shows it ("x − μ") and as data ("centered")."""
    return {stage(node), node.role or ""} - {""}


def _parameter_paths(order: list[Any]) -> dict[str, list[int]]:
    """γ / β → the positions of the nodes their gradient travels through (to the root)."""
    paths = {}
    for kind in ("γ", "β"):
        parameters = [node for node in order if parameter_kind(node) == kind]
        if parameters:
            on_path = {id(node) for node in _nodes_between(order, parameters)}
            paths[kind] = [i for i, node in enumerate(order) if id(node) in on_path]
    return paths


def _copy(grad: Any) -> Any:
    return np.array(grad) if isinstance(grad, np.ndarray) else grad


# -- the drawings ---------------------------------------------------------------------------


def _views(root: Any, order: list[Any], options: dict[str, Any]) -> tuple[list[View], str]:
    """The drawing ``draw(root, **options)`` makes, then the other one (folded or not)."""
    # draw names the DOT nodes n<i> by position in the order it draws: with between=,
    # the nodes on those paths only
    drawn = order
    if options.get("between") is not None:
        drawn = _nodes_between(order, options["between"], options.get("with_inputs", False))
    positions = {id(node): position for position, node in enumerate(order)}
    global_positions = [positions[id(node)] for node in drawn]
    first = draw(root, **options)
    first_folded = "more_" in first.source
    other_options = {**options, "collapse": not first_folded}
    views = [_view(first, first_folded, order, global_positions)]
    try:
        other = draw(root, **other_options)
    except GraphTooLargeError as error:
        return views, f"Unfolded, the graph is too large to draw: {error}"
    if "more_" not in other.source and not first_folded:
        return views, "Nothing to fold: no per-sample structure (labels like x̂[i,j]) found."
    views.append(_view(other, not first_folded, order, global_positions))
    return views, ""


def _view(drawing: graphviz.Digraph, folded: bool, order: list[Any], positions: list[int]) -> View:
    try:
        svg = drawing.pipe(format="svg").decode("utf-8")
    except graphviz.ExecutableNotFound as error:
        raise GraphvizNotFoundError(
            f"{INSTALL_HINT} (The explorer embeds the SVG that `dot` lays out.)", None
        ) from error
    prepared, width, height, boxes = prepare_svg(svg, order, positions)
    return View(folded, prepared, width, height, boxes)


_VIEWBOX = re.compile(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) ([\d.]+)"')
_GROUP = re.compile(
    r'<g id="(?P<id>[^"]+)" class="(?P<kind>node|edge)">\n<title>(?P<title>[^<]*)</title>'
    r"(?P<body>.*?)</g>",
    re.DOTALL,
)
_NAME = re.compile(r"^n(\d+)(op)?$")


def prepare_svg(
    svg: str, order: list[Any], positions: list[int] | None = None
) -> tuple[str, float, float, int]:
    """Graphviz's SVG made ready for the page.

    The XML prolog, doctype and namespaces go (inline SVG in HTML needs none); the
    drawing goes into a ``<g class="viewport">`` that the page pans and zooms; every value
    box gets ``data-node`` (its position in ``topological_order(root)``), ``data-label``
    and an empty ``data-grad``, and its grad text reads "grad ·" until its step runs;
    every node and edge gets the γ / β paths it lies on as classes.

    Args:
        svg: what ``draw(root, ...).pipe(format="svg")`` made.
        order: ``topological_order(root)``.
        positions: DOT node ``n<i>`` → its position in ``order`` (needed when draw drew
            part of the graph, with ``between=``; default: the same position).
    Returns the markup, the drawing's width and height (points) and the value boxes.
    """
    if positions is None:
        positions = list(range(len(order)))

    def position_of(title: str) -> tuple[int, bool] | None:
        """ "n12" → (position, False), "n12op" → (position, True), a summary → None."""
        match = _NAME.match(title)
        return (positions[int(match.group(1))], bool(match.group(2))) if match else None

    size = _VIEWBOX.search(svg)
    width, height = (float(size.group(1)), float(size.group(2))) if size else (100.0, 100.0)
    body = svg[svg.index("<svg") :]
    body = body[body.index(">") + 1 :]
    body = re.sub(r"<!--.*?-->\n?", "", body, flags=re.DOTALL)
    paths = _parameter_paths(order)
    on_path = {kind: set(positions) for kind, positions in paths.items()}
    summaries = _summaries_on_paths(body, on_path, position_of)
    boxes = 0

    def kinds_of(title: str) -> list[str]:
        found = position_of(title)
        if found is not None:
            return [k for k, on in on_path.items() if found[0] in on]
        return sorted(summaries.get(title, set()))

    def rewrite(match: re.Match[str]) -> str:
        nonlocal boxes
        title, kind, body = html.unescape(match.group("title")), match["kind"], match["body"]
        if kind == "edge":
            tail, head = title.split("->", 1)
            both = set(kinds_of(tail)) & set(kinds_of(head))
            edge_classes = " ".join(["edge", *(f"on-{_ascii(k)}" for k in sorted(both))])
            return f'<g class="{edge_classes}">{body}</g>'
        classes, paths = ["node"], [f"on-{_ascii(k)}" for k in kinds_of(title)]
        attributes = ""
        found = position_of(title)
        if found is not None and found[1]:  # the op ellipse in front of a value box
            classes.append("op")
            attributes = f' data-op-of="{found[0]}"'
        elif found is not None:  # a value box
            boxes += 1
            classes.append("value")
            label = html.escape(order[found[0]].label or "", quote=True)
            attributes = f' data-node="{found[0]}" data-label="{label}" data-grad=""'
            body = _mark_grad_text(body)
        else:
            classes.append("summary")
        return f'<g class="{" ".join(classes + paths)}"{attributes}>{body}</g>'

    body = _GROUP.sub(rewrite, body)
    body = body[: body.rindex("</svg>")]
    svg_tag = (
        f'<svg class="graph" width="100%" height="100%" data-width="{width:g}" '
        f'data-height="{height:g}" role="img" aria-label="computation graph">'
    )
    return f'{svg_tag}<g class="viewport">{body}</g></svg>', width, height, boxes


def _mark_grad_text(body: str) -> str:
    """The last text of a value box is its grad ("grad 0.5"): class it, blank it."""
    start = body.rindex("<text ")
    end = body.index("</text>", start)
    opening = body[start : body.index(">", start) + 1]
    opening = opening.replace("<text ", '<text class="grad" ', 1)
    return body[:start] + opening + "grad ·" + body[end:]


def _summaries_on_paths(
    body: str, on_path: dict[str, set[int]], position_of: Any
) -> dict[str, set[str]]:
    """A "× k more samples" summary lies on γ's path when an edge from that path enters it."""
    edges = []
    for match in _GROUP.finditer(body):
        if match["kind"] == "edge":
            tail, head = html.unescape(match["title"]).split("->", 1)
            edges.append((tail, head))
    found: dict[str, set[str]] = {}

    def kinds(title: str) -> set[str]:
        position = position_of(title)
        if position is not None:
            return {k for k, on in on_path.items() if position[0] in on}
        return found.get(title, set())

    changed = True
    while changed:  # summaries feed summaries: repeat until nothing new is found
        changed = False
        for tail, head in edges:
            if head.startswith("more_"):
                new = kinds(tail) - found.get(head, set())
                if new:
                    found.setdefault(head, set()).update(new)
                    changed = True
    return found


def _ascii(kind: str) -> str:
    return {"γ": "gamma", "β": "beta"}[kind]


# -- the page -------------------------------------------------------------------------------


def _json_for_script(data: Any) -> str:
    """JSON safe inside <script>: no "<", ">" or "&" can end the element or start markup."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(explorer: Explorer) -> str:
    script = (ASSETS / "explorer.js").read_text(encoding="utf-8")
    style = (ASSETS / "explorer.css").read_text(encoding="utf-8")
    templates = "\n".join(
        f'<template data-view="{"folded" if view.folded else "unfolded"}" '
        f'data-value-nodes="{view.value_nodes}">{view.svg}</template>'
        for view in explorer.views
    )
    fold_note = html.escape(explorer.fold_note, quote=True)
    title = html.escape(explorer.title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{style}
</style>
</head>
<body>
<header class="toolbar">
  <button type="button" id="prev" aria-keyshortcuts="ArrowLeft">Previous step</button>
  <button type="button" id="next" aria-keyshortcuts="ArrowRight">Next step</button>
  <button type="button" id="play" aria-pressed="false" aria-keyshortcuts="Space">Play</button>
  <button type="button" id="reset">Reset</button>
  <span id="counter" aria-live="polite">step 0 / {explorer.data["total"]}</span>
  <span class="spacer"></span>
  <button type="button" id="fold" aria-pressed="false" data-note="{fold_note}">Fold samples</button>
  <button type="button" id="only-gamma" aria-pressed="false">Only paths to γ</button>
  <button type="button" id="only-beta" aria-pressed="false">Only paths to β</button>
  <button type="button" id="zoom-out" aria-label="Zoom out">−</button>
  <button type="button" id="zoom-in" aria-label="Zoom in">+</button>
  <button type="button" id="fit">Fit</button>
</header>
<main>
  <div id="view" tabindex="0" aria-label="the graph: drag to pan, wheel to zoom"></div>
  <aside>
    <h2>This step</h2>
    <pre id="step-text"></pre>
    <h2>Node</h2>
    <div id="info"><p class="hint">Click a box in the graph.</p></div>
    <p class="hint">Drag to pan; wheel, + / − or a double-click to zoom; → / ← step,
    space plays.</p>
  </aside>
</main>
{templates}
<script type="application/json" id="explorer-data">{_json_for_script(explorer.data)}</script>
<script>
{script}
</script>
</body>
</html>
"""
