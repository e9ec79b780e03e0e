"""Each chapter as a Jupyter notebook (docs/hooks/notebooks.py): made from the chapter's
markdown, with every code block of the page and no math or image left behind; and every
notebook runs, cell by cell, in a real kernel (skipped, with the reason, without nbclient)."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
from test_docs import code_blocks

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("notebooks", ROOT / "docs" / "hooks" / "notebooks.py")
notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(notebooks)

PAGES = notebooks.chapters()


def test_every_chapter_in_the_nav_has_a_notebook():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    chapters = re.findall(r"^  - \d+b?\. [^:]+: (\S+\.md)$", nav, flags=re.MULTILINE)
    assert len(chapters) >= 8
    assert sorted(chapters) == sorted(page.name for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_a_notebook_holds_the_pages_code_and_prose(page):
    nb = notebooks.notebook(page)
    code = "\n".join(c["source"] for c in nb["cells"] if c["cell_type"] == "code")
    prose = "\n".join(c["source"] for c in nb["cells"] if c["cell_type"] == "markdown")
    for language, _, source in code_blocks(page):
        if language == "python":
            assert source.strip() in code
        elif language == "pycon":
            for line in source.splitlines():
                if line.startswith(">>> "):
                    assert line[4:] in code
    assert "\\(" not in prose and "--8<--" not in prose and "<iframe" not in prose
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", prose)
    assert all(image.startswith("attachment:") for image in images), images
    attached = {name for c in nb["cells"] for name in c.get("attachments", {})}
    assert {image.removeprefix("attachment:") for image in images} == attached
    json.dumps(nb)  # a notebook is JSON


def test_the_converter_reads_sessions_admonitions_and_errors(tmp_path):
    page = tmp_path / "9-x.md"
    page.write_text(
        '# 9. X\n\nText \\(a^2\\).\n\n!!! note "Careful"\n    Indented.\n\n'
        "```pycon\n>>> a = 1\n>>> a\n1\n>>> 1 / 0\nTraceback (most recent call last):\n"
        "    ...\nZeroDivisionError: division by zero\n```\n",
        encoding="utf-8",
    )
    cells = notebooks.notebook(page)["cells"]
    assert [c["cell_type"] for c in cells] == ["markdown", "code", "code"]
    assert "$a^2$" in cells[0]["source"] and "> **Careful**\n> Indented." in cells[0]["source"]
    assert cells[1]["source"] == "a = 1\na" and cells[2]["source"] == "1 / 0"
    assert cells[2]["metadata"]["tags"] == ["raises-exception"]


def test_every_notebook_runs(tmp_path):
    pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e .[docs])")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e .[docs])")
    ran, not_run = 0, []
    for page in PAGES:
        if notebooks.missing_need(page):  # e.g. chapter 8 without torch (the oracle extra)
            not_run.append(page.name)
            continue
        path = tmp_path / f"{page.stem}.ipynb"
        path.write_text(notebooks.notebook_json(page), encoding="utf-8")
        assert notebooks.execute(path) > 0
        ran += 1
        if page.name == "0-backprop.md":
            # the explorer shows itself in the notebook (_repr_html_), as the page promised
            outputs = [
                o for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", [])
            ]
            shown = ["".join(o.get("data", {}).get("text/html", "")) for o in outputs]
            assert any("Next step" in html and "<iframe" in html for html in shown)
    assert ran + len(not_run) == len(PAGES) and ran >= len(PAGES) - 1, not_run
    if not_run:
        pytest.skip(f"ran {ran} notebooks; not run, missing their optional package: {not_run}")
