"""Peak memory (max RSS) of 100 ``mlp_bn_step`` steps, each framework in its own process.

Run by benchmarks/run.py as ``python -m benchmarks.memory IMPL``; prints one JSON line.
Only the framework being measured is imported in that process.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

STEPS = 100
ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB.

    Linux's ``VmHWM`` first: ``getrusage``'s ru_maxrss survives exec, so a child started by
    a parent that had imported torch would report the parent's peak, not its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure_here(impl: str, steps: int = STEPS) -> dict[str, float]:
    from benchmarks import tensor_cases as cases

    data = cases.step_data(cases.MLP_BN)
    if impl == "torch":
        cases.setup_torch()
    make = {"tinybn": cases.tinybn_step, "numpy": cases.numpy_step, "torch": cases.torch_step}
    step = make[impl](cases.MLP_BN, data)
    before = peak_rss_mib()
    for _ in range(steps):
        step()
    return {"impl": impl, "peak_rss_mib": peak_rss_mib(), "rss_before_steps_mib": before}


def measure(impl: str, steps: int = STEPS, threads: int | None = None) -> dict[str, float] | None:
    """Run ``measure_here`` in a fresh interpreter; None if it failed (e.g. not installed)."""
    env = dict(os.environ)
    if threads:
        env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", impl, str(steps)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(measure_here(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else STEPS)))
