"""Timing helpers: warm-up, calibrated loops, medians, ratios measured pairwise.

The machine is noisy and absolute times drift, so every implementation of a case is
timed in the same round, one after another (in a rotating order), and each ratio is
the median over rounds of ``time(a) / time(b)`` taken within a round.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Settings:
    """How long to measure: ``repeat`` rounds of at least ``min_time`` seconds each."""

    repeat: int = 15
    min_time: float = 0.05
    warmup: int = 3


@dataclass
class CaseResult:
    """Median seconds per call for each implementation, and pairwise ratios."""

    case: str
    seconds: dict[str, float]
    ratios: dict[str, float]  # "tinybn/torch" -> median over rounds of the per-round ratio
    extra: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def numpy_threads() -> int:
    """The number of threads numpy's BLAS uses (threadpoolctl if present, else the env)."""
    import numpy as np

    (np.ones((64, 64)) @ np.ones((64, 64))).sum()  # make sure BLAS is loaded
    try:
        from threadpoolctl import threadpool_info

        counts = [
            info["num_threads"]
            for info in threadpool_info()
            if info["user_api"] == "blas" and "numpy" in info["filepath"]
        ]
        if counts:
            return max(counts)
    except ImportError:
        pass
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var):
            return int(os.environ[var])
    return os.cpu_count() or 1


def _loops_for(fn: Callable[[], object], min_time: float) -> int:
    """How many calls make one timed sample last at least ``min_time`` seconds."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or loops >= 1 << 20:
            return loops
        # aim a little past min_time so the next try usually succeeds
        loops = max(loops * 2, int(loops * 1.2 * min_time / max(elapsed, 1e-9)))


def compare(
    case: str,
    impls: dict[str, Callable[[], object]],
    settings: Settings,
    baseline: str = "tinybn",
) -> CaseResult:
    """Time each implementation; ratios are ``baseline / other`` per round, then the median.

    The garbage collector stays ON (Python's default, and what a user runs with).
    """
    names = list(impls)
    gc.collect()  # once per case: start from a clean heap
    for fn in impls.values():
        for _ in range(settings.warmup):
            fn()
    loops = {name: _loops_for(fn, settings.min_time) for name, fn in impls.items()}
    samples: dict[str, list[float]] = {name: [] for name in names}
    ratio_samples: dict[str, list[float]] = {
        f"{baseline}/{name}": [] for name in names if name != baseline and baseline in names
    }
    for round_index in range(settings.repeat):
        shift = round_index % len(names)
        this_round = {}
        for name in names[shift:] + names[:shift]:
            fn, n = impls[name], loops[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            elapsed = time.perf_counter() - start
            # Reclaim the cyclic garbage this sample left (micrograd's closures), so that it
            # is not collected during the next implementation's sample, and charge the time
            # to this one if there was any: reclaiming it is part of this engine's cost.
            # (With the collector switched off, as for "micrograd with gc off", nothing is
            # collected: that measurement is of the engine without its collector.)
            collect_start = time.perf_counter()
            if gc.isenabled() and gc.collect():
                elapsed += time.perf_counter() - collect_start
            this_round[name] = elapsed / n
            samples[name].append(this_round[name])
        for key in ratio_samples:
            other = key.split("/", 1)[1]
            ratio_samples[key].append(this_round[baseline] / this_round[other])
    return CaseResult(
        case=case,
        seconds={name: statistics.median(values) for name, values in samples.items()},
        ratios={key: statistics.median(values) for key, values in ratio_samples.items()},
    )
