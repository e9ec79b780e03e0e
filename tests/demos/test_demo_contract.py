"""What every demo promises: one ``run`` signature, checked arguments, and an import that
changes no process-wide setting (the command line sets those when it runs a demo)."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinybn import demos

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(m.name for m in pkgutil.iter_modules(demos.__path__) if not m.name.startswith("_"))


def test_every_demo_is_found():
    assert {"tour", "placement", "cnn", "santurkar", "bn_position", "gan"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_demo_has_one_run_signature(name):
    """run(out: Path, *, scale: str = "default", seed: int = 0, **options) -> dict, and main."""
    module = importlib.import_module(f"tinybn.demos.{name}")
    parameters = list(inspect.signature(module.run).parameters.values())
    shape = [(p.name, p.kind, p.default) for p in parameters]
    assert shape == [
        ("out", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("scale", inspect.Parameter.KEYWORD_ONLY, "default"),
        ("seed", inspect.Parameter.KEYWORD_ONLY, 0),
        ("options", inspect.Parameter.VAR_KEYWORD, inspect.Parameter.empty),
    ]
    assert module.run.__annotations__["return"] == "dict"
    assert callable(module.main)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scale": "huge"}, ValueError, "scale must be one of quick, default, full; got 'huge'"),
        ({"scale": "quick", "sed": 1}, TypeError, "unknown option.* sed; this demo takes: none"),
        ({"scale": "quick", "seed": 1.5}, TypeError, "seed must be an int, got float"),
        ({"scale": "quick", "mnist": "x"}, TypeError, "unknown option.* mnist"),
    ],
)
def test_run_refuses_bad_arguments_before_writing(tmp_path, kwargs, error, match):
    from tinybn.demos import bn_position

    out = tmp_path / "never"
    with pytest.raises(error, match=match):
        bn_position.run(out, **kwargs)
    assert not out.exists()


def test_a_demo_option_reaches_the_experiment(tmp_path, monkeypatch):
    """ioffe_fig1's mnist_dir option is what its loader reads (an empty folder: no IDX files)."""
    from tinybn.demos import ioffe_fig1

    with pytest.raises((FileNotFoundError, ValueError), match="train-images"):
        ioffe_fig1.run(tmp_path / "o", scale="quick", mnist_dir=tmp_path)


IMPORT_ALL = """
import importlib, json, os, pkgutil
import matplotlib
from threadpoolctl import threadpool_info, threadpool_limits

threadpool_limits(limits=3)  # a count no demo would choose, so a change shows on any machine
def settings():
    return {
        "MPLBACKEND": os.environ.get("MPLBACKEND"),
        "backend": matplotlib.get_backend(),
        "threads": sorted(p["num_threads"] for p in threadpool_info()),
    }
before = settings()
import tinybn.demos
for module in pkgutil.iter_modules(tinybn.demos.__path__):
    importlib.import_module("tinybn.demos." + module.name)
print(json.dumps({"before": before, "after": settings()}))
"""


def test_importing_every_demo_changes_no_process_setting():
    pytest.importorskip("matplotlib")
    pytest.importorskip("threadpoolctl")
    env = {k: v for k, v in __import__("os").environ.items() if k != "MPLBACKEND"}
    env["MPLBACKEND"] = "svg"  # not the Agg the demos' runner sets
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"]["backend"] == "svg" and 3 in seen["before"]["threads"]
    assert seen["after"] == seen["before"]


def test_the_cli_sets_the_demo_settings_when_it_runs_a_demo(tmp_path):
    """`tinybn demo` (not the import) sets the Agg backend and one BLAS thread."""
    pytest.importorskip("threadpoolctl")
    code = (
        "import json, os, sys\n"
        "from threadpoolctl import threadpool_info\n"
        "from tinybn.cli import main\n"
        f"main(['demo', 'placement', '--quick', '--out', {str(tmp_path)!r}])\n"
        "print(json.dumps([os.environ.get('MPLBACKEND'),"
        " sorted({p['num_threads'] for p in threadpool_info()})]))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "MPLBACKEND"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert done.returncode == 0, done.stderr
    backend, threads = json.loads(done.stdout.strip().splitlines()[-1])
    assert backend == "Agg" and threads == [1]
