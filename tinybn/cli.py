"""The ``tinybn`` command: ``tinybn tour``, ``tinybn explore``, ``tinybn demo NAME [options]``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path


def _demo_names() -> list[str]:
    try:
        import demos
    except ImportError:
        return []
    modules = pkgutil.iter_modules(demos.__path__)
    return sorted(m.name for m in modules if not m.name.startswith("_"))


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
    from demos.tour import write_explorer

    path = write_explorer(args.out)
    if path is None:
        return 1
    print(f"wrote {path}  <- open it in a browser")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tinybn`` console script.

    ``tinybn tour [options]`` and ``tinybn demo NAME [options]`` hand everything after the
    demo's name to that demo's own parser, so ``tinybn demo gan --help`` shows gan's flags.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    names = _demo_names()
    parser = argparse.ArgumentParser(
        prog="tinybn",
        description="Batch normalization, built from scratch and shown.",
        epilog="demos: " + ", ".join(names),
    )
    parser.add_argument("command", choices=["tour", "explore", "demo", "demos"])
    parser.add_argument("name", nargs="?", help="the demo to run (after `demo`)")
    if not argv or argv[0] not in ("tour", "explore", "demo", "demos"):
        parser.parse_args(argv[:1])  # prints usage (or help) and exits
    command = argv[0]
    if command == "explore":
        return explore(argv[1:])
    if command == "demos":
        print("\n".join(names))
        return 0
    if command == "tour":
        name, rest = "tour", argv[1:]
    elif len(argv) < 2 or argv[1].startswith("-"):
        parser.error("`tinybn demo` needs a demo name: " + ", ".join(names))
    else:
        name, rest = argv[1], argv[2:]
    if name not in names:
        parser.error(f"unknown demo {name!r}; choose from: {', '.join(names)}")
    module = importlib.import_module(f"demos.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
