"""The benchmarks' command line: a bad --json path is refused before anything runs."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("kind", ["folder", "empty", "missing folder"])
def test_a_bad_benchmark_json_path_is_refused_before_running(tmp_path, capsys, kind):
    from benchmarks import run

    path = {"folder": str(tmp_path), "empty": "", "missing folder": str(tmp_path / "no/x.json")}
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--json", path[kind], "--cases", "scalar_bn"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    expected = {"folder": "is a folder", "empty": "needs a file name"}
    assert expected.get(kind, "does not exist") in err
    assert "running" not in err  # nothing was measured
