"""The ``tinybn`` command: ``tinybn tour``, ``tinybn explore``, ``tinybn demo NAME [options]``,
``tinybn demos``."""

from __future__ import annotations

import argparse
import ast
import importlib
import pkgutil
import sys
from pathlib import Path

DEMO_FLAGS = """\
every demo takes:
  --quick        a run of seconds (what the tests use)
  --full         closer to the paper's scale (minutes)
  --out DIR      output folder for figures and results.json (default tinybn-out/NAME/)
  --seed N       random seed (default 0)
  -h, --help     that demo's own help, e.g. `tinybn demo gan --help`"""


def _demo_names() -> list[str]:
    try:
        from tinybn import demos
    except ImportError:
        return []
    modules = pkgutil.iter_modules(demos.__path__)
    return sorted(m.name for m in modules if not m.name.startswith("_"))


def _summary(name: str) -> str:
    """The first line of a demo's docstring, read from its source (nothing is imported)."""
    try:
        from tinybn import demos

        source = Path(demos.__path__[0], f"{name}.py").read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(source)) or ""
    except (ImportError, OSError, SyntaxError):
        return ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _demo_list(names: list[str]) -> str:
    width = max((len(n) for n in names), default=0)
    return "\n".join(f"  {n.ljust(width)}  {_summary(n)}".rstrip() for n in names)


def _version() -> str:
    from tinybn import __version__

    return __version__


def _demo_help(names: list[str]) -> str:
    return (
        "usage: tinybn demo NAME [--quick | --full] [--out DIR] [--seed N]\n\n"
        f"demos:\n{_demo_list(names)}\n\n{DEMO_FLAGS}\n"
    )


def explore(argv: list[str]) -> int:
    """``tinybn explore [--out PATH]``: the worked example's explorer page; prints its path."""
    parser = argparse.ArgumentParser(
        prog="tinybn explore",
        description="Write the lecture notes' worked example (batch norm of 10 samples × 2 "
        "features) as one HTML page that steps through backward in a browser.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("tinybn-out") / "explorer.html",
        help="the HTML file to write (default: tinybn-out/explorer.html)",
    )
    args = parser.parse_args(argv)
    from tinybn.demos.tour import write_explorer

    path = write_explorer(args.out)
    if path is None:
        return 1
    print(f"wrote {path}  <- open it in a browser")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tinybn`` console script.

    ``tinybn tour [options]`` and ``tinybn demo NAME [options]`` hand everything after the
    demo's name to that demo's own parser, so ``tinybn demo gan --help`` shows gan's flags;
    ``tinybn demo --help`` lists the demos and the flags they share.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    names = _demo_names()
    parser = argparse.ArgumentParser(
        prog="tinybn",
        description="Batch normalization, built from scratch and shown.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "commands:\n"
            "  tour           the tour (the same as `tinybn demo tour`)\n"
            "  explore        the worked example's explorer page (--out PATH)\n"
            "  demo NAME      run one demo (below); `tinybn demo --help` lists them\n"
            "  demos          print the demos' names\n\n"
            f"demos:\n{_demo_list(names)}\n\n{DEMO_FLAGS}\n\n"
            "example: tinybn demo bn_position --quick --out results/"
        ),
    )
    parser.add_argument("--version", action="version", version=f"tinybn {_version()}")
    parser.add_argument("command", choices=["tour", "explore", "demo", "demos"])
    parser.add_argument("name", nargs="?", help="the demo to run (after `demo`)")
    if not argv or argv[0] not in ("tour", "explore", "demo", "demos"):
        parser.parse_args(argv[:1])  # prints usage, help or the version, and exits
    command = argv[0]
    if command == "explore":
        return explore(argv[1:])
    if command == "demos":
        print("\n".join(names))
        return 0
    if command == "tour":
        name, rest = "tour", argv[1:]
    elif len(argv) >= 2 and argv[1] in ("-h", "--help"):
        print(_demo_help(names), end="")
        return 0
    elif len(argv) < 2 or argv[1].startswith("-"):
        parser.error(
            "`tinybn demo` needs a demo name: " + ", ".join(names) + " (see `tinybn demo --help`)"
        )
    else:
        name, rest = argv[1], argv[2:]
    if name not in names:
        parser.error(f"unknown demo {name!r}; choose from: {', '.join(names)}")
    from tinybn.demos._common import use_demo_process_settings

    use_demo_process_settings()  # Agg, one BLAS thread: set when a demo runs, never on import
    module = importlib.import_module(f"tinybn.demos.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
