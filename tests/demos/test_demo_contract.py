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

import numpy as np
import pytest

from tinybn import demos
from tinybn.demos import _common, ioffe_fig1

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(m.name for m in pkgutil.iter_modules(demos.__path__) if not m.name.startswith("_"))


def test_no_top_level_demos_package_is_installed():
    """pyproject installs tinybn* only: the demos are tinybn.demos, never a package named
    `demos` that could clash with another of that name."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["tinybn*"]
    assert not (ROOT / "demos").exists()


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


# -- results.json written atomically; a bad --out is a one-line error; printouts -------------------


def test_demo_results_json_is_written_atomically(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(_common, "write_text_atomically", lambda p, t: calls.append((p, t)))
    _common.write_results(tmp_path, {"x": np.float32(1.5), "bad": float("nan")})
    assert calls and calls[0][0] == tmp_path / "results.json"
    assert json.loads(calls[0][1]) == {"x": 1.5, "bad": None}


@pytest.mark.parametrize("kind", ["a file", "under a file", "empty"])
def test_a_bad_demo_out_is_a_one_line_error(tmp_path, capsys, kind):
    from tinybn.demos import inference

    (tmp_path / "taken").write_text("not a folder")
    out = {"a file": tmp_path / "taken", "under a file": tmp_path / "taken" / "sub", "empty": ""}
    with pytest.raises(SystemExit) as exit_info:
        inference.main(["--quick", "--out", str(out[kind])])
    message = str(exit_info.value.code) if kind != "empty" else capsys.readouterr().err
    assert exit_info.value.code != 0
    expected = {"a file": "is a file, not a folder", "under a file": "cannot be written"}
    assert expected.get(kind, "needs a folder name") in message
    assert "Traceback" not in message and len(message.strip().splitlines()) <= 2


def test_demo_printouts_name_the_threshold_and_round_floats(tmp_path, capsys, monkeypatch):
    """The tables two demos print, on results of the shape their run returns (the
    experiments themselves run in test_mlp_demos.py and test_paper_demos.py), and gan's
    header, printed before its experiment starts."""
    from tinybn.demos import bn_position, gan, inference

    fake_inference = {
        "final_errors": {"PyTorch EMA (momentum 0.1)": {"mean": 0.02, "var": 0.05}},
        "population_after_training": {"mean_error": 0.001, "var_error": 0.005},
        "forgotten_eval": {
            "train_mode_prediction_changes": 0.4,
            "train_mode_prob_range": [0.043107133358716965, 0.9615419507026672],
            "test_set_prediction_flips_train_mode": 0.05,
            "test_set_prediction_flips_eval_mode": 0.0,
        },
        "fold": {"max_abs_difference": 5.7e-06},
    }
    inference.print_summary(fake_inference)
    text = capsys.readouterr().out
    assert "probability range [0.0431, 0.962]" in text

    row = {"activation": "sigmoid", "placement": "none", "final_train_loss": 2.2}
    fake_table = [
        {**row, "final_test_acc": 0.1, "steps_to_threshold": None},
        {**row, "final_test_acc": 0.9, "steps_to_threshold": 43},
    ]
    bn_position.print_summary({"table": fake_table, "steps": 80})
    text = capsys.readouterr().out
    assert "None" not in text and "steps_to_loss<0.3" in text
    assert "never" in text and "below 0.3 (never: not within 80 steps)" in text

    def stop(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(gan, "experiment", stop)
    with pytest.raises(KeyboardInterrupt):
        gan.main(["--quick", "--out", str(tmp_path / "g")])
    assert capsys.readouterr().out.startswith("gan (quick scale)")
