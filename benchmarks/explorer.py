"""``explorer``: the explorer page's size and time to first paint, and draw's quick refusal.

* ``explorer worked``: ``tb.explore`` of the lecture notes' worked example (10 × 2, the page
  ``tinybn explore`` writes). Target: first paint in headless Chromium < 1 s.
* ``explorer 64x16``: a scalar BN graph of 64 samples × 16 features (8,305 nodes, 6,209
  backward steps), folded (978 boxes, ops and summaries: drawn with max_nodes=1000).
  Target: first paint < 2 s.
* ``draw refusal``: ``tb.draw`` on a scalar BN graph of 16 samples × 1024 features with
  the worked example's loss (138,241 nodes) refusing with GraphTooLargeError. Target < 1 s
  (it took ~70 s when the refusal came after folding and laying out).

"First paint" is the time from the start of navigation to the first frame painted with the
graph on screen: the file read from disk and parsed, the page's script run, the SVG mounted,
fitted and set to step 0 (the page marks ``tinybn-graph-painted`` after that frame).
Chromium's own ``first-contentful-paint`` is listed beside it: it fires earlier, when the
toolbar is painted. Medians of 5 loads in one browser after a warm-up load (Debian's
/usr/bin/chromium driven by playwright).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.timing import CaseResult, Settings

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def tour_like_bn(n: int, c: int, seed: int = 0):
    """A scalar BN graph n × c with the worked example's loss L = Σ wᵢ·yᵢⱼ, wᵢ = i + 1."""
    import tinybn as tb
    from tinybn import Value
    from tinybn import functional as F

    rng = np.random.default_rng(seed)
    x = tb.values(rng.normal(3.0, 2.0, size=(n, c)).tolist(), "x")
    y = F.batch_norm(x, tb.values([1.0] * c, "γ"), tb.values([0.0] * c, "β"))
    terms = [
        (Value(float(i + 1), label=f"w[{i},{j}]") * v).named(f"w·y[{i},{j}]")
        for i, row in enumerate(y)
        for j, v in enumerate(row)
    ]
    return Value.sum(terms).named("L")


def first_paint(path: Path, loads: int) -> tuple[float, float, float]:
    """Median graph-painted, first-contentful-paint and load-event times (s) of ``path``."""
    from playwright.sync_api import sync_playwright

    graphs, paints, loaded = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(loads + 1):  # the first load warms the browser up: not counted
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(path.resolve().as_uri())
            page.wait_for_timeout(200)  # the mark comes one frame after the load
            timings = page.evaluate(
                """() => {
                  const at = (name) => (performance.getEntriesByName(name)[0] || {}).startTime;
                  const nav = performance.getEntriesByType("navigation")[0];
                  return [at("tinybn-graph-painted"), at("first-contentful-paint"),
                          nav.loadEventEnd];
                }"""
            )
            page.close()
            graph, paint, load = (t / 1e3 if t is not None else float("nan") for t in timings)
            graphs.append(graph)
            paints.append(paint)
            loaded.append(load)
        browser.close()
    return tuple(statistics.median(times[1:]) for times in (graphs, paints, loaded))


def explorer_case(settings: Settings, name: str, root_factory, **options) -> CaseResult:
    if shutil.which("dot") is None:
        return CaseResult(name, {}, {}, notes=["Graphviz `dot` not on PATH"])
    import tinybn as tb

    root = root_factory()
    start = time.perf_counter()
    explorer = tb.explore(root, **options)
    built = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        path = explorer.save(Path(folder) / "explorer.html")
        size = path.stat().st_size
        result = CaseResult(name, {}, {})
        result.extra["explore seconds"] = built
        result.extra["html bytes"] = size
        result.extra["steps"] = explorer.data["total"]
        result.extra["drawn"] = " + ".join(
            f"{view.value_nodes} boxes {'folded' if view.folded else 'unfolded'}"
            for view in explorer.views
        )
        try:
            import playwright  # noqa: F401
        except ImportError:
            result.notes.append("playwright not installed: no first paint")
            return result
        if not Path(CHROMIUM).exists():
            result.notes.append(f"no Chromium at {CHROMIUM}: no first paint")
            return result
        graph, paint, loaded = first_paint(path, loads=5)
        result.seconds["tinybn"] = graph
        result.extra["first-contentful-paint seconds"] = paint
        result.extra["load event seconds"] = loaded
    return result


def worked_example_root():
    from tinybn.demos.tour import worked_example

    return worked_example().loss


def refusal_case(settings: Settings) -> CaseResult:
    import tinybn as tb
    from tinybn.autograd import topological_order
    from tinybn.viz import GraphTooLargeError

    root = tour_like_bn(16, 1024)
    nodes = len(topological_order(root))
    times, cpu_times, message = [], [], ""
    for _ in range(max(3, settings.repeat // 5)):
        start, cpu = time.perf_counter(), time.process_time()
        try:
            tb.draw(root)
        except GraphTooLargeError as error:
            message = str(error)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu)
    result = CaseResult("draw refusal (138k nodes)", {"tinybn": statistics.median(times)}, {})
    # beside the wall time: this process's CPU time, which other load on the machine
    # does not inflate (on a busy 2-core machine the wall time is up to twice as long)
    result.extra["cpu seconds"] = statistics.median(cpu_times)
    result.extra["graph nodes"] = nodes
    result.extra["refused"] = message.split(".")[0] if message else "NOT refused"
    return result


def explorer_cases(settings: Settings) -> list[CaseResult]:
    return [
        explorer_case(settings, "explorer worked example", worked_example_root, max_nodes=400),
        explorer_case(
            settings, "explorer 64x16 folded", lambda: tour_like_bn(64, 16), max_nodes=1000
        ),
        refusal_case(settings),
    ]
