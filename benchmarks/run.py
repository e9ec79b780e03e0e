"""Run the benchmark cases, print a table, write JSON, refresh the table in README.md.

    python -m benchmarks                      # every case (demo_wall takes minutes)
    python -m benchmarks --quick              # fewer rounds, no demo_wall
    python -m benchmarks --cases bn_op scalar_bn
    python -m benchmarks --threads 1          # numpy's BLAS and torch both on one thread

Times are medians over rounds; ratios are medians of per-round ratios (see timing.py).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from benchmarks import memory
from benchmarks.timing import CaseResult, Settings, numpy_threads
from tinybn.files import unwritable_folder_reason, write_text_atomically

HERE = Path(__file__).resolve().parent
CASES = [
    "scalar_bn",
    "scalar_mlp",
    "bn_op",
    "op_overhead",
    "small_step",
    "mlp_bn_step",
    "conv_op",
    "lenet_step",
    "memory",
    "render",
    "hvp",
    "explorer",
    "demo_wall",
]


def run_case(name: str, settings: Settings, threads: int | None = None) -> list[CaseResult]:
    from benchmarks import tensor_cases as tc

    if name == "scalar_bn":
        from benchmarks.scalar import scalar_bn

        return [scalar_bn(settings)]
    if name == "scalar_mlp":
        from benchmarks.scalar import scalar_mlp

        return [scalar_mlp(settings)]
    if name == "bn_op":
        return [tc.bn_op(settings, 256, 512), tc.bn_op(settings, 4096, 64)]
    if name == "op_overhead":
        from benchmarks.overhead import op_overhead

        return [op_overhead(settings)]
    if name == "small_step":
        return [tc.training_step(settings, "small_step", tc.SMALL)]
    if name == "mlp_bn_step":
        result = tc.training_step(settings, "mlp_bn_step", tc.MLP_BN)
        floor = tc.matmul_floor(settings, tc.MLP_BN)
        result.extra["matmul floor seconds"] = floor
        if "tinybn" in result.seconds:
            result.extra["tinybn / matmul floor"] = result.seconds["tinybn"] / floor
        return [result]
    if name == "conv_op":
        from benchmarks import conv_cases

        return [conv_cases.conv_op(settings, shape) for shape in conv_cases.CONV_SHAPES]
    if name == "lenet_step":
        from benchmarks import conv_cases

        return [conv_cases.lenet_step(settings)]
    if name == "memory":
        result = CaseResult(f"memory: peak RSS, {memory.STEPS} mlp_bn_steps", {}, {})
        for impl in ("tinybn", "numpy", "torch"):
            measured = memory.measure(impl, threads=threads)
            if measured is None:
                result.notes.append(f"{impl}: could not run (not installed?)")
            else:
                result.extra[f"{impl} peak MiB"] = measured["peak_rss_mib"]
        if "tinybn peak MiB" in result.extra and "numpy peak MiB" in result.extra:
            result.extra["tinybn/numpy peak"] = (
                result.extra["tinybn peak MiB"] / result.extra["numpy peak MiB"]
            )
        return [result]
    if name == "render":
        from benchmarks.render import render_case

        return [render_case(settings, 8, 2), render_case(settings, 64, 4)]
    if name == "hvp":
        from benchmarks.higher_order import hvp_case

        return [hvp_case(settings)]
    if name == "explorer":
        from benchmarks.explorer import explorer_cases

        return explorer_cases(settings)
    if name == "demo_wall":
        from benchmarks.demo_wall import demo_wall

        return [demo_wall()]
    raise ValueError(f"unknown case {name!r}; known: {', '.join(CASES)}")


# -- targets (issues 2 and 7) ---------------------------------------------------------------


def _target(result: CaseResult) -> tuple[str, bool | None]:
    """The case's target in words, and whether this run met it (None: not measurable)."""
    r, e, case = result.ratios, result.extra, result.case
    if case.startswith("scalar_bn"):
        speed, size = (
            e.get("nodes/s ratio tinybn/micrograd"),
            e.get("bytes/node ratio tinybn/micrograd (own counts)"),
        )
        met = None if speed is None else speed >= 4 and size <= 0.5
        return "≥ 4× micrograd nodes/s, ≤ ½ its bytes/node", met
    if case.startswith("scalar_mlp"):
        speed = e.get("nodes/s ratio tinybn/micrograd")
        return "≥ 2× micrograd nodes/s", None if speed is None else speed >= 2
    if case.startswith("bn_op"):
        ratio = r.get("tinybn/torch")
        return "≤ 1.2× PyTorch", None if ratio is None else ratio <= 1.2
    if case == "small_step":
        ratio = r.get("tinybn/torch")
        return "≤ 0.5× PyTorch", None if ratio is None else ratio <= 0.5
    if case == "mlp_bn_step":
        ratio, floor = r.get("tinybn/torch"), e.get("tinybn / matmul floor")
        met = None if ratio is None else ratio <= 1.0 and (floor is None or floor <= 1.6)
        return "≤ 1.0× PyTorch, ≤ 1.6× matmul floor", met
    if case.startswith("conv_op") or case == "lenet_step":
        ratio = r.get("tinybn/torch")
        return "≤ 2.0× PyTorch (1 thread)", None if ratio is None else ratio <= 2.0
    if case.startswith("memory"):
        ratio = e.get("tinybn/numpy peak")
        return "≤ 1.3× hand numpy", None if ratio is None else ratio <= 1.3
    if case.startswith("render 64"):
        seconds = result.seconds.get("tinybn")
        return "< 10 s", None if seconds is None else seconds < 10
    if case.startswith("explorer") or case.startswith("draw refusal"):
        limit = 2.0 if "64x16" in case else 1.0
        seconds = result.seconds.get("tinybn")
        return f"< {limit:g} s", None if seconds is None else seconds < limit
    return "", None


