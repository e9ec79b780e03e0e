"""Each chapter is also a Jupyter notebook, made from the chapter's own markdown.

There is no second copy to drift: the notebook is generated from ``docs/<chapter>.md`` when
the site is built (an mkdocs hook: the ``.ipynb`` is added to the site beside the page, and
the page gets a download link), and CI executes every notebook:

    python docs/hooks/notebooks.py --execute        # write + run them in tinybn-out/notebooks

The conversion: ``python`` fences become code cells; ``pycon`` fences (REPL sessions) become
code cells of their ``>>>`` / ``...`` lines (their printed output is what running the cell
shows); every other fence and the prose stay markdown; ``--8<--`` includes are inlined; the
chapter's images are attached to the notebook (it opens anywhere, alone); an embedded
explorer (``<iframe>``) is dropped, since the chapter's code makes the same explorer and
its ``_repr_html_`` shows it in the notebook; ``\\( \\)`` and ``\\[ \\]`` become ``$`` and
``$$`` (Jupyter's math).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
# the chapters a reader works through, in order (the reference pages are not notebooks)
CHAPTERS = [
    "0-backprop.md",
    "1-why-normalize.md",
    "2-forward.md",
    "3-backward.md",
    "4-inference.md",
    "5-tensors.md",
    "6-where-and-why.md",
    "6b-norm-family.md",
    "8-pytorch.md",
]
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>.*)$")
SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$')
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<path>[^)\s]+)\)(\{[^}]*\})?")
ADMONITION = re.compile(
    r'^(?P<indent> *)(!!!|\?\?\?\+?) *(?P<kind>\w+)(?: +"(?P<title>[^"]*)")?\s*$'
)
MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}


def chapters() -> list[Path]:
    return [DOCS / name for name in CHAPTERS if (DOCS / name).is_file()]


def missing_need(page: Path) -> str | None:
    """The optional package a chapter declares (``<!-- needs: torch -->`` on its first
    line) when it cannot be imported here, else None: such a notebook is not run."""
    import importlib.util

    need = re.match(r"<!-- needs: (\w+)", page.read_text(encoding="utf-8"))
    if need and importlib.util.find_spec(need[1]) is None:
        return need[1]
    return None


def _markdown_cell(lines: list[str], attachments: dict) -> dict | None:
    text = "\n".join(lines).strip("\n")
    # Jupyter's math delimiters (a formula may run over two lines)
    text = re.sub(r"\\\((.+?)\\\)", r"$\1$", text, flags=re.S)
    text = text.replace("\\[", "$$").replace("\\]", "$$")
    if not text.strip():
        return None
    cell = {"cell_type": "markdown", "metadata": {}, "source": text}
    used = {name: data for name, data in attachments.items() if f"attachment:{name}" in text}
    if used:
        cell["attachments"] = used
    return cell


def _code_cell(source: str) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": source.rstrip("\n"),
    }


def _repl_sources(body: list[str]) -> list[str]:
    """The code of a REPL session, prompts removed: one cell per statement that prints
    something (so the notebook shows each output the page shows), the rest grouped."""
    cells: list[list[str]] = [[]]
    for line in body:
        if line.startswith((">>> ", "... ")) or line in (">>>", "..."):
            if cells[-1] is None:
                cells[-1] = []
            cells[-1].append(line[4:])
        elif line.strip() and cells[-1]:
            cells.append(None)  # output: the statement above ends its cell
    return ["\n".join(code) for code in cells if code]


def _include(line: str) -> str:
    """A ``--8<-- "path"`` line replaced by the file it names (pymdownx.snippets' job)."""
    snippet = SNIPPET.match(line)
    return (ROOT / snippet["path"]).read_text(encoding="utf-8").rstrip("\n") if snippet else line


def _prose(line: str, page: Path, attachments: dict) -> str | None:
    """One line of prose as the notebook shows it (None: dropped)."""
    if "<iframe" in line:
        return None  # the explorer: the chapter's code cell above shows it (_repr_html_)
    snippet = SNIPPET.match(line)
    if snippet:
        return (ROOT / snippet["path"]).read_text(encoding="utf-8").rstrip("\n")

    def attach(match: re.Match) -> str:
        image = (page.parent / match["path"]).resolve()
        if image.suffix not in MIME or not image.is_file():
            return match[0]
        attachments[image.name] = {
            MIME[image.suffix]: base64.b64encode(image.read_bytes()).decode("ascii")
        }
        return f"![{match['alt']}](attachment:{image.name})"

    line = IMAGE.sub(attach, line)
    # links to other chapters point at the site's pages; in a notebook, at the notebooks
    line = re.sub(r"\]\((\d[\w-]*)\.md(#[\w-]+)?\)", r"](\1.ipynb\2)", line)
    return line


def notebook(page: Path) -> dict:
    """The notebook of one chapter (nbformat 4 as a plain dict)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    cells: list[dict] = []
    prose: list[str] = []
    attachments: dict = {}
    admonition_indent: int | None = None

    def flush() -> None:
        cell = _markdown_cell(prose, attachments)
        if cell:
            cells.append(cell)
        prose.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("<!--") and line.rstrip().endswith("-->"):
            i += 1
            continue
        opening = FENCE.match(line)
        if opening:
            indent, fence = len(opening["indent"]), opening["fence"]
            language = opening["info"].strip().split(" ")[0].lstrip("{.").rstrip("}")
            body, i = [], i + 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i][indent:])
                i += 1
            i += 1
            if language == "python":
                flush()
                cells.append(_code_cell("\n".join(body)))
            elif language == "pycon":
                flush()
                for source in _repl_sources(body):
                    cells.append(_code_cell(source))
                if any(line.startswith("Traceback (most recent call last)") for line in body):
                    # a session that shows an error on purpose: nbclient runs on past it
                    for cell in cells[-len(_repl_sources(body)) :]:
                        cell["metadata"]["tags"] = ["raises-exception"]
            else:
                shown = [_include(line) for line in body]
                prose.extend([f"```{language}", *shown, "```"])
            continue
        admonition = ADMONITION.match(line)
        if admonition:
            title = admonition["title"] or admonition["kind"].capitalize()
            prose.append(f"> **{title}**")
            admonition_indent = len(admonition["indent"]) + 4
            i += 1
            continue
        if admonition_indent is not None:
            if line.strip() and not line.startswith(" " * admonition_indent):
                admonition_indent = None
            else:
                shown = _prose(line[admonition_indent:], page, attachments)
                if shown is not None:
                    prose.append(f"> {shown}".rstrip())
                i += 1
                continue
        shown = _prose(line, page, attachments)
        if shown is not None:
            prose.append(shown)
        i += 1
    flush()
    for number, cell in enumerate(cells):
        cell["id"] = f"cell-{number}"
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "tinybn": {"source": f"docs/{page.name}", "generated": "docs/hooks/notebooks.py"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def notebook_json(page: Path) -> str:
    return json.dumps(notebook(page), indent=1, ensure_ascii=False) + "\n"


def notebook_name(page: Path) -> str:
    return f"notebooks/{page.stem}.ipynb"


def execute(path: Path, timeout: int = 600) -> int:
    """Run every cell of a notebook file in a fresh kernel, in its folder; save the outputs.

    Returns the number of code cells run; a cell that raises fails with nbclient's error.
    """
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    # the kernel imports the tinybn of this checkout, even where it is not pip-installed
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(ROOT)!r})"))
    nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    nb.cells.pop(0)
    nbformat.write(nb, path)
    return sum(cell.cell_type == "code" for cell in nb.cells)


# -- the mkdocs hook ----------------------------------------------------------------------


def on_files(files, config, **kwargs):  # mkdocs: add each chapter's notebook to the site
    from mkdocs.structure.files import File

    for page in chapters():
        files.append(File.generated(config, notebook_name(page), content=notebook_json(page)))
    return files


def on_page_markdown(markdown: str, page, **kwargs) -> str:  # mkdocs: the download link
    name = Path(page.file.src_uri).name
    if name not in CHAPTERS:
        return markdown
    link = (
        f"[Download this chapter as a Jupyter notebook]({notebook_name(Path(name))})"
        '{ .md-button download="" }'
    )
    title, _, rest = markdown.partition("\n")
    return f"{title}\n\n{link}\n{rest}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (and run) each chapter's notebook.")
    parser.add_argument("--out", type=Path, default=ROOT / "tinybn-out" / "notebooks")
    parser.add_argument("--execute", action="store_true", help="run every cell (nbclient)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for page in chapters():
        path = args.out / f"{page.stem}.ipynb"
        path.write_text(notebook_json(page), encoding="utf-8")
        if args.execute and missing_need(page):
            print(f"wrote {path} (not run: it needs {missing_need(page)})")
        elif args.execute:
            cells = execute(path)
            total += 1
            print(f"ran {path} ({cells} code cells)")
        else:
            print(f"wrote {path}")
    if args.execute:
        print(f"{total} notebooks executed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
