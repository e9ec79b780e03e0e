"""Writing a drawing to a file: the DOT source always, the picture when ``dot`` exists."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import graphviz

from tinybn.viz.graph import INSTALL_HINT, GraphvizNotFoundError, draw


def render(root: Any, path: str | Path, format: str | None = None, **draw_options: Any) -> Path:
    """Draw ``root``'s graph and write it as a picture; returns the picture's path.

    The DOT source is written first, next to the picture (``bn.png`` → ``bn.gv``), so
    that even without Graphviz installed the graph can be rendered elsewhere or later.

    Args:
        root: a Value or Tensor, or a ``graphviz.Digraph`` already made by ``draw``.
        path: where the picture goes, e.g. "out/bn.png"; without a suffix the format's
            suffix is added.
        format: "png", "svg", "pdf", ...; by default taken from the suffix, else "png".
        draw_options: passed to ``draw`` (rankdir, between, max_nodes, collapse, ...).
    Raises:
        GraphvizNotFoundError: `dot` is not installed (the message says how to install it).

    Examples:
        >>> import os, tempfile
        >>> import tinybn as tb
        >>> from tinybn import Value
        >>> L = (Value(2.0, label="a") * Value(3.0, label="b")).named("L")
        >>> path = tb.viz.render(L, os.path.join(tempfile.mkdtemp(), "L.svg"))  # by the suffix
        >>> path.suffix, path.read_text().startswith("<?xml")
        ('.svg', True)
    """
    path = Path(path)
    format = format or path.suffix.lstrip(".") or "png"
    if format not in graphviz.FORMATS:
        raise ValueError(f"render: unknown format {format!r}; try 'png' or 'svg'")
    if path.suffix != f".{format}":
        path = path.with_name(path.name + f".{format}")
    graph = root if isinstance(root, graphviz.Digraph) else draw(root, **draw_options)

    path.parent.mkdir(parents=True, exist_ok=True)
    source_path = path.with_suffix(".gv")
    source_path.write_text(graph.source, encoding="utf-8")
    missing = GraphvizNotFoundError(
        f"{INSTALL_HINT} The DOT source was written to {source_path}; render it with "
        f"`dot -T{format} {source_path} -o {path}`.",
        source_path,
    )
    if shutil.which("dot") is None:
        raise missing
    try:
        graphviz.render("dot", format, source_path, outfile=path, quiet=True)
    except graphviz.ExecutableNotFound as error:
        raise missing from error
    return path
