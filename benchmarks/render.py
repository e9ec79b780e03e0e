"""``render``: draw the scalar batch-norm graph and lay it out with Graphviz's ``dot``.

Times ``tb.draw(loss)`` (building the DOT source; past its node limit it folds the
repeated per-sample structure) plus ``dot`` producing SVG, for the BN graph of N=8, C=2
and N=64, C=4. Target: N=64, C=4 in under 10 s.
"""

from __future__ import annotations

import shutil
import statistics
import time

from benchmarks.scalar import bn_inputs, tinybn_bn
from benchmarks.timing import CaseResult, Settings


def render_case(settings: Settings, n: int, c: int) -> CaseResult:
    name = f"render {n}x{c}"
    try:
        from tinybn.viz import draw
    except ImportError:
        return CaseResult(name, {}, {}, notes=["tinybn.viz not available"])
    if shutil.which("dot") is None:
        return CaseResult(name, {}, {}, notes=["Graphviz `dot` not on PATH"])
    loss = tinybn_bn(bn_inputs(n, c))
    draw_times, dot_times, sizes = [], [], []
    for _ in range(max(3, settings.repeat // 5)):
        start = time.perf_counter()
        graph = draw(loss)
        drawn = time.perf_counter()
        svg = graph.pipe(format="svg")
        draw_times.append(drawn - start)
        dot_times.append(time.perf_counter() - drawn)
        sizes.append(len(svg))
    total = [a + b for a, b in zip(draw_times, dot_times)]
    result = CaseResult(name, {"tinybn": statistics.median(total)}, {})
    result.extra["draw seconds"] = statistics.median(draw_times)
    result.extra["dot seconds"] = statistics.median(dot_times)
    result.extra["svg bytes"] = sizes[0]
    result.extra["DOT nodes"] = graph.source.count("[label=")
    return result
