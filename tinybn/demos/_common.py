"""What every demo shares: the command line, the output folder, results.json, figures.

Each demo module defines ``run(out, *, scale="default", seed=0, **options) -> dict`` (writes
its figures and results.json into ``out`` and returns the results) and ``main(argv=None)`` for
the command line. Scales: ``"quick"`` (seconds; the tests use it), ``"default"`` (about a
minute on 2 cores) and ``"full"`` (closer to the paper's scale).

Importing a demo changes no process-wide setting: the command line (``tinybn demo``) and
docs/build_figures.py call ``use_demo_process_settings()`` before they run one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tinybn.files import unwritable_folder_reason, write_text_atomically
from tinybn.random import manual_seed

SCALES = ("quick", "default", "full")


def use_demo_process_settings() -> None:
    """What a process that runs demos sets once: matplotlib's file-only backend (demos write
    files; they never open windows) and numpy's BLAS on one thread (the demos multiply small
    matrices, and on a 2-core machine a multi-threaded BLAS spends longer waking threads than
    multiplying; seen: `regularization --quick` 5.8 s → 2.2 s of CPU)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optimization only
        return
    threadpool_limits(limits=1)


def run_settings(
    out: Path | str, scale: str, seed: int, options: dict[str, Any], **defaults: Any
) -> argparse.Namespace:
    """The settings a demo's ``run`` reads, as the namespace its command line would give:
    ``out``, ``quick``, ``full``, ``seed`` and the demo's own options (``defaults``, updated
    by ``options``). Checks them and prepares ``out`` (see ``prepare_out``).

    Raises ValueError for an unknown scale, TypeError for an option the demo does not take.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}; got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        takes = ", ".join(sorted(defaults)) or "none"
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; this demo takes: {takes}")
    args = argparse.Namespace(
        out=Path(out),
        quick=scale == "quick",
        full=scale == "full",
        seed=seed,
        **{**defaults, **options},
    )
    prepare_out(args)
    return args


def demo_parser(name: str, description: str) -> argparse.ArgumentParser:
    """The flags every demo takes: --quick / --full, --out, --seed."""
    parser = argparse.ArgumentParser(prog=f"tinybn demo {name}", description=description)
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help="seconds-long run (used by tests)")
    scale.add_argument("--full", action="store_true", help="closer to the paper's scale")
    parser.add_argument(
        "--out",
        type=_out_folder,
        default=Path("tinybn-out") / name,
        help=f"output folder (default: tinybn-out/{name}/)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return parser


def main_of(name: str, doc: str, run: Callable[..., Any], argv: list[str] | None) -> int:
    """``main(argv)`` of a demo with no flags of its own: the shared flags, then ``run``."""
    args = demo_parser(name, doc.splitlines()[0]).parse_args(argv)
    run(args.out, scale=scale_name(args), seed=args.seed)
    return 0


def _out_folder(text: str) -> Path:
    """--out's value: a folder path (an empty string is refused: Path("") would mean ".")."""
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a folder name, got an empty string")
    return Path(text)


def pick(args: argparse.Namespace, quick: Any, default: Any, full: Any) -> Any:
    """The setting for the chosen scale."""
    return quick if args.quick else full if args.full else default


def scale_name(args: argparse.Namespace) -> str:
    return "quick" if args.quick else "full" if args.full else "default"


def prepare_out(args: argparse.Namespace) -> Path:
    """Create the output folder and return it; a folder that cannot be written (a file of
    that name, no permission, an empty name) ends the program with a one-line error.

    Also seeds tinybn's default generator with --seed (``tb.manual_seed``), so that a
    layer built without an explicit rng is the same on every run too.
    """
    reason = unwritable_folder_reason(args.out)
    if reason is not None:
        raise SystemExit(f"error: --out {str(args.out)!r} {reason}")
    manual_seed(args.seed)
    return args.out


