"""The ``tinybn`` command: ``tinybn tour`` and ``tinybn demo NAME [options]``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def _demo_names() -> list[str]:
    try:
        import demos
    except ImportError:
        return []
    modules = pkgutil.iter_modules(demos.__path__)
    return sorted(m.name for m in modules if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tinybn`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="tinybn", description="Batch normalization, built from scratch and shown."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "tour", help="render the batch-norm graph, step backward, train", add_help=False
    )
    demo = commands.add_parser("demo", help="run one demo: tinybn demo NAME [--quick|--full]")
    demo.add_argument("name", help="one of: " + ", ".join(_demo_names()))
    commands.add_parser("demos", help="list the demos")
    args, rest = parser.parse_known_args(argv)

    if args.command == "demos":
        print("\n".join(_demo_names()))
        return 0
    name = "tour" if args.command == "tour" else args.name
    if name not in _demo_names():
        parser.error(f"unknown demo {name!r}; choose from: {', '.join(_demo_names())}")
    module = importlib.import_module(f"demos.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