# -- output ---------------------------------------------------------------------------------


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def _extra_str(result: CaseResult) -> str:
    parts = []
    for key, value in result.extra.items():
        if "seconds" in key:
            parts.append(f"{key.replace(' seconds', '')} {_time(value)}")
        elif isinstance(value, float):
            parts.append(f"{key} {value:,.3g}" if value < 1000 else f"{key} {value:,.0f}")
        else:
            parts.append(f"{key} {value}")
    return "; ".join(parts + result.notes)


def table(results: list[CaseResult]) -> str:
    """A markdown table: times, ratios measured pairwise, the target and whether it was met."""
    header = (
        "| case | tinybn | hand numpy | PyTorch | micrograd | tinybn/numpy | tinybn/torch "
        "| tinybn/micrograd | target | met | details |"
    )
    lines = [header, "|" + " --- |" * 11]
    for result in results:
        s, r = result.seconds, result.ratios
        target, met = _target(result)
        cells = [
            result.case,
            _time(s.get("tinybn")),
            _time(s.get("numpy")),
            _time(s.get("torch")),
            _time(s.get("micrograd")),
            _ratio(r, "tinybn/numpy"),
            _ratio(r, "tinybn/torch"),
            _ratio(r, "tinybn/micrograd"),
            target,
            {True: "yes", False: "**no**", None: "—"}[met],
            _extra_str(result) if not result.case.startswith("demo_wall") else _demo_str(result),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(ratios: dict[str, float], key: str) -> str:
    return f"{ratios[key]:.2f}×" if key in ratios else "—"


def _demo_str(result: CaseResult) -> str:
    return "; ".join([f"{k} {_time(v)}" for k, v in result.seconds.items()] + result.notes)


def machine() -> dict[str, object]:
    info: dict[str, object] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy threads": numpy_threads(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            model = re.search(r"model name\s*:\s*(.*)", f.read())
        info["cpu"] = model.group(1) if model else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    import numpy

    info["numpy"] = numpy.__version__
    for module in ("torch", "micrograd"):
        try:
            info[module] = importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
            info[module] = "not installed"
    try:
        info["load average"] = tuple(round(load, 2) for load in os.getloadavg())
    except OSError:
        pass
    return info


def update_readme(markdown: str, readme: Path = HERE / "README.md") -> None:
    """Replace the text between the results markers in README.md."""
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if not readme.exists():
        return
    text = readme.read_text()
    if start not in text or end not in text:
        return
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    write_text_atomically(readme, f"{before}{start}\n{markdown}\n{end}{after}")


def _json_path(text: str) -> Path:
    """--json's value: a file path (an empty string is refused: Path("") would mean ".")."""
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a file name, got an empty string")
    return Path(text)


def _unwritable_json_reason(path: Path) -> str | None:
    """Why the results cannot be written at ``path`` (one line), or None if they can."""
    if path.is_dir():
        return "is a folder; give a file name"
    if path.exists() and not os.access(path, os.W_OK):
        return "cannot be written: Permission denied"
    folder = path.parent
    if not folder.is_dir():
        return f"is in a folder that does not exist ({folder})"
    reason = unwritable_folder_reason(folder)
    return f"is in a folder that {reason}" if reason else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--cases", nargs="+", choices=CASES, default=None, help="cases to run")
    parser.add_argument("--quick", action="store_true", help="5 short rounds; skip demo_wall")
    parser.add_argument("--repeat", type=int, default=None, help="rounds per case (default 15)")
    parser.add_argument("--threads", type=int, default=None, help="BLAS/torch threads")
    parser.add_argument(
        "--json", type=_json_path, default=HERE / "results.json", help="JSON output"
    )
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = parser.parse_args(argv)
    # checked before the benchmarks run, not after minutes of them
    reason = _unwritable_json_reason(args.json)
    if reason:
        parser.error(f"--json {str(args.json)!r} {reason}")

    settings = Settings(repeat=5, min_time=0.02) if args.quick else Settings()
    if args.repeat:
        settings.repeat = args.repeat
    if args.threads:
        import numpy  # noqa: F401  (load its BLAS first: threadpoolctl limits loaded libraries)
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads, user_api="blas")
    cases = args.cases or [c for c in CASES if not (args.quick and c == "demo_wall")]
    info = machine()
    print(
        f"tinybn benchmarks — {info['cpu']}, {info['cpus']} CPUs, numpy threads "
        f"{info['numpy threads']}, torch {info['torch']}, micrograd {info['micrograd']}"
    )
    results: list[CaseResult] = []
    runners: list[tuple[str, Callable[[], list[CaseResult]]]] = [
        (name, lambda name=name: run_case(name, settings, args.threads)) for name in cases
    ]
    for name, runner in runners:
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        results.extend(runner())
    markdown = table(results)
    print(markdown)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    payload = {
        "date": stamp,
        "machine": info,
        "settings": asdict(settings),
        "results": [asdict(r) for r in results],
    }
    write_text_atomically(args.json, json.dumps(payload, indent=2, default=str))
    print(f"JSON written to {args.json}")
    if not args.no_readme and args.cases is None:
        load = info.get("load average", "?")
        update_readme(
            f"Run {stamp} on {info['cpu']} ({info['cpus']} CPUs, numpy/torch threads "
            f"{info['numpy threads']}, load average {load}), Python {info['python']}, numpy "
            f"{info['numpy']}, torch {info['torch']}, micrograd {info['micrograd']}.\n\n{markdown}"
        )
        print(f"table written to {HERE / 'README.md'}")
    return 0