def _finite_json(value: Any) -> Any:
    """Convert numpy scalars/arrays to plain JSON, refusing NaN/inf (a demo bug, not a result)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a diverged run is recorded as null
    return value


def write_results(out: Path, results: dict[str, Any]) -> Path:
    """Write results.json (atomically: a reader never sees half a file) and print its path."""
    path = out / "results.json"
    write_text_atomically(path, json.dumps(_finite_json(results), indent=2) + "\n")
    print(f"wrote {path}")
    return path


# Figures are laid out for a page column (the docs' is 688 px at a 1280 px window): at most
# COLUMN_INCHES wide, saved at FIGURE_DPI, so a figure is shown at no less than half its
# pixel width and a 9 pt label reads at >= 11 px as shown (9 pt · 688 / (7.5 · 72) = 11.5).
COLUMN_INCHES = 7.5
FIGURE_DPI = 150
SMALLEST_FONT_PT = 9


def column_panels(n: int, ncols: int = 2, panel_height: float = 3.0, **kwargs: Any) -> Any:
    """A figure of ``n`` panels laid out for the column: ``ncols`` across, as many rows as
    needed, unused cells removed. Returns (fig, axes) with axes a 1-d array of ``n``."""
    import matplotlib.pyplot as plt

    rows = math.ceil(n / ncols)
    fig, grid = plt.subplots(
        rows, ncols, figsize=(COLUMN_INCHES, panel_height * rows), squeeze=False, **kwargs
    )
    cells = list(grid.flat)
    for ax in cells[n:]:
        ax.remove()
    return fig, np.array(cells[:n], dtype=object)


def _fit_to_column(fig: Any) -> None:
    """The safety net for the column rule: wrap titles to their panel's width, lift every
    text smaller than SMALLEST_FONT_PT, shrink a figure wider than COLUMN_INCHES."""
    import textwrap

    width, height = fig.get_size_inches()
    if width > COLUMN_INCHES:
        fig.set_size_inches(COLUMN_INCHES, height * COLUMN_INCHES / width)
    for text in fig.findobj(lambda artist: hasattr(artist, "get_fontsize")):
        if hasattr(text, "set_fontsize") and text.get_fontsize() < SMALLEST_FONT_PT:
            text.set_fontsize(SMALLEST_FONT_PT)
    panels = [(ax.title, ax.get_position().width * fig.get_size_inches()[0]) for ax in fig.axes]
    if fig._suptitle is not None:
        panels.append((fig._suptitle, fig.get_size_inches()[0]))
    for title, inches in panels:
        label = title.get_text()
        if not label or "\n" in label:
            continue
        characters = max(20, int(inches * 72 / (title.get_fontsize() * 0.55)))
        if len(label) <= characters:
            continue
        words, math_part = label, ""
        if "$" in label:  # never break inside mathtext: the formula goes on a line of its own
            start = label.index("$")
            words, math_part = label[:start].rstrip(), label[start:]
        wrapped = textwrap.fill(words, characters) if words else ""
        title.set_text("\n".join(part for part in (wrapped, math_part) if part))
    if fig.legends:  # a figure-level legend: the demo has laid out the figure around it
        return
    import warnings

    try:
        with warnings.catch_warnings():  # a demo's own layout (e.g. colorbars) may refuse it
            warnings.simplefilter("ignore", UserWarning)
            fig.tight_layout()
    except Exception:  # tight_layout refuses some layouts (e.g. fixed colorbar axes); keep it
        pass


def save_figure(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure as PNG laid out for a page column, close it, print the path."""
    import matplotlib.pyplot as plt

    _fit_to_column(fig)
    fig.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")
    return path


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A small aligned text table."""

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    widths = [max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(cell(row.get(c, "")).ljust(w) for c, w in zip(columns, widths)))


def smooth(values: list[float], window: int) -> np.ndarray:
    """Moving average of a noisy curve (a loss per step): each point is the mean of
    ``window`` consecutive values. Short curves get a window of at most a fifth of their
    length, so a --quick run still shows a curve. Returns len(values) − window + 1 points."""
    values = np.asarray(values, dtype=float)
    window = max(1, min(window, len(values) // 5 or 1))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def progress(iterable: Any, **kwargs: Any) -> Any:
    """A tqdm progress bar on stderr."""
    from tqdm.auto import tqdm

    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
