"""Every code block in README.md and docs/*.md runs here, so a renamed function breaks a test.

Fences are read by their language:

* ``python`` — executed;
* ``pycon`` — a REPL session (``>>>`` lines and the output they print), checked with doctest,
  so the numbers a reader sees are the numbers the code gives;
* anything else (``bash``, ``text``) — shown, never run (the README's install commands).

The blocks of one file run in order in one namespace, like a reader typing them into one
REPL, inside a fresh temporary folder (files they write land there).
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"python", "pycon"}
SHOWN_ONLY = {"bash", "console", "text", "dot", "yaml", "toml"}
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>.*)$")
IMAGE = re.compile(r"!\[[^\]]*\]\((?P<path>[^)\s]+)")

README_COMMANDS = [
    '(command -v dot >/dev/null || (apt-get update && apt-get install -y graphviz)) && pip install -e ".[demos]" && tinybn tour',  # noqa: E501
    '(command -v dot >/dev/null || (apt-get update && apt-get install -y graphviz)) && pip install -e ".[dev]" && python -m pytest',  # noqa: E501
]


def code_blocks(path: Path) -> list[tuple[str, int, str]]:
    """(language, first line number, source) of each fenced block in a markdown file."""
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        language = opening["info"].strip().split(" ")[0].lstrip("{.").rstrip("}")
        body, i = [], i + 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][indent:])
            i += 1
        blocks.append((language, i - len(body) + 1, "\n".join(body) + "\n"))
        i += 1
    return blocks


NEEDS = re.compile(r"<!-- needs: (?P<module>\w+)")


def run_blocks(path: Path) -> None:
    # a page that shows an optional dependency says so in its first line, and is skipped
    # (not failed) without it: ``<!-- needs: torch -->``
    needs = NEEDS.match(path.read_text(encoding="utf-8"))
    if needs:
        pytest.importorskip(needs["module"])
    namespace: dict = {"__name__": "__docs__"}
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    parser = doctest.DocTestParser()
    for language, line, source in code_blocks(path):
        where = f"{path.name}:{line}"
        if language == "python":
            exec(compile(source, where, "exec"), namespace)
        elif language == "pycon":
            test = parser.get_doctest(source, namespace, where, str(path), line - 1)
            report: list[str] = []
            result = runner.run(test, out=report.append, clear_globs=False)
            namespace.update(test.globs)  # DocTest works on a copy; carry its names forward
            assert result.failed == 0, f"{where}: REPL session differs\n" + "".join(report)


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    run_blocks(path)


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_fence_names_its_language(path):
    for language, line, _ in code_blocks(path):
        assert language in RUN | SHOWN_ONLY, (
            f"{path.name}:{line}: fence language {language!r}; use python/pycon (run by the "
            f"tests) or one of {sorted(SHOWN_ONLY)} (shown only)"
        )


def test_docs_have_code_that_runs():
    """The pages that teach by example really hold examples (an empty parse would pass)."""
    for name in ["README.md", "docs/2-forward.md", "docs/3-backward.md", "docs/4-inference.md"]:
        blocks = code_blocks(ROOT / name)
        assert sum(language in RUN for language, _, _ in blocks) >= 2, name


def test_readme_opens_with_the_two_commands():
    """CI and fresh-machine users copy these verbatim: tour first, then the tests."""
    blocks = code_blocks(ROOT / "README.md")
    assert [(language, source.strip()) for language, _, source in blocks[:2]] == [
        ("bash", command) for command in README_COMMANDS
    ]


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_images_exist_and_are_built_by_the_script(path):
    """Every picture is in the repo and comes from docs/build_figures.py, not from a hand."""
    script = (ROOT / "docs" / "build_figures.py").read_text(encoding="utf-8")
    demos = re.findall(r'^    "(\w+)",$', script, flags=re.MULTILINE)  # the DEMOS tuple
    assert "covariate_shift" in demos
    for match in IMAGE.finditer(path.read_text(encoding="utf-8")):
        image = (path.parent / match["path"]).resolve()
        assert image.is_file(), f"{path.name}: missing image {match['path']}"
        assert image.parent == ROOT / "docs" / "figures", f"{path.name}: {match['path']}"
        made_here = f'"{image.name}"' in script
        copied_from_demo = any(image.stem.startswith(demo) for demo in demos)
        assert made_here or copied_from_demo, (
            f"{path.name}: {image.name} is not written by docs/build_figures.py"
        )


def test_code_block_parser_reads_languages_and_lines(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```bash\nls\n```\n\n```python\nx = 1\ny = 2\n```\n")
    assert code_blocks(page) == [("bash", 4, "ls\n"), ("python", 8, "x = 1\ny = 2\n")]


def test_a_wrong_repl_output_fails(tmp_path):
    """The doctest check is live: a session whose printed output is wrong is caught."""
    page = tmp_path / "page.md"
    page.write_text("```pycon\n>>> 1 + 1\n3\n```\n")
    with pytest.raises(AssertionError, match="REPL session differs"):
        run_blocks(page)


COLUMN_PX = 688  # the docs' column at a 1280 px window (Material; measured by test_site_browser)


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_png_is_shown_at_half_its_width_or_more(path):
    """A PNG wider than twice the column is shown at under half its pixel width, and its
    text cannot be read (the browser test measures the same on the built site)."""
    from PIL import Image

    for match in IMAGE.finditer(path.read_text(encoding="utf-8")):
        image = (path.parent / match["path"]).resolve()
        if image.suffix == ".png":
            width = Image.open(image).size[0]
            assert width <= 2 * COLUMN_PX, f"{path.name}: {image.name} is {width} px wide"


def test_demo_figures_are_laid_out_for_the_column(tmp_path):
    """save_figure's column rule: a figure wider than the column is shrunk to it, small text
    is lifted to 9 pt, long titles wrap, and the PNG is at most 2 columns wide — so a 9 pt
    label reads at >= 11 px where the docs show it (688 px column)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from tinybn.demos._common import COLUMN_INCHES, FIGURE_DPI, SMALLEST_FONT_PT, save_figure

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    axes[0].set_title("a title far too long for a third of the column, which must wrap " * 2)
    axes[1].legend(["tiny"], fontsize=6)
    label = axes[2].set_xlabel("x", fontsize=5)
    save_figure(fig, tmp_path / "wide.png")
    width = Image.open(tmp_path / "wide.png").size[0]
    assert width <= 2 * COLUMN_PX
    assert width <= COLUMN_INCHES * FIGURE_DPI * 1.05  # bbox "tight" may add a margin
    assert label.get_fontsize() == SMALLEST_FONT_PT
    assert "\n" in axes[0].get_title()
    shown_px_per_pt = COLUMN_PX / (COLUMN_INCHES * 72)
    assert SMALLEST_FONT_PT * shown_px_per_pt >= 11
