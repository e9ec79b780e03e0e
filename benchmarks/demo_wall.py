"""``demo_wall``: wall time of each demo's default run, each in a fresh process."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.timing import CaseResult

DEMOS_DIR = Path(__file__).resolve().parent.parent / "tinybn" / "demos"


def demo_names() -> list[str]:
    return sorted(
        p.stem for p in DEMOS_DIR.glob("*.py") if not p.stem.startswith("_") and p.stem != "tour"
    )


def demo_wall(timeout: float = 900.0) -> CaseResult:
    result = CaseResult("demo_wall", {}, {})
    names = demo_names()
    if not names:
        result.notes.append("no demos found in tinybn/demos/")
        return result
    with tempfile.TemporaryDirectory() as out:
        runs = [("tour", [sys.executable, "-m", "tinybn.cli", "tour"])] + [
            (name, [sys.executable, "-m", "tinybn.cli", "demo", name, "--out", f"{out}/{name}"])
            for name in names
        ]
        for name, command in runs:
            start = time.perf_counter()
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=timeout, cwd=out
                )
            except subprocess.TimeoutExpired:
                result.notes.append(f"{name}: over {timeout:.0f} s, stopped")
                continue
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["?"])[-1]
                result.notes.append(f"{name}: exit {done.returncode} ({last})")
                continue
            result.seconds[name] = seconds
    return result
